"""Circuit-breaker checks at each price, and the operator's commands.

The engine checks its equity breakers at every price and order event
(`_check_equity`, skipped while nothing it reads changed: the breakers'
`checked` memo) and its counted breakers after counted events; what a trip
means is `decide_breakers`'. Operator commands (pause, resume, halt,
flatten, kill, trip, set_risk) are `decide_commands`' events, run here.

Relies on (see `EngineCore`): `_begin`/`_run`/`_finish` (EngineApply).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fractald.core.execution import decide_breakers, decide_commands
from fractald.core.execution import events as ev
from fractald.core.execution._engine_core import EngineCore
from fractald.core.risk.breakers import MS_PER_DAY, Breaker, TradingState
from fractald.core.risk.params import RiskParams

if TYPE_CHECKING:
    from fractald.core.execution._engine_apply import Step
    from fractald.core.execution.paper_venue import PaperVenue


class EngineBreakers(EngineCore):
    """Breaker checks; the operator's commands."""

    def on_error(
        self, ts: int, source: str, detail: str, venue: PaperVenue | None = None
    ) -> list[Any]:
        """A transient error somewhere (feed, venue): counted for the error-burst breaker."""
        step = self._begin(ts, venue)
        self._run(step, (ev.ErrorRecorded(ts, source, detail),))
        self._run(step, decide_breakers.counters(self, ts))
        return self._finish(step)

    # ================================================================ breakers
    def _check_equity(self, step: Step, ts: int, equity: float | None = None) -> None:
        """The equity breakers at `ts`, at the current equity (or at `equity`, what it is there).

        Skipped when it would find nothing: on the same UTC day and at the same
        equity as the last check, with the same trips, peak and limits since,
        the peak and the trips already hold what this one would put there.
        """
        if equity is None:
            equity = self.accounting.equity
        breakers = self.breakers
        day = ts // MS_PER_DAY
        last = breakers.checked
        if last is not None and last[0] == day and last[1] == equity and last[2] is breakers.params:
            return
        if breakers.starts_day(ts):
            # A new UTC day (time passing, not an event): its opening equity, no trades yet;
            # the daily breakers it lifts are an event.
            old, cleared = breakers.state, breakers.daily_resets()
            breakers.start_day(ts, equity)
            if cleared:
                self._run(step, decide_breakers.daily_reset(self, tuple(cleared), old, ts, equity))
        breakers.mark_equity(ts, equity)
        found = breakers.check_equity(ts, equity)
        if found:
            self._run(step, decide_breakers.trips(self, found))
        breakers.checked = (day, equity, breakers.params)

    # ================================================================ commands
    def set_risk(
        self,
        params: RiskParams,
        ts: int | None = None,
        reason: str = "config",
        venue: PaperVenue | None = None,
    ) -> list[Any]:
        """Swap the risk parameters (sizing, gates, breakers, reliability, execution quality).

        For a running engine or one restored with older settings. Counts, trips
        and history stay. The change is an event (`RiskChanged`, returned for the
        ledger), so a replay applies the limits in force at each point. New
        limits are judged at the next market event (the breaker-check memo is
        dropped with new limits), a lower trade-count limit at the next signal.
        """
        ts = self.last_ts if ts is None else ts
        events = decide_commands.set_risk(self, params, ts, reason)
        if not events:
            return []  # nothing changes: no event
        step = self._begin(ts, venue)
        self._run(step, events)
        return self._finish(step)

    def trip(
        self,
        breaker: Breaker,
        state: TradingState,
        reason: str,
        figures: dict[str, Any] | None = None,
        ts: int | None = None,
        venue: PaperVenue | None = None,
    ) -> list[Any]:
        """Trip `breaker` from outside the engine (reconciliation, an operator): events to persist.

        The same path as a breaker the engine trips itself: the trip, the
        state change it causes, and the withdrawal of entries not filled yet.
        A breaker already tripped stays as it is (no events).
        """
        decide_commands.check_trip(state)
        ts = self.last_ts if ts is None else ts
        step = self._begin(ts, venue)
        self._run(step, decide_commands.trip_breaker(self, breaker, state, reason, figures, ts))
        return self._finish(step)

    def pause(self, ts: int | None = None, venue: PaperVenue | None = None) -> list[Any]:
        ts = self.last_ts if ts is None else ts
        step = self._begin(ts, venue)
        self._run(step, decide_commands.pause(self, ts))
        return self._finish(step)

    def resume(self, ts: int | None = None, venue: PaperVenue | None = None) -> list[Any]:
        """Operator resume: clears the pause and the breakers that tripped (the drawdown peak
        restarts only if max_drawdown is one of them)."""
        ts = self.last_ts if ts is None else ts
        step = self._begin(ts, venue)
        self._run(step, decide_commands.resume(self, ts))
        return self._finish(step)

    def halt(
        self,
        ts: int | None = None,
        reason: str = "operator halt",
        breaker: Breaker = Breaker.OPERATOR,
        venue: PaperVenue | None = None,
    ) -> list[Any]:
        ts = self.last_ts if ts is None else ts
        step = self._begin(ts, venue)
        self._run(step, decide_commands.halt(self, ts, reason, breaker))
        return self._finish(step)

    def flatten(
        self, symbol: str | None = None, ts: int | None = None, venue: PaperVenue | None = None
    ) -> list[Any]:
        """Close every position (of `symbol`, or all) with reduce-only market orders."""
        ts = self.last_ts if ts is None else ts
        step = self._begin(ts, venue)
        self._run(step, decide_commands.flatten(self, symbol, ts))
        return self._finish(step)

    def close_for_roll(
        self, symbol: str, ts: int | None = None, venue: PaperVenue | None = None
    ) -> list[Any]:
        """A futures roll of `symbol`: its trades and positions closed now, on the old month.

        Reduce-only market orders, each trade's exit coded `contract_roll`. The paper
        venue's latency passes at once with no new price (`advance`), so they fill at the
        old month's last price: the next price it sees is the new month's, a step no
        trade may be closed at. A real venue fills them at its own (old month's) price.
        """
        ts = self.last_ts if ts is None else ts
        step = self._begin(ts, venue)
        self._run(step, decide_commands.flatten(self, symbol, ts, "contract_roll"))
        if step.venue is not None:
            step.reports.extend(step.venue.advance(symbol, ts + step.venue.params.latency_ms))
        return self._finish(step)

    def kill(self, ts: int | None = None, venue: PaperVenue | None = None) -> list[Any]:
        """Kill switch: halt and flatten everything."""
        # Its own breaker, so `breakers` shows the kill switch tripped (not an anonymous halt).
        return self.halt(ts, "kill switch", Breaker.KILL_SWITCH, venue) + self.flatten(
            None, ts, venue
        )
