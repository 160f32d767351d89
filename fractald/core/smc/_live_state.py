"""Mutable internal records of `LiveSMC` and the state every detector mixin shares."""

from __future__ import annotations

from collections import deque

from fractald.core.models import Bar
from fractald.core.smc._live_events import (
    Direction,
    FairValueGap,
    LiveSMCParams,
    OrderBlock,
    StructureKind,
    SwingPoint,
)

# --- mutable internal records (never leave LiveSMC) ---------------------------


class _SwingRec:
    """A confirmed swing plus what happened to its level since (break for BOS, sweep for pools)."""

    __slots__ = (
        "broken_index",
        "broken_ts",
        "end_index",
        "level_sum",
        "members",
        "point",
        "range",
        "sweep_extreme",
        "swept_index",
    )

    def __init__(self, point: SwingPoint, rng: float) -> None:
        self.point = point
        self.broken_index: int | None = None
        self.broken_ts = 0
        self.swept_index: int | None = None
        self.sweep_extreme = 0.0
        self.range = rng
        self.members = 1
        self.level_sum = point.level
        self.end_index = point.index

    def mark_swept(self, row: _BarRow) -> None:
        self.swept_index = row.index
        self.sweep_extreme = row.high if self.point.direction == Direction.BULLISH else row.low


class _Pending:
    __slots__ = ("kind", "rec")

    def __init__(self, kind: StructureKind, rec: _SwingRec) -> None:
        self.kind = kind
        self.rec = rec


class _OBRec:
    __slots__ = ("block", "breaker")

    def __init__(self, block: OrderBlock) -> None:
        self.block = block
        self.breaker = False


class _BarRow:
    __slots__ = ("close", "high", "index", "known_ts", "low", "open", "ts", "volume")

    def __init__(self, index: int, bar: Bar) -> None:
        self.index = index
        self.ts = bar.ts_open
        self.known_ts = bar.ts_event
        self.open = bar.open
        self.high = bar.high
        self.low = bar.low
        self.close = bar.close
        self.volume = bar.volume


class _LiveState:
    """The state of one `LiveSMC`; the per-concept mixins read and change it."""

    def __init__(self, params: LiveSMCParams | None = None) -> None:
        self.params = params if params is not None else LiveSMCParams()
        L = self.params.swing_length
        self._buf: deque[_BarRow] = deque(maxlen=2 * L)
        self._index = -1
        self._symbol: str | None = None
        self._timeframe: str | None = None
        self._last_ts = -1
        self._prev_close: float | None = None
        # ATR (Wilder)
        self._atr: float | None = None
        self._tr_sum = 0.0
        self._tr_count = 0
        # swings: the open run (provisional extreme) and recent final swings
        self._run: _SwingRec | None = None
        self._finals: deque[_SwingRec] = deque(maxlen=4)
        self._last_high: _SwingRec | None = None
        self._last_low: _SwingRec | None = None
        self._pattern_checked = -1  # index of the last l3 swing whose pattern was found
        self._pending: list[_Pending] = []
        self._trend = 0
        # FVG
        self._fvgs: dict[int, list[FairValueGap]] = {1: [], -1: []}
        # order blocks: running extreme since the last swing, for each side
        self._obs: dict[int, list[_OBRec]] = {1: [], -1: []}
        self._ob_crossed: dict[int, bool] = {1: True, -1: True}
        self._ob_ext: dict[int, tuple[float, _BarRow] | None] = {1: None, -1: None}
        # liquidity anchors per side
        self._anchors: dict[int, list[_SwingRec]] = {1: [], -1: []}
        # previous period high/low
        self._period_start: int | None = None
        self._period_high = 0.0
        self._period_low = 0.0
        self._prev_high: float | None = None
        self._prev_low: float | None = None
        self._prev_period_ts = 0
        self._broken_high = False
        self._broken_low = False
        self._vols: deque[float] = deque(maxlen=3)


# Pickles of LiveSMC (daemon snapshots) name these classes by their public home.
for _cls in (_SwingRec, _Pending, _OBRec, _BarRow):
    _cls.__module__ = "fractald.core.smc.live"
