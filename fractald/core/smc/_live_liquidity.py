"""Liquidity pools for `LiveSMC`: equal final swings, their sweeps and events."""

from __future__ import annotations

from fractald.core.smc._live_events import LiquidityPool, LiquiditySwept, SMCEvent
from fractald.core.smc._live_state import _BarRow, _LiveState, _SwingRec


class _LiquidityPools(_LiveState):
    def _pool_range(self) -> float:
        if self.params.liquidity_range is not None:
            return self.params.liquidity_range
        return self.params.liquidity_atr_multiple * self._atr if self._atr is not None else 0.0

    def _sweep(self, row: _BarRow, events: list[SMCEvent], recs: list[_SwingRec]) -> None:
        high, low = row.high, row.low
        for side in (1, -1):
            for a in self._anchors[side]:  # every anchor on this side has this direction
                if a.swept_index is None and (
                    (high >= a.point.level + a.range)
                    if side == 1
                    else (low <= a.point.level - a.range)
                ):
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
        return LiquiditySwept(
            a.point.direction,
            a.point.index,
            a.point.ts,
            a.level_sum / a.members,
            a.members,
            a.swept_index,
            a.sweep_extreme,
            row.index,
            row.known_ts,
        )

    @staticmethod
    def _sweeps(a: _SwingRec, row: _BarRow) -> bool:
        if a.point.direction > 0:
            return row.high >= a.point.level + a.range
        return row.low <= a.point.level - a.range

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
                    events.append(
                        self._swept_event(a, row)
                    )  # swept before it was known to be a pool
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
        return LiquidityPool(
            a.point.direction,
            a.point.index,
            a.point.ts,
            a.level_sum / a.members,
            a.members,
            a.end_index,
            a.swept_index,
            known_index,
            known_ts,
        )
