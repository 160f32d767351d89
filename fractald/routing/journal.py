"""Venue reports into the ledger on their own, for a router run without the trading engine.

Each report is one transaction: its event (`order_filled` with the venue's
trade id, or `order_status`) and, when the order ended, the intent's
outcome. So a crash between "the fill arrived" and "the order is done"
cannot record one without the other, and a fill already in the ledger (by
trade id) is never recorded twice. In the daemon the trading session plays
this part (it commits events and outcomes together the same way); the
crash tests and tools drive a router with this.
"""

from __future__ import annotations

from typing import Any

import trio

from fractald.core.execution.orders import OrderEvent
from fractald.core.execution.reports import VenueReport
from fractald.store.ledger import Ledger
from fractald.store.writer import AsyncLedger

QTY_EPS = 1e-9
_ENDS = {OrderEvent.CANCEL: "canceled", OrderEvent.REJECT: "rejected", OrderEvent.EXPIRE: "expired"}


def recorded_fills(ledger: Ledger) -> dict[str, tuple[str, float]]:
    """Every `order_filled` event's trade id -> (client order id, quantity)."""
    rows = ledger.connection.execute(
        "SELECT json_extract(payload, '$.trade_id'), json_extract(payload, '$.client_order_id'), "
        "json_extract(payload, '$.quantity') FROM events WHERE kind = 'order_filled'"
    ).fetchall()
    return {str(t): (str(c), float(q)) for t, c, q in rows}


class LedgerJournal:
    def __init__(self, ledger: AsyncLedger) -> None:
        self.ledger = ledger
        self.fills: dict[str, tuple[str, float]] = {}
        self.filled: dict[str, float] = {}

    async def load(self) -> set[str]:
        """What the ledger holds already; returns the trade ids (to seed the router's memory)."""
        self.fills = await self.ledger.run(recorded_fills)
        self.filled = {}
        for coid, qty in self.fills.values():
            self.filled[coid] = self.filled.get(coid, 0.0) + qty
        return set(self.fills)

    async def apply(self, report: VenueReport) -> None:
        coid = report.client_order_id
        record = await self.ledger.get_intent(coid) if coid else None
        intent: dict[str, Any] = record.payload if record is not None else {}
        ts = max(0, int(report.ts))
        outcome = _ENDS.get(report.kind)
        if report.kind in (OrderEvent.FILL, OrderEvent.PARTIAL_FILL):
            if report.trade_id in self.fills:
                return
            event = (
                "order_filled",
                {
                    "client_order_id": coid,
                    "trade_id": report.trade_id,
                    "symbol": intent.get("symbol", ""),
                    "side": intent.get("side", ""),
                    "quantity": report.quantity,
                    "price": report.price,
                    "fee": report.fee,
                    **({"fee_qty": report.fee_qty} if report.fee_qty else {}),
                    "role": intent.get("role", ""),
                    "signal_id": intent.get("signal_id", ""),
                },
                ts,
            )
            self.fills[report.trade_id] = (coid, report.quantity)
            self.filled[coid] = self.filled.get(coid, 0.0) + report.quantity
            if (
                record is not None
                and self.filled[coid] >= float(intent.get("quantity", 0.0)) - QTY_EPS
            ):
                outcome = "filled"
        else:
            event = (
                "order_status",
                {
                    "client_order_id": coid,
                    "event": report.kind.value,
                    "reason": report.reason,
                    "venue_order_id": report.venue_order_id,
                },
                ts,
            )
        ends = [(coid, outcome, ts)] if outcome is not None and record is not None else []
        await self.ledger.commit_batch([event], outcomes=ends)

    async def run(self, receive: trio.MemoryReceiveChannel[VenueReport]) -> None:
        async with receive:
            async for report in receive:
                await self.apply(report)
