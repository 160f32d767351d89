"""What a strategy plug-in builds on: the public, stable names (see fractald.strategy_plugins).

A plug-in subclasses `Strategy` (sets `name` and `params_type`, implements
`detect`) and declares its parameters as a frozen attrs subclass of
`StrategyParams` validated with `int_in` / `float_in`, so a bad value in the
config is refused by `check-config` with the parameter's name and range.
"""

from fractald.core.models import TIMEFRAME_MS, Bar, Side, Signal
from fractald.core.smc._live_validate import float_in, int_in
from fractald.core.smc.live import LiveSMC, SMCEvent
from fractald.core.strategies.base import (
    BarContext,
    ManagementPlan,
    Setup,
    Skip,
    SkipCode,
    Strategy,
    StrategyParams,
    describe,
)

__all__ = [
    "TIMEFRAME_MS",
    "Bar",
    "BarContext",
    "LiveSMC",
    "ManagementPlan",
    "SMCEvent",
    "Setup",
    "Side",
    "Signal",
    "Skip",
    "SkipCode",
    "Strategy",
    "StrategyParams",
    "describe",
    "float_in",
    "int_in",
]
