"""Swings and BOS/CHoCH for `LiveSMC` (swings feed the pools and the order blocks)."""

from __future__ import annotations

from operator import attrgetter

from fractald.core.smc._live_events import (
    Direction,
    SMCEvent,
    StructureBreak,
    StructureKind,
    SwingPoint,
)
from fractald.core.smc._live_liquidity import _LiquidityPools
from fractald.core.smc._live_orderblocks import _OrderBlocks
from fractald.core.smc._live_state import _BarRow, _Pending, _SwingRec

_HIGH, _LOW = attrgetter("high"), attrgetter("low")


class _SwingsAndStructure(_LiquidityPools, _OrderBlocks):
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
            point = SwingPoint(
                Direction(side),
                cand.index,
                cand.ts,
                level,
                row.index,
                row.known_ts,
                supersedes=run.point.index,
            )
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

    def _scan_sweep_since(self, rec: _SwingRec) -> None:
        """Bars between the swing and its confirmation may already reach level +- range."""
        side, level = int(rec.point.direction), rec.point.level
        for r in self._buf:
            if r.index <= rec.point.index:
                continue
            if (side == 1 and r.high >= level + rec.range) or (
                side == -1 and r.low <= level - rec.range
            ):
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
        self._pending = [
            p for p in self._pending if p.rec.broken_index is None and p.rec.point.index > newest
        ]
        for p in reversed(emit):
            pt = p.rec.point
            assert p.rec.broken_index is not None
            events.append(
                StructureBreak(
                    p.kind,
                    pt.direction,
                    pt.index,
                    pt.ts,
                    pt.level,
                    p.rec.broken_index,
                    p.rec.broken_ts,
                    row.index,
                    row.known_ts,
                )
            )
            self._trend = int(pt.direction)
