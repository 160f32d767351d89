"""The deciders are pure reads of the engine's state: same state in, same events out, nothing changed."""

from __future__ import annotations

import json
from typing import Any

from fractald.core.execution import events as ev
from fractald.core.execution.decide_entry import entry_events
from fractald.core.execution.decide_report import report_event
from fractald.core.execution.engine import EngineParams, TradingEngine, event_sourced
from fractald.core.execution.orders import Liquidity, OrderEvent
from fractald.core.execution.reports import VenueReport
from fractald.core.models import Side, Signal, TradeTick
from fractald.core.risk.denial import DenialCode
from fractald.core.risk.params import GateParams, RiskParams, SizingParams

T0 = 19_700 * 86_400_000 + 3_600_000


def engine() -> TradingEngine:
    eng = TradingEngine(EngineParams(venue="sim", risk=RiskParams(
        sizing=SizingParams(risk_fraction=0.01, min_notional=0),
        gates=GateParams(max_symbol_exposure_fraction=90, max_gross_exposure_fraction=90,
                         max_cluster_exposure_fraction=90))))
    eng.on_trade(TradeTick("BTC", 100.0, 1.0, Side.BUY, "t0", T0))
    return eng


def sig(sid_strategy: str = "a") -> Signal:
    return Signal("BTC", Side.BUY, 100.0, 98.0, (102.0, 104.0), 90.0, sid_strategy, "1m", T0)


def state_of(eng: TradingEngine) -> Any:
    return json.loads(json.dumps(event_sourced(eng.snapshot())))


def test_the_entry_decider_reads_the_state_and_changes_nothing() -> None:
    eng = engine()
    before = state_of(eng)
    first = entry_events(eng, sig(), T0 + 1)
    assert [type(e) for e in first] == [ev.BracketOpened, ev.OrderIntent]
    assert entry_events(eng, sig(), T0 + 1) == first  # same state, same answer
    assert state_of(eng) == before
    assert eng.on_signal(sig(), T0 + 1)[:2] == first  # the engine takes exactly those
    again = entry_events(eng, sig(), T0 + 2)
    assert [type(e) for e in again] == [ev.SignalDenied]
    assert again[0].code is DenialCode.DUPLICATE_SIGNAL


def test_the_report_decider_names_anomalies_and_skips_duplicate_fills() -> None:
    eng = engine()
    intent = next(e for e in eng.on_signal(sig(), T0 + 1) if isinstance(e, ev.OrderIntent))
    order = eng.orders[intent.client_order_id]
    fill = VenueReport(OrderEvent.FILL, order.client_order_id, T0 + 2, trade_id="f1",
                       quantity=order.quantity, price=100.0, fee=0.1, liquidity=Liquidity.TAKER)
    before = state_of(eng)
    made = report_event(order, fill)
    assert isinstance(made, ev.OrderFilled) and made.quantity == order.quantity
    assert state_of(eng) == before
    eng.on_venue_report(fill)
    assert report_event(order, fill) is None  # the same trade id again: nothing
    unknown = report_event(None, VenueReport(OrderEvent.ACCEPT, "nope", T0 + 3))
    assert isinstance(unknown, ev.OrderAnomaly) and unknown.what == "unknown_order"
    late = report_event(order, VenueReport(OrderEvent.ACCEPT, order.client_order_id, T0 + 3))
    assert isinstance(late, ev.OrderAnomaly) and late.what == "invalid_transition"
