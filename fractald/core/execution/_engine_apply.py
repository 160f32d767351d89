"""The driver: deciders' events go through `evolve.evolve`, the only code that changes state.

Each public input (a bar, a signal, a report, a command) is one `Step`: the
events it made, in order (what the call returns for the ledger), the
in-process venue the caller drove this input with (the paper venue, or
None), and that venue's reports not handled yet (they come back in the
order the venue sent them, at the points the engine drains them, as a real
venue's stream would). A step lives for one call; nothing of it stays on
the engine: the engine holds no venue, whoever drives it (the session, the
backtest loop) passes its paper venue with each input.

`_run` is the one place a decision meets the state: it evolves the state
by each event a decider yields before the decider goes on, and hands each
order intent and cancel to the step's venue (with a real venue the router
sends them from the returned events). `apply` (the rebuild path) evolves
the state by a stored ledger event without deciding anything new.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable
from typing import Any

from fractald.core.execution import events as ev
from fractald.core.execution._engine_core import EngineCore
from fractald.core.execution.decide_report import follow_report, report_event
from fractald.core.execution.evolve import evolve
from fractald.core.execution.paper_venue import PaperVenue
from fractald.core.execution.reports import VenueReport


class Step:
    """One call's work: the events applied so far, the venue it drives, the reports still to handle."""

    __slots__ = ("events", "reports", "venue")

    def __init__(self, venue: PaperVenue | None = None) -> None:
        self.events: list[Any] = []
        self.reports: collections.deque[VenueReport] = collections.deque()
        self.venue = venue


_INTENT = ev.OrderIntent
_CANCEL = ev.CancelRequested


class EngineApply(EngineCore):
    """The driver: `_begin`, `_run`, `_drain`, `_finish`; `apply` for rebuilds."""

    def _begin(self, ts: int, venue: PaperVenue | None = None) -> Step:
        self.last_ts = max(self.last_ts, ts)
        return Step(venue)

    def _finish(self, step: Step) -> list[Any]:
        self._drain(step)
        return step.events

    def _run(self, step: Step, decision: Iterable[Any]) -> None:
        """Evolve by each event of `decision` (read lazily: each is applied before the next is decided)."""
        venue = step.venue
        out = step.events
        for event in decision:
            evolve(self, event)
            out.append(event)
            kind = type(event)
            if kind is _INTENT or kind is _CANCEL:
                if venue is not None:
                    step.reports.extend(venue.send(event))
                elif self.params.venue == "paper":
                    raise RuntimeError(
                        f"{type(event).__name__} {event.client_order_id}: a paper engine's "
                        "input must come with its paper venue (nothing else would send it)"
                    )

    def _drain(self, step: Step) -> None:
        reports = step.reports
        while reports:
            self._on_report(step, reports.popleft())

    def _on_report(self, step: Step, r: VenueReport) -> None:
        o = self.orders.get(r.client_order_id)
        event = report_event(o, r)
        if event is None:
            return
        if o is None or isinstance(event, ev.OrderAnomaly):
            self._run(step, (event,))
            return
        self._run(step, follow_report(self, o, event, r.ts))
        self._check_equity(step, r.ts)

    def apply(self, event: Any) -> None:
        """Rebuild path: apply one ledger event without deciding anything new.

        The paper venue is not the engine's: whoever rebuilds resyncs it after
        the fold (`PaperVenue.resync`).
        """
        evolve(self, event)
        self.last_ts = max(self.last_ts, event.ts)
