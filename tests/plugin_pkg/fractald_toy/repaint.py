"""toy_repaint: a deliberately broken strategy that backdates its signals (repaints).

Every 10th bar it emits a setup stamped with the time of the bar 9 bars
earlier, as an indicator that is "confirmed" late but drawn early would.
`fractald lookahead-check` must catch it.
"""

from __future__ import annotations

import collections

import attrs

from fractald.strategy_api import BarContext, Setup, Side, Strategy, StrategyParams


@attrs.frozen(slots=True)
class RepaintParams(StrategyParams):
    min_confidence: float = 0.0


class Repaint(Strategy):
    name = "toy_repaint"
    params_type = RepaintParams

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._times: collections.deque[int] = collections.deque(maxlen=10)

    def detect(self, ctx: BarContext) -> tuple[Setup, ...]:
        self._times.append(ctx.bar.ts_event)
        if ctx.index % 10 or len(self._times) < 10:
            return ()
        setup = self.make_setup(ctx, Side.BUY, ctx.bar.low, ())
        return (attrs.evolve(setup, ts_event=self._times[0]),) if setup is not None else ()
