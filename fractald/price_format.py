"""Prices as the operator reads them: rounded to the instrument's tick, with its decimals.

A leaf module (no fractald imports) shared by fractalctl's tables, the
Telegram answers, the report and the chart, so a BTC price reads 46412.5
and an ETH price 3021.47 everywhere, never 46412.499999 or 3021.4700000001.
"""

from __future__ import annotations

import math
from decimal import Decimal, InvalidOperation


def tick_decimals(tick: float) -> int:
    """How many decimals a price on `tick` needs (0.01 -> 2, 0.5 -> 1, 1 -> 0, 5e-05 -> 5)."""
    if not (isinstance(tick, (int, float)) and math.isfinite(tick) and tick > 0):
        raise ValueError(f"tick size must be a positive number, got {tick!r}")
    try:
        exponent = Decimal(repr(float(tick))).normalize().as_tuple().exponent
    except InvalidOperation:  # pragma: no cover - repr of a finite float always parses
        return 8
    return max(0, -int(exponent)) if isinstance(exponent, int) else 8


def on_tick(price: float, tick: float) -> float:
    """`price` rounded to the nearest multiple of `tick` (no float dust in the result)."""
    return round(round(price / tick) * tick, tick_decimals(tick))


def price_text(price: float | None, tick: float | None, *, grouping: bool = False) -> str:
    """`price` on its tick as text ("-" for None); without a tick, at most 8 significant decimals."""
    if price is None:
        return "-"
    if not math.isfinite(price):
        return str(price)
    sep = "," if grouping else ""
    if tick is None:
        text = f"{price:{sep}.8f}".rstrip("0").rstrip(".")
        return text or "0"
    return f"{on_tick(price, tick):{sep}.{tick_decimals(tick)}f}"
