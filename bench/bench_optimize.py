"""Optimisation trials per minute on one Dask worker against every core, and the scaling ratio.

Each trial is what `fractald optimize` runs: one backtest of fvg_fill (15m,
trends 15m/1h/4h) on the first 15,000 bundled BTC 1m candles with a sampled
swing_length / stop_buffer_atr, through the same executor (candles scattered
once, trials submitted in batches as wide as the cluster). Goal: scaling >= 0.8
x cores.

    .venv/bin/python bench/bench_optimize.py [--trials N] [--workers W]
"""

from __future__ import annotations

import argparse
import os
import random
import time

from fractald.research.evaluate import Request
from fractald.research.executors import OnDask
from fractald.venues.replay import bundled_candles


def trials_per_minute(bars: list, workers: int, trials: int) -> float:  # type: ignore[type-arg]
    request = Request("BTC-PERP", "fvg_fill", "15m", ("15m", "1h", "4h"), 10_000.0)
    rng = random.Random(7)
    jobs = [(0, len(bars), 0, {"swing_length": rng.randint(3, 10),
                               "stop_buffer_atr": round(rng.uniform(0.0, 0.5), 3)}) for _ in range(trials)]
    ex = OnDask(bars, n_workers=workers)
    try:
        ex.run(request, jobs[:workers])  # warm every worker (imports, first compile of caches)
        t0 = time.perf_counter()
        for i in range(0, trials, workers):
            ex.run(request, jobs[i:i + workers])
        took = time.perf_counter() - t0
    finally:
        ex.close()
    return trials / took * 60


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    bars = bundled_candles()[:15_000]
    one = trials_per_minute(bars, 1, args.trials)
    many = trials_per_minute(bars, args.workers, args.trials)
    ratio = many / one
    print(f"trials/min, 1 worker:            {one:8.1f}")
    print(f"trials/min, {args.workers} workers:           {many:8.1f}")
    print(f"scaling: {ratio:.2f}x on {args.workers} cores = {ratio / args.workers:.2f} x cores "
          f"(goal >= 0.80 x cores: {'met' if ratio >= 0.8 * args.workers else 'NOT met'})")


if __name__ == "__main__":
    main()
