"""k1_vwap_reversion: fade a stretch beyond the session VWAP's band once the bar turns back.

Rules. The session VWAP and its volume-weighted standard deviation are built
from each bar's typical price (h+l+c)/3 since the session opened. After at
least `min_session_bars` bars, when a bar has traded beyond VWAP -/+ `band_k`
sigma and *closes back toward VWAP* (a bullish bar below the lower band, a
bearish one above the upper), enter at the close. Stop beyond the bar's
extreme (or `stop_ticks`); the first target is VWAP itself, expressed in R
as the template's own target; a close beyond `invalidate_k` sigma ends it.
"""

from __future__ import annotations

import math

import attrs

from fractald.core.models import Side
from fractald.core.smc._live_validate import float_in, int_in
from fractald.core.strategies._k_common import KParams, KTemplate
from fractald.core.strategies.base import BarContext, Setup
from fractald.core.strategies.sessions import session_start


@attrs.frozen(slots=True)
class VWAPReversionParams(KParams):
    band_k: float = attrs.field(default=2.0, validator=float_in(0.1, 10.0))
    invalidate_k: float = attrs.field(default=3.5, validator=float_in(0.2, 20.0))
    min_session_bars: int = attrs.field(default=20, validator=int_in(1, 10_000))
    min_target_r: float = attrs.field(default=0.8, validator=float_in(0.0, 20.0))


class VWAPReversion(KTemplate):
    name = "k1_vwap_reversion"
    params_type = VWAPReversionParams
    params: VWAPReversionParams

    def __init__(self, *args: object, **kw: object) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self._session = -1
        self._v = self._pv = self._p2v = 0.0
        self._bars = 0

    def vwap(self) -> tuple[float, float] | None:
        """(VWAP, sigma) of the session so far; None before any volume."""
        if self._v <= 0:
            return None
        mean = self._pv / self._v
        return mean, math.sqrt(max(0.0, self._p2v / self._v - mean * mean))

    def detect(self, ctx: BarContext) -> tuple[Setup, ...]:
        bar, p = ctx.bar, self.params
        start = session_start(bar.ts_open, p.session_start_minute)
        if start != self._session:
            self._session, self._v, self._pv, self._p2v, self._bars = start, 0.0, 0.0, 0.0, 0
        before = self.vwap()  # judged against the bands as they stood before this bar
        typical = (bar.high + bar.low + bar.close) / 3
        self._v += bar.volume
        self._pv += typical * bar.volume
        self._p2v += typical * typical * bar.volume
        self._bars += 1
        if before is None or self._bars <= p.min_session_bars or not bar.complete:
            return ()
        if not self.entry_window_open(bar.ts_event):
            return ()
        vwap, sigma = before
        if sigma <= 0:
            return ()
        lower, upper = vwap - p.band_k * sigma, vwap + p.band_k * sigma
        if bar.low < lower and bar.close > bar.open and bar.close < vwap:
            side, stop, inval = Side.BUY, bar.low, vwap - p.invalidate_k * sigma
        elif bar.high > upper and bar.close < bar.open and bar.close > vwap:
            side, stop, inval = Side.SELL, bar.high, vwap + p.invalidate_k * sigma
        else:
            return ()
        reason = {
            "role": "vwap_band",
            "structure": "SessionVWAP",
            "vwap": vwap,
            "sigma": sigma,
            "band": lower if side is Side.BUY else upper,
            "session_start": self._session,
        }
        setup = self.k_setup(ctx, side, stop, (reason,), invalidation=inval)
        if setup is None or abs(vwap - setup.entry) < p.min_target_r * setup.risk:
            return ()  # not enough room back to VWAP for the risk
        return (setup,)
