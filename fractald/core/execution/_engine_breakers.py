"""Circuit breakers and operator commands.

The engine checks its breakers after every price and order event
(`_check_equity`, cached while nothing changed) and after counted events
(`_check_counters`); a trip records the state change it causes and
withdraws entries not filled yet. Operator commands (pause, resume, halt,
flatten, kill, trip, set_risk) go through the same events.

Relies on (see `EngineCore`): `_begin`/`_emit`/`_finish` (EngineApply),
`state`/`equity` (EngineState), `_exit`/`_cancel`/`_submit` (EngineOrders).
"""

from __future__ import annotations

from typing import Any

from fractald.core.execution import events as ev
from fractald.core.execution._engine_core import EngineCore
from fractald.core.execution.brackets import BracketState
from fractald.core.execution.orders import QTY_EPS, OrderType, client_order_id
from fractald.core.models import Side
from fractald.core.risk.breakers import MS_PER_DAY, Breaker, TradingState, Trip
from fractald.core.risk.params import RiskParams

# Breakers whose trip leaves entries not yet filled alone. The day's trade count
# counts a trade when its bracket opens, so the trip at the limit comes with the
# trade that reached it: that trade (and the earlier ones) are within the limit
# and are kept; only the next one is refused (`decide_entry._trade_count_denial`).
_KEEPS_ENTRIES = (Breaker.TRADES_PER_DAY,)


class EngineBreakers(EngineCore):
    """Breaker checks and trips; the operator's commands."""

    def on_error(self, ts: int, source: str, detail: str) -> list[Any]:
        """A transient error somewhere (feed, venue): counted for the error-burst breaker."""
        self._begin(ts)
        self._emit(ev.ErrorRecorded(ts, source, detail))
        self._check_counters(ts)
        return self._finish()

    # ================================================================ breakers
    def _check_equity(self, ts: int, equity: float | None = None) -> None:
        """The equity breakers at `ts`, at the current equity (or at `equity`, what it is there).

        Skipped when it would find nothing: on the same UTC day and at the same
        equity as the last check, with no event applied and the same limits since,
        the peak and the trips already hold what this one would put there.
        """
        if equity is None:
            equity = self.accounting.equity
        breakers = self.breakers
        day = ts // MS_PER_DAY
        last = self._settled
        if last is not None and last[0] == day and last[1] == equity and last[2] is breakers.params:
            return
        self._check_breakers(ts, equity)
        self._settled = (day, equity, breakers.params)

    def _check_breakers(self, ts: int, equity: float) -> None:
        breakers = self.breakers
        if breakers.starts_day(ts):
            old = breakers.state
            cleared = breakers.roll_day(ts, equity)  # a new UTC day clears the daily breakers
            if cleared:
                self._emit(ev.BreakersCleared(ts, tuple(cleared), "daily_reset", equity))
                self._state_change(old, ts, "daily reset")
        breakers.mark_equity(ts, equity)
        for t in breakers.check_equity(ts, equity):
            self._trip(t)

    def _check_counters(self, ts: int) -> None:
        for t in self.breakers.check_counters(ts):
            self._trip(t)

    def _trip(self, t: Trip) -> None:
        old = self.state
        self._emit(ev.BreakerTripped(t.ts, t.breaker, t.state, t.reason, dict(t.figures)))
        self._state_change(old, t.ts, t.reason)
        if t.breaker not in _KEEPS_ENTRIES and self.state is not TradingState.ACTIVE:
            self._withdraw_entries(t.ts)

    def _state_change(self, old: TradingState, ts: int, reason: str) -> None:
        new = self.state
        if new is not old:
            self._emit(ev.TradingStateChanged(ts, old, new, reason))

    def _withdraw_entries(self, ts: int) -> None:
        """No new risk: entries that have not filled yet are withdrawn (none left: nothing to do)."""
        for b in list(self.brackets.values()):
            if b.state is BracketState.PENDING:
                self._exit(b, "trading_state", ts)
            elif not b.entry_done:
                self._cancel(b.entry_coid, ts, "trading_state")

    # ================================================================ commands
    def set_risk(self, params: RiskParams, ts: int | None = None, reason: str = "config") -> list[Any]:
        """Swap the risk parameters (sizing, gates, breakers, reliability, execution quality).

        For a running engine or one restored with older settings. Counts, trips
        and history stay. The change is an event (`RiskChanged`, returned for the
        ledger), so a replay applies the limits in force at each point. New
        limits are judged at the next market event (the breaker-check cache is
        dropped with any event), a lower trade-count limit at the next signal.
        """
        if not isinstance(params, RiskParams):
            raise TypeError(f"set_risk needs a RiskParams, got {type(params).__name__}")
        if params == self.params.risk:
            return []  # nothing changes: no event, and the check cache stays
        ts = self.last_ts if ts is None else ts
        self._begin(ts)
        self._emit(ev.RiskChanged(ts, params, reason))
        return self._finish()

    def trip(self, breaker: Breaker, state: TradingState, reason: str,
             figures: dict[str, Any] | None = None, ts: int | None = None) -> list[Any]:
        """Trip `breaker` from outside the engine (reconciliation, an operator): events to persist.

        The same path as a breaker the engine trips itself: the trip, the
        state change it causes, and the withdrawal of entries not filled yet.
        A breaker already tripped stays as it is (no events).
        """
        if state is TradingState.ACTIVE:
            raise ValueError(f"a trip must set REDUCING or HALTED, not {state.value}")
        ts = self.last_ts if ts is None else ts
        self._begin(ts)
        if breaker not in self.breakers.trips:
            self._trip(Trip(breaker, state, reason, ts, dict(figures or {})))
        return self._finish()

    def pause(self, ts: int | None = None) -> list[Any]:
        ts = self.last_ts if ts is None else ts
        self._begin(ts)
        if not self.paused:
            self._emit(ev.Paused(ts, True))
        return self._finish()

    def resume(self, ts: int | None = None) -> list[Any]:
        """Operator resume: clears the pause and the breakers that tripped (the drawdown peak
        restarts only if max_drawdown is one of them)."""
        ts = self.last_ts if ts is None else ts
        self._begin(ts)
        old = self.state
        if self.paused:
            self._emit(ev.Paused(ts, False))
        self._emit(ev.BreakersCleared(ts, tuple(self.breakers.trips), "resume", self.equity))
        self._state_change(old, ts, "operator resume")
        return self._finish()

    def halt(self, ts: int | None = None, reason: str = "operator halt",
             breaker: Breaker = Breaker.OPERATOR) -> list[Any]:
        ts = self.last_ts if ts is None else ts
        self._begin(ts)
        self._trip(Trip(breaker, TradingState.HALTED, reason, ts))
        return self._finish()

    def flatten(self, symbol: str | None = None, ts: int | None = None) -> list[Any]:
        """Close every position (of `symbol`, or all) with reduce-only market orders."""
        ts = self.last_ts if ts is None else ts
        self._begin(ts)
        for b in list(self.brackets.values()):
            if symbol is None or b.symbol == symbol:
                self._exit(b, "flatten", ts, self.last_price.get(b.symbol, 0.0))
        covered = {(b.strategy, b.symbol) for b in self.brackets.values()}
        for p in list(self.accounting.positions.values()):
            if (symbol is None or p.symbol == symbol) and abs(p.quantity) > QTY_EPS and (
                    p.strategy, p.symbol) not in covered:
                side = Side.SELL if p.quantity > 0 else Side.BUY
                self._submit(ev.OrderIntent(
                    ts, client_order_id(f"flatten:{p.strategy}:{p.symbol}:{ts}", "flatten"), p.symbol,
                    side, OrderType.MARKET, abs(p.quantity), reduce_only=True, strategy=p.strategy,
                    role="flatten", intended_price=self.last_price.get(p.symbol, 0.0)))
        return self._finish()

    def kill(self, ts: int | None = None) -> list[Any]:
        """Kill switch: halt and flatten everything."""
        # Its own breaker, so `breakers` shows the kill switch tripped (not an anonymous halt).
        return self.halt(ts, "kill switch", Breaker.KILL_SWITCH) + self.flatten(None, ts)
