"""The sections that decide trades: [risk], [strategies], [session]."""

from __future__ import annotations

from typing import Any

import attrs

from fractald.config.field_checks import between, one_of, timeframe_names
from fractald.core.models import TIMEFRAME_MS


@attrs.frozen
class RiskConfig:
    mode: str = attrs.field(default="paper", validator=one_of("paper", "live"))
    risk_per_trade: float = attrs.field(default=0.005, validator=between(0, 0.05, lo_open=True))
    heat_cap: float = attrs.field(default=0.06, validator=between(0, 0.5, lo_open=True))
    max_drawdown: float = attrs.field(default=0.20, validator=between(0, 0.9, lo_open=True))
    daily_loss_limit: float = attrs.field(default=0.05, validator=between(0, 0.9, lo_open=True))
    # Limits in money and ticks (0 = off); the v1 futures bot ran $15 per trade, 12 ticks, $30 a day.
    max_risk_money: float = attrs.field(default=0.0, validator=between(0, 1e12))
    max_stop_ticks: int = attrs.field(default=0, validator=between(0, 1_000_000))
    daily_loss_money: float = attrs.field(default=0.0, validator=between(0, 1e12))
    max_trades_per_day: int = attrs.field(default=50, validator=between(1, 10_000))
    max_consecutive_losses: int = attrs.field(default=8, validator=between(1, 1000))
    max_open_positions: int = attrs.field(default=3, validator=between(1, 1000))
    min_data_quality: float = attrs.field(default=0.80, validator=between(0, 1))
    min_execution_quality: float = attrs.field(default=0.75, validator=between(0, 1))


@attrs.frozen
class StrategiesConfig:
    enabled: list[str] = attrs.field(
        factory=lambda: ["liquidity_sweep", "fvg_fill", "bos_orderblock"]
    )
    timeframe: str = attrs.field(default="15m", validator=one_of(*TIMEFRAME_MS))
    # Higher-timeframe structure the confidence model reads (H4, H1, M15 agreeing scores higher).
    trend_timeframes: list[str] = attrs.field(
        factory=lambda: ["15m", "1h", "4h"], validator=timeframe_names
    )
    params: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    # Weights of the confidence factor model (fractald.core.strategies.confidence.ConfidenceWeights).
    confidence: dict[str, float] = attrs.field(factory=dict)
    # Enter every strategy's trade with a maker-only limit at its entry price (GTX / LIMIT_MAKER
    # / Alo; the paper broker alike): a limit that would take is rejected, never filled.
    post_only_entries: bool = False


@attrs.frozen
class SessionConfig:
    # "" = a 24 h market (no gate); else an exchange_calendars name, e.g. "XNYS" for the
    # regular hours of US equity-index futures (holidays and early closes included).
    calendar: str = ""
    skip_first_minutes: int = attrs.field(default=0, validator=between(0, 1440))
    no_entry_last_minutes: int = attrs.field(default=0, validator=between(0, 1440))
    flatten_before_close_minutes: int = attrs.field(default=0, validator=between(0, 1440))
