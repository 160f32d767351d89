"""Offline fair value gaps (fvg), peer-compatible; re-exported by `offline`."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fractald.core.smc._offline_input import (
    columns,
    frame,
)
from fractald.core.smc._offline_scan import (
    FirstHit,
)

_NAN = np.nan

# --------------------------------------------------------------------------- fair value gaps


def fvg(ohlc: pd.DataFrame, join_consecutive: bool = False) -> pd.DataFrame:
    """Fair value gaps: price ranges a strong candle skipped, left unfilled.

    Candle i is a bullish gap when it closes above its open and the high of candle i-1 is
    below the low of candle i+1: Top = low[i+1], Bottom = high[i-1]. It is bearish when it
    closes below its open and the low of candle i-1 is above the high of candle i+1:
    Top = low[i-1], Bottom = high[i+1]. With join_consecutive, a run of same-direction gaps
    on adjacent candles is merged onto its last candle, with the highest Top and the lowest
    Bottom of the run.

    MitigatedIndex is the first candle from i+2 on that trades back into the gap: for a
    bullish gap a low at or below Top; for a bearish gap a high at or above Bottom (the
    reference's choice: the near edge). 0 when never mitigated, NaN where there is no gap.
    Uses candle i+1 and later: offline only.
    """
    open_, high, low, close = columns(ohlc, "open", "high", "low", "close")
    n = len(close)
    direction = np.full(n, _NAN)
    top = np.full(n, _NAN)
    bottom = np.full(n, _NAN)
    if n >= 3:
        mid = slice(1, n - 1)
        up = (high[:-2] < low[2:]) & (close[mid] > open_[mid])
        down = (low[:-2] > high[2:]) & (close[mid] < open_[mid])
        direction[mid] = np.where(up, 1.0, np.where(down, -1.0, _NAN))
        top[mid] = np.where(up, low[2:], np.where(down, low[:-2], _NAN))
        bottom[mid] = np.where(up, high[:-2], np.where(down, high[2:], _NAN))
    gaps = np.flatnonzero(~np.isnan(direction))
    if join_consecutive and len(gaps):
        gaps = _join_adjacent_gaps(gaps, direction, top, bottom)
    mitigated = np.full(n, _NAN)
    if len(gaps):
        bullish = direction[gaps] == 1
        hits = np.empty(len(gaps), dtype=np.int64)
        bull, bear = gaps[bullish], gaps[~bullish]
        hits[bullish] = FirstHit(low, "<=").first(bull + 2, top[bull])
        hits[~bullish] = FirstHit(high, ">=").first(bear + 2, bottom[bear])
        mitigated[gaps] = np.maximum(hits, 0)
    return frame({"FVG": direction, "Top": top, "Bottom": bottom, "MitigatedIndex": mitigated})


def _join_adjacent_gaps(
    gaps: np.ndarray, direction: np.ndarray, top: np.ndarray, bottom: np.ndarray
) -> np.ndarray:
    """Merge runs of same-direction gaps on adjacent candles onto each run's last candle."""
    new_run = np.ones(len(gaps), dtype=bool)
    new_run[1:] = (np.diff(gaps) != 1) | (direction[gaps[1:]] != direction[gaps[:-1]])
    starts = np.flatnonzero(new_run)
    last = gaps[np.append(starts[1:], len(gaps)) - 1]
    run_direction = direction[gaps[starts]]
    run_top = np.maximum.reduceat(top[gaps], starts)
    run_bottom = np.minimum.reduceat(bottom[gaps], starts)
    direction[gaps] = top[gaps] = bottom[gaps] = _NAN
    direction[last], top[last], bottom[last] = run_direction, run_top, run_bottom
    return last
