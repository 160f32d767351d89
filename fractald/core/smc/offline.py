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
from numbers import Integral, Real

import numpy as np
import pandas as pd

from fractald.core.smc._offline_input import (
    MissingColumnError,
    SmcInputError,
    block_frame,
    columns,
    frame,
    swings,
)
from fractald.core.smc._offline_scan import (
    FirstHit,
    first_reaching,
    flat_ranges,
    last_arg_extreme,
    run_starts,
    segmented_cummax,
    sliding_extreme,
)
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
        is_low = ~is_high & (low[first : last + 1] == sliding_extreme(low, 2 * length, np.minimum)[window])
        candidates = np.flatnonzero(is_high | is_low)
        if len(candidates):
            kind = np.where(is_high[candidates], 1.0, -1.0)
            candidates += first
            keep = _extreme_of_each_run(kind, np.where(kind == 1, high[candidates], -low[candidates]))
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


# --------------------------------------------------------------------------- structure


def bos_choch(
    ohlc: pd.DataFrame, swing_highs_lows: pd.DataFrame, close_break: bool = True
) -> pd.DataFrame:
    """Break of structure (BOS) and change of character (CHoCH).

    Reads the swings four at a time (a, b, c, d in time order, alternating). With the shape
    low-high-low-high:
      * bullish BOS when a < c < b < d (higher lows and higher highs: the trend continues);
      * bullish CHoCH when c < a < b < d (a lower low, then a higher high: it turns up).
    With high-low-high-low, the mirror images give bearish BOS (a > c > b > d) and bearish
    CHoCH (c > a > b > d). The event is written on swing b, whose level (float32) is the one
    that must break.

    BrokenIndex is the first candle from b+2 on whose close (or high/low when close_break
    is False) goes beyond the level. An event is kept only if it broke, and only if no later
    event broke at the same candle or earlier (a later, tighter break supersedes it). The
    reference keeps BrokenIndex on superseded events while clearing their BOS, CHOCH and
    Level; so do we. Uses future candles: offline only.
    """
    high, low, close = columns(ohlc, "high", "low", "close")
    n = len(close)
    highlow, level_in = swings(swing_highs_lows, n)
    bos = np.zeros(n)
    choch = np.zeros(n)
    level = np.zeros(n, dtype=np.float32)
    broken = np.zeros(n, dtype=np.int64)
    where = np.flatnonzero(~np.isnan(highlow))
    if len(where) >= 4:
        kind, lvl = highlow[where], level_in[where]
        a, b, c, d = lvl[:-3], lvl[1:-2], lvl[2:-1], lvl[3:]
        up_shape = (kind[:-3] == -1) & (kind[1:-2] == 1) & (kind[2:-1] == -1) & (kind[3:] == 1)
        down_shape = (kind[:-3] == 1) & (kind[1:-2] == -1) & (kind[2:-1] == 1) & (kind[3:] == -1)
        bos_sign = np.where(up_shape & (a < c) & (c < b) & (b < d), 1.0, 0.0)
        bos_sign[down_shape & (a > c) & (c > b) & (b > d)] = -1.0
        choch_sign = np.where(up_shape & (d > b) & (b > a) & (a > c), 1.0, 0.0)
        choch_sign[down_shape & (d < b) & (b < a) & (a < c)] = -1.0
        at = where[1:-2]
        bos[at], choch[at] = bos_sign, choch_sign
        level[at] = np.where((bos_sign != 0) | (choch_sign != 0), b, 0.0)
        events = np.flatnonzero((bos != 0) | (choch != 0))
        broken[events] = _first_break(events, bos + choch, level, high, low, close, close_break)
        _drop_superseded(events, broken, bos, choch, level)
    return frame({
        "BOS": np.where(bos != 0, bos, _NAN),
        "CHOCH": np.where(choch != 0, choch, _NAN),
        "Level": np.where(level != 0, level, np.float32(_NAN)),
        "BrokenIndex": np.where(broken != 0, broken, _NAN),
    })


def _first_break(
    events: np.ndarray,
    sign: np.ndarray,
    level: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    close_break: bool,
) -> np.ndarray:
    """Candle that first closes (or trades) beyond each event's level from event+2 on; 0 if none."""
    out = np.zeros(len(events), dtype=np.int64)
    threshold = level[events].astype(np.float64)
    for direction, values, op in ((1, close if close_break else high, ">"),
                                  (-1, close if close_break else low, "<")):
        mine = sign[events] == direction
        if mine.any():
            out[mine] = FirstHit(values, op).first(events[mine] + 2, threshold[mine])
    return np.maximum(out, 0)


def _drop_superseded(
    events: np.ndarray, broken: np.ndarray, bos: np.ndarray, choch: np.ndarray, level: np.ndarray
) -> None:
    """Clear events that never broke, or that a later event broke at the same candle or before."""
    at = broken[events]
    later_best = np.where(at > 0, at, np.iinfo(np.int64).max)
    # minimum break candle among strictly later events
    suffix = np.minimum.accumulate(later_best[::-1])[::-1]
    later = np.append(suffix[1:], np.iinfo(np.int64).max)
    dead = events[(at == 0) | (later <= at)]
    bos[dead] = choch[dead] = 0
    level[dead] = 0


# --------------------------------------------------------------------------- order blocks


def ob(
    ohlc: pd.DataFrame, swing_highs_lows: pd.DataFrame, close_mitigation: bool = False
) -> pd.DataFrame:
    """Order blocks: the last opposing candle before price broke a swing.

    Bullish: when a candle closes above the high of the latest swing high before it (each
    swing is used once, and only while it is the latest), the block is the candle with the
    lowest low strictly between the swing and the breaking candle (the last one on a tie):
    Top = its high, Bottom = its low. If the break comes on the very next candle, the block
    is the swing candle itself and, as in the reference, Top and Bottom are swapped (Top =
    its low, Bottom = its high). Bearish is the mirror: a close below the latest swing low,
    the candle with the highest high in between, Top = high and Bottom = low (no swap).

    OBVolume is the volume of the breaking candle and the two before it; Percentage is
    min/max of (the breaking candle + the one before) against (the one two before), x100,
    in float32 like the reference.

    From the candle after the break on, a bullish block is mitigated by the first candle
    whose low (or, with close_mitigation, the lower of open and close) goes below Bottom;
    MitigatedIndex is the candle BEFORE that one (reference quirk). A bearish block is mitigated when the high (or
    the higher of open and close) goes above Top; MitigatedIndex is that candle. After
    mitigation a block becomes a breaker and is deleted once price trades through its other
    side (above Top for bullish, below Bottom for bearish). Bullish and bearish blocks share
    their per-candle state in the reference; when both land on one candle, the bearish one
    inherits the bullish breaker state, which is reproduced here. Offline only.
    """
    open_, high, low, close, volume = columns(ohlc, "open", "high", "low", "close", "volume")
    n = len(close)
    highlow, _ = swings(swing_highs_lows, n)
    state = _ObState(n)
    bull = _ObSide(1, highlow, open_, high, low, close, volume, close_mitigation)
    bull.settle(state)
    bear = _ObSide(-1, highlow, open_, high, low, close, volume, close_mitigation)
    bear.settle(state)
    alive = state.kind != 0
    mask32 = np.float32(_NAN)
    return frame({
        "OB": np.where(alive, state.kind, _NAN),
        "Top": np.where(alive, state.top, mask32),
        "Bottom": np.where(alive, state.bottom, mask32),
        "OBVolume": np.where(alive, state.volume, mask32),
        "MitigatedIndex": np.where(alive, state.mitigated, _NAN),
        "Percentage": np.where(alive, state.percentage, mask32),
    })


class _ObState:
    """Per-candle order-block columns, shared by the bullish and bearish passes."""

    def __init__(self, n: int) -> None:
        self.kind = np.zeros(n)
        self.top = np.zeros(n, dtype=np.float32)
        self.bottom = np.zeros(n, dtype=np.float32)
        self.volume = np.zeros(n, dtype=np.float32)
        self.percentage = np.zeros(n, dtype=np.float32)
        self.mitigated = np.zeros(n, dtype=np.int64)
        self.breaker = np.zeros(n, dtype=bool)


class _ObSide:
    """The order blocks of one direction: where they form and what they look like."""

    def __init__(
        self,
        sign: int,
        highlow: np.ndarray,
        open_: np.ndarray,
        high: np.ndarray,
        low: np.ndarray,
        close: np.ndarray,
        volume: np.ndarray,
        close_mitigation: bool,
    ) -> None:
        n = len(close)
        self.sign, self.n = sign, n
        self.high, self.low = high, low
        bullish = sign == 1
        swing = np.flatnonzero(highlow == sign)
        # a swing can be broken only while it is the latest one: up to the next swing candle
        limit = np.append(swing[1:], n - 1)
        level = high[swing] if bullish else low[swing]
        breaks = FirstHit(close, ">" if bullish else "<").first(swing + 1, level)
        ok = (breaks >= 0) & (breaks <= limit)
        swing, breaks = swing[ok], breaks[ok]
        inside = breaks - swing > 1
        block = breaks - 1
        block[inside] = last_arg_extreme(
            low if bullish else high, swing[inside] + 1, breaks[inside], lowest=bullish
        )
        self.block, self.breaks = block, breaks
        top, bottom = high[block], low[block]
        if bullish:  # reference quirk: the next-candle break swaps the swing candle's edges
            top, bottom = np.where(inside, top, low[block]), np.where(inside, bottom, high[block])
        self.top, self.bottom = top.astype(np.float32), bottom.astype(np.float32)
        current, prev1 = volume[breaks], volume[breaks - 1]
        prev2 = np.where(breaks >= 2, volume[np.maximum(breaks - 2, 0)], 0.0)
        self.volume = (current + prev1 + prev2).astype(np.float32)
        near, far = (current + prev1).astype(np.float32), prev2.astype(np.float32)
        big, small = np.maximum(near, far), np.minimum(near, far)
        with np.errstate(divide="ignore", invalid="ignore"):
            self.percentage = np.where(big != 0, small / big * np.float32(100.0), np.float32(100.0))
        if close_mitigation:
            body = np.minimum(open_, close) if bullish else np.maximum(open_, close)
        else:
            body = low if bullish else high
        self.mitigation = FirstHit(body, "<" if bullish else ">")

    def settle(self, state: _ObState) -> None:
        """Follow every block of this side to its end and write the survivors into `state`."""
        block = self.block
        bullish = self.sign == 1
        top64, bottom64 = self.top.astype(np.float64), self.bottom.astype(np.float64)
        inherited = state.breaker[block]  # only possible for bearish blocks
        mitigated_at = self.mitigation.first(self.breaks + 1, bottom64 if bullish else top64)
        mitigated_at[inherited] = -1
        fresh = mitigated_at >= 0
        # a breaker is deleted when price trades through its far side
        reset_from = np.where(inherited, self.breaks + 1, np.where(fresh, mitigated_at + 1, -1))
        far_side = FirstHit(self.high, ">") if bullish else FirstHit(self.low, "<")
        reset = far_side.first(reset_from, top64 if bullish else bottom64) >= 0
        mitigated = state.mitigated[block].copy()
        mitigated[fresh] = mitigated_at[fresh] - (1 if bullish else 0)
        state.breaker[block] |= fresh
        state.kind[block] = self.sign
        state.top[block], state.bottom[block] = self.top, self.bottom
        state.volume[block], state.percentage[block] = self.volume, self.percentage
        state.mitigated[block] = mitigated
        gone = block[reset]
        state.kind[gone] = 0
        state.top[gone] = state.bottom[gone] = state.volume[gone] = state.percentage[gone] = 0
        state.mitigated[gone] = 0


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


# Candles per piece of a stretch (see _Pools): a sweeping candle is found by scanning the
# maxima of at most (stretch length / _PIECE) pieces, then the _PIECE candles of one piece.
_PIECE = 64


class _Pools:
    """Swing highs and lows as one problem: lows are mirrored (prices negated) so that
    "a low reaches the band's bottom" reads like "a high reaches the band's top".

    Ranks index the swings, highs first, then lows; `side_end[r]` is one past the last
    rank of r's side. The stretch of swing r runs from the candle after it to the next
    swing of its side (inclusive; to the end for the last one), so a pool's sweeping
    candle lies in the first stretch whose furthest mirrored price reaches the band.
    Stretches are cut into pieces of at most _PIECE candles: `piece_start`, `piece_far`
    (furthest mirrored price of each piece), `first_piece[r]` and `pieces[r]` (how many);
    `stretch_far[r]` is the furthest price of the whole stretch (NaN when it is empty).
    """

    def __init__(self, high: np.ndarray, low: np.ndarray, highs: np.ndarray, lows: np.ndarray,
                 level: np.ndarray, range_percent: float) -> None:
        n, split = len(high), len(highs)
        self.swing = np.concatenate((highs, lows))
        count = len(self.swing)
        self.bullish = np.arange(count) < split
        self.side_end = np.where(self.bullish, split, count)
        start = self.swing + 1
        stop = np.empty_like(start)
        stop[:-1] = start[1:]
        stop[self.side_end - 1] = n
        self.pieces = -(-(stop - start) // _PIECE)
        self.first_piece = np.cumsum(self.pieces) - self.pieces
        total = int(self.pieces.sum())
        step = np.arange(total) - np.repeat(self.first_piece, self.pieces)
        self.piece_start = np.repeat(start, self.pieces) + _PIECE * step
        # The pieces of one side are contiguous and run to the last candle: one pass over
        # the highs and one over the lows, each also covering the candles before the first
        # piece, give the pieces' extremes and the frame's (NaN-ignoring, like pandas).
        cut = int(self.pieces[:split].sum())
        self.piece_far = np.empty(total)
        top = _head_and_pieces(high, self.piece_start[:cut], np.fmax, self.piece_far[:cut])
        bottom = _head_and_pieces(low, self.piece_start[cut:], np.fmin, self.piece_far[cut:])
        self.piece_far[cut:] *= -1
        self.stretch_far = np.full(count, np.nan)
        filled = self.pieces > 0
        if total:
            self.stretch_far[filled] = np.fmax.reduceat(self.piece_far, self.first_piece[filled])
        band = (top - bottom) * range_percent  # the reference's band half-width
        self.level = level[self.swing]
        self.lower, self.upper = self.level - band, self.level + band
        # the band edge that sweeps the pool, mirrored: high >= upper, or -low >= -lower
        self.edge = np.where(self.bullish, self.upper, -self.lower)
        self.high, self.low = high, low


def _head_and_pieces(values: np.ndarray, starts: np.ndarray, reduce: np.ufunc, out: np.ndarray) -> float:
    """Write reduce(values[starts[i] : starts[i + 1]]) (the last piece to the end) into `out`
    and return reduce over all of `values`, in one pass."""
    if len(starts) == 0:
        return reduce.reduce(values)
    if starts[0] == 0:
        out[:] = reduce.reduceat(values, starts)
        return reduce.reduce(out)
    with_head = reduce.reduceat(values, np.concatenate(([0], starts)))
    out[:] = with_head[1:]
    return reduce.reduce(with_head)


def _write_pools(out: np.ndarray, pools: _Pools) -> None:
    """Group swings into pools (see liquidity()) and write them into `out` (4 rows)."""
    count = len(pools.swing)
    rank = np.arange(count)
    sweep_stretch = first_reaching(pools.stretch_far, pools.edge)
    swept = (sweep_stretch >= 0) & (sweep_stretch < pools.side_end)
    # later swings of the same side that come before the sweeping candle
    last = np.where(swept, sweep_stretch + 1, pools.side_end)
    members, _ = flat_ranges(rank + 1, last)
    leads = np.repeat(rank, last - rank - 1)
    own = pools.level[members]
    near = (pools.lower[leads] <= own) & (own <= pools.upper[leads])
    lead, member = leads[near], members[near]
    free = _resolve_free(count, lead, member)
    # each taken swing belongs to its earliest free claimant; pairs run by lead, then member
    by_free = free[lead]
    lead, member = lead[by_free], member[by_free]
    if len(lead) == 0:
        return
    earliest = np.full(count, count)
    np.minimum.at(earliest, member, lead)
    keep = lead == earliest[member]
    lead, member = lead[keep], member[keep]
    new_pool = run_starts(lead)
    first = np.flatnonzero(new_pool)
    leaders = lead[first]
    size = np.diff(np.append(first, len(lead)))
    rows = pools.swing[leaders]
    out[0, rows] = np.where(pools.bullish[leaders], 1.0, -1.0)
    out[1, rows] = _pool_sums(pools.level, leaders, member, first, new_pool) / (size + 1)
    out[2, rows] = pools.swing[member[first + size - 1]]
    out[3, rows] = _sweeping_candles(pools, leaders, sweep_stretch[leaders], swept[leaders])


def _pool_sums(level: np.ndarray, leaders: np.ndarray, member: np.ndarray, first: np.ndarray,
               new_pool: np.ndarray) -> np.ndarray:
    """Summed level of each pool, added as the reference adds: leader first, then members in
    time order, left to right (np.add.accumulate is strictly sequential, and the zeros
    padding short pools leave their sums unchanged)."""
    pool = np.cumsum(new_pool) - 1
    slot = np.arange(len(member)) - first[pool] + 1
    table = np.zeros((int(slot.max()) + 1, len(leaders)))
    table[0] = level[leaders]
    table[slot, pool] = level[member]
    return np.add.accumulate(table, axis=0)[-1]


def _sweeping_candles(pools: _Pools, leaders: np.ndarray, stretch: np.ndarray, swept: np.ndarray) -> np.ndarray:
    """The candle that sweeps each pool (0 if none): the first piece of its sweeping stretch
    whose furthest price reaches the band, then the first candle of that piece that does.

    Queries run along the inner (contiguous) axis of the small 2-D arrays, so NumPy loops
    over pieces and candles, not over pools.
    """
    out = np.zeros(len(leaders))
    if not swept.any():
        return out
    leaders, stretch = leaders[swept], stretch[swept]
    edge = pools.edge[leaders]
    first, pieces = pools.first_piece[stretch], pools.pieces[stretch]
    step = np.arange(int(pieces.max()))[:, None]
    at = np.minimum(first + step, len(pools.piece_far) - 1)
    reaches = (pools.piece_far[at] >= edge) & (step < pieces)
    piece = first + reaches.argmax(axis=0)
    n = len(pools.high)
    found = np.empty(len(piece), dtype=np.int64)
    bullish = pools.bullish[leaders]
    for side, values, reaches, edge in ((bullish, pools.high, np.greater_equal, pools.upper),
                                        (~bullish, pools.low, np.less_equal, pools.lower)):
        start = pools.piece_start[piece[side]]
        candle = np.minimum(start + np.arange(_PIECE)[:, None], n - 1)
        hit = reaches(values[candle], edge[leaders[side]])
        found[side] = start + hit.argmax(axis=0)
    out[swept] = found
    return out


def _resolve_free(count: int, lead: np.ndarray, member: np.ndarray) -> np.ndarray:
    """Which swings lead a pool: those not taken by an earlier free swing that claims them.

    free[j] = no claimant of j is free. Claimants come before j, so resolving the earliest
    undecided swing each round always progresses; rounds repeat only along chains of
    claims, which are short in practice.
    """
    claimed = np.zeros(count, dtype=bool)
    claimed[member] = True
    state = np.where(claimed, 0, 1).astype(np.int8)  # 0 undecided, 1 free, 2 taken
    while True:
        of_lead = state[lead]
        state[member[of_lead == 1]] = 2  # a free claimant takes it
        undecided = state == 0
        if not undecided.any():
            return state == 1
        # free once no claimant is undecided any more (all taken); a claimant taken in
        # this very round still counts as undecided, which only delays by one round
        waiting = np.bincount(member[of_lead == 0], minlength=count)
        state[undecided & (waiting == 0)] = 1


# --------------------------------------------------------------------------- retracements


def retracements(ohlc: pd.DataFrame, swing_highs_lows: pd.DataFrame) -> pd.DataFrame:
    """How far price has pulled back from the latest swing, in percent of the swing's leg.

    Direction is 1 after a swing high and -1 after a swing low (carried forward). Top and
    Bottom are the latest swing high and low levels. In an up leg (the previous candle's
    direction is 1) the retracement is 100 - (low - Bottom) / (Top - Bottom) * 100; in a down
    leg (this candle's direction is -1: the reference mixes the two) it is
    100 - (high - Top) / (Bottom - Top) * 100, rounded to one decimal (0 when the leg has no
    height). DeepestRetracement% is the running maximum within the leg, never below 0.

    As in the reference, all three columns are then shifted one candle later, and every row
    up to and including the third change of direction is zeroed (too little history).
    """
    high, low = columns(ohlc, "high", "low")
    n = len(high)
    highlow, level = swings(swing_highs_lows, n)
    if n:
        direction, current, deepest = _retrace(high, low, highlow, level)
        direction, current, deepest = (np.roll(a, 1) for a in (direction, current, deepest))
        _zero_warm_up(direction, current, deepest)
    else:
        direction, current, deepest = np.zeros(0, dtype=np.int32), np.zeros(0), np.zeros(0)
    return frame({"Direction": direction, "CurrentRetracement%": current,
                  "DeepestRetracement%": deepest})


def _retrace(
    high: np.ndarray, low: np.ndarray, highlow: np.ndarray, level: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Direction, current and deepest retracement per candle, before the final shift."""
    n = len(high)
    is_swing = (highlow == 1) | (highlow == -1)
    direction: np.ndarray = _carry_forward(np.where(is_swing, highlow, 0.0), is_swing).astype(np.int32)
    top = _carry_forward(np.where(highlow == 1, level, 0.0), highlow == 1)
    bottom = _carry_forward(np.where(highlow == -1, level, 0.0), highlow == -1)
    previous = np.empty(n, dtype=np.int32)
    previous[1:] = direction[:-1]
    previous[0] = direction[0] if n == 1 else 0  # the reference reads direction[-1] here
    down = direction == -1
    up = ~down & (previous == 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        leg = top - bottom
        up_value = np.where(leg != 0, 100 - ((low - bottom) / leg) * 100, 0.0)
        down_value = np.where(-leg != 0, 100 - ((high - top) / (bottom - top)) * 100, 0.0)
    # np.round is what the reference's round(np.float64, 1) calls
    current: np.ndarray = np.round(np.where(down, down_value, np.where(up, up_value, 0.0)), 1)
    deepest = np.maximum(segmented_cummax(current, run_starts(direction)), 0.0)
    deepest[~(up | down)] = 0.0
    return direction, current, deepest


def _carry_forward(values: np.ndarray, present: np.ndarray) -> np.ndarray:
    """values where present, else the latest present value before (values[0] if none yet)."""
    latest = np.maximum.accumulate(np.where(present, np.arange(len(values)), 0))
    return values[latest]


def _zero_warm_up(direction: np.ndarray, current: np.ndarray, deepest: np.ndarray) -> None:
    """Zero every row up to and including the one after the third change of direction."""
    n = len(direction)
    changes = np.flatnonzero(direction[:-1] != direction[1:])
    stop = changes[2] + 2 if len(changes) >= 3 else n - 1
    direction[:stop] = 0
    current[:stop] = 0
    deepest[:stop] = 0
