"""Event plumbing: a decision's events go through `evolve.evolve`, the only code that changes state.

`_emit` evolves the state by an event, then records it for the caller;
`apply` (the rebuild path) evolves it by a stored ledger event without
deciding anything new. The transitions themselves are in `evolve.py`.

Relies on (see `EngineCore`): `_drain` (EngineOrders) to finish a step,
`_resync_paper` (EngineState).
"""

from __future__ import annotations

from typing import Any

from fractald.core.execution._engine_core import EngineCore
from fractald.core.execution.evolve import evolve


class EngineApply(EngineCore):
    """Event plumbing: `_begin`, `_emit`, `_finish`, `apply`."""

    def _begin(self, ts: int) -> None:
        if self._paper_dirty:
            self._resync_paper()
        self._out = []
        self.last_ts = max(self.last_ts, ts)

    def _finish(self) -> list[Any]:
        self._drain()
        out, self._out = self._out, []
        return out

    def _emit(self, event: Any) -> None:
        evolve(self, event)
        self._out.append(event)

    def apply(self, event: Any) -> None:
        """Rebuild path: apply one ledger event without deciding anything new."""
        evolve(self, event)
        self._closed_pending.clear()
        self.last_ts = max(self.last_ts, event.ts)
        self._paper_dirty = self.broker is not None
