"""Max trades per day at its exact threshold, and the engine's public `set_risk` and `trip`.

The N-th trade of a day reaches the limit: it is taken and kept (its entry
fills, its bracket stays open), the breaker shows tripped at N of N, and the
(N+1)-th signal is refused with the code `trades_per_day`. A new UTC day
clears it. Trips from outside (`trip`) and new limits (`set_risk`) take
the same paths as the engine's own.
"""

from __future__ import annotations

import json
import pickle
from typing import Any

import attrs
import pytest
from paper_engine import PaperEngine

from fractald.core.execution import events as ev
from fractald.core.execution.brackets import BracketState
from fractald.core.execution.engine import EngineParams, TradingEngine
from fractald.core.execution.orders import OrderStatus, OrderType
from fractald.core.execution.paper import PaperParams
from fractald.core.models import Bar, Side, Signal
from fractald.core.risk.breakers import Breaker, TradingState
from fractald.core.risk.denial import DenialCode
from fractald.core.risk.params import BreakerParams, GateParams, RiskParams, SizingParams

M = 60_000
DAY = 86_400_000
T0 = 19_700 * DAY + 3_600_000  # 01:00 UTC
WIDE = GateParams(max_symbol_exposure_fraction=50.0, max_gross_exposure_fraction=50.0,
                  max_cluster_exposure_fraction=50.0, max_open_positions=100, max_heat_fraction=1.0)


def risk(limit: int, **breakers: Any) -> RiskParams:
    return RiskParams(sizing=SizingParams(risk_fraction=0.001, min_notional=0), gates=WIDE,
                      breakers=BreakerParams(max_trades_per_day=limit, **breakers))


def engine(limit: int, entry_type: OrderType = OrderType.MARKET) -> TradingEngine:
    return PaperEngine(EngineParams(
        risk=risk(limit), entry_type=entry_type,
        paper=PaperParams(latency_ms=0, slippage_bps=0, maker_fee_bps=0, taker_fee_bps=0)))


def flat(ts: int, px: float = 100.0) -> Bar:
    return Bar("BTC", "1m", ts, px, px, px, px, 1.0)


def sig(strategy: str, ts: int, px: float = 100.0) -> Signal:
    return Signal("BTC", Side.BUY, px, px - 2, (px + 2, px + 4), 90.0, strategy, "1m", ts)


def of(events: list[Any], cls: type) -> list[Any]:
    return [e for e in events if isinstance(e, cls)]


def opened(events: list[Any]) -> bool:
    return bool(of(events, ev.BracketOpened)) and not of(events, ev.SignalDenied)


def entry_status(eng: TradingEngine, strategy: str, ts: int) -> OrderStatus:
    b = eng.brackets[sig(strategy, ts).signal_id]
    return eng.orders[b.entry_coid].status


@pytest.mark.parametrize("limit", [1, 3])
def test_the_nth_trade_is_kept_and_the_next_is_denied_with_the_code(limit: int) -> None:
    eng = engine(limit)
    eng.on_bar(flat(T0))
    ts = T0 + M
    names = [f"s{i}" for i in range(limit)]
    for n in names[:-1]:  # below the limit: taken, nothing trips
        out = eng.on_signal(sig(n, ts), ts)
        assert opened(out) and not of(out, ev.BreakerTripped)
    out = eng.on_signal(sig(names[-1], ts), ts)  # the N-th: taken, kept, and the breaker trips
    assert opened(out)
    assert not of(out, ev.BracketExit) and not of(out, ev.CancelRequested)
    trips = of(out, ev.BreakerTripped)
    assert [t.breaker for t in trips] == [Breaker.TRADES_PER_DAY]
    assert trips[0].figures == {"value": limit, "limit": limit}
    assert eng.state is TradingState.REDUCING
    for n in names:
        assert entry_status(eng, n, ts) is OrderStatus.FILLED
    out += eng.on_bar(flat(ts))  # held through the next bar, not withdrawn
    assert not of(out, ev.BracketExit) and len(eng.brackets) == limit
    assert all(b.state is BracketState.OPEN for b in eng.brackets.values())
    denied = of(eng.on_signal(sig("late", ts + M), ts + M), ev.SignalDenied)
    assert [d.code for d in denied] == [DenialCode.TRADES_PER_DAY]
    assert denied[0].figures == {"value": limit, "limit": limit}
    assert "trades_per_day" in {t["breaker"] for t in eng.status()["trips"]}


def test_a_pending_limit_entry_that_reaches_the_limit_stays_working() -> None:
    eng = engine(2, OrderType.LIMIT)
    eng.on_bar(flat(T0, 101.0))
    ts = T0 + M
    for n in ("a", "b"):  # limit entries at 100 with price at 101: resting
        assert opened(eng.on_signal(sig(n, ts), ts))
    assert eng.state is TradingState.REDUCING
    assert {entry_status(eng, n, ts) for n in ("a", "b")} == {OrderStatus.ACCEPTED}
    # Another breaker going REDUCING while already REDUCING still withdraws them: new risk is
    # what that one forbids, and the trade count never did.
    out = eng.trip(Breaker.RECONCILIATION, TradingState.REDUCING, "ledger and broker differ",
                   {"mismatches": 1})
    assert not of(out, ev.TradingStateChanged)  # the state was REDUCING already
    assert {e.signal_id for e in of(out, ev.BracketExit)} == {sig(n, ts).signal_id for n in "ab"}
    assert {e.reason for e in of(out, ev.BracketExit)} == {"trading_state"}
    assert eng.brackets == {}


def test_a_new_utc_day_clears_the_count_and_the_trip() -> None:
    eng = engine(2)
    eng.on_bar(flat(T0))
    ts = T0 + M
    for n in ("a", "b"):
        assert opened(eng.on_signal(sig(n, ts), ts))
    assert eng.on_signal(sig("c", ts), ts)[0].code is DenialCode.TRADES_PER_DAY
    next_day = (T0 // DAY + 1) * DAY
    # A signal of the new day before any of its prices: the trip is not cleared yet, and the
    # denial does not claim a count the new day has not got.
    early = eng.on_signal(sig("c", next_day), next_day)
    assert [d.code for d in of(early, ev.SignalDenied)] == [DenialCode.TRADING_REDUCING]
    out = eng.on_bar(flat(next_day))
    cleared = of(out, ev.BreakersCleared)
    assert cleared and cleared[0].reason == "daily_reset" and Breaker.TRADES_PER_DAY in cleared[0].breakers
    assert eng.state is TradingState.ACTIVE and eng.breakers.trades_today == 0
    assert opened(eng.on_signal(sig("c", next_day + M), next_day + M))


def test_resume_clears_the_trip_but_not_the_days_count() -> None:
    """The limit is a cap on the day: a resume lifts the trip, the count still refuses more."""
    eng = engine(1)
    eng.on_bar(flat(T0))
    assert opened(eng.on_signal(sig("a", T0 + M), T0 + M))
    eng.resume(T0 + M)
    assert eng.state is TradingState.ACTIVE
    out = eng.on_signal(sig("b", T0 + 2 * M), T0 + 2 * M)
    assert [d.code for d in of(out, ev.SignalDenied)] == [DenialCode.TRADES_PER_DAY]
    eng.set_risk(risk(2))  # the operator raises the limit: one more is allowed
    assert opened(eng.on_signal(sig("b", T0 + 2 * M), T0 + 2 * M))


def test_a_rebuild_from_the_events_lands_in_the_same_state() -> None:
    eng = engine(2)
    log = eng.on_bar(flat(T0))
    ts = T0 + M
    for n in ("a", "b", "c"):
        log += eng.on_signal(sig(n, ts), ts)
    log += eng.on_bar(flat(ts))
    again = engine(2)
    for e in log:
        again.apply(e)
    assert set(again.brackets) == set(eng.brackets) and len(again.brackets) == 2
    assert again.state is TradingState.REDUCING and again.breakers.trades_today == 2


# --------------------------------------------------------------------------- set_risk


def test_set_risk_reaches_every_part_and_keeps_counts() -> None:
    eng = engine(5)
    eng.on_bar(flat(T0))
    assert opened(eng.on_signal(sig("a", T0 + M), T0 + M))
    sent = eng.rate.history()
    assert len(sent) == 3  # the entry and two targets
    for i in range(3):  # fewer than the default burst: no trip
        eng.on_error(T0 + M + i, "feed", "gap")
    sent_errors = eng.breakers.errors
    assert sent_errors == (T0 + M, T0 + M + 1, T0 + M + 2)
    new = RiskParams(
        sizing=SizingParams(risk_fraction=0.002, min_notional=0),
        gates=attrs.evolve(WIDE, correlation_window=10, correlation_threshold=0.5,
                           max_orders_per_window=7, order_rate_window_ms=1_000),
        breakers=BreakerParams(max_trades_per_day=9, error_burst_count=2))
    eng.set_risk(new)
    assert eng.params.risk is new and eng.breakers.params is new.breakers
    assert eng.reliability.params is new.reliability and eng.exec_quality.params is new.exec_quality
    assert (eng.correlation.window, eng.correlation.threshold) == (10, 0.5)
    assert (eng.rate.limit, eng.rate.window_ms) == (7, 1_000)
    assert eng.rate.history() == sent  # the orders just sent still count
    assert eng.breakers.errors == sent_errors[-2:] and eng.breakers.trades_today == 1
    same = attrs.evolve(new)  # equal but another object: nothing changes
    eng.set_risk(same)
    assert eng.params.risk is new
    with pytest.raises(TypeError, match="RiskParams"):
        eng.set_risk(new.breakers)  # type: ignore[arg-type]


def test_set_risk_tightened_breakers_trip_at_the_next_price() -> None:
    """The breaker-check cache must not hide new limits (it is keyed on the limits object)."""
    eng = engine(5)
    eng.on_bar(flat(T0))
    assert opened(eng.on_signal(sig("a", T0 + M), T0 + M))
    eng.on_bar(Bar("BTC", "1m", T0 + M, 100, 100, 99, 99, 1.0))  # a small loss, marked
    eng.on_bar(flat(T0 + 2 * M, 99))
    assert not eng.breakers.trips
    eng.set_risk(risk(5, max_drawdown_fraction=0.00001))
    out = eng.on_bar(flat(T0 + 3 * M, 99))  # same price, same day: only the limits changed
    assert [t.breaker for t in of(out, ev.BreakerTripped)] == [Breaker.MAX_DRAWDOWN]
    assert eng.state is TradingState.HALTED


def test_set_risk_on_an_unpickled_engine() -> None:
    eng = engine(5)
    eng.on_bar(flat(T0))
    back = pickle.loads(pickle.dumps(eng))
    back.set_risk(risk(1))
    assert back.breakers.params.max_trades_per_day == 1 and eng.breakers.params.max_trades_per_day == 5
    assert opened(back.on_signal(sig("a", T0 + M), T0 + M))
    assert back.on_signal(sig("b", T0 + M), T0 + M)[0].code is DenialCode.TRADES_PER_DAY


# --------------------------------------------------------------------------- trip


def test_trip_goes_reducing_withdraws_entries_and_is_idempotent() -> None:
    eng = engine(5, OrderType.LIMIT)
    eng.on_bar(flat(T0, 101.0))
    assert opened(eng.on_signal(sig("a", T0 + M), T0 + M))
    out = eng.trip(Breaker.RECONCILIATION, TradingState.REDUCING, "mismatch: x", {"n": 1}, T0 + 2 * M)
    kinds = [type(e) for e in out]
    assert kinds[:2] == [ev.BreakerTripped, ev.TradingStateChanged]
    assert out[0].figures == {"n": 1} and out[0].ts == T0 + 2 * M
    assert out[1].old is TradingState.ACTIVE and out[1].new is TradingState.REDUCING
    assert of(out, ev.BracketExit)[0].reason == "trading_state" and eng.brackets == {}
    assert eng.trip(Breaker.RECONCILIATION, TradingState.HALTED, "again") == []
    assert eng.state is TradingState.REDUCING
    assert eng.on_signal(sig("b", T0 + 2 * M), T0 + 2 * M)[0].code is DenialCode.TRADING_REDUCING
    with pytest.raises(ValueError, match="REDUCING or HALTED"):
        eng.trip(Breaker.OPERATOR, TradingState.ACTIVE, "no")


def test_set_risk_is_an_event_and_a_replay_of_the_log_applies_it() -> None:
    """An operator's `risk set` is in the log: replaying the events alone gives the same limits."""
    eng = engine(5)
    log: list[Any] = []
    assert eng.set_risk(risk(5)) == []  # nothing changes: no event
    changed = eng.set_risk(risk(2), T0 + 5, "operator")
    assert [type(e) for e in changed] == [ev.RiskChanged]
    assert changed[0].risk == risk(2) and changed[0].reason == "operator" and changed[0].ts == T0 + 5
    log += changed
    stored = json.loads(json.dumps([ev.to_dict(e) for e in log]))
    rebuilt = engine(5)
    for d in stored:
        rebuilt.apply(ev.from_dict(d))
    assert rebuilt.params == eng.params and rebuilt.breakers.params.max_trades_per_day == 2
