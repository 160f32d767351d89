"""Accounting: positions, average price, realized and unrealized P&L, fees, funding, equity.

Books are kept per (strategy, symbol); per-symbol and per-strategy views
are sums over them. A round trip (flat -> open -> flat) becomes a
ClosedTrade; a fill that flips a position closes the old trip and opens a
new one with the rest. Cash = initial equity + realized P&L - fees -
funding; equity = cash + unrealized P&L at the last mark.
"""

from __future__ import annotations

from typing import Any

import attrs

from fractald.core.equity_history import DEFAULT_CAP, EquityHistory
from fractald.core.execution.converter import converter
from fractald.core.execution.orders import QTY_EPS
from fractald.core.models import ClosedTrade, Side


@attrs.frozen(slots=True)
class Position:
    """One (strategy, symbol) book: a value, replaced by `book_fill` / `with_funding` (called
    only from `evolve`). Its mark is the account's (`Accounting.marks`), not a field: a price
    moves no position."""

    strategy: str
    symbol: str
    quantity: float = 0.0  # signed: + long, - short
    avg_price: float = 0.0
    realized_pnl: float = 0.0  # gross of fees
    fees: float = 0.0
    funding: float = 0.0
    # the open round trip
    trip_id: str = ""
    trip_ts_entry: int = 0
    trip_max_qty: float = 0.0
    trip_entry_notional: float = 0.0
    trip_entry_qty: float = 0.0
    trip_exit_notional: float = 0.0
    trip_exit_qty: float = 0.0
    trip_pnl: float = 0.0
    trip_fees: float = 0.0
    trip_risk: float = 0.0
    trip_confidence: float = 0.0
    trip_exit_reason: str = ""
    trip_long: bool = True

    @property
    def side(self) -> Side | None:
        if abs(self.quantity) <= QTY_EPS:
            return None
        return Side.BUY if self.quantity > 0 else Side.SELL


def unrealized_pnl(p: Position, mark: float) -> float:
    """`p`'s unrealized P&L marked at `mark` (0 when flat or with no mark yet)."""
    if p.quantity == 0 or mark <= 0:
        return 0.0
    return (mark - p.avg_price) * p.quantity


@attrs.frozen(slots=True)
class TripContext:
    """What the engine knows about the trade a fill belongs to."""

    trip_id: str = ""
    risk: float = 0.0  # money at risk at entry, for the R multiple
    confidence: float = 0.0
    exit_reason: str = ""


def _closing_part(
    p: Position, side: Side, qty: float, price: float, fee: float
) -> tuple[float, float, float] | None:
    """What of `p` this fill closes: (quantity, its share of the fee, its P&L); None when the
    fill opens or adds. Booking and the pure read both use it, so they agree to the bit."""
    signed = qty * side.sign
    if abs(p.quantity) <= QTY_EPS or p.quantity * signed > 0:
        return None
    closing = min(abs(signed), abs(p.quantity))
    fee_close = fee * closing / qty
    pnl = (price - p.avg_price) * closing * (1 if p.quantity > 0 else -1)
    return closing, fee_close, pnl


def book_fill(
    p: Position, side: Side, qty: float, price: float, fee: float, ts: int, ctx: TripContext
) -> tuple[Position, list[ClosedTrade]]:
    """`p` after one fill, and the round trips the fill closed."""
    closed = _closed_trip(p, side, qty, price, fee, ts, ctx)
    part = _closing_part(p, side, qty, price, fee)
    f = attrs.asdict(p, recurse=False)  # the next value's fields, worked out in the old order
    f["fees"] += fee
    if part is None:
        _open(f, qty * side.sign, price, fee, ts, ctx)
        return Position(**f), []
    closing, fee_close, pnl = part
    f["realized_pnl"] += pnl
    f["trip_pnl"] += pnl
    f["trip_fees"] += fee_close
    f["trip_exit_notional"] += closing * price
    f["trip_exit_qty"] += closing
    f["quantity"] += closing * side.sign
    if ctx.exit_reason:
        f["trip_exit_reason"] = ctx.exit_reason
    if abs(f["quantity"]) <= QTY_EPS:
        f["quantity"] = 0.0
        f["avg_price"] = 0.0
    rest = qty - closing
    if rest > QTY_EPS:  # flipped through zero: the rest opens a new trip
        _open(f, rest * side.sign, price, fee - fee_close, ts, ctx)
    return Position(**f), [] if closed is None else [closed]


def with_funding(p: Position, cost: float) -> Position:
    """`p` after paying `cost` of funding (negative: received)."""
    return attrs.evolve(p, funding=p.funding + cost)


def _closed_trip(
    p: Position, side: Side, qty: float, price: float, fee: float, ts: int, ctx: TripContext
) -> ClosedTrade | None:
    """The round trip this fill closes in `p` (None: it opens, adds, or only reduces). A pure read.

    The same sums, in the same order, as `book_fill`'s booking, so the trade it
    names is the one booking the fill makes, to the bit.
    """
    part = _closing_part(p, side, qty, price, fee)
    if part is None:
        return None
    closing, fee_close, pnl = part
    if abs(p.quantity + closing * side.sign) > QTY_EPS:
        return None
    trip_pnl = p.trip_pnl + pnl
    trip_fees = p.trip_fees + fee_close
    exit_notional = p.trip_exit_notional + closing * price
    exit_qty = p.trip_exit_qty + closing
    net = trip_pnl - trip_fees
    return ClosedTrade(
        trade_id=p.trip_id,
        symbol=p.symbol,
        strategy=p.strategy,
        side=Side.BUY if p.trip_long else Side.SELL,
        quantity=p.trip_max_qty,
        entry_price=p.trip_entry_notional / p.trip_entry_qty,
        exit_price=exit_notional / exit_qty,
        ts_entry=p.trip_ts_entry,
        ts_exit=ts,
        pnl=net,
        fees=trip_fees,
        confidence=p.trip_confidence,
        r_multiple=net / p.trip_risk if p.trip_risk > 0 else 0.0,
        exit_reason=ctx.exit_reason or p.trip_exit_reason,
    )


def _open(
    f: dict[str, Any], signed: float, price: float, fee: float, ts: int, ctx: TripContext
) -> None:
    """Open or add to the position whose next fields are `f` (a scratch dict of `book_fill`)."""
    if abs(f["quantity"]) <= QTY_EPS:
        f["trip_id"] = ctx.trip_id or f"{f['strategy']}:{f['symbol']}:{ts}"
        f["trip_ts_entry"] = ts
        for name in _TRIP_SUMS:
            f[name] = 0.0
        f["trip_confidence"] = ctx.confidence
        f["trip_exit_reason"] = ""
        f["trip_long"] = signed > 0
    quantity = f["quantity"]
    new_qty = quantity + signed
    f["avg_price"] = (f["avg_price"] * abs(quantity) + price * abs(signed)) / abs(new_qty)
    f["quantity"] = new_qty
    f["trip_entry_notional"] += abs(signed) * price
    f["trip_entry_qty"] += abs(signed)
    f["trip_max_qty"] = max(f["trip_max_qty"], abs(new_qty))
    f["trip_fees"] += fee
    f["trip_risk"] += ctx.risk


_TRIP_SUMS = (
    "trip_max_qty",
    "trip_entry_notional",
    "trip_entry_qty",
    "trip_exit_notional",
    "trip_exit_qty",
    "trip_pnl",
    "trip_fees",
    "trip_risk",
)


class Accounting:
    # Equity is read at every price the engine sees. Cash changes only with fills
    # and funding, unrealized P&L also with marks: each is kept from its last read
    # until one of those (or a restore) happens; positions change only through
    # `apply_fill` / `apply_funding`, which evolve's transitions call.
    _cash: float | None = None
    _unrealized: float | None = None

    def __init__(self, initial_equity: float, equity_curve_cap: int = DEFAULT_CAP) -> None:
        self.initial_equity = initial_equity
        self.positions: dict[tuple[str, str], Position] = {}
        # The last price per symbol: every position of that symbol is marked at it.
        self.marks: dict[str, float] = {}
        # The whole run at a bounded cost (see fractald.core.equity_history).
        self.equity_curve = EquityHistory(equity_curve_cap)
        self.closed_count = 0
        self._changed()

    def position(self, strategy: str, symbol: str) -> Position:
        """The (strategy, symbol) book as it is now (an empty one when it never traded)."""
        p = self.positions.get((strategy, symbol))
        return Position(strategy, symbol) if p is None else p

    def mark_price(self, symbol: str) -> float:
        """The price `symbol`'s positions are marked at (0: none seen yet)."""
        return self.marks.get(symbol, 0.0)

    def unrealized_of(self, p: Position) -> float:
        """`p`'s unrealized P&L at its symbol's mark."""
        return unrealized_pnl(p, self.marks.get(p.symbol, 0.0))

    def apply_fill(
        self,
        strategy: str,
        symbol: str,
        side: Side,
        qty: float,
        price: float,
        fee: float,
        ts: int,
        ctx: TripContext = TripContext(),
    ) -> list[ClosedTrade]:
        """Book one fill; returns the round trips it closed (0, or 1 when flat or flipped)."""
        self._changed()
        self.positions[(strategy, symbol)], closed = book_fill(
            self.position(strategy, symbol), side, qty, price, fee, ts, ctx
        )
        self.closed_count += len(closed)
        return closed

    def closed_by(
        self,
        strategy: str,
        symbol: str,
        side: Side,
        qty: float,
        price: float,
        fee: float,
        ts: int,
        ctx: TripContext = TripContext(),
    ) -> list[ClosedTrade]:
        """The round trips `apply_fill` with these arguments would close, booking nothing (a pure read)."""
        p = self.positions.get((strategy, symbol))
        closed = None if p is None else _closed_trip(p, side, qty, price, fee, ts, ctx)
        return [] if closed is None else [closed]

    def apply_funding(self, symbol: str, rate: float, mark: float | None = None) -> float:
        """Charge one funding interval at `mark` (default: the current mark); longs pay a positive rate."""
        total = 0.0
        self._changed()
        price = self.marks.get(symbol, 0.0) if mark is None else mark
        positions = self.positions
        for key, p in positions.items():
            if p.symbol == symbol and p.quantity and price > 0:
                cost = p.quantity * price * rate
                positions[key] = with_funding(p, cost)
                total += cost
        return total

    def _changed(self) -> None:
        self._cash = self._unrealized = None

    def mark(self, symbol: str, price: float) -> None:
        self.marks[symbol] = price
        if self._unrealized is None:
            return
        # A flat book's unrealized P&L is 0 at any mark.
        for p in self.positions.values():
            if p.quantity != 0 and p.symbol == symbol:
                self._unrealized = None
                return

    # -- views ---------------------------------------------------------------------
    @property
    def cash(self) -> float:
        if self._cash is None:
            self._cash = self.initial_equity + sum(
                p.realized_pnl - p.fees - p.funding for p in self.positions.values()
            )
        return self._cash

    @property
    def unrealized(self) -> float:
        if self._unrealized is None:
            marks = self.marks
            self._unrealized = sum(
                unrealized_pnl(p, marks.get(p.symbol, 0.0)) for p in self.positions.values()
            )
        return self._unrealized

    @property
    def equity(self) -> float:
        return self.cash + self.unrealized

    def equity_at(self, symbol: str, price: float) -> float:
        """`equity` as `mark(symbol, price)` would make it, marking nothing (the same sum, term by term)."""
        marks = self.marks
        return self.cash + sum(
            unrealized_pnl(p, price if p.symbol == symbol else marks.get(p.symbol, 0.0))
            for p in self.positions.values()
        )

    def record_equity(self, ts: int) -> float:
        eq = self.equity
        self.equity_curve.record(ts, eq)
        return eq

    def holds(self, symbol: str) -> bool:
        """Whether any book holds `symbol`, so that its price moves the equity."""
        for p in self.positions.values():
            if p.quantity != 0 and p.symbol == symbol:
                return True
        return False

    def net_quantity(self, symbol: str) -> float:
        return sum(p.quantity for p in self.positions.values() if p.symbol == symbol)

    def summary(self, by: str) -> dict[str, dict[str, float]]:
        """P&L per 'symbol' or per 'strategy'."""
        out: dict[str, dict[str, float]] = {}
        for p in self.positions.values():
            key = p.symbol if by == "symbol" else p.strategy
            row = out.setdefault(
                key,
                {
                    "quantity": 0.0,
                    "realized_pnl": 0.0,
                    "unrealized_pnl": 0.0,
                    "fees": 0.0,
                    "funding": 0.0,
                },
            )
            if by == "symbol":
                row["quantity"] += p.quantity
            else:
                row.pop("quantity", None)
            row["realized_pnl"] += p.realized_pnl
            row["unrealized_pnl"] += self.unrealized_of(p)
            row["fees"] += p.fees
            row["funding"] += p.funding
        return out

    def snapshot(self) -> dict[str, Any]:
        conv = converter
        return {
            "initial_equity": self.initial_equity,
            "marks": dict(self.marks),
            "positions": [conv.unstructure(p) for p in self.positions.values()],
            # Exact (buckets and all); the daemon keeps its closed points in their own ledger table.
            "equity_curve": self.equity_curve.state(),
            "closed_count": self.closed_count,
        }

    def restore(self, data: dict[str, Any]) -> None:
        conv = converter
        self._changed()
        self.initial_equity = float(data["initial_equity"])
        self.marks = {k: float(v) for k, v in data["marks"].items()}
        self.positions = {
            (p.strategy, p.symbol): p
            for p in (conv.structure(d, Position) for d in data["positions"])
        }
        self.equity_curve.restore_state(data["equity_curve"])
        self.closed_count = int(data["closed_count"])
