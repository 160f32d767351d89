"""Offline swings (swing_highs_lows), peer-compatible; re-exported by `offline`."""

from __future__ import annotations

from numbers import Integral

import numpy as np
import pandas as pd

from fractald.core.smc._offline_input import (
    SmcInputError,
    columns,
    frame,
)
from fractald.core.smc._offline_scan import (
    run_starts,
    sliding_extreme,
)

_NAN = np.nan

# --------------------------------------------------------------------------- swings


def swing_highs_lows(ohlc: pd.DataFrame, swing_length: int = 50) -> pd.DataFrame:
    """Swing highs and lows: the turning points of price.

    A candle is a swing-high candidate when its high equals the highest high of the
    2*swing_length candles from swing_length - 1 before it to swing_length after it (the
    reference's window is one candle shorter on the left); otherwise a swing-low candidate
    when its low equals the lowest low of that window. Candidates exist only from candle
    2*swing_length - 1 to candle n - 1 - swing_length. Consecutive candidates of one kind
    are thinned to one so that highs and lows alternate: the highest of a run of highs, the
    lowest of a run of lows (the earliest on a tie). Finally the first and last candles are
    marked with the kind opposite to the first and last surviving swing, closing the
    structure at both ends.

    Returns HighLow (1 swing high, -1 swing low, else NaN) and Level (that high or low).
    Uses candles after each swing: offline only.
    """
    if isinstance(swing_length, bool) or not isinstance(swing_length, Integral) or swing_length < 1:
        raise SmcInputError(f"swing_length must be an integer >= 1, got {swing_length!r}")
    high, low = columns(ohlc, "high", "low")
    n, length = len(high), int(swing_length)
    highlow = np.full(n, _NAN)
    first, last = 2 * length - 1, n - 1 - length
    if last >= first:
        # the window of candle i starts at i - length + 1
        window = slice(first - length + 1, last - length + 2)
        is_high = high[first : last + 1] == sliding_extreme(high, 2 * length, np.maximum)[window]
        is_low = ~is_high & (
            low[first : last + 1] == sliding_extreme(low, 2 * length, np.minimum)[window]
        )
        candidates = np.flatnonzero(is_high | is_low)
        if len(candidates):
            kind = np.where(is_high[candidates], 1.0, -1.0)
            candidates += first
            keep = _extreme_of_each_run(
                kind, np.where(kind == 1, high[candidates], -low[candidates])
            )
            highlow[candidates[keep]] = kind[keep]
            _close_both_ends(highlow)
    level = np.where(np.isnan(highlow), _NAN, np.where(highlow == 1, high, low))
    return frame({"HighLow": highlow, "Level": level})


def _extreme_of_each_run(kind: np.ndarray, strength: np.ndarray) -> np.ndarray:
    """Mask keeping, in each run of equal kinds, the earliest element of greatest strength.

    This is the fixed point of the reference's repeated pairwise thinning: the earliest
    maximum of a run is never removed, and thinning stops only when no two neighbours share
    a kind, so exactly that element survives.
    """
    starts = np.flatnonzero(run_starts(kind))
    run = np.cumsum(run_starts(kind)) - 1
    best = np.maximum.reduceat(strength, starts)
    position = np.arange(len(kind))
    first_best = np.minimum.reduceat(np.where(strength == best[run], position, len(kind)), starts)
    keep = np.zeros(len(kind), dtype=bool)
    keep[first_best] = True
    return keep


def _close_both_ends(highlow: np.ndarray) -> None:
    """Mark the first and last candles, exactly as the reference does (its order matters)."""
    positions = np.flatnonzero(~np.isnan(highlow))
    head, tail = positions[0], positions[-1]
    if highlow[head] == 1:
        highlow[0] = -1
    if highlow[head] == -1:
        highlow[0] = 1
    if highlow[tail] == -1:
        highlow[-1] = 1
    if highlow[tail] == 1:
        highlow[-1] = -1
