"""The IBKR market-data feed ([feed] venue = "ibkr") against the fake TWS, through ib_async's own client.

IB's 5 s real-time bars go out at real time, so these tests run on the real
clock; the venue clock is set a few seconds short of a minute boundary
(`VenueTime`) so a minute closes without waiting for one.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import trio

pytest.importorskip("ib_async")

from fakevenue.fake_tws import FakeTWS
from fakevenue.harness import Collected, RecordingLog
from fakevenue.tws_market import VenueTime, bar_of, contract_around, minute_start, record, stream, wave

from fractald.core.models import Bar
from fractald.venues.feed import FeedSettings, FeedState, run_feed

PRICE = wave()


@pytest.fixture
def fake() -> Iterator[FakeTWS]:
    import time

    tws = FakeTWS(price=5000.0, contract=contract_around(time.time())).start()
    try:
        yield tws
    finally:
        tws.stop()


def _settings(fake: FakeTWS, **kw: object) -> FeedSettings:
    base: dict[str, object] = {
        "venue": "ibkr", "symbols": ("MES",), "timeframes": ("1m", "5m"), "ib_port": fake.port,
        "history_bars": 5, "health_interval_s": 0.2, "backoff_base_s": 0.3, "backoff_cap_s": 1.0,
        "max_failures": 30, "backfill_timeout_s": 5.0}
    base.update(kw)
    return FeedSettings(**base)  # type: ignore[arg-type]


def _tape_minute(fake: FakeTWS, minute_s: int) -> Bar:
    [(start, o, h, lo, c, v, n)] = fake.minute_bars(minute_s, minute_s + 60)
    assert n == 12
    return Bar("MES", "1m", start * 1000, o, h, lo, c, v)


async def _until(what: object, limit_s: float) -> None:
    with trio.fail_after(limit_s):
        while not what():  # type: ignore[operator]
            await trio.sleep(0.05)


@pytest.mark.slow  # over a second: out of the fast suite (issue 16)
async def test_history_then_live_minutes_quotes_and_quality(fake: FakeTWS) -> None:
    import time

    minute = minute_start(time.time()) - 600  # the venue's "now" is ten minutes behind ours
    venue = VenueTime.before_minute(minute + 65, 1.0)  # every bar but the last is due already
    record(fake, PRICE, minute - 10 * 60, minute)  # the ten minutes before we came: history only
    got, log = Collected(), RecordingLog()
    send, receive = trio.open_memory_channel[object](64)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_collect, got, receive)
        nursery.start_soon(run_feed, _settings(fake), send, got.beat, log, FeedState())
        await _until(lambda: fake.bar_subscriptions and fake.quote_subscriptions, 15)
        fake.set_quote(4999.75, 12, 5000.25, 9)  # two ticks wide
        await stream(fake, venue, PRICE, minute, minute + 65)  # minute closes with the next one's first bar
        await _until(lambda: any(b.ts_open == minute * 1000 for b in got.bars_of("1m")), 15)
        seen = len(got.health)
        await _until(lambda: got.quotes and len(got.health) > seen + 1, 5)  # health from after the bar
        nursery.cancel_scope.cancel()
    ones = got.bars_of("1m")
    start = (minute - 5 * 60) // 300 * 300  # history_bars 5, from the 5m boundary before
    assert [b.ts_open for b in ones] == list(range(start * 1000, (minute + 60) * 1000, 60_000))
    assert ones == [_tape_minute(fake, b.ts_open // 1000) for b in ones]  # history's and the live one: IB's own
    assert all(b.complete for b in got.bars)
    fives = got.bars_of("5m")
    assert fives and fives[0].ts_open == start * 1000 and fives[0].volume == sum(b.volume for b in ones[:5])
    [(_end, duration, size, rth_only)] = fake.history_requests  # one backfill: the history before the first bar
    assert (size, rth_only, duration) == ("1 min", False, f"{minute - start} S")
    quote = got.quotes[-1]
    assert (quote.bid, quote.bid_size, quote.ask, quote.ask_size) == (4999.75, 12, 5000.25, 9)
    health = got.health[-1]
    # a two-tick spread costs 0.9, and the history fetched at start is a filled gap (0.9, as on every venue)
    assert health.quality == pytest.approx(0.9 * 0.9) and health.gaps_filled == 1
    assert (health.spread_ticks, health.outside_rth) == (2.0, False)  # shown in `fractalctl status`
    assert not log.events("outside_regular_hours") and not log.events("bar_gap")[1:]


async def _collect(got: Collected, receive: trio.MemoryReceiveChannel[object]) -> None:
    async for item in receive:
        got.items.append(item)


@pytest.mark.slow  # over a second: out of the fast suite (issue 16)
async def test_outside_regular_hours_and_a_bad_print_lower_the_quality(fake: FakeTWS) -> None:
    import time

    fake.contract = contract_around(time.time(), liquid=False)
    minute = minute_start(time.time()) - 600
    venue = VenueTime.before_minute(minute + 65, 1.0)
    got, log = Collected(), RecordingLog()
    send, receive = trio.open_memory_channel[object](64)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_collect, got, receive)
        nursery.start_soon(run_feed, _settings(fake, history_bars=0), send, got.beat, log, FeedState())
        await _until(lambda: fake.bar_subscriptions, 15)
        await stream(fake, venue, PRICE, minute, minute + 30)
        fake.push_bar(minute + 30, 5000.0, 5400.0, 4990.0, 5000.0)  # a 1,640-tick range: a bad print
        await stream(fake, venue, PRICE, minute + 35, minute + 65)
        await _until(lambda: any(b.ts_open == minute * 1000 for b in got.bars_of("1m")), 15)
        health_before = len(got.health)
        await _until(lambda: len(got.health) > health_before + 1, 5)
        nursery.cancel_scope.cancel()
    assert log.events("price_outlier") and log.events("outside_regular_hours")
    health = got.health[-1]
    assert health.outliers == 1 and health.outside_rth
    # outside regular hours 0.9, one outlier 0.8, and the minute refetched whole: a filled gap 0.9
    assert health.quality == pytest.approx(0.9 * 0.8 * 0.9) and health.gaps_filled == 1
    [bar] = [b for b in got.bars_of("1m") if b.ts_open == minute * 1000]
    # The minute lacked the bad 5 s bar: history's minute went out instead (IB's tape has the print).
    assert bar == _tape_minute(fake, minute) and bar.high == 5400.0


@pytest.mark.slow
async def test_tws_restart_and_lost_connectivity_are_transient_and_backfilled(fake: FakeTWS) -> None:
    import time

    minute = minute_start(time.time()) - 600
    venue = VenueTime.before_minute(minute + 60, 3.0)
    got, log = Collected(), RecordingLog()
    send, receive = trio.open_memory_channel[object](64)
    state = FeedState()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_collect, got, receive)
        nursery.start_soon(run_feed, _settings(fake, history_bars=0), send, got.beat, log, state)
        await _until(lambda: fake.bar_subscriptions, 15)
        await stream(fake, venue, PRICE, minute, minute + 65)
        await _until(lambda: got.bars_of("1m"), 15)
        # TWS restarts: the socket closes and it takes connections again ten seconds later.
        fake.refuse_connections = True
        fake.drop_all()
        await stream(fake, venue, PRICE, minute + 65, minute + 75)  # onto the tape only
        fake.refuse_connections = False
        await _until(lambda: fake.bar_subscriptions, 15)
        await stream(fake, venue, PRICE, minute + 75, minute + 85)
        # TWS loses IB's servers (1100) for ten seconds, then gets them back (1102).
        fake.lose_market_link()
        await stream(fake, venue, PRICE, minute + 85, minute + 95)
        fake.restore_market_link()
        await stream(fake, venue, PRICE, minute + 95, minute + 125)
        await _until(lambda: any(b.ts_open == (minute + 60) * 1000 for b in got.bars_of("1m")), 20)
        nursery.cancel_scope.cancel()
    ones = got.bars_of("1m")
    assert [b.ts_open for b in ones] == [minute * 1000, (minute + 60) * 1000]
    assert ones[1] == _tape_minute(fake, minute + 60) and ones[1].complete  # the lost 5 s bars came from history
    assert log.events("feed_disconnected") and log.events("feed_connect_failed")
    assert log.events("ibkr_market_link_down")[0]["code"] == 1100
    assert log.events("ibkr_market_link_back")[0]["code"] == 1102
    assert got.health[-1].reconnects >= 2  # the restart and the 1100/1102 spell
    assert any(end for end, _, _, _ in fake.history_requests)


def test_check_config_names_what_an_ibkr_feed_cannot_take() -> None:
    from fractald.config import config_from_dict
    from fractald.errors import ConfigError

    config_from_dict({"feed": {"venue": "ibkr", "symbols": ["MES", "MNQ"]}})  # roots: fine
    with pytest.raises(ConfigError) as bad:
        config_from_dict({"feed": {"venue": "ibkr", "symbols": ["mes", "MES-PERP"], "ib_exchange": "cme"},
                          "broker": {"kind": "ibkr"}, "risk": {"mode": "live"}})
    problems = "\n".join(bad.value.problems)
    assert "config.feed.symbols[0]: 'mes' is not a future's root symbol" in problems
    assert "config.feed.symbols[1]: 'MES-PERP'" in problems and "config.feed.ib_exchange: 'cme'" in problems
    with pytest.raises(ConfigError) as clash:  # the feed and the orders on one TWS with one client id
        config_from_dict({"feed": {"venue": "ibkr", "symbols": ["MES"], "ib_client_id": 17},
                          "broker": {"kind": "ibkr", "ib_client_id": 17}, "risk": {"mode": "live"}})
    assert any(p.startswith("config.feed.ib_client_id: 17 is also broker.ib_client_id") for p in clash.value.problems)
    with pytest.raises(ConfigError) as months:  # bars of one month, orders on another
        config_from_dict({"feed": {"venue": "ibkr", "symbols": ["MNQ"], "ib_roll_days": 3},
                          "broker": {"kind": "ibkr"}, "risk": {"mode": "live"}})
    problems = "\n".join(months.value.problems)
    assert "lacks broker.ib_symbol 'MES'" in problems and "3/CME differ from broker.ib_roll_days" in problems
    config_from_dict({"feed": {"venue": "ibkr", "symbols": ["MES"]}, "broker": {"kind": "ibkr"},
                      "risk": {"mode": "live"}})  # the defaults agree


def test_preflight_asks_tws_for_the_front_month_and_its_clock(fake: FakeTWS, tmp_path: object) -> None:
    from pathlib import Path

    from fractald.preflight import Environment, Status, run_checks

    tmp = Path(str(tmp_path))

    def checks(symbols: str) -> dict[str, object]:
        cfg = tmp / "fractald.toml"
        cfg.write_text(f'[daemon]\nstate_dir = "{tmp / "state"}"\n[feed]\nvenue = "ibkr"\nsymbols = [{symbols}]\n'
                       f'ib_port = {fake.port}\n')
        return {c.name: c for c in run_checks(str(cfg), Environment(env={}, online=lambda: False))}

    good = checks('"MES"')
    assert good["venue"].status is Status.OK and f"127.0.0.1:{fake.port}" in good["venue"].detail
    assert good["symbols"].status is Status.OK and "MES trades as MESZ6 (tick 0.25)" in good["symbols"].detail
    assert good["venue_clock"].status is Status.OK
    bad = checks('"MES", "ZZZ"')
    assert bad["symbols"].status is Status.FAIL and "IBKR knows no ZZZ future on CME" in bad["symbols"].detail
    fake.stop()
    down = checks('"MES"')
    assert down["venue"].status is Status.FAIL and "ibkr-gateway.md" in down["venue"].remedy


@pytest.mark.slow  # over a second: out of the fast suite (issue 16)
async def test_minutes_the_market_was_shut_are_flat_bars_not_gaps(fake: FakeTWS) -> None:
    import time
    from datetime import UTC, datetime, timedelta

    minute = minute_start(time.time()) - 600
    # trading hours with a three-minute break that ended four minutes before the live minute
    day = datetime.fromtimestamp(minute, UTC)
    brk, back = day - timedelta(minutes=7), day - timedelta(minutes=4)
    early, late = day - timedelta(days=1), day + timedelta(days=1)
    fake.contract.trading_hours = (f"{early:%Y%m%d:%H%M}-{brk:%Y%m%d:%H%M};"
                                   f"{back:%Y%m%d:%H%M}-{late:%Y%m%d:%H%M}")
    record(fake, PRICE, minute - 20 * 60, minute - 7 * 60)
    record(fake, PRICE, minute - 4 * 60, minute)  # the break left no bars on IB's tape
    venue = VenueTime.before_minute(minute + 65, 1.0)
    got, log = Collected(), RecordingLog()
    send, receive = trio.open_memory_channel[object](64)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_collect, got, receive)
        nursery.start_soon(run_feed, _settings(fake, history_bars=10), send, got.beat, log, FeedState())
        await _until(lambda: fake.bar_subscriptions, 15)
        await stream(fake, venue, PRICE, minute, minute + 65)
        await _until(lambda: any(b.ts_open == minute * 1000 for b in got.bars_of("1m")), 15)
        nursery.cancel_scope.cancel()
    ones = {b.ts_open // 1000: b for b in got.bars_of("1m")}
    shut = [ones[t] for t in range(minute - 7 * 60, minute - 4 * 60, 60)]
    before = ones[minute - 8 * 60]
    assert all(b.complete and b.volume == 0 and b.open == b.close == before.close for b in shut)
    assert all(b.complete for b in got.bars)
    assert log.events("market_shut_minutes")[0]["minutes"] == 3
    assert log.events("bar_gap")[0]["filled"]


async def test_a_root_ib_does_not_list_stops_the_feed_with_a_config_error(fake: FakeTWS) -> None:
    from fractald.errors import ConfigError

    got, log = Collected(), RecordingLog()
    send, _receive = trio.open_memory_channel[object](64)
    with pytest.raises(ConfigError) as refused, trio.fail_after(20):
        await run_feed(_settings(fake, symbols=("MES", "ZZZ")), send, got.beat, log, FeedState())
    assert refused.value.problems == ["config.feed.symbols: 'ZZZ': IBKR knows no ZZZ future on CME"]
    assert not fake.bar_subscriptions  # nothing subscribed for a feed that cannot run


@pytest.mark.slow
async def test_the_front_month_rolls_when_the_venue_day_comes_within_roll_days_of_expiry() -> None:
    import time
    from datetime import UTC, datetime, timedelta

    import attrs

    now = time.time()
    today = datetime.fromtimestamp(now, UTC).date()
    midnight = int(datetime.combine(today + timedelta(days=1), datetime.min.time(), UTC).timestamp())
    hours = contract_around(now)
    old = attrs.evolve(hours, con_id=1001, local_symbol="MESZ6", expiry=f"{today + timedelta(days=6):%Y%m%d}")
    new = attrs.evolve(hours, con_id=1002, local_symbol="MESH7", expiry=f"{today + timedelta(days=96):%Y%m%d}")
    fake = FakeTWS(contract=old, listed=[new]).start()

    def new_price(ts: int) -> float:
        return PRICE(ts) + 20.0  # the next month trades 20 points over

    got, log = Collected(), RecordingLog()
    send, receive = trio.open_memory_channel[object](64)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_collect, got, receive)
            nursery.start_soon(run_feed, _settings(fake, history_bars=0, ib_roll_days=5), send, got.beat, log,
                               FeedState())
            await _until(lambda: fake.bar_subscriptions, 15)
            assert set(fake.subscribed_con.values()) == {1001}  # six days before expiry: still the old month
            venue = VenueTime.before_minute(midnight, 2.0)  # 23:59:58 on the venue
            for ts in range(midnight - 60, midnight + 65, 5):  # both months trade; we hear the one we follow
                due = ts + 5 - venue.now()
                if due > 0:
                    await trio.sleep(due)
                fake.push_bar(ts, *bar_of(PRICE, ts), con_id=1001)
                fake.push_bar(ts, *bar_of(new_price, ts), con_id=1002)
            await _until(lambda: any(b.ts_open == midnight * 1000 for b in got.bars_of("1m")), 20)
            nursery.cancel_scope.cancel()
    finally:
        fake.stop()
    ones = got.bars_of("1m")
    assert [b.ts_open // 1000 for b in ones] == [midnight - 60, midnight]
    assert ones[0] == _tape_minute(fake, midnight - 60)  # the old month's last minute
    [(start, o, h, lo, c, v, n)] = fake.minute_bars(midnight, midnight + 60, 1002)
    assert ones[1] == Bar("MES", "1m", start * 1000, o, h, lo, c, v) and n == 12  # the new month's, whole
    [rolled] = log.events("front_month_rolled")
    assert (rolled["old"], rolled["new"]) == ("MESZ6", "MESH7")
    # Between the old month's last minute and the new month's first: the step between the
    # months over that last minute (both tapes have it), for the session to back-adjust by.
    from fractald.core.continuous import ContractRolled

    ones_and_rolls = [i for i in got.items if isinstance(i, ContractRolled) or i in ones]
    [(_, _, _, _, old_close, _, _)] = fake.minute_bars(midnight - 60, midnight, 1001)
    [(_, _, _, _, new_close, _, _)] = fake.minute_bars(midnight - 60, midnight, 1002)
    assert ones_and_rolls == [ones[0], ContractRolled("MES", midnight * 1000, "MESZ6", "MESH7",
                                                      new_close - old_close, True), ones[1]]
    assert new_close - old_close == 20.0
    assert 1002 in fake.subscribed_con.values()


@pytest.mark.slow  # over a second: out of the fast suite (issue 16)
async def test_a_restart_after_the_consumers_cursor_refetches_from_there(fake: FakeTWS) -> None:
    import time

    minute = minute_start(time.time()) - 600
    record(fake, PRICE, minute - 30 * 60, minute)
    cursor = (minute - 12 * 60) * 1000  # the trading state covers bars up to twelve minutes ago
    first = cursor // 300_000 * 300_000  # from the start of the widest timeframe's bar holding it
    venue = VenueTime.before_minute(minute + 65, 1.0)
    got, log = Collected(), RecordingLog()
    send, receive = trio.open_memory_channel[object](64)
    settings = _settings(fake, history_bars=0, resume_after_ms=(("MES", cursor),))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_collect, got, receive)
        nursery.start_soon(run_feed, settings, send, got.beat, log, FeedState())
        await _until(lambda: fake.bar_subscriptions, 15)
        await stream(fake, venue, PRICE, minute, minute + 65)
        await _until(lambda: any(b.ts_open == minute * 1000 for b in got.bars_of("1m")), 15)
        nursery.cancel_scope.cancel()
    ones = got.bars_of("1m")
    assert [b.ts_open for b in ones] == list(range(first, (minute + 60) * 1000, 60_000))
    assert ones == [_tape_minute(fake, b.ts_open // 1000) for b in ones] and all(b.complete for b in got.bars)


@pytest.mark.slow
async def test_connectivity_back_with_data_lost_subscribes_everything_again(fake: FakeTWS) -> None:
    """1101: TWS is back in touch with IB's servers but dropped every market-data subscription;
    the feed asks for bars and quotes again, and the minutes of the spell come from history."""
    import time

    minute = minute_start(time.time()) - 600
    venue = VenueTime.before_minute(minute + 120, 25.0)  # bars up to minute+95 are due at once
    got, log = Collected(), RecordingLog()
    send, receive = trio.open_memory_channel[object](64)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_collect, got, receive)
        nursery.start_soon(run_feed, _settings(fake, history_bars=0), send, got.beat, log, FeedState())
        await _until(lambda: fake.bar_subscriptions and fake.quote_subscriptions, 15)
        await stream(fake, venue, PRICE, minute, minute + 65)
        await _until(lambda: got.bars_of("1m"), 15)
        fake.lose_market_link()  # 1100: nothing streams, the tape keeps the bars
        await _until(lambda: log.events("ibkr_market_link_down"), 5)
        await stream(fake, venue, PRICE, minute + 65, minute + 90)
        subscribed = len([m for m in fake.received if m[0] == "50"])
        fake.restore_market_link(data_lost=True)  # 1101: every subscription is gone at TWS
        assert not fake.bar_subscriptions and not fake.quote_subscriptions
        await _until(lambda: fake.bar_subscriptions and fake.quote_subscriptions, 10)
        fake.set_quote(4999.75, 5, 5000.0, 6)  # reaches the feed only through the new subscription
        await stream(fake, venue, PRICE, minute + 90, minute + 125)
        await _until(lambda: any(b.ts_open == (minute + 60) * 1000 for b in got.bars_of("1m")), 20)
        await _until(lambda: any(q.ask_size == 6 for q in got.quotes), 5)
        nursery.cancel_scope.cancel()
    [back] = log.events("ibkr_market_link_back")
    assert (back["code"], back["resubscribed"]) == (1101, True)
    assert len([m for m in fake.received if m[0] == "50"]) == subscribed + 1  # reqRealTimeBars again
    ones = got.bars_of("1m")
    assert [b.ts_open for b in ones] == [minute * 1000, (minute + 60) * 1000]
    assert ones[1] == _tape_minute(fake, minute + 60) and ones[1].complete  # the spell's bars from history
    assert got.health[-1].reconnects >= 1
