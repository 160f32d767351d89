"""What the market data feed is told: `FeedSettings` (the config module maps the TOML onto it)."""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable
from typing import Any

import attrs

from fractald.core.models import TIMEFRAME_MS, timeframe_ms

DEFAULT_TIMEFRAMES = ("1m", "5m", "15m", "1h", "4h", "1d")


class VenueName(enum.Enum):
    REPLAY = "replay"
    HYPERLIQUID = "hyperliquid"
    HYPERLIQUID_TESTNET = "hyperliquid-testnet"
    BINANCE = "binance"
    BINANCE_FUTURES = "binance-futures"
    IBKR = "ibkr"  # TWS / IB Gateway through ib_async (fractald/venues/feed_ibkr.py)


def _venue_name(value: str | VenueName) -> VenueName:
    try:
        return VenueName(value)
    except ValueError:
        allowed = ", ".join(v.value for v in VenueName)
        raise ValueError(f"unknown venue {value!r}; allowed: {allowed}") from None


def _symbols(value: Iterable[str]) -> tuple[str, ...]:
    if isinstance(value, str):
        raise ValueError(f"symbols must be a list of names, got the string {value!r}")  # noqa: TRY004
    symbols = tuple(value)
    bad = [s for s in symbols if not isinstance(s, str) or not s.strip()]
    if bad:
        raise ValueError(f"symbols must be non-empty strings, got {bad!r}")
    return symbols


def _timeframes(value: Iterable[str]) -> tuple[str, ...]:
    tfs = tuple(value)
    for tf in tfs:
        timeframe_ms(tf)  # ValueError names the allowed ones
    if not tfs:
        raise ValueError("timeframes must not be empty")
    return tuple(sorted(set(tfs), key=timeframe_ms))


def _positive(instance: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{attribute.name} must be a positive number, got {value!r}")


def _factor(instance: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if not (isinstance(value, (int, float)) and 0 < value <= 1):
        raise ValueError(f"{attribute.name} must be a factor in (0, 1], got {value!r}")


@attrs.frozen(slots=True)
class FeedSettings:
    """Everything the feed needs; the config module maps the TOML onto it."""

    venue: VenueName = attrs.field(default=VenueName.REPLAY, converter=_venue_name)
    symbols: tuple[str, ...] = attrs.field(default=(), converter=_symbols)
    timeframes: tuple[str, ...] = attrs.field(default=DEFAULT_TIMEFRAMES, converter=_timeframes)
    ws_url: str | None = None  # None: the venue's public URL
    rest_url: str | None = None
    replay_path: str | None = None  # None: the bundled BTC 1m candles
    replay_speed: float = attrs.field(default=0.0)  # 0 as fast as possible, 1 real time, N times
    # Candle replay: a file with bad rows is refused unless this asks to repair it (logged).
    replay_repair: bool = False
    book: bool = False  # also keep an L2 book (Binance depth sync, Hyperliquid l2Book)
    stale_after_s: float = attrs.field(default=30.0, validator=_positive)
    silence_timeout_s: float = attrs.field(default=20.0, validator=_positive)
    grace_s: float = attrs.field(default=2.0, validator=attrs.validators.ge(0))
    backoff_base_s: float = attrs.field(default=0.5, validator=_positive)
    backoff_cap_s: float = attrs.field(default=30.0, validator=_positive)
    max_failures: int = attrs.field(default=8, validator=attrs.validators.ge(1))
    health_interval_s: float = attrs.field(default=1.0, validator=_positive)
    outlier_k: float = attrs.field(default=8.0, validator=_positive)
    backfill_timeout_s: float = attrs.field(default=15.0, validator=_positive)
    max_frame_bytes: int = attrs.field(default=4 * 1024 * 1024, validator=attrs.validators.gt(0))
    # Candle replay only: per symbol, the open time of the last 1m bar the consumer's state
    # already covers. The replay restarts at the start of the widest timeframe's bucket
    # holding it, so every higher-timeframe bar is rebuilt whole; the consumer skips the bars
    # it has (crash-only restart without re-pacing a month of candles).
    resume_after_ms: tuple[tuple[str, int], ...] = attrs.field(
        default=(), converter=lambda v: tuple(sorted(dict(v).items()))
    )
    # Live feeds: 1m bars of history fetched from REST at start (up to 5000), so that the
    # first bar of every timeframe is whole. 0: start with the current minute.
    history_bars: int = attrs.field(
        default=0, validator=[attrs.validators.ge(0), attrs.validators.le(5000)]
    )
    # Candle replay from a `fractald download` catalog (instead of replay_path): symbols[0]'s
    # 1m candles of replay_catalog_venue with open times in [replay_from_ms, replay_to_ms).
    replay_catalog: str | None = None
    replay_catalog_venue: str = "binance-futures"
    replay_from_ms: int | None = None
    replay_to_ms: int | None = None
    # IBKR only: where TWS / IB Gateway listens, the feed's own client id (not the order
    # venue's), the futures' exchange, and how many days before expiry the front month rolls.
    ib_host: str = "127.0.0.1"
    ib_port: int = 4002
    ib_client_id: int = 18
    ib_exchange: str = "CME"
    ib_roll_days: int = attrs.field(default=5, validator=attrs.validators.ge(0))
    ib_calendar: str = "CMES"  # exchange_calendars name for trading hours past IB's; "" = none
    # The quality score's factors per tick of spread beyond one, and outside regular hours
    # (venues that report them: IBKR); core/feed_health.py.
    quality_spread_factor: float = attrs.field(default=0.9, validator=_factor)
    quality_outside_rth_factor: float = attrs.field(default=0.9, validator=_factor)

    def __attrs_post_init__(self) -> None:
        if not (math.isfinite(self.replay_speed) and self.replay_speed >= 0):
            raise ValueError(
                f"replay_speed must be >= 0 (0 = as fast as possible), got {self.replay_speed!r}"
            )
        if self.venue is not VenueName.REPLAY and not self.symbols:
            raise ValueError(f"venue {self.venue.value} needs at least one symbol")
        if self.replay_catalog is not None and (not self.symbols or self.replay_from_ms is None):
            raise ValueError("a catalog replay needs a symbol and replay_from_ms")
        if self.grace_s * 1000 >= TIMEFRAME_MS["1m"]:
            raise ValueError(f"grace_s must be under a minute, got {self.grace_s}")
