"""Trading strategies over live SMC structure: one interface, one file per strategy."""

from fractald.core.strategies.base import (
    BarContext,
    ManagementPlan,
    MarketState,
    Setup,
    Skip,
    SkipCode,
    Strategy,
    StrategyParams,
)
from fractald.core.strategies.confidence import (
    Confidence,
    ConfidenceModel,
    ConfidenceWeights,
    Factors,
)
from fractald.core.strategies.registry import STRATEGIES, create

__all__ = [
    "STRATEGIES",
    "BarContext",
    "Confidence",
    "ConfidenceModel",
    "ConfidenceWeights",
    "Factors",
    "ManagementPlan",
    "MarketState",
    "Setup",
    "Skip",
    "SkipCode",
    "Strategy",
    "StrategyParams",
    "create",
]
