"""Candles per second through the whole pipeline (SMC, three strategies, risk, paper fills, accounting).

Runs the backtest loop on the bundled 45,031 BTC 1m candles (15m strategies,
15m/1h/4h trends, all three strategies on) and prints candles/s; also the
engine alone, to show where the time goes. Goal: >= 50,000 candles/s.
Each figure is the best of --repeat runs (the full pipeline also gives the
median), as wall time and as this thread's CPU time (on a shared machine,
preemption inflates the first, not the second).

    .venv/bin/python bench/bench_backtest.py [--repeat N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from fractald.backtest import StrategySettings, new_runner
from fractald.core.bars import Rollups
from fractald.core.execution.engine import TradingEngine
from fractald.core.pipeline import NullEngine
from fractald.core.strategies.registry import SMC_STRATEGIES
from fractald.venues.replay import bundled_candles


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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    n = ap.parse_args().repeat
    bars = bundled_candles()
    inf = (float("inf"), float("inf"))
    best_engine = best_null = best_rollups = inf
    full: list[tuple[float, float]] = []
    trades = 0
    settings = StrategySettings.of(SMC_STRATEGIES, "15m", ["15m", "1h", "4h"])
    for _ in range(n):
        runner = new_runner(bars[0].symbol, "1m", settings, 10_000.0)
        t0 = clock()
        runner.feed(bars)
        full.append(since(t0))
        trades = len(runner.trades)
        null = new_runner(bars[0].symbol, "1m", settings, 10_000.0)
        null.pipeline.engine = NullEngine()
        t0 = clock()
        null.feed(bars)
        best_null = best(best_null, since(t0))
        engine = TradingEngine()
        t0 = clock()
        for b in bars:
            engine.on_bar(b)
        best_engine = best(best_engine, since(t0))
        rollups = Rollups(bars[0].symbol, ["15m", "1h", "4h"], "1m")
        t0 = clock()
        for b in bars:
            rollups.on_base(b)
        best_rollups = best(best_rollups, since(t0))
    print(f"candles: {len(bars)}  trades: {trades}  (best of {n})")
    print(line("full pipeline:", len(bars), (min(w for w, _ in full), min(c for _, c in full))))
    print(line("  median:", len(bars), (statistics.median(w for w, _ in full),
                                        statistics.median(c for _, c in full))))
    print(line("engine alone:", len(bars), best_engine))
    print(line("null engine:", len(bars), best_null) + "  (SMC + strategies + rollups)")
    print(line("rollups alone:", len(bars), best_rollups) + "  (15m, 1h, 4h from 1m)")
    print(f"goal: >= 50,000 candles/s with all three strategies "
          f"(machine load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
