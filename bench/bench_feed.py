"""Market data throughput on one core: parse + aggregate, in trade messages per second.

    .venv/bin/python bench/bench_feed.py [--messages 300000]

Figures printed:
  binance aggTrade  parse only            codec alone
  binance aggTrade  parse + bars          codec + SymbolBars (1m -> 5m, 15m, 1h, 4h, 1d)
  hyperliquid trades parse + bars         (one trade per message)
  feed core (trio)  parse + bars + channel  FeedCore.handle with a consumer draining the channel
Goal: >= 100,000 trade messages/s for parse + bars (more than 50x the busiest real BTC stream).
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Callable

import trio

from fractald.core.bars import SymbolBars
from fractald.core.models import TradeTick
from fractald.venues import binance, hyperliquid
from fractald.venues.feed import FeedCore, FeedOutput, FeedSettings

T0 = 1_700_006_400_000
TFS = ("1m", "5m", "15m", "1h", "4h", "1d")


def binance_messages(n: int, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    price, out = 37_000.0, []
    for i in range(n):
        price = max(1.0, price + rng.uniform(-2, 2))
        ts = T0 + i * 20  # 50 trades a second of venue time: hours of bars get built
        out.append(json.dumps({"stream": "btcusdt@aggTrade", "data": {
            "e": "aggTrade", "E": ts + 3, "s": "BTCUSDT", "a": i, "p": f"{price:.2f}",
            "q": f"{rng.uniform(0.001, 1):.3f}", "f": i, "l": i, "T": ts, "m": rng.random() < 0.5}}))
    return out


def hyperliquid_messages(n: int, seed: int = 2) -> list[str]:
    rng = random.Random(seed)
    price, out = 37_000.0, []
    for i in range(n):
        price = max(1.0, price + rng.uniform(-2, 2))
        out.append(json.dumps({"channel": "trades", "data": [{
            "coin": "BTC", "side": "B" if rng.random() < 0.5 else "A", "px": f"{price:.1f}",
            "sz": f"{rng.uniform(0.001, 1):.4f}", "hash": "0x0", "time": T0 + i * 20, "tid": i}]}))
    return out


def rate(label: str, n: int, fn: Callable[[], None]) -> float:
    """Messages per second of this process's CPU time (one core), and per wall second."""
    wall0, cpu0 = time.perf_counter(), time.process_time()
    fn()
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    per_s = n / cpu
    print(f"{label:<44} {per_s:>10,.0f} msg/s CPU  {n / wall:>10,.0f} msg/s wall  ({n:,} msgs)")
    return per_s


def parse_only(messages: list[str], parse: Callable[[str], list]) -> Callable[[], None]:
    def run() -> None:
        for raw in messages:
            parse(raw)
    return run


def parse_and_bars(messages: list[str], parse: Callable[[str], list], symbol: str) -> Callable[[], None]:
    def run() -> None:
        bars = SymbolBars(symbol, TFS)
        emitted = 0
        for raw in messages:
            for event in parse(raw):
                if isinstance(event, TradeTick):
                    step = bars.on_trade(event)
                    emitted += len(step.bars)
                    if step.gap is not None:
                        emitted += len(bars.resolve_gap(None).bars)
        assert emitted > 0
    return run


def feed_core(messages: list[str]) -> Callable[[], None]:
    async def main() -> None:
        send, receive = trio.open_memory_channel[object](1024)
        settings = FeedSettings(venue="binance-futures", symbols=("BTCUSDT",), timeframes=TFS)

        class Quiet:
            def __getattr__(self, name: str) -> Callable[..., None]:
                return lambda *a, **k: None

        core = FeedCore(settings, ["BTCUSDT"], FeedOutput(send), Quiet())

        async def drain() -> None:
            async for _ in receive:
                pass

        async with trio.open_nursery() as nursery:
            nursery.start_soon(drain)
            for raw in messages:
                await core.handle(binance.parse_message(raw))
            nursery.cancel_scope.cancel()

    return lambda: trio.run(main)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=300_000)
    args = parser.parse_args()
    n = args.messages
    b_msgs, h_msgs = binance_messages(n), hyperliquid_messages(n)
    rate("binance aggTrade: parse only", n, parse_only(b_msgs, binance.parse_message))
    goal = rate("binance aggTrade: parse + bars (6 timeframes)", n,
                parse_and_bars(b_msgs, binance.parse_message, "BTCUSDT"))
    rate("hyperliquid trades: parse + bars", n, parse_and_bars(h_msgs, hyperliquid.parse_message, "BTC"))
    rate("feed core (trio): parse + bars + channel", n, feed_core(b_msgs))
    print(f"goal 100,000 msg/s parse + bars: {'met' if goal >= 100_000 else 'NOT met'}")


if __name__ == "__main__":
    main()
