"""Trading sessions as the K templates see them: a daily window in UTC minutes, pure arithmetic.

A 24 h market (crypto) is one session per UTC day: start 0, length 1440. A
CME-style session is its UTC open and length (e.g. 13:30 + 390 min for the
US cash hours in winter); holidays and DST come from the exchange calendar in
the shell (`fractald.session_calendar`), which hands the core plain windows.
"""

from __future__ import annotations

DAY_MS = 86_400_000
MINUTE_MS = 60_000


def session_start(ts_ms: int, start_minute: int) -> int:
    """Start (epoch ms) of the session holding `ts_ms`, for sessions starting at `start_minute` UTC."""
    offset = start_minute * MINUTE_MS
    return (ts_ms - offset) // DAY_MS * DAY_MS + offset


def in_session(ts_ms: int, start_minute: int, length_minutes: int) -> bool:
    return ts_ms - session_start(ts_ms, start_minute) < length_minutes * MINUTE_MS


def minutes_into_session(ts_ms: int, start_minute: int) -> float:
    return (ts_ms - session_start(ts_ms, start_minute)) / MINUTE_MS
