"""The breaker decider: what a trip, a new UTC day or a counted event means for trading.

A trip records the state change it causes and withdraws entries not
filled yet (an unfilled entry is new risk the trip forbids). Generators
over the engine's state like the bracket decider (`decide_brackets`):
they read and yield events; the engine's driver evolves the state by each
before the decider goes on. The checks themselves (`CircuitBreakers.check_*`)
are pure reads; the engine runs the equity check at every price it sees and
keeps the day's opening equity and the drawdown peak (market-derived, not
events) up to date before asking here.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from fractald.core.execution import events as ev
from fractald.core.execution.brackets import BracketState
from fractald.core.execution.decide_brackets import Decision, cancel, exit_trade
from fractald.core.risk.breakers import Breaker, TradingState, Trip

if TYPE_CHECKING:
    from fractald.core.execution._engine_core import EngineCore as State

# Breakers whose trip leaves entries not yet filled alone. The day's trade count
# counts a trade when its bracket opens, so the trip at the limit comes with the
# trade that reached it: that trade (and the earlier ones) are within the limit
# and are kept; only the next one is refused (`decide_entry._trade_count_denial`).
_KEEPS_ENTRIES = (Breaker.TRADES_PER_DAY,)


def trip(s: State, t: Trip) -> Decision:
    """Trip `t`: the trip, the state change it causes, the withdrawal of unfilled entries."""
    old = s.breakers.state
    yield ev.BreakerTripped(t.ts, t.breaker, t.state, t.reason, dict(t.figures))
    yield from state_change(s, old, t.ts, t.reason)
    if t.breaker not in _KEEPS_ENTRIES and s.breakers.state is not TradingState.ACTIVE:
        yield from withdraw_entries(s, t.ts)


def trips(s: State, found: Iterable[Trip]) -> Decision:
    for t in found:
        yield from trip(s, t)


def counters(s: State, ts: int) -> Decision:
    """Trips the counted events call for (trades today, losses in a row, error bursts)."""
    yield from trips(s, s.breakers.check_counters(ts))


def daily_reset(
    s: State, cleared: tuple[Breaker, ...], old: TradingState, ts: int, equity: float
) -> Decision:
    """A new UTC day lifts the daily breakers that tripped (`old`: the state before the day rolled)."""
    yield ev.BreakersCleared(ts, cleared, "daily_reset", equity)
    yield from state_change(s, old, ts, "daily reset")


def state_change(s: State, old: TradingState, ts: int, reason: str) -> Decision:
    new = s.breakers.state
    if new is not old:
        yield ev.TradingStateChanged(ts, old, new, reason)


def withdraw_entries(s: State, ts: int) -> Decision:
    """No new risk: entries that have not filled yet are withdrawn (none left: nothing to do)."""
    for b in list(s.brackets.values()):
        if b.state is BracketState.PENDING:
            yield from exit_trade(s, b, "trading_state", ts)
        elif not b.entry_done:
            yield from cancel(s, b.entry_coid, ts, "trading_state")
