"""Calendar-based offline SMC detectors: previous period high/low and trading sessions."""

from __future__ import annotations

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
    BrokenLow likewise below PreviousLow.
    """
    open_, high, low, close = columns(ohlc, "open", "high", "low", "close")
    n = len(high)
    index = ohlc.index if isinstance(ohlc.index, pd.DatetimeIndex) else pd.to_datetime(ohlc.index)
    offset = to_offset(time_frame)
    bins = _fixed_bins(index, offset, open_, high, low, close)
    if bins is None:
        bins = _resampled_bins(index, time_frame, open_, high, low, close)
    periods_before, bin_high, bin_low = bins
    if len(bin_high) < 2:
        nan32 = np.full(n, np.nan, dtype=np.float32)
        zero = np.zeros(n, dtype=np.int32)
        return frame({"PreviousHigh": nan32, "PreviousLow": nan32.copy(),
                      "BrokenHigh": zero, "BrokenLow": zero.copy()})
    reference = periods_before - 2
    valid = reference >= 0
    pick = np.maximum(reference, 0)
    prev_high = np.where(valid, bin_high[pick], np.nan).astype(np.float32)
    prev_low = np.where(valid, bin_low[pick], np.nan).astype(np.float32)
    group_start = run_starts(reference)
    broken_high = _seen_in_group(high > prev_high.astype(np.float64), group_start)
    broken_low = _seen_in_group(low < prev_low.astype(np.float64), group_start)
    return frame({
        "PreviousHigh": prev_high,
        "PreviousLow": prev_low,
        "BrokenHigh": broken_high.astype(np.int32),
        "BrokenLow": broken_low.astype(np.int32),
    })


def _seen_in_group(hit: np.ndarray, group_start: np.ndarray) -> np.ndarray:
    """True from the first hit of each group to the group's end."""
    seen = np.cumsum(hit)
    first = np.maximum.accumulate(np.where(group_start, np.arange(len(hit)), 0))
    return seen - seen[first] + hit[first] > 0


def _fixed_bins(
    index: pd.DatetimeIndex,
    offset: pd.DateOffset,
    *prices: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Fast path for fixed-length periods on a sorted UTC (or naive) index without NaN.

    pandas anchors such bins at midnight of the first candle's day; a bin is labelled by its
    start. Returns None when the fast path does not apply.
    """
    fixed = isinstance(offset, pd.offsets.Tick) or type(offset) is pd.offsets.Day
    utc_clock = index.tz is None or str(index.tz) == "UTC"
    if not (fixed and utc_clock):
        return None
    if len(index) == 0 or not index.is_monotonic_increasing:
        return None
    _, high, low, _ = prices
    if np.isnan(sum(float(p.sum()) for p in prices)):
        return None
    unit_ns = pd.Timedelta(1, unit=index.unit).value
    step_ns = pd.Timedelta(offset).value
    if step_ns <= 0 or step_ns % unit_ns or _DAY_NS % unit_ns:
        return None
    step, day = step_ns // unit_ns, _DAY_NS // unit_ns
    ticks = index.asi8
    since_origin = ticks - (ticks[0] // day) * day
    period = since_origin // step
    new_period = run_starts(period)
    starts = np.flatnonzero(new_period)
    rank = np.cumsum(new_period) - 1
    # count of non-empty periods starting strictly before each candle
    periods_before = rank + (since_origin % step != 0)
    return periods_before, np.maximum.reduceat(high, starts), np.minimum.reduceat(low, starts)


def _resampled_bins(
    index: pd.DatetimeIndex, time_frame: str, *prices: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """General path: let pandas bin calendar periods (weeks, months, time zones)."""
    open_, high, low, close = prices
    candles = pd.DataFrame({"open": open_, "high": high, "low": low, "close": close}, index=index)
    periods = candles.resample(time_frame).agg(
        {"open": "first", "high": "max", "low": "min", "close": "last"}
    ).dropna()
    periods_before = np.searchsorted(periods.index.values, index.values, side="left")
    return periods_before, periods["high"].to_numpy(), periods["low"].to_numpy()


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
    return frame({
        "Active": active.astype(np.int32),
        "High": np.where(active, run_high, 0.0).astype(np.float32),
        "Low": np.where(active, run_low, 0.0).astype(np.float32),
    })


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
