"""k2_failed_break: in a range-bound market, fade a break of the range that closes back inside.

Rules. The range is the high and low of the last `range_bars` bars before
this one. The market is range-bound when that range is at most
`max_range_atr` ATRs and the efficiency ratio over the same bars (net move
over the sum of moves) is at most `max_efficiency`. A bar that trades beyond
the range by at least `min_poke_atr` ATR and closes back inside has failed
to break: sell a failed break up, buy a failed break down, at the close, stop
beyond the poke's extreme (or `stop_ticks`); a later close beyond that
extreme invalidates the trade.
"""

from __future__ import annotations

import collections
import itertools

import attrs

from fractald.core.models import Side
from fractald.core.smc._live_validate import float_in, int_in
from fractald.core.strategies._k_common import KParams, KTemplate
from fractald.core.strategies.base import BarContext, Setup


@attrs.frozen(slots=True)
class FailedBreakParams(KParams):
    range_bars: int = attrs.field(default=30, validator=int_in(3, 2000))
    max_range_atr: float = attrs.field(default=6.0, validator=float_in(0.5, 100.0))
    max_efficiency: float = attrs.field(default=0.3, validator=float_in(0.0, 1.0))
    min_poke_atr: float = attrs.field(default=0.1, validator=float_in(0.0, 10.0))


def efficiency_ratio(closes: collections.deque[float] | list[float]) -> float:
    """|last - first| / sum |steps|: 1 for a straight line, near 0 for chop (Kaufman)."""
    xs = list(closes)
    travel = sum(abs(b - a) for a, b in itertools.pairwise(xs))
    return abs(xs[-1] - xs[0]) / travel if travel > 0 else 0.0


class FailedBreak(KTemplate):
    name = "k2_failed_break"
    params_type = FailedBreakParams
    params: FailedBreakParams

    def __init__(self, *args: object, **kw: object) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        n = self.params.range_bars
        self._highs: collections.deque[float] = collections.deque(maxlen=n)
        self._lows: collections.deque[float] = collections.deque(maxlen=n)
        self._closes: collections.deque[float] = collections.deque(maxlen=n)

    def detect(self, ctx: BarContext) -> tuple[Setup, ...]:
        bar, p = ctx.bar, self.params
        full = len(self._highs) == p.range_bars
        hi, lo = (max(self._highs), min(self._lows)) if full else (0.0, 0.0)
        ranging = (
            full
            and ctx.atr is not None
            and (hi - lo) <= p.max_range_atr * ctx.atr
            and efficiency_ratio(self._closes) <= p.max_efficiency
        )
        self._highs.append(bar.high)
        self._lows.append(bar.low)
        self._closes.append(bar.close)
        if not ranging or not bar.complete or not self.entry_window_open(bar.ts_event):
            return ()
        assert ctx.atr is not None
        poke = p.min_poke_atr * ctx.atr
        if bar.high > hi + poke and lo < bar.close < hi:
            side, stop = Side.SELL, bar.high
        elif bar.low < lo - poke and lo < bar.close < hi:
            side, stop = Side.BUY, bar.low
        else:
            return ()
        reason = {
            "role": "failed_break",
            "structure": "Range",
            "range_high": hi,
            "range_low": lo,
            "efficiency": efficiency_ratio(list(self._closes)[:-1])
            if len(self._closes) > 2
            else 0.0,
        }
        setup = self.k_setup(ctx, side, stop, (reason,), invalidation=stop)
        return (setup,) if setup is not None else ()
