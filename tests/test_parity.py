"""A backtest and a daemon replay of the same candles make the same trades (issue 8, item 6)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from daemon_harness import REPO, DaemonProcess, ctl_json, write_candles_csv, write_config

pytestmark = pytest.mark.slow

CANDLES = 12_000  # about eight days of real BTC minutes: enough for trades of every kind


def daemon_trades(db: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        rows = conn.execute(
            "SELECT payload FROM events WHERE kind = 'trade_closed' ORDER BY seq").fetchall()
    return [json.loads(payload)["trade"] for (payload,) in rows]


def wait_for_log(daemon: DaemonProcess, event: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(line.get("event") == event for line in daemon.log_lines()):
            return
        assert daemon.proc.poll() is None, daemon.stdout_path.read_text()[-3000:]
        time.sleep(0.2)
    raise AssertionError(f"no {event} within {timeout}s")


def test_backtest_and_daemon_replay_make_the_same_trades(tmp_path: Path) -> None:
    candles = write_candles_csv(tmp_path / "candles.csv", start=0, count=CANDLES)
    config = write_config(tmp_path, replay_speed=0, candles=candles)

    daemon = DaemonProcess(config)
    try:
        # Not feed_finished: bars may still be queued for the trading actor then.
        wait_for_log(daemon, "trading_caught_up", timeout=240)
        sock = tmp_path / "state" / "control.sock"
        daemon_report = ctl_json(sock, "report")
        metrics_text = ctl_json(sock, "metrics")
        assert daemon.stop() == 0
    finally:
        daemon.kill()
    replayed = daemon_trades(tmp_path / "state" / "fractald.db")
    logged = [line for line in daemon.log_lines() if line.get("event") == "trade_closed"]
    assert [line["trade"]["trade_id"] for line in logged] == [t["trade_id"] for t in replayed]

    result = subprocess.run(
        [sys.executable, "-m", "fractald.cli", "backtest", "--config", str(config),
         "--data", str(candles), "--json"],
        capture_output=True, text=True, timeout=600, cwd=str(REPO))
    assert result.returncode == 0, result.stderr
    backtested = json.loads(result.stdout)["trade_list"]

    assert len(backtested) >= 5, "the candles should produce trades"
    assert [t["trade_id"] for t in replayed] == [t["id"] for t in backtested]
    for daemon_trade, bt in zip(replayed, backtested):
        assert daemon_trade["strategy"] == bt["strategy"]
        assert daemon_trade["side"] == bt["side"]
        assert daemon_trade["quantity"] == pytest.approx(bt["qty"], rel=1e-12)
        assert daemon_trade["entry_price"] == pytest.approx(bt["entry"], rel=1e-12)
        assert daemon_trade["exit_price"] == pytest.approx(bt["exit"], rel=1e-12)
        assert daemon_trade["ts_exit"] == bt["ts_exit"]
        assert daemon_trade["pnl"] == pytest.approx(bt["pnl"], abs=1e-6)

    # One set of figures (issue 15): the backtest's report and the daemon's agree, and so do
    # the metrics (the same run's deepest drawdown).
    bt = json.loads(result.stdout)["summary"]["report"]
    for key in ("starting_equity", "ending_equity", "pnl_pct", "sharpe", "sortino", "calmar"):
        assert (daemon_report[key] is None) == (bt[key] is None), key
        if bt[key] is not None:
            assert daemon_report[key] == pytest.approx(bt[key], rel=1e-9, abs=1e-9), key
    assert daemon_report["drawdown"]["max_pct"] == pytest.approx(bt["drawdown"]["max_pct"], rel=1e-9)
    for key, value in bt["stats"].items():
        assert daemon_report["stats"][key] == (None if value is None else pytest.approx(value)), key
    line = next(li for li in metrics_text.splitlines()
                if li.startswith(("fractald_max_drawdown_ratio ", "fractald_max_drawdown_ratio{")))
    assert float(line.split()[-1]) == pytest.approx(bt["drawdown"]["max_pct"], rel=1e-9)
