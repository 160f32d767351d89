"""The driver: deciders' events go through `evolve.evolve`, the only code that changes state.

Each public input (a bar, a signal, a report, a command) is one `Step`: the
events it made, in order (what the call returns for the ledger), and the
paper broker's reports not handled yet (they come back in the order the
venue sent them, at the points the engine drains them, as a real venue's
stream would). A step lives for one call; nothing of it stays on the engine.

`_run` is the one place a decision meets the state: it evolves the state
by each event a decider yields before the decider goes on, and passes
each order and cancel to the in-process paper broker (with a real venue the
router sends them from the returned events). `apply` (the rebuild path)
evolves the state by a stored ledger event without deciding anything new.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable
from typing import Any

from fractald.core.execution import events as ev
from fractald.core.execution._engine_core import EngineCore
from fractald.core.execution.decide_report import follow_report, report_event
from fractald.core.execution.evolve import evolve
from fractald.core.execution.reports import VenueReport


class Step:
    """One call's work: the events applied so far, and the venue reports still to handle."""

    __slots__ = ("events", "reports")

    def __init__(self) -> None:
        self.events: list[Any] = []
        self.reports: collections.deque[VenueReport] = collections.deque()


_INTENT = ev.OrderIntent
_CANCEL = ev.CancelRequested


class EngineApply(EngineCore):
    """The driver: `_begin`, `_run`, `_drain`, `_finish`; `apply` for rebuilds."""

    def _begin(self, ts: int) -> Step:
        self.last_ts = max(self.last_ts, ts)
        return Step()

    def _finish(self, step: Step) -> list[Any]:
        self._drain(step)
        return step.events

    def _run(self, step: Step, decision: Iterable[Any]) -> None:
        """Evolve by each event of `decision` (read lazily: each is applied before the next is decided)."""
        broker = self.broker
        out = step.events
        for event in decision:
            evolve(self, event)
            out.append(event)
            if broker is not None:
                kind = type(event)
                if kind is _INTENT:
                    step.reports.extend(broker.submit(self.orders[event.client_order_id], event.ts))
                elif kind is _CANCEL:
                    step.reports.extend(broker.cancel(event.client_order_id, event.ts))

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

        The in-process paper book follows the engine's orders at once (it holds
        what the ledger's orders say is working), so the next input finds it
        as a live engine would have left it, but for queue places.
        """
        evolve(self, event)
        self.last_ts = max(self.last_ts, event.ts)
        if self.broker is not None:
            self._resync_paper()
