"""The performance report over closed trades and an equity curve.

Pure functions over plain data: no clock, no I/O. A period is given as
millisecond bounds (both inclusive); `period_bounds` turns "day", "week",
"month" or "all" into bounds relative to a `now_ms` the caller supplies.

Every figure (drawdown, return, Sharpe, Sortino, Calmar, win rate, profit
factor) comes from `fractald.core.figures`, the one module the backtest,
the plot, the metrics and the breakers use too; its docstring states the
definitions and the unit convention (fractions in data: 0.05 = 5 %).
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
from collections.abc import Iterable, Sequence
from typing import Any

import attrs
import cattrs
import numpy as np

from fractald.core import figures
from fractald.core.figures import MIN_RATIO_RETURNS, Drawdown, TradeStats
from fractald.core.models import ClosedTrade

MS_PER_DAY = 86_400_000
PERIOD_NAMES = ("day", "week", "month", "all")
# Confidence bucket edges: [0,50) [50,60) ... [90,100]; strategies mostly emit 50..100.
CONFIDENCE_EDGES: tuple[float, ...] = (0.0, 50.0, 60.0, 70.0, 80.0, 90.0, 100.0)
DEFAULT_PERIODS_PER_YEAR = figures.PERIODS_PER_YEAR


def _optional_int(instance: Any, attribute: attrs.Attribute[Any], value: int | None) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise ValueError(
            f"{attribute.name} must be an int of epoch milliseconds or None, got {value!r}"
        )


@attrs.frozen(slots=True)
class Period:
    """Inclusive bounds in epoch milliseconds; None means unbounded on that side."""

    start_ms: int | None = attrs.field(default=None, validator=_optional_int)
    end_ms: int | None = attrs.field(default=None, validator=_optional_int)
    label: str = "all"

    def __attrs_post_init__(self) -> None:
        if self.start_ms is not None and self.end_ms is not None and self.end_ms < self.start_ms:
            raise ValueError(f"period end {self.end_ms} is before its start {self.start_ms}")

    def contains(self, ts_ms: int) -> bool:
        return (self.start_ms is None or ts_ms >= self.start_ms) and (
            self.end_ms is None or ts_ms <= self.end_ms
        )


def period_bounds(name: str, now_ms: int, *, calendar: bool = True) -> Period:
    """The period called `name` ending at `now_ms`.

    With `calendar` (the default) "day" starts at 00:00 UTC today, "week" on
    Monday 00:00 UTC and "month" on the 1st at 00:00 UTC: what an operator
    means by "today's P&L". With `calendar=False` they are the rolling last
    24 hours, 7 days and 30 days (what a daily summary sent at midnight wants).
    """
    if name not in PERIOD_NAMES:
        raise ValueError(f"unknown period {name!r}; allowed: {', '.join(PERIOD_NAMES)}")
    if name == "all":
        return Period(None, now_ms, "all")
    if not calendar:
        days = {"day": 1, "week": 7, "month": 30}[name]
        return Period(now_ms - days * MS_PER_DAY, now_ms, name)
    day_start = now_ms - now_ms % MS_PER_DAY
    if name == "day":
        start = day_start
    elif name == "week":
        # 1970-01-01 was a Thursday: weekday (Monday = 0) of day number d is (d + 3) % 7.
        start = day_start - ((now_ms // MS_PER_DAY + 3) % 7) * MS_PER_DAY
    else:
        now = dt.datetime.fromtimestamp(now_ms / 1000, tz=dt.UTC)
        first = dt.datetime(now.year, now.month, 1, tzinfo=dt.UTC)
        start = int(first.timestamp()) * 1000
    return Period(start, now_ms, name)


@attrs.frozen(slots=True)
class GroupStats:
    """TradeStats of the trades sharing one strategy or one symbol."""

    key: str
    stats: TradeStats


@attrs.frozen(slots=True)
class ConfidenceBucket:
    """Trades whose signal confidence was in [low, high) (the last bucket includes 100)."""

    low: float
    high: float
    trades: int
    wins: int
    win_rate: float | None
    net_pnl: float


@attrs.frozen(slots=True)
class TradeRef:
    trade_id: str
    symbol: str
    strategy: str
    pnl: float
    ts_exit: int


@attrs.frozen(slots=True)
class Report:
    period: Period
    starting_equity: float
    ending_equity: float
    pnl_abs: float
    pnl_pct: float  # fraction of the starting equity (0.05 = 5 %)
    stats: TradeStats
    sharpe: float | None
    sortino: float | None
    calmar: float | None
    drawdown: Drawdown
    best_trade: TradeRef | None
    worst_trade: TradeRef | None
    confidence: tuple[ConfidenceBucket, ...]
    by_strategy: tuple[GroupStats, ...]
    by_symbol: tuple[GroupStats, ...]
    equity_points: int
    daily_returns: int
    periods_per_year: int
    ratios_note: str | None = None  # why sharpe/sortino/calmar are None, when they are
    from_ms: int | None = None  # the first and last equity point the figures cover
    to_ms: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data (None where a figure is undefined; never NaN)."""
        return _converter.unstructure(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Report:
        return _converter.structure(data, cls)


_converter = cattrs.Converter()


def trade_stats(trades: Sequence[ClosedTrade]) -> TradeStats:
    """Win rate, averages, profit factor and expectancy of `trades` (see core.figures)."""
    return figures.trade_stats(
        [t.pnl for t in trades], [t.fees for t in trades], [t.r_multiple for t in trades]
    )


def _group(trades: Sequence[ClosedTrade], key: str) -> tuple[GroupStats, ...]:
    groups: dict[str, list[ClosedTrade]] = {}
    for t in trades:
        groups.setdefault(getattr(t, key), []).append(t)
    return tuple(GroupStats(k, trade_stats(groups[k])) for k in sorted(groups))


def confidence_buckets(
    trades: Sequence[ClosedTrade], edges: Sequence[float] = CONFIDENCE_EDGES
) -> tuple[ConfidenceBucket, ...]:
    """How trades and their outcome spread over signal confidence (a calibration check)."""
    buckets = []
    last = len(edges) - 2
    for i, (low, high) in enumerate(itertools.pairwise(edges)):
        inside = [
            t for t in trades if low <= t.confidence < high or (i == last and t.confidence == high)
        ]
        wins = sum(1 for t in inside if t.pnl > 0)
        buckets.append(
            ConfidenceBucket(
                low=float(low),
                high=float(high),
                trades=len(inside),
                wins=wins,
                win_rate=wins / len(inside) if inside else None,
                net_pnl=float(sum(t.pnl for t in inside)),
            )
        )
    return tuple(buckets)


def _ref(trade: ClosedTrade) -> TradeRef:
    return TradeRef(trade.trade_id, trade.symbol, trade.strategy, trade.pnl, trade.ts_exit)


def _check_equity(equity: Sequence[tuple[int, float]]) -> None:
    last_ts: int | None = None
    for i, (ts, value) in enumerate(equity):
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"equity[{i}] must be a positive finite number, got {value!r}")
        if last_ts is not None and ts < last_ts:
            raise ValueError(
                f"equity[{i}] at ts {ts} is earlier than the point before it ({last_ts})"
            )
        last_ts = ts


def equity_from_trades(
    trades: Iterable[ClosedTrade], starting_equity: float
) -> list[tuple[int, float]]:
    """A realised-P&L equity curve: one point per trade exit, in exit order."""
    curve = []
    equity = starting_equity
    for t in sorted(trades, key=lambda t: t.ts_exit):
        equity += t.pnl
        curve.append((t.ts_exit, equity))
    return curve


def _period_curve(
    equity: Sequence[tuple[int, float]], starting_equity: float, period: Period
) -> tuple[np.ndarray, np.ndarray]:
    """Timestamps and values within the period, anchored by the equity it started with."""
    before = [v for ts, v in equity if period.start_ms is not None and ts < period.start_ms]
    inside = [(ts, v) for ts, v in equity if period.contains(ts)]
    anchor_value = before[-1] if before else starting_equity
    if period.start_ms is not None:
        anchor_ts = period.start_ms
    else:
        anchor_ts = inside[0][0] if inside else 0
    ts = np.array([anchor_ts] + [p[0] for p in inside], dtype=np.int64)
    values = np.array([anchor_value] + [p[1] for p in inside], dtype=float)
    return ts, values


def max_drawdown_of(
    equity: Sequence[tuple[int, float]], starting_equity: float, period: Period | None = None
) -> Drawdown:
    """The report's maximum drawdown alone (what the metrics export), computed the same way."""
    ts, values = _period_curve(list(equity), starting_equity, period or Period())
    return figures.max_drawdown(ts, values)


def build_report(
    trades: Sequence[ClosedTrade],
    equity: Sequence[tuple[int, float]],
    starting_equity: float,
    period: Period | None = None,
    *,
    periods_per_year: int = DEFAULT_PERIODS_PER_YEAR,
    min_ratio_returns: int = MIN_RATIO_RETURNS,
) -> Report:
    """The performance report over `period` (default: everything).

    `equity` is the account's equity curve as (ts_ms, equity) in time order;
    when empty, the realised-P&L curve implied by `trades` is used.
    `starting_equity` is the account's equity before the first point; a
    period that starts later begins at the last equity seen before it.
    Trades belong to the period their exit falls in.
    """
    if not (math.isfinite(starting_equity) and starting_equity > 0):
        raise ValueError(
            f"starting_equity must be a positive finite number, got {starting_equity!r}"
        )
    if periods_per_year <= 0:
        raise ValueError(f"periods_per_year must be positive, got {periods_per_year!r}")
    period = period or Period()
    curve = list(equity) if equity else equity_from_trades(trades, starting_equity)
    _check_equity(curve)
    ts, values = _period_curve(curve, starting_equity, period)
    inside = ts[1:]
    chosen = sorted((t for t in trades if period.contains(t.ts_exit)), key=lambda t: t.ts_exit)
    daily = figures.daily_returns(ts, values)
    drawdown = figures.max_drawdown(ts, values)
    ratios = figures.ratios(daily, drawdown.max_pct, periods_per_year, min_ratio_returns)
    start_value, end_value = float(values[0]), float(values[-1])
    return Report(
        period=period,
        starting_equity=start_value,
        ending_equity=end_value,
        pnl_abs=end_value - start_value,
        pnl_pct=figures.total_return(start_value, end_value),
        stats=trade_stats(chosen),
        sharpe=ratios.sharpe,
        sortino=ratios.sortino,
        calmar=ratios.calmar,
        drawdown=drawdown,
        best_trade=_ref(max(chosen, key=lambda t: t.pnl)) if chosen else None,
        worst_trade=_ref(min(chosen, key=lambda t: t.pnl)) if chosen else None,
        confidence=confidence_buckets(chosen),
        by_strategy=_group(chosen, "strategy"),
        by_symbol=_group(chosen, "symbol"),
        equity_points=len(values),
        daily_returns=len(daily),
        periods_per_year=periods_per_year,
        ratios_note=ratios.note,
        from_ms=int(ts[0]) if len(inside) else None,
        to_ms=int(ts[-1]) if len(inside) else None,
    )
