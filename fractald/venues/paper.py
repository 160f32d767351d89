"""The paper venue behind the `Venue` interface every real venue implements.

The paper venue itself (`fractald.core.execution.paper_venue.PaperVenue`) is
pure and synchronous: the session and the backtest loop drive it inside
each engine call, so a backtest and a daemon replay fill the same orders at
the same prices. This adapter answers the asynchronous questions the
reconciler and the operator ask any venue (open orders, one order by our
client order id, fills since a time, positions, the account) from the
paper venue's own book, its history of ended orders and the fills it made,
never from the engine's idea of them: so reconciliation compares the
ledger with what the venue holds, as it does for Hyperliquid or Binance.

`submit`/`cancel`/`modify` exist for the interface's sake (a router could
drive it); the daemon's paper session does not go through a router, since
the reports of an order must reach the engine in the same call that sent it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fractald.core.execution.events import CancelRequested, OrderIntent
from fractald.core.execution.orders import OrderEvent
from fractald.core.execution.paper_venue import PaperVenue
from fractald.core.execution.reports import VenueReport
from fractald.venues.interface import (
    InstrumentSpec,
    VenueAccount,
    VenueFill,
    VenueOrder,
    VenuePosition,
)

if TYPE_CHECKING:
    import trio

    from fractald.core.risk.sizing import Instrument


class PaperVenueAdapter:
    """`Venue` (and the reconciler's `VenueReconciler`) over one `PaperVenue`."""

    name = "paper"

    def __init__(
        self,
        venue: PaperVenue,
        instruments: dict[str, Instrument] | None = None,
        equity: float = 0.0,
    ) -> None:
        self.venue = venue
        self._instruments = instruments or {}
        self._equity = equity  # the paper account's money is the engine's books (no margin model)

    async def instruments(self) -> dict[str, InstrumentSpec]:
        return {
            s: InstrumentSpec(s, i.tick_size, i.lot_size, min_qty=i.min_qty)
            for s, i in self._instruments.items()
        }

    async def submit(self, intent: OrderIntent) -> VenueReport:
        reports = self.venue.send(intent)
        return reports[0]  # ACCEPT or REJECT first; fills follow it in the venue's stream

    async def cancel(self, client_order_id: str, symbol: str) -> VenueReport:
        """Cancel at the venue's current time; with a latency it lands that much later
        (fills may still happen in between), and its CANCEL is told now with that time."""
        ts = self._now(symbol)
        reports = self.venue.send(CancelRequested(ts, client_order_id, "requested"))
        if reports:
            return reports[0]
        return VenueReport(OrderEvent.CANCEL, client_order_id, ts + self.venue.params.latency_ms)

    async def modify(
        self,
        client_order_id: str,
        symbol: str,
        *,
        quantity: float | None = None,
        price: float | None = None,
        trigger_price: float | None = None,
    ) -> VenueReport:
        ts = self._now(symbol)
        return self.venue.modify(client_order_id, ts, quantity, price, trigger_price)[0]

    def _now(self, symbol: str) -> int:
        """The paper venue's clock: the time of the last trade it saw of `symbol`."""
        return self.venue.last_trade.get(symbol, (0, 0.0))[0]

    async def order_status(self, client_order_id: str, symbol: str = "") -> VenueOrder | None:
        """The venue's view of one order (None: it never saw it, or forgot it long ago)."""
        known = self.venue.order(client_order_id)
        if known is None:
            return None
        sym, status, quantity, filled = known
        o = self.venue.orders.get(client_order_id)
        return VenueOrder(
            client_order_id,
            sym,
            status,
            quantity,
            filled,
            venue_order_id=f"p-{client_order_id[:12]}",
            side=o.side.value if o is not None else "",
            price=o.price if o is not None else None,
            trigger_price=o.trigger_price if o is not None else None,
            reduce_only=o.reduce_only if o is not None else False,
        )

    async def open_orders(self) -> list[VenueOrder]:
        out = []
        for cid in list(self.venue.orders):
            order = await self.order_status(cid)
            if order is not None:
                out.append(order)
        return out

    async def fills_since(self, ts: int) -> list[VenueFill]:
        return [
            VenueFill(cid, trade_id, t, qty, price, fee, symbol, side)
            for cid, trade_id, t, qty, price, fee, symbol, side in self.venue.fills_since(ts)
        ]

    async def positions(self) -> dict[str, float]:
        return {s: float(q) for s, q in self.venue.positions.items() if q != 0.0}

    async def position_details(self) -> list[VenuePosition]:
        return [VenuePosition(s, q) for s, q in (await self.positions()).items()]

    async def account(self) -> VenueAccount:
        return VenueAccount(self._equity, self._equity)

    async def stream_reports(self, send: trio.MemorySendChannel[VenueReport]) -> None:
        """Nothing to push: the paper venue's reports go to the engine in the call that caused them."""
        import trio

        await trio.sleep_forever()
