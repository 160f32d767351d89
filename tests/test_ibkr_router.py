"""The venue-agnostic router through IBKR: the fake TWS, ib_async, a real SQLite ledger.

The same checks as the router's own on Hyperliquid and Binance: after a crash
every claimed intent is resolved by asking IB by our orderRef before anything
is sent, a stop that fired while the daemon was down is found as a fill, and
venue-held stops are placed, moved and cancelled at IB.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

pytest.importorskip("ib_async")
router_mod = pytest.importorskip("fractald.actors.router")
protection = pytest.importorskip("fractald.routing.protection")

from fakevenue.fake_tws import FakeTWS  # noqa: E402
from fractald.core.execution.events import OrderIntent  # noqa: E402
from fractald.core.execution.orders import OrderEvent, OrderType, client_order_id  # noqa: E402
from fractald.core.execution.reports import VenueReport  # noqa: E402
from fractald.core.models import Side  # noqa: E402
from fractald.store.writer import AsyncLedger  # noqa: E402
from fractald.venues.ibkr import IBKRVenue, IBSettings  # noqa: E402


def now_ms() -> int:
    return int(time.time() * 1000)


def intent(role: str, order_type: OrderType, side: Side, qty: float, ts: int, **kw: Any) -> OrderIntent:
    return OrderIntent(ts=ts, client_order_id=client_order_id("sig-ib", role), symbol="MES", side=side,
                       order_type=order_type, quantity=qty, role=role, **kw)


def drain(receive: trio.MemoryReceiveChannel[VenueReport]) -> list[VenueReport]:
    out = []
    while True:
        try:
            out.append(receive.receive_nowait())
        except trio.WouldBlock:
            return out


@pytest.fixture
def fake() -> Iterator[FakeTWS]:
    tws = FakeTWS(price=5000.0).start()
    try:
        yield tws
    finally:
        tws.stop()


@pytest.mark.slow  # over a second: out of the fast suite (issue 16)
async def test_recovery_through_ibkr_asks_before_sending(fake: FakeTWS, tmp_path: Path) -> None:
    ledger = await AsyncLedger.open(tmp_path / "fractald.db")
    now = now_ms()
    entry = intent("entry", OrderType.MARKET, Side.BUY, 2.0, now)
    stop = intent("stop1", OrderType.STOP_MARKET, Side.SELL, 2.0, now, trigger_price=4990.0)
    lost = intent("tp1", OrderType.LIMIT, Side.SELL, 1.0, now, price=5050.0)
    later = intent("entry2", OrderType.LIMIT, Side.BUY, 1.0, now, price=4900.0)
    payload = router_mod.intent_payload
    first = IBKRVenue(IBSettings(port=fake.port, client_id=51))
    await first.connect()
    for i in (entry, stop):  # sent; the answers never reached the ledger (kill -9)
        assert await ledger.record_and_claim(i.client_order_id, payload(i), now)
        await first.submit(i)
    assert await ledger.record_and_claim(lost.client_order_id, payload(lost), now)
    await ledger.record_intent(later.client_order_id, payload(later))
    await first.close()
    await trio.to_thread.run_sync(fake.set_price, 4985.0)  # the stop fires at IB while the daemon is down

    venue = IBKRVenue(IBSettings(port=fake.port, client_id=51))  # the configured id again
    await venue.connect()
    try:
        send, receive = trio.open_memory_channel[VenueReport](100)
        router = router_mod.Router(venue, ledger, send, clock_ms=lambda: now_ms() + 20_000,
                                   settings=router_mod.RouterSettings(settle_ms=15_000))
        done = await router.recover()
        assert {r.client_order_id: r.verdict.value for r in done} == {
            entry.client_order_id: "resolved", stop.client_order_id: "resolved",
            lost.client_order_id: "not_sent", later.client_order_id: "send"}
        fills = sorted((r.client_order_id, r.quantity) for r in drain(receive) if r.kind is OrderEvent.FILL)
        assert fills == sorted([(entry.client_order_id, 2.0), (stop.client_order_id, 2.0)])
        assert (await ledger.get_intent(stop.client_order_id)).outcome == "filled"  # type: ignore[union-attr]
        assert [r.client_order_id for r in await ledger.pending_intents()] == [later.client_order_id]
        sent_refs = [o.order_ref for o in fake.orders.values()]
        assert len(sent_refs) == len(set(sent_refs))  # no client order id reached IB twice
        assert lost.client_order_id not in sent_refs
    finally:
        await venue.close()
        await ledger.aclose()


@pytest.mark.slow  # over a second: out of the fast suite (issue 16)
async def test_venue_held_stops_through_ibkr(fake: FakeTWS, tmp_path: Path, nursery: trio.Nursery) -> None:
    ledger = await AsyncLedger.open(tmp_path / "fractald.db")
    venue = IBKRVenue(IBSettings(port=fake.port, client_id=61))
    await venue.connect()
    try:
        send, receive = trio.open_memory_channel[VenueReport](100)
        alarms: list[str] = []
        router = router_mod.Router(venue, ledger, send, clock_ms=now_ms,
                                   on_alarm=lambda code, detail: alarms.append(code),
                                   settings=router_mod.RouterSettings(resolve_interval_s=0.05))
        commands_send, commands = trio.open_memory_channel[Any](10)
        await nursery.start(router.run, commands)
        entry = intent("entry", OrderType.MARKET, Side.BUY, 2.0, now_ms())
        await commands_send.send(router_mod.Submit(entry))
        with trio.fail_after(10):
            while (record := await ledger.get_intent(entry.client_order_id)) is None or record.outcome != "filled":
                await trio.sleep(0.05)
        stop_id = client_order_id("sig-ib", "stop")
        want = protection.WantedStop(stop_id, "MES", "SELL", 2.0, 4980.0)
        assert [type(a).__name__ for a in await router.protect([want])] == ["Place"]
        assert await router.protect([want]) == []  # resting at IB: nothing to do
        moved = protection.WantedStop(stop_id, "MES", "SELL", 2.0, 4995.0)
        assert [type(a).__name__ for a in await router.protect([moved])] == ["Resize"]
        resting = [o for o in fake.orders.values() if o.order_ref == stop_id and o.working]
        assert [(o.order_type, o.aux_price) for o in resting] == [("STP", 4995.0)]
        await router.protect([])  # the trade ended: the stop is cancelled, the position alarms
        assert alarms == ["unprotected_position"]
        assert [o for o in await venue.open_orders() if o.client_order_id == stop_id] == []
        await commands_send.aclose()
    finally:
        await venue.close()
        await ledger.aclose()
