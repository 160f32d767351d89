"""How far a replay has got: what `fractalctl status` and systemd's STATUS line show.

The replay feed advances it for every candle (or capture message) it sends;
the market data actor reads it. Plain data and arithmetic: the caller
passes the (monotonic) time in, so it is tested without a clock.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

FINISHED_HINT = "replay finished: run `fractalctl report`"


def _eta(seconds: float) -> str:
    seconds = max(0, int(seconds + 0.5))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def _utc(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).strftime("%Y-%m-%d %H:%M")


class ReplayProgress:
    """The replay of one source: items sent of the total, the data time reached, the pace."""

    __slots__ = (
        "done",
        "finished",
        "first_ms",
        "last_ms",
        "source",
        "started_s",
        "total",
        "ts_ms",
        "unit",
        "updated_s",
    )

    def __init__(self) -> None:
        self.source = ""
        self.unit = "candles"
        self.total = 0
        self.done = 0
        self.first_ms: int | None = None
        self.last_ms: int | None = None
        self.ts_ms: int | None = None
        self.started_s: float | None = None
        self.updated_s: float | None = None
        self.finished = False

    def start(
        self,
        source: str,
        total: int,
        first_ms: int | None,
        last_ms: int | None,
        now_s: float,
        unit: str = "candles",
    ) -> None:
        """A (re)started replay of `total` items spanning `first_ms`..`last_ms` of data time."""
        self.source, self.unit, self.total = source, unit, max(0, total)
        self.first_ms, self.last_ms = first_ms, last_ms
        self.done, self.ts_ms, self.finished = 0, None, False
        self.started_s = self.updated_s = now_s

    def advance(self, ts_ms: int, now_s: float) -> None:
        self.done += 1
        self.ts_ms, self.updated_s = ts_ms, now_s

    def finish(self, now_s: float) -> None:
        self.finished, self.updated_s = True, now_s

    @property
    def active(self) -> bool:
        return self.started_s is not None

    @property
    def fraction(self) -> float:
        if self.finished:
            return 1.0
        return min(1.0, self.done / self.total) if self.total else 0.0

    def eta_s(self) -> float | None:
        """Seconds left at the pace so far (None before the pace is known, 0 when finished)."""
        if self.finished:
            return 0.0
        if self.started_s is None or self.updated_s is None or self.done < 2:
            return None
        elapsed = self.updated_s - self.started_s
        return elapsed / self.done * max(0, self.total - self.done) if elapsed > 0 else None

    def line(self) -> str:
        """One line for people: `replay 42% (18,912 of 45,031 candles, at 2022-01-14 05:12),
        ETA 6m10s`, or the finished hint."""
        if self.finished:
            return f"{FINISHED_HINT} ({self.done:,} {self.unit} replayed)"
        text = f"replay {self.fraction * 100:.0f}% ({self.done:,} of {self.total:,} {self.unit}"
        if self.ts_ms is not None:
            text += f", at {_utc(self.ts_ms)}"
        eta = self.eta_s()
        return text + ")" + (f", ETA {_eta(eta)}" if eta is not None else "")

    def view(self) -> dict[str, Any]:
        """For `status` (--json keeps fractions: 0.42 is 42 %)."""
        eta = self.eta_s()
        return {
            "progress": self.line(),
            "source": self.source,
            "finished": self.finished,
            "done": self.done,
            "total": self.total,
            "fraction": round(self.fraction, 4),
            "data_from_ts": self.first_ms,
            "data_to_ts": self.last_ms,
            "data_at_ts": self.ts_ms,
            "eta_s": None if eta is None else round(eta, 1),
        }
