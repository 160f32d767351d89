"""Coded denials: why the risk side said no, with the figures that decided it."""

from __future__ import annotations

import enum
from typing import Any

import attrs


class DenialCode(enum.Enum):
    # sizing
    BAD_SIGNAL = "bad_signal"
    CONFIDENCE_TOO_LOW = "confidence_too_low"
    SIZE_ROUNDS_TO_ZERO = "size_rounds_to_zero"
    BELOW_MIN_NOTIONAL = "below_min_notional"
    NO_EQUITY = "no_equity"
    STOP_ALREADY_HIT = "stop_already_hit"
    RISK_MONEY = "risk_money"  # even one lot risks more money than max_risk_money
    STOP_TICKS = "stop_ticks"  # the stop is farther from entry than max_stop_ticks
    # portfolio gates
    PORTFOLIO_HEAT = "portfolio_heat"
    GROSS_EXPOSURE = "gross_exposure"
    SYMBOL_EXPOSURE = "symbol_exposure"
    CLUSTER_EXPOSURE = "cluster_exposure"
    MAX_OPEN_POSITIONS = "max_open_positions"
    ORDER_RATE = "order_rate"
    FEED_STALE = "feed_stale"
    DATA_QUALITY = "data_quality"
    NO_FEED_HEALTH = "no_feed_health"
    EXECUTION_QUALITY = "execution_quality"
    # trading state and strategy state
    TRADING_REDUCING = "trading_reducing"
    TRADING_HALTED = "trading_halted"
    TRADING_PAUSED = "trading_paused"
    STRATEGY_QUARANTINED = "strategy_quarantined"
    DUPLICATE_SIGNAL = "duplicate_signal"
    SIGNAL_STALE = "signal_stale"
    POSITION_ALREADY_OPEN = "position_already_open"
    TRADES_PER_DAY = "trades_per_day"  # the day's trade count is at its limit
    LONG_ONLY = "long_only"  # a short entry on a venue that cannot short (spot)


@attrs.frozen(slots=True)
class Denial:
    """A coded no. `figures` holds the numbers compared (value, limit, ...)."""

    code: DenialCode
    message: str
    figures: dict[str, Any] = attrs.field(factory=dict, hash=False)

    def __bool__(self) -> bool:  # a Denial is never mistaken for a pass
        return True


def deny(code: DenialCode, message: str, **figures: Any) -> Denial:
    return Denial(code=code, message=message, figures=figures)
