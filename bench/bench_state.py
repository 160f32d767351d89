"""What keeping the trading state costs: snapshot writes, and daemon replay CPU against the backtest.

Prints
* the snapshot: its JSON size, and the time to build it (`session_state`,
  with the equity history's closed points and the ended orders split off to
  their own tables as the session does), encode it, and commit it with a batch into a real
  SQLite ledger (`synchronous=FULL`), after CANDLES bars of trading (median
  of --writes; the first write, which stores every closed point once, apart);
* CPU per 1m candle of `fractald run` replaying candles at full speed
  (process CPU until `trading_caught_up`, minus a run over --base candles,
  so imports and start-up cancel out) and of `fractald backtest` over the
  same candles (the same subtraction), and their ratio. Goal (issue 11):
  daemon within 2x of the backtest loop.

    .venv/bin/python bench/bench_state.py [--candles 12000] [--writes 50]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from daemon_harness import REPO, DaemonProcess, write_candles_csv, write_config

from fractald.config import Config
from fractald.core.bars import SymbolBars
from fractald.pipeline_factory import pipeline_from_config
from fractald.session_state import session_state
from fractald.store import db
from fractald.store.equity_store import split_equity
from fractald.store.ledger import Ledger
from fractald.store.order_store import split_orders
from fractald.venues.replay import bundled_candles


def snapshot_figures(candles: int, writes: int) -> dict[str, float]:
    pipeline = pipeline_from_config(Config())
    builder = SymbolBars("BTC-PERP", ["1m", "15m", "1h", "4h"])
    cursor: dict[str, int] = {}
    for candle in bundled_candles()[:candles]:
        for bar in builder.on_base_bar(candle).bars:
            pipeline.on_bar(bar)
            cursor[f"{bar.symbol}/{bar.timeframe}"] = bar.ts_open
    build, encode, commit = [], [], []
    stored = None
    orders_stored: dict[str, object] = {}
    first_rows = first_orders = 0
    with tempfile.TemporaryDirectory() as tmp, Ledger.open(Path(tmp) / "fractald.db") as led:
        for i in range(writes):
            t0 = time.perf_counter()
            # As the session writes it: the equity history's closed points go to their own
            # table (all of them at the first write, then only new ones), not into the snapshot.
            state, rows, stored = split_equity(session_state(pipeline, cursor, candles), stored)
            # and the ended orders to theirs (all at the first write, then only new ones)
            state, orders, orders_stored = split_orders(state, orders_stored)
            first_rows = first_rows or len(rows)
            first_orders = first_orders or len(orders)
            t1 = time.perf_counter()
            text = db.canonical_json(state, "snapshot")
            t2 = time.perf_counter()
            led.commit_batch([("bench", {"i": i}, i)], (), state, equity=rows, ended_orders=orders)
            t3 = time.perf_counter()
            build.append(t1 - t0)
            encode.append(t2 - t1)
            commit.append(t3 - t2)
    return {"snapshot_bytes": len(text), "equity_points_first_write": first_rows,
            "ended_orders_first_write": first_orders,
            "first_write_ms": round(1000 * (build[0] + encode[0] + commit[0]), 3),
            "build_ms": _ms(build), "encode_ms": _ms(encode),
            "commit_with_snapshot_ms": _ms(commit),
            "total_ms": round(1000 * statistics.median(b + e + c for b, e, c in
                                                       zip(build, encode, commit, strict=True)), 3)}


def _ms(values: list[float]) -> float:
    return round(1000 * statistics.median(values), 3)


def cpu_of(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def daemon_cpu(tmp: Path, count: int) -> float:
    tmp.mkdir()
    config = write_config(tmp, replay_speed=0, candles=write_candles_csv(tmp / "c.csv", count=count))
    daemon = DaemonProcess(config)
    try:
        deadline = time.monotonic() + 900
        while not any(line.get("event") == "trading_caught_up" for line in daemon.log_lines()):
            if daemon.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(daemon.stdout_path.read_text()[-2000:])
            time.sleep(0.05)
        return cpu_of(daemon.proc.pid)
    finally:
        daemon.stop()


def backtest_cpu(tmp: Path, count: int) -> float:
    tmp.mkdir()
    config = write_config(tmp, replay_speed=0, candles=write_candles_csv(tmp / "c.csv", count=count))
    proc = subprocess.Popen([sys.executable, "-m", "fractald.cli", "backtest", "--config", str(config),
                             "--data", str(tmp / "c.csv"), "--json"], cwd=str(REPO),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"backtest exited {proc.returncode}")
    return usage.ru_utime + usage.ru_stime


def replay_figures(candles: int, base: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        daemon = (daemon_cpu(tmp / "d1", candles) - daemon_cpu(tmp / "d0", base)) / (candles - base)
        backtest = (backtest_cpu(tmp / "b1", candles) - backtest_cpu(tmp / "b0", base)) / (candles - base)
    return {"daemon_cpu_us_per_candle": round(daemon * 1e6, 1),
            "backtest_cpu_us_per_candle": round(backtest * 1e6, 1),
            "daemon_over_backtest": round(daemon / backtest, 2), "goal": "daemon_over_backtest <= 2"}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--candles", type=int, default=12_000)
    parser.add_argument("--base", type=int, default=1_000)
    parser.add_argument("--writes", type=int, default=50)
    parser.add_argument("--skip-replay", action="store_true")
    args = parser.parse_args()
    result: dict[str, object] = {"candles": args.candles,
                                 "snapshot": snapshot_figures(args.candles, args.writes)}
    if not args.skip_replay:
        result["replay"] = replay_figures(args.candles, args.base)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
