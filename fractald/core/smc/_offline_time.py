"""Calendar-based offline SMC detectors: previous period high/low and trading sessions."""

from __future__ import annotations

import functools
from datetime import datetime

import numpy as np
import pandas as pd
from pandas.tseries.frequencies import to_offset

from fractald.core.smc._offline_input import SmcInputError, columns, frame
from fractald.core.smc._offline_scan import run_starts, segmented_cummax, segmented_cummin

_DAY_NS = 86_400 * 10**9


def previous_high_low(ohlc: pd.DataFrame, time_frame: str = "1D") -> pd.DataFrame:
    """The previous period's high and low, and whether price has traded beyond them.

    Candles are grouped into periods of `time_frame` (any pandas frequency: "15min", "1h",
    "4h", "1D", "1W", "1ME"...), binned as pandas resample bins them; periods without
    candles do not count. For a candle, PreviousHigh/PreviousLow are the high and low of the
    period before its own (float32, NaN until two periods have started). As in the
    reference, a candle stamped exactly at the start of its period is treated as still
    belonging to the period before, so it looks one period further back.

    BrokenHigh is 1 once a candle of the same reference period has traded above
    PreviousHigh (cumulatively, resetting when the reference period changes), else 0;
    BrokenLow likewise below PreviousLow. As in the reference, a candle with a missing
    (NaN) high or low is never "broken" on that side, and periods whose open, high, low
    or close are all missing do not count.
    """
    open_, high, low, close = columns(ohlc, "open", "high", "low", "close")
    n = len(high)
    index = ohlc.index if isinstance(ohlc.index, pd.DatetimeIndex) else pd.to_datetime(ohlc.index)
    periods = _fixed_periods(index, time_frame, open_, high, low, close)
    fast = periods is not None  # the fast path takes no NaN prices
    if periods is None:
        periods = _resampled_periods(index, time_frame, open_, high, low, close)
    starts, refs, period_high, period_low = periods
    if len(period_high) < 2:
        nan32 = np.full(n, np.nan, dtype=np.float32)
        zero = np.zeros(n, dtype=np.int32)
        return frame(
            {
                "PreviousHigh": nan32,
                "PreviousLow": nan32.copy(),
                "BrokenHigh": zero,
                "BrokenLow": zero.copy(),
            }
        )
    # candles starts[g] .. ends[g]-1 all look back at period refs[g] (none when refs[g] < 0)
    ends = np.empty_like(starts)
    ends[:-1], ends[-1] = starts[1:], n
    lengths = ends - starts
    pick = np.maximum(refs, 0)
    group_high, group_low = (
        period_high[pick].astype(np.float32),
        period_low[pick].astype(np.float32),
    )
    group_high[refs < 0] = group_low[refs < 0] = np.nan
    previous_high, previous_low = np.repeat(group_high, lengths), np.repeat(group_low, lengths)
    # like the reference: float64 prices against the float32 levels (widened by NumPy)
    broken_high = _from_first_hit(np.greater(high, previous_high), starts, ends)
    broken_low = _from_first_hit(np.less(low, previous_low), starts, ends)
    if not fast:  # the reference's running extreme is NaN on a NaN price: not broken there
        broken_high[np.isnan(high)] = 0
        broken_low[np.isnan(low)] = 0
    return frame(
        {
            "PreviousHigh": previous_high,
            "PreviousLow": previous_low,
            "BrokenHigh": broken_high,
            "BrokenLow": broken_low,
        }
    )


def _from_first_hit(hit: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """int32 flags: 1 from the first hit of each group [starts, ends) to the group's end."""
    # A group's first hit is its first candle or a candle that starts a run of hits, and
    # run starts are far fewer than hits, so only those are listed.
    rising = np.empty_like(hit)
    rising[0] = hit[0]
    np.greater(hit[1:], hit[:-1], out=rising[1:])
    opening = starts[starts < len(hit)]  # a group may be empty, at the very end
    rising[opening] = hit[opening]
    positions = np.flatnonzero(rising)
    first = ends.copy()
    if len(positions):
        k = np.searchsorted(positions, starts)
        candidate = positions[np.minimum(k, len(positions) - 1)]
        inside = (k < len(positions)) & (candidate < ends)
        first[inside] = candidate[inside]
    # runs of 0 (start .. first hit) and 1 (first hit .. end), alternating
    lengths = np.empty(2 * len(starts), dtype=np.int64)
    lengths[0::2] = first - starts
    lengths[1::2] = ends - first
    flags = np.zeros(len(lengths), dtype=np.int32)
    flags[1::2] = 1
    return np.repeat(flags, lengths)


@functools.lru_cache(maxsize=64)
def _period_ticks(time_frame: str, unit: str) -> int | None:
    """Length of a `time_frame` period in index ticks when it is fixed and divides a day
    into whole ticks (pandas then anchors periods at midnight); None for calendar periods
    (weeks, months) and anything else the fast path does not handle."""
    offset = to_offset(time_frame)
    if not (isinstance(offset, pd.offsets.Tick) or type(offset) is pd.offsets.Day):
        return None
    unit_ns = pd.Timedelta(1, unit=unit).value
    step_ns = pd.Timedelta(offset).value
    if step_ns <= 0 or step_ns % unit_ns or _DAY_NS % unit_ns:
        return None
    return step_ns // unit_ns


def _fixed_periods(
    index: pd.DatetimeIndex, time_frame: str, *prices: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """Fast path for fixed-length periods on a sorted UTC (or naive) index without NaN.

    pandas anchors such periods at midnight of the first candle's day and labels them by
    their start; the candle boundaries of each period are found by binary search of the
    period edges (far fewer than candles), so no per-candle arithmetic is needed. Returns
    None when the fast path does not apply.
    """
    if len(index) == 0 or not (index.tz is None or str(index.tz) == "UTC"):
        return None
    step = _period_ticks(time_frame, index.unit)
    if step is None or not index.is_monotonic_increasing:
        return None
    open_, high, low, close = prices
    day = _DAY_NS // pd.Timedelta(1, unit=index.unit).value
    ticks = index.asi8
    origin = (ticks[0] // day) * day
    first, last = (ticks[0] - origin) // step, (ticks[-1] - origin) // step
    edges = origin + np.arange(first, last + 2, dtype=np.int64) * step
    bounds = np.searchsorted(ticks, edges, side="left")
    filled = bounds[1:] > bounds[:-1]
    period_start = bounds[:-1][filled]
    period_high = np.maximum.reduceat(high, period_start)
    period_low = np.minimum.reduceat(low, period_start)
    # pandas drops periods whose high, low, first open or last close is NaN; leave those
    # to pandas. max/min propagate NaN, so the period extremes show any NaN high or low;
    # an open (close) can only be NaN for a whole period if its first candle's is.
    sample = (
        period_high.sum() + period_low.sum() + open_[period_start].sum() + close[period_start].sum()
    )
    if np.isnan(sample):
        return None
    # A candle counts the periods starting strictly before it: its own period's start is
    # "before" unless the candle sits exactly on it. So period r's candles look back at
    # r - 1, except a first candle exactly on the start, which still looks back at r - 2.
    on_start = ticks[period_start] == edges[:-1][filled]
    starts = period_start + on_start
    refs = np.arange(-1, len(period_start) - 1)
    if on_start[0]:
        starts, refs = np.append(0, starts), np.append(-2, refs)
    return starts, refs, period_high, period_low


def _resampled_periods(
    index: pd.DatetimeIndex, time_frame: str, *prices: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """General path: let pandas bin calendar periods (weeks, months, time zones, NaN)."""
    open_, high, low, close = prices
    candles = pd.DataFrame({"open": open_, "high": high, "low": low, "close": close}, index=index)
    periods = (
        candles.resample(time_frame)
        .agg({"open": "first", "high": "max", "low": "min", "close": "last"})
        .dropna()
    )
    refs = np.searchsorted(periods.index.asi8, index.asi8, side="left") - 2
    starts = np.flatnonzero(run_starts(refs))
    return starts, refs[starts], periods["high"].to_numpy(), periods["low"].to_numpy()


_SESSIONS: dict[str, tuple[str, str]] = {
    "Sydney": ("21:00", "06:00"),
    "Tokyo": ("00:00", "09:00"),
    "London": ("07:00", "16:00"),
    "New York": ("13:00", "22:00"),
    "Asian kill zone": ("00:00", "04:00"),
    "London open kill zone": ("6:00", "9:00"),
    "New York kill zone": ("11:00", "14:00"),
    "london close kill zone": ("14:00", "16:00"),
}
SESSION_NAMES = (*_SESSIONS, "Custom")


def sessions(
    ohlc: pd.DataFrame,
    session: str,
    start_time: str = "",
    end_time: str = "",
    time_zone: str = "UTC",
) -> pd.DataFrame:
    """Which candles fall inside a trading session, and the session's running high and low.

    Sessions (UTC clock times, both ends inclusive, to the minute): Sydney 21:00-06:00,
    Tokyo 00:00-09:00, London 07:00-16:00, New York 13:00-22:00, Asian kill zone
    00:00-04:00, London open kill zone 06:00-09:00, New York kill zone 11:00-14:00,
    london close kill zone 14:00-16:00, or Custom with start_time and end_time ("HH:MM").
    A session whose start is not before its end wraps past midnight.

    time_zone is the zone of a naive index, "UTC" (as is) or like "UTC+2" / "GMT+2";
    as in the reference these become the POSIX zones Etc/GMT+2, whose sign is inverted.

    Active is 1 inside the session; High and Low (float32) are the running high and low of
    the current stretch of active candles, 0 outside. Prices are assumed positive.
    """
    if session == "Custom":
        if start_time == "" or end_time == "":
            raise SmcInputError("Custom session requires a start and end time")
        start_text, end_text = start_time, end_time
    elif session in _SESSIONS:
        start_text, end_text = _SESSIONS[session]
    else:
        raise SmcInputError(f"unknown session {session!r}; expected one of {list(SESSION_NAMES)}")
    high, low = columns(ohlc, "high", "low")
    start, end = _minute_of_day(start_text), _minute_of_day(end_text)
    minute = _candle_minutes(ohlc.index, time_zone)
    if start < end:
        active = (start <= minute) & (minute <= end)
    else:
        active = (start <= minute) | (minute <= end)
    stretch = run_starts(active)
    run_high = np.maximum(segmented_cummax(high, stretch), 0.0)
    run_low = segmented_cummin(low, stretch)
    return frame(
        {
            "Active": active.astype(np.int32),
            "High": np.where(active, run_high, 0.0).astype(np.float32),
            "Low": np.where(active, run_low, 0.0).astype(np.float32),
        }
    )


def _minute_of_day(text: str) -> int:
    parsed = datetime.strptime(text, "%H:%M")
    return parsed.hour * 60 + parsed.minute


def _candle_minutes(index: pd.Index, time_zone: str) -> np.ndarray:
    """Minute of the day of each candle, on the clock the reference reads."""
    index = index if isinstance(index, pd.DatetimeIndex) else pd.to_datetime(index)
    if time_zone != "UTC":
        zone = time_zone.replace("GMT", "Etc/GMT").replace("UTC", "Etc/GMT")
        index = index.tz_localize(zone).tz_convert("UTC")
    if index.tz is None or str(index.tz) == "UTC":
        per_minute = 60 * 10**9 // pd.Timedelta(1, unit=index.unit).value
        return (index.asi8 // per_minute) % 1440
    return np.asarray(index.hour * 60 + index.minute)
