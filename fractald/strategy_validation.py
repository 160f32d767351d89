"""Check [strategies] by building the strategies it describes: a leaf module (no config import).

`config.validate` calls `strategy_problems` with plain settings, so the
config module does not import the pipeline factory (which imports config).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def strategy_problems(
    enabled: Sequence[str],
    timeframe: str,
    trend_timeframes: Sequence[str],
    params: Mapping[str, Mapping[str, Any]],
    confidence: Mapping[str, float],
) -> list[str]:
    """Each problem with the strategy settings, naming the key; [] when they build."""
    if not enabled:
        return []
    from fractald.core.pipeline import NullEngine, build_pipeline
    from fractald.core.strategies.confidence import ConfidenceModel, ConfidenceWeights
    from fractald.core.strategies.registry import STRATEGIES
    from fractald.strategy_plugins import PluginError, load_plugins

    try:
        load_plugins()
    except PluginError as exc:
        return [f"config.strategies: a strategy plug-in is broken: {exc}"]
    unknown = [n for n in enabled if n not in STRATEGIES]
    if unknown:
        return [
            (
                f"config.strategies.enabled: unknown strateg{'y' if len(unknown) == 1 else 'ies'} "
                f"{unknown}; allowed: {', '.join(sorted(STRATEGIES))} (a plug-in strategy must be "
                f"installed in the daemon's environment under the 'fractald.strategies' entry points)"
            )
        ]
    try:
        build_pipeline(
            "CHECK",
            NullEngine(),
            list(enabled),
            timeframe,
            params=dict(params) or None,
            confidence=ConfidenceModel(ConfidenceWeights(**confidence)),
            trend_timeframes=tuple(trend_timeframes),
        )
    except (ValueError, TypeError) as exc:
        return [f"config.strategies: {exc}"]
    return []
