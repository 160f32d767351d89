"""The router actor against the fake Hyperliquid venue and a real SQLite ledger.

Venue-agnostic code, checked through one real venue's transport: crash
recovery by client order id before anything new is sent, lost replies
resolved by asking, fills passed on once per trade id, venue-held stops.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio
from eth_account import Account
from fakevenue.hyperliquid_exchange import Coin
from fakevenue.hyperliquid_exchange_server import FakeHyperliquid

from fractald.actors.router import (
    Cancel,
    Router,
    RouterSettings,
    Submit,
    intent_payload,
    stop_intent,
)
from fractald.core.execution.events import OrderIntent
from fractald.core.execution.orders import OrderEvent, OrderType, client_order_id
from fractald.core.execution.reports import VenueReport
from fractald.core.models import Side
from fractald.routing import protection
from fractald.routing.journal import LedgerJournal
from fractald.store.writer import AsyncLedger
from fractald.venues.hyperliquid_signing import AgentSigner, NonceClock
from fractald.venues.hyperliquid_venue import HyperliquidSettings, HyperliquidVenue

USER = Account.from_key("0x" + "01" * 32)
AGENT_KEY = "0x" + "02" * 32


class Clock:
    """Wall time for the venue's nonces, moved ahead on demand (the settle window) for recovery."""

    def __init__(self, fake: FakeHyperliquid) -> None:
        self.fake = fake
        self.offset = 0

    def __call__(self) -> int:
        return self.fake.now_ms() + self.offset


async def setup(nursery: trio.Nursery, tmp_path: Path) -> tuple[FakeHyperliquid, HyperliquidVenue, AsyncLedger]:
    fake = FakeHyperliquid([Coin("BTC", 5)], {"BTC": 50_000.0})
    fake.exchange.add_user(USER.address, usdc=10_000.0, agents=(Account.from_key(AGENT_KEY).address,))
    await nursery.start(fake.run)
    ledger = await AsyncLedger.open(tmp_path / "fractald.db")
    return fake, new_venue(fake, tmp_path), ledger


def new_venue(fake: FakeHyperliquid, tmp_path: Path) -> HyperliquidVenue:
    settings = HyperliquidSettings(USER.address, "testnet", rest_url=fake.rest_url, ws_url=fake.ws_url,
                                   timeout_s=2.0)
    return HyperliquidVenue(settings, AgentSigner(AGENT_KEY, mainnet=False), NonceClock(tmp_path / "nonce"))


def intent(role: str, order_type: OrderType, side: Side, qty: float, ts: int, **kw: Any) -> OrderIntent:
    return OrderIntent(ts=ts, client_order_id=client_order_id("sig-1", role), symbol="BTC", side=side,
                       order_type=order_type, quantity=qty, role=role, **kw)


def sent_cloids(fake: FakeHyperliquid) -> list[str]:
    return [o["c"] for a in fake.exchange.actions if a["type"] == "order" for o in a["orders"]]


def router_for(venue: HyperliquidVenue, ledger: AsyncLedger, clock: Clock,
               send: trio.MemorySendChannel[VenueReport], **kw: Any) -> Router:
    kw.setdefault("record_outcomes", False)  # the journal commits them, with the events
    return Router(venue, ledger, send, clock_ms=clock,
                  settings=RouterSettings(settle_ms=15_000, resolve_interval_s=0.05), **kw)


async def test_recovery_asks_the_venue_before_sending_anything(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        fake, venue, ledger = await setup(nursery, tmp_path)
        now = fake.now_ms()
        entry = intent("entry", OrderType.MARKET, Side.BUY, 0.02, now, intended_price=50_000.0)
        stop = intent("stop1", OrderType.STOP_MARKET, Side.SELL, 0.02, now, trigger_price=48_000.0,
                      reduce_only=True)
        lost = intent("tp1", OrderType.LIMIT, Side.SELL, 0.01, now, price=60_000.0, reduce_only=True)
        later = intent("entry2", OrderType.LIMIT, Side.BUY, 0.01, now, price=40_000.0)
        # The run before: entry and stop claimed and sent, their answers never recorded (kill -9);
        # tp1 claimed but killed before it left; entry2 recorded only.
        for i in (entry, stop):
            assert await ledger.record_and_claim(i.client_order_id, intent_payload(i), now)
            await venue.submit(i)
        assert await ledger.record_and_claim(lost.client_order_id, intent_payload(lost), now)
        await ledger.record_intent(later.client_order_id, intent_payload(later))
        fake.set_price("BTC", 47_500.0)  # the stop fires while the daemon is down

        clock = Clock(fake)
        clock.offset = 20_000  # past the settle window: a claim the venue does not know never landed
        send, receive = trio.open_memory_channel[VenueReport](100)
        router = router_for(new_venue(fake, tmp_path), ledger, clock, send)
        done = await router.recover()
        assert {r.client_order_id: r.verdict.value for r in done} == {
            entry.client_order_id: "resolved", stop.client_order_id: "resolved",
            lost.client_order_id: "not_sent", later.client_order_id: "send"}
        reports = []
        journal = LedgerJournal(ledger)
        await journal.load()
        while True:
            try:
                reports.append(receive.receive_nowait())
            except trio.WouldBlock:
                break
            await journal.apply(reports[-1])
        fills = [(r.client_order_id, r.quantity) for r in reports if r.kind is OrderEvent.FILL]
        assert fills == [(entry.client_order_id, 0.02), (stop.client_order_id, 0.02)]
        assert any(r.kind is OrderEvent.CANCEL and r.client_order_id == lost.client_order_id
                   and r.reason.startswith("never_reached_venue") for r in reports)
        pending = {r.client_order_id: r for r in await ledger.pending_intents()}
        assert list(pending) == [later.client_order_id]  # sent after the others were resolved: resting
        assert (await ledger.get_intent(lost.client_order_id)).outcome == "canceled"  # type: ignore[union-attr]
        assert (await ledger.get_intent(stop.client_order_id)).outcome == "filled"  # type: ignore[union-attr]
        cloids = sent_cloids(fake)
        assert len(cloids) == len(set(cloids)) == 3  # entry, stop (before), entry2 (after): none twice
        await ledger.aclose()
        nursery.cancel_scope.cancel()


async def test_a_lost_reply_is_resolved_by_client_id_and_fills_pass_once(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        fake, venue, ledger = await setup(nursery, tmp_path)
        clock = Clock(fake)
        send, receive = trio.open_memory_channel[VenueReport](100)
        router = router_for(venue, ledger, clock, send)
        commands_send, commands = trio.open_memory_channel[Any](10)
        await nursery.start(router.run, commands)
        with trio.fail_after(10):
            while not fake.exchange_subscribed(USER.address):
                await trio.sleep(0.01)
        entry = intent("entry", OrderType.MARKET, Side.BUY, 0.02, clock(), intended_price=50_000.0)
        fake.lose_next_exchange_replies = 1
        await commands_send.send(Submit(entry))
        got: list[VenueReport] = []
        journal = LedgerJournal(ledger)

        async def next_report() -> VenueReport:
            report = await receive.receive()
            await journal.apply(report)  # as trading would: event and outcome in one transaction
            return report

        with trio.fail_after(10):
            while not any(r.kind is OrderEvent.FILL for r in got):
                got.append(await next_report())
        fake.drop_user_streams()  # the reconnect's snapshot repeats the fill: not passed on again
        stop = intent("stop1", OrderType.STOP_MARKET, Side.SELL, 0.02, clock(), trigger_price=48_000.0,
                      reduce_only=True)
        await commands_send.send(Submit(stop))
        await commands_send.send(Cancel(stop.client_order_id, "BTC"))
        with trio.fail_after(10):
            while not any(r.kind is OrderEvent.CANCEL for r in got):
                got.append(await next_report())
        await trio.sleep(0.3)
        while True:
            try:
                got.append(receive.receive_nowait())
            except trio.WouldBlock:
                break
            await journal.apply(got[-1])
        assert [r.client_order_id for r in got if r.kind is OrderEvent.FILL] == [entry.client_order_id]
        assert (await ledger.get_intent(entry.client_order_id)).outcome == "filled"  # type: ignore[union-attr]
        assert (await ledger.get_intent(stop.client_order_id)).outcome == "canceled"  # type: ignore[union-attr]
        assert sent_cloids(fake).count("0x" + entry.client_order_id) == 1
        await ledger.aclose()
        nursery.cancel_scope.cancel()


async def test_protect_places_resizes_cancels_and_alarms(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        fake, venue, ledger = await setup(nursery, tmp_path)
        clock = Clock(fake)
        alarms: list[tuple[str, dict[str, Any]]] = []
        send, _receive = trio.open_memory_channel[VenueReport](100)
        router = router_for(venue, ledger, clock, send, on_alarm=lambda code, d: alarms.append((code, d)))
        await router.submit(intent("entry", OrderType.MARKET, Side.BUY, 0.03, clock(), intended_price=50_000.0))
        actions = await router.protect([])
        assert [type(a).__name__ for a in actions] == ["Unprotected"] and alarms[0][0] == "unprotected_position"

        wanted = protection.WantedStop(client_order_id("sig-1", "stop1"), "BTC", "SELL", 0.03, 48_000.0)
        assert [type(a).__name__ for a in await router.protect([wanted])] == ["Place"]
        assert await router.protect([wanted]) == []  # held as wanted: nothing to do
        smaller = protection.WantedStop(wanted.client_order_id, "BTC", "SELL", 0.02, 49_000.0)  # scale-out + BE
        assert [type(a).__name__ for a in await router.protect([smaller])] == ["Resize", "Unprotected"]
        held = await venue.order_status(wanted.client_order_id, "BTC")
        assert held is not None and held.quantity == 0.02 and held.trigger_price == 49_000.0
        await router.submit(intent("exit1", OrderType.MARKET, Side.SELL, 0.03, clock(), intended_price=50_000.0,
                                   reduce_only=True))
        assert [type(a).__name__ for a in await router.protect([])] == ["CancelStop"]  # the trade ended
        assert await venue.open_orders() == []
        await ledger.aclose()
        nursery.cancel_scope.cancel()


def test_stop_intent_is_a_reduce_only_stop_market() -> None:
    s = stop_intent(protection.WantedStop("ab" * 16, "BTC", "BUY", 1.5, 51_000.0), 7)
    assert (s.side, s.order_type, s.reduce_only, s.trigger_price) == (Side.BUY, OrderType.STOP_MARKET, True,
                                                                      51_000.0)


@pytest.mark.parametrize("qty,expected", [(0.03, []), (0.01, ["stops_too_small"])])
def test_plan_checks_coverage(qty: float, expected: list[str]) -> None:
    w = protection.WantedStop("ab" * 16, "BTC", "SELL", qty, 48_000.0)
    actions = protection.plan([w], {"BTC": 0.03}, [])
    assert [a.reason for a in actions if isinstance(a, protection.Unprotected)] == expected


async def test_reconcile_against_the_venue_after_recovery(tmp_path: Path) -> None:
    from fractald.reconcile import reconcile

    async with trio.open_nursery() as nursery:
        fake, venue, ledger = await setup(nursery, tmp_path)
        clock = Clock(fake)
        send, receive = trio.open_memory_channel[VenueReport](100)
        router = router_for(venue, ledger, clock, send)
        journal = LedgerJournal(ledger)
        entry = intent("entry", OrderType.MARKET, Side.BUY, 0.02, clock(), intended_price=50_000.0)
        await router.submit(entry)
        await router.resolve_unanswered()
        fills = await venue.fills_since(0)
        for f in fills:  # the stream's fill, as trading would apply it
            await journal.apply(VenueReport(OrderEvent.FILL, f.client_order_id, f.ts, trade_id=f.trade_id,
                                            quantity=f.quantity, price=f.price))
        while True:
            try:
                await journal.apply(receive.receive_nowait())
            except trio.WouldBlock:
                break
        report = await reconcile(ledger, venue, {"BTC": 0.02})
        assert report.clean, report.as_dict()

        # An order placed behind the daemon's back (the same account, another client) shows up.
        (tmp_path / "other").mkdir()
        other = new_venue(fake, tmp_path / "other")
        await other.submit(intent("manual", OrderType.MARKET, Side.BUY, 0.01, clock(), intended_price=50_000.0))
        report = await reconcile(ledger, venue, {"BTC": 0.02})
        codes = {m.code.value for m in report.mismatches}
        assert not report.clean and {"missing_fill", "position"} <= codes, codes
        await ledger.aclose()
        nursery.cancel_scope.cancel()
