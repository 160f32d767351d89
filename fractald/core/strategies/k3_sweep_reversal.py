"""k3_sweep_reversal: the liquidity_sweep hunt, as a session template with a tick-sized stop.

Rules. The live SMC liquidity detectors find pools of equal highs/lows and
the previous period's high/low; a bar that trades through one and closes back
inside (on that bar or within `reclaim_bars`) has swept the stops resting
there: trade the reversal at that close (sell after highs are swept, buy
after lows), only inside the session's entry window, stop beyond the sweep's
extreme or `stop_ticks` from entry. The hunting itself is
`fractald.core.strategies.liquidity_sweep`'s: one detector, two templates.
"""

from __future__ import annotations

import attrs

from fractald.core.smc._live_validate import float_in, int_in
from fractald.core.strategies._k_common import KParams, KTemplate
from fractald.core.strategies.base import BarContext, Setup
from fractald.core.strategies.liquidity_sweep import LiquiditySweep


@attrs.frozen(slots=True)
class SweepReversalParams(KParams):
    reclaim_bars: int = attrs.field(default=2, validator=int_in(0, 50))
    use_previous_levels: bool = True
    max_depth_atr: float = attrs.field(default=3.0, validator=float_in(0.0, 50.0))


class SweepReversal(KTemplate, LiquiditySweep):
    name = "k3_sweep_reversal"
    params_type = SweepReversalParams  # type: ignore[assignment]
    params: SweepReversalParams  # type: ignore[assignment]

    def detect(self, ctx: BarContext) -> tuple[Setup, ...]:
        setups = LiquiditySweep.detect(self, ctx)  # keeps hunting outside the window too
        if not setups or not self.entry_window_open(ctx.bar.ts_event):
            return ()
        if not self.params.stop_ticks:
            return setups
        s = setups[0]
        return tuple(
            x
            for x in (self.k_setup(ctx, s.side, s.stop, s.reasons, invalidation=s.invalidation),)
            if x is not None
        )
