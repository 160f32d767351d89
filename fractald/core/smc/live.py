"""Causal (live) Smart Money Concepts detectors, fed one closed bar at a time.

`LiveSMC(params).update(bar)` returns the events that became knowable when
`bar` closed. Nothing looks ahead: a swing at bar i is known only once bar
i + L has closed (L = `swing_length`), and every event carries both the
index/ts of the structure (`index`, `ts`: the bar's open time) and of the bar
at whose close it became known (`known_index`, `known_ts`: that bar's close
time). Work per bar is bounded by the caps in `LiveSMCParams`, and so is
memory: the oldest structures are dropped first.

Definitions (the same concepts as smartmoneyconcepts 0.0.27, "the peer"):

* Swing: bar i is a swing-high candidate when its high equals the highest
  high of bars i-L+1 .. i+L (a low candidate likewise with lows; high wins
  when a bar is both); no candidate before bar 2L-1 (the peer's rolling
  window warm-up). Consecutive candidates of one kind form a run, and only
  the run's extreme survives (the earliest on ties). Live reports a
  candidate when it becomes the run's extreme so far (`supersedes` names the
  one it replaces); it is *final* once an opposite candidate starts the next
  run.
* FVG: three bars a, b, c; bullish when high(a) < low(c) and b closes up
  (top = low(c), bottom = high(a)); bearish when low(a) > high(c) and b
  closes down (top = low(a), bottom = high(c)). Known when c closes.
  Mitigated by the first later bar whose low reaches the top (bullish) or
  whose high reaches the bottom (bearish).
* BOS / CHoCH: over the last four final swings l4, l3, l2 and the newest l1:
  low-high-low-high with l4 < l2 < l3 < l1 is a bullish BOS, with
  l1 > l3 > l4 > l2 a bullish CHoCH (mirror for bearish). The structure sits
  at the l3 swing, its level is l3, and it is reported when a close (or the
  high/low when `close_break` is False) goes beyond l3.
* Order block: when a close crosses above the last known swing high, the
  bar with the lowest low between that swing and the crossing bar (the last
  one on ties) is a bullish block (its high and low bound it; volume is the
  crossing bar's and the two before). It is mitigated when a low goes below
  its bottom (or min(open, close) with `close_mitigation`), and invalidated
  when, after that, a high goes above its top. Mirror for bearish.
* Liquidity pool: final swing highs within `range` of an earlier final swing
  high (the anchor) and before the anchor is swept join its pool; a pool
  needs two swings and its level is their mean. The anchor is swept by the
  first bar whose high reaches anchor level + range. Mirror for lows.
* Previous high/low: the high and low of the last completed period of
  `previous_timeframe` (UTC-aligned), and whether the current period has
  traded beyond them.

Documented differences from the peer (tests/test_smc_live.py asserts that
these are the only ones on the bundled BTC candles):

1. Swing endpoints: the peer marks bar 0 and the last bar as artificial
   swings opposite to the first and last real ones (it sees the whole
   frame). Live has no such swings. Agreement tests strip them from the
   peer's swings before giving them to its other functions.
2. BOS/CHoCH retroactive removal: the peer drops a structure when a *later*
   structure breaks at or before it, which it can only know from the whole
   frame. Live reports a structure when its break happens; when several
   break on one bar it keeps only the newest (as the peer does), but one
   already reported stays reported. So live reports a superset of the peer,
   and every extra one has a later structure breaking no later than it.
3. Order blocks use the swings known at the crossing bar: the peer takes
   the last swing before the bar from the final, whole-frame swing list,
   which includes swings not yet confirmed then (they need L more bars) and
   excludes candidates later superseded in their run. Where live's last
   known swing at the crossing bar is the peer's last swing, both agree.
   Live also reports mitigation at the mitigating bar; the peer records the
   bar before it for bullish blocks. The peer deletes invalidated blocks
   from its output; live reports `OrderBlockInvalidated`.
4. Liquidity range: the peer derives it from the whole frame's high-low
   range times `range_percent`; live takes an absolute `liquidity_range` or,
   when it is None, `liquidity_atr_multiple` x ATR at the anchor's
   confirmation. Live learns pool members when they become final, so the
   last swing of the data (final for the peer, still open live) is not in
   a pool yet.
5. Previous high/low: the peer gives the first bar of each period the
   period *two* back (it counts periods starting strictly before the bar's
   open) and restarts its broken-flag running max at the second bar; live
   uses the last completed period from the first bar on.
6. Incomplete bars (gap fillers, `complete=False`) are processed like any
   other bar (they are flat at the last close); strategies do not enter on
   them.
7. `join_consecutive` FVGs are not supported live (the merge needs the next
   bar); caps (`max_*`) drop the oldest structures, which the peer never
   does.
"""

from __future__ import annotations

import enum
from collections import deque
from operator import attrgetter

import attrs

from fractald.core.models import TIMEFRAME_MS, Bar
from fractald.core.smc._live_validate import float_in, int_in, known_timeframe

_HIGH, _LOW = attrgetter("high"), attrgetter("low")


class Direction(enum.IntEnum):
    """Bullish (+1: swing high, bullish gap/block/break, pool above) or bearish (-1)."""

    BULLISH = 1
    BEARISH = -1


class StructureKind(enum.Enum):
    BOS = "BOS"
    CHOCH = "CHOCH"


@attrs.frozen(slots=True)
class LiveSMCParams:
    """Tuning of the live detectors; a bad value names the parameter and its allowed range."""

    swing_length: int = attrs.field(default=5, validator=int_in(1, 500))
    close_break: bool = True
    close_mitigation: bool = False
    liquidity_range: float | None = attrs.field(default=None, validator=float_in(0.0, 1e12, optional=True))
    liquidity_atr_multiple: float = attrs.field(default=0.25, validator=float_in(0.0, 100.0))
    atr_length: int = attrs.field(default=14, validator=int_in(1, 1000))
    previous_timeframe: str = attrs.field(default="1d", validator=known_timeframe)
    max_fvgs: int = attrs.field(default=50, validator=int_in(1, 100_000))
    max_order_blocks: int = attrs.field(default=50, validator=int_in(1, 100_000))
    max_pools: int = attrs.field(default=50, validator=int_in(1, 100_000))
    max_structures: int = attrs.field(default=20, validator=int_in(1, 100_000))


# --- events -----------------------------------------------------------------

@attrs.frozen(slots=True)
class SwingPoint:
    """A swing high (+1) or low (-1): the run's extreme so far when reported."""

    direction: Direction
    index: int
    ts: int
    level: float
    known_index: int
    known_ts: int
    supersedes: int | None = None


@attrs.frozen(slots=True)
class Zone:
    """A price zone (gap or block) between `bottom` and `top` made at bar `index`."""

    direction: Direction
    index: int
    ts: int
    top: float
    bottom: float
    known_index: int
    known_ts: int


@attrs.frozen(slots=True)
class FairValueGap(Zone):
    """`index` is the middle bar of the three; known when the third closes."""


@attrs.frozen(slots=True)
class FVGMitigated(Zone):
    """`index` is the gap's middle bar; `known_index` the mitigating bar."""


@attrs.frozen(slots=True)
class StructureBreak:
    """A BOS or CHoCH at the swing whose level was broken."""

    kind: StructureKind
    direction: Direction
    index: int  # the broken swing
    ts: int
    level: float
    broken_index: int
    broken_ts: int
    known_index: int
    known_ts: int


@attrs.frozen(slots=True)
class OrderBlock:
    direction: Direction
    index: int  # the block's bar
    ts: int
    top: float
    bottom: float
    volume: float
    percentage: float
    swing_index: int  # the swing whose crossing created it
    known_index: int  # the crossing bar
    known_ts: int


@attrs.frozen(slots=True)
class OrderBlockMitigated(Zone):
    """Price traded through the block (it becomes a breaker)."""


@attrs.frozen(slots=True)
class OrderBlockInvalidated(Zone):
    """After mitigation, price went back beyond the block's far side."""


@attrs.frozen(slots=True)
class LiquidityPool:
    """Equal highs (+1, resting buy stops) or lows (-1); reported on forming and on every new member."""

    direction: Direction
    index: int  # the anchor swing
    ts: int
    level: float
    members: int
    end_index: int
    swept_index: int | None
    known_index: int
    known_ts: int


@attrs.frozen(slots=True)
class LiquiditySwept:
    """A pool's anchor level + range was traded through at bar `swept_index`.

    Usually known at that bar; when the pool itself only forms later (its second
    swing becomes final after the sweep), it is reported when the pool forms.
    `extreme` is the sweeping bar's high (pool of highs) or low (pool of lows).
    """

    direction: Direction
    index: int  # the pool's anchor swing
    ts: int
    level: float
    members: int
    swept_index: int
    extreme: float
    known_index: int
    known_ts: int


@attrs.frozen(slots=True)
class PreviousLevelBroken:
    """The current period traded above (+1) the previous period's high or below (-1) its low."""

    direction: Direction
    level: float
    period_ts: int  # open time of the period whose level was broken
    known_index: int
    known_ts: int


SMCEvent = (
    SwingPoint | FairValueGap | FVGMitigated | StructureBreak | OrderBlock | OrderBlockMitigated
    | OrderBlockInvalidated | LiquidityPool | LiquiditySwept | PreviousLevelBroken
)


# --- mutable internal records (never leave this module) ------------------------

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


class LiveSMC:
    """All live detectors for one (symbol, timeframe) stream of closed bars."""

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

    # --- read-only state ------------------------------------------------------
    @property
    def bars_seen(self) -> int:
        return self._index + 1

    @property
    def atr(self) -> float | None:
        return self._atr

    @property
    def trend(self) -> int:
        """+1 after a bullish BOS/CHoCH, -1 after a bearish one, 0 before any."""
        return self._trend

    @property
    def active_fvgs(self) -> tuple[FairValueGap, ...]:
        return tuple(self._fvgs[1]) + tuple(self._fvgs[-1])

    @property
    def active_order_blocks(self) -> tuple[OrderBlock, ...]:
        """Blocks not yet mitigated."""
        return tuple(r.block for side in (1, -1) for r in self._obs[side] if not r.breaker)

    @property
    def liquidity_pools(self) -> tuple[LiquidityPool, ...]:
        """Unswept pools (two or more equal swings)."""
        out = []
        for side in (1, -1):
            for a in self._anchors[side]:
                if a.members >= 2 and a.swept_index is None:
                    out.append(self._pool_event(a, a.point.known_index, a.point.known_ts))
        return tuple(out)

    @property
    def last_swing_high(self) -> SwingPoint | None:
        return self._last_high.point if self._last_high else None

    @property
    def last_swing_low(self) -> SwingPoint | None:
        return self._last_low.point if self._last_low else None

    @property
    def previous_high(self) -> float | None:
        return self._prev_high

    @property
    def previous_low(self) -> float | None:
        return self._prev_low

    @property
    def previous_broken(self) -> tuple[bool, bool]:
        return self._broken_high, self._broken_low

    # --- the update -----------------------------------------------------------
    def update(self, bar: Bar) -> tuple[SMCEvent, ...]:
        """Feed the next closed bar; returns the events that became knowable at its close."""
        self._check_order(bar)
        self._index += 1
        row = _BarRow(self._index, bar)
        events: list[SMCEvent] = []
        self._update_atr(row)
        self._update_previous(row, events)
        self._mitigate_fvgs(row, events)
        self._track_levels(row, events)
        self._mitigate_obs(row, events)
        self._cross_for_obs(row, events)
        self._buf.append(row)
        self._vols.append(row.volume)
        self._advance_ob_extremes(row)
        self._detect_fvg(row, events)
        self._detect_swing(row, events)
        self._resolve_structures(row, events)
        self._prev_close = row.close
        return tuple(events)

    def _check_order(self, bar: Bar) -> None:
        if self._symbol is None:
            self._symbol, self._timeframe = bar.symbol, bar.timeframe
        elif bar.symbol != self._symbol or bar.timeframe != self._timeframe:
            raise ValueError(
                f"LiveSMC is for {self._symbol} {self._timeframe}, got a {bar.symbol} {bar.timeframe} bar")
        if bar.ts_open <= self._last_ts:
            raise ValueError(f"bars must arrive in time order: ts_open {bar.ts_open} after {self._last_ts}")
        self._last_ts = bar.ts_open

    def _update_atr(self, row: _BarRow) -> None:
        pc = self._prev_close
        tr = row.high - row.low if pc is None else max(
            row.high - row.low, abs(row.high - pc), abs(row.low - pc))
        n = self.params.atr_length
        if self._atr is None:
            self._tr_sum += tr
            self._tr_count += 1
            if self._tr_count == n:
                self._atr = self._tr_sum / n
        else:
            self._atr = (self._atr * (n - 1) + tr) / n

    # --- previous period high/low ---------------------------------------------
    def _update_previous(self, row: _BarRow, events: list[SMCEvent]) -> None:
        period = TIMEFRAME_MS[self.params.previous_timeframe]
        start = row.ts - row.ts % period
        if start != self._period_start:
            if self._period_start is not None:
                self._prev_high, self._prev_low = self._period_high, self._period_low
                self._prev_period_ts = self._period_start
            self._period_start = start
            self._period_high, self._period_low = row.high, row.low
            self._broken_high = self._broken_low = False
        else:
            self._period_high = max(self._period_high, row.high)
            self._period_low = min(self._period_low, row.low)
        if self._prev_high is None or self._prev_low is None:
            return
        if not self._broken_high and self._period_high > self._prev_high:
            self._broken_high = True
            events.append(PreviousLevelBroken(Direction.BULLISH, self._prev_high,
                                              self._prev_period_ts, row.index, row.known_ts))
        if not self._broken_low and self._period_low < self._prev_low:
            self._broken_low = True
            events.append(PreviousLevelBroken(Direction.BEARISH, self._prev_low,
                                              self._prev_period_ts, row.index, row.known_ts))

    # --- fair value gaps --------------------------------------------------------
    def _mitigate_fvgs(self, row: _BarRow, events: list[SMCEvent]) -> None:
        for side in (1, -1):
            gaps = self._fvgs[side]
            if not gaps:
                continue
            low, high = row.low, row.high
            hit = [g for g in gaps if (low <= g.top if side == 1 else high >= g.bottom)]
            if not hit:
                continue  # the usual bar: no gap reached, the list stays as it is
            for g in hit:
                events.append(FVGMitigated(g.direction, g.index, g.ts, g.top, g.bottom,
                                           row.index, row.known_ts))
            self._fvgs[side] = [g for g in gaps if not (low <= g.top if side == 1 else high >= g.bottom)]

    def _detect_fvg(self, row: _BarRow, events: list[SMCEvent]) -> None:
        if len(self._buf) < 3:
            return
        a, b, c = self._buf[-3], self._buf[-2], row
        gap: FairValueGap | None = None
        if b.close > b.open and a.high < c.low:
            gap = FairValueGap(Direction.BULLISH, b.index, b.ts, c.low, a.high, row.index, row.known_ts)
        elif b.close < b.open and a.low > c.high:
            gap = FairValueGap(Direction.BEARISH, b.index, b.ts, a.low, c.high, row.index, row.known_ts)
        if gap is not None:
            gaps = self._fvgs[int(gap.direction)]
            gaps.append(gap)
            if len(gaps) > self.params.max_fvgs:
                del gaps[0]
            events.append(gap)

    # --- swings -------------------------------------------------------------------
    def _detect_swing(self, row: _BarRow, events: list[SMCEvent]) -> None:
        L = self.params.swing_length
        buf = self._buf
        if len(buf) < 2 * L or row.index < 3 * L - 1:
            return
        cand = buf[L - 1]  # bar i = t - L; the buffer holds i-L+1 .. i+L
        if cand.high == max(map(_HIGH, buf)):
            side, level = 1, cand.high
        elif cand.low == min(map(_LOW, buf)):
            side, level = -1, cand.low
        else:
            return
        run = self._run
        if run is not None and int(run.point.direction) == side:
            better = level > run.point.level if side == 1 else level < run.point.level
            if not better:
                return
            point = SwingPoint(Direction(side), cand.index, cand.ts, level, row.index, row.known_ts,
                               supersedes=run.point.index)
        else:
            point = SwingPoint(Direction(side), cand.index, cand.ts, level, row.index, row.known_ts)
            if run is not None:
                self._finalize(run, row, events)
        rec = _SwingRec(point, self._pool_range())
        self._scan_sweep_since(rec)
        self._run = rec
        if side == 1:
            self._last_high = rec
        else:
            self._last_low = rec
        self._restart_ob_extreme(side, rec)
        events.append(point)
        self._check_pattern(row)

    def _pool_range(self) -> float:
        if self.params.liquidity_range is not None:
            return self.params.liquidity_range
        return self.params.liquidity_atr_multiple * self._atr if self._atr is not None else 0.0

    def _scan_sweep_since(self, rec: _SwingRec) -> None:
        """Bars between the swing and its confirmation may already reach level +- range."""
        side, level = int(rec.point.direction), rec.point.level
        for r in self._buf:
            if r.index <= rec.point.index:
                continue
            if (side == 1 and r.high >= level + rec.range) or (side == -1 and r.low <= level - rec.range):
                rec.mark_swept(r)
                return

    def _finalize(self, rec: _SwingRec, row: _BarRow, events: list[SMCEvent]) -> None:
        self._finals.append(rec)
        self._join_pool(rec, row, events)

    def _check_pattern(self, row: _BarRow) -> None:
        if len(self._finals) < 3 or self._run is None:
            return
        l4, l3, l2 = (r.point.level for r in list(self._finals)[-3:])
        rec3 = self._finals[-2]
        if rec3.point.index <= self._pattern_checked:
            return
        l1 = self._run.point.level
        if self._run.point.direction == Direction.BULLISH:
            bos = l4 < l2 < l3 < l1
            choch = l1 > l3 > l4 > l2
        else:
            bos = l4 > l2 > l3 > l1
            choch = l1 < l3 < l4 < l2
        if not (bos or choch):
            return
        self._pattern_checked = rec3.point.index
        self._pending.append(_Pending(StructureKind.BOS if bos else StructureKind.CHOCH, rec3))
        if len(self._pending) > self.params.max_structures:
            del self._pending[0]

    def _track_levels(self, row: _BarRow, events: list[SMCEvent]) -> None:
        """Breaks (for BOS/CHoCH) of recent swings and sweeps of liquidity anchors by this bar."""
        cb = self.params.close_break
        up = row.close if cb else row.high
        down = row.close if cb else row.low
        recs: list[_SwingRec] = list(self._finals)
        if self._run is not None:
            recs.append(self._run)
        recs.extend(p.rec for p in self._pending)
        for rec in recs:
            if rec.broken_index is None:
                pt = rec.point
                if (up > pt.level) if pt.direction > 0 else (down < pt.level):
                    rec.broken_index, rec.broken_ts = row.index, row.known_ts
        self._sweep(row, events, recs)

    def _sweep(self, row: _BarRow, events: list[SMCEvent], recs: list[_SwingRec]) -> None:
        high, low = row.high, row.low
        for side in (1, -1):
            for a in self._anchors[side]:  # every anchor on this side has this direction
                if a.swept_index is None and ((high >= a.point.level + a.range) if side == 1
                                              else (low <= a.point.level - a.range)):
                    a.mark_swept(row)
                    if a.members >= 2:
                        events.append(self._swept_event(a, row))
        # swings not yet final: record the sweep for when they join the pools (an anchor among
        # them was settled just above: swept now or before, or not reached by this bar)
        for rec in recs:
            if rec.swept_index is None and self._sweeps(rec, row):
                rec.mark_swept(row)

    @staticmethod
    def _swept_event(a: _SwingRec, row: _BarRow) -> LiquiditySwept:
        assert a.swept_index is not None
        return LiquiditySwept(a.point.direction, a.point.index, a.point.ts, a.level_sum / a.members,
                              a.members, a.swept_index, a.sweep_extreme, row.index, row.known_ts)

    @staticmethod
    def _sweeps(a: _SwingRec, row: _BarRow) -> bool:
        if a.point.direction > 0:
            return row.high >= a.point.level + a.range
        return row.low <= a.point.level - a.range

    def _resolve_structures(self, row: _BarRow, events: list[SMCEvent]) -> None:
        broken = [p for p in self._pending if p.rec.broken_index is not None]
        if not broken:
            return
        # the peer keeps a structure only if no later one broke at or before it
        broken.sort(key=lambda p: p.rec.point.index, reverse=True)
        newest = broken[0].rec.point.index
        min_later = None
        emit = []
        for p in broken:
            j = p.rec.broken_index
            assert j is not None
            if min_later is None or j < min_later:
                emit.append(p)
            min_later = j if min_later is None else min(min_later, j)
        self._pending = [p for p in self._pending
                         if p.rec.broken_index is None and p.rec.point.index > newest]
        for p in reversed(emit):
            pt = p.rec.point
            assert p.rec.broken_index is not None
            events.append(StructureBreak(p.kind, pt.direction, pt.index, pt.ts, pt.level,
                                         p.rec.broken_index, p.rec.broken_ts, row.index, row.known_ts))
            self._trend = int(pt.direction)

    # --- liquidity pools ------------------------------------------------------------
    def _join_pool(self, rec: _SwingRec, row: _BarRow, events: list[SMCEvent]) -> None:
        side = int(rec.point.direction)
        anchors = self._anchors[side]
        j, level = rec.point.index, rec.point.level
        for a in anchors:
            if a.swept_index is not None and a.swept_index <= j:
                continue
            if a.point.level - a.range <= level <= a.point.level + a.range:
                a.members += 1
                a.level_sum += level
                a.end_index = j
                events.append(self._pool_event(a, row.index, row.known_ts))
                if a.members == 2 and a.swept_index is not None:
                    events.append(self._swept_event(a, row))  # swept before it was known to be a pool
                return
        anchors.append(rec)
        self._prune_anchors(anchors, j)

    def _prune_anchors(self, anchors: list[_SwingRec], newest: int) -> None:
        # a swept anchor can only gain members from swings before its sweep, and every
        # swing that will become final from now on is newer than `newest`
        anchors[:] = [a for a in anchors if a.swept_index is None or a.swept_index > newest]
        if len(anchors) > self.params.max_pools:
            del anchors[: len(anchors) - self.params.max_pools]

    @staticmethod
    def _pool_event(a: _SwingRec, known_index: int, known_ts: int) -> LiquidityPool:
        return LiquidityPool(a.point.direction, a.point.index, a.point.ts, a.level_sum / a.members,
                             a.members, a.end_index, a.swept_index, known_index, known_ts)

    # --- order blocks -----------------------------------------------------------------
    def _restart_ob_extreme(self, side: int, rec: _SwingRec) -> None:
        """A new last swing: the block candidate is the extreme bar after it, found in the buffer."""
        self._ob_crossed[side] = False
        best: tuple[float, _BarRow] | None = None
        for r in self._buf:
            if r.index <= rec.point.index:
                continue
            best = self._better_extreme(side, best, r)
        self._ob_ext[side] = best

    @staticmethod
    def _better_extreme(side: int, best: tuple[float, _BarRow] | None,
                        r: _BarRow) -> tuple[float, _BarRow]:
        # bullish blocks take the lowest low (last on ties), bearish the highest high
        if side == 1:
            return (r.low, r) if best is None or r.low <= best[0] else best
        return (r.high, r) if best is None or r.high >= best[0] else best

    def _advance_ob_extremes(self, row: _BarRow) -> None:
        for side in (1, -1):
            if not self._ob_crossed[side]:
                self._ob_ext[side] = self._better_extreme(side, self._ob_ext[side], row)

    def _cross_for_obs(self, row: _BarRow, events: list[SMCEvent]) -> None:
        for side, swing in ((1, self._last_high), (-1, self._last_low)):
            if swing is None or self._ob_crossed[side]:
                continue
            crossed = row.close > swing.point.level if side == 1 else row.close < swing.point.level
            ext = self._ob_ext[side]
            if not crossed or ext is None:
                continue
            self._ob_crossed[side] = True
            blk = ext[1]
            vols = list(self._vols)
            v1 = vols[-1] if vols else 0.0
            v2 = vols[-2] if len(vols) >= 2 else 0.0
            recent, older = row.volume + v1, v2
            hi_v, lo_v = (recent, older) if side == 1 else (older, recent)
            mx = max(hi_v, lo_v)
            pct = min(hi_v, lo_v) / mx * 100.0 if mx != 0 else 100.0
            block = OrderBlock(Direction(side), blk.index, blk.ts, blk.high, blk.low,
                               row.volume + v1 + v2, pct, swing.point.index, row.index, row.known_ts)
            obs = self._obs[side]
            obs.append(_OBRec(block))
            if len(obs) > self.params.max_order_blocks:
                del obs[0]
            events.append(block)

    def _mitigate_obs(self, row: _BarRow, events: list[SMCEvent]) -> None:
        cm = self.params.close_mitigation
        for side in (1, -1):
            obs = self._obs[side]
            if not obs:
                continue
            # a block is mitigated when `probe` passes its near side, then invalidated when `far` passes its far side
            if side == 1:
                probe, far = (min(row.open, row.close) if cm else row.low), row.high
            else:
                probe, far = (max(row.open, row.close) if cm else row.high), row.low
            keep: list[_OBRec] | None = None  # made only once a block goes: most bars change nothing
            for i, rec in enumerate(obs):
                b = rec.block
                if rec.breaker:
                    if (far > b.top) if side == 1 else (far < b.bottom):
                        events.append(OrderBlockInvalidated(b.direction, b.index, b.ts, b.top, b.bottom,
                                                            row.index, row.known_ts))
                        if keep is None:
                            keep = obs[:i]
                        continue
                elif (probe < b.bottom) if side == 1 else (probe > b.top):
                    rec.breaker = True
                    events.append(OrderBlockMitigated(b.direction, b.index, b.ts, b.top, b.bottom,
                                                      row.index, row.known_ts))
                if keep is not None:
                    keep.append(rec)
            if keep is not None:
                self._obs[side] = keep
