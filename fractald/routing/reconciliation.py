"""Periodic reconciliation against a venue (pure): orders, fills, positions and margin, for any venue.

Two plain views go in:

* the books' (`BooksView`): the orders the engine believes are working at
  the venue (by our client order id), the venue trade ids the ledger holds,
  its net positions and its equity;
* the venue's (`VenueSnapshot`): its open orders, its fills since the last
  one we recorded, the status of each of our working orders it no longer
  lists as open, its positions and its account (equity, free margin, margin
  used).

`plan_repairs` says what is definitive, as the venue reports the engine
missed (`repairs`, applied through the engine like any other report, so a
missed stop fill closes its trade with reason "stop", and a stop cancelled
at the venue is placed again by the bracket decider), and what is not
(`mismatches`, coded: the caller goes REDUCING and alerts):

* a fill of one of our working orders the ledger does not hold: recorded
  (FILL, the venue's trade id, time, price and fee), once;
* one of our orders the venue has ended (canceled, rejected, expired):
  that end; one it has no record of and no fill for: CANCEL
  (`missing_at_venue`), once it is older than `settle_ms`;
* a fill of an order the engine does not hold as working, or no fill for
  quantity the venue says is filled: `missing_fill` / `fill_qty`;
* an order the venue works that the engine does not: `unknown_order`.

`account_mismatches` compares the venue's money with what the books expect:
equity more than `equity_tolerance` below the books' (sizing would risk
money the account does not hold) is `account`; margin used beyond what the
positions need at the configured leverage, or no free margin left while
positions are open, is `margin`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import attrs

from fractald.core.execution.orders import OrderEvent
from fractald.core.execution.reports import VenueReport
from fractald.reconcile import Mismatch, MismatchCode
from fractald.venues.interface import VenueAccount, VenueFill, VenueOrder, VenuePosition

QTY_EPS = 1e-9
MISSING_AT_VENUE = "missing_at_venue"
_ENDS = {
    "canceled": OrderEvent.CANCEL,
    "rejected": OrderEvent.REJECT,
    "denied": OrderEvent.REJECT,
    "expired": OrderEvent.EXPIRE,
}


@attrs.frozen(slots=True)
class BookOrder:
    """One order the engine holds as working at the venue."""

    client_order_id: str
    symbol: str
    quantity: float
    filled_qty: float
    ts: int  # when it was made (a younger order the venue does not know may still be on its way)


@attrs.frozen(slots=True)
class BooksView:
    working: Mapping[str, BookOrder]
    seen_trade_ids: frozenset[str]
    positions: Mapping[str, float] = attrs.field(factory=dict)
    equity: float = 0.0


@attrs.frozen(slots=True)
class VenueSnapshot:
    open_orders: Sequence[VenueOrder]
    fills: Sequence[VenueFill]  # since the newest fill the ledger holds (less a margin)
    looked_up: Mapping[str, VenueOrder | None]  # our working orders missing from open_orders
    positions: Mapping[str, float]
    account: VenueAccount | None = None
    position_details: Sequence[VenuePosition] = ()
    taken_ms: int = 0  # the wall time it was taken (orders younger than settle_ms are left be)


@attrs.frozen(slots=True)
class AccountLimits:
    # The venue's equity may sit this fraction below the books' (fees, funding, marks) before
    # the books are said to size on money the account does not hold.
    equity_tolerance: float = attrs.field(default=0.05, validator=attrs.validators.ge(0))
    # Margin used may exceed what the positions need at the configured leverage by this fraction.
    margin_tolerance: float = attrs.field(default=0.5, validator=attrs.validators.ge(0))
    leverage: Mapping[str, float] = attrs.field(factory=dict)
    # A spot account holds what it bought, paid in full: no margin to run out of, and a
    # balance all in coins (no free quote) is normal, so the margin checks do not apply.
    holds_coins: bool = False


@attrs.frozen(slots=True)
class ReconcilePlan:
    repairs: tuple[VenueReport, ...]
    mismatches: tuple[Mismatch, ...]


def plan_repairs(
    books: BooksView, venue: VenueSnapshot, *, now_ms: int, settle_ms: int
) -> ReconcilePlan:
    """The definitive repairs (reports for the engine) and the rest (coded mismatches). Pure."""
    repairs: list[VenueReport] = []
    mismatches: list[Mismatch] = []
    missed: dict[str, float] = {}
    for fill in sorted(venue.fills, key=lambda f: (f.ts, f.trade_id)):
        if fill.trade_id in books.seen_trade_ids:
            continue
        order = books.working.get(fill.client_order_id)
        if order is None:
            mismatches.append(
                Mismatch(
                    MismatchCode.MISSING_FILL,
                    fill.client_order_id or fill.trade_id,
                    {"trade_id": fill.trade_id, "symbol": fill.symbol, "quantity": fill.quantity},
                )
            )
            continue
        missed[order.client_order_id] = missed.get(order.client_order_id, 0.0) + fill.quantity
        repairs.append(_fill_report(fill))
    open_ids = set()
    for held in venue.open_orders:
        open_ids.add(held.client_order_id)
        order = books.working.get(held.client_order_id)
        if order is None:
            mismatches.append(
                Mismatch(
                    MismatchCode.UNKNOWN_ORDER,
                    held.client_order_id or held.venue_order_id,
                    {"symbol": held.symbol, "quantity": held.quantity, "status": held.status},
                )
            )
            continue
        mismatches.extend(_fill_qty(order, missed, held))
    for coid, order in sorted(books.working.items()):
        if coid in open_ids:
            continue
        end = _ended(order, venue.looked_up.get(coid), missed, now_ms=now_ms, settle_ms=settle_ms)
        repairs.extend(end.repairs)
        mismatches.extend(end.mismatches)
    return ReconcilePlan(tuple(repairs), tuple(mismatches))


def _fill_report(fill: VenueFill) -> VenueReport:
    return VenueReport(
        OrderEvent.FILL,
        fill.client_order_id,
        fill.ts,
        trade_id=fill.trade_id,
        quantity=fill.quantity,
        price=fill.price,
        fee=fill.fee,
        fee_qty=fill.fee_qty,
    )


def _fill_qty(order: BookOrder, missed: Mapping[str, float], held: VenueOrder) -> list[Mismatch]:
    books = order.filled_qty + missed.get(order.client_order_id, 0.0)
    if abs(books - held.filled_qty) <= QTY_EPS * max(1.0, order.quantity):
        return []
    return [
        Mismatch(
            MismatchCode.FILL_QTY,
            order.client_order_id,
            {"books_filled": books, "venue_filled": held.filled_qty, "status": held.status},
        )
    ]


def _ended(
    order: BookOrder,
    seen: VenueOrder | None,
    missed: Mapping[str, float],
    *,
    now_ms: int,
    settle_ms: int,
) -> ReconcilePlan:
    """One of our working orders the venue no longer lists as open."""
    coid = order.client_order_id
    if seen is None:
        if missed.get(coid, 0.0) > QTY_EPS or order.filled_qty > QTY_EPS:
            return ReconcilePlan(
                (),
                (
                    Mismatch(
                        MismatchCode.SUBMITTED_ORDER_MISSING,
                        coid,
                        {"symbol": order.symbol, "books_filled": order.filled_qty},
                    ),
                ),
            )
        if now_ms - order.ts < settle_ms:
            return ReconcilePlan((), ())  # it may still be on its way: ask next time
        cancel = VenueReport(OrderEvent.CANCEL, coid, now_ms, reason=MISSING_AT_VENUE)
        return ReconcilePlan((cancel,), ())
    filled = order.filled_qty + missed.get(coid, 0.0)
    short = seen.filled_qty - filled > QTY_EPS * max(1.0, order.quantity)
    if short:  # the venue filled more than any fill we hold or were given explains
        return ReconcilePlan((), tuple(_fill_qty(order, missed, seen)))
    end = _ENDS.get(seen.status)
    if end is None:
        return ReconcilePlan((), ())  # filled (its fills repaired above) or still moving
    report = VenueReport(
        end, coid, now_ms, reason=f"venue_{seen.status}", venue_order_id=seen.venue_order_id
    )
    return ReconcilePlan((report,), ())


def account_mismatches(
    books_equity: float,
    account: VenueAccount | None,
    positions: Sequence[VenuePosition],
    limits: AccountLimits,
) -> list[Mismatch]:
    """The venue's money against the books' expectation (see the module's docstring). Pure."""
    if account is None or not all(
        math.isfinite(x) for x in (account.equity, account.available, account.margin_used)
    ):
        return []  # the venue did not say (IB leaves a tag out until it has it): nothing to compare
    out: list[Mismatch] = []
    if books_equity > 0 and account.equity < books_equity * (1.0 - limits.equity_tolerance):
        out.append(
            Mismatch(
                MismatchCode.ACCOUNT,
                account.currency,
                {
                    "books_equity": round(books_equity, 2),
                    "venue_equity": round(account.equity, 2),
                    "tolerance": limits.equity_tolerance,
                },
            )
        )
    held = [p for p in positions if abs(p.quantity) > QTY_EPS]
    if limits.holds_coins:
        return out
    if held and account.available <= 0.0:
        out.append(
            Mismatch(
                MismatchCode.MARGIN,
                account.currency,
                {"why": "no_free_margin", "available": account.available},
            )
        )
    needed = _margin_needed(held, limits.leverage)
    if needed is not None and account.margin_used > needed * (1.0 + limits.margin_tolerance):
        out.append(
            Mismatch(
                MismatchCode.MARGIN,
                account.currency,
                {
                    "why": "margin_used_above_leverage",
                    "margin_used": round(account.margin_used, 2),
                    "expected": round(needed, 2),
                },
            )
        )
    return out


def _margin_needed(held: Sequence[VenuePosition], leverage: Mapping[str, float]) -> float | None:
    """What the positions need at their configured leverage (None: a leverage is not known)."""
    if not held or any(leverage.get(p.symbol, 0.0) <= 0 for p in held):
        return None
    # At the mark, as the venue counts it: the entry's notional moved by the unrealized P&L.
    return sum(
        abs(p.quantity * p.entry_price + p.unrealized_pnl) / leverage[p.symbol] for p in held
    )
