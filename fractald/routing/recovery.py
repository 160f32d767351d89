"""What became of an intent that has no outcome: decided from the venue's answer, for any venue.

Pure functions; the router asks the venue and applies what these decide.

* never claimed: it never left the process; it is sent now, unless it is
  an entry older than `max_age_ms` (the moment has passed: not sent);
* claimed, and the venue knows it: its status and the fills the venue has
  for it become the reports the engine missed; a terminal status is the
  outcome;
* claimed, and the venue does not know it: once `settle_ms` has passed
  since the claim (long enough that a request still in flight would have
  landed, or expired at the venue), it never reached the venue: not sent;
  before that, ask again later.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

import attrs

from fractald.core.execution.events import OrderIntent
from fractald.core.execution.orders import OrderEvent
from fractald.core.execution.reports import RECOVERED, VenueReport
from fractald.venues.interface import VenueFill, VenueOrder

NOT_SENT = "not_sent"


class Verdict(enum.Enum):
    SEND = "send"  # never claimed: send it now
    RESOLVED = "resolved"  # the venue's answer explains it (reports below; outcome if terminal)
    NOT_SENT = "not_sent"  # it never reached the venue and never will
    ASK_LATER = "ask_later"  # not yet definitive


@attrs.frozen(slots=True)
class Resolution:
    client_order_id: str
    verdict: Verdict
    reports: tuple[VenueReport, ...] = ()
    outcome: str | None = None
    reason: str = ""


_TERMINAL_EVENTS = {
    "canceled": OrderEvent.CANCEL,
    "rejected": OrderEvent.REJECT,
    "expired": OrderEvent.EXPIRE,
    "denied": OrderEvent.REJECT,
}


def reports_from_venue(
    order: VenueOrder, fills: Iterable[VenueFill], seen_trade_ids: set[str], ts: int
) -> tuple[VenueReport, ...]:
    """The engine's missed reports for one order the venue knows: ack, trigger, unseen fills, end."""
    coid = order.client_order_id
    out = [
        VenueReport(
            OrderEvent.ACCEPT, coid, ts, reason=RECOVERED, venue_order_id=order.venue_order_id
        )
    ]
    if order.trigger_price is not None and (order.status == "triggered" or order.filled_qty > 0):
        out.append(
            VenueReport(
                OrderEvent.TRIGGER, coid, ts, reason=RECOVERED, venue_order_id=order.venue_order_id
            )
        )
    for f in sorted(fills, key=lambda f: (f.ts, f.trade_id)):
        if f.client_order_id == coid and f.trade_id not in seen_trade_ids:
            out.append(
                VenueReport(
                    OrderEvent.FILL,
                    coid,
                    f.ts,
                    trade_id=f.trade_id,
                    quantity=f.quantity,
                    price=f.price,
                    fee=f.fee,
                    fee_qty=f.fee_qty,
                    venue_order_id=order.venue_order_id,
                )
            )
    end = _TERMINAL_EVENTS.get(order.status)
    if end is not None:
        out.append(
            VenueReport(
                end,
                coid,
                ts,
                reason=f"venue_{order.status}_while_down",
                venue_order_id=order.venue_order_id,
            )
        )
    return tuple(out)


def resolve(
    intent: OrderIntent,
    *,
    claimed_ms: int | None,
    venue_order: VenueOrder | None,
    fills: Iterable[VenueFill],
    seen_trade_ids: set[str],
    now_ms: int,
    settle_ms: int,
    max_age_ms: int,
) -> Resolution:
    coid = intent.client_order_id
    if venue_order is not None:
        reports = reports_from_venue(venue_order, fills, seen_trade_ids, now_ms)
        return Resolution(
            coid,
            Verdict.RESOLVED,
            reports,
            outcome=venue_order.status if venue_order.terminal else None,
            reason=f"venue says {venue_order.status}",
        )
    if claimed_ms is None:
        if not intent.reduce_only and now_ms - intent.ts > max_age_ms:
            return _not_sent(
                intent, now_ms, "stale_entry: recorded but never sent, and too old to send now"
            )
        return Resolution(coid, Verdict.SEND, reason="recorded, never sent")
    if now_ms - claimed_ms < settle_ms:
        return Resolution(
            coid, Verdict.ASK_LATER, reason="claimed moments ago; the venue may not have it yet"
        )
    return _not_sent(
        intent, now_ms, "never_reached_venue: claimed before a crash, unknown to the venue"
    )


def _not_sent(intent: OrderIntent, now_ms: int, reason: str) -> Resolution:
    # Withdrawn (CANCEL), not refused (REJECT): the venue never saw it, so it must not count
    # against the venue's execution quality (two crashes would otherwise close the entry gate).
    report = VenueReport(OrderEvent.CANCEL, intent.client_order_id, now_ms, reason=reason)
    return Resolution(
        intent.client_order_id, Verdict.NOT_SENT, (report,), outcome=NOT_SENT, reason=reason
    )
