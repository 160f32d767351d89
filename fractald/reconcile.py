"""Reconciliation: what the ledger says against what the broker says, at start and periodically.

Three parts:

* `VenueReconciler`, what every venue answers (open orders, one order by
  client order id, fills since a time, positions); the paper venue answers
  from its own book through `fractald.venues.paper.PaperVenueAdapter`, as
  a real venue does from its exchange;
* `compare(ledger, venue, books)`: a pure function from three plain views
  to a `ReconcileReport` of definitive repairs and open mismatches;
* `reconcile(ledger, venue, books_positions)`: reads the ledger, asks the
  venue, compares, and applies the definitive repairs (outcomes) to the
  ledger. What to do about mismatches (go REDUCING, say what was found) is
  the caller's decision: see `TradingSession.reconcile`.

A repair is made only when the answer is definitive: an intent the venue
reports in a terminal state gets that outcome; an intent that was never
claimed for submission and that the venue does not know never left the
process. Anything else (an order the ledger never recorded, a submitted
order the venue does not know, positions that disagree, a fill only one
side has) is a mismatch for a human, and the daemon stops taking new risk.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import attrs

from fractald.store.ledger import IntentRecord, Ledger
from fractald.store.writer import AsyncLedger
from fractald.venues.interface import TERMINAL_STATUSES, VenueFill, VenueOrder

QTY_TOLERANCE = 1e-9  # quantities are floats summed in different orders
TERMINAL_OUTCOMES = TERMINAL_STATUSES
NOT_SENT = "not_sent"  # an intent whose submission was never claimed and the venue never saw


# What a venue reports: one set of types for every venue (see fractald.venues.interface).


@runtime_checkable
class VenueReconciler(Protocol):
    """What every venue (paper or real) answers for reconciliation; all by our client order ids."""

    async def open_orders(self) -> list[VenueOrder]: ...

    async def order_status(self, client_order_id: str) -> VenueOrder | None:
        """The venue's view of one order (None: the venue has never seen this id)."""
        ...

    async def fills_since(self, ts: int) -> list[VenueFill]: ...

    async def positions(self) -> dict[str, float]:
        """Net signed quantity per symbol (long positive)."""
        ...


# ---------------------------------------------------------------- the pure comparison
class MismatchCode(enum.Enum):
    UNKNOWN_ORDER = "unknown_order"  # the venue has an open order the ledger never recorded
    ORDER_OPEN_BUT_CLOSED = "order_open_but_closed"  # ledger outcome set, venue still working it
    SUBMITTED_ORDER_MISSING = "submitted_order_missing"  # claimed as sent, venue never saw it
    FILL_QTY = "fill_qty"  # the ledger's fills of an order differ from the venue's filled qty
    MISSING_FILL = "missing_fill"  # the venue reports a fill the ledger does not have
    POSITION = "position"  # positions differ (ledger fills vs venue, or vs our own books)
    ACCOUNT = "account"  # the venue's equity is short of what the books size trades on
    MARGIN = "margin"  # no free margin, or margin used beyond the configured leverage's need


@attrs.frozen(slots=True)
class Mismatch:
    code: MismatchCode
    subject: str  # a client order id or a symbol
    figures: dict[str, Any] = attrs.field(factory=dict, hash=False)

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code.value, "subject": self.subject, **self.figures}


@attrs.frozen(slots=True)
class Repair:
    """A definitive correction of the ledger: give this intent its outcome."""

    client_order_id: str
    outcome: str
    reason: str


@attrs.frozen(slots=True)
class LedgerView:
    """What the ledger holds, read in one go."""

    pending: Mapping[str, IntentRecord]  # intents with no outcome, by client order id
    open_at_venue_intents: Mapping[str, IntentRecord]  # the ledger's rows for venue-open ids
    fills: Mapping[str, Mapping[str, float]]  # per pending/open/venue-filled id: {trade_id: qty}
    positions: Mapping[str, float]  # re-derived from every fill in the log
    last_fill_ts: int


@attrs.frozen(slots=True)
class VenueView:
    open_orders: Sequence[VenueOrder]
    looked_up: Mapping[str, VenueOrder | None]  # order_status of each pending intent not open
    fills: Sequence[VenueFill]  # since the ledger's last fill
    positions: Mapping[str, float]


@attrs.frozen(slots=True)
class ReconcileReport:
    repairs: tuple[Repair, ...]
    mismatches: tuple[Mismatch, ...]
    figures: dict[str, Any] = attrs.field(factory=dict, hash=False)

    @property
    def clean(self) -> bool:
        return not self.mismatches

    def as_dict(self) -> dict[str, Any]:
        return {
            "repairs": [attrs.asdict(r) for r in self.repairs],
            "mismatches": [m.as_dict() for m in self.mismatches],
            **self.figures,
        }


def _position_mismatches(
    ledger_pos: Mapping[str, float], other: Mapping[str, float], source: str
) -> list[Mismatch]:
    out = []
    for symbol in sorted(set(ledger_pos) | set(other)):
        mine, theirs = ledger_pos.get(symbol, 0.0), other.get(symbol, 0.0)
        if abs(mine - theirs) > QTY_TOLERANCE * max(1.0, abs(mine), abs(theirs)):
            out.append(
                Mismatch(
                    MismatchCode.POSITION,
                    symbol,
                    {"ledger_fills": mine, source: theirs, "source": source},
                )
            )
    return out


def _order_mismatches(ledger: LedgerView, venue: VenueView) -> list[Mismatch]:
    out = []
    for order in venue.open_orders:
        cid = order.client_order_id
        record = ledger.open_at_venue_intents.get(cid)
        if record is None:
            out.append(
                Mismatch(
                    MismatchCode.UNKNOWN_ORDER,
                    cid,
                    {"symbol": order.symbol, "quantity": order.quantity},
                )
            )
            continue
        if record.outcome is not None:
            out.append(
                Mismatch(
                    MismatchCode.ORDER_OPEN_BUT_CLOSED,
                    cid,
                    {"ledger_outcome": record.outcome, "venue_status": order.status},
                )
            )
        filled = sum(ledger.fills.get(cid, {}).values())
        if abs(filled - order.filled_qty) > QTY_TOLERANCE * max(1.0, order.quantity):
            out.append(
                Mismatch(
                    MismatchCode.FILL_QTY,
                    cid,
                    {"ledger_filled": filled, "venue_filled": order.filled_qty},
                )
            )
    return out


def _pending_outcomes(ledger: LedgerView, venue: VenueView) -> tuple[list[Repair], list[Mismatch]]:
    open_ids = {o.client_order_id for o in venue.open_orders}
    repairs, mismatches = [], []
    for cid, record in ledger.pending.items():
        if cid in open_ids:
            continue  # still working: nothing to decide yet
        seen = venue.looked_up.get(cid)
        if seen is not None and seen.terminal:
            repairs.append(Repair(cid, seen.status, "venue reports it " + seen.status))
        elif seen is None and not record.submitted:
            repairs.append(
                Repair(cid, NOT_SENT, "never claimed for submission; venue never saw it")
            )
        elif seen is None:
            mismatches.append(
                Mismatch(
                    MismatchCode.SUBMITTED_ORDER_MISSING, cid, {"submitted_ms": record.submitted_ms}
                )
            )
        else:  # the venue knows it, not open, not terminal (e.g. still initialising)
            mismatches.append(
                Mismatch(MismatchCode.SUBMITTED_ORDER_MISSING, cid, {"venue_status": seen.status})
            )
    return repairs, mismatches


def _fill_mismatches(ledger: LedgerView, venue: VenueView) -> list[Mismatch]:
    return [
        Mismatch(MismatchCode.MISSING_FILL, f.client_order_id, {"trade_id": f.trade_id, "ts": f.ts})
        for f in venue.fills
        if f.trade_id not in ledger.fills.get(f.client_order_id, {})
    ]


def compare(
    ledger: LedgerView, venue: VenueView, books: Mapping[str, float] | None = None
) -> ReconcileReport:
    """Ledger against venue (and against our own books' positions, when given). Pure."""
    repairs, mismatches = _pending_outcomes(ledger, venue)
    mismatches += _order_mismatches(ledger, venue)
    mismatches += _fill_mismatches(ledger, venue)
    mismatches += _position_mismatches(ledger.positions, venue.positions, "venue")
    if books is not None:
        mismatches += _position_mismatches(ledger.positions, books, "books")
    figures = {
        "pending_intents": len(ledger.pending),
        "venue_open_orders": len(venue.open_orders),
        "positions": dict(ledger.positions),
        "last_fill_ts": ledger.last_fill_ts,
    }
    return ReconcileReport(tuple(repairs), tuple(mismatches), figures)


# ---------------------------------------------------------------- reading and repairing
def _read_ledger(
    pending: Mapping[str, IntentRecord],
    open_ids: Sequence[str],
    fill_ids: Sequence[str],
    last_fill_ts: int,
) -> Any:
    def read(led: Ledger) -> LedgerView:
        return LedgerView(
            pending,
            led.intents_by_id(open_ids),
            led.fills_of(set(pending) | set(open_ids) | set(fill_ids)),
            led.fill_positions(),
            last_fill_ts,
        )

    return read


def _read_pending(led: Ledger) -> tuple[dict[str, IntentRecord], int]:
    return {r.client_order_id: r for r in led.pending_intents()}, led.last_fill_ts()


async def reconcile(
    ledger: AsyncLedger,
    venue: VenueReconciler,
    books: Mapping[str, float] | None = None,
    ts: int = 0,
) -> ReconcileReport:
    """Compare the ledger with `venue` and write the definitive repairs; return the report.

    Call it where nothing else writes the ledger meanwhile (the trading
    actor, between two market events), so its reads are one consistent view.
    """
    open_orders = await venue.open_orders()
    pending, last_fill_ts = await ledger.run(_read_pending)
    fills = await venue.fills_since(last_fill_ts)
    view = await ledger.run(
        _read_ledger(
            pending,
            [o.client_order_id for o in open_orders],
            [f.client_order_id for f in fills],
            last_fill_ts,
        )
    )
    open_ids = {o.client_order_id for o in open_orders}
    looked_up = {cid: await venue.order_status(cid) for cid in pending if cid not in open_ids}
    report = compare(view, VenueView(open_orders, looked_up, fills, await venue.positions()), books)
    if report.repairs:
        await ledger.commit_batch(
            [("intent_repaired", attrs.asdict(r), ts) for r in report.repairs],
            outcomes=[(r.client_order_id, r.outcome, ts) for r in report.repairs],
        )
    return report


__all__ = [
    "LedgerView",
    "Mismatch",
    "MismatchCode",
    "ReconcileReport",
    "Repair",
    "VenueFill",
    "VenueOrder",
    "VenueReconciler",
    "VenueView",
    "compare",
    "reconcile",
]
