"""The shared reconciliation (`fractald.reconcile`) against Binance: a real SQLite ledger, the fake venue.

The scene after a crash: one intent sent and filled (its fill never reached
the ledger), one whose reply was lost on the wire (placed all the same),
one recorded but never claimed for sending, one resting at the venue, and a
stop the venue fired while we were down. Reconciliation asks Binance by
client order id and must repair exactly what is definitive.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
from fakevenue.binance_exchange import Symbol
from fakevenue.binance_exchange_server import FakeBinanceFutures

from fractald.core.execution.events import OrderIntent
from fractald.core.execution.orders import OrderType, client_order_id
from fractald.core.models import Side
from fractald.errors import NetworkError
from fractald.reconcile import NOT_SENT, MismatchCode, VenueReconciler, reconcile
from fractald.store.writer import AsyncLedger
from fractald.venues.binance import Market
from fractald.venues.binance_rest import BinanceRest
from fractald.venues.binance_venue import BinanceVenue
from fractald.venues.ws import Backoff

KEY, SECRET = "reconcileKey0001", "reconcileSecret0001"


def intent(role: str, order_type: OrderType, side: Side = Side.BUY, **kw: object) -> OrderIntent:
    return OrderIntent(ts=1, client_order_id=client_order_id("sig-r", role), symbol="BTCUSDT",
                       side=side, order_type=order_type, quantity=0.01, role=role,
                       **kw)  # type: ignore[arg-type]


def new_venue(fake: FakeBinanceFutures) -> BinanceVenue:
    rest = BinanceRest(Market.FUTURES, fake.rest_url, KEY, SECRET, backoff=Backoff(0.01, 0.05))
    return BinanceVenue(Market.FUTURES, rest, fake.ws_url, ["BTCUSDT"])


async def test_reconciliation_by_client_id_after_a_crash(tmp_path: Path) -> None:
    fake = FakeBinanceFutures([Symbol("BTCUSDT")], {"BTCUSDT": 50_000.0})
    fake.add_account(KEY, SECRET)
    ledger = await AsyncLedger.open(tmp_path / "fractald.db")
    async with trio.open_nursery() as nursery:
        await nursery.start(fake.run)
        before = new_venue(fake)
        await before.start()
        entry = intent("entry", OrderType.MARKET)
        lost = intent("entry2", OrderType.MARKET)
        never = intent("entry3", OrderType.MARKET)
        resting = intent("tp1", OrderType.LIMIT, Side.SELL, price=60_000.0, reduce_only=True)
        stop = intent("stop", OrderType.STOP_MARKET, Side.SELL, trigger_price=49_000.0,
                      reduce_only=True)
        for i, sent in enumerate((entry, lost, resting, stop)):
            await ledger.run(lambda led, s=sent, t=i: led.record_and_claim(
                s.client_order_id, {"symbol": s.symbol}, 10 + t))
        await ledger.run(lambda led: led.record_intent(never.client_order_id, {"symbol": "BTCUSDT"}))
        await before.submit(entry)
        fake.lose_next_order_replies = 1
        with pytest.raises(NetworkError):
            await before.submit(lost)
        await before.submit(resting)
        await before.submit(stop)
        # -- the daemon dies here; while it is down the price falls through the stop --
        fake.set_price("BTCUSDT", 48_500.0)

        after = new_venue(fake)  # a restart remembers nothing but the ledger
        assert isinstance(after, VenueReconciler)
        report = await reconcile(ledger, after)
        repairs = {r.client_order_id: r.outcome for r in report.repairs}
        assert repairs == {entry.client_order_id: "filled", lost.client_order_id: "filled",
                           never.client_order_id: NOT_SENT, stop.client_order_id: "filled"}
        codes = {(m.code, m.subject) for m in report.mismatches}
        # The fills made while down are found and named (attributing them is the engine's job).
        assert (MismatchCode.MISSING_FILL, stop.client_order_id) in codes
        assert (MismatchCode.MISSING_FILL, lost.client_order_id) in codes
        assert (MismatchCode.POSITION, "BTCUSDT") in codes
        assert not any(m.code is MismatchCode.UNKNOWN_ORDER for m in report.mismatches)
        pending = await ledger.run(lambda led: [r.client_order_id for r in led.pending_intents()])
        assert pending == [resting.client_order_id]  # still working at Binance: nothing decided
        acct = fake.exchange.accounts[KEY]
        assert max(acct.submissions.values()) == 1  # nothing was ever sent twice
        nursery.cancel_scope.cancel()
    await ledger.aclose()
