"""The account's equity over the whole run, at a bounded cost.

Equity is recorded at every base bar (a month of 1m bars is 43,200
points). Keeping them all grows without end; keeping the last N (the old
ring) made reports and plots cover only the last week. Here the time axis
is cut into UTC-aligned buckets, and a closed bucket keeps at most six of
its points: its first and last, its lowest and highest, and the peak and
trough of the deepest fall inside it. When more than `cap` points are
kept, the buckets grow (1m, 15m, 1h, 4h, 1d) and are reduced again.

What this keeps exact, whatever the bucket size:
- the maximum drawdown (its depth, peak and trough): a fall inside one
  bucket is kept by that bucket's peak/trough pair; a fall from an earlier
  bucket's peak is deepest at this bucket's low, and that peak is the
  earlier bucket's high; the same holds for buckets of reduced buckets;
- the start, the end and every UTC day's last equity (buckets never span
  a day boundary), hence the return and the daily returns behind Sharpe,
  Sortino and Calmar;
- the highs and lows a plot draws.
What it loses is the path between those points: the time a drawdown
recovered (the first point back at the peak) is known to within a bucket. The cap bounds the
memory until the buckets reach a day; from there on a day costs at most
six points (about 2,200 a year).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

BUCKET_WIDTHS_MS = (60_000, 900_000, 3_600_000, 14_400_000, 86_400_000)
DEFAULT_CAP = 20_000
_OPEN_BUCKET_LIMIT = 64  # raw points an open bucket holds before it is reduced in place

Point = tuple[int, float]


def reduce_points(points: list[Point]) -> list[Point]:
    """At most six of `points` (in time order) that keep their extremes and deepest fall."""
    n = len(points)
    if n <= 2:
        return points
    lo = hi = 0
    run_peak = 0
    dd_peak = dd_trough = 0
    worst = 0.0
    for i in range(1, n):
        v = points[i][1]
        if v < points[lo][1]:
            lo = i
        if v > points[hi][1]:
            hi = i
        if v > points[run_peak][1]:
            run_peak = i
        peak_value = points[run_peak][1]
        fall = (peak_value - v) / peak_value if peak_value > 0 else 0.0
        if fall > worst:
            worst, dd_peak, dd_trough = fall, run_peak, i
    keep = sorted({0, n - 1, lo, hi, dd_peak, dd_trough})
    return [points[i] for i in keep]


class EquityHistory:
    """Equity points (ts_ms, equity) in time order over the whole run; see the module doc."""

    __slots__ = ("_bucket", "_bucket_key", "_closed", "_level", "_pending", "_width", "cap")

    def __init__(self, cap: int = DEFAULT_CAP) -> None:
        if cap < 64:
            raise ValueError(f"equity history cap must be at least 64 points, got {cap}")
        self.cap = cap
        self._level = 0
        self._width = BUCKET_WIDTHS_MS[0]
        self._closed: list[Point] = []  # reduced points of closed buckets
        self._bucket: list[Point] = []  # points of the open bucket
        self._bucket_key = -1
        self._pending: Point | None = None  # the newest point: a later one at its ts replaces it

    @property
    def width_ms(self) -> int:
        return self._width

    def record(self, ts: int, equity: float) -> None:
        """Record the equity at `ts`; a second record at the same ts replaces the first."""
        pending = self._pending
        if pending is not None:
            if ts == pending[0]:
                self._pending = (ts, equity)
                return
            if ts < pending[0]:
                raise ValueError(
                    f"equity at ts {ts} is earlier than the last recorded ({pending[0]})"
                )
            self._fold(pending)
        self._pending = (ts, equity)

    def _fold(self, point: Point) -> None:
        if point[0] // self._width != self._bucket_key:
            self._close_bucket()
            self._bucket_key = point[0] // self._width  # the width may have grown
        bucket = self._bucket
        bucket.append(point)
        if len(bucket) > _OPEN_BUCKET_LIMIT:
            self._bucket = reduce_points(bucket)

    def _close_bucket(self) -> None:
        bucket = self._bucket
        if bucket:
            # most 1m buckets hold one point: what reduce_points returns as it is, without the call
            self._closed.extend(bucket if len(bucket) <= 2 else reduce_points(bucket))
            self._bucket = []
        while len(self._closed) > self.cap and self._level < len(BUCKET_WIDTHS_MS) - 1:
            self._coarsen()

    def _coarsen(self) -> None:
        """Wider buckets: each group of closed points in one new bucket is reduced again.

        A new bucket the open one also falls in stays split in two reduced
        parts; that costs a few points and keeps every figure exact.
        """
        self._level += 1
        self._width = width = BUCKET_WIDTHS_MS[self._level]
        out: list[Point] = []
        group: list[Point] = []
        group_key = None
        for point in self._closed:
            key = point[0] // width
            if key != group_key and group:
                out.extend(reduce_points(group))
                group = []
            group_key = key
            group.append(point)
        out.extend(reduce_points(group))
        self._closed = out
        if self._bucket:
            self._bucket_key = self._bucket[0][0] // width

    def points(self) -> list[Point]:
        out = self._closed + self._bucket
        if self._pending is not None:
            out.append(self._pending)
        return out

    def __iter__(self) -> Iterator[Point]:
        return iter(self.points())

    def __getitem__(self, index: int) -> Point:
        return self.points()[index]

    def __len__(self) -> int:
        return len(self._closed) + len(self._bucket) + (self._pending is not None)

    def __bool__(self) -> bool:
        return self._pending is not None

    def last(self) -> Point | None:
        return self._pending

    def clear(self) -> None:
        self.__init__(self.cap)  # type: ignore[misc]

    # -- persistence: the state exactly, and the closed points apart (they only grow) ----------
    @property
    def level(self) -> int:
        """How many times the buckets have widened (0: 1m). Closed points at one level only grow."""
        return self._level

    def closed_count(self) -> int:
        return len(self._closed)

    def closed_from(self, start: int) -> list[Point]:
        """The closed points from index `start` on, at the current level."""
        return self._closed[start:]

    def state(self) -> dict[str, object]:
        """Everything, as plain data; `restore_state` gives back this very history."""
        return {
            "level": self._level,
            "closed": list(self._closed),  # (ts, equity) pairs: JSON arrays
            "bucket": list(self._bucket),
            "bucket_key": self._bucket_key,
            "pending": self._pending,
        }

    def restore_state(self, data: dict[str, object]) -> None:
        """Back to exactly the history `state()` described (a bad shape: ValueError or TypeError)."""
        level = data["level"]
        if not isinstance(level, int) or not 0 <= level < len(BUCKET_WIDTHS_MS):
            raise ValueError(
                f"equity history level {level!r} is not 0..{len(BUCKET_WIDTHS_MS) - 1}"
            )
        pending = data["pending"]
        self.clear()
        self._level = level
        self._width = BUCKET_WIDTHS_MS[level]
        self._closed = _points(data["closed"], "closed")
        self._bucket = _points(data["bucket"], "bucket")
        self._bucket_key = int(data["bucket_key"])  # type: ignore[call-overload]
        self._pending = None if pending is None else _points([pending], "pending")[0]

    def extend(self, points: Iterable[Point], width_ms: int | None = None) -> None:
        """Record `points` in order (a restore); `width_ms` resumes the bucket size they were kept at."""
        if width_ms is not None and width_ms in BUCKET_WIDTHS_MS and not self:
            self._level = BUCKET_WIDTHS_MS.index(width_ms)
            self._width = width_ms
        for ts, equity in points:
            self.record(int(ts), float(equity))


def _points(raw: object, what: str) -> list[Point]:
    if not isinstance(raw, (list, tuple)):
        raise TypeError(f"equity history {what}: expected a list of [ts, equity], got {raw!r:.80}")
    out = []
    for item in raw:
        ts, equity = item
        out.append((int(ts), float(equity)))
    return out
