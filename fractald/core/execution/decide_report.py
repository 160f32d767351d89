"""The venue-report decider: what one report from a venue (or the paper broker) means.

`report_event` is a pure read of the order the report names: the order
event it makes (`OrderFilled`, `OrderStatusChanged`), an `OrderAnomaly`
when it does not fit (an unknown order, a transition the order table does
not allow, a fill in a state that cannot take one), or nothing for a fill
already applied (the same trade id again). A fill beyond the order's
quantity means our books are wrong: an `InvariantViolation`, never booked.

`follow_report` is what the event leads to, a generator like the other
deciders (`decide_brackets`): the order event, the round trips a fill
closes (`TradeClosed`, known before the fill is booked, so nothing waits
in the state between the two) with their strategy's reliability change,
the breakers' counted trips, and the order's bracket moved on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fractald.core.execution import events as ev
from fractald.core.execution.decide_brackets import Decision, after_order
from fractald.core.execution.decide_breakers import counters
from fractald.core.execution.evolve import trip_context
from fractald.core.execution.orders import QTY_EPS, OrderEvent
from fractald.core.execution.reports import VenueReport
from fractald.errors import InvariantViolation

if TYPE_CHECKING:
    from fractald.core.execution._engine_core import EngineCore as State
    from fractald.core.execution.orders import Order


def report_event(order: Order | None, r: VenueReport) -> Any | None:
    """The one event `r` makes of `order` (None when the report is a duplicate fill)."""
    if order is None:
        return ev.OrderAnomaly(r.ts, r.client_order_id, "unknown_order", r.kind.value)
    o = order
    if r.kind is OrderEvent.FILL:
        if r.trade_id in o.trade_ids:
            return None  # a duplicate report of a fill already applied
        if o.next_status(o.fill_event(r.quantity)) is None:
            return ev.OrderAnomaly(r.ts, o.client_order_id, "fill_in_" + o.status.value, r.trade_id)
        if o.filled_qty + r.quantity > o.quantity * (1 + 1e-9) + QTY_EPS:
            raise InvariantViolation(
                f"overfill on {o.client_order_id}",
                client_order_id=o.client_order_id,
                trade_id=r.trade_id,
            )
        return ev.OrderFilled(
            r.ts,
            o.client_order_id,
            r.trade_id,
            o.symbol,
            o.side,
            r.quantity,
            r.price,
            r.fee,
            r.liquidity,
            o.strategy,
            o.signal_id,
            o.role,
            r.fee_qty,
        )
    target = o.next_status(r.kind)
    if target is None:
        return ev.OrderAnomaly(
            r.ts, o.client_order_id, "invalid_transition", f"{r.kind.value} in {o.status.value}"
        )
    return ev.OrderStatusChanged(
        r.ts, o.client_order_id, r.kind, target, r.reason, r.venue_order_id
    )


def follow_report(s: State, o: Order, event: Any, ts: int) -> Decision:
    """`event` (what a report made of the known order `o`), then what it leads to."""
    if isinstance(event, ev.OrderFilled):
        closed = s.accounting.closed_by(
            event.strategy,
            event.symbol,
            event.side,
            event.received,
            event.price,
            event.fee,
            event.ts,
            trip_context(s, event),
        )
        yield event
        for trade in closed:
            yield ev.TradeClosed(ts, trade)
            change = s.reliability.evaluate(trade.strategy, ts)
            if change is not None:
                yield ev.StrategyStateChanged(
                    ts, change.strategy, change.old, change.new, change.reason, dict(change.figures)
                )
        if closed:
            yield from counters(s, ts)
    else:
        yield event
    b = s.brackets.get(o.signal_id)
    if b is not None:
        # Orders are frozen values: `o` as the event left it (the last value, once it is gone).
        yield from after_order(s, b, s.orders.get(o.client_order_id, o), ts)
