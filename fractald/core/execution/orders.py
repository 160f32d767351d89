"""Orders and their state machine: a transition table as data.

Venue reports arrive in any order the real world produces: a fill after a
cancel request, an ack after a fill, a cancel that fails. The table says
which (status, event) pairs are legal and where they lead; anything else
is refused without touching the order (the caller logs it). A fill whose
trade id was already applied is ignored; a fill beyond the order's
quantity is an InvariantViolation, because it means our books are wrong.
"""

from __future__ import annotations

import enum
import hashlib
from typing import Any

import attrs

from fractald.core.execution.converter import omit_when_default
from fractald.core.models import Side
from fractald.errors import InvariantViolation

QTY_EPS = 1e-9


# The reason on an ACCEPT or TRIGGER the router re-creates after a restart from the venue's
# answer: it happened while we were down, at a time the venue did not tell, so it says
# nothing about the venue's ack or trigger latency (and its `ts` is when we asked).
RECOVERED = "recovered_from_venue"


class OrderStatus(enum.Enum):
    INITIALIZED = "INITIALIZED"
    DENIED = "DENIED"
    SUBMITTED = "SUBMITTED"
    ACCEPTED = "ACCEPTED"
    TRIGGERED = "TRIGGERED"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    PENDING_CANCEL = "PENDING_CANCEL"
    PENDING_UPDATE = "PENDING_UPDATE"
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"

    # Members are singletons: identity hashing keeps the transition table fast.
    __hash__ = object.__hash__

    @property
    def terminal(self) -> bool:
        return self in TERMINAL

    @property
    def working(self) -> bool:
        """Could still fill."""
        return self not in TERMINAL and self not in (OrderStatus.INITIALIZED,)


TERMINAL = frozenset(
    {
        OrderStatus.DENIED,
        OrderStatus.FILLED,
        OrderStatus.CANCELED,
        OrderStatus.REJECTED,
        OrderStatus.EXPIRED,
    }
)


class OrderType(enum.Enum):
    MARKET = "MARKET"
    LIMIT = "LIMIT"
    STOP_MARKET = "STOP_MARKET"
    STOP_LIMIT = "STOP_LIMIT"


class TimeInForce(enum.Enum):
    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"
    GTD = "GTD"


class Liquidity(enum.Enum):
    MAKER = "MAKER"
    TAKER = "TAKER"


class OrderEvent(enum.Enum):
    """What can happen to an order, from us (submit, deny, requests) or from the venue."""

    SUBMIT = "SUBMIT"
    DENY = "DENY"
    ACCEPT = "ACCEPT"
    REJECT = "REJECT"
    TRIGGER = "TRIGGER"
    PARTIAL_FILL = "PARTIAL_FILL"
    FILL = "FILL"  # the fill that completes the quantity
    CANCEL_REQUEST = "CANCEL_REQUEST"
    CANCEL = "CANCEL"
    CANCEL_REJECT = "CANCEL_REJECT"
    UPDATE_REQUEST = "UPDATE_REQUEST"
    UPDATE = "UPDATE"
    UPDATE_REJECT = "UPDATE_REJECT"
    EXPIRE = "EXPIRE"

    __hash__ = object.__hash__


S, E = OrderStatus, OrderEvent
# Target "RESUME": back to the working status the order had before the
# pending request (or PARTIALLY_FILLED if it filled meanwhile).
RESUME = "RESUME"

TRANSITIONS: dict[tuple[OrderStatus, OrderEvent], OrderStatus | str] = {
    (S.INITIALIZED, E.SUBMIT): S.SUBMITTED,
    (S.INITIALIZED, E.DENY): S.DENIED,
    (S.INITIALIZED, E.CANCEL): S.CANCELED,  # withdrawn before it left the process
    (S.SUBMITTED, E.ACCEPT): S.ACCEPTED,
    (S.SUBMITTED, E.REJECT): S.REJECTED,
    (S.SUBMITTED, E.TRIGGER): S.TRIGGERED,
    (S.SUBMITTED, E.PARTIAL_FILL): S.PARTIALLY_FILLED,  # fills can beat the ack
    (S.SUBMITTED, E.FILL): S.FILLED,
    (S.SUBMITTED, E.CANCEL_REQUEST): S.PENDING_CANCEL,
    (S.SUBMITTED, E.CANCEL): S.CANCELED,  # IOC/FOK with nothing filled
    (S.SUBMITTED, E.EXPIRE): S.EXPIRED,
    (S.ACCEPTED, E.TRIGGER): S.TRIGGERED,
    (S.ACCEPTED, E.PARTIAL_FILL): S.PARTIALLY_FILLED,
    (S.ACCEPTED, E.FILL): S.FILLED,
    (S.ACCEPTED, E.CANCEL_REQUEST): S.PENDING_CANCEL,
    (S.ACCEPTED, E.UPDATE_REQUEST): S.PENDING_UPDATE,
    (S.ACCEPTED, E.CANCEL): S.CANCELED,  # venue-initiated (e.g. margin, post-only)
    (S.ACCEPTED, E.EXPIRE): S.EXPIRED,
    (S.ACCEPTED, E.REJECT): S.REJECTED,  # some venues reject after the ack
    (S.TRIGGERED, E.PARTIAL_FILL): S.PARTIALLY_FILLED,
    (S.TRIGGERED, E.FILL): S.FILLED,
    (S.TRIGGERED, E.CANCEL_REQUEST): S.PENDING_CANCEL,
    (S.TRIGGERED, E.UPDATE_REQUEST): S.PENDING_UPDATE,
    (S.TRIGGERED, E.CANCEL): S.CANCELED,
    (S.TRIGGERED, E.EXPIRE): S.EXPIRED,
    (S.TRIGGERED, E.REJECT): S.REJECTED,
    (S.PARTIALLY_FILLED, E.ACCEPT): S.PARTIALLY_FILLED,  # the ack arrives after a fill
    (S.PARTIALLY_FILLED, E.TRIGGER): S.PARTIALLY_FILLED,
    (S.PARTIALLY_FILLED, E.PARTIAL_FILL): S.PARTIALLY_FILLED,
    (S.PARTIALLY_FILLED, E.FILL): S.FILLED,
    (S.PARTIALLY_FILLED, E.CANCEL_REQUEST): S.PENDING_CANCEL,
    (S.PARTIALLY_FILLED, E.UPDATE_REQUEST): S.PENDING_UPDATE,
    (S.PARTIALLY_FILLED, E.CANCEL): S.CANCELED,
    (S.PARTIALLY_FILLED, E.EXPIRE): S.EXPIRED,
    (S.PENDING_CANCEL, E.ACCEPT): S.PENDING_CANCEL,  # the ack was overtaken by our request
    (S.PENDING_CANCEL, E.TRIGGER): S.PENDING_CANCEL,
    (S.PENDING_CANCEL, E.PARTIAL_FILL): S.PENDING_CANCEL,  # a fill after the cancel request
    (S.PENDING_CANCEL, E.FILL): S.FILLED,
    (S.PENDING_CANCEL, E.CANCEL): S.CANCELED,
    (S.PENDING_CANCEL, E.CANCEL_REJECT): RESUME,  # the cancel failed: still working
    (S.PENDING_CANCEL, E.EXPIRE): S.EXPIRED,
    (S.PENDING_CANCEL, E.REJECT): S.REJECTED,
    (S.PENDING_UPDATE, E.ACCEPT): S.PENDING_UPDATE,
    (S.PENDING_UPDATE, E.TRIGGER): S.PENDING_UPDATE,
    (S.PENDING_UPDATE, E.PARTIAL_FILL): S.PENDING_UPDATE,
    (S.PENDING_UPDATE, E.FILL): S.FILLED,
    (S.PENDING_UPDATE, E.UPDATE): RESUME,
    (S.PENDING_UPDATE, E.UPDATE_REJECT): RESUME,
    (S.PENDING_UPDATE, E.CANCEL_REQUEST): S.PENDING_CANCEL,
    (S.PENDING_UPDATE, E.CANCEL): S.CANCELED,
    (S.PENDING_UPDATE, E.EXPIRE): S.EXPIRED,
    # Late fills: a venue can report a fill that happened before its
    # cancel/expiry confirmation. The money moved, so it is recorded.
    (S.CANCELED, E.PARTIAL_FILL): S.CANCELED,
    (S.CANCELED, E.FILL): S.FILLED,
    (S.EXPIRED, E.PARTIAL_FILL): S.EXPIRED,
    (S.EXPIRED, E.FILL): S.FILLED,
}


class Applied(enum.Enum):
    """What `Order.apply` did with an event."""

    APPLIED = "applied"
    DUPLICATE = "duplicate"  # a fill with a trade id already applied: ignored
    INVALID = "invalid"  # not a legal transition: the order is unchanged


def client_order_id(intent_key: str, role: str) -> str:
    """Deterministic client order id: the same intent (signal id + leg role) always gets the same id.

    32 hex characters (128 bits), which fits every venue's limit we know of
    (Binance 36 chars; Hyperliquid's cloid is these 128 bits as 0x-hex).
    """
    digest = hashlib.blake2b(f"{intent_key}|{role}".encode(), digest_size=16).hexdigest()
    return digest


@attrs.frozen(slots=True)
class Order:
    """One order and everything known about it: a frozen value; evolve.py keeps the current one."""

    client_order_id: str
    symbol: str
    side: Side
    order_type: OrderType
    quantity: float
    price: float | None = None  # limit price
    trigger_price: float | None = None  # for stops
    tif: TimeInForce = TimeInForce.GTC
    expire_ts: int | None = None
    reduce_only: bool = False
    strategy: str = ""
    signal_id: str = ""
    role: str = ""
    status: OrderStatus = OrderStatus.INITIALIZED
    resume_status: OrderStatus = OrderStatus.SUBMITTED
    filled_qty: float = 0.0
    avg_fill_price: float = 0.0
    fees: float = 0.0
    trade_ids: tuple[str, ...] = ()
    venue_order_id: str = ""
    ts_created: int = 0
    ts_submitted: int = 0
    ts_last: int = 0
    # When the order started to take liquidity: a market order when sent, a stop-market
    # when the venue reported its trigger (0: not yet, or the venue never said). Fill
    # latency counts from here, so a stop's wait for the market is not the venue's delay.
    ts_marketable: int = 0
    reason: str = ""
    intended_price: float = 0.0  # the price we expected, for slippage
    post_only: bool = False  # maker only: the venue rejects it rather than let it take

    def __attrs_post_init__(self) -> None:
        if not self.quantity > 0:
            raise ValueError(f"order quantity must be positive, got {self.quantity!r}")
        if self.order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT) and not (self.price or 0) > 0:
            raise ValueError(f"a {self.order_type.value} order needs a positive price")
        if (
            self.order_type in (OrderType.STOP_MARKET, OrderType.STOP_LIMIT)
            and not (self.trigger_price or 0) > 0
        ):
            raise ValueError(f"a {self.order_type.value} order needs a positive trigger_price")
        if self.tif is TimeInForce.GTD and self.expire_ts is None:
            raise ValueError("a GTD order needs expire_ts")

    @property
    def leaves_qty(self) -> float:
        return max(0.0, self.quantity - self.filled_qty)

    def can(self, event: OrderEvent) -> bool:
        return (self.status, event) in TRANSITIONS

    def next_status(self, event: OrderEvent, fill_qty: float = 0.0) -> OrderStatus | None:
        """Where `event` would take the order (None: not a legal transition). Pure read."""
        target = TRANSITIONS.get((self.status, event))
        if target == RESUME:
            filled = self.filled_qty + fill_qty
            return S.PARTIALLY_FILLED if filled > QTY_EPS else self.resume_status
        return target  # type: ignore[return-value]

    def _moved(self, event: OrderEvent, ts: int, changes: dict[str, Any]) -> tuple[Applied, Order]:
        """`changes` plus the status `event` leads to (INVALID: `changes` alone)."""
        target = self.next_status(event)
        if target is None:
            return Applied.INVALID, attrs.evolve(self, **changes) if changes else self
        if target in (S.ACCEPTED, S.TRIGGERED, S.SUBMITTED):
            changes["resume_status"] = target
        changes["status"] = target
        changes["ts_last"] = max(self.ts_last, ts)
        return Applied.APPLIED, attrs.evolve(self, **changes)

    def apply(self, event: OrderEvent, ts: int, **kw: Any) -> tuple[Applied, Order]:
        """A non-fill event: how it went, and the order after it. Fills go through `apply_fill`."""
        if event in (E.FILL, E.PARTIAL_FILL):
            raise ValueError("use apply_fill for fills")
        can = self.can(event)
        changes: dict[str, Any] = {}
        if event is E.SUBMIT and can:
            changes["ts_submitted"] = ts
            if self.order_type is OrderType.MARKET:
                changes["ts_marketable"] = ts
        if (
            event is E.TRIGGER
            and can
            and self.order_type is OrderType.STOP_MARKET
            and not self.ts_marketable
            and kw.get("reason") != RECOVERED
        ):
            changes["ts_marketable"] = ts
        if event is E.UPDATE and can:
            for k in ("quantity", "price", "trigger_price"):
                if kw.get(k) is not None:
                    changes[k] = kw[k]
            if changes.get("quantity", self.quantity) < self.filled_qty - QTY_EPS:
                raise InvariantViolation(
                    f"order {self.client_order_id} updated below its filled quantity",
                    quantity=changes["quantity"],
                    filled=self.filled_qty,
                )
        if event is E.ACCEPT and kw.get("venue_order_id"):
            changes["venue_order_id"] = kw["venue_order_id"]
        if kw.get("reason"):
            changes["reason"] = kw["reason"]
        return self._moved(event, ts, changes)

    def fill_event(self, qty: float) -> OrderEvent:
        return E.FILL if self.filled_qty + qty >= self.quantity - QTY_EPS else E.PARTIAL_FILL

    def apply_fill(
        self, trade_id: str, qty: float, price: float, fee: float, ts: int
    ) -> tuple[Applied, Order]:
        """A fill: how it went (a repeated trade id is DUPLICATE), and the order after it."""
        if trade_id in self.trade_ids:
            return Applied.DUPLICATE, self
        if not (qty > 0 and price > 0):
            raise InvariantViolation(
                f"fill {trade_id} on {self.client_order_id} has qty {qty} price {price}",
                trade_id=trade_id,
            )
        new_filled = self.filled_qty + qty
        if new_filled > self.quantity * (1 + QTY_EPS) + QTY_EPS:
            raise InvariantViolation(
                f"overfill on {self.client_order_id}: {new_filled} > {self.quantity}",
                client_order_id=self.client_order_id,
                filled=new_filled,
                quantity=self.quantity,
            )
        complete = new_filled >= self.quantity - QTY_EPS
        event = self.fill_event(qty)
        if not self.can(event):
            return Applied.INVALID, self
        changes: dict[str, Any] = {
            "avg_fill_price": (self.avg_fill_price * self.filled_qty + price * qty) / new_filled,
            "filled_qty": self.quantity if complete else new_filled,
            "fees": self.fees + fee,
            "trade_ids": (*self.trade_ids, trade_id),
        }
        target = self.next_status(event, qty)  # RESUME counts this fill
        if target in (S.ACCEPTED, S.TRIGGERED, S.SUBMITTED):
            changes["resume_status"] = target
        changes["status"] = target
        changes["ts_last"] = max(self.ts_last, ts)
        return Applied.APPLIED, attrs.evolve(self, **changes)


omit_when_default(Order, "post_only")  # snapshots stay as they were for ordinary orders
