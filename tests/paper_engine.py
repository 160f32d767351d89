"""A TradingEngine driven with a paper venue of its own, for tests of the engine and paper fills.

The engine holds no venue: the pipeline passes its paper venue with every
input (`core.pipeline`). Tests that drive an engine by hand get that
pairing here: every input of a `PaperEngine` goes with its `venue` unless
one is given.
"""

from __future__ import annotations

from typing import Any

from fractald.core.execution._engine_apply import Step
from fractald.core.execution.engine import EngineParams, TradingEngine
from fractald.core.execution.paper_venue import PaperVenue, paper_trade_number, paper_venue_for
from fractald.core.models import Bar


class PaperEngine(TradingEngine):
    def __init__(self, params: EngineParams | None = None) -> None:
        super().__init__(params)
        self.venue: PaperVenue | None = paper_venue_for(self)

    @property
    def broker(self) -> PaperVenue | None:
        return self.venue

    def _begin(self, ts: int, venue: PaperVenue | None = None) -> Step:
        return super()._begin(ts, venue if venue is not None else self.venue)

    def on_bar(self, bar: Bar, venue: PaperVenue | None = None) -> list[Any]:
        return super().on_bar(bar, venue if venue is not None else self.venue)

    # Its venue's book goes with its snapshot (as the session stores it), and a rebuild from
    # ledger events resyncs the book from the orders (as the session's fold does).
    def snapshot(self) -> dict[str, Any]:
        data = super().snapshot()
        data["broker"] = self.venue.snapshot() if self.venue is not None else None
        return data

    def restore(self, data: dict[str, Any]) -> None:
        super().restore(data)
        if self.venue is not None and data.get("broker") is not None:
            self.venue.restore(data["broker"])

    def apply(self, event: Any) -> None:
        super().apply(event)
        if self.venue is None:
            return
        positions: dict[str, float] = {}
        for pos in self.accounting.positions.values():
            positions[pos.symbol] = positions.get(pos.symbol, 0.0) + pos.quantity
        seq = paper_trade_number(getattr(event, "trade_id", "") or "")
        self.venue.resync(self.working_orders(), positions, seq)
