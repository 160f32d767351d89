"""Offline structure: bos_choch, ob and retracements, peer-compatible; re-exported by `offline`."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fractald.core.smc._offline_input import (
    columns,
    frame,
    swings,
)
from fractald.core.smc._offline_scan import (
    FirstHit,
    last_arg_extreme,
    run_starts,
    segmented_cummax,
)

_NAN = np.nan

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
    return frame(
        {
            "BOS": np.where(bos != 0, bos, _NAN),
            "CHOCH": np.where(choch != 0, choch, _NAN),
            "Level": np.where(level != 0, level, np.float32(_NAN)),
            "BrokenIndex": np.where(broken != 0, broken, _NAN),
        }
    )


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
    for direction, values, op in (
        (1, close if close_break else high, ">"),
        (-1, close if close_break else low, "<"),
    ):
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
    return frame(
        {
            "OB": np.where(alive, state.kind, _NAN),
            "Top": np.where(alive, state.top, mask32),
            "Bottom": np.where(alive, state.bottom, mask32),
            "OBVolume": np.where(alive, state.volume, mask32),
            "MitigatedIndex": np.where(alive, state.mitigated, _NAN),
            "Percentage": np.where(alive, state.percentage, mask32),
        }
    )


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
    return frame(
        {"Direction": direction, "CurrentRetracement%": current, "DeepestRetracement%": deepest}
    )


def _retrace(
    high: np.ndarray, low: np.ndarray, highlow: np.ndarray, level: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Direction, current and deepest retracement per candle, before the final shift."""
    n = len(high)
    is_swing = (highlow == 1) | (highlow == -1)
    direction: np.ndarray = _carry_forward(np.where(is_swing, highlow, 0.0), is_swing).astype(
        np.int32
    )
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
