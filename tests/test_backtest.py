"""`fractald backtest`: report figures agree with the trades, folds partition the data, files load."""

from __future__ import annotations

import argparse
import itertools
import json
import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from fractald.backtest import BacktestError, add_backtest_arguments
from fractald.backtest_cli import format_report, run_backtest
from fractald.datasets import bundled_btc_1m
from fractald.errors import ConfigError

FROM, TO = "2022-01-01", "2022-01-08"


def args_of(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_backtest_arguments(p)
    return p.parse_args(list(argv))


@pytest.fixture(scope="module")
def report() -> dict:
    return run_backtest(args_of("--from", FROM, "--to", TO))


def test_report_figures_agree_with_its_trades(report: dict) -> None:
    s, trades = report["summary"], report["trade_list"]
    assert s["trades"] == len(trades) > 5
    assert s["bars"] == 7 * 1440
    assert s["net_pnl"] == pytest.approx(sum(t["pnl"] for t in trades), abs=1e-3)
    wins = [t for t in trades if t["pnl"] > 0]
    losses = [t for t in trades if t["pnl"] < 0]
    assert (s["wins"], s["losses"]) == (len(wins), len(losses))
    assert s["win_rate"] == pytest.approx(len(wins) / len(trades))
    assert s["expectancy"] == pytest.approx(s["net_pnl"] / len(trades), rel=1e-6)
    if losses:
        assert s["profit_factor"] == pytest.approx(sum(t["pnl"] for t in wins) / -sum(t["pnl"] for t in losses),
                                                   rel=1e-4)
    assert 0 <= s["max_drawdown_pct"] and s["max_drawdown_duration_ms"] >= 0
    for key in ("sharpe", "sortino"):
        assert s[key] is None or math.isfinite(s[key])
    lo, hi = pd.Timestamp(FROM, tz="UTC").value // 10**6, pd.Timestamp(TO, tz="UTC").value // 10**6
    assert all(lo <= t["ts_entry"] <= t["ts_exit"] <= hi for t in trades)
    assert sum(g["trades"] for g in s["by_strategy"].values()) == len(trades)
    text = format_report(report)
    assert f"Trades                     {len(trades)}  (won {len(wins)}" in text
    assert "Profit factor" in text and "{" not in text  # a table, not Python dict text


def test_walk_forward_folds_partition_the_candles_and_are_out_of_sample() -> None:
    rep = run_backtest(args_of("--from", FROM, "--to", TO, "--walk-forward", "3", "--strategy", "fvg_fill"))
    folds = rep["folds"]
    assert [f["fold"] for f in folds] == [1, 2, 3]
    assert sum(f["bars"] for f in folds) == rep["summary"]["bars"]
    assert folds[0]["warmup_bars"] == 0 and folds[1]["warmup_bars"] == folds[0]["bars"]
    for a, b in itertools.pairwise(folds):
        assert a["to_ms"] == b["from_ms"]
    assert set(rep["summary"]["by_strategy"]) <= {"fvg_fill"}


@pytest.mark.parametrize("suffix", [".csv", ".json", ".parquet"])
def test_candle_files_give_the_same_backtest_as_the_bundled_data(tmp_path: Path, suffix: str, report: dict) -> None:
    df = bundled_btc_1m()
    df = df[(df.index >= pd.Timestamp(FROM, tz="UTC")) & (df.index < pd.Timestamp(TO, tz="UTC"))]
    frame = df.reset_index(names="timestamp")
    frame["timestamp"] = frame["timestamp"].astype("int64") // 1000  # us -> ms
    path = tmp_path / f"candles{suffix}"
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    elif suffix == ".json":
        frame.rename(columns={"timestamp": "date"}).to_json(path)
    else:
        frame.to_parquet(path)
    rep = run_backtest(args_of("--data", str(path)))
    assert rep["summary"]["bars"] == report["summary"]["bars"]
    assert rep["trade_list"] == report["trade_list"]


def test_bad_requests_name_the_problem() -> None:
    with pytest.raises(BacktestError, match="unknown strategy nope; known: bos_orderblock"):
        run_backtest(args_of("--strategy", "nope"))
    with pytest.raises(BacktestError, match="--walk-forward must be 0"):
        run_backtest(args_of("--walk-forward", "1"))
    with pytest.raises(BacktestError, match="--from 'yesterday'"):
        run_backtest(args_of("--from", "yesterday"))
    with pytest.raises(BacktestError, match="no candles"):
        run_backtest(args_of("--from", "2030-01-01"))
    with pytest.raises(ValueError, match="does not exist"):
        run_backtest(args_of("--data", "/nonexistent/candles.csv"))


def test_command_prints_json_and_exits_2_on_error() -> None:
    ok = subprocess.run([sys.executable, "-m", "fractald.backtest_cli", "--json", "--from", "2022-01-03",
                         "--to", "2022-01-05", "--strategy", "liquidity_sweep"],
                        capture_output=True, text=True, timeout=120, check=False)
    assert ok.returncode == 0, ok.stderr
    rep = json.loads(ok.stdout)
    assert rep["strategies"] == ["liquidity_sweep"] and rep["summary"]["bars"] == 2 * 1440
    bad = subprocess.run([sys.executable, "-m", "fractald.backtest_cli", "--strategy", "nope"],
                         capture_output=True, text=True, timeout=120, check=False)
    assert bad.returncode == 2 and "unknown strategy nope" in bad.stderr


@pytest.mark.slow
def test_full_bundled_backtest_with_walk_forward() -> None:
    rep = run_backtest(args_of("--walk-forward", "5"))
    s = rep["summary"]
    assert s["bars"] == 45_031 and s["trades"] == len(rep["trade_list"]) > 30
    assert set(s["by_strategy"]) == {"bos_orderblock", "fvg_fill", "liquidity_sweep"}
    folds = rep["folds"]
    assert len(folds) == 5 and sum(f["bars"] for f in folds) == 45_031
    assert all(f["warmup_bars"] == folds[0]["bars"] for f in folds[1:])


def test_config_file_chooses_enabled_strategies_timeframe_and_params(tmp_path: Path) -> None:
    cfg = tmp_path / "fractald.toml"
    cfg.write_text('[strategies]\nenabled = ["fvg_fill"]\ntimeframe = "1h"\n\n'
                   '[strategies.params.fvg_fill]\nmin_confidence = 0\n')
    rep = run_backtest(args_of("--config", str(cfg), "--from", FROM, "--to", TO))
    assert rep["strategies"] == ["fvg_fill"] and rep["timeframe"] == "1h"
    assert rep["params"] == {"fvg_fill": {"min_confidence": 0}}
    assert all(t["strategy"] == "fvg_fill" for t in rep["trade_list"])
    cfg.write_text('[strategies]\nenabled = ["fvg_fill"]\n\n[strategies.params.fvg_fill]\nmin_confidence = 101\n')
    with pytest.raises(ConfigError, match=r"min_confidence must be a number in 0\.0\.\.100\.0, got 101"):
        run_backtest(args_of("--config", str(cfg)))


def test_progress_is_a_bar_on_a_terminal_and_tenths_in_a_log(capsys: pytest.CaptureFixture[str]) -> None:
    import io

    from fractald.reporting.progress import Progress

    ticks = iter([0.0, 10.0, 20.0])
    bar = Progress(100, "backtest", io.StringIO(), tty=True, clock=lambda: next(ticks))
    bar.advance(50)
    bar.advance(25)
    shown = bar.stream.getvalue().split("\r")
    assert shown[1].startswith("backtest [###############...............]  50%  ETA 10s")
    assert "75%  ETA 7s" in shown[2]
    args = args_of("--from", "2022-01-03", "--to", "2022-01-05", "--walk-forward", "2")
    args.progress = True
    run_backtest(args)
    lines = capsys.readouterr().err.splitlines()
    shares = [int(line.split(":")[1].split("%")[0]) for line in lines]
    assert shares == sorted(set(shares)) and shares[-1] == 100  # at most a line a tenth, to 100 %
    assert lines[-1].startswith("backtest: 100% (") and "ETA 0s" in lines[-1]
