"""When a future trades: IB's own hours for the coming days, an exchange calendar for the long range.

IB's contract details carry `tradingHours` and `liquidHours` for a few days
around today only: exact (IB's own halts, the daily maintenance break), but
silent about a holiday a month out or a weekend three weeks back (a backfill
after a long outage). Beyond what IB's hours cover, the exchange's calendar
from `exchange_calendars` answers ([feed] ib_calendar, CMES for CME equity
futures: holidays and early closes; its sessions run close to close, so the
daily break is IB's to tell). Outside both, the hours are unknown (None),
which callers treat as "maybe open", never as shut.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

import attrs

DAY_MS = 86_400_000

Sessions = tuple[tuple[int, int], ...]  # [start, end) in UTC ms


def inside(sessions: Sequence[tuple[int, int]], ts_ms: int) -> bool | None:
    """Whether `ts_ms` falls in one of `sessions`; None when they do not cover that day (unknown)."""
    if not sessions:
        return None
    if any(start <= ts_ms < end for start, end in sessions):
        return True
    first, last = min(s for s, _ in sessions), max(e for _, e in sessions)
    return False if first - DAY_MS <= ts_ms < last + DAY_MS else None


@attrs.frozen(slots=True)
class CalendarSessions:
    """An exchange calendar's sessions as sorted UTC-ms opens and closes (its whole known range)."""

    name: str
    opens: tuple[int, ...]
    closes: tuple[int, ...]

    def open_at(self, ts_ms: int) -> bool | None:
        if not self.opens or not self.opens[0] <= ts_ms < self.closes[-1]:
            return None  # before or after what the calendar knows
        i = bisect.bisect_right(self.opens, ts_ms) - 1
        return i >= 0 and ts_ms < self.closes[i]


def calendar_sessions(name: str) -> CalendarSessions:
    """`name`'s sessions (CalendarError names an unknown one, or the missing library)."""
    from fractald.session_calendar import calendar_windows

    opens, closes = calendar_windows(name)
    return CalendarSessions(name, opens, closes)


def open_at(near: Sessions, calendar: CalendarSessions | None, ts_ms: int) -> bool | None:
    """IB's hours where they reach, else the calendar's; None when neither knows."""
    known = inside(near, ts_ms)
    if known is not None or calendar is None:
        return known
    return calendar.open_at(ts_ms)
