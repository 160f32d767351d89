"""BinanceVenue on spot against the fake Binance spot venue on 127.0.0.1 (REST /api/v3 and the
WebSocket API's user data subscription): the balance is the position, stops are
STOP_LOSS_LIMIT, no shorting, post-only is LIMIT_MAKER, a lost stream is resynced by REST."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio
from fakevenue.binance_spot_server import FakeBinanceSpot

from fractald.core.execution.events import OrderIntent
from fractald.core.execution.orders import OrderEvent, OrderType, client_order_id
from fractald.core.execution.reports import VenueReport
from fractald.core.models import Side
from fractald.errors import AuthError
from fractald.venues.binance import Market
from fractald.venues.binance_rest import BinanceRest
from fractald.venues.binance_venue import BinanceVenue
from fractald.venues.interface import Venue
from fractald.venues.ws import Backoff

KEY, SECRET = "spotTestKey00001", "spotTestSecret00001"
FAST = Backoff(0.01, 0.05)


def make_venue(fake: FakeBinanceSpot, *, secret: str = SECRET) -> BinanceVenue:
    rest = BinanceRest(Market.SPOT, fake.rest_url, KEY, secret, backoff=FAST, timeout_s=2.0)
    return BinanceVenue(Market.SPOT, rest, fake.ws_api_url, ["BTCUSDT"], backoff=FAST)


@asynccontextmanager
async def running() -> AsyncIterator[tuple[FakeBinanceSpot, BinanceVenue, trio.Nursery]]:
    fake = FakeBinanceSpot()
    fake.add_account(KEY, SECRET, wallet=10_000.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(fake.run)
        venue = make_venue(fake)
        await venue.start()
        yield fake, venue, nursery
        nursery.cancel_scope.cancel()


def order(role: str, order_type: OrderType, side: Side = Side.BUY, qty: float = 0.01,
          **kw: object) -> OrderIntent:
    return OrderIntent(ts=1, client_order_id=client_order_id("sig-s", role), symbol="BTCUSDT",
                       side=side, order_type=order_type, quantity=qty, role=role,
                       **kw)  # type: ignore[arg-type]


async def next_report(receive: trio.MemoryReceiveChannel[VenueReport],
                      kinds: tuple[OrderEvent, ...]) -> VenueReport:
    with trio.fail_after(5):
        async for report in receive:
            if report.kind in kinds:
                return report
    raise AssertionError("stream ended")


async def streaming(fake: FakeBinanceSpot, venue: BinanceVenue, nursery: trio.Nursery,
                    subscriptions: int = 1) -> trio.MemoryReceiveChannel[VenueReport]:
    send, receive = trio.open_memory_channel[VenueReport](100)
    nursery.start_soon(venue.stream_reports, send)
    with trio.fail_after(5):
        while fake.subscriptions < subscriptions:
            await trio.sleep(0.01)
    return receive


async def test_instruments_come_from_spot_filters_and_the_balance_is_the_position() -> None:
    async with running() as (fake, venue, nursery):
        assert isinstance(venue, Venue) and venue.name == "binance-spot"
        spec = venue.specs["BTCUSDT"]
        assert (spec.tick_size, spec.lot_size, spec.min_notional) == (0.01, 0.00001, 5.0)
        receive = await streaming(fake, venue, nursery)
        entry = order("entry", OrderType.MARKET)
        ack = await venue.submit(entry)
        assert ack.kind is OrderEvent.ACCEPT
        fill = await next_report(receive, (OrderEvent.FILL,))
        assert fill.client_order_id == entry.client_order_id and fill.quantity == pytest.approx(0.01)
        # Binance's default: a BUY's commission comes out of the coins bought. The report says
        # so (fee_qty) and values the fee in USDT at the fill price.
        assert fill.fee_qty == pytest.approx(0.01 * 0.001)
        assert fill.fee == pytest.approx(0.01 * 0.001 * 50_000)
        assert await venue.positions() == {"BTCUSDT": pytest.approx(0.01 - fill.fee_qty)}
        account = await venue.account()
        # The quote balance plus the coins at their last price: only the fee is gone.
        assert account.currency == "USDT" and account.equity == pytest.approx(10_000 - 0.5)
        assert account.available == pytest.approx(10_000 - 500)


async def test_a_stop_is_a_stop_loss_limit_that_fires_under_our_id_and_empties_the_balance() -> None:
    async with running() as (fake, venue, nursery):
        receive = await streaming(fake, venue, nursery)
        await venue.submit(order("entry", OrderType.MARKET))
        bought = await next_report(receive, (OrderEvent.FILL,))
        # The whole traded quantity is not held: Binance kept the fee's coins.
        too_many = await venue.submit(order("stop0", OrderType.STOP_MARKET, Side.SELL,
                                            trigger_price=49_000.0, reduce_only=True))
        assert too_many.kind is OrderEvent.REJECT and "-2010" in too_many.reason
        stop = order("stop1", OrderType.STOP_MARKET, Side.SELL, trigger_price=49_000.0,
                     reduce_only=True, qty=bought.quantity - bought.fee_qty)
        ack = await venue.submit(stop)
        assert ack.kind is OrderEvent.ACCEPT
        resting = await venue.order_status(stop.client_order_id, "BTCUSDT")
        assert resting is not None and resting.status == "open" and resting.trigger_price == 49_000
        placed = fake.exchange.accounts[KEY].orders
        spot_stop = next(o for o in placed.values() if o.client_id == stop.client_order_id)
        assert spot_stop.type == "STOP_LOSS_LIMIT" and spot_stop.price == pytest.approx(48_020.0)
        # The stop locks the coins: a target beside it is refused for balance, as at Binance.
        target = order("tp1", OrderType.LIMIT, Side.SELL, price=52_000.0, reduce_only=True)
        refused = await venue.submit(target)
        assert refused.kind is OrderEvent.REJECT and "-2010" in refused.reason
        fake.set_price("BTCUSDT", 48_900.0)
        fill = await next_report(receive, (OrderEvent.FILL,))
        assert fill.client_order_id == stop.client_order_id and fill.price == pytest.approx(48_900.0)
        assert await venue.positions() == {}


async def test_no_short_selling_and_post_only_is_limit_maker() -> None:
    async with running() as (fake, venue, nursery):
        short = await venue.submit(order("entry", OrderType.MARKET, Side.SELL))
        assert short.kind is OrderEvent.REJECT and short.reason.startswith("spot_cannot_short")
        assert fake.exchange.accounts[KEY].submissions == {}
        crossing = order("entry", OrderType.LIMIT, price=50_100.0, post_only=True)
        refused = await venue.submit(crossing)
        assert refused.kind is OrderEvent.REJECT and "immediately match and take" in refused.reason
        resting = order("entry2", OrderType.LIMIT, price=49_900.0, post_only=True)
        assert (await venue.submit(resting)).kind is OrderEvent.ACCEPT
        assert [o.client_order_id for o in await venue.open_orders()] == [resting.client_order_id]
        cancel = await venue.cancel(resting.client_order_id, "BTCUSDT")
        assert cancel.kind is OrderEvent.CANCEL and await venue.open_orders() == []


async def test_fills_while_the_stream_was_down_arrive_by_resync_and_a_bad_key_is_fatal() -> None:
    async with running() as (fake, venue, nursery):
        receive = await streaming(fake, venue, nursery)
        limit = order("entry", OrderType.LIMIT, price=49_500.0)
        assert (await venue.submit(limit)).kind is OrderEvent.ACCEPT
        fake.drop_user_streams()
        fake.set_price("BTCUSDT", 49_400.0)  # fills while nobody listens
        fill = await next_report(receive, (OrderEvent.FILL,))
        assert fill.client_order_id == limit.client_order_id and fill.price == pytest.approx(49_500)
        assert venue.resyncs >= 1 and fake.subscriptions >= 2
        fake.end_subscriptions()  # eventStreamTerminated: subscribe again
        with trio.fail_after(5):
            while fake.subscriptions < 3:
                await trio.sleep(0.01)
        wrong = make_venue(fake, secret="not-the-secret")
        send, _ = trio.open_memory_channel[VenueReport](10)
        with pytest.raises(AuthError, match="-1022"):
            await wrong.stream_reports(send)


async def test_spot_minimums_come_from_exchange_info_and_binance_filter_failures_are_named() -> None:
    async with running() as (fake, venue, _):
        tiny = order("entry", OrderType.LIMIT, qty=0.00005, price=49_900.0)  # 2.50 USDT < 5
        refused = await venue.submit(tiny)
        assert refused.kind is OrderEvent.REJECT and refused.reason.startswith("below_min_notional")
        # A market order without a last price to check against: Binance's own filter says no.
        market = await venue.submit(order("entry2", OrderType.MARKET, qty=0.00005))
        assert market.kind is OrderEvent.REJECT and "-1013" in market.reason
        assert "NOTIONAL" in market.reason
        assert fake.exchange.accounts[KEY].submissions == {}


async def test_fees_in_bnb_are_valued_at_bnb_price_and_take_no_coins() -> None:
    async with running() as (fake, venue, nursery):
        fake.exchange.fee_in = "bnb"
        fake.exchange.prices["BNBUSDT"] = 600.0
        fake.exchange.accounts[KEY].free["BNB"] = 1.0
        receive = await streaming(fake, venue, nursery)
        await venue.submit(order("entry", OrderType.MARKET))
        fill = await next_report(receive, (OrderEvent.FILL,))
        bnb = 0.01 * 50_000 * 0.00075 / 600.0
        assert fill.fee_qty == 0.0 and fill.fee == pytest.approx(bnb * 600.0)
        assert await venue.positions() == {"BTCUSDT": pytest.approx(0.01)}
        # Out of BNB, Binance falls back to the coins bought: so does the report.
        fake.exchange.accounts[KEY].free["BNB"] = 0.0
        await venue.submit(order("entry2", OrderType.MARKET))
        fill = await next_report(receive, (OrderEvent.FILL,))
        assert fill.fee_qty == pytest.approx(0.00001)
        assert await venue.positions() == {"BTCUSDT": pytest.approx(0.01999)}


async def test_fills_read_by_rest_carry_the_coins_kept_as_fee() -> None:
    async with running() as (fake, venue, nursery):
        receive = await streaming(fake, venue, nursery)
        fake.drop_user_streams()
        fake.exchange.accounts[KEY].free["BNB"] = 0.0
        buy = order("entry", OrderType.LIMIT, price=49_500.0)
        assert (await venue.submit(buy)).kind is OrderEvent.ACCEPT
        fake.set_price("BTCUSDT", 49_400.0)  # fills while nobody listens
        fill = await next_report(receive, (OrderEvent.FILL,))
        assert fill.fee_qty == pytest.approx(0.00001) and fill.fee == pytest.approx(0.495)
        [rest_fill] = await venue.fills_since(0)
        assert (rest_fill.fee_qty, rest_fill.fee) == (pytest.approx(0.00001), pytest.approx(0.495))


async def test_the_dust_a_fee_in_coins_leaves_below_a_lot_step_is_not_the_bots() -> None:
    async with running() as (fake, venue, nursery):
        receive = await streaming(fake, venue, nursery)
        await venue.submit(order("entry", OrderType.MARKET, qty=0.01234))
        fill = await next_report(receive, (OrderEvent.FILL,))
        # 0.00001234 BTC commission leaves 0.01232766: 0.01232 to trade, 0.00000766 of dust.
        assert fake.exchange.accounts[KEY].total("BTC") == pytest.approx(0.01232766)
        assert fill.fee_qty == pytest.approx(0.00002)
        assert fill.fee == pytest.approx(0.00002 * 50_000)  # the dust is lost like the fee
        assert await venue.positions() == {"BTCUSDT": pytest.approx(0.01232)}
        stop = order("stop1", OrderType.STOP_MARKET, Side.SELL, trigger_price=49_000.0,
                     reduce_only=True, qty=fill.quantity - fill.fee_qty)
        assert (await venue.submit(stop)).kind is OrderEvent.ACCEPT
        fake.set_price("BTCUSDT", 48_900.0)
        sold = await next_report(receive, (OrderEvent.FILL,))
        assert sold.quantity == pytest.approx(0.01232) and sold.fee_qty == 0.0
        assert await venue.positions() == {}  # only dust is left
