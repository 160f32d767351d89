"""Signals to orders, and venue reports in.

A signal goes to the entry decider (`decide_entry`: the risk ladder,
cheapest check first), whose events deny it with a coded reason or open a
bracket with its entry order; the order counts for the breakers at once.
A real venue's report goes through the report decider like the paper
venue's (`EngineApply._on_report`).

Relies on (see `EngineCore`): `_begin`/`_run`/`_finish` (EngineApply).
"""

from __future__ import annotations

from typing import Any

from fractald.core.execution import decide_breakers
from fractald.core.execution._engine_core import EngineCore
from fractald.core.execution.decide_entry import entry_events
from fractald.core.execution.events import OrderIntent
from fractald.core.execution.management import ManagementPlan
from fractald.core.execution.paper_venue import PaperVenue
from fractald.core.execution.reports import VenueReport
from fractald.core.models import Signal


class EngineOrders(EngineCore):
    """Signals (through the entry decider) and venue reports."""

    def on_signal(
        self,
        signal: Signal,
        ts: int,
        *,
        plan: ManagementPlan | None = None,
        venue: PaperVenue | None = None,
    ) -> list[Any]:
        """A strategy's signal: the entry decider's events (denied, or the trade and its entry).

        `plan` is how the strategy wants the trade managed; the engine runs it
        (`decide_brackets.manage`). None: the engine's bracket rules only.
        `venue`: the paper venue the caller drives (its orders go there), or None.
        """
        step = self._begin(ts, venue)
        events = entry_events(self, signal, ts, plan)
        self._run(step, events)
        if any(isinstance(e, OrderIntent) for e in events):
            self._run(step, decide_breakers.counters(self, ts))
        return self._finish(step)

    def on_venue_report(self, report: VenueReport, venue: PaperVenue | None = None) -> list[Any]:
        step = self._begin(report.ts, venue)
        step.reports.append(report)
        return self._finish(step)
