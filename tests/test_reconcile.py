"""Intent lifecycle in the ledger and reconciliation (ledger vs broker), on real SQLite files.

The session tests drive a real TradingEngine (paper broker inside) through
a real TradingSession and AsyncLedger; the comparison tests feed the pure
`compare` plain views, one rule at a time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import structlog

from fractald.actors.events import EventBus
from fractald.config import Config
from fractald.core.execution import decide_brackets
from fractald.core.execution import events as ev
from fractald.core.execution.engine import EngineParams, TradingEngine
from fractald.core.execution.paper import PaperParams
from fractald.core.execution.paper_venue import PaperVenue, paper_venue_for
from fractald.core.models import Bar, Side, Signal
from fractald.core.risk.breakers import Breaker, TradingState
from fractald.core.risk.params import GateParams, RiskParams, SizingParams
from fractald.core.risk.sizing import Instrument
from fractald.errors import InvariantViolation, StateCorrupt
from fractald.reconcile import (
    NOT_SENT,
    LedgerView,
    MismatchCode,
    VenueFill,
    VenueOrder,
    VenueReconciler,
    VenueView,
    compare,
)
from fractald.session import TradingSession
from fractald.store.ledger import IntentRecord, Ledger
from fractald.store.writer import AsyncLedger
from fractald.venues.interface import Venue
from fractald.venues.paper import PaperVenueAdapter

M = 60_000
T0 = 1_700_000_000_000 - (1_700_000_000_000 % 86_400_000) + 3_600_000


# ------------------------------------------------------------------ the ledger's batch
def test_batch_records_intent_claim_and_outcome_together(tmp_path: Path) -> None:
    with Ledger.open(tmp_path / "l.db") as led:
        led.commit_batch([("order_intent", {"client_order_id": "a"}, 5)], [("a", {"q": 1})],
                         {"s": 1}, submissions=[("a", 5)], outcomes=[("a", "filled", 6)])
        rec = led.get_intent("a")
        assert rec is not None and rec.submitted_ms == 5 and rec.outcome == "filled"
        assert led.pending_intents() == []


def test_second_claim_in_a_batch_rolls_back_everything(tmp_path: Path) -> None:
    with Ledger.open(tmp_path / "l.db") as led:
        led.commit_batch([("order_intent", {}, 1)], [("a", {"q": 1})], submissions=[("a", 1)])
        seq, snaps = led.last_seq(), led.connection.execute("SELECT count(*) FROM snapshots").fetchone()
        with pytest.raises(InvariantViolation, match="already submitted"):
            led.commit_batch([("order_intent", {}, 2)], [("b", {"q": 2})], {"s": 2},
                             submissions=[("b", 2), ("a", 2)])
        assert led.last_seq() == seq and led.get_intent("b") is None
        assert led.connection.execute("SELECT count(*) FROM snapshots").fetchone() == snaps


def test_a_second_outcome_in_a_batch_keeps_the_first(tmp_path: Path) -> None:
    with Ledger.open(tmp_path / "l.db") as led:
        led.commit_batch([], [("a", {"q": 1})], outcomes=[("a", "canceled", 1)])
        led.commit_batch([("x", {}, 2)], outcomes=[("a", "filled", 2)])
        rec = led.get_intent("a")
        assert rec is not None and rec.outcome == "canceled" and led.last_seq() == 1


def test_a_router_records_and_claims_before_sending_exactly_once(tmp_path: Path) -> None:
    with Ledger.open(tmp_path / "l.db") as led:
        assert led.record_and_claim("a", {"q": 1}, 10) is True
        assert led.record_and_claim("a", {"q": 1}, 11) is False  # a restart: never send again
        rec = led.get_intent("a")
        assert rec is not None and rec.submitted_ms == 10 and rec.outcome is None
        assert [r.client_order_id for r in led.pending_intents()] == ["a"]


def test_positions_are_rederived_from_the_fills_in_the_log(tmp_path: Path) -> None:
    with Ledger.open(tmp_path / "l.db") as led:
        fills = [("BTC", "BUY", 2.0, "t1", "a"), ("BTC", "SELL", 0.5, "t2", "b"),
                 ("ETH", "SELL", 3.0, "t3", "c")]
        led.commit_batch([("order_filled", {"symbol": s, "side": side, "quantity": q,
                                            "trade_id": t, "client_order_id": c}, i)
                          for i, (s, side, q, t, c) in enumerate(fills)])
        assert led.fill_positions() == {"BTC": 1.5, "ETH": -3.0}
        assert led.fills_of(["a", "c", "zz"]) == {"a": {"t1": 2.0}, "c": {"t3": 3.0}}
        assert led.last_fill_ts() == 2


# ------------------------------------------------------------------ the pure comparison
def intent(cid: str, submitted: bool = True, outcome: str | None = None) -> IntentRecord:
    return IntentRecord(cid, {}, 1, 1 if submitted else None, outcome, None)


def view(pending: list[IntentRecord] = (), at_venue: list[IntentRecord] = (),  # type: ignore[assignment]
         fills: dict[str, dict[str, float]] | None = None,
         positions: dict[str, float] | None = None) -> LedgerView:
    return LedgerView({r.client_order_id: r for r in pending},
                      {r.client_order_id: r for r in at_venue}, fills or {}, positions or {}, 0)


def venue(open_orders: list[VenueOrder] = (), looked_up: dict[str, VenueOrder | None] | None = None,  # type: ignore[assignment]
          fills: list[VenueFill] = (), positions: dict[str, float] | None = None) -> VenueView:  # type: ignore[assignment]
    return VenueView(list(open_orders), looked_up or {}, list(fills), positions or {})


def vo(cid: str, status: str = "open", qty: float = 1.0, filled: float = 0.0) -> VenueOrder:
    return VenueOrder(cid, "BTC", status, qty, filled)


def test_agreement_is_clean() -> None:
    a = intent("a")
    report = compare(view([a], [a], positions={"BTC": 1.0}),
                     venue([vo("a")], positions={"BTC": 1.0}), books={"BTC": 1.0})
    assert report.clean and report.repairs == ()


def test_a_terminal_order_at_the_venue_is_repaired_definitively() -> None:
    report = compare(view([intent("a")]), venue(looked_up={"a": vo("a", "canceled")}))
    assert report.clean
    assert [(r.client_order_id, r.outcome) for r in report.repairs] == [("a", "canceled")]


def test_an_unsent_intent_the_venue_never_saw_is_closed_as_not_sent() -> None:
    report = compare(view([intent("a", submitted=False)]), venue(looked_up={"a": None}))
    assert [(r.client_order_id, r.outcome) for r in report.repairs] == [("a", NOT_SENT)]


def test_a_submitted_intent_the_venue_never_saw_is_a_mismatch() -> None:
    report = compare(view([intent("a")]), venue(looked_up={"a": None}))
    assert [m.code for m in report.mismatches] == [MismatchCode.SUBMITTED_ORDER_MISSING]
    assert report.repairs == ()


def test_an_open_order_the_ledger_never_recorded_is_a_mismatch() -> None:
    report = compare(view(), venue([vo("x", qty=2.0)]))
    assert [(m.code, m.subject, m.figures["quantity"]) for m in report.mismatches] == [
        (MismatchCode.UNKNOWN_ORDER, "x", 2.0)]


def test_an_open_order_whose_intent_has_an_outcome_is_a_mismatch() -> None:
    done = intent("a", outcome="filled")
    report = compare(view(at_venue=[done]), venue([vo("a")]))
    assert [m.code for m in report.mismatches] == [MismatchCode.ORDER_OPEN_BUT_CLOSED]


def test_filled_quantity_and_missing_fills_are_mismatches() -> None:
    a = intent("a")
    report = compare(view([a], [a], fills={"a": {"t1": 0.25}}),
                     venue([vo("a", "partially_filled", 1.0, 0.5)],
                           fills=[VenueFill("a", "t1", 1), VenueFill("a", "t2", 2)]))
    assert sorted(m.code.value for m in report.mismatches) == ["fill_qty", "missing_fill"]
    missing = next(m for m in report.mismatches if m.code is MismatchCode.MISSING_FILL)
    assert missing.figures["trade_id"] == "t2"


@pytest.mark.parametrize("theirs, ok", [(1.0, True), (1.0 + 1e-12, True), (1.001, False),
                                        (0.0, False)])
def test_positions_compared_at_the_tolerance(theirs: float, ok: bool) -> None:
    report = compare(view(positions={"BTC": 1.0}), venue(positions={"BTC": theirs}),
                     books={"BTC": theirs})
    assert report.clean is ok
    if not ok:
        assert {m.figures["source"] for m in report.mismatches} == {"venue", "books"}


# ------------------------------------------------------------------ session + paper venue
def engine_params() -> EngineParams:
    return EngineParams(
        initial_equity=10_000.0, instruments=(Instrument("BTC", lot_size=0.001, tick_size=0.5),),
        paper=PaperParams(latency_ms=0, slippage_bps=0.0, maker_fee_bps=0.0, taker_fee_bps=0.0),
        risk=RiskParams(sizing=SizingParams(risk_fraction=0.01, min_notional=0),
                        gates=GateParams(max_symbol_exposure_fraction=50,
                                         max_gross_exposure_fraction=50,
                                         max_cluster_exposure_fraction=50)))


class EnginePipeline:
    """The smallest pipeline: bars straight to the engine (the session only needs `.engine`)."""

    def __init__(self) -> None:
        self.engine = TradingEngine(engine_params())
        self.venue = paper_venue_for(self.engine)

    def on_bar(self, bar: Bar, accepting: bool = True) -> list[Any]:
        return self.engine.on_bar(bar, self.venue)


def flat(i: int, px: float = 100.0) -> Bar:
    return Bar("BTC", "1m", T0 + i * M, px, px, px, px, 10.0)


async def new_session(tmp_path: Path, bus: EventBus) -> TradingSession:
    ledger = await AsyncLedger.open(tmp_path / "state" / "fractald.db")
    return TradingSession(Config(), ledger, structlog.get_logger("test"), bus, EnginePipeline(), {})


async def open_bracket(session: TradingSession) -> list[Any]:
    await session.on_bar(flat(0))
    events = session.engine.on_signal(
        Signal("BTC", Side.BUY, 100.0, 98.0, (102.0, 104.0), 90.0, "s", "1m", T0 + M), T0 + M,
        venue=session.pipeline.venue)
    await session.commit(events, T0 + M)
    return events


async def test_paper_session_records_intents_claims_and_outcomes(tmp_path: Path) -> None:
    session = await new_session(tmp_path, EventBus())
    events = await open_bracket(session)
    intents = [e for e in events if isinstance(e, ev.OrderIntent)]
    assert [i.role for i in intents] == ["entry", "tp1", "tp2"]

    def rows(led: Ledger) -> list[IntentRecord]:
        return [r for r in (led.get_intent(i.client_order_id) for i in intents) if r]
    stored = {r.client_order_id: r for r in await session.ledger.run(rows)}
    assert all(stored[i.client_order_id].submitted for i in intents)
    entry = stored[intents[0].client_order_id]
    assert entry.outcome == "filled"  # market entry filled in the same bar, same transaction
    pending = {r.client_order_id for r in await session.ledger.pending_intents()}
    assert pending == {i.client_order_id for i in intents[1:]}  # targets still working
    report = await session.reconcile("test")
    assert report is not None and report.clean and report.repairs == ()
    assert report.figures["positions"] == {"BTC": pytest.approx(50.0)}
    await session.ledger.aclose()


async def test_an_order_ended_in_memory_is_repaired_from_the_engine(tmp_path: Path) -> None:
    session = await new_session(tmp_path, EventBus())
    events = await open_bracket(session)
    tp2 = next(e for e in events if isinstance(e, ev.OrderIntent) and e.role == "tp2")
    # Cancel without committing: the ledger still shows it pending, the broker has it canceled.
    engine = session.engine
    step = engine._begin(T0 + 2 * M, session.pipeline.venue)
    engine._run(step, decide_brackets.cancel(engine, tp2.client_order_id, T0 + 2 * M, "test"))
    engine._finish(step)
    assert session.engine.orders[tp2.client_order_id].status.terminal
    report = await session.reconcile("test")
    assert report is not None and report.clean
    assert [(r.client_order_id, r.outcome) for r in report.repairs] == [
        (tp2.client_order_id, "canceled")]
    rec = await session.ledger.get_intent(tp2.client_order_id)
    assert rec is not None and rec.outcome == "canceled"
    assert await session.ledger.run(lambda led: [e.kind for e in led.events_after(0)][-1]) \
        == "intent_repaired"
    await session.ledger.aclose()


async def test_a_mismatch_goes_reducing_says_so_and_persists_the_trip(tmp_path: Path) -> None:
    bus = EventBus()
    session = await new_session(tmp_path, bus)
    await open_bracket(session)
    # A submitted intent the broker never saw: nothing definitive can be said about it.
    await session.ledger.commit_batch([], [("ghost", {"symbol": "BTC"})],
                                      submissions=[("ghost", 1)])
    with bus.subscribe({"reconcile_mismatch", "breaker_tripped"}) as seen:
        report = await session.reconcile("test")
        published = [seen.receive_nowait() for _ in range(2)]
    assert report is not None and not report.clean
    assert [(m.code, m.subject) for m in report.mismatches] == [
        (MismatchCode.SUBMITTED_ORDER_MISSING, "ghost")]
    assert published[0].kind == "reconcile_mismatch"
    assert published[0].data["mismatches"][0]["subject"] == "ghost"
    assert session.engine.state is TradingState.REDUCING
    assert Breaker.RECONCILIATION in session.engine.breakers.trips
    kinds = await session.ledger.run(lambda led: [e.kind for e in led.events_after(0)])
    assert kinds[-2:] == ["breaker_tripped", "trading_state"]
    # A second pass finds the same thing but does not trip (or log a trip) again.
    await session.reconcile("again")
    assert await session.ledger.run(lambda led: [e.kind for e in led.events_after(0)]) == kinds
    # The trip survives a restart: recovery restores the snapshot written with it.
    restored = await TradingSession.recover(Config(), session.ledger, structlog.get_logger("t"), bus)
    assert restored.engine.state is TradingState.REDUCING
    await session.ledger.aclose()


def test_paper_venue_is_a_venue_and_a_venue_reconciler() -> None:
    adapter = PaperVenueAdapter(PaperVenue())
    assert isinstance(adapter, VenueReconciler) and isinstance(adapter, Venue)


async def test_recovery_refuses_a_log_its_snapshot_does_not_cover(tmp_path: Path) -> None:
    session = await new_session(tmp_path, EventBus())
    await open_bracket(session)
    log = structlog.get_logger("t")
    # Repairs may follow the newest snapshot: they change no trading state.
    await session.ledger.commit_batch([("intent_repaired", {"client_order_id": "x"}, 1)])
    assert (await TradingSession.recover(Config(), session.ledger, log, EventBus())).engine.orders
    # A damaged newest snapshot: the older one does not cover the orders after it. The
    # session waits for bars to remake them (it commits nothing meanwhile); these orders
    # came from no bar, so a feed that ends first is corrupt state, never orders sent twice.
    await session.ledger.run(lambda led: led.connection.execute(
        "UPDATE snapshots SET sha256 = 'bad' WHERE id = (SELECT max(id) FROM snapshots)"))
    behind = await TradingSession.recover(Config(), session.ledger, log, EventBus())
    assert behind.catching_up
    with pytest.raises(StateCorrupt, match="the feed ended while") as info:
        behind.feed_ended()
    assert "runbooks/state-database-corrupt.md" in str(info.value)
    assert info.value.exit_status == 65
    await session.ledger.aclose()
