"""Strategy names to classes; a new strategy is one file plus one line here."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fractald.core.strategies.base import Strategy
from fractald.core.strategies.bos_orderblock import BOSOrderBlock
from fractald.core.strategies.confidence import ConfidenceModel
from fractald.core.strategies.fvg_fill import FVGFill
from fractald.core.strategies.liquidity_sweep import LiquiditySweep

STRATEGIES: dict[str, type[Strategy]] = {
    cls.name: cls for cls in (LiquiditySweep, FVGFill, BOSOrderBlock)
}


def create(name: str, symbol: str, timeframe: str, params: Mapping[str, Any] | None = None,
           confidence: ConfidenceModel | None = None) -> Strategy:
    """Build a strategy with timeframe defaults overridden by `params` (from config)."""
    try:
        cls = STRATEGIES[name]
    except KeyError:
        raise ValueError(f"unknown strategy {name!r}; known: {', '.join(sorted(STRATEGIES))}") from None
    p = cls.params_type.for_timeframe(timeframe, **dict(params or {}))
    return cls(symbol, timeframe, p, confidence)
