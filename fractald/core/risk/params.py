"""Risk parameters: frozen attrs classes with defaults and range validators.

Every validator names the parameter, the bad value and the allowed range,
so a config error reads like "gates.max_heat_fraction must be within
(0, 1], got 1.5". The lead embeds these classes in the TOML config.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from typing import Any

import attrs


def in_range(
    lo: float, hi: float, *, lo_open: bool = False, hi_open: bool = False
) -> Callable[[Any, attrs.Attribute[Any], float], None]:
    """Validator: value is a finite number within lo..hi (open or closed ends)."""
    left, right = ("(" if lo_open else "["), (")" if hi_open else "]")

    def check(instance: Any, attribute: attrs.Attribute[Any], value: float) -> None:
        ok = (
            isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        )
        if ok:
            ok = (value > lo if lo_open else value >= lo) and (
                value < hi if hi_open else value <= hi
            )
        if not ok:
            raise ValueError(
                f"{type(instance).__name__}.{attribute.name} must be within "
                f"{left}{lo}, {hi}{right}, got {value!r}"
            )

    return check


def int_range(lo: int, hi: int) -> Callable[[Any, attrs.Attribute[Any], int], None]:
    """Validator: value is an int within lo..hi inclusive."""

    def check(instance: Any, attribute: attrs.Attribute[Any], value: int) -> None:
        if not (isinstance(value, int) and not isinstance(value, bool) and lo <= value <= hi):
            raise ValueError(
                f"{type(instance).__name__}.{attribute.name} must be an integer within "
                f"[{lo}, {hi}], got {value!r}"
            )

    return check


INF = math.inf
BIG = 1e15


@attrs.frozen(slots=True)
class SizingParams:
    """Fixed-fractional sizing: risk `risk_fraction` of equity per trade at full confidence.

    The confidence scale runs linearly from `min_scale` at `confidence_low`
    to `max_scale` at `confidence_high` (clamped outside); signals below
    `min_confidence` are denied.
    """

    risk_fraction: float = attrs.field(default=0.005, validator=in_range(0, 0.1, lo_open=True))
    # Money and tick limits (0 = off), as the v1 futures bot set them ($15, 12 ticks).
    max_risk_money: float = attrs.field(default=0.0, validator=in_range(0, 1e12))
    max_stop_ticks: int = attrs.field(default=0, validator=int_range(0, 1_000_000))
    min_confidence: float = attrs.field(default=0.0, validator=in_range(0, 100))
    confidence_low: float = attrs.field(default=50.0, validator=in_range(0, 100))
    confidence_high: float = attrs.field(default=90.0, validator=in_range(0, 100))
    min_scale: float = attrs.field(default=0.5, validator=in_range(0, 1))
    max_scale: float = attrs.field(default=1.0, validator=in_range(0, 1, lo_open=True))
    min_notional: float = attrs.field(default=10.0, validator=in_range(0, BIG))
    max_notional: float = attrs.field(default=1_000_000.0, validator=in_range(0, BIG, lo_open=True))

    def __attrs_post_init__(self) -> None:
        if self.confidence_high <= self.confidence_low:
            raise ValueError(
                f"SizingParams.confidence_high ({self.confidence_high}) must be "
                f"above confidence_low ({self.confidence_low})"
            )
        if self.min_scale > self.max_scale:
            raise ValueError(
                f"SizingParams.min_scale ({self.min_scale}) must not exceed "
                f"max_scale ({self.max_scale})"
            )
        if self.min_notional > self.max_notional:
            raise ValueError(
                f"SizingParams.min_notional ({self.min_notional}) must not exceed "
                f"max_notional ({self.max_notional})"
            )


@attrs.frozen(slots=True)
class GateParams:
    """Portfolio gates. Every cap is exclusive: a value at or above the cap is denied."""

    max_heat_fraction: float = attrs.field(default=0.06, validator=in_range(0, 1, lo_open=True))
    max_gross_exposure_fraction: float = attrs.field(
        default=3.0, validator=in_range(0, 100, lo_open=True)
    )
    max_symbol_exposure_fraction: float = attrs.field(
        default=1.0, validator=in_range(0, 100, lo_open=True)
    )
    max_cluster_exposure_fraction: float = attrs.field(
        default=1.5, validator=in_range(0, 100, lo_open=True)
    )
    correlation_threshold: float = attrs.field(default=0.7, validator=in_range(0, 1, lo_open=True))
    correlation_window: int = attrs.field(default=100, validator=int_range(3, 100_000))
    max_open_positions: int = attrs.field(default=5, validator=int_range(1, 10_000))
    max_orders_per_window: int = attrs.field(default=30, validator=int_range(1, 1_000_000))
    order_rate_window_ms: int = attrs.field(default=60_000, validator=int_range(1, 86_400_000))
    min_execution_quality: float = attrs.field(default=0.75, validator=in_range(0, 1))
    min_data_quality: float = attrs.field(default=0.80, validator=in_range(0, 1))


class BreakerAction(enum.Enum):
    """What a tripped breaker does to the trading state."""

    REDUCING = "REDUCING"
    HALTED = "HALTED"


# Max drawdown is measured from the peak, which a new day does not change: only a resume clears it.
DAILY_RESETTABLE = frozenset({"daily_loss", "trades_per_day", "consecutive_losses", "error_burst"})


@attrs.frozen(slots=True)
class BreakerParams:
    """Circuit breakers. Each trips when its figure reaches its limit (at or above)."""

    max_drawdown_fraction: float = attrs.field(default=0.20, validator=in_range(0, 1, lo_open=True))
    daily_loss_fraction: float = attrs.field(default=0.05, validator=in_range(0, 1, lo_open=True))
    daily_loss_money: float = attrs.field(
        default=0.0, validator=in_range(0, 1e12)
    )  # 0 = off (v1: $30)
    max_trades_per_day: int = attrs.field(default=50, validator=int_range(1, 1_000_000))
    max_consecutive_losses: int = attrs.field(default=6, validator=int_range(1, 10_000))
    error_burst_count: int = attrs.field(default=10, validator=int_range(1, 1_000_000))
    error_burst_window_ms: int = attrs.field(default=60_000, validator=int_range(1, 86_400_000))
    drawdown_action: BreakerAction = BreakerAction.HALTED
    daily_loss_action: BreakerAction = BreakerAction.REDUCING
    trades_per_day_action: BreakerAction = BreakerAction.REDUCING
    consecutive_losses_action: BreakerAction = BreakerAction.REDUCING
    error_burst_action: BreakerAction = BreakerAction.HALTED
    # Trips a new UTC day clears by itself (their counts start afresh); every
    # other trip needs an explicit resume. A backtest may add "consecutive_losses".
    daily_reset_breakers: tuple[str, ...] = attrs.field(
        default=("daily_loss", "trades_per_day"), converter=tuple
    )

    @daily_reset_breakers.validator
    def _check_daily(self, attribute: attrs.Attribute[Any], value: tuple[str, ...]) -> None:
        bad = [v for v in value if v not in DAILY_RESETTABLE]
        if bad:
            raise ValueError(
                f"BreakerParams.daily_reset_breakers: {bad} cannot reset daily; "
                f"allowed: {sorted(DAILY_RESETTABLE)}"
            )

    @classmethod
    def for_live(cls, **overrides: Any) -> BreakerParams:
        """Stricter defaults for real money: 10% max drawdown."""
        return cls(**{"max_drawdown_fraction": 0.10, **overrides})


@attrs.frozen(slots=True)
class ExecQualityParams:
    """How execution figures map onto a 0..1 score: each figure scores 1 at zero and 0 at its 'bad' level."""

    window: int = attrs.field(default=50, validator=int_range(1, 100_000))
    bad_slippage_bps: float = attrs.field(default=25.0, validator=in_range(0, 10_000, lo_open=True))
    bad_ack_ms: float = attrs.field(default=2_000.0, validator=in_range(0, 1e9, lo_open=True))
    bad_fill_ms: float = attrs.field(default=10_000.0, validator=in_range(0, 1e9, lo_open=True))
    bad_reject_rate: float = attrs.field(default=0.25, validator=in_range(0, 1, lo_open=True))
    bad_failed_cancel_rate: float = attrs.field(
        default=0.25, validator=in_range(0, 1, lo_open=True)
    )
    # Below this many observations the score is 1.0: no evidence, no penalty.
    min_samples: int = attrs.field(default=5, validator=int_range(0, 100_000))


@attrs.frozen(slots=True)
class ReliabilityParams:
    """Strategy reliability loop thresholds."""

    throttle_after_losses: int = attrs.field(default=3, validator=int_range(1, 10_000))
    quarantine_after_losses: int = attrs.field(default=5, validator=int_range(1, 10_000))
    throttle_scale: float = attrs.field(default=0.5, validator=in_range(0, 1, lo_open=True))
    expectancy_window: int = attrs.field(default=20, validator=int_range(2, 100_000))
    min_trades_for_expectancy: int = attrs.field(default=10, validator=int_range(2, 100_000))
    # Expectancy (mean R) at or below this quarantines the strategy.
    quarantine_expectancy_r: float = attrs.field(default=-0.2, validator=in_range(-100, 100))
    # Quarantine lasts this long, then the strategy is on probation (THROTTLED).
    quarantine_ms: int = attrs.field(default=24 * 3_600_000, validator=int_range(0, 10**12))
    recovery_wins: int = attrs.field(default=2, validator=int_range(1, 10_000))

    def __attrs_post_init__(self) -> None:
        if self.quarantine_after_losses < self.throttle_after_losses:
            raise ValueError(
                "ReliabilityParams.quarantine_after_losses must be >= throttle_after_losses"
            )
        if self.min_trades_for_expectancy > self.expectancy_window:
            raise ValueError(
                "ReliabilityParams.min_trades_for_expectancy must be <= expectancy_window"
            )


@attrs.frozen(slots=True)
class RiskParams:
    """Everything the risk side of the engine needs, as one config section."""

    sizing: SizingParams = attrs.field(factory=SizingParams)
    gates: GateParams = attrs.field(factory=GateParams)
    breakers: BreakerParams = attrs.field(factory=BreakerParams)
    exec_quality: ExecQualityParams = attrs.field(factory=ExecQualityParams)
    reliability: ReliabilityParams = attrs.field(factory=ReliabilityParams)
