"""Offline Smart Money Concepts detectors over a whole OHLC(V) frame, vectorised with NumPy.

Drop-in compatible with smartmoneyconcepts 0.0.27 (MIT): same function names, parameters,
defaults, output columns, dtypes and values, including that library's quirks (each is named
in the docstring where it matters). Outputs are DataFrames indexed 0..n-1 (a RangeIndex,
like the reference), one row per input candle; "index" values in them are row positions.

"Offline" means the whole frame is known: several concepts use candles *after* the row they
are written on (a swing needs candles on both sides, a break is written back on the level
it broke), so these results must not drive a live decision at that row; the causal,
bar-by-bar detectors live next to this module.

Column names are matched case-insensitively ("Close" works). Where the reference stores a
level in float32, so do we, and later comparisons use that rounded level like it does.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from numbers import Real

import numpy as np
import pandas as pd

from fractald.core.smc._offline_fvg import fvg
from fractald.core.smc._offline_input import (
    MissingColumnError,
    SmcInputError,
    block_frame,
    columns,
    swings,
)
from fractald.core.smc._offline_liquidity import _Pools, _write_pools
from fractald.core.smc._offline_structure import _ObSide, _ObState, bos_choch, ob, retracements  # noqa: F401 (tests reach in)
from fractald.core.smc._offline_swings import swing_highs_lows
from fractald.core.smc._offline_time import previous_high_low, sessions

__all__ = [
    "MissingColumnError",
    "SmcInputError",
    "bos_choch",
    "fvg",
    "liquidity",
    "ob",
    "previous_high_low",
    "retracements",
    "sessions",
    "swing_highs_lows",
]

_NAN = np.nan

# Layout: swing_highs_lows in _offline_swings, fvg in _offline_fvg, bos_choch / ob /
# retracements in _offline_structure, previous_high_low / sessions in _offline_time, the
# NumPy pools in _offline_liquidity. liquidity() and its numba switch stay here: tests and
# the bench patch `offline._compiled_pools`, which liquidity() must see.


# --------------------------------------------------------------------------- liquidity


def liquidity(
    ohlc: pd.DataFrame, swing_highs_lows: pd.DataFrame, range_percent: float = 0.01
) -> pd.DataFrame:
    """Liquidity pools: several swing highs (or lows) resting at nearly the same price.

    Stops cluster above equal highs and below equal lows. The band half-width is
    range_percent of the whole frame's range (max high - min low). Swing highs are visited
    in time order; each one not already taken leads a pool and takes every later swing high
    not already taken whose level lies within the band around its own level, up to (not
    including) the candle that sweeps the pool: the first later candle whose high reaches
    the band's top. A pool needs at least two swings. Swing lows mirror this with lows and
    the band's bottom.

    Written on the leading swing: Liquidity (1 at highs, -1 at lows), Level (mean level of
    the pool), End (last swing taken), Swept (sweeping candle, 0 if never swept), all float32
    like the reference. Uses future candles: offline only.

    With numba installed, a compiled kernel does the grouping (_offline_numba: compiled on
    the first call ever, ~3 s, then loaded from its on-disk cache, ~0.5 s per process with
    numba's own import); without it, the vectorised NumPy path below, same results.
    """
    if isinstance(range_percent, bool) or not isinstance(range_percent, Real):
        raise SmcInputError(f"range_percent must be a number, got {range_percent!r}")
    high, low = columns(ohlc, "high", "low")
    n = len(high)
    highlow, level = swings(swing_highs_lows, n)
    out = np.empty((4, n), dtype=np.float32)
    out.fill(_NAN)
    swing = np.flatnonzero(np.isfinite(highlow))  # every swing (then ±1 below)
    kind = highlow[swing]
    highs, lows = swing[kind == 1], swing[kind == -1]
    if len(highs) >= 2 or len(lows) >= 2:
        kernel = _compiled_pools()
        if kernel is None:
            _write_pools(out, _Pools(high, low, highs, lows, level, float(range_percent)))
        else:
            kernel(high, low, highs, lows, level, float(range_percent), out)
    return block_frame(out, "Liquidity", "Level", "End", "Swept")


_compiled_kernels_allowed = True


def allow_compiled_kernels(allowed: bool) -> None:
    """Switch the numba kernels on or off for this process (the results are the same).

    The daemon switches them off: under systemd's MemoryDenyWriteExecute a JIT
    cannot map executable memory, and its SMC charts do not need the speed.
    """
    global _compiled_kernels_allowed
    _compiled_kernels_allowed = allowed
    _compiled_pools.cache_clear()


@functools.cache
def _compiled_pools() -> Callable[..., None] | None:
    """The numba kernel for liquidity(), or None without numba (then the NumPy path runs).

    Imported on first use, not with this module: numba must stay off the daemon's start-up
    path. Both paths give identical results (tests run both against the reference).
    RuntimeError is numba's answer when it finds no writable place for its on-disk cache
    (a read-only install without NUMBA_CACHE_DIR): the NumPy path serves then too.
    """
    if not _compiled_kernels_allowed:
        return None
    try:
        from fractald.core.smc._offline_numba import write_pools
    except (ImportError, RuntimeError):
        return None
    return write_pools
