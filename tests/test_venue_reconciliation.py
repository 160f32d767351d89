"""Periodic reconciliation against a venue: orders, fills since, positions and margin.

The planner (`fractald.routing.reconciliation`) is pure; here it is fed
what a real router left at the fake Hyperliquid (which signs and checks
everything) and what `take_snapshot` reads back over HTTP: a fill that
happened while nobody looked is recorded once with the venue's trade id, a
stop cancelled by hand is ended (its bracket then places a new one), an
order the venue never heard of is cancelled once it is old enough, and what
cannot be explained is coded.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
from eth_account import Account
from fakevenue.hyperliquid_exchange import Coin
from fakevenue.hyperliquid_exchange_server import FakeHyperliquid

from fractald.actors.router import Router, RouterSettings, Submit
from fractald.core.execution.events import OrderIntent
from fractald.core.execution.orders import OrderEvent, OrderType, client_order_id
from fractald.core.execution.reports import VenueReport
from fractald.core.models import Side
from fractald.reconcile import MismatchCode
from fractald.routing.reconciliation import (
    MISSING_AT_VENUE,
    AccountLimits,
    BookOrder,
    BooksView,
    VenueSnapshot,
    account_mismatches,
    plan_repairs,
)
from fractald.routing.snapshot import take_snapshot
from fractald.store.writer import AsyncLedger
from fractald.venues.hyperliquid_signing import AgentSigner, NonceClock
from fractald.venues.hyperliquid_venue import HyperliquidSettings, HyperliquidVenue
from fractald.venues.interface import VenueAccount, VenueFill, VenueOrder, VenuePosition

USER = Account.from_key("0x" + "01" * 32)
AGENT_KEY = "0x" + "02" * 32


def book(coid: str, qty: float = 0.02, filled: float = 0.0, ts: int = 0) -> BookOrder:
    return BookOrder(coid, "BTC", qty, filled, ts)


def snapshot(**kw: object) -> VenueSnapshot:
    base: dict[str, object] = {"open_orders": [], "fills": [], "looked_up": {}, "positions": {}}
    base.update(kw)
    return VenueSnapshot(**base)  # type: ignore[arg-type]


# -- the planner, case by case ----------------------------------------------------------------------

def test_a_missed_fill_of_a_working_order_is_recorded_once_with_the_venues_trade_id() -> None:
    fills = [VenueFill("tp", "t1", 1_000, 0.01, 51_000.0, 0.2, "BTC", "SELL"),
             VenueFill("tp", "t0", 900, 0.01, 51_000.0, 0.2, "BTC", "SELL")]
    plan = plan_repairs(BooksView({"tp": book("tp")}, frozenset({"t0"})),
                        snapshot(fills=fills, open_orders=[VenueOrder("tp", "BTC", "open", 0.02, 0.01)]),
                        now_ms=5_000, settle_ms=1_000)
    assert plan.mismatches == ()
    [fill] = plan.repairs
    assert (fill.kind, fill.client_order_id, fill.trade_id, fill.quantity, fill.price, fill.fee, fill.ts) == (
        OrderEvent.FILL, "tp", "t1", 0.01, 51_000.0, 0.2, 1_000)


def test_an_order_the_venue_ended_ends_in_the_books_and_a_lost_one_is_cancelled_when_old() -> None:
    books = BooksView({"stop": book("stop"), "lost": book("lost", ts=0), "young": book("young", ts=4_500)},
                      frozenset())
    looked = {"stop": VenueOrder("stop", "BTC", "canceled", 0.02, 0.0, "77"), "lost": None, "young": None}
    plan = plan_repairs(books, snapshot(looked_up=looked), now_ms=5_000, settle_ms=1_000)
    assert plan.mismatches == ()
    assert [(r.client_order_id, r.kind, r.reason) for r in plan.repairs] == [
        ("lost", OrderEvent.CANCEL, MISSING_AT_VENUE), ("stop", OrderEvent.CANCEL, "venue_canceled")]


def test_what_cannot_be_explained_is_coded() -> None:
    books = BooksView({"entry": book("entry", filled=0.0), "gone": book("gone", filled=0.01)}, frozenset())
    venue = snapshot(
        open_orders=[VenueOrder("entry", "BTC", "open", 0.02, 0.02),  # filled there, no fill here
                     VenueOrder("someone", "BTC", "open", 1.0, 0.0)],  # not ours
        fills=[VenueFill("closed-long-ago", "t9", 10, 0.01, 1.0)],  # an order the books hold as ended
        looked_up={"gone": None})  # partly filled, then unknown: not for us to guess
    codes = {(m.code, m.subject) for m in plan_repairs(books, venue, now_ms=9, settle_ms=0).mismatches}
    assert codes == {(MismatchCode.FILL_QTY, "entry"), (MismatchCode.UNKNOWN_ORDER, "someone"),
                     (MismatchCode.MISSING_FILL, "closed-long-ago"),
                     (MismatchCode.SUBMITTED_ORDER_MISSING, "gone")}


def test_the_venues_money_against_the_books() -> None:
    held = [VenuePosition("BTC", 0.2, 50_000.0)]
    limits = AccountLimits(leverage={"BTC": 5.0})
    fine = VenueAccount(equity=10_000.0, available=8_000.0, margin_used=2_000.0, currency="USDC")
    assert account_mismatches(10_200.0, fine, held, limits) == []  # within the 5 % tolerance
    short = account_mismatches(20_000.0, fine, held, limits)
    assert [(m.code, m.figures["venue_equity"]) for m in short] == [(MismatchCode.ACCOUNT, 10_000.0)]
    one_x = VenueAccount(equity=10_000.0, available=0.0, margin_used=10_000.0, currency="USDC")
    why = sorted(m.figures["why"] for m in account_mismatches(10_000.0, one_x, held, limits))
    assert why == ["margin_used_above_leverage", "no_free_margin"]
    assert account_mismatches(10_000.0, one_x, [], limits) == []  # nothing held: nothing at stake
    doubled = [VenuePosition("BTC", 0.2, 50_000.0, 10_000.0)]  # the price doubled: so did the margin
    at_mark = VenueAccount(equity=20_000.0, available=16_000.0, margin_used=4_000.0, currency="USDC")
    assert account_mismatches(20_000.0, at_mark, doubled, limits) == []
    unsaid = VenueAccount(equity=float("nan"), available=float("nan"), currency="USD")  # IB, early
    assert account_mismatches(10_000.0, unsaid, held, limits) == []



def test_the_account_tolerances_come_from_the_config_and_bad_ones_are_named() -> None:
    from fractald.config import ConfigError, config_from_dict
    from fractald.session import _account_limits

    config = config_from_dict({"daemon": {"reconcile_equity_tolerance": 0.2,
                                          "reconcile_margin_tolerance": 2.0}})
    limits = _account_limits(config)
    assert (limits.equity_tolerance, limits.margin_tolerance) == (0.2, 2.0)
    held = [VenuePosition("BTC", 0.2, 50_000.0)]
    fine = VenueAccount(equity=10_000.0, available=8_000.0, margin_used=2_000.0, currency="USDC")
    assert account_mismatches(12_000.0, fine, held, limits) == []  # 17 % below: within 20 %
    assert account_mismatches(12_000.0, fine, held, _account_limits(config_from_dict({})))
    with pytest.raises(ConfigError, match="reconcile_equity_tolerance"):
        config_from_dict({"daemon": {"reconcile_equity_tolerance": -0.1}})

# -- against the fake Hyperliquid, through a real router -------------------------------------------

def intent(role: str, order_type: OrderType, side: Side, qty: float, ts: int, **kw: object) -> OrderIntent:
    return OrderIntent(ts=ts, client_order_id=client_order_id("sig-r", role), symbol="BTC", side=side,
                       order_type=order_type, quantity=qty, role=role, **kw)  # type: ignore[arg-type]


async def test_reconciliation_reads_the_fake_venue_and_plans_the_repairs(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        fake = FakeHyperliquid([Coin("BTC", 5)], {"BTC": 50_000.0})
        user = fake.exchange.add_user(USER.address, usdc=10_000.0,
                                      agents=(Account.from_key(AGENT_KEY).address,))
        await nursery.start(fake.run)
        ledger = await AsyncLedger.open(tmp_path / "fractald.db")
        settings = HyperliquidSettings(USER.address, "testnet", rest_url=fake.rest_url, ws_url=fake.ws_url,
                                       timeout_s=2.0)
        venue = HyperliquidVenue(settings, AgentSigner(AGENT_KEY, mainnet=False), NonceClock(tmp_path / "n"))
        send, receive = trio.open_memory_channel[VenueReport](100)
        router = Router(venue, ledger, send, clock_ms=fake.now_ms, record_outcomes=False,
                        settings=RouterSettings(resolve_interval_s=0.05))
        await router.recover()
        now = fake.now_ms()
        entry = intent("entry", OrderType.MARKET, Side.BUY, 0.04, now, intended_price=50_000.0)
        stop = intent("stop1", OrderType.STOP_MARKET, Side.SELL, 0.04, now, trigger_price=48_000.0,
                      reduce_only=True)
        target = intent("tp1", OrderType.LIMIT, Side.SELL, 0.02, now, price=51_000.0, reduce_only=True)
        for i in (entry, stop, target):
            await router.handle(Submit(i))
        assert [r.kind for r in receive_all(receive)] == [OrderEvent.ACCEPT] * 3  # fills come by stream
        seen_by_stream = {str(f["tid"]) for f in user.fills}  # the entry's fill, as the stream gave it

        # While nobody looks: the target fills at the venue, someone cancels the stop by hand on the
        # website and places an order of their own.
        fake.set_price("BTC", 51_500.0)
        fake.exchange._cancel(user, fake.exchange.by_cloid[(user.address, "0x" + stop.client_order_id)])
        fake.exchange._place(user, {"a": 0, "b": True, "p": "40000", "s": "0.01", "r": False,
                                    "t": {"limit": {"tif": "Gtc"}}})
        working = {c: "BTC" for c in (stop.client_order_id, target.client_order_id)}
        snap = await take_snapshot(venue, working, now - 60_000, fake.now_ms())
        books = BooksView({c: book(c, 0.04 if c == stop.client_order_id else 0.02, ts=now) for c in working},
                          frozenset(seen_by_stream))
        plan = plan_repairs(books, snap, now_ms=snap.taken_ms, settle_ms=15_000)
        assert [(r.kind, r.client_order_id) for r in plan.repairs] == [
            (OrderEvent.FILL, target.client_order_id), (OrderEvent.CANCEL, stop.client_order_id)]
        [tp_fill] = [f for f in user.fills if f.get("cloid") == "0x" + target.client_order_id]
        assert plan.repairs[0].trade_id == str(tp_fill["tid"])
        assert [(m.code, m.figures["quantity"]) for m in plan.mismatches] == [(MismatchCode.UNKNOWN_ORDER, 0.01)]
        assert snap.positions == {"BTC": 0.02}
        # the venue's money: 20x by default here, so a 5x expectation is met with room to spare
        assert account_mismatches(10_000.0, snap.account, snap.position_details,
                                  AccountLimits(leverage={"BTC": 5.0})) == []
        assert [m.code for m in account_mismatches(50_000.0, snap.account, snap.position_details,
                                                   AccountLimits())] == [MismatchCode.ACCOUNT]
        await ledger.aclose()
        nursery.cancel_scope.cancel()


def receive_all(receive: trio.MemoryReceiveChannel[VenueReport]) -> list[VenueReport]:
    out = []
    while True:
        try:
            out.append(receive.receive_nowait())
        except trio.WouldBlock:
            return out


async def test_the_same_planner_through_binance(tmp_path: Path) -> None:
    """Binance's particulars (stops in the Algo Service, fills by Binance's order id) change nothing."""
    from fakevenue.binance_exchange import Symbol
    from fakevenue.binance_exchange_server import FakeBinanceFutures

    from fractald.venues.binance import Market
    from fractald.venues.binance_rest import BinanceRest
    from fractald.venues.binance_venue import BinanceVenue
    from fractald.venues.ws import Backoff

    fake = FakeBinanceFutures([Symbol("BTCUSDT")], {"BTCUSDT": 50_000.0})
    acct = fake.add_account("reconKey0001", "reconSecret0001")
    async with trio.open_nursery() as nursery:
        await nursery.start(fake.run)
        rest = BinanceRest(Market.FUTURES, fake.rest_url, "reconKey0001", "reconSecret0001",
                           backoff=Backoff(0.01, 0.05), timeout_s=2.0)
        venue = BinanceVenue(Market.FUTURES, rest, fake.ws_url, ["BTCUSDT"], backoff=Backoff(0.01, 0.05))
        await venue.start()
        ledger = await AsyncLedger.open(tmp_path / "fractald.db")
        send, receive = trio.open_memory_channel[VenueReport](100)
        router = Router(venue, ledger, send, clock_ms=fake.now_ms, record_outcomes=False,
                        settings=RouterSettings(resolve_interval_s=0.05))
        now = fake.now_ms()

        def order(role: str, order_type: OrderType, side: Side, qty: float, **kw: object) -> OrderIntent:
            return OrderIntent(ts=now, client_order_id=client_order_id("sig-b", role), symbol="BTCUSDT",
                               side=side, order_type=order_type, quantity=qty, role=role, **kw)  # type: ignore[arg-type]

        entry = order("entry", OrderType.MARKET, Side.BUY, 0.04, intended_price=50_000.0)
        stop = order("stop1", OrderType.STOP_MARKET, Side.SELL, 0.04, trigger_price=48_000.0, reduce_only=True)
        target = order("tp1", OrderType.LIMIT, Side.SELL, 0.02, price=51_000.0, reduce_only=True)
        for i in (entry, stop, target):
            await router.handle(Submit(i))
        seen = {r.trade_id for r in receive_all(receive) if r.kind is OrderEvent.FILL}
        seen |= {f.trade_id for f in await venue.fills_since(now - 60_000)}  # the entry's, as the stream gave it

        fake.set_price("BTCUSDT", 51_500.0)  # the target fills while nobody looks
        fake.exchange.cancel_algo(acct, {"clientAlgoId": stop.client_order_id})  # the stop, by hand
        working = {c: "BTCUSDT" for c in (stop.client_order_id, target.client_order_id)}
        snap = await take_snapshot(venue, working, now - 60_000, fake.now_ms())
        books = BooksView({c: BookOrder(c, "BTCUSDT", 0.04 if c == stop.client_order_id else 0.02, 0.0, now)
                           for c in working}, frozenset(seen))
        plan = plan_repairs(books, snap, now_ms=snap.taken_ms, settle_ms=15_000)
        assert plan.mismatches == ()
        assert sorted((r.kind.value, r.client_order_id) for r in plan.repairs) == sorted(
            [("FILL", target.client_order_id), ("CANCEL", stop.client_order_id)])
        assert snap.positions == {"BTCUSDT": pytest.approx(0.02)}
        await ledger.aclose()
        nursery.cancel_scope.cancel()
