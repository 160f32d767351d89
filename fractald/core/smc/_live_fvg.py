"""Fair value gaps for `LiveSMC`: detection on the third bar, mitigation afterwards."""

from __future__ import annotations

from fractald.core.smc._live_events import Direction, FairValueGap, FVGMitigated, SMCEvent
from fractald.core.smc._live_state import _BarRow, _LiveState


class _FairValueGaps(_LiveState):
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
                events.append(
                    FVGMitigated(
                        g.direction, g.index, g.ts, g.top, g.bottom, row.index, row.known_ts
                    )
                )
            self._fvgs[side] = [
                g for g in gaps if not (low <= g.top if side == 1 else high >= g.bottom)
            ]

    def _detect_fvg(self, row: _BarRow, events: list[SMCEvent]) -> None:
        if len(self._buf) < 3:
            return
        a, b, c = self._buf[-3], self._buf[-2], row
        gap: FairValueGap | None = None
        if b.close > b.open and a.high < c.low:
            gap = FairValueGap(
                Direction.BULLISH, b.index, b.ts, c.low, a.high, row.index, row.known_ts
            )
        elif b.close < b.open and a.low > c.high:
            gap = FairValueGap(
                Direction.BEARISH, b.index, b.ts, a.low, c.high, row.index, row.known_ts
            )
        if gap is not None:
            gaps = self._fvgs[int(gap.direction)]
            gaps.append(gap)
            if len(gaps) > self.params.max_fvgs:
                del gaps[0]
            events.append(gap)
