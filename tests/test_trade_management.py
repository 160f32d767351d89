"""Trade management has one owner: the engine runs the plan a strategy gives with its entry.

The plan (`ManagementPlan`) travels on `BracketOpened`, lives on the bracket
(and so in the snapshot), and `decide_brackets.manage` runs it at each bar:
break-even and trailing by R, time exit, invalidation on the plan's
timeframe. The strategy only proposes entries.
"""

from __future__ import annotations

import json
from typing import Any

import attrs
import pytest
from paper_engine import PaperEngine

from fractald.core.execution import events as ev
from fractald.core.execution.engine import TradingEngine
from fractald.core.execution.management import ManagementPlan
from fractald.core.execution.orders import OrderEvent
from fractald.core.execution.reports import VenueReport
from fractald.core.models import Bar, Side
from fractald.core.strategies.base import Setup
from fractald.core.strategies.confidence import Factors
from fractald.core.strategies.registry import create
from tests.test_engine import T0, M, bar, of, params, signal, started

PLAN = ManagementPlan("15m", 100.0, 90.0, 10.0, 1.0, 1.0, 1.5, 60 * M, None)


def opened(plan: ManagementPlan | None = PLAN) -> tuple[TradingEngine, str]:
    """An engine holding a long entered at 100 with its stop at 90 and far targets."""
    eng = started()
    sig = signal(1, stop=90.0, targets=(130.0, 140.0))
    out = eng.on_signal(sig, T0 + M, plan=plan)
    assert of(out, ev.BracketOpened)[0].plan == plan and of(out, ev.OrderFilled)
    return eng, sig.signal_id


def step(eng: TradingEngine, b: Bar) -> list[Any]:
    """What the pipeline does with a base bar: the engine's bar, then the plans."""
    return eng.on_bar(b) + eng.manage_trades(b, True)


def moves(events: list[Any]) -> list[tuple[float, str]]:
    return [(e.new, e.reason) for e in of(events, ev.StopMoved)]


def test_break_even_then_trailing_and_never_looser() -> None:
    eng, sid = opened()
    assert moves(step(eng, bar(2, 100, 111, 100, 110))) == [(100.0, "break_even")]
    assert moves(step(eng, bar(3, 110, 118, 109, 117))) == [(108.0, "trail")]
    assert step(eng, bar(4, 117, 117, 112, 113)) == []  # price fell back: the stop stays
    assert moves(step(eng, bar(5, 113, 125, 113, 124))) == [(115.0, "trail")]
    assert eng.brackets[sid].stop == 115.0


def test_a_move_that_rounds_to_no_tightening_is_not_asked_for() -> None:
    """The stop is judged on ticks (0.5 here): 108.2 is 108.0, the stop already; no refusal noise."""
    eng, _ = opened()
    step(eng, bar(2, 100, 118, 100, 117))
    out = step(eng, bar(3, 117, 118.2, 116, 117))
    assert out == [] and not of(out, ev.StopMoveRefused)


def test_time_exit_counts_from_the_first_fill() -> None:
    eng, sid = opened(attrs.evolve(PLAN, time_exit_ms=3 * M))
    first = eng.brackets[sid].ts_first_fill
    i = 2
    while True:
        out = step(eng, bar(i, 100, 100.5, 99.5, 100))
        if of(out, ev.BracketExit):
            break
        i += 1
    assert of(out, ev.BracketExit)[0].reason == "strategy_time"
    assert T0 + i * M + M - first >= 3 * M > T0 + (i - 1) * M + M - first
    assert sid not in eng.brackets and of(out, ev.TradeClosed)


def test_invalidation_is_judged_on_closes_of_the_plans_timeframe_only() -> None:
    eng, sid = opened(attrs.evolve(PLAN, invalidation=95.0))
    wick = bar(2, 100, 100, 94, 94.5)  # a 1m close beyond 95: not judged
    assert step(eng, wick) == [] and sid in eng.brackets
    m15 = Bar("BTC", "15m", T0, 100, 100, 94, 94.5, 10.0)
    out = eng.on_higher_timeframe_bar(m15) + eng.manage_trades(m15, False)
    assert of(out, ev.BracketExit)[0].reason == "strategy_invalidated"


def test_a_trade_without_a_plan_is_left_to_the_bracket_rules() -> None:
    eng, _ = opened(None)
    assert step(eng, bar(2, 100, 125, 100, 124)) == [] and eng.managed_trades("BTC") == {}


def test_the_plan_survives_the_event_log_and_the_snapshot_as_plain_json() -> None:
    eng, sid = opened()
    step(eng, bar(2, 100, 111, 100, 110))
    e = ev.BracketOpened(T0, sid, "s", "BTC", Side.BUY, "1m", 1.0, 100.0, 90.0, (130.0,), 90.0, 10.0, PLAN)
    assert ev.from_dict(json.loads(json.dumps(ev.to_dict(e)))) == e
    twin = PaperEngine(params())
    twin.restore(json.loads(json.dumps(eng.snapshot())))
    assert twin.managed_trades("BTC") == {sid: PLAN}
    b = bar(3, 110, 118, 109, 117)
    assert moves(twin.on_bar(b) + twin.manage_trades(b, True)) == moves(step(eng, b)) == [(108.0, "trail")]


def test_a_strategy_plans_management_from_its_parameters() -> None:
    strat = create("fvg_fill", "BTC-PERP", "15m",
                   {"break_even_at_r": 1.0, "trail_atr": 1.0, "trail_from_r": 1.5,
                    "time_exit_bars": 2, "min_confidence": 0})
    setup = Setup("fvg_fill", "BTC-PERP", "15m", Side.BUY, 100.0, 90.0, 10.0, 0, Factors(Side.BUY),
                  (), invalidation=92.0)
    sig = strat.plan_entry(setup)
    assert not hasattr(strat, "plan_exit")  # proposing entries is all a strategy does
    plan = strat.plan_management(sig, setup)  # type: ignore[arg-type]
    assert plan == ManagementPlan("15m", 100.0, 90.0, 10.0, 1.0, 1.0, 1.5, 2 * 15 * M, 92.0)


@pytest.mark.parametrize("bad", [{"timeframe": "7m"}, {"atr": -1.0}, {"stop": 100.0},
                                 {"trail_atr": 0.0}, {"time_exit_ms": -5}])
def test_a_bad_plan_is_refused_naming_the_field(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(bad)) if "stop" not in bad else "differ"):
        attrs.evolve(PLAN, **bad)


def test_break_even_is_the_average_entry_of_an_entry_filled_in_parts() -> None:
    """One notion of the entry for both owners' rules: the bracket's average (was the first fill)."""
    eng = TradingEngine(params(venue="hyperliquid"))
    eng.on_bar(bar(0, 100, 100, 100, 100))
    sig = signal(1, stop=90.0, targets=(130.0, 140.0))
    out = eng.on_signal(sig, T0 + M, plan=attrs.evolve(PLAN, trail_atr=None))
    entry = next(e for e in out if isinstance(e, ev.OrderIntent))
    half = entry.quantity / 2
    eng.on_venue_report(VenueReport(OrderEvent.ACCEPT, entry.client_order_id, T0 + M + 1))
    for i, price in enumerate((100.0, 102.0)):
        eng.on_venue_report(VenueReport(OrderEvent.FILL, entry.client_order_id, T0 + M + 2 + i,
                                        trade_id=f"f{i}", quantity=half, price=price))
    assert eng.brackets[sig.signal_id].avg_entry == 101.0
    assert moves(step(eng, bar(2, 101, 111.5, 101, 111))) == [(101.0, "break_even")]
