"""What a venue (or the paper broker) tells us about an order: one message type for all venues."""

from __future__ import annotations

import attrs

from fractald.core.execution.orders import RECOVERED, Liquidity, OrderEvent

__all__ = ["RECOVERED", "VenueReport"]


@attrs.frozen(slots=True)
class VenueReport:
    """An order update from the venue. `kind` is an OrderEvent (FILL stands for any fill:
    the order decides whether it completes). Fill fields are set for fills only.

    `quantity` is what traded (it fills the order); `fee_qty` is the part of it the venue
    kept as its fee (Binance spot takes a BUY's commission out of the coins bought), so
    the position grows by `quantity - fee_qty`; `fee` is the whole fee's value in quote."""

    kind: OrderEvent
    client_order_id: str
    ts: int
    trade_id: str = ""
    quantity: float = 0.0
    price: float = 0.0
    fee: float = 0.0
    liquidity: Liquidity | None = None
    reason: str = ""
    venue_order_id: str = ""
    trigger_price: float | None = None
    fee_qty: float = 0.0
