"""Validators for single config fields: each raises ValueError saying what is allowed.

The loader (fractald.config.key_checks) prefixes the key path and the bad value.
"""

from __future__ import annotations

from typing import Any

import attrs

from fractald.core.models import TIMEFRAME_MS


def one_of(*allowed: Any) -> Any:
    def check(_inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value not in allowed:
            raise ValueError(f"must be one of {', '.join(map(repr, allowed))}")

    return check


def between(lo: float, hi: float, *, lo_open: bool = False) -> Any:
    def check(_inst: Any, attribute: attrs.Attribute[Any], value: float) -> None:
        low_ok = value > lo if lo_open else value >= lo
        if not (low_ok and value <= hi):
            bracket = "(" if lo_open else "["
            raise ValueError(f"must be within {bracket}{lo}, {hi}]")

    return check


def timeframe_names(_inst: Any, attribute: attrs.Attribute[Any], value: list[str]) -> None:
    bad = [tf for tf in value if tf not in TIMEFRAME_MS]
    if bad:
        raise ValueError(f"unknown timeframe(s) {bad}; allowed: {', '.join(TIMEFRAME_MS)}")
    if not value:
        raise ValueError("needs at least one timeframe")


def non_empty(_inst: Any, attribute: attrs.Attribute[Any], value: list[Any]) -> None:
    if not value:
        raise ValueError("must not be empty")
