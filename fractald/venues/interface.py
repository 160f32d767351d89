"""The one interface every order venue implements: paper, Hyperliquid, Binance, IBKR.

Everything here is addressed by *our* client order id (deterministic, see
`fractald.core.execution.orders.client_order_id`), so a restart can ask the
venue what became of an intent before anything new is sent.

A venue is driven by the router actor (async, on trio). Answers are plain
frozen data; what the venue pushes by itself (fills, cancels, triggers,
expiries) comes back as `VenueReport`s through `stream_reports`, the same
message type the paper broker produces, so the engine cannot tell venues
apart.

Errors follow `fractald.errors`: a `TransientError` (network, 429/5xx,
timeout) means "not known whether it happened: ask again by client id";
an `AuthError` / `FatalError` stops the daemon; a venue's refusal of one
order is *not* an exception but a `VenueReport` of kind REJECT with the
venue's code in `reason`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

import attrs

from fractald.core.execution.events import OrderIntent
from fractald.core.execution.reports import VenueReport

if TYPE_CHECKING:  # the core stays trio-free; only venues' type hints name trio
    import trio

TERMINAL_STATUSES = frozenset({"filled", "canceled", "rejected", "expired", "denied"})


@attrs.frozen(slots=True)
class VenueOrder:
    """An order as the venue knows it, by our client order id."""

    client_order_id: str
    symbol: str
    status: str  # lower-case: open, partially_filled, filled, canceled, rejected, expired, ...
    quantity: float
    filled_qty: float
    venue_order_id: str = ""
    side: str = ""  # "BUY" / "SELL" where the venue says
    price: float | None = None
    trigger_price: float | None = None
    reduce_only: bool = False

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


@attrs.frozen(slots=True)
class VenueFill:
    """One fill as the venue reports it (quantity 0.0 when the venue does not split them out)."""

    client_order_id: str
    trade_id: str
    ts: int
    quantity: float = 0.0
    price: float = 0.0
    fee: float = 0.0
    symbol: str = ""
    side: str = ""
    fee_qty: float = 0.0  # of `quantity`, what the venue kept as its fee (coins, not quote)


@attrs.frozen(slots=True)
class VenuePosition:
    """A net position at the venue: quantity is signed (long positive)."""

    symbol: str
    quantity: float
    entry_price: float = 0.0
    unrealized_pnl: float = 0.0


@attrs.frozen(slots=True)
class VenueAccount:
    """The account's money as the venue reports it, in its settlement currency."""

    equity: float
    available: float
    margin_used: float = 0.0
    currency: str = "USD"


@attrs.frozen(slots=True)
class InstrumentSpec:
    """What the venue allows for one symbol (from its own metadata, never a global guess)."""

    symbol: str
    tick_size: float
    lot_size: float
    min_qty: float = 0.0
    min_notional: float = 0.0
    max_leverage: float = 0.0
    multiplier: float = 1.0


@runtime_checkable
class Venue(Protocol):
    """What the router needs from a venue; every call names orders by our client order id."""

    name: str

    async def instruments(self) -> dict[str, InstrumentSpec]: ...

    async def submit(self, intent: OrderIntent) -> VenueReport:
        """Send one order. Returns the venue's answer to the request (ACCEPT, REJECT, or a
        FILL/CANCEL for orders that complete at once); later changes arrive by `stream_reports`."""
        ...

    async def cancel(self, client_order_id: str, symbol: str) -> VenueReport:
        """CANCEL on success; CANCEL_REJECT (reason: the venue's code) when it could not."""
        ...

    async def modify(
        self,
        client_order_id: str,
        symbol: str,
        *,
        quantity: float | None = None,
        price: float | None = None,
        trigger_price: float | None = None,
    ) -> VenueReport:
        """UPDATE on success; UPDATE_REJECT otherwise."""
        ...

    async def order_status(self, client_order_id: str, symbol: str) -> VenueOrder | None:
        """The venue's view of one order (None: the venue has never seen this id)."""
        ...

    async def open_orders(self) -> list[VenueOrder]: ...

    async def fills_since(self, ts: int) -> list[VenueFill]: ...

    async def positions(self) -> dict[str, float]:
        """Net signed quantity per symbol (long positive)."""
        ...

    async def position_details(self) -> list[VenuePosition]: ...

    async def account(self) -> VenueAccount: ...

    async def stream_reports(self, send: trio.MemorySendChannel[VenueReport]) -> None:
        """Push what the venue reports by itself (fills, triggers, cancels, expiries) until
        cancelled; after any gap in the stream, resync by REST so nothing is missed."""
        ...
