"""Benchmark: what frozen state slices would cost the engine (issue 11, "state as frozen data").

The engine's transitions (`core/execution/evolve.py`) update its orders and
brackets in place. Frozen attrs slices would make each transition build the
next value instead. This prints the cost of one such copy next to what a
signal -> fill round costs today, and how many order and bracket
transitions that round makes, so the overhead can be judged before the change:

  1. CPU of one signal -> intent -> paper fill round (bench_execution's path),
     and the order/bracket transitions it applies;
  2. one copy of an Order (26 fields) and of a Bracket (27 fields) by
     `attrs.evolve`, and of a small frozen record (an order's progress only:
     status, fills, fees, trade ids, last time; 7 fields) by its constructor.

  3. with --whole: the month of bundled candles through the backtest loop
     (the golden default case: the daemon's pipeline, every strategy), its
     CPU, and how many Order, Bracket and position copies frozen slices would
     have made over it (every order/bracket/fill transition, and each move of
     a bracket's market-derived best prices); copies x (1.) 's costs over the
     run's CPU is what freezing would add to a whole backtest. A daemon
     replay does more per candle with the same copies, so less in proportion.

Run: .venv/bin/python bench/bench_frozen_state.py [--n 2000] [--whole]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import timeit
from pathlib import Path

import attrs

sys.path.insert(0, str(Path(__file__).parent))

from bench_execution import engine, signal

from fractald.core.execution import events as ev
from fractald.core.execution.brackets import Bracket
from fractald.core.execution.engine import FillSource
from fractald.core.execution.orders import Order, OrderStatus, OrderType
from fractald.core.execution.paper_venue import paper_venue_for
from fractald.core.models import Quote, Side

ORDER_EVENTS = (ev.OrderIntent, ev.CancelRequested, ev.OrderStatusChanged, ev.OrderFilled)
BRACKET_EVENTS = (ev.BracketOpened, ev.StopMoved, ev.BracketExit, ev.BracketClosed)


@attrs.frozen(slots=True)
class OrderProgress:
    """What of an order changes after it is sent: a frozen record small enough to copy cheaply."""

    status: OrderStatus
    resume_status: OrderStatus
    filled_qty: float
    avg_fill_price: float
    fees: float
    trade_ids: tuple[str, ...]
    ts_last: int


def signal_rounds(n: int) -> tuple[float, float, float]:
    """Median CPU µs of a signal -> fill round (entry, targets, exit), order and bracket events per round."""
    eng = engine(0, FillSource.TICKS)
    v = paper_venue_for(eng)
    ts, cpu, orders, brackets = 1_700_000_000_000, [], 0, 0
    for i in range(n):
        ts += 1_000
        px = 30_000.0 + (i % 50)
        eng.on_quote(Quote("BTC", px - 0.5, 3.0, px + 0.5, 3.0, ts), v)
        t0 = time.thread_time_ns()
        events = eng.on_signal(signal(i, ts, px), ts, venue=v)
        events += eng.flatten(None, ts, v)
        cpu.append((time.thread_time_ns() - t0) / 1_000)
        orders += sum(isinstance(e, ORDER_EVENTS) for e in events)
        brackets += sum(isinstance(e, BRACKET_EVENTS) for e in events)
    return statistics.median(cpu), orders / n, brackets / n


def copy_costs(n: int = 100_000) -> tuple[float, float, float]:
    o = Order("c1", "BTC", Side.BUY, OrderType.MARKET, 1.0, ts_created=1)
    b = Bracket("s", "k", "BTC", Side.BUY, "1m", 1.0, 100.0, 98.0, (102.0,), 90.0, 1)
    p = OrderProgress(OrderStatus.SUBMITTED, OrderStatus.SUBMITTED, 0.0, 0.0, 0.0, (), 0)
    order = timeit.timeit(lambda: attrs.evolve(o, filled_qty=1.0), number=n) / n * 1e6
    bracket = timeit.timeit(lambda: attrs.evolve(b, stop=99.0), number=n) / n * 1e6
    small = timeit.timeit(lambda: OrderProgress(p.status, p.resume_status, 1.0, p.avg_fill_price, p.fees,
                                                p.trade_ids, 5), number=n) / n * 1e6
    return order, bracket, small


def whole_run() -> tuple[float, int, dict[str, int]]:
    """CPU seconds of the month's backtest loop, its base bars, and the copies frozen slices make."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from test_engine_golden import Runner, run_case

    from fractald.core.execution import evolve

    copies = {"order": 0, "bracket": 0, "position": 0, "constructed": 0}
    per_event = {  # what one event of each type would copy: (orders, brackets, positions, new)
        ev.OrderIntent: (0, 1, 0, 1),
        ev.CancelRequested: (1, 0, 0, 0),
        ev.OrderStatusChanged: (1, 1, 0, 0),
        ev.OrderFilled: (1, 1, 1, 0),
        ev.StopMoved: (0, 1, 0, 0),
        ev.BracketExit: (0, 1, 0, 0),
        ev.BracketOpened: (0, 0, 0, 1),
    }
    real = dict(evolve.TRANSITIONS)

    def counted(kind: type) -> object:
        o, b, p, c = per_event[kind]
        step = real[kind]

        def transition(state: object, event: object) -> None:
            copies["order"] += o
            copies["bracket"] += b
            copies["position"] += p
            copies["constructed"] += c
            step(state, event)

        return transition

    bests: dict[str, tuple[float, float]] = {}
    real_step = Runner.step

    def step(self: object, bar: object) -> list[object]:
        out = real_step(self, bar)  # type: ignore[arg-type]
        for sid, b in self.pipeline.engine.brackets.items():  # type: ignore[attr-defined]
            now = (b.best_price, b.plan_best)
            if bests.get(sid, now) != now:
                copies["bracket"] += 1  # a market-derived best moved: one more Bracket copy
            bests[sid] = now
        return out

    evolve.TRANSITIONS.update({k: counted(k) for k in per_event})  # type: ignore[misc]
    Runner.step = step  # type: ignore[method-assign]
    try:
        t0 = time.thread_time()
        run_case("default")
        cpu = time.thread_time() - t0
    finally:
        evolve.TRANSITIONS.update(real)
        Runner.step = real_step  # type: ignore[method-assign]
    # The counting itself costs a little: time a second, plain run for the CPU figure.
    t0 = time.thread_time()
    run_case("default")
    cpu = min(cpu, time.thread_time() - t0)
    from fractald.venues.replay import bundled_candles

    return cpu, len(bundled_candles()), copies


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--whole", action="store_true", help="also the month's backtest (see 3.)")
    args = ap.parse_args()
    n = args.n
    if args.whole:
        order_us, bracket_us, _ = copy_costs()
        cpu, candles, copies = whole_run()
        cost_s = (
            copies["order"] * order_us
            + copies["bracket"] * bracket_us
            + copies["position"] * bracket_us  # a position is smaller than a bracket
        ) / 1e6
        print(f"month backtest ({candles} candles, the golden default case): {cpu:.2f} s CPU")
        print(f"copies frozen slices would make over it: {copies}")
        print(f"one copy: Order {order_us:.2f} us, Bracket {bracket_us:.2f} us -> "
              f"+{cost_s * 1e3:.1f} ms over the run (+{cost_s / cpu:.2%})")
    round_us, orders, brackets = signal_rounds(n)
    order_us, bracket_us, small_us = copy_costs()
    whole = orders * order_us + brackets * bracket_us
    small = orders * small_us + brackets * bracket_us
    print(f"signal -> fill -> flatten round: {round_us:.1f} us CPU (median of {n}); "
          f"{orders:.1f} order and {brackets:.1f} bracket transitions")
    print(f"one copy: Order {order_us:.2f} us, Bracket {bracket_us:.2f} us, "
          f"7-field order progress {small_us:.2f} us")
    print(f"frozen Order and Bracket slices: +{whole:.1f} us a round (+{whole / round_us:.0%})")
    print(f"frozen order progress + Bracket:  +{small:.1f} us a round (+{small / round_us:.0%})")
    print(f"(machine load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
