"""The backtest's speed and memory, measured on the path `fractald backtest` runs.

Three figures, each against issue 17's goal:
- whole process: `fractald backtest` on the bundled 45,031 BTC 1m candles
  (15m strategies, 15m/1h/4h trends, all three strategies on), run as a
  subprocess; its CPU time (user + system, from the kernel) and peak RSS.
  Goal: under 1.5 s CPU.
- loop: the backtest's own loop (`Runner.feed` over the candle columns
  `run_backtest` loads), candles/s; also the engine alone, the null engine
  (SMC, strategies, rollups) and the rollups alone, to show where the time
  goes. Goal: >= 100,000 candles/s.
- memory: a synthetic random-walk series of --candles 1m candles (default
  2,000,000, made here and written to a temporary Parquet file, never kept)
  through `fractald backtest --data FILE` as a subprocess; its peak RSS.
  Goal: under 300 MB.

Each figure is the best of --repeat runs; loop figures as wall time and as
this thread's CPU time (on a shared machine preemption inflates the first,
not the second).

    .venv/bin/python bench/bench_backtest.py [--repeat N] [--candles N] [--skip-memory]

Peers (NautilusTrader, freqtrade, vectorbt) are measured only when their
packages are importable here; otherwise the line says so.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

GOAL_PROCESS_CPU_S = 1.5
GOAL_LOOP_CANDLES_S = 100_000
GOAL_PEAK_RSS_MB = 300
PEERS = ("nautilus_trader", "freqtrade", "vectorbt")


def clock() -> tuple[float, float]:
    return time.perf_counter(), time.thread_time()


def since(t0: tuple[float, float]) -> tuple[float, float]:
    return time.perf_counter() - t0[0], time.thread_time() - t0[1]


def best(a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float]:
    return min(a[0], b[0]), min(a[1], b[1])


def line(name: str, n: int, took: tuple[float, float]) -> str:
    """Wall time, and this thread's CPU time (which a busy machine's preemption does not inflate)."""
    wall, cpu = took
    return (f"{name:<14} {n / wall:9,.0f} candles/s ({wall * 1e6 / n:5.1f} us/candle) wall; "
            f"{n / cpu:9,.0f} candles/s ({cpu * 1e6 / n:5.1f} us/candle) cpu")


def child_usage(args: list[str]) -> tuple[float, float]:
    """CPU seconds (user + system) and peak RSS (MB) of one `fractald ARGS` process.

    The peak is the child's own VmHWM, printed by it at exit: the kernel's figure for
    children would count the pages of this (bigger) process the child shares before exec.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run([*FRACTALD, *args], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    peak_kb = int(done.stderr.rsplit("PEAK_KB ", 1)[1].split()[0])
    return cpu, peak_kb / 1024


FRACTALD = [sys.executable, "-c",
            ("import atexit, sys\n"
            "atexit.register(lambda: print('PEAK_KB', open('/proc/self/status').read().split('VmHWM:')[1].split()[0],"
            " file=sys.stderr))\n"
            "from fractald.cli import fractald_main\n"
            "sys.exit(fractald_main())")]


def whole_process(repeat: int) -> None:
    runs = [child_usage(["backtest"]) for _ in range(repeat)]
    cpu = min(c for c, _ in runs)
    print(f"whole process: `fractald backtest` (45,031 candles) {cpu:.2f} s CPU best, "
          f"{statistics.median(c for c, _ in runs):.2f} median; peak RSS {runs[0][1]:.0f} MB "
          f"(goal < {GOAL_PROCESS_CPU_S} s CPU)")


def loop(repeat: int) -> None:
    from fractald.backtest import StrategySettings, new_runner
    from fractald.core.bars import Rollups
    from fractald.core.execution.engine import TradingEngine
    from fractald.core.execution.paper_venue import paper_venue_for
    from fractald.core.pipeline import NullEngine
    from fractald.core.strategies.registry import SMC_STRATEGIES
    from fractald.venues.replay import bundled_candle_columns

    candles = bundled_candle_columns()  # what run_backtest loads
    bars = list(candles)
    inf = (float("inf"), float("inf"))
    best_engine = best_null = best_rollups = inf
    full: list[tuple[float, float]] = []
    trades = 0
    settings = StrategySettings.of(SMC_STRATEGIES, "15m", ["15m", "1h", "4h"])
    for _ in range(repeat):
        runner = new_runner(candles.symbol, "1m", settings, 10_000.0)
        t0 = clock()
        runner.feed(candles)
        full.append(since(t0))
        trades = len(runner.trades)
        null = new_runner(candles.symbol, "1m", settings, 10_000.0)
        null.pipeline.engine = NullEngine()
        t0 = clock()
        null.feed(bars)
        best_null = best(best_null, since(t0))
        engine = TradingEngine()
        venue = paper_venue_for(engine)  # the engine walks each bar through its paper venue
        t0 = clock()
        for b in bars:
            engine.on_bar(b, venue)
        best_engine = best(best_engine, since(t0))
        rollups = Rollups(candles.symbol, ["15m", "1h", "4h"], "1m")
        t0 = clock()
        for b in bars:
            rollups.on_base(b)
        best_rollups = best(best_rollups, since(t0))
    n = len(candles)
    print(f"loop: candles {n}  trades {trades}  (best of {repeat})")
    print(line("  full loop:", n, (min(w for w, _ in full), min(c for _, c in full)))
          + f"  (goal >= {GOAL_LOOP_CANDLES_S:,})")
    print(line("    median:", n, (statistics.median(w for w, _ in full), statistics.median(c for _, c in full))))
    print(line("  engine alone:", n, best_engine))
    print(line("  null engine:", n, best_null) + "  (SMC + strategies + rollups)")
    print(line("  rollups:", n, best_rollups) + "  (15m, 1h, 4h from 1m)")


def synthetic_candles(n: int, seed: int = 17):  # -> Candles (imported lazily: the parent stays light)
    """A random walk of `n` 1m candles around 40,000 with BTC-like minute ranges."""
    from fractald.core.candles import Candles

    rng = np.random.default_rng(seed)
    close = 40_000.0 * np.exp(np.cumsum(rng.normal(0.0, 0.0008, n)))
    open_ = np.concatenate(([40_000.0], close[:-1]))
    wick = np.abs(rng.normal(0.0, 0.0005, (2, n))) * close
    high = np.maximum(open_, close) + wick[0]
    low = np.minimum(open_, close) - wick[1]
    ts = 1_640_995_200_000 + np.arange(n, dtype=np.int64) * 60_000
    return Candles("SYN-PERP", "1m", ts, open_, high, low, close, rng.uniform(1, 100, n))


def memory(n: int) -> None:
    """`fractald backtest --data FILE.parquet` over `n` synthetic candles written to a temporary file."""
    import tempfile

    import pandas as pd

    candles = synthetic_candles(n)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "synthetic.parquet"
        pd.DataFrame({"ts_open_ms": candles.ts_open, "open": candles.open, "high": candles.high,
                      "low": candles.low, "close": candles.close, "volume": candles.volume}).to_parquet(path)
        del candles
        cpu, peak = child_usage(["backtest", "--data", str(path), "--symbol", "SYN-PERP"])
    print(f"memory: `fractald backtest --data` {n:,} synthetic 1m candles (Parquet): {cpu:.1f} s CPU "
          f"({n / cpu:,.0f} candles/s whole process); peak RSS {peak:.0f} MB (goal < {GOAL_PEAK_RSS_MB} MB)")


def peers() -> None:
    present = [p for p in PEERS if importlib.util.find_spec(p) is not None]
    missing = [p for p in PEERS if p not in present]
    if missing:
        print(f"peers: {', '.join(missing)} not installed here, not measured")
    if present:
        print(f"peers: {', '.join(present)} installed, but no harness for them in this script yet")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--candles", type=int, default=2_000_000, help="synthetic candles for the memory run")
    ap.add_argument("--skip-memory", action="store_true")
    args = ap.parse_args()
    whole_process(args.repeat)
    loop(args.repeat)
    if not args.skip_memory:
        memory(args.candles)
    peers()
    print(f"machine load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
