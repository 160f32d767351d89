"""Brackets: an entry with a protective stop and one or more scale-out targets.

The stop is held locally (checked against every price the engine sees)
and fires a reduce-only market exit, because many venues lack native
trailing stops and a local stop can move (break-even, trailing) without
cancel/replace races. Targets are reduce-only limit orders placed once the
entry is done, sized to the quantity actually filled. The stop and the
targets are one-cancels-other: the exit cancels the targets, and the last
target fill ends the bracket.

A `Bracket` is a frozen value: the methods here decide (new stop, exit
reason, target plan) or return the next value (`entry_filled`,
`reduce_filled`), and only `evolve.py` puts a new one in the engine's state.
"""

from __future__ import annotations

import enum

import attrs

from fractald.core.execution.management import ManagementPlan
from fractald.core.execution.orders import QTY_EPS
from fractald.core.models import Side
from fractald.core.risk.params import in_range, int_range
from fractald.core.risk.sizing import Instrument


class TrailMode(enum.Enum):
    NONE = "NONE"
    FIXED = "FIXED"  # distance in price units
    PERCENT = "PERCENT"  # fraction of the best price
    ATR = "ATR"  # multiple of the ATR of the signal's timeframe


@attrs.frozen(slots=True)
class BracketParams:
    # Fractions of the filled quantity per target, in target order; the last
    # target takes whatever rounding leaves. Fewer fractions than targets:
    # the remaining targets are ignored; more: the extra fractions are ignored.
    target_fractions: tuple[float, ...] = (0.5, 0.5)
    break_even_after_tp1: bool = True
    break_even_offset_ticks: int = attrs.field(default=0, validator=int_range(0, 10_000))
    trail_mode: TrailMode = TrailMode.NONE
    trail_distance: float = attrs.field(default=0.0, validator=in_range(0, 1e12))
    trail_after_tp1: bool = True
    atr_period: int = attrs.field(default=14, validator=int_range(1, 1_000))
    max_holding_bars: int = attrs.field(
        default=0, validator=int_range(0, 1_000_000)
    )  # 0 = no time exit
    # Also rest a reduce-only stop-market order at the venue, so the position stays
    # protected while the daemon is down. The local stop remains the backstop.
    venue_stops: bool = False
    # Replace the venue stop for a trailing move only when it moved this many ticks.
    venue_stop_min_move_ticks: int = attrs.field(default=1, validator=int_range(1, 1_000_000))
    # Targets kept here, not resting at the venue: when the price reaches one, its share is
    # sold at market. For spot, where the venue stop already locks the whole balance (a
    # resting target beside it is refused for insufficient balance): the stop is taken off
    # first and put back for what is left once the target's exit is done.
    local_targets: bool = False

    def __attrs_post_init__(self) -> None:
        if not self.target_fractions or any(not 0 < f <= 1 for f in self.target_fractions):
            raise ValueError(
                "BracketParams.target_fractions must be fractions within (0, 1], "
                f"got {self.target_fractions!r}"
            )
        if sum(self.target_fractions) > 1 + 1e-9:
            raise ValueError(
                f"BracketParams.target_fractions must sum to at most 1, got "
                f"{sum(self.target_fractions)}"
            )
        if self.trail_mode is not TrailMode.NONE and self.trail_distance <= 0:
            raise ValueError("BracketParams.trail_distance must be > 0 when trail_mode is set")


class BracketState(enum.Enum):
    PENDING = "PENDING"  # entry working, nothing filled yet
    OPEN = "OPEN"  # holding a position
    EXITING = "EXITING"  # exit order sent
    CLOSED = "CLOSED"


@attrs.frozen(slots=True)
class Bracket:
    signal_id: str
    strategy: str
    symbol: str
    side: Side
    timeframe: str
    planned_qty: float
    entry_price: float
    stop: float
    targets: tuple[float, ...]
    confidence: float
    ts_open: int
    initial_stop: float = attrs.field(
        default=attrs.Factory(lambda self: self.stop, takes_self=True)
    )
    state: BracketState = BracketState.PENDING
    entry_coid: str = ""
    entry_done: bool = False
    filled_qty: float = 0.0
    avg_entry: float = 0.0
    open_qty: float = 0.0
    target_coids: tuple[str, ...] = ()
    target_qtys: tuple[float, ...] = ()
    target_filled: tuple[float, ...] = ()
    exit_coids: tuple[str, ...] = ()
    # venue-side protective stops, newest last
    stop_coids: tuple[str, ...] = ()
    exit_reason: str = ""
    break_even_done: bool = False
    best_price: float = 0.0
    ts_first_fill: int = 0
    # The strategy's management plan (None: the engine's bracket rules only, as for a manual
    # trade), and the best bar extreme since the first fill it trails (market-derived, like
    # `best_price`). Its R and break-even are judged from `avg_entry`, as the bracket's own.
    plan: ManagementPlan | None = None
    plan_best: float = 0.0

    @property
    def sign(self) -> int:
        return self.side.sign

    @property
    def risk_amount(self) -> float:
        """Money lost from the entry price to the initial stop on the filled quantity."""
        return abs(self.avg_entry - self.initial_stop) * self.filled_qty

    def open_risk(self) -> float:
        """Heat: what the stop would still cost against the entry, on held plus still-wanted size."""
        entry = self.avg_entry if self.filled_qty else self.entry_price
        per_unit = max(0.0, (entry - self.stop) * self.sign)
        pending = 0.0 if self.entry_done else max(0.0, self.planned_qty - self.filled_qty)
        return per_unit * (self.open_qty + pending)

    def exposure(self, mark: float) -> float:
        pending = 0.0 if self.entry_done else max(0.0, self.planned_qty - self.filled_qty)
        return self.open_qty * (mark or self.entry_price) + pending * self.entry_price

    # -- the next value (evolve.py applies these when ledger events are applied) ----------
    def entry_filled(self, qty: float, price: float, ts: int) -> Bracket:
        """This bracket after an entry fill of `qty` at `price`."""
        first = self.filled_qty == 0
        opens = self.state is BracketState.PENDING
        return attrs.evolve(
            self,
            avg_entry=(self.avg_entry * self.filled_qty + price * qty) / (self.filled_qty + qty),
            filled_qty=self.filled_qty + qty,
            open_qty=self.open_qty + qty,
            ts_first_fill=self.ts_first_fill or ts,
            state=BracketState.OPEN if opens else self.state,
            best_price=price if opens else self.best_price,
            plan_best=price if first else self.plan_best,
        )

    def reduce_filled(self, coid: str, qty: float) -> Bracket:
        """This bracket after a reducing fill of `qty` by its order `coid`."""
        filled = self.target_filled
        if coid in self.target_coids:
            i = self.target_coids.index(coid)
            filled = (*filled[:i], filled[i] + qty, *filled[i + 1 :])
        return attrs.evolve(self, target_filled=filled, open_qty=max(0.0, self.open_qty - qty))

    def best_after(self, price: float) -> float:
        """The best price held at after `price` (market-derived: what trailing follows)."""
        return price if (price - self.best_price) * self.sign > 0 else self.best_price

    def tp1_done(self) -> bool:
        return bool(self.target_qtys) and self.target_filled[0] >= self.target_qtys[0] - QTY_EPS

    # -- decisions (pure reads) ------------------------------------------------------
    def target_plan(self, params: BracketParams, inst: Instrument) -> list[tuple[float, float]]:
        """(price, quantity) per target for the filled quantity; rounding leftovers go to the last."""
        n = min(len(self.targets), len(params.target_fractions))
        qtys = [inst.floor_qty(self.filled_qty * f) for f in params.target_fractions[:n]]
        qtys[-1] = inst.floor_qty(self.filled_qty - sum(qtys[:-1]))
        # A target too small to place folds into the next one.
        plan: list[tuple[float, float]] = []
        carry = 0.0
        for price, q in zip(self.targets[:n], qtys):
            q += carry
            if q <= QTY_EPS:
                carry = q
                continue
            carry = 0.0
            plan.append((inst.round_price(price), round(q, 12)))
        return plan

    def stop_hit(self, price: float) -> bool:
        return (price - self.stop) * self.sign <= 0

    def trailing_stop(
        self, price: float, params: BracketParams, inst: Instrument, atr: float | None
    ) -> float | None:
        """A tighter stop from the trailing rule, or None (`best_price` marked with `price` first)."""
        if self.state is not BracketState.OPEN or params.trail_mode is TrailMode.NONE:
            return None
        best = self.best_after(price)
        if params.trail_after_tp1 and not self.tp1_done():
            return None
        if params.trail_mode is TrailMode.FIXED:
            dist = params.trail_distance
        elif params.trail_mode is TrailMode.PERCENT:
            dist = best * params.trail_distance
        else:
            if not atr:
                return None
            dist = atr * params.trail_distance
        raw = best - dist * self.sign
        new = inst.round_price(raw, -self.sign)
        if (new - self.stop) * self.sign > 0 and (price - new) * self.sign > 0:
            return new
        return None

    def break_even_stop(self, params: BracketParams, inst: Instrument) -> float | None:
        if not params.break_even_after_tp1 or self.break_even_done or not self.tp1_done():
            return None
        be = inst.round_price(
            self.avg_entry + self.sign * params.break_even_offset_ticks * inst.tick_size, self.sign
        )
        return be if (be - self.stop) * self.sign > 0 else None

    def time_exit_due(self, ts: int, params: BracketParams, timeframe_ms: int) -> bool:
        if params.max_holding_bars <= 0 or self.state is not BracketState.OPEN:
            return False
        return ts - self.ts_first_fill >= params.max_holding_bars * timeframe_ms
