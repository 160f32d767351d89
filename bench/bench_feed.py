"""Market data throughput on one core, in trade messages per second.

    .venv/bin/python bench/bench_feed.py [--messages 300000]

Figures printed:
  binance aggTrade  parse only              codec alone
  binance aggTrade  parse + bars            codec + SymbolBars (1m -> 5m, 15m, 1h, 4h, 1d)
  hyperliquid trades parse + bars           (one trade per message)
  daemon path       parse + feed core + channels: what the daemon runs for every WS message:
                    the codec, FeedCore.handle (venue clock, trade ids, health, outliers, bars),
                    FeedOutput into the bounded feed channel, the market_data actor's real
                    forwarder into the trading actor's bounded inbox, drained by a consumer
                    (standing in for the trading actor). Only the socket read is left out.
Goal: >= 100,000 trade messages/s on the daemon path (more than 50x the busiest real BTC stream).
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Callable

import trio
import trio.lowlevel

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


class _Quiet:
    def __getattr__(self, name: str) -> Callable[..., None]:
        return lambda *a, **k: None


class _Ctx:
    """The parts of the supervisor's ActorContext the forwarder touches."""

    log = _Quiet()

    def beat(self) -> None:
        pass

    def pass_gate(self, gate: str) -> None:
        pass


def daemon_path(messages: list[str], venue: str = "binance-futures", symbol: str = "BTCUSDT",
                parse: Callable[[str], list] = binance.parse_message) -> Callable[[], None]:
    from types import SimpleNamespace

    from fractald.actors.market_data import FORWARD_BUFFER, MarketDataActor
    from fractald.actors.trading import MARKET_BUFFER, MarketBatch

    async def main() -> None:
        settings = FeedSettings(venue=venue, symbols=(symbol,), timeframes=TFS)
        inbox_send, inbox = trio.open_memory_channel[object](MARKET_BUFFER)
        config = SimpleNamespace(feed=SimpleNamespace(venue=venue, symbols=[symbol]))
        actor = MarketDataActor(SimpleNamespace(config=config), inbox_send)  # type: ignore[arg-type]
        send, receive = trio.open_memory_channel[object](FORWARD_BUFFER)
        core = FeedCore(settings, [symbol], FeedOutput(send), _Quiet(),
                        contiguous_trade_ids=venue.startswith("binance"))
        got = 0

        async def trading() -> None:
            nonlocal got
            async for item in inbox:  # as the trading actor takes them: single events or batches
                got += len(item.events) if isinstance(item, MarketBatch) else 1

        async with trio.open_nursery() as nursery:
            nursery.start_soon(trading)
            nursery.start_soon(actor._forward, _Ctx(), receive)
            handle = core.handle
            for raw in messages:
                await handle(parse(raw))
            while send.statistics().current_buffer_used or inbox.statistics().current_buffer_used:
                await trio.lowlevel.checkpoint()
            nursery.cancel_scope.cancel()
        assert got >= len(messages), (got, len(messages))

    return lambda: trio.run(main)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=300_000)
    args = parser.parse_args()
    n = args.messages
    b_msgs, h_msgs = binance_messages(n), hyperliquid_messages(n)
    rate("binance aggTrade: parse only", n, parse_only(b_msgs, binance.parse_message))
    rate("binance aggTrade: parse + bars (6 timeframes)", n,
         parse_and_bars(b_msgs, binance.parse_message, "BTCUSDT"))
    rate("hyperliquid trades: parse + bars", n, parse_and_bars(h_msgs, hyperliquid.parse_message, "BTC"))
    rate("hyperliquid: daemon path", n, daemon_path(h_msgs, "hyperliquid", "BTC", hyperliquid.parse_message))
    goal = rate("binance aggTrade: daemon path (parse+core+channels)", n, daemon_path(b_msgs))
    print(f"goal 100,000 msg/s on the daemon path: {'met' if goal >= 100_000 else 'NOT met'} "
          f"({goal:,.0f} msg/s on one core)")


if __name__ == "__main__":
    main()
