"""BinanceVenue (the transport) against the fake Binance futures venue on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio
from fakevenue.binance_exchange import Symbol
from fakevenue.binance_exchange_server import Failure, FakeBinanceFutures

from fractald.core.execution.events import OrderIntent
from fractald.core.execution.orders import OrderEvent, OrderType, client_order_id
from fractald.core.execution.reports import VenueReport
from fractald.core.models import Side
from fractald.errors import AuthError, FatalError, NetworkError, RateLimited, VenueUnavailable
from fractald.venues.binance import Market
from fractald.venues.binance_rest import BinanceRest
from fractald.venues.binance_venue import BinanceVenue
from fractald.venues.interface import Venue
from fractald.venues.ws import Backoff

KEY, SECRET = "venueTestKey0001", "venueTestSecret0001"
FAST = Backoff(0.01, 0.05)


def make_venue(fake: FakeBinanceFutures, *, secret: str = SECRET, **kw: object) -> BinanceVenue:
    rest = BinanceRest(Market.FUTURES, fake.rest_url, KEY, secret, backoff=FAST, timeout_s=2.0)
    return BinanceVenue(Market.FUTURES, rest, fake.ws_url, ["BTCUSDT"], backoff=FAST,
                        **kw)  # type: ignore[arg-type]


@asynccontextmanager
async def running() -> AsyncIterator[tuple[FakeBinanceFutures, BinanceVenue, trio.Nursery]]:
    fake = FakeBinanceFutures([Symbol("BTCUSDT")], {"BTCUSDT": 50_000.0})
    fake.add_account(KEY, SECRET, wallet=10_000.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(fake.run)
        venue = make_venue(fake, leverage={"BTCUSDT": 5}, margin_type={"BTCUSDT": "isolated"})
        await venue.start()
        yield fake, venue, nursery
        nursery.cancel_scope.cancel()


def order(role: str, order_type: OrderType, side: Side = Side.BUY, qty: float = 0.01,
          **kw: object) -> OrderIntent:
    return OrderIntent(ts=1, client_order_id=client_order_id("sig-7", role), symbol="BTCUSDT",
                       side=side, order_type=order_type, quantity=qty, role=role,
                       **kw)  # type: ignore[arg-type]


async def next_report(receive: trio.MemoryReceiveChannel[VenueReport],
                      kinds: tuple[OrderEvent, ...]) -> VenueReport:
    with trio.fail_after(5):
        async for report in receive:
            if report.kind in kinds:
                return report
    raise AssertionError("stream ended")


async def test_start_sets_leverage_and_margin_and_refuses_unknown_symbols() -> None:
    async with running() as (fake, venue, _):
        assert isinstance(venue, Venue)
        acct = fake.exchange.accounts[KEY]
        assert acct.leverage == {"BTCUSDT": 5} and acct.margin_type == {"BTCUSDT": "isolated"}
        assert await venue.symbol_settings() == {"BTCUSDT": (5, "isolated")}
        assert venue.specs["BTCUSDT"].min_notional == 100.0
        await venue.apply_symbol_settings()  # again: "No need to change margin type" is fine
        wrong = make_venue(fake)
        wrong.symbols = ["btcusdt"]
        with pytest.raises(FatalError, match="did you mean 'BTCUSDT'"):
            await wrong.start()


async def test_entry_fill_and_stop_triggered_by_a_price_jump_reach_the_engine_under_our_ids() -> None:
    async with running() as (fake, venue, nursery):
        send, receive = trio.open_memory_channel[VenueReport](100)
        nursery.start_soon(venue.stream_reports, send)
        with trio.fail_after(5):
            while fake.stream_connections == 0:
                await trio.sleep(0.01)
        entry = order("entry", OrderType.MARKET)
        ack = await venue.submit(entry)
        assert ack.kind is OrderEvent.ACCEPT and ack.client_order_id == entry.client_order_id
        fill = await next_report(receive, (OrderEvent.FILL,))
        assert fill.client_order_id == entry.client_order_id and fill.quantity == 0.01
        assert fill.trade_id and fill.fee > 0
        assert await venue.positions() == {"BTCUSDT": 0.01}

        stop = order("stop", OrderType.STOP_MARKET, Side.SELL, trigger_price=49_000.0,
                     reduce_only=True)
        assert (await venue.submit(stop)).kind is OrderEvent.ACCEPT
        assert [o.client_order_id for o in await venue.open_orders()] == [stop.client_order_id]
        fresh = make_venue(fake)  # after a restart nothing is remembered: found by client id
        found = await fresh.order_status(stop.client_order_id, "BTCUSDT")
        assert found is not None and found.status == "open" and found.trigger_price == 49_000.0
        assert await fresh.order_status("never-sent", "BTCUSDT") is None

        fake.set_price("BTCUSDT", 48_000.0)
        trig = await next_report(receive, (OrderEvent.TRIGGER,))
        stopped = await next_report(receive, (OrderEvent.FILL,))
        assert trig.client_order_id == stopped.client_order_id == stop.client_order_id
        assert stopped.price == 48_000.0
        assert await venue.positions() == {}
        fills = await fresh.fills_since(0)
        assert [f.client_order_id for f in fills] == [entry.client_order_id, stop.client_order_id]
        acct = fake.exchange.accounts[KEY]
        assert acct.submissions[entry.client_order_id] == acct.submissions[stop.client_order_id] == 1


async def test_refusals_are_reports_not_exceptions() -> None:
    async with running() as (_, venue, _n):
        broke = await venue.submit(order("entry", OrderType.MARKET, qty=100.0))
        assert broke.kind is OrderEvent.REJECT and broke.reason.startswith("binance:-2019")
        tiny = await venue.submit(order("tiny", OrderType.LIMIT, qty=0.001, price=50_000.0))
        assert tiny.kind is OrderEvent.REJECT and tiny.reason.startswith("below_min_notional")
        resting = order("tp1", OrderType.LIMIT, price=45_000.0)
        assert (await venue.submit(resting)).kind is OrderEvent.ACCEPT
        moved = await venue.modify(resting.client_order_id, "BTCUSDT", price=44_000.0)
        assert moved.kind is OrderEvent.UPDATE
        status = await venue.order_status(resting.client_order_id, "BTCUSDT")
        assert status is not None and status.price == 44_000.0
        assert (await venue.cancel(resting.client_order_id, "BTCUSDT")).kind is OrderEvent.CANCEL
        again = await venue.cancel(resting.client_order_id, "BTCUSDT")
        assert again.kind is OrderEvent.CANCEL_REJECT and "-2011" in again.reason
        acct = await venue.account()
        assert acct.equity == pytest.approx(10_000.0) and acct.currency == "USDT"


async def test_clock_skew_is_resynced_and_the_request_sent_again() -> None:
    async with running() as (fake, venue, _):
        fake.skew_ms = 20_000
        assert (await venue.account()).equity > 0
        assert venue.rest.clock_resyncs == 1
        assert abs(venue.rest.clock.offset_ms - 20_000) < 1_000


async def test_rate_limits_5xx_and_lost_replies() -> None:
    async with running() as (fake, venue, _):
        fake.fail_next = [Failure(429, -1003, "Too many requests.", retry_after_s=0.2)]
        assert (await venue.account()).equity > 0  # a read waits out Retry-After and retries
        assert venue.rest.rate_limited == 1
        fake.fail_next = [Failure(429, -1003, "Too many requests.", retry_after_s=30)]
        with pytest.raises(RateLimited):
            await venue.submit(order("entry", OrderType.MARKET))
        venue.rest.hold_until = 0.0
        fake.fail_next = [Failure(503)]
        with pytest.raises(VenueUnavailable):
            await venue.submit(order("entry", OrderType.MARKET))
        posts = [entry for entry in fake.log if entry[0] == "POST" and entry[1] == "/fapi/v1/order"]
        assert len(posts) == 2  # an order is never resent by the transport
        fake.lose_next_order_replies = 1
        lost = order("entry", OrderType.MARKET)
        with pytest.raises(NetworkError):
            await venue.submit(lost)
        known = await venue.order_status(lost.client_order_id, "BTCUSDT")
        assert known is not None and known.status == "filled"  # it happened: ask, don't resend
        assert fake.exchange.accounts[KEY].submissions[lost.client_order_id] == 1


async def test_wrong_secret_is_fatal_auth_error_naming_the_runbook() -> None:
    async with running() as (fake, _, _n):
        with pytest.raises(AuthError, match="binance-auth-refused"):
            await make_venue(fake, secret="wrong").account()
        fake.exchange.accounts.clear()  # the key was deleted at Binance
        with pytest.raises(AuthError, match="-2015"):
            await make_venue(fake).positions()


async def test_user_stream_survives_drops_and_key_expiry_and_resyncs_the_gap() -> None:
    async with running() as (fake, venue, nursery):
        venue.keepalive_s = 0.2
        venue.listen_key = venue.listen_key.__class__(interval_s=0.2)
        send, receive = trio.open_memory_channel[VenueReport](100)
        nursery.start_soon(venue.stream_reports, send)
        with trio.fail_after(5):
            while fake.stream_connections == 0 or fake.keepalives == 0:
                await trio.sleep(0.01)
        resting = order("tp1", OrderType.LIMIT, price=49_500.0)
        await venue.submit(resting)
        fake.drop_user_streams()
        fake.set_price("BTCUSDT", 49_400.0)  # fills while the stream is down
        fill = await next_report(receive, (OrderEvent.FILL, OrderEvent.PARTIAL_FILL))
        assert fill.client_order_id == resting.client_order_id and fill.quantity == 0.01
        with trio.fail_after(5):
            while fake.stream_connections < 2:
                await trio.sleep(0.01)
        first_key = venue.listen_key.listen_key
        fake.expire_listen_keys()
        with trio.fail_after(5):  # reconnected with a new key, and resynced after connecting
            while fake.stream_connections < 3 or venue.resyncs < 2:
                await trio.sleep(0.01)
        assert venue.listen_key.listen_key != first_key
        second = order("entry2", OrderType.MARKET)
        await venue.submit(second)
        got = await next_report(receive, (OrderEvent.FILL,))
        assert got.client_order_id == second.client_order_id


@pytest.mark.slow  # over a second: out of the fast suite (issue 16)
async def test_spent_weight_holds_requests_and_a_slow_venue_times_out() -> None:
    async with running() as (fake, venue, _):
        fake.other_weight = 2_300  # of 2,400 a minute: the venue's headers say we are nearly out
        assert (await venue.account()).equity > 0
        assert venue.rest.usage.weight_1m() is not None and venue.rest.usage.weight_1m() >= 2_300
        assert venue.rest.hold_until > trio.current_time()  # paced until the minute rolls over
        venue.rest.max_wait_s = 0.0
        with pytest.raises(RateLimited, match="holding requests"):
            await venue.submit(order("entry", OrderType.MARKET))
        assert not [e for e in fake.log if e[1] == "/fapi/v1/order"]  # nothing left the process
        fake.other_weight, venue.rest.hold_until = 0, 0.0
        fake.latency_s = 3.0  # longer than the client's 2 s timeout
        with pytest.raises(NetworkError, match="Timeout"):
            await venue.submit(order("entry", OrderType.MARKET))


async def test_a_stop_is_moved_by_cancel_and_replace_under_the_same_client_id() -> None:
    async with running() as (fake, venue, nursery):
        send, receive = trio.open_memory_channel[VenueReport](100)
        nursery.start_soon(venue.stream_reports, send)
        with trio.fail_after(5):
            while fake.stream_connections == 0:
                await trio.sleep(0.01)
        await venue.submit(order("entry", OrderType.MARKET, qty=0.02))
        stop = order("stop", OrderType.STOP_MARKET, Side.SELL, qty=0.02, trigger_price=48_000.0,
                     reduce_only=True)
        await venue.submit(stop)
        accepted = await next_report(receive, (OrderEvent.ACCEPT,))
        while accepted.client_order_id != stop.client_order_id:
            accepted = await next_report(receive, (OrderEvent.ACCEPT,))
        moved = await venue.modify(stop.client_order_id, "BTCUSDT", quantity=0.01,
                                   trigger_price=49_000.0)
        assert moved.kind is OrderEvent.UPDATE and moved.trigger_price == 49_000.0
        held = await venue.order_status(stop.client_order_id, "BTCUSDT")
        assert held is not None and (held.quantity, held.trigger_price) == (0.01, 49_000.0)
        assert [o.client_order_id for o in await venue.open_orders()] == [stop.client_order_id]
        fake.set_price("BTCUSDT", 48_900.0)  # fires the moved stop: 0.01 closed, 0.01 left
        fired = await next_report(receive, (OrderEvent.FILL, OrderEvent.CANCEL))
        assert fired.kind is OrderEvent.FILL and fired.client_order_id == stop.client_order_id
        assert fired.quantity == 0.01 and await venue.positions() == {"BTCUSDT": 0.01}
        stop2 = order("stop2", OrderType.STOP_MARKET, Side.SELL, trigger_price=48_000.0,
                      reduce_only=True)
        await venue.submit(stop2)
        gone = await venue.modify(stop2.client_order_id, "BTCUSDT", trigger_price=49_500.0)
        assert gone.kind is OrderEvent.CANCEL and "replace_failed: binance:-2021" in gone.reason
        unknown = await venue.modify("never-placed", "BTCUSDT", trigger_price=1.0)
        assert unknown.kind is OrderEvent.UPDATE_REJECT


async def test_fills_since_pages_by_id_and_finds_orders_placed_before_the_window(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import fractald.venues.binance_orders as bo

    async with running() as (fake, venue, _):
        old = order("old-limit", OrderType.LIMIT, Side.BUY, price=49_000.0)
        await venue.submit(old)
        await trio.sleep(0.01)
        since = fake.now_ms() + 1  # after the limit was placed
        await trio.sleep(0.01)
        for role in ("a", "b", "c"):
            await venue.submit(order(role, OrderType.MARKET, Side.BUY))
        fake.set_price("BTCUSDT", 48_900.0)  # the old limit fills now, inside the window
        monkeypatch.setattr(bo, "TRADES_PAGE", 2)
        fresh = make_venue(fake)
        fills = await fresh.fills_since(since)
        assert sorted(f.client_order_id for f in fills) == sorted(
            order(r, OrderType.MARKET).client_order_id for r in ("a", "b", "c", "old-limit"))
        assert len({f.trade_id for f in fills}) == 4
        trade_pages = [e for e in fake.log if e[1] == "/fapi/v1/userTrades"]
        assert len(trade_pages) == 3  # 2 + 2 + 0


async def test_a_post_only_that_would_take_is_refused_with_binance_code_5022() -> None:
    async with running() as (fake, venue, _):
        crossing = order("entry", OrderType.LIMIT, price=50_100.0, post_only=True)
        refused = await venue.submit(crossing)
        assert refused.kind is OrderEvent.REJECT and "-5022" in refused.reason
        assert fake.exchange.accounts[KEY].orders == {}  # never recorded, as Binance says
        resting = order("entry2", OrderType.LIMIT, price=49_900.0, post_only=True)
        assert (await venue.submit(resting)).kind is OrderEvent.ACCEPT
        placed = next(iter(fake.exchange.accounts[KEY].orders.values()))
        assert placed.tif == "GTX" and placed.status == "NEW"
