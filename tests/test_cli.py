"""`fractald` sub-commands through the real entry point."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fractald import __version__
from fractald.cli import fractald_main

REPO = Path(__file__).resolve().parent.parent


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fractald.cli", *args], capture_output=True,
                          text=True, timeout=120, cwd=str(REPO))


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert fractald_main(["version"]) == 0
    assert capsys.readouterr().out.strip() == f"fractald {__version__}"


def test_check_config_embedded_default_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert fractald_main(["check-config", "--json"]) == 0
    effective = json.loads(capsys.readouterr().out)
    assert effective["feed"]["venue"] == "replay" and effective["risk"]["heat_cap"] == 0.06


def test_check_config_names_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "x.toml"
    bad.write_text("[feed]\nreplay_speed = -1\n")
    assert fractald_main(["check-config", str(bad)]) == 78
    assert "config.feed.replay_speed: -1" in capsys.readouterr().err


def test_bad_command_line_is_status_2() -> None:
    result = run_cli("frobnicate")
    assert result.returncode == 2 and "invalid choice" in result.stderr


@pytest.mark.slow
def test_chart_from_candle_file_writes_png(tmp_path: Path) -> None:
    from daemon_harness import write_candles_csv

    candles = write_candles_csv(tmp_path / "c.csv", start=20000, count=4000)
    out = tmp_path / "chart.png"
    result = run_cli("chart", "--data", str(candles), "--timeframes", "1h,15m", "--plot", str(out))
    assert result.returncode == 0, result.stderr
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width >= 800 and height >= 500
    missing = run_cli("chart", "--data", str(tmp_path / "nope.csv"), "--plot", str(out))
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    bad_tf = run_cli("chart", "--timeframes", "7m", "--plot", str(out))
    assert bad_tf.returncode == 2 and "unknown timeframe" in bad_tf.stderr
    # without --plot: chart.png where it runs, and it says so
    (tmp_path / "here").mkdir()
    here = subprocess.run([sys.executable, "-m", "fractald.cli", "chart", "--data", str(candles),
                           "--timeframes", "1h,15m"], capture_output=True, text=True, timeout=120,
                          cwd=str(tmp_path / "here"), env={**os.environ, "PYTHONPATH": str(REPO)})
    assert here.returncode == 0, here.stderr
    assert here.stdout.startswith("wrote chart.png") and (tmp_path / "here" / "chart.png").stat().st_size > 10_000
    # --trades: the trades `fractald backtest` makes of the same candles, drawn with their table
    traded = run_cli("chart", "--data", str(candles), "--trades", "--swing-lengths", "1h=4",
                     "--plot", str(out))
    assert traded.returncode == 0, traded.stderr
    assert "1h swing 4, 15m swing 6; live detectors" in traded.stdout
    backtest = run_cli("backtest", "--data", str(candles), "--json")
    assert backtest.returncode == 0, backtest.stderr
    count = len(json.loads(backtest.stdout)["trade_list"])
    assert count > 0 and f"; {count} backtest trades)" in traded.stdout


@pytest.mark.slow
def test_backtest_report_and_equity_plot(tmp_path: Path) -> None:
    from daemon_harness import write_candles_csv

    candles = write_candles_csv(tmp_path / "c.csv", start=0, count=8000)
    out = tmp_path / "equity.png"
    result = run_cli("backtest", "--data", str(candles), "--json", "--plot", str(out))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["summary"]["trades"] == len(report["trade_list"]) > 0
    assert report["plot"] == str(out)
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and int.from_bytes(data[16:20], "big") >= 800
