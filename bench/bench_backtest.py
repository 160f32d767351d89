"""Candles per second through the whole pipeline (SMC, three strategies, risk, paper fills, accounting).

Runs the backtest loop on the bundled 45,031 BTC 1m candles (15m strategies,
15m/1h/4h trends, all three strategies on) and prints candles/s; also the
engine alone, to show where the time goes. Goal: >= 50,000 candles/s.

    .venv/bin/python bench/bench_backtest.py [--repeat N]
"""

from __future__ import annotations

import argparse
import time

from fractald.backtest import StrategySettings, new_runner
from fractald.core.execution.engine import TradingEngine
from fractald.core.pipeline import NullEngine
from fractald.core.strategies.registry import STRATEGIES
from fractald.venues.replay import bundled_candles


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    n = ap.parse_args().repeat
    bars = bundled_candles()
    best_full = best_engine = best_null = float("inf")
    trades = 0
    for _ in range(n):
        runner = new_runner(bars[0].symbol, "1m", StrategySettings.of(sorted(STRATEGIES), "15m", ["15m", "1h", "4h"]), 10_000.0)
        t0 = time.perf_counter()
        runner.feed(bars)
        best_full = min(best_full, time.perf_counter() - t0)
        trades = len(runner.trades)
        null = new_runner(bars[0].symbol, "1m", StrategySettings.of(sorted(STRATEGIES), "15m", ["15m", "1h", "4h"]), 10_000.0)
        null.pipeline.engine = NullEngine()
        t0 = time.perf_counter()
        null.feed(bars)
        best_null = min(best_null, time.perf_counter() - t0)
        engine = TradingEngine()
        t0 = time.perf_counter()
        for b in bars:
            engine.on_bar(b)
        best_engine = min(best_engine, time.perf_counter() - t0)
    print(f"candles: {len(bars)}  trades: {trades}  (best of {n})")
    print(f"full pipeline: {len(bars) / best_full:,.0f} candles/s  ({best_full * 1e6 / len(bars):.1f} us/candle)")
    print(f"engine alone:  {len(bars) / best_engine:,.0f} candles/s  ({best_engine * 1e6 / len(bars):.1f} us/candle)")
    print(f"pipeline with a null engine (SMC + strategies + rollups): {len(bars) / best_null:,.0f} candles/s "
          f"({best_null * 1e6 / len(bars):.1f} us/candle)")
    print("goal: >= 50,000 candles/s with all three strategies")


if __name__ == "__main__":
    main()
