"""HyperliquidVenue (the transport) against the fake Hyperliquid venue on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
from eth_account import Account
from fakevenue.hyperliquid_exchange import Coin
from fakevenue.hyperliquid_exchange_server import Failure, FakeHyperliquid

from fractald.core.execution.events import OrderIntent
from fractald.core.execution.orders import OrderEvent, OrderType, client_order_id
from fractald.core.execution.reports import VenueReport
from fractald.core.models import Side
from fractald.errors import AuthError, ConfigError, NetworkError, TransientError
from fractald.venues.hyperliquid_signing import AgentSigner, NonceClock
from fractald.venues.hyperliquid_venue import HyperliquidSettings, HyperliquidVenue
from fractald.venues.interface import Venue

USER = Account.from_key("0x" + "01" * 32)
AGENT_KEY = "0x" + "02" * 32
OTHER_KEY = "0x" + "05" * 32


async def started(nursery: trio.Nursery) -> FakeHyperliquid:
    fake = FakeHyperliquid([Coin("BTC", 5), Coin("ETH", 4)], {"BTC": 50_000.0, "ETH": 3_000.0})
    fake.exchange.add_user(USER.address, usdc=10_000.0, agents=(Account.from_key(AGENT_KEY).address,))
    await nursery.start(fake.run)
    return fake


def venue_for(fake: FakeHyperliquid, tmp_path: Path, key: str = AGENT_KEY,
              nonce_file: str = "nonce") -> HyperliquidVenue:
    settings = HyperliquidSettings(USER.address, "testnet", rest_url=fake.rest_url, ws_url=fake.ws_url,
                                   timeout_s=2.0)
    return HyperliquidVenue(settings, AgentSigner(key, mainnet=False), NonceClock(tmp_path / nonce_file))


def intent(role: str, order_type: OrderType, side: Side, qty: float, **kw: object) -> OrderIntent:
    return OrderIntent(ts=0, client_order_id=client_order_id("sig-1", role), symbol="BTC", side=side,
                       order_type=order_type, quantity=qty, role=role, **kw)  # type: ignore[arg-type]


async def test_orders_round_trip_through_the_venue(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        fake = await started(nursery)
        venue = venue_for(fake, tmp_path)
        assert isinstance(venue, Venue)
        specs = await venue.instruments()
        assert specs["BTC"].lot_size == pytest.approx(1e-5) and specs["ETH"].max_leverage == 50

        entry = intent("entry", OrderType.MARKET, Side.BUY, 0.02)  # no reference: the venue asks allMids
        ack = await venue.submit(entry)
        assert ack.kind is OrderEvent.ACCEPT and ack.venue_order_id
        assert await venue.positions() == {"BTC": 0.02}
        fills = await venue.fills_since(0)
        assert [(f.client_order_id, f.quantity, f.price) for f in fills] == [(entry.client_order_id, 0.02, 50_000.0)]

        stop = intent("stop1", OrderType.STOP_MARKET, Side.SELL, 0.02, trigger_price=48_000.0, reduce_only=True)
        assert (await venue.submit(stop)).kind is OrderEvent.ACCEPT
        again = await venue.submit(stop)
        assert again.kind is OrderEvent.REJECT and again.reason.startswith("duplicate_cloid")
        moved = await venue.modify(stop.client_order_id, "BTC", trigger_price=49_000.0)
        assert moved.kind is OrderEvent.UPDATE, moved.reason
        held = await venue.order_status(stop.client_order_id, "BTC")
        assert held is not None and held.trigger_price == 49_000.0 and held.reduce_only and held.status == "open"
        assert [o.client_order_id for o in await venue.open_orders()] == [stop.client_order_id]

        tiny = await venue.submit(intent("tp1", OrderType.LIMIT, Side.SELL, 0.000001, price=60_000.0))
        assert tiny.kind is OrderEvent.REJECT and tiny.reason.startswith("invalid_order")
        assert (await venue.cancel(stop.client_order_id, "BTC")).kind is OrderEvent.CANCEL
        assert (await venue.cancel(stop.client_order_id, "BTC")).kind is OrderEvent.CANCEL_REJECT
        assert await venue.order_status(client_order_id("never", "sent"), "BTC") is None
        account = await venue.account()
        assert 9_000 < account.equity < 10_001 and account.margin_used > 0
        nursery.cancel_scope.cancel()


@pytest.mark.slow  # over a second: out of the fast suite (issue 16)
async def test_exchange_is_sent_once_and_ambiguity_is_resolved_by_client_id(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        fake = await started(nursery)
        venue = venue_for(fake, tmp_path)
        await venue.instruments()
        limit = intent("entry", OrderType.LIMIT, Side.BUY, 0.01, price=45_000.0)
        fake.lose_next_exchange_replies = 1  # placed, but the reply never arrives
        with pytest.raises(NetworkError):
            await venue.submit(limit)
        found = await venue.order_status(limit.client_order_id, "BTC")
        assert found is not None and found.status == "open"

        fake.fail_next = [Failure(502)]
        other = intent("entry2", OrderType.LIMIT, Side.BUY, 0.01, price=45_000.0)
        with pytest.raises(TransientError):
            await venue.submit(other)
        assert [e for e in fake.log if e[0] == "/exchange"][-1] == ("/exchange", "order", 502)  # not retried
        assert await venue.order_status(other.client_order_id, "BTC") is None

        fake.fail_next = [Failure(429, retry_after_s=0.2)]  # a read is retried after Retry-After
        assert await venue.positions() == {}
        nursery.cancel_scope.cancel()


async def test_unknown_agent_is_an_auth_error_and_nonces_survive_restarts(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        fake = await started(nursery)
        stranger = venue_for(fake, tmp_path, OTHER_KEY, nonce_file="stranger-nonce")
        with pytest.raises(AuthError, match="does not exist"):
            await stranger.submit(intent("entry", OrderType.LIMIT, Side.BUY, 0.01, price=45_000.0))
        first = venue_for(fake, tmp_path)
        await first.submit(intent("a", OrderType.LIMIT, Side.BUY, 0.01, price=45_000.0))
        used = first.nonces.last
        second = venue_for(fake, tmp_path)  # a restart with the clock standing still
        second.clock_ms = lambda: used - 5_000
        ack = await second.submit(intent("b", OrderType.LIMIT, Side.BUY, 0.01, price=45_000.0))
        assert ack.kind is OrderEvent.ACCEPT and second.nonces.last > used
        nursery.cancel_scope.cancel()


async def test_leverage_is_set_per_perp_and_above_the_maximum_is_a_config_error(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        fake = await started(nursery)
        venue = venue_for(fake, tmp_path)
        await venue.set_leverage("BTC", 5)
        await venue.set_leverage("ETH", 3, cross=False)
        assert fake.exchange.users[USER.address.lower()].leverage == {"BTC": (5, True), "ETH": (3, False)}
        sent = len(fake.exchange.actions)
        with pytest.raises(ConfigError, match=r"config.broker.leverage.BTC: .*1\.\.50"):
            await venue.set_leverage("BTC", 51)  # meta says 50 at most: refused before signing
        assert len(fake.exchange.actions) == sent
        nursery.cancel_scope.cancel()


async def test_user_stream_reports_fills_once_across_a_dropped_socket(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        fake = await started(nursery)
        venue = venue_for(fake, tmp_path)
        send, receive = trio.open_memory_channel[VenueReport](100)
        nursery.start_soon(venue.stream_reports, send)
        with trio.fail_after(10):
            while not fake.exchange_subscribed(USER.address):
                await trio.sleep(0.01)
        entry = intent("entry", OrderType.MARKET, Side.BUY, 0.02, intended_price=50_000.0)
        stop = intent("stop1", OrderType.STOP_MARKET, Side.SELL, 0.02, trigger_price=48_000.0, reduce_only=True)
        await venue.submit(entry)
        await venue.submit(stop)
        got: list[VenueReport] = []
        with trio.fail_after(10):
            while len([r for r in got if r.kind is OrderEvent.FILL]) < 1:
                got.append(await receive.receive())
        fake.drop_user_streams()
        with trio.fail_after(10):
            while fake.ws_connections < 2 or not fake.exchange_subscribed(USER.address):
                await trio.sleep(0.01)
        fake.set_price("BTC", 47_000.0)  # gaps through the stop
        with trio.fail_after(10):
            while len([r for r in got if r.kind is OrderEvent.FILL]) < 2:
                got.append(await receive.receive())
        fills = [r for r in got if r.kind is OrderEvent.FILL]
        assert [(r.client_order_id, r.quantity) for r in fills] == [
            (entry.client_order_id, 0.02), (stop.client_order_id, 0.02)]
        assert len({r.trade_id for r in fills}) == 2  # the snapshot after the reconnect repeated nothing
        assert any(r.kind is OrderEvent.TRIGGER and r.client_order_id == stop.client_order_id for r in got)
        nursery.cancel_scope.cancel()
