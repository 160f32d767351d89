"""Exchange sessions from `exchange_calendars` (holidays, early closes, DST), as the core's SessionGate.

The library is the maintained source of trading calendars (Quantopian's lineage);
a session here is the exchange's regular session, e.g. XNYS 09:30-16:00 New York
time (13:00 on early-close days), which is what "regular trading hours" means for
CME equity-index futures. Built once per calendar for its whole known range.
"""

from __future__ import annotations

import functools

from fractald.core.risk.session_gate import SessionGate


class CalendarError(ValueError):
    """An unknown calendar name, or the library missing; the message says which and what exists."""


def calendar_names() -> list[str]:
    import exchange_calendars as xc

    return sorted(xc.get_calendar_names(include_aliases=False))


@functools.cache
def _windows(name: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    try:
        import exchange_calendars as xc
    except ImportError:
        raise CalendarError(
            "session calendars need the exchange_calendars package (pip install exchange_calendars)"
        ) from None
    try:
        cal = xc.get_calendar(name)
    except xc.errors.InvalidCalendarName:
        raise CalendarError(
            f"unknown exchange calendar {name!r}; for US equity-index futures' regular "
            f"hours use XNYS; known: {', '.join(calendar_names())}"
        ) from None
    opens = tuple(int(t.value // 1_000_000) for t in cal.opens)
    closes = tuple(int(t.value // 1_000_000) for t in cal.closes)
    return opens, closes


def calendar_windows(name: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """`name`'s session opens and closes, UTC ms, over its whole known range (cached)."""
    return _windows(name)


def session_gate(
    name: str,
    skip_first_minutes: int = 0,
    no_entry_last_minutes: int = 0,
    flatten_before_close_minutes: int = 0,
) -> SessionGate:
    opens, closes = _windows(name)
    return SessionGate(
        name, opens, closes, skip_first_minutes, no_entry_last_minutes, flatten_before_close_minutes
    )
