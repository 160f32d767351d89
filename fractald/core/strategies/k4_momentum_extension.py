"""k4_momentum_extension: join a displacement bar in the direction of structure.

Rules. A displacement bar has a range of at least `min_range_atr` ATRs, a
body of at least `min_body_fraction` of its range, closes in the outer
`close_in_top` of its range, and trades at least `min_volume_ratio` times
the average volume. When its direction agrees with this timeframe's trend
(the last BOS/CHoCH) or `require_trend` is off, enter at its close; the stop
sits at the bar's midpoint (or `stop_ticks`), and a close back beyond the
bar's open invalidates the move.
"""

from __future__ import annotations

import attrs

from fractald.core.models import Side
from fractald.core.smc._live_validate import float_in
from fractald.core.strategies._k_common import KParams, KTemplate
from fractald.core.strategies.base import BarContext, Setup


@attrs.frozen(slots=True)
class MomentumExtensionParams(KParams):
    min_range_atr: float = attrs.field(default=1.8, validator=float_in(0.1, 50.0))
    min_body_fraction: float = attrs.field(default=0.6, validator=float_in(0.0, 1.0))
    close_in_top: float = attrs.field(default=0.25, validator=float_in(0.01, 1.0))
    min_volume_ratio: float = attrs.field(default=1.5, validator=float_in(0.0, 100.0))
    require_trend: bool = True


class MomentumExtension(KTemplate):
    name = "k4_momentum_extension"
    params_type = MomentumExtensionParams
    params: MomentumExtensionParams

    def detect(self, ctx: BarContext) -> tuple[Setup, ...]:
        bar, p, atr = ctx.bar, self.params, ctx.atr
        rng = bar.high - bar.low
        if atr is None or rng <= 0 or not bar.complete or not self.entry_window_open(bar.ts_event):
            return ()
        body = bar.close - bar.open
        side = Side.BUY if body > 0 else Side.SELL
        outer = (bar.high - bar.close) if side is Side.BUY else (bar.close - bar.low)
        volume_ok = (
            ctx.volume_mean is not None
            and ctx.volume_mean > 0
            and bar.volume >= p.min_volume_ratio * ctx.volume_mean
        )
        if (
            rng < p.min_range_atr * atr
            or abs(body) < p.min_body_fraction * rng
            or outer > p.close_in_top * rng
            or not volume_ok
        ):
            return ()
        if p.require_trend and ctx.smc.trend != side.sign:
            return ()
        reason = {
            "role": "displacement",
            "structure": "MomentumBar",
            "range_atr": rng / atr,
            "volume_ratio": bar.volume / ctx.volume_mean if ctx.volume_mean else None,
        }
        setup = self.k_setup(ctx, side, (bar.high + bar.low) / 2, (reason,), invalidation=bar.open)
        return (setup,) if setup is not None else ()
