"""Session gate: entries only inside the exchange's sessions, with the configured margins; optional
flatten before the close. Pure: the sessions are plain (open, close) windows that the shell builds
from an exchange calendar (fractald.session_calendar), holidays and early closes included.
"""

from __future__ import annotations

import bisect

import attrs

from fractald.core.risk.params import int_range

MINUTE_MS = 60_000


@attrs.frozen(slots=True)
class SessionGate:
    """`opens[i]`..`closes[i]` (epoch ms) is session i, sorted, non-overlapping."""

    name: str
    opens: tuple[int, ...]
    closes: tuple[int, ...]
    skip_first_minutes: int = attrs.field(default=0, validator=int_range(0, 1440))
    no_entry_last_minutes: int = attrs.field(default=0, validator=int_range(0, 1440))
    flatten_before_close_minutes: int = attrs.field(default=0, validator=int_range(0, 1440))

    def __attrs_post_init__(self) -> None:
        if len(self.opens) != len(self.closes) or not self.opens:
            raise ValueError(
                f"session gate {self.name}: needs as many opens as closes, at least one"
            )
        if any(c <= o for o, c in zip(self.opens, self.closes, strict=True)) or any(
            n < c for c, n in zip(self.closes, self.opens[1:], strict=False)
        ):
            raise ValueError(f"session gate {self.name}: sessions must be sorted and not overlap")

    def session_at(self, ts: int) -> tuple[int, int] | None:
        """The session whose [open, close) holds `ts` (a bar closing at the close counts as inside)."""
        i = bisect.bisect_right(self.opens, ts - 1) - 1
        if i < 0 or ts > self.closes[i]:
            return None
        return self.opens[i], self.closes[i]

    def entry_refusal(self, ts: int) -> str | None:
        """Why an entry at `ts` is refused (None: allowed)."""
        if ts < self.opens[0] or ts > self.closes[-1]:
            return (
                f"{self.name}: {ts} is outside the calendar's known sessions "
                f"({self.opens[0]}..{self.closes[-1]})"
            )
        session = self.session_at(ts)
        if session is None:
            return f"{self.name}: market closed"
        open_ms, close_ms = session
        if ts - open_ms <= self.skip_first_minutes * MINUTE_MS:
            return f"{self.name}: within the first {self.skip_first_minutes} minutes of the session"
        if close_ms - ts < self.no_entry_last_minutes * MINUTE_MS:
            return f"{self.name}: within the last {self.no_entry_last_minutes} minutes before the close"
        return None

    def must_flatten(self, ts: int) -> bool:
        """Open trades are closed from `flatten_before_close_minutes` before a close (0: never)."""
        if not self.flatten_before_close_minutes:
            return False
        session = self.session_at(ts)
        return (
            session is not None and session[1] - ts <= self.flatten_before_close_minutes * MINUTE_MS
        )
