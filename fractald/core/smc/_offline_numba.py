"""Compiled (numba) kernel for liquidity(): the pools of one frame in a single pass.

Imported lazily by liquidity() only, never at module import, so numba is not loaded on the
daemon's start-up path; without numba (ImportError) liquidity() uses its NumPy path, which
gives the same result. The kernel follows the definition in liquidity()'s docstring
literally (visit the swings of a side in time order, each free one leads and takes the
later free swings in its band until the sweeping candle), which is what makes it exact
by construction: the same comparisons and the same left-to-right float64 sum.

The only addition is an index for the sweeping-candle search. A scan from each swing to
its sweeping candle can cross the whole frame (the highest high is never swept), so the
candles are cut into blocks of _BLOCK with their extreme first; a search skips every
block whose extreme does not reach the band. NaN candles never reach (comparisons with
NaN are false), exactly as in the reference's `high >= top`.

cache=True keeps the compiled code in __pycache__ beside this file: the first call ever
compiles (about a second or two), later processes load it (tens of milliseconds).
"""

from __future__ import annotations

import numba
import numpy as np

_BLOCK = 64


_LANES = 8  # independent running extremes per block, so that the loop vectorises


@numba.njit(cache=True, nogil=True)
def _block_extremes(values: np.ndarray, highest: bool) -> np.ndarray:  # pragma: no cover - compiled
    """Per block of _BLOCK candles: the largest (or smallest) non-NaN value, else -inf (+inf).

    A NaN never wins a comparison, so it is ignored. _LANES running extremes, merged at
    the end of each block, let the compiler use SIMD (one scalar chain is ~3x slower).
    """
    n = len(values)
    whole = n // _BLOCK
    out = np.empty((n + _BLOCK - 1) // _BLOCK)
    lane = np.empty(_LANES)
    worst = -np.inf if highest else np.inf
    for b in range(whole):
        for k in range(_LANES):
            lane[k] = worst
        if highest:  # two copies of the loop: a branch inside it stops the SIMD
            for j in range(b * _BLOCK, (b + 1) * _BLOCK, _LANES):
                for k in range(_LANES):
                    v = values[j + k]
                    lane[k] = v if v > lane[k] else lane[k]  # noqa: FURB136 - a NaN must lose
        else:
            for j in range(b * _BLOCK, (b + 1) * _BLOCK, _LANES):
                for k in range(_LANES):
                    v = values[j + k]
                    lane[k] = v if v < lane[k] else lane[k]  # noqa: FURB136 - a NaN must lose
        best = worst
        for k in range(_LANES):
            if (lane[k] > best) if highest else (lane[k] < best):
                best = lane[k]
        out[b] = best
    if whole < len(out):
        best = worst
        for j in range(whole * _BLOCK, n):
            v = values[j]
            if (v > best) if highest else (v < best):
                best = v
        out[whole] = best
    return out


@numba.njit(cache=True, nogil=True)
def _frame_extreme(
    values: np.ndarray, blocks: np.ndarray, highest: bool
) -> float:  # pragma: no cover - compiled
    """The frame's largest (smallest) value ignoring NaN, NaN if all are, like pandas."""
    best = blocks.max() if highest else blocks.min()
    if best == (-np.inf if highest else np.inf):  # no value, or only infinities: look
        for v in values:
            if not np.isnan(v):
                return best
        return np.nan
    return best


@numba.njit(cache=True, nogil=True)
def _first_reaching(
    values: np.ndarray, extremes: np.ndarray, start: int, edge: float, highest: bool
) -> int:  # pragma: no cover - compiled
    """First j >= start with values[j] >= edge (highest) or <= edge (not), else 0."""
    n = len(values)
    j = start
    while j < n:
        if j % _BLOCK == 0:
            # at a block boundary: skip whole blocks that cannot hold a hit
            b = j // _BLOCK
            if highest:
                while b < len(extremes) and not extremes[b] >= edge:
                    b += 1
            else:
                while b < len(extremes) and not extremes[b] <= edge:
                    b += 1
            j = b * _BLOCK
            if j >= n:
                return 0
        v = values[j]
        if (v >= edge) if highest else (v <= edge):
            return j
        j += 1
    return 0


@numba.njit(cache=True, nogil=True)
def _side(
    values: np.ndarray,
    extremes: np.ndarray,
    swing: np.ndarray,
    level: np.ndarray,
    band: float,
    sign: float,
    out: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """Pools of one side (sign 1: swing highs against `high`; -1: lows against `low`)."""
    highest = sign > 0
    count = len(swing)
    taken = np.zeros(count, dtype=np.bool_)
    for k in range(count):
        if taken[k]:
            continue
        i = swing[k]
        own = level[i]
        lower, upper = own - band, own + band
        swept = _first_reaching(values, extremes, i + 1, upper if highest else lower, highest)
        total = 0.0
        total += own  # Python's sum() starts from 0, then adds left to right
        size = 1
        end = i
        for m in range(k + 1, count):
            j = swing[m]
            if swept != 0 and j >= swept:
                break
            if not taken[m] and lower <= level[j] and level[j] <= upper:
                total += level[j]
                size += 1
                end = j
                taken[m] = True
        if size > 1:
            out[0, i] = sign
            out[1, i] = total / size
            out[2, i] = end
            out[3, i] = swept


@numba.njit(cache=True, nogil=True)
def write_pools(
    high: np.ndarray,
    low: np.ndarray,
    highs: np.ndarray,
    lows: np.ndarray,
    level: np.ndarray,
    range_percent: float,
    out: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """Write the pools of swing highs (`highs`, their candle positions, in time order) and
    swing lows into `out` (4 x n float32, NaN-filled: Liquidity, Level, End, Swept)."""
    tops, bottoms = _block_extremes(high, True), _block_extremes(low, False)
    # the reference's band half-width: range_percent of the frame's range
    band = (_frame_extreme(high, tops, True) - _frame_extreme(low, bottoms, False)) * range_percent
    if len(highs) >= 2:
        _side(high, tops, highs, level, band, 1.0, out)
    if len(lows) >= 2:
        _side(low, bottoms, lows, level, band, -1.0, out)
