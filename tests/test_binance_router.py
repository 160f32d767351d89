"""The venue-agnostic router actor through Binance: the fake Binance futures venue, a real SQLite ledger.

The same checks as the router's own (tests/test_router.py, on Hyperliquid),
with Binance's particulars in the way: stops live in the Algo Service under
`clientAlgoId`, a fired stop's fill belongs to an order Binance named, and a
stop is moved by cancel-and-replace.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio
from fakevenue.binance_exchange import Symbol
from fakevenue.binance_exchange_server import FakeBinanceFutures

router_mod = pytest.importorskip("fractald.actors.router")  # lands with issue 12
protection = pytest.importorskip("fractald.routing.protection")

from fractald.core.execution.events import OrderIntent
from fractald.core.execution.orders import OrderEvent, OrderType, client_order_id
from fractald.core.execution.reports import VenueReport
from fractald.core.models import Side
from fractald.store.writer import AsyncLedger
from fractald.venues.binance import Market
from fractald.venues.binance_rest import BinanceRest
from fractald.venues.binance_venue import BinanceVenue
from fractald.venues.ws import Backoff

KEY, SECRET = "routerKey00001", "routerSecret00001"


class Clock:
    def __init__(self, fake: FakeBinanceFutures) -> None:
        self.fake, self.offset = fake, 0

    def __call__(self) -> int:
        return self.fake.now_ms() + self.offset


def new_venue(fake: FakeBinanceFutures) -> BinanceVenue:
    rest = BinanceRest(Market.FUTURES, fake.rest_url, KEY, SECRET, backoff=Backoff(0.01, 0.05),
                       timeout_s=2.0)
    return BinanceVenue(Market.FUTURES, rest, fake.ws_url, ["BTCUSDT"], backoff=Backoff(0.01, 0.05))


def intent(role: str, order_type: OrderType, side: Side, qty: float, ts: int, **kw: Any) -> OrderIntent:
    return OrderIntent(ts=ts, client_order_id=client_order_id("sig-b", role), symbol="BTCUSDT",
                       side=side, order_type=order_type, quantity=qty, role=role, **kw)


def drain(receive: trio.MemoryReceiveChannel[VenueReport]) -> list[VenueReport]:
    out = []
    while True:
        try:
            out.append(receive.receive_nowait())
        except trio.WouldBlock:
            return out


class Applier:
    """Trading's part for these tests: every report the router passes on is kept, and applied to
    the ledger by `routing.journal` where the router leaves outcomes to whoever applies reports."""

    def __init__(self, ledger: AsyncLedger) -> None:
        self.reports: list[VenueReport] = []
        try:
            from fractald.routing.journal import LedgerJournal
        except ImportError:  # a router that marks outcomes itself
            self.journal = None
        else:
            self.journal = LedgerJournal(ledger)

    async def apply(self, reports: list[VenueReport]) -> None:
        for report in reports:
            self.reports.append(report)
            if self.journal is not None:
                await self.journal.apply(report)

    async def run(self, receive: trio.MemoryReceiveChannel[VenueReport]) -> None:
        async for report in receive:
            await self.apply([report])


def router_for(venue: BinanceVenue, ledger: AsyncLedger, clock: Clock,
               send: trio.MemorySendChannel[VenueReport]) -> Any:
    return router_mod.Router(venue, ledger, send, clock_ms=clock,
                             settings=router_mod.RouterSettings(settle_ms=15_000,
                                                                resolve_interval_s=0.05))


async def test_recovery_through_binance_asks_before_sending(tmp_path: Path) -> None:
    fake = FakeBinanceFutures([Symbol("BTCUSDT")], {"BTCUSDT": 50_000.0})
    fake.add_account(KEY, SECRET)
    async with trio.open_nursery() as nursery:
        await nursery.start(fake.run)
        ledger = await AsyncLedger.open(tmp_path / "fractald.db")
        venue = new_venue(fake)
        await venue.start()
        now = fake.now_ms()
        entry = intent("entry", OrderType.MARKET, Side.BUY, 0.02, now, intended_price=50_000.0)
        stop = intent("stop1", OrderType.STOP_MARKET, Side.SELL, 0.02, now, trigger_price=48_000.0,
                      reduce_only=True)
        lost = intent("tp1", OrderType.LIMIT, Side.SELL, 0.01, now, price=60_000.0, reduce_only=True)
        later = intent("entry2", OrderType.LIMIT, Side.BUY, 0.01, now, price=40_000.0)
        payload = router_mod.intent_payload
        for i in (entry, stop):  # sent; the answers never reached the ledger (kill -9)
            assert await ledger.record_and_claim(i.client_order_id, payload(i), now)
            await venue.submit(i)
        assert await ledger.record_and_claim(lost.client_order_id, payload(lost), now)
        await ledger.record_intent(later.client_order_id, payload(later))
        fake.set_price("BTCUSDT", 47_500.0)  # the stop fires while the daemon is down

        clock = Clock(fake)
        clock.offset = 20_000  # past the settle window
        send, receive = trio.open_memory_channel[VenueReport](100)
        router = router_for(new_venue(fake), ledger, clock, send)
        done = await router.recover()
        assert {r.client_order_id: r.verdict.value for r in done} == {
            entry.client_order_id: "resolved", stop.client_order_id: "resolved",
            lost.client_order_id: "not_sent", later.client_order_id: "send"}
        applier = Applier(ledger)
        await applier.apply(drain(receive))
        fills = [(r.client_order_id, r.quantity) for r in applier.reports if r.kind is OrderEvent.FILL]
        assert fills == [(entry.client_order_id, 0.02), (stop.client_order_id, 0.02)]
        assert (await ledger.get_intent(stop.client_order_id)).outcome == "filled"  # type: ignore[union-attr]
        assert [r.client_order_id for r in await ledger.pending_intents()] == [later.client_order_id]
        acct = fake.exchange.accounts[KEY]
        assert max(acct.submissions.values()) == 1 and lost.client_order_id not in acct.submissions
        await ledger.aclose()
        nursery.cancel_scope.cancel()


async def test_lost_reply_and_venue_held_stops_through_binance(tmp_path: Path) -> None:
    fake = FakeBinanceFutures([Symbol("BTCUSDT")], {"BTCUSDT": 50_000.0})
    fake.add_account(KEY, SECRET)
    async with trio.open_nursery() as nursery:
        await nursery.start(fake.run)
        ledger = await AsyncLedger.open(tmp_path / "fractald.db")
        clock = Clock(fake)
        send, receive = trio.open_memory_channel[VenueReport](100)
        alarms: list[str] = []
        venue = new_venue(fake)
        await venue.start()
        router = router_mod.Router(venue, ledger, send, clock_ms=clock, on_alarm=lambda c, d: alarms.append(c),
                                   settings=router_mod.RouterSettings(resolve_interval_s=0.05))
        commands_send, commands = trio.open_memory_channel[Any](10)
        applier = Applier(ledger)
        nursery.start_soon(applier.run, receive)
        await nursery.start(router.run, commands)
        entry = intent("entry", OrderType.MARKET, Side.BUY, 0.02, clock())
        fake.lose_next_order_replies = 1
        await commands_send.send(router_mod.Submit(entry))
        with trio.fail_after(10):
            while True:
                record = await ledger.get_intent(entry.client_order_id)
                if record is not None and record.outcome == "filled":
                    break
                await trio.sleep(0.05)
        assert fake.exchange.accounts[KEY].submissions[entry.client_order_id] == 1

        stop_id = client_order_id("sig-b", "stop")
        want = protection.WantedStop(stop_id, "BTCUSDT", "SELL", 0.02, 48_000.0)
        placed = await router.protect([want])
        assert [type(a).__name__ for a in placed] == ["Place"]
        assert await router.protect([want]) == []  # held at Binance: nothing to do
        moved = protection.WantedStop(stop_id, "BTCUSDT", "SELL", 0.02, 49_000.0)  # break-even-ish
        assert [type(a).__name__ for a in await router.protect([moved])] == ["Resize"]
        held = await venue.order_status(stop_id, "BTCUSDT")
        assert held is not None and held.trigger_price == 49_000.0 and held.status == "open"
        await trio.sleep(0.2)  # let the stream deliver what the swap caused
        swap = [r.kind for r in applier.reports if r.client_order_id == stop_id]
        assert OrderEvent.CANCEL not in swap  # the swap's CANCELED is not passed on
        await router.protect([])  # the trade ended: the stop is cancelled, the position alarms
        assert alarms == ["unprotected_position"]
        assert await venue.order_status(stop_id, "BTCUSDT") is not None
        assert [o for o in await venue.open_orders() if o.client_order_id == stop_id] == []
        await trio.sleep(0.2)
        kinds = [r.kind for r in applier.reports if r.client_order_id == stop_id]
        assert kinds.count(OrderEvent.CANCEL) == 1  # the answer and the stream: one CANCEL
        await commands_send.aclose()
        await ledger.aclose()
        nursery.cancel_scope.cancel()
