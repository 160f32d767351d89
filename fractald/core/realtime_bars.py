"""IBKR's 5-second real-time bars rolled into UTC-aligned 1-minute bars, with what went missing.

IB sends a 5 s bar every 5 seconds while subscribed (volume 0 when nothing
traded). A minute is emitted when a bar of a later minute arrives; it is
`complete` only if all twelve of its 5 s bars came. What the quality score
needs is counted: missing 5 s bars, and outliers (a bar whose range exceeds
`outlier_ticks` ticks, the kind of print a bad tick makes). Pure: no clock.
"""

from __future__ import annotations

import attrs

from fractald.core.models import Bar

FIVE_S = 5_000
MINUTE = 60_000
PER_MINUTE = MINUTE // FIVE_S


@attrs.define
class FiveSecondRollup:
    symbol: str
    tick_size: float
    outlier_ticks: int = 400
    missing: int = 0
    outliers: int = 0
    _minute: int | None = None
    _bars: list[tuple[int, float, float, float, float, float]] = attrs.field(factory=list)

    def on_bar(
        self, ts_ms: int, o: float, h: float, lo: float, c: float, volume: float
    ) -> list[Bar]:
        """One 5 s bar (ts_ms: its start); the 1 m bars it closes (zero or one)."""
        if ts_ms % FIVE_S:
            raise ValueError(f"5 s bar time {ts_ms} is not on a 5 s boundary")
        if (h - lo) > self.outlier_ticks * self.tick_size:
            self.outliers += 1
            return []  # a bad print never reaches the bars: the minute goes out incomplete instead
        minute = ts_ms - ts_ms % MINUTE
        out: list[Bar] = []
        if self._minute is not None and minute > self._minute:
            out.append(self._close())
        if self._minute is None or minute > self._minute:
            self._minute, self._bars = minute, []
        if minute == self._minute and all(b[0] != ts_ms for b in self._bars):
            self._bars.append((ts_ms, o, h, lo, c, volume))
        return out

    def flush(self) -> list[Bar]:
        """The minute in progress, closed now (its source is going away: a front-month roll);
        complete only if all twelve of its 5 s bars came."""
        if self._minute is None or not self._bars:
            return []
        out = [self._close()]
        self._minute, self._bars = None, []
        return out

    def _close(self) -> Bar:
        assert self._minute is not None
        bars = sorted(self._bars)
        self.missing += PER_MINUTE - len(bars)
        return Bar(
            self.symbol,
            "1m",
            self._minute,
            bars[0][1],
            max(b[2] for b in bars),
            min(b[3] for b in bars),
            bars[-1][4],
            sum(b[5] for b in bars),
            complete=len(bars) == PER_MINUTE,
        )
