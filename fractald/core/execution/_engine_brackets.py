"""Prices against the trades' stops, and the strategies' requests (invalidate, move_stop).

The decisions are `decide_brackets`' (local and trailing stops, exits,
stop moves); here the engine marks each price, runs the deciders, handles
the reports they cause and checks the breakers at the new equity.

Relies on (see `EngineCore`): `_begin`/`_run`/`_drain`/`_finish`
(EngineApply), `_check_equity` (EngineBreakers).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fractald.core.execution import decide_brackets
from fractald.core.execution._engine_core import EngineCore
from fractald.core.execution.brackets import TrailMode
from fractald.core.execution.evolve import mark_best_prices, mark_plan_best
from fractald.core.execution.management import ManagementPlan
from fractald.core.models import Bar

if TYPE_CHECKING:
    from fractald.core.execution._engine_apply import Step
    from fractald.core.execution.paper_venue import PaperVenue


class EngineBrackets(EngineCore):
    """Local, trailing and strategy stops at each price; strategy exits."""

    def _on_price(self, step: Step, symbol: str, price: float, ts: int) -> None:
        """Local stops, trailing stops and marks at one price."""
        self._mark(symbol, price)
        if self.brackets:
            if self.params.brackets.trail_mode is not TrailMode.NONE:
                mark_best_prices(self, symbol, price)
            self._run(step, decide_brackets.price_stops(self, symbol, price, ts))
        self._drain(step)
        self._check_equity(step, ts)

    def _mark(self, symbol: str, price: float) -> None:
        self.last_price[symbol] = price
        self.accounting.mark(symbol, price)

    def invalidate(
        self,
        signal_id: str,
        ts: int,
        reason: str = "invalidated",
        venue: PaperVenue | None = None,
    ) -> list[Any]:
        """The structure behind a trade broke: get out of it."""
        step = self._begin(ts, venue)
        self._run(step, decide_brackets.invalidate(self, signal_id, ts, reason))
        return self._finish(step)

    def move_stop(
        self,
        signal_id: str,
        stop: float,
        ts: int,
        reason: str = "strategy",
        venue: PaperVenue | None = None,
    ) -> list[Any]:
        """A strategy tightens a trade's stop. A stop is never loosened; one already crossed exits now."""
        step = self._begin(ts, venue)
        self._run(step, decide_brackets.move_stop(self, signal_id, stop, ts, reason))
        return self._finish(step)

    def manage_trades(
        self, bar: Bar, every_plan: bool, venue: PaperVenue | None = None
    ) -> list[Any]:
        """Each filled trade of `bar`'s symbol run by its management plan at this closed bar.

        `every_plan`: a base bar, judged by every plan; else only the plans on
        `bar`'s timeframe. Each trade is its own step (its exit's fills are
        handled before the next trade is judged). The best bar extreme since the
        first fill is marked first (market-derived, like the marks), unless the
        bar ends the trade.
        """
        out: list[Any] = []
        symbol, tf, ts = bar.symbol, bar.timeframe, bar.ts_event
        managed = [
            (b, b.plan) for b in self.brackets.values() if b.plan is not None and b.symbol == symbol
        ]
        for b, plan in managed:
            if b.filled_qty <= 0 or not (every_plan or plan.timeframe == tf):
                continue
            if b.signal_id not in self.brackets:
                continue  # closed by an earlier trade's step
            if not plan.exit_reason(b.side, b.ts_first_fill, tf, ts, bar.close):
                mark_plan_best(self, b.signal_id, bar.high, bar.low)
            step = self._begin(ts, venue)
            self._run(step, decide_brackets.manage(self, self.brackets[b.signal_id], bar))
            out += self._finish(step)
        return out

    def managed_trades(self, symbol: str) -> dict[str, ManagementPlan]:
        """The trades of `symbol` opened with a management plan, by signal id (oldest first)."""
        return {
            b.signal_id: b.plan
            for b in self.brackets.values()
            if b.plan is not None and b.symbol == symbol
        }
