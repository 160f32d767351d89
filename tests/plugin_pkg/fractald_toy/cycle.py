"""toy_cycle: buy the bar whose index is `offset` modulo `period`; nothing else.

On a series that jumps up once every `period` bars (after phase `offset`)
and drifts down otherwise, only the right offset makes money: the known best
parameter an optimiser must find.
"""

from __future__ import annotations

import attrs

from fractald.strategy_api import BarContext, Setup, Side, Strategy, StrategyParams, int_in


@attrs.frozen(slots=True)
class CycleParams(StrategyParams):
    period: int = attrs.field(default=20, validator=int_in(2, 1000))
    offset: int = attrs.field(default=0, validator=int_in(0, 999))
    min_confidence: float = 0.0


class CycleLong(Strategy):
    name = "toy_cycle"
    params_type = CycleParams
    params: CycleParams

    def detect(self, ctx: BarContext) -> tuple[Setup, ...]:
        if ctx.index % self.params.period != self.params.offset:
            return ()
        setup = self.make_setup(ctx, Side.BUY, ctx.bar.low, ())
        return (setup,) if setup is not None else ()
