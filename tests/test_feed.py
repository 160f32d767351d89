"""FeedSettings validation and the output policy: bars/trades never dropped, quotes conflated."""

from __future__ import annotations

import pytest
import trio
import trio.lowlevel
import trio.testing
from fakevenue.harness import RecordingLog

from fractald.core.models import Bar, Quote, Side, TradeTick
from fractald.venues.events import Unparsed, UnparsedReason
from fractald.venues.feed import FeedCore, FeedOutput, FeedSettings, VenueName

T0 = 1_700_006_400_000


def test_settings_defaults_are_the_embedded_replay() -> None:
    s = FeedSettings()
    assert s.venue is VenueName.REPLAY and s.replay_path is None and s.replay_speed == 0.0
    assert s.timeframes == ("1m", "5m", "15m", "1h", "4h", "1d")
    assert FeedSettings(timeframes=["1h", "1m", "1h"]).timeframes == ("1m", "1h")  # sorted, unique


@pytest.mark.parametrize("kw, match", [
    ({"venue": "kraken"}, "unknown venue 'kraken'; allowed: replay, hyperliquid, "),
    ({"venue": "binance", "symbols": "BTCUSDT"}, "must be a list of names"),
    ({"venue": "binance", "symbols": ["BTCUSDT", ""]}, "non-empty strings"),
    ({"venue": "binance"}, "needs at least one symbol"),
    ({"timeframes": ["7m"]}, "unknown timeframe '7m'"),
    ({"timeframes": []}, "must not be empty"),
    ({"replay_speed": -1}, "replay_speed must be >= 0"),
    ({"silence_timeout_s": 0}, "silence_timeout_s must be a positive number"),
    ({"grace_s": 60}, "grace_s must be under a minute"),
])
def test_bad_settings_name_the_problem(kw: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        FeedSettings(**kw)


async def test_slow_consumer_gets_every_trade_and_bar_but_only_the_latest_quote() -> None:
    send, receive = trio.open_memory_channel[object](4)
    out = FeedOutput(send)
    core = FeedCore(FeedSettings(venue="binance", symbols=("BTCUSDT",), timeframes=("1m",), grace_s=0),
                    ["BTCUSDT"], out, RecordingLog())
    received: list[object] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(out.pump)
        events: list[object] = []
        for i in range(200):
            events.append(Quote("BTCUSDT", 100 + i, 1, 101 + i, 1, T0 + i * 1000))
            events.append(TradeTick("BTCUSDT", 100.5 + i, 1, Side.BUY, str(i), T0 + i * 1000))
        sender = trio.Event()

        async def produce() -> None:
            await core.handle(events)  # blocks whenever the channel is full: never drops
            sender.set()

        nursery.start_soon(produce)
        await trio.sleep(0.01)
        while not sender.is_set() or receive.statistics().current_buffer_used:
            received.append(await receive.receive())
            await trio.lowlevel.checkpoint()
        await out.flush()
        while receive.statistics().current_buffer_used:
            received.append(receive.receive_nowait())
        nursery.cancel_scope.cancel()
    trades = [r for r in received if isinstance(r, TradeTick)]
    assert [t.trade_id for t in trades] == [str(i) for i in range(200)]
    bars = [r for r in received if isinstance(r, Bar)]
    assert [b.ts_open for b in bars] == [T0 + 60_000 * k for k in range(len(bars))] and len(bars) >= 2
    quotes = [r for r in received if isinstance(r, Quote)]
    assert 1 <= len(quotes) < 200 and out.conflated > 0
    assert quotes[-1].bid == 299  # the latest one is never lost


async def test_garbage_is_counted_in_health_and_logged_sparingly() -> None:
    send, _receive = trio.open_memory_channel[object](1000)
    log = RecordingLog()
    core = FeedCore(FeedSettings(venue="binance", symbols=("BTCUSDT",)), ["BTCUSDT"], FeedOutput(send), log)
    market = await core.handle([Unparsed(UnparsedReason.NOT_JSON, "x", "x")] * 250)
    assert market is False  # garbage is not market data: it does not keep a connection alive
    assert core.symbols["BTCUSDT"].health.unparsed == 250
    assert len(log.events("unparsed_message")) == 12  # the first 10, then every 100th


async def test_a_trade_from_the_future_does_not_drag_the_bar_clock() -> None:
    send, _receive = trio.open_memory_channel[object](1000)
    log = RecordingLog()
    core = FeedCore(FeedSettings(venue="binance", symbols=("BTCUSDT",), timeframes=("1m",)),
                    ["BTCUSDT"], FeedOutput(send), log)
    await core.handle([TradeTick("BTCUSDT", 100, 1, Side.BUY, "1", T0 + 5_000)])
    await core.handle([TradeTick("BTCUSDT", 100, 1, Side.BUY, "2", T0 + 86_400_000)])  # a day ahead
    await core.handle([TradeTick("BTCUSDT", 101, 1, Side.BUY, "3", T0 + 6_000)])
    bars = core.symbols["BTCUSDT"].bars
    assert bars.frontier == T0 and bars.late_trades == 0  # the real trades still count
    refused = log.events("timestamp_from_the_future")[0]
    assert refused["kind"] == "trade" and refused["ts_event"] == T0 + 86_400_000
    assert core.symbols["BTCUSDT"].health.unparsed == 1


@pytest.mark.parametrize("kind", ["quote", "book"])
async def test_any_message_from_the_future_is_refused_and_moves_no_clock(kind: str) -> None:
    from fractald.core.book import BookSnapshot

    send, _receive = trio.open_memory_channel[object](1000)
    log = RecordingLog()
    core = FeedCore(FeedSettings(venue="binance", symbols=("BTCUSDT",), timeframes=("1m",)),
                    ["BTCUSDT"], FeedOutput(send), log)
    for i in range(20):
        await core.handle([TradeTick("BTCUSDT", 100, 1, Side.BUY, str(i), T0 + 5_000 + i)])
    ahead = T0 + 2 * 3_600_000  # two hours ahead, as in the wild
    bad = (Quote("BTCUSDT", 99, 1, 100, 1, ahead) if kind == "quote"
           else BookSnapshot("BTCUSDT", [(99, 1)], [(100, 1)], ahead))
    await core.handle([bad])
    await core.advance()
    bars = core.symbols["BTCUSDT"].bars
    assert bars.frontier == T0 and bars.next_ts == T0  # no hour of placeholder bars
    assert abs(core.venue_now_ms() - (T0 + 5_019)) < 1_000
    await core.handle([TradeTick("BTCUSDT", 101, 1, Side.BUY, "late?", T0 + 6_000)])
    assert bars.late_trades == 0  # real trades still count
    assert log.events("timestamp_from_the_future")[0]["kind"] == kind


def test_the_venue_clock_follows_a_real_change_in_either_direction() -> None:
    from fractald.venues.feed_clock import WINDOW, VenueClock

    clock = VenueClock()
    for i in range(10):
        assert clock.sample(T0 + i * 100, i * 0.1)
    assert clock.now_ms(1.0) == T0 + 1_000
    assert not clock.sample(T0 + 3_600_000, 1.0)  # one outlier ahead: refused, ignored
    assert clock.sample(T0 - 3_600_000, 1.0)  # one behind: harmless, and ignored too
    assert clock.now_ms(1.0) == T0 + 1_000
    for i in range(WINDOW):  # the venue's clock really stepped back 5 s: the estimate follows
        clock.sample(T0 - 5_000 + 1_000 + i, 1.0 + i / 1000)
    assert abs(clock.now_ms(2.0) - (T0 - 5_000 + 2_000)) < 100


async def test_a_local_clock_running_fast_is_reported() -> None:
    send, _receive = trio.open_memory_channel[object](1000)
    log = RecordingLog()
    core = FeedCore(FeedSettings(venue="binance", symbols=("BTCUSDT",), timeframes=("1m",)),
                    ["BTCUSDT"], FeedOutput(send), log, wall_ms=lambda: T0 + 5_000 + 7_000)
    await core.handle([TradeTick("BTCUSDT", 100, 1, Side.BUY, "1", T0 + 5_000)])
    core.publish_health()
    skew = log.events("local_clock_skew")
    assert skew and 6_900 <= skew[0]["local_ahead_ms"] <= 7_100
    assert core.state.clock_skew_ms is not None and core.state.clock_skew_ms > 6_900


async def test_a_crossed_hyperliquid_book_is_an_outlier() -> None:
    from fractald.core.book import BookSnapshot

    send, _receive = trio.open_memory_channel[object](10)
    log = RecordingLog()
    core = FeedCore(FeedSettings(venue="hyperliquid", symbols=("BTC",)), ["BTC"], FeedOutput(send), log)
    await core.handle([BookSnapshot("BTC", [(100, 1)], [(101, 1)], T0)])
    assert core.symbols["BTC"].health.outliers == 0
    await core.handle([BookSnapshot("BTC", [(102, 1)], [(101, 1)], T0 + 1)])
    assert core.symbols["BTC"].health.outliers == 1 and log.events("crossed_book")


async def test_a_trade_after_its_bar_closed_is_counted_and_logged() -> None:
    send, _receive = trio.open_memory_channel[object](1000)
    log = RecordingLog()
    core = FeedCore(FeedSettings(venue="binance", symbols=("BTCUSDT",), timeframes=("1m",), grace_s=1.0),
                    ["BTCUSDT"], FeedOutput(send), log)
    await core.handle([TradeTick("BTCUSDT", 100, 1, Side.BUY, "1", T0 + 5_000)])
    await core.handle([TradeTick("BTCUSDT", 100, 1, Side.BUY, "2", T0 + 61_500)])  # closes minute 0
    await core.handle([TradeTick("BTCUSDT", 99, 1, Side.SELL, "3", T0 + 59_000)])  # too late for it
    assert core.symbols["BTCUSDT"].bars.late_trades == 1
    assert log.events("late_trade")[0]["trade_id"] == "3"
