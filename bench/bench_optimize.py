"""Optimisation trials per minute on one Dask worker against every core, and the scaling ratio.

Each trial is what `fractald optimize` runs: one backtest of fvg_fill (15m,
trends 15m/1h/4h) on the first 15,000 bundled BTC 1m candles with a sampled
swing_length / stop_buffer_atr, through the same executor (candles scattered
once; `optimize()` itself: two walk-forward folds searched together, each
finished trial told back and the next asked at once, each fold's out-of-sample
run included). Goal: scaling >= 0.8 x cores.

    .venv/bin/python bench/bench_optimize.py [--trials N] [--workers W]
"""

from __future__ import annotations

import argparse
import os
import time

from fractald.research.evaluate import Request
from fractald.research.executors import OnDask
from fractald.research.optimize import optimize
from fractald.research.space import parse_space
from fractald.venues.replay import bundled_candles

FOLDS = 2
SPACE = {"params": {"swing_length": {"type": "int", "low": 3, "high": 10},
                    "stop_buffer_atr": {"type": "float", "low": 0.0, "high": 0.5}}}


def trials_per_minute(bars: list, workers: int, trials: int) -> float:  # type: ignore[type-arg]
    request = Request("BTC-PERP", "fvg_fill", "15m", ("15m", "1h", "4h"), 10_000.0)
    space = parse_space(SPACE, ("swing_length", "stop_buffer_atr"))
    ex = OnDask(bars, n_workers=workers)
    try:
        warm = [(0, 2_000, 0, {"swing_length": 5, "stop_buffer_atr": 0.1})] * ex.workers
        ex.run(request, warm)  # every worker imported and holding the candles
        t0 = time.perf_counter()
        results = optimize(bars, request, space, "sharpe", FOLDS, trials, ex, None, f"bench-{workers}")
        took = time.perf_counter() - t0
    finally:
        ex.close()
    runs = sum(r.trials for r in results) + len(results)  # the searches and the OOS runs
    return runs / took * 60


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=16, help="per fold")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    bars = bundled_candles()[:15_000]
    one = trials_per_minute(bars, 1, args.trials)
    many = trials_per_minute(bars, args.workers, args.trials)
    ratio = many / one
    print(f"backtests/min, 1 worker:            {one:8.1f}")
    print(f"backtests/min, {args.workers} workers:           {many:8.1f}")
    print(f"scaling: {ratio:.2f}x on {args.workers} cores = {ratio / args.workers:.2f} x cores "
          f"(goal >= 0.80 x cores: {'met' if ratio >= 0.8 * args.workers else 'NOT met'})")


if __name__ == "__main__":
    main()
