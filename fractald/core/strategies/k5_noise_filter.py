"""k5_noise_filter: a meta-strategy that trades nothing and vetoes the others' entries in noise.

Rules. Over the last `window` bars of its timeframe it measures noise as
1 - efficiency ratio (Kaufman: net move over the sum of moves; 0 for a
straight line, 1 for pure chop). While noise is above `max_noise`, or the
bar's ATR is over `max_atr_ratio` times its slow average (a volatility
spike), every other strategy's signal on this symbol is refused with the
skip code NOISE_VETO and the figures that caused it. Fewer than `window`
bars seen: no veto (nothing is known yet).
"""

from __future__ import annotations

import collections

import attrs

from fractald.core.models import Signal
from fractald.core.smc._live_validate import float_in, int_in
from fractald.core.strategies._k_common import KParams, KTemplate
from fractald.core.strategies.base import BarContext, Setup
from fractald.core.strategies.k2_failed_break import efficiency_ratio


@attrs.frozen(slots=True)
class NoiseFilterParams(KParams):
    window: int = attrs.field(default=20, validator=int_in(3, 2000))
    max_noise: float = attrs.field(default=0.85, validator=float_in(0.0, 1.0))
    max_atr_ratio: float = attrs.field(default=2.5, validator=float_in(0.5, 100.0))


class NoiseFilter(KTemplate):
    name = "k5_noise_filter"
    params_type = NoiseFilterParams
    params: NoiseFilterParams

    def __init__(self, *args: object, **kw: object) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self._closes: collections.deque[float] = collections.deque(maxlen=self.params.window + 1)
        self.noise: float | None = None
        self.atr_ratio: float | None = None

    def detect(self, ctx: BarContext) -> tuple[Setup, ...]:
        self._closes.append(ctx.bar.close)
        if len(self._closes) > self.params.window:
            self.noise = 1.0 - efficiency_ratio(self._closes)
        self.atr_ratio = ctx.atr_ratio
        return ()

    def veto(self, signal: Signal) -> str | None:
        """Why `signal` must not be entered now (None: no objection)."""
        p = self.params
        if signal.strategy == self.name:
            return None
        if self.noise is not None and self.noise > p.max_noise:
            return f"noise {self.noise:.3f} > {p.max_noise} over {p.window} bars"
        if self.atr_ratio is not None and self.atr_ratio > p.max_atr_ratio:
            return f"ATR {self.atr_ratio:.2f}x its slow average > {p.max_atr_ratio}"
        return None
