"""The live feed against a misbehaving fake Binance venue on 127.0.0.1, on trio's MockClock.

The venue drops the connection, aborts TCP (1006), stalls while open,
sends garbage and an oversized frame, bursts thousands of messages, and
answers REST with 429 + Retry-After. The feed must survive all of it,
reconnect, resubscribe, backfill, and emit every bar exactly once with the
venue's true figures.
"""

from __future__ import annotations

import random

import attrs
import pytest
import trio
import trio.testing
from fakevenue.harness import Collected, RecordingLog
from fakevenue.server import MIN, Event, FakeBinance, FakeHyperliquid, Trade, Trouble, minute_bars

from fractald.core.models import Bar
from fractald.errors import FeedDisconnected
from fractald.venues.feed import FeedSettings, FeedState, run_feed

T0 = 1_700_006_400_000  # 2023-11-15 00:00 UTC
SYMBOL = "BTCUSDT"


def _truth(minutes: int, seed: int = 7) -> list[Trade]:
    rng = random.Random(seed)
    price, trades = 37_000.0, []
    for i in range(int(minutes * 60 / 1.5)):
        ts = T0 + 5_000 + int(i * 1500)  # the feed joins at 0:00, the first trade is at 0:05
        if ts >= T0 + minutes * MIN:
            break
        price = round(price + rng.uniform(-5, 5), 2)
        trades.append(Trade(ts, price, round(rng.uniform(0.001, 2.0), 3), rng.random() < 0.5))
    # A burst of a thousand trades in one millisecond at 9:10.
    burst_ts = T0 + 9 * MIN + 10_000
    trades += [Trade(burst_ts, round(price + (k % 7) * 0.01, 2), 0.001, False) for k in range(1000)]
    return sorted(trades, key=lambda t: t.ts)


def _truth_bars(trades: list[Trade], minutes: int) -> list[Bar]:
    rows = minute_bars(trades, SYMBOL)
    return [Bar(SYMBOL, "1m", r[0], r[1], r[2], r[3], r[4], r[5]) for m, r in sorted(rows.items())
            if m < T0 + minutes * MIN]


def _settings(fake: FakeBinance, **kw: object) -> FeedSettings:
    base: dict[str, object] = {
        "venue": "binance-futures", "symbols": ("btcusdt",), "timeframes": ("1m", "5m"),
        "ws_url": fake.ws_url, "rest_url": fake.rest_url, "silence_timeout_s": 10.0, "grace_s": 1.0,
        "backoff_base_s": 0.2, "backoff_cap_s": 2.0, "max_frame_bytes": 65_536, "health_interval_s": 1.0}
    base.update(kw)
    return FeedSettings(**base)  # type: ignore[arg-type]


async def _run_until(fake: FakeBinance, done, limit_s: float, **settings: object):
    got, log = Collected(), RecordingLog()
    send, receive = trio.open_memory_channel[object](32)
    async with trio.open_nursery() as nursery:
        await nursery.start(fake.run)  # the ports are known from here on
        nursery.start_soon(got.consume, receive)
        nursery.start_soon(run_feed, _settings(fake, **settings), send, got.beat, log)
        with trio.move_on_after(limit_s):
            while not done(got):
                await trio.sleep(1.0)
        nursery.cancel_scope.cancel()
    return got, log


@pytest.mark.slow
async def test_feed_survives_every_misbehaviour_and_emits_each_true_bar_once(
        mock_clock: trio.testing.MockClock) -> None:
    mock_clock.autojump_threshold = 0.001
    minutes = 12
    truth = _truth(minutes)
    trouble = [Event(T0 + 2 * MIN + 10_000, Trouble.DROP),
               Event(T0 + 3 * MIN + 40_000, Trouble.ABORT),
               Event(T0 + 5 * MIN, Trouble.STALL, 30.0),
               Event(T0 + 6 * MIN + 30_000, Trouble.GARBAGE),
               Event(T0 + 7 * MIN, Trouble.OVERSIZED, 200_000),
               Event(T0 + 8 * MIN, Trouble.BURST, 3000)]
    venue = FakeBinance(truth, t0_ms=T0, trouble=trouble, rest_429_first=2, retry_after_s=3.0)
    want = _truth_bars(truth, minutes)

    got, log = await _run_until(venue, lambda g: len(g.bars_of("1m")) >= minutes, limit_s=20 * 60)

    ones = got.bars_of("1m")
    opens = [b.ts_open for b in ones]
    assert opens == list(range(T0, opens[-1] + MIN, MIN)), "a hole or a duplicate"
    assert ones[:minutes] == want  # every bar, once, with the venue's true figures, complete
    fives = got.bars_of("5m")
    assert [b.ts_open for b in fives[:2]] == [T0, T0 + 5 * MIN] and all(b.complete for b in fives[:2])
    assert fives[1].volume == pytest.approx(sum(b.volume for b in want[5:10]))

    # Reconnected after the drop, the abort, the stall and the oversized frame; resubscribed each time.
    assert venue.connections == 5
    assert all(sub == ["btcusdt@aggTrade", "btcusdt@bookTicker", "btcusdt@kline_1m"]
               for sub in venue.subscriptions)
    reasons = [e["reason"] for e in log.events("feed_disconnected")]
    assert reasons == ["closed", "closed", "silent", "oversized"]

    # REST: 429 twice, each retry only after Retry-After.
    statuses = [s for _, _, s in venue.rest_log]
    assert statuses[:3] == [429, 429, 200]
    assert venue.rest_log[1][0] - venue.rest_log[0][0] >= 3.0
    assert venue.rest_log[2][0] - venue.rest_log[1][0] >= 3.0

    ids = [t.trade_id for t in got.trades]
    assert len(ids) == len(set(ids)) and len(ids) == venue.sent_trades
    health = [h for h in got.health if h.symbol == SYMBOL][-1]
    assert health.reconnects == 4 and health.unparsed == 4
    assert health.gaps_found >= 4 and health.gaps_filled == health.gaps_found
    assert got.beats > 60


@pytest.mark.slow  # over a second: out of the fast suite (issue 16)
async def test_rest_down_for_good_marks_bars_incomplete_instead_of_inventing(
        mock_clock: trio.testing.MockClock) -> None:
    mock_clock.autojump_threshold = 0.001
    truth = _truth(4)
    venue = FakeBinance(truth, t0_ms=T0, trouble=[Event(T0 + 2 * MIN + 10_000, Trouble.DROP)],
                        rest_429_first=10_000, retry_after_s=100.0)
    got, log = await _run_until(venue, lambda g: len(g.bars_of("1m")) >= 4, limit_s=10 * 60)
    ones = got.bars_of("1m")[:4]
    want = _truth_bars(truth, 4)
    assert [b.ts_open for b in ones] == [b.ts_open for b in want]
    assert not ones[0].complete  # joined mid-minute, REST refused: partial, marked
    assert ones[1] == want[1]  # a whole minute seen live needs no REST
    assert not ones[2].complete  # the drop cut it; REST could not fill it
    assert log.events("backfill_failed")[0]["error"] == "rate_limited"
    health = [h for h in got.health if h.symbol == SYMBOL][-1]
    assert health.gaps_filled < health.gaps_found and health.quality < 0.6


async def test_venue_that_never_answers_raises_feed_disconnected(
        autojump_clock: trio.testing.MockClock) -> None:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    for listener in listeners:
        await listener.aclose()  # nothing listens there now: every connect is refused
    settings = FeedSettings(venue="binance", symbols=("BTCUSDT",), ws_url=f"ws://127.0.0.1:{port}/stream",
                            rest_url=f"http://127.0.0.1:{port}", max_failures=3, backoff_base_s=0.5)
    send, _receive = trio.open_memory_channel[object](8)
    log = RecordingLog()
    with pytest.raises(FeedDisconnected, match="3 connection attempts in a row failed"):
        await run_feed(settings, send, lambda: None, log)
    assert len(log.events("ws_reconnecting")) == 2


@pytest.mark.slow
async def test_hyperliquid_feed_pings_resubscribes_and_replaces_a_connection_that_only_answers_pings(
        mock_clock: trio.testing.MockClock) -> None:
    mock_clock.autojump_threshold = 0.001
    minutes = 6
    truth = [Trade(t.ts, t.price, t.size, t.buyer_maker) for t in _truth(minutes) if t.ts < T0 + minutes * MIN]
    # Silent for 100 s from 2:00 while still answering every ping.
    venue = FakeHyperliquid(truth, t0_ms=T0, trouble=[Event(T0 + 2 * MIN, Trouble.STALL, 100.0),
                                                      Event(T0 + 4 * MIN, Trouble.ABORT)])
    got, log = await _run_until(venue, lambda g: len(g.bars_of("1m")) >= minutes, limit_s=15 * 60,
                                venue="hyperliquid", symbols=("BTC",), silence_timeout_s=45.0)
    want = [attrs.evolve(b, symbol="BTC") for b in _truth_bars(truth, minutes)]
    assert got.bars_of("1m")[:minutes] == want
    assert venue.connections == 3
    assert all(subs == [{"type": "trades", "coin": "BTC"}, {"type": "bbo", "coin": "BTC"},
                        {"type": "candle", "coin": "BTC", "interval": "1m"}]
               for subs in venue.subscriptions)
    assert venue.pings >= 3  # {"method": "ping"} every 30 s: the stall lasted long enough for some
    assert [e["reason"] for e in log.events("feed_disconnected")] == ["silent", "closed"]
    assert all(path == "/info" and status == 200 for _, path, status in venue.rest_log)
    btc = [h for h in got.health if h.symbol == "BTC"]
    assert any(h.stale and h.quality == 0.0 for h in btc)  # said so while the stream was stuck
    assert not btc[-1].stale and btc[-1].reconnects == 2


@pytest.mark.slow  # over a second: out of the fast suite (issue 16)
async def test_a_restarted_feed_with_its_state_carries_on_without_a_hole(
        mock_clock: trio.testing.MockClock) -> None:
    mock_clock.autojump_threshold = 0.001
    minutes = 6
    truth = [t for t in _truth(minutes) if t.ts < T0 + minutes * MIN]
    venue = FakeBinance(truth, t0_ms=T0)
    got, log = Collected(), RecordingLog()
    state = FeedState()
    send, receive = trio.open_memory_channel[object](32)
    async with trio.open_nursery() as nursery:
        await nursery.start(venue.run)
        nursery.start_soon(got.consume, receive)
        settings = _settings(venue)
        # First run dies at 2:20 (the supervisor cancels it), the restart comes 70 s later.
        with trio.move_on_at(140.0):
            await run_feed(settings, send.clone(), got.beat, log, state)
        await trio.sleep(70.0)
        nursery.start_soon(run_feed, settings, send, got.beat, log, state)
        while len(got.bars_of("1m")) < minutes:
            await trio.sleep(1.0)
        nursery.cancel_scope.cancel()
    assert got.bars_of("1m")[:minutes] == _truth_bars(truth, minutes)
    assert [e["resumed"] for e in log.events("feed_started")] == [False, True]


@pytest.mark.slow  # over a second: out of the fast suite (issue 16)
async def test_binance_book_syncs_from_a_snapshot_and_resyncs_after_a_lost_delta(
        mock_clock: trio.testing.MockClock) -> None:
    mock_clock.autojump_threshold = 0.001
    truth = [t for t in _truth(4) if t.ts < T0 + 4 * MIN]
    venue = FakeBinance(truth, t0_ms=T0, trouble=[Event(T0 + 1 * MIN, Trouble.SKIP_DEPTH),
                                                  Event(T0 + 2 * MIN + 30_000, Trouble.DROP)])
    got, log = await _run_until(venue, lambda g: len(g.bars_of("1m")) >= 4, limit_s=8 * 60, book=True)
    assert all("btcusdt@depth@100ms" in subs for subs in venue.subscriptions)
    depth_requests = [t for t, path, _ in venue.rest_log if path == "/fapi/v1/depth"]
    # One snapshot at start, one after the lost delta, one after the reconnect: no more.
    assert len(depth_requests) == 3
    assert len(log.events("book_gap")) == 1
    assert len(log.events("book_synced")) == 3  # and each snapshot brought the book back in step
    health = [h for h in got.health if h.symbol == SYMBOL][-1]
    assert health.outliers == 0  # the synced book never crossed
    assert got.bars_of("1m")[:4] == _truth_bars(truth, 4)


@pytest.mark.slow  # over a second: out of the fast suite (issue 16)
async def test_public_403_and_400_are_the_venue_refusing_not_an_auth_failure(
        mock_clock: trio.testing.MockClock) -> None:
    mock_clock.autojump_threshold = 0.001
    truth = [t for t in _truth(3) if t.ts < T0 + 3 * MIN]
    # Binance's WAF answers 403 to the handshake twice, then REST klines 403 (retried) and 400.
    venue = FakeBinance(truth, t0_ms=T0, ws_refuse=[403, 403], rest_refuse=[403, 400])
    got, log = await _run_until(venue, lambda g: len(g.bars_of("1m")) >= 3, limit_s=6 * 60)
    assert venue.handshakes_refused == 2 and venue.connections == 1
    assert [e["reason"] for e in log.events("ws_reconnecting")][:2] == ["connect_failed"] * 2
    assert [s for _, path, s in venue.rest_log if path.endswith("/klines")][:2] == [403, 400]
    failed = log.events("backfill_failed")
    assert failed[0]["error"] == "venue_refused" and "HTTP 400" in failed[0]["message"]
    assert got.bars_of("1m")[1:3] == _truth_bars(truth, 3)[1:3]  # the feed carried on


def test_a_4xx_is_auth_only_where_credentials_were_sent() -> None:
    import httpx

    from fractald.errors import AuthError, FatalError, VenueRefused, classify

    def status(code: int) -> httpx.HTTPStatusError:
        request = httpx.Request("GET", "http://127.0.0.1/fapi/v1/klines")
        return httpx.HTTPStatusError("x", request=request, response=httpx.Response(code, request=request))

    assert isinstance(classify(status(403)), AuthError)  # a signed call: credentials refused
    assert type(classify(status(400))) is FatalError
    for code in (401, 403, 400, 404):
        assert isinstance(classify(status(code), public=True), VenueRefused)


@pytest.mark.slow  # over a second: out of the fast suite (issue 16)
async def test_trades_lost_while_connected_are_noticed_by_their_ids_and_the_bar_refetched(
        mock_clock: trio.testing.MockClock) -> None:
    mock_clock.autojump_threshold = 0.001
    truth = [t for t in _truth(4) if t.ts < T0 + 4 * MIN]
    venue = FakeBinance(truth, t0_ms=T0, trouble=[Event(T0 + 2 * MIN + 20_000, Trouble.LOSE_TRADES, 5)])
    got, log = await _run_until(venue, lambda g: len(g.bars_of("1m")) >= 4, limit_s=8 * 60)
    assert venue.connections == 1  # the connection never dropped
    assert got.bars_of("1m")[:4] == _truth_bars(truth, 4)  # minute 2 is whole again, and complete
    missing = log.events("trades_missing")
    assert len(missing) == 1 and missing[0]["missing"] == 5 and missing[0]["bars_already_out"] == 0
    rest_windows = [e for e in log.events("bar_gap") if e["start_ms"] == T0 + 2 * MIN]
    assert rest_windows and rest_windows[0]["filled"]


@pytest.mark.slow  # over a second: out of the fast suite (issue 16)
async def test_hyperliquid_bar_that_missed_trades_is_repaired_from_the_venue_candle(
        mock_clock: trio.testing.MockClock) -> None:
    mock_clock.autojump_threshold = 0.001
    truth = [t for t in _truth(4) if t.ts < T0 + 4 * MIN]
    venue = FakeHyperliquid(truth, t0_ms=T0, trouble=[Event(T0 + 2 * MIN + 20_000, Trouble.LOSE_TRADES, 5)])
    got, log = await _run_until(venue, lambda g: len(g.bars_of("1m")) >= 4, limit_s=8 * 60,
                                venue="hyperliquid", symbols=("BTC",))
    want = [attrs.evolve(b, symbol="BTC") for b in _truth_bars(truth, 4)]
    assert got.bars_of("1m")[:4] == want  # tids do not count up: the venue's candle told
    assert log.events("bar_repaired_from_venue_candle")
    health = [h for h in got.health if h.symbol == "BTC"][-1]
    assert health.gaps_filled >= 1 and health.quality < 1.0  # the score says a bar was wrong


async def test_a_live_restart_backfills_from_the_consumers_cursor_before_live_bars(
        mock_clock: trio.testing.MockClock) -> None:
    mock_clock.autojump_threshold = 0.001
    minutes = 10
    truth = [t for t in _truth(minutes) if t.ts < T0 + minutes * MIN]
    venue = FakeBinance(truth, t0_ms=T0)
    got, log = Collected(), RecordingLog()
    send, receive = trio.open_memory_channel[object](32)
    async with trio.open_nursery() as nursery:
        await nursery.start(venue.run)
        nursery.start_soon(got.consume, receive)
        await trio.sleep(7 * 60 + 30)  # the daemon was down; its ledger covers bars up to 2:00
        settings = _settings(venue, resume_after_ms={SYMBOL: T0 + 2 * MIN})
        nursery.start_soon(run_feed, settings, send, got.beat, log)
        while len(got.bars_of("1m")) < 9:
            await trio.sleep(1.0)
        nursery.cancel_scope.cancel()
    ones = got.bars_of("1m")
    # From the 5m boundary holding the cursor, every bar the daemon was down for, in order, whole.
    assert ones[:9] == _truth_bars(truth, 9)
    assert got.bars_of("5m")[0] == Bar(SYMBOL, "5m", T0, *_five(truth, T0))
    gap = log.events("bar_gap")[0]
    assert gap["start_ms"] == T0 and gap["filled"]


def _five(trades: list[Trade], start: int) -> tuple[float, float, float, float, float]:
    inside = [t for t in trades if start <= t.ts < start + 5 * MIN]
    return (inside[0].price, max(t.price for t in inside), min(t.price for t in inside), inside[-1].price,
            pytest.approx(sum(t.size for t in inside)))


@pytest.mark.slow  # over a second: out of the fast suite (issue 16)
async def test_a_gap_rest_could_not_give_is_asked_for_again_and_the_quality_recovers(
        mock_clock: trio.testing.MockClock) -> None:
    mock_clock.autojump_threshold = 0.001
    truth = [t for t in _truth(8) if t.ts < T0 + 8 * MIN]
    # One 429 asking for 100 s: longer than the backfill may wait, so the first bar goes out unfilled.
    venue = FakeBinance(truth, t0_ms=T0, rest_429_first=1, retry_after_s=100.0)
    got, log = await _run_until(venue, lambda g: len(g.bars_of("1m")) >= 7, limit_s=10 * 60)
    assert not got.bars_of("1m")[0].complete  # went out marked: the stream did not wait
    refilled = log.events("gap_refilled")
    assert refilled and refilled[0]["start_ms"] == T0
    health = [h for h in got.health if h.symbol == SYMBOL][-1]
    assert health.gaps_filled == health.gaps_found and health.quality >= 0.8  # no longer halved


@pytest.mark.slow  # over a second: out of the fast suite (issue 16)
async def test_small_things_greeting_stale_log_and_a_planned_rotation(
        mock_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch) -> None:
    from fractald.venues import binance

    mock_clock.autojump_threshold = 0.001
    monkeypatch.setattr(binance, "MAX_CONNECTION_S", 170.0)  # Binance's 23 h rotation, sooner
    truth = [t for t in _truth(5) if t.ts < T0 + 5 * MIN]
    venue = FakeBinance(truth, t0_ms=T0, trouble=[Event(T0 + 3 * MIN + 10_000, Trouble.STALL, 15.0)])
    got, log = await _run_until(venue, lambda g: len(g.bars_of("1m")) >= 5, limit_s=8 * 60,
                                stale_after_s=8.0, silence_timeout_s=30.0)
    assert got.bars_of("1m")[:5] == _truth_bars(truth, 5)
    assert venue.connections == 2 and log.events("feed_rotating")  # replaced once, on schedule
    assert not log.events("feed_disconnected")
    health = [h for h in got.health if h.symbol == SYMBOL][-1]
    assert health.reconnects == 0  # a planned rotation is no reconnect: quality keeps
    rotated_at = T0 + 170_000
    assert not [g for g in log.events("bar_gap") if g["start_ms"] <= rotated_at < g["end_ms"]]  # no refetch
    stale = log.events("feed_stale")  # the 15 s stall said so, once, and when it ended
    assert len(stale) == 1 and len(log.events("feed_fresh_again")) == 1


async def test_the_hyperliquid_greeting_is_not_garbage(mock_clock: trio.testing.MockClock) -> None:
    from fractald.venues import hyperliquid
    from fractald.venues.events import SubscriptionAck

    assert isinstance(hyperliquid.parse_message("Websocket connection established.")[0], SubscriptionAck)
    mock_clock.autojump_threshold = 0.001
    truth = [t for t in _truth(3) if t.ts < T0 + 3 * MIN]
    venue = FakeHyperliquid(truth, t0_ms=T0, trouble=[Event(T0 + MIN + 20_000, Trouble.DROP)])
    got, _log = await _run_until(venue, lambda g: len(g.bars_of("1m")) >= 3, limit_s=6 * 60,
                                 venue="hyperliquid", symbols=("BTC",))
    health = [h for h in got.health if h.symbol == "BTC"][-1]
    assert venue.connections == 2 and health.unparsed == 0
    assert health.quality == pytest.approx(0.9 ** (health.reconnects + health.gaps_filled))  # no garbage share
