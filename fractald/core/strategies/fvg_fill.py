"""fvg_fill: price returns into an unmitigated fair value gap in the direction of structure.

A gap left by a displacement move is where price often rebalances before
continuing. When the trend on this timeframe (the last BOS/CHoCH) points the
gap's way and a bar trades back into the gap (the live detector's
mitigation) but closes without going through it, enter at that close with
the stop beyond the gap's far side; a later close beyond that side
invalidates the trade.
"""

from __future__ import annotations

import attrs

from fractald.core.models import Side
from fractald.core.smc._live_validate import float_in, int_in
from fractald.core.smc.live import FVGMitigated
from fractald.core.strategies.base import BarContext, Setup, Strategy, StrategyParams, describe


@attrs.frozen(slots=True)
class FVGFillParams(StrategyParams):
    min_gap_atr: float = attrs.field(default=0.15, validator=float_in(0.0, 20.0))
    max_gap_age_bars: int = attrs.field(default=48, validator=int_in(1, 100_000))
    require_trend: bool = True


class FVGFill(Strategy):
    name = "fvg_fill"
    params_type = FVGFillParams
    params: FVGFillParams

    def detect(self, ctx: BarContext) -> tuple[Setup, ...]:
        atr, bar, p = ctx.atr, ctx.bar, self.params
        if atr is None or not bar.complete:
            return ()
        best: Setup | None = None
        for e in ctx.events:
            if not isinstance(e, FVGMitigated):
                continue
            side = Side.BUY if int(e.direction) == 1 else Side.SELL
            if p.require_trend and ctx.smc.trend != side.sign:
                continue
            if ctx.index - e.index > p.max_gap_age_bars or (e.top - e.bottom) < p.min_gap_atr * atr:
                continue
            far = e.bottom if side is Side.BUY else e.top
            if (bar.close - far) * side.sign <= 0:
                continue  # closed through the gap: it failed
            stop = min(far, bar.low) if side is Side.BUY else max(far, bar.high)
            s = self.make_setup(
                ctx,
                side,
                stop,
                (describe(e, "fair_value_gap"),),
                invalidation=far,
                gap_atr=(e.top - e.bottom) / atr,
            )
            if s is not None and (best is None or e.index > best.reasons[0]["index"]):
                best = s
        return (best,) if best else ()
