"""The deciders are pure reads of the engine's state: same state in, same events out, nothing changed."""

from __future__ import annotations

import json
from typing import Any

from paper_engine import PaperEngine

from fractald.core.execution import decide_brackets, decide_breakers, decide_commands
from fractald.core.execution import events as ev
from fractald.core.execution.decide_entry import entry_events
from fractald.core.execution.decide_report import report_event
from fractald.core.execution.engine import EngineParams, TradingEngine, event_sourced
from fractald.core.execution.orders import Liquidity, OrderEvent
from fractald.core.execution.reports import VenueReport
from fractald.core.models import Side, Signal, TradeTick
from fractald.core.risk.breakers import Breaker, TradingState
from fractald.core.risk.denial import DenialCode
from fractald.core.risk.params import GateParams, RiskParams, SizingParams

T0 = 19_700 * 86_400_000 + 3_600_000


def engine() -> TradingEngine:
    eng = PaperEngine(EngineParams(venue="sim", risk=RiskParams(
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
    order = eng.orders[order.client_order_id]  # a frozen value: the one the fill made
    assert report_event(order, fill) is None  # the same trade id again: nothing
    unknown = report_event(None, VenueReport(OrderEvent.ACCEPT, "nope", T0 + 3))
    assert isinstance(unknown, ev.OrderAnomaly) and unknown.what == "unknown_order"
    late = report_event(order, VenueReport(OrderEvent.ACCEPT, order.client_order_id, T0 + 3))
    assert isinstance(late, ev.OrderAnomaly) and late.what == "invalid_transition"


def _filled_trade() -> tuple[TradingEngine, str]:
    """An engine (venue "sim") holding one filled long of 100 with its stop at 98."""
    eng = engine()
    intent = next(e for e in eng.on_signal(sig(), T0 + 1) if isinstance(e, ev.OrderIntent))
    o = eng.orders[intent.client_order_id]
    eng.on_venue_report(VenueReport(OrderEvent.ACCEPT, o.client_order_id, T0 + 2))
    eng.on_venue_report(VenueReport(OrderEvent.FILL, o.client_order_id, T0 + 3, trade_id="f1",
                                    quantity=o.quantity, price=100.0, fee=0.1,
                                    liquidity=Liquidity.TAKER))
    return eng, o.signal_id


def test_the_bracket_decider_is_a_generator_that_changes_nothing_until_driven() -> None:
    eng, sid = _filled_trade()
    before = state_of(eng)
    b = eng.brackets[sid]
    decided = list(decide_brackets.exit_trade(eng, b, "test", T0 + 4, 99.0))
    assert [type(e) for e in decided][:1] == [ev.BracketExit]
    assert any(isinstance(e, ev.OrderIntent) and e.role == "exit1" for e in decided)
    assert state_of(eng) == before  # listing a decision applies nothing
    # A stop move the engine takes is exactly the decider's events.
    moved = list(decide_brackets.move_stop(eng, sid, 99.0, T0 + 4, "strategy"))
    assert eng.move_stop(sid, 99.0, T0 + 4) == moved
    refused = list(decide_brackets.move_stop(eng, sid, 97.0, T0 + 5, "strategy"))
    assert [type(e) for e in refused] == [ev.StopMoveRefused] and refused[0].reason == "would_loosen"


def _copy(eng: TradingEngine) -> TradingEngine:
    twin = PaperEngine(eng.params)
    twin.restore(json.loads(json.dumps(eng.snapshot())))
    return twin


def _drive(eng: TradingEngine, decision: Any) -> list[Any]:
    """What the engine's driver does with a decider: apply each event before deciding the next."""
    out = []
    for e in decision:
        eng.apply(e)
        out.append(e)
    return out


def test_the_command_and_breaker_deciders_are_read_only_and_the_engine_applies_them() -> None:
    eng, _ = _filled_trade()
    before = state_of(eng)
    first = next(decide_commands.halt(eng, T0 + 4, "test", Breaker.OPERATOR))
    assert isinstance(first, ev.BreakerTripped)
    assert list(decide_commands.pause(eng, T0 + 4)) == [ev.Paused(T0 + 4, True)]
    assert list(decide_breakers.counters(eng, T0 + 4)) == []
    assert state_of(eng) == before  # deciding applies nothing
    twin = _copy(eng)
    halted = _drive(twin, decide_commands.halt(twin, T0 + 4, "test", Breaker.OPERATOR))
    assert [type(e) for e in halted][:2] == [ev.BreakerTripped, ev.TradingStateChanged]
    flat = _drive(twin, decide_commands.flatten(twin, None, T0 + 4))
    assert any(isinstance(e, ev.OrderIntent) and e.role == "exit1" for e in flat)
    # The live engine makes exactly these events, and lands in the same state.
    assert eng.halt(T0 + 4, "test") + eng.flatten(None, T0 + 4) == halted + flat
    assert state_of(eng) == state_of(twin)
    resumed = _drive(twin, decide_commands.resume(twin, T0 + 5))
    assert resumed[-1].new is TradingState.ACTIVE and eng.resume(T0 + 5) == resumed


def test_a_fill_that_closes_a_trade_is_known_before_it_is_booked() -> None:
    eng, sid = _filled_trade()
    b = eng.brackets[sid]
    acc = eng.accounting
    before = state_of(eng)
    preview = acc.closed_by(b.strategy, "BTC", Side.SELL, b.open_qty, 103.0, 0.1, T0 + 9)
    assert state_of(eng) == before
    assert len(preview) == 1 and preview[0].exit_price == 103.0
    assert acc.closed_by(b.strategy, "BTC", Side.BUY, 1.0, 103.0, 0.1, T0 + 9) == []  # adds: closes none
    assert acc.apply_fill(b.strategy, "BTC", Side.SELL, b.open_qty, 103.0, 0.1, T0 + 9) == preview


def test_nothing_of_a_call_stays_on_the_engine() -> None:
    eng, _ = _filled_trade()
    fields = set(vars(eng))
    eng.on_trade(TradeTick("BTC", 97.0, 1.0, Side.SELL, "t1", T0 + 10))  # through the stop: exit
    eng.pause(T0 + 11)
    assert set(vars(eng)) == fields
    assert not any(name.startswith("_") for name in fields), sorted(fields)
