"""Trading strategies over live SMC structure: one interface, one file per strategy."""

from fractald.core.strategies.base import (
    Action,
    BarContext,
    ExitNow,
    ManagementPlan,
    MarketState,
    MoveStop,
    Setup,
    Skip,
    SkipCode,
    Strategy,
    StrategyParams,
    TradeState,
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
    "Action",
    "BarContext",
    "Confidence",
    "ConfidenceModel",
    "ConfidenceWeights",
    "ExitNow",
    "Factors",
    "ManagementPlan",
    "MarketState",
    "MoveStop",
    "Setup",
    "Skip",
    "SkipCode",
    "Strategy",
    "StrategyParams",
    "TradeState",
    "create",
]
