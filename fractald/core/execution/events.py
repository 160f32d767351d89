"""Engine events: immutable records the ledger appends and `TradingEngine.apply` replays.

Every state change of the engine happens by applying one of these, both
live and on a rebuild, so a snapshot plus the events after it gives back
the same state. `to_dict`/`from_dict` make them plain JSON-able data with
a `kind` tag.
"""

from __future__ import annotations

from typing import Any, ClassVar

import attrs

from fractald.core.execution.converter import converter, omit_when_default
from fractald.core.execution.management import ManagementPlan
from fractald.core.execution.orders import (
    Liquidity,
    OrderEvent,
    OrderStatus,
    OrderType,
    TimeInForce,
)
from fractald.core.models import ClosedTrade, Side
from fractald.core.risk.breakers import Breaker, TradingState
from fractald.core.risk.denial import DenialCode
from fractald.core.risk.params import RiskParams
from fractald.core.risk.reliability import StrategyState


@attrs.frozen(slots=True)
class SignalDenied:
    kind: ClassVar[str] = "signal_denied"
    ts: int
    signal_id: str
    strategy: str
    symbol: str
    code: DenialCode
    message: str
    figures: dict[str, Any] = attrs.field(factory=dict, hash=False)


@attrs.frozen(slots=True)
class BracketOpened:
    """A signal passed every gate: the plan of the trade, and how it is managed (`plan`)."""

    kind: ClassVar[str] = "bracket_opened"
    ts: int
    signal_id: str
    strategy: str
    symbol: str
    side: Side
    timeframe: str
    quantity: float
    entry: float
    stop: float
    targets: tuple[float, ...]
    confidence: float
    risk_amount: float
    plan: ManagementPlan | None = None  # None: the engine's bracket rules only (a manual trade)


@attrs.frozen(slots=True)
class OrderIntent:
    """An order about to leave the process; the ledger must hold it before it is sent."""

    kind: ClassVar[str] = "order_intent"
    ts: int
    client_order_id: str
    symbol: str
    side: Side
    order_type: OrderType
    quantity: float
    price: float | None = None
    trigger_price: float | None = None
    tif: TimeInForce = TimeInForce.GTC
    expire_ts: int | None = None
    reduce_only: bool = False
    strategy: str = ""
    signal_id: str = ""
    role: str = ""
    intended_price: float = 0.0
    # Maker only: a limit that would take liquidity is rejected by the venue instead
    # (GTX on Binance futures, LIMIT_MAKER on spot, Alo on Hyperliquid, the paper broker alike).
    post_only: bool = False


@attrs.frozen(slots=True)
class CancelRequested:
    kind: ClassVar[str] = "cancel_requested"
    ts: int
    client_order_id: str
    reason: str


@attrs.frozen(slots=True)
class OrderStatusChanged:
    kind: ClassVar[str] = "order_status"
    ts: int
    client_order_id: str
    event: OrderEvent
    status: OrderStatus
    reason: str = ""
    venue_order_id: str = ""


@attrs.frozen(slots=True)
class OrderFilled:
    kind: ClassVar[str] = "order_filled"
    ts: int
    client_order_id: str
    trade_id: str
    symbol: str
    side: Side
    quantity: float
    price: float
    fee: float
    liquidity: Liquidity | None
    strategy: str
    signal_id: str
    role: str
    fee_qty: float = 0.0  # of `quantity`, coins the venue kept as its fee (not held)

    @property
    def received(self) -> float:
        """What the position moves by: the traded quantity less the coins kept as fee."""
        return self.quantity - self.fee_qty


@attrs.frozen(slots=True)
class OrderAnomaly:
    """A venue report that did not fit (unknown order, illegal transition): logged, counted as an error."""

    kind: ClassVar[str] = "order_anomaly"
    ts: int
    client_order_id: str
    what: str
    detail: str = ""


@attrs.frozen(slots=True)
class StopMoved:
    kind: ClassVar[str] = "stop_moved"
    ts: int
    signal_id: str
    old: float
    new: float
    reason: str  # break_even | trailing


@attrs.frozen(slots=True)
class StopMoveRefused:
    """A requested stop move that was not made: stops only ever tighten."""

    kind: ClassVar[str] = "stop_move_refused"
    ts: int
    signal_id: str
    requested: float
    current: float
    reason: str  # would_loosen | no_open_trade


@attrs.frozen(slots=True)
class BracketExit:
    kind: ClassVar[str] = "bracket_exit"
    ts: int
    signal_id: str
    reason: str  # stop | time | invalidated | flatten | stop_before_entry | trading_state
    price: float = 0.0


@attrs.frozen(slots=True)
class BracketClosed:
    kind: ClassVar[str] = "bracket_closed"
    ts: int
    signal_id: str
    reason: str


@attrs.frozen(slots=True)
class BreakerTripped:
    kind: ClassVar[str] = "breaker_tripped"
    ts: int
    breaker: Breaker
    state: TradingState
    reason: str
    figures: dict[str, Any] = attrs.field(factory=dict, hash=False)


@attrs.frozen(slots=True)
class BreakersCleared:
    kind: ClassVar[str] = "breakers_cleared"
    ts: int
    breakers: tuple[Breaker, ...]
    reason: str  # resume | daily_reset
    equity: float = 0.0


@attrs.frozen(slots=True)
class TradingStateChanged:
    kind: ClassVar[str] = "trading_state"
    ts: int
    old: TradingState
    new: TradingState
    reason: str


@attrs.frozen(slots=True)
class Paused:
    kind: ClassVar[str] = "paused"
    ts: int
    paused: bool
    reason: str = "operator"


@attrs.frozen(slots=True)
class ErrorRecorded:
    kind: ClassVar[str] = "error_recorded"
    ts: int
    source: str
    detail: str


@attrs.frozen(slots=True)
class TradeClosed:
    kind: ClassVar[str] = "trade_closed"
    ts: int
    trade: ClosedTrade


@attrs.frozen(slots=True)
class StrategyStateChanged:
    kind: ClassVar[str] = "strategy_state"
    ts: int
    strategy: str
    old: StrategyState
    new: StrategyState
    reason: str
    figures: dict[str, Any] = attrs.field(factory=dict, hash=False)


@attrs.frozen(slots=True)
class FundingPaid:
    kind: ClassVar[str] = "funding_paid"
    ts: int
    symbol: str
    rate: float
    amount: float
    mark: float = 0.0  # the price it was charged at, so a rebuild charges the same


@attrs.frozen(slots=True)
class RiskChanged:
    """New risk parameters (config at start-up or reload, an operator's `risk set`).

    An event like any other, so a replay of the ledger applies the limits in
    force at each point, and the operator's overrides are in the log.
    """

    kind: ClassVar[str] = "risk_changed"
    ts: int
    risk: RiskParams
    reason: str = "config"


Event = (
    SignalDenied
    | BracketOpened
    | OrderIntent
    | CancelRequested
    | OrderStatusChanged
    | OrderFilled
    | OrderAnomaly
    | StopMoved
    | StopMoveRefused
    | BracketExit
    | BracketClosed
    | BreakerTripped
    | BreakersCleared
    | TradingStateChanged
    | Paused
    | ErrorRecorded
    | TradeClosed
    | StrategyStateChanged
    | FundingPaid
    | RiskChanged
)

omit_when_default(OrderIntent, "post_only")
# A fee paid in quote (every venue but Binance spot) leaves a fill's record as before.
omit_when_default(OrderFilled, "fee_qty")
omit_when_default(BracketOpened, "plan")  # a trade without a plan (manual) reads as before

EVENT_TYPES: dict[str, type] = {
    t.kind: t
    for t in (  # type: ignore[attr-defined]
        SignalDenied,
        BracketOpened,
        OrderIntent,
        CancelRequested,
        OrderStatusChanged,
        OrderFilled,
        OrderAnomaly,
        StopMoved,
        StopMoveRefused,
        BracketExit,
        BracketClosed,
        BreakerTripped,
        BreakersCleared,
        TradingStateChanged,
        Paused,
        ErrorRecorded,
        TradeClosed,
        StrategyStateChanged,
        FundingPaid,
        RiskChanged,
    )
}


def to_dict(event: Event) -> dict[str, Any]:
    """Plain JSON-able dict with a `kind` tag."""
    return {"kind": event.kind, **converter.unstructure(event)}


def from_dict(data: dict[str, Any]) -> Event:
    try:
        cls = EVENT_TYPES[data["kind"]]
    except KeyError:
        raise ValueError(
            f"unknown event kind {data.get('kind')!r}; known: {sorted(EVENT_TYPES)}"
        ) from None
    body = {k: v for k, v in data.items() if k != "kind"}
    return converter.structure(body, cls)  # type: ignore[no-any-return]
