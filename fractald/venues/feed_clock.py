"""The venue's clock as seen through its own timestamps, estimated robustly.

Every market data timestamp gives one sample of `offset = ts_event - local
monotonic ms`. The estimate is the median of the recent samples, so one
message stamped hours ahead (or behind) moves nothing, while a real change
of the venue's clock wins once it holds for half the window. A timestamp
further ahead of the estimate than `future_tolerance_ms` is refused by the
feed, whatever kind of message carried it.

Comparing the estimate with the local wall clock tells whether this host's
clock runs fast or slow (`skew_ms`); the feed reports it, it never acts on it.
"""

from __future__ import annotations

from collections import deque

WINDOW = 63  # odd: the median is one sample
RECOMPUTE_EVERY = 8  # samples between two medians once the window is warm
FUTURE_TOLERANCE_MS = 60_000


class VenueClock:
    __slots__ = ("_samples", "_since", "offset_ms", "refused")

    def __init__(self) -> None:
        self._samples: deque[float] = deque(maxlen=WINDOW)
        self._since = 0
        self.offset_ms: float | None = None
        self.refused = 0

    def set(self, offset_ms: float) -> None:
        """Take the venue's offset as given (candle replay: the data is the clock)."""
        self._samples.clear()
        self._since = 0
        self.offset_ms = offset_ms

    def now_ms(self, mono_s: float) -> int | None:
        offset = self.offset_ms
        return None if offset is None else int(mono_s * 1000 + offset)

    def sample(self, ts_ms: int, mono_s: float) -> bool:
        """One venue timestamp; False when it lies too far ahead of the venue clock to believe."""
        offset = ts_ms - mono_s * 1000
        samples = self._samples
        samples.append(offset)
        self._since += 1
        if (
            self.offset_ms is None
            or self._since >= RECOMPUTE_EVERY
            or len(samples) < RECOMPUTE_EVERY
        ):
            self._since = 0
            ordered = sorted(samples)
            self.offset_ms = ordered[
                (len(ordered) - 1) // 2
            ]  # the lower median: two samples, the older wins ties
        if offset > self.offset_ms + FUTURE_TOLERANCE_MS:
            self.refused += 1
            return False
        return True

    def skew_ms(self, wall_ms: float, mono_s: float) -> float | None:
        """How far the local wall clock runs ahead of the venue's (negative: behind)."""
        venue = self.now_ms(mono_s)
        return None if venue is None else wall_ms - venue
