"""Strategy names to classes; a new strategy is one file plus one line here."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fractald.core.strategies.base import Strategy, StrategyParams
from fractald.core.strategies.bos_orderblock import BOSOrderBlock
from fractald.core.strategies.confidence import ConfidenceModel
from fractald.core.strategies.fvg_fill import FVGFill
from fractald.core.strategies.k1_vwap_reversion import VWAPReversion
from fractald.core.strategies.k2_failed_break import FailedBreak
from fractald.core.strategies.k3_sweep_reversal import SweepReversal
from fractald.core.strategies.k4_momentum_extension import MomentumExtension
from fractald.core.strategies.k5_noise_filter import NoiseFilter
from fractald.core.strategies.liquidity_sweep import LiquiditySweep

STRATEGIES: dict[str, type[Strategy]] = {
    cls.name: cls
    for cls in (
        LiquiditySweep,
        FVGFill,
        BOSOrderBlock,
        VWAPReversion,
        FailedBreak,
        SweepReversal,
        MomentumExtension,
        NoiseFilter,
    )
}

# The SMC strategies: what "all strategies" means for backtests and benchmarks (the K templates are
# session templates for futures, chosen by name).
SMC_STRATEGIES = ("bos_orderblock", "fvg_fill", "liquidity_sweep")


def create(
    name: str,
    symbol: str,
    timeframe: str,
    params: Mapping[str, Any] | None = None,
    confidence: ConfidenceModel | None = None,
) -> Strategy:
    """Build a strategy with timeframe defaults overridden by `params` (from config)."""
    try:
        cls = STRATEGIES[name]
    except KeyError:
        raise ValueError(
            f"unknown strategy {name!r}; known: {', '.join(sorted(STRATEGIES))}"
        ) from None
    p = cls.params_type.for_timeframe(timeframe, **dict(params or {}))
    return cls(symbol, timeframe, p, confidence)


def register(cls: type[Strategy]) -> type[Strategy]:
    """Add a strategy class under its `name` (plug-ins come through `fractald.strategy_plugins`).

    A name already taken by another class is refused: two strategies under one
    name would make a config mean different things on different hosts.
    """
    if not (isinstance(cls, type) and issubclass(cls, Strategy)):
        raise TypeError(f"{cls!r} is not a fractald Strategy subclass")
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name.isidentifier():
        raise TypeError(f"{cls.__qualname__}.name must be an identifier string, got {name!r}")
    if not (isinstance(cls.params_type, type) and issubclass(cls.params_type, StrategyParams)):
        raise TypeError(f"{cls.__qualname__}.params_type must subclass StrategyParams")
    taken = STRATEGIES.get(name)
    if taken is not None and taken is not cls:
        raise ValueError(
            f"strategy name {name!r} is taken by {taken.__module__}.{taken.__qualname__}"
        )
    STRATEGIES[name] = cls
    return cls
