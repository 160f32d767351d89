"""Intent -> signed Binance request, and user-stream frame -> VenueReport, in-process (no network).

Prints p50/p99 per call in microseconds for: building and HMAC-signing a
LIMIT order, a conditional stop (algo service), and parsing an
ORDER_TRADE_UPDATE fill. Thread CPU time per call, so a busy shared
machine inflates it less than wall time.

    .venv/bin/python bench/bench_binance_orders.py [--n 20000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

from fractald.core.execution.events import OrderIntent
from fractald.core.execution.orders import OrderType, client_order_id
from fractald.core.models import Side
from fractald.venues import binance_orders as bo
from fractald.venues import binance_userstream as bu
from fractald.venues.binance import Market
from fractald.venues.interface import InstrumentSpec

SPEC = InstrumentSpec("BTCUSDT", tick_size=0.1, lot_size=0.001, min_qty=0.001, min_notional=100.0)
SECRET = "x" * 64


def timings(fn: Callable[[int], object], n: int) -> list[float]:
    out = []
    for i in range(n):
        t0 = time.thread_time_ns()
        fn(i)
        out.append((time.thread_time_ns() - t0) / 1000.0)
    return out


def report(name: str, us: list[float]) -> None:
    us.sort()
    p50 = statistics.median(us)
    p99 = us[int(len(us) * 0.99) - 1]
    print(f"{name:<34} p50 {p50:7.1f} us   p99 {p99:7.1f} us   ({len(us)} calls)")


def limit_order(i: int) -> object:
    intent = OrderIntent(ts=i, client_order_id=client_order_id(f"sig-{i}", "entry"), symbol="BTCUSDT",
                         side=Side.BUY, order_type=OrderType.LIMIT, quantity=0.0123, price=50_000.05)
    return bo.sign(bo.new_order(intent, SPEC, Market.FUTURES), SECRET, 1_700_000_000_000 + i)


def stop_order(i: int) -> object:
    intent = OrderIntent(ts=i, client_order_id=client_order_id(f"sig-{i}", "stop"), symbol="BTCUSDT",
                         side=Side.SELL, order_type=OrderType.STOP_MARKET, quantity=0.0123,
                         trigger_price=49_000.0, reduce_only=True, role="stop")
    return bo.sign(bo.new_order(intent, SPEC, Market.FUTURES), SECRET, 1_700_000_000_000 + i)


FRAME = json.dumps({"e": "ORDER_TRADE_UPDATE", "E": 1, "T": 1, "o": {
    "s": "BTCUSDT", "c": "abc", "S": "BUY", "o": "LIMIT", "f": "GTC", "q": "0.01", "p": "50000",
    "ap": "50000", "sp": "0", "x": "TRADE", "X": "FILLED", "i": 7, "l": "0.01", "z": "0.01",
    "L": "50000", "N": "USDT", "n": "0.2", "T": 1, "t": 99, "m": False, "R": False, "ot": "LIMIT"}})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20_000)
    n = parser.parse_args().n
    report("LIMIT order built + signed", timings(limit_order, n))
    report("STOP_MARKET (algo) built + signed", timings(stop_order, n))
    report("ORDER_TRADE_UPDATE -> VenueReport", timings(lambda i: bu.parse_user_event(FRAME), n))


if __name__ == "__main__":
    main()
