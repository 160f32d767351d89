"""Order blocks for `LiveSMC`: the extreme bar since the last swing, crossing, mitigation."""

from __future__ import annotations

from fractald.core.smc._live_events import (
    Direction,
    OrderBlock,
    OrderBlockInvalidated,
    OrderBlockMitigated,
    SMCEvent,
)
from fractald.core.smc._live_state import _BarRow, _LiveState, _OBRec, _SwingRec


class _OrderBlocks(_LiveState):
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
    def _better_extreme(
        side: int, best: tuple[float, _BarRow] | None, r: _BarRow
    ) -> tuple[float, _BarRow]:
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
            block = OrderBlock(
                Direction(side),
                blk.index,
                blk.ts,
                blk.high,
                blk.low,
                row.volume + v1 + v2,
                pct,
                swing.point.index,
                row.index,
                row.known_ts,
            )
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
            keep: list[_OBRec] | None = (
                None  # made only once a block goes: most bars change nothing
            )
            for i, rec in enumerate(obs):
                b = rec.block
                if rec.breaker:
                    if (far > b.top) if side == 1 else (far < b.bottom):
                        events.append(
                            OrderBlockInvalidated(
                                b.direction, b.index, b.ts, b.top, b.bottom, row.index, row.known_ts
                            )
                        )
                        if keep is None:
                            keep = obs[:i]
                        continue
                elif (probe < b.bottom) if side == 1 else (probe > b.top):
                    rec.breaker = True
                    events.append(
                        OrderBlockMitigated(
                            b.direction, b.index, b.ts, b.top, b.bottom, row.index, row.known_ts
                        )
                    )
                if keep is not None:
                    keep.append(rec)
            if keep is not None:
                self._obs[side] = keep
