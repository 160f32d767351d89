"""Previous period high/low (UTC-aligned periods) for `LiveSMC`."""

from __future__ import annotations

from fractald.core.models import TIMEFRAME_MS
from fractald.core.smc._live_events import Direction, PreviousLevelBroken, SMCEvent
from fractald.core.smc._live_state import _BarRow, _LiveState


class _PreviousLevels(_LiveState):
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
            events.append(
                PreviousLevelBroken(
                    Direction.BULLISH,
                    self._prev_high,
                    self._prev_period_ts,
                    row.index,
                    row.known_ts,
                )
            )
        if not self._broken_low and self._period_low < self._prev_low:
            self._broken_low = True
            events.append(
                PreviousLevelBroken(
                    Direction.BEARISH, self._prev_low, self._prev_period_ts, row.index, row.known_ts
                )
            )
