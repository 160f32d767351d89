"""Immutable market and signal messages shared by every part of the core.

Times are integers in milliseconds since the Unix epoch, UTC. `ts_event` is
when the thing happened at the venue (for a bar: when it closed); nothing
here knows what time it is now.
"""

from __future__ import annotations

import enum
import math
from typing import Any

import attrs

MS_PER_MINUTE = 60_000

TIMEFRAME_MS: dict[str, int] = {
    "1m": MS_PER_MINUTE,
    "3m": 3 * MS_PER_MINUTE,
    "5m": 5 * MS_PER_MINUTE,
    "15m": 15 * MS_PER_MINUTE,
    "30m": 30 * MS_PER_MINUTE,
    "1h": 60 * MS_PER_MINUTE,
    "2h": 120 * MS_PER_MINUTE,
    "4h": 240 * MS_PER_MINUTE,
    "1d": 1440 * MS_PER_MINUTE,
}


def timeframe_ms(timeframe: str) -> int:
    """Length of a timeframe such as "15m" in milliseconds; ValueError names the allowed ones."""
    try:
        return TIMEFRAME_MS[timeframe]
    except KeyError:
        raise ValueError(
            f"unknown timeframe {timeframe!r}; allowed: {', '.join(TIMEFRAME_MS)}"
        ) from None


class Side(enum.Enum):
    BUY = "BUY"
    SELL = "SELL"

    @property
    def sign(self) -> int:
        return 1 if self is Side.BUY else -1

    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY


def _finite(instance: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if not math.isfinite(value):
        raise ValueError(f"{attribute.name} must be finite, got {value!r}")


def _positive(instance: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{attribute.name} must be a positive finite number, got {value!r}")


def _non_negative(instance: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{attribute.name} must be >= 0 and finite, got {value!r}")


@attrs.frozen(slots=True)
class Bar:
    """One OHLCV candle. `ts_open` is the UTC-aligned start; `ts_event` the close time.

    `complete` is False for a bar that stands for a gap that could not be
    filled from the venue: its prices repeat the last close and its volume
    is zero, and strategies must not read structure from it.
    """

    symbol: str
    timeframe: str
    ts_open: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    complete: bool = True

    @property
    def ts_event(self) -> int:
        return self.ts_open + timeframe_ms(self.timeframe)


@attrs.frozen(slots=True)
class TradeTick:
    """One public trade at the venue. `aggressor` is the taker's side."""

    symbol: str
    price: float = attrs.field(validator=_positive)
    size: float = attrs.field(validator=_positive)
    aggressor: Side
    trade_id: str
    ts_event: int


@attrs.frozen(slots=True)
class Quote:
    """Best bid and offer."""

    symbol: str
    bid: float
    bid_size: float
    ask: float
    ask_size: float
    ts_event: int

    @property
    def mid(self) -> float:
        return (self.bid + self.ask) / 2.0

    @property
    def crossed(self) -> bool:
        return self.bid > 0 and self.ask > 0 and self.bid >= self.ask


MAX_SIGNAL_RISK = 0.1  # as [risk] risk_fraction's own upper bound


@attrs.frozen(slots=True)
class Signal:
    """A trade idea from a strategy: what, where, how sure, and why.

    `confidence` is 0..100. `reasons` are small dicts naming the structure
    (swing, gap, block) with its levels and bar times, so an operator can
    see why the bot acted.
    """

    symbol: str
    side: Side
    entry: float = attrs.field(validator=_positive)
    stop: float = attrs.field(validator=_positive)
    targets: tuple[float, ...]
    confidence: float = attrs.field(validator=attrs.validators.and_(_finite))
    strategy: str
    timeframe: str
    ts_event: int
    reasons: tuple[dict[str, Any], ...] = ()
    # The share of equity this one trade may risk, in place of [risk] risk_fraction (an
    # operator's `fractalctl enter --risk`); None for every strategy's signal.
    risk_fraction: float | None = None
    # Enter with a maker-only limit at `entry` (a crossing one is rejected, never taken).
    post_only: bool = False

    def __attrs_post_init__(self) -> None:
        if self.risk_fraction is not None and not 0.0 < self.risk_fraction <= MAX_SIGNAL_RISK:
            raise ValueError(
                f"risk_fraction must be within (0, {MAX_SIGNAL_RISK}], got {self.risk_fraction!r}"
            )
        if not 0.0 <= self.confidence <= 100.0:
            raise ValueError(f"confidence must be within 0..100, got {self.confidence!r}")
        if self.side is Side.BUY and not self.stop < self.entry:
            raise ValueError(
                f"a BUY signal needs stop < entry, got stop={self.stop} entry={self.entry}"
            )
        if self.side is Side.SELL and not self.stop > self.entry:
            raise ValueError(
                f"a SELL signal needs stop > entry, got stop={self.stop} entry={self.entry}"
            )
        if not self.targets:
            raise ValueError("a signal needs at least one target")
        for t in self.targets:
            if (t - self.entry) * self.side.sign <= 0:
                raise ValueError(
                    f"target {t} is not beyond entry {self.entry} for a {self.side.value}"
                )

    @property
    def signal_id(self) -> str:
        """Deterministic identity: the same setup seen twice is the same signal."""
        return f"{self.strategy}:{self.symbol}:{self.timeframe}:{self.side.value}:{self.ts_event}"

    @property
    def risk_per_unit(self) -> float:
        return abs(self.entry - self.stop)


@attrs.frozen(slots=True)
class FeedHealth:
    """Per-symbol health of the market data feed, as the risk actor sees it."""

    symbol: str
    ts_event: int
    last_message_age_s: float = attrs.field(validator=_non_negative)
    reconnects: int = 0
    gaps_found: int = 0
    gaps_filled: int = 0
    unparsed: int = 0
    outliers: int = 0
    quality: float = 1.0
    stale: bool = False
    spread_ticks: float | None = None  # latest top-of-book spread in ticks, where scored (IBKR)
    outside_rth: bool = False  # the latest bar lies outside the instrument's regular hours (IBKR)

    def __attrs_post_init__(self) -> None:
        if not 0.0 <= self.quality <= 1.0:
            raise ValueError(f"quality must be within 0..1, got {self.quality!r}")


@attrs.frozen(slots=True)
class ClosedTrade:
    """A round trip, entry to final exit, as reports and the reliability loop see it.

    `pnl` is net of `fees`; `r_multiple` is pnl over the risk taken at entry.
    """

    trade_id: str
    symbol: str
    strategy: str
    side: Side
    quantity: float
    entry_price: float
    exit_price: float
    ts_entry: int
    ts_exit: int
    pnl: float
    fees: float
    confidence: float = 0.0
    r_multiple: float = 0.0
    exit_reason: str = ""
