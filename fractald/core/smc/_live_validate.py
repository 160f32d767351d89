"""attrs validators for tuning parameters: a bad value names the parameter and the allowed range."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from fractald.core.models import TIMEFRAME_MS

Validator = Callable[[Any, "attrs.Attribute[Any]", Any], None]


def int_in(lo: int, hi: int) -> Validator:
    def check(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise ValueError(f"{attribute.name} must be an integer in {lo}..{hi}, got {value!r}")

    return check


def float_in(lo: float, hi: float, *, optional: bool = False) -> Validator:
    """A real number in lo..hi (None too when `optional`)."""

    def check(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is None and optional:
            return
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
            allowed = f"a number in {lo}..{hi}" + (" or None" if optional else "")
            raise ValueError(f"{attribute.name} must be {allowed}, got {value!r}")

    return check


def known_timeframe(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value not in TIMEFRAME_MS:
        raise ValueError(
            f"{attribute.name} must be one of {', '.join(TIMEFRAME_MS)}, got {value!r}"
        )
