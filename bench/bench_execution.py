"""Benchmark: signal -> order intent -> paper fill, in-process (goal: p99 under 1 ms).

Prints p50/p99/max in microseconds for:
  1. on_signal with a zero-latency paper broker (the fill happens inside the call);
  2. on_signal plus the next quote that fills it (paper latency 50 ms);
  3. on_bar over the bundled BTC 1m candles with an open bracket (bar-mode fill path).

Run: .venv/bin/python bench/bench_execution.py [--n 5000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from fractald.core.execution.engine import EngineParams, FillSource, TradingEngine
from fractald.core.execution.paper import PaperParams
from fractald.core.execution.paper_venue import paper_venue_for
from fractald.core.models import Bar, Quote, Side, Signal
from fractald.core.risk.params import BreakerParams, GateParams, ReliabilityParams, RiskParams
from fractald.core.risk.sizing import Instrument
from fractald.datasets import bundled_btc_1m_arrays

SYMBOL = "BTC"


def engine(latency_ms: int, fills_from: FillSource = FillSource.TICKS) -> TradingEngine:
    return TradingEngine(EngineParams(
        initial_equity=100_000.0, fills_from=fills_from,
        instruments=(Instrument(SYMBOL, lot_size=0.001, tick_size=0.1),),
        paper=PaperParams(latency_ms=latency_ms),
        risk=RiskParams(gates=GateParams(max_orders_per_window=1_000_000),
                        # the bench trades far more than a day's limit; that breaker is not measured
                        breakers=BreakerParams(max_trades_per_day=1_000_000, daily_loss_fraction=1.0,
                                               max_drawdown_fraction=1.0,
                                               max_consecutive_losses=10_000),
                        reliability=ReliabilityParams(throttle_after_losses=10_000,
                                                      quarantine_after_losses=10_000,
                                                      quarantine_expectancy_r=-100.0))))


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def report(name: str, samples: list[tuple[int, int]]) -> None:
    """Wall time, and this thread's CPU time (which a busy machine's preemption does not inflate)."""
    for label, k in (("wall", 0), ("cpu", 1)):
        us = [s[k] / 1_000 for s in samples]
        print(f"{name:<44} {label:<4} n={len(us):>6}  p50={statistics.median(us):8.1f} us  "
              f"p99={pct(us, 0.99):8.1f} us  max={max(us):8.1f} us")


def clock() -> tuple[int, int]:
    return time.perf_counter_ns(), time.thread_time_ns()


def since(t0: tuple[int, int]) -> tuple[int, int]:
    return time.perf_counter_ns() - t0[0], time.thread_time_ns() - t0[1]


def signal(i: int, ts: int, px: float) -> Signal:
    return Signal(SYMBOL, Side.BUY, px, px * 0.99, (px * 1.01, px * 1.02), 80.0, "bench", "1m", ts)


def bench_signal_to_fill(n: int, latency_ms: int) -> list[tuple[int, int]]:
    eng = engine(latency_ms)
    v = paper_venue_for(eng)
    out: list[tuple[int, int]] = []
    ts = 1_700_000_000_000
    for i in range(n):
        ts += 1_000
        px = 30_000.0 + (i % 50)
        eng.on_quote(Quote(SYMBOL, px - 0.5, 3.0, px + 0.5, 3.0, ts), v)
        sig = signal(i, ts, px)
        t0 = clock()
        events = eng.on_signal(sig, ts, venue=v)
        if latency_ms:
            events += eng.on_quote(Quote(SYMBOL, px - 0.5, 3.0, px + 0.5, 3.0, ts + latency_ms), v)
        out.append(since(t0))
        assert any(e.kind == "order_filled" for e in events), events[:2]
        eng.flatten(SYMBOL, ts + latency_ms + 1, v)  # untimed: close it for the next round
        eng.on_quote(Quote(SYMBOL, px - 0.5, 3.0, px + 0.5, 3.0, ts + 2 * latency_ms + 2), v)
    return out


def bench_bars(limit: int) -> list[tuple[int, int]]:
    arrays = bundled_btc_1m_arrays()
    eng = engine(50, FillSource.BARS)
    v = paper_venue_for(eng)
    out: list[tuple[int, int]] = []
    n = min(limit, len(arrays["close"]))
    for i in range(n):
        bar = Bar(SYMBOL, "1m", int(arrays["ts_open_ms"][i]), float(arrays["open"][i]),
                  float(arrays["high"][i]), float(arrays["low"][i]), float(arrays["close"][i]),
                  float(arrays["volume"][i]))
        t0 = clock()
        eng.on_bar(bar, v)
        if i % 30 == 5:
            px = bar.close
            eng.on_signal(signal(i, bar.ts_event, px), bar.ts_event, venue=v)
        out.append(since(t0))
    print(f"bar replay: {n} bars, {eng.accounting.closed_count} closed trades, "
          f"equity {eng.equity:.2f}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=5_000)
    args = ap.parse_args()
    bench_signal_to_fill(200, 0)  # warm-up
    report("signal -> intent -> paper fill (latency 0)", bench_signal_to_fill(args.n, 0))
    report("signal -> intent -> next quote fill (50ms)", bench_signal_to_fill(args.n, 50))
    report("on_bar incl. signals (bar mode)", bench_bars(args.n * 4))
    print(f"(machine load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
