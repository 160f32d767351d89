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

# Layout: events and params in _live_events, the shared state and its records in _live_state,
# one mixin per concept in _live_swings / _live_liquidity / _live_orderblocks / _live_fvg /
# _live_previous. Every picklable class keeps __module__ == this module, and is re-exported
# here, so pickled LiveSMC snapshots keep loading.

from __future__ import annotations

from fractald.core.models import Bar
from fractald.core.smc._live_events import (
    Direction,
    FairValueGap,
    FVGMitigated,
    LiquidityPool,
    LiquiditySwept,
    LiveSMCParams,
    OrderBlock,
    OrderBlockInvalidated,
    OrderBlockMitigated,
    PreviousLevelBroken,
    SMCEvent,
    StructureBreak,
    StructureKind,
    SwingPoint,
    Zone,
)
from fractald.core.smc._live_fvg import _FairValueGaps
from fractald.core.smc._live_previous import _PreviousLevels
from fractald.core.smc._live_state import _BarRow, _OBRec, _Pending, _SwingRec
from fractald.core.smc._live_swings import _SwingsAndStructure

__all__ = [
    "Direction",
    "FVGMitigated",
    "FairValueGap",
    "LiquidityPool",
    "LiquiditySwept",
    "LiveSMC",
    "LiveSMCParams",
    "OrderBlock",
    "OrderBlockInvalidated",
    "OrderBlockMitigated",
    "PreviousLevelBroken",
    "SMCEvent",
    "StructureBreak",
    "StructureKind",
    "SwingPoint",
    "Zone",
    "_BarRow",
    "_OBRec",
    "_Pending",
    "_SwingRec",
]


class LiveSMC(_SwingsAndStructure, _FairValueGaps, _PreviousLevels):
    """All live detectors for one (symbol, timeframe) stream of closed bars."""

    def __init__(self, params: LiveSMCParams | None = None) -> None:
        super().__init__(params)

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
                f"LiveSMC is for {self._symbol} {self._timeframe}, got a {bar.symbol} {bar.timeframe} bar"
            )
        if bar.ts_open <= self._last_ts:
            raise ValueError(
                f"bars must arrive in time order: ts_open {bar.ts_open} after {self._last_ts}"
            )
        self._last_ts = bar.ts_open

    def _update_atr(self, row: _BarRow) -> None:
        pc = self._prev_close
        tr = (
            row.high - row.low
            if pc is None
            else max(row.high - row.low, abs(row.high - pc), abs(row.low - pc))
        )
        n = self.params.atr_length
        if self._atr is None:
            self._tr_sum += tr
            self._tr_count += 1
            if self._tr_count == n:
                self._atr = self._tr_sum / n
        else:
            self._atr = (self._atr * (n - 1) + tr) / n
