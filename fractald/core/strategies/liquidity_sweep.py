"""liquidity_sweep: a stop hunt through a liquidity pool that closes back inside, traded on the reversal.

Liquidity is resting stops: a pool of equal swing highs (or lows) from the
live detector and, optionally, the previous period's high/low. When a bar
trades through it and *closes back inside* (on the same bar, or within
`reclaim_bars` bars), the stops have been taken and the move failed: sell
after highs are swept, buy after lows are swept. Entry at that close, stop
beyond the sweep's extreme plus a buffer.
"""

from __future__ import annotations

from typing import Any

import attrs

from fractald.core.models import Side
from fractald.core.smc._live_validate import float_in, int_in
from fractald.core.smc.live import LiquiditySwept, PreviousLevelBroken
from fractald.core.strategies.base import BarContext, Setup, Strategy, StrategyParams, describe


@attrs.frozen(slots=True)
class LiquiditySweepParams(StrategyParams):
    reclaim_bars: int = attrs.field(default=2, validator=int_in(0, 50))
    use_previous_levels: bool = True
    max_depth_atr: float = attrs.field(default=3.0, validator=float_in(0.0, 50.0))


class _Hunt:
    """A sweep still waiting for its close back inside."""

    __slots__ = ("expires", "extreme", "level", "reason", "side")

    def __init__(
        self, side: Side, level: float, extreme: float, expires: int, reason: dict[str, Any]
    ) -> None:
        self.side = side
        self.level = level
        self.extreme = extreme
        self.expires = expires
        self.reason = reason


class LiquiditySweep(Strategy):
    name = "liquidity_sweep"
    params_type = LiquiditySweepParams
    params: LiquiditySweepParams

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._hunts: list[_Hunt] = []

    def detect(self, ctx: BarContext) -> tuple[Setup, ...]:
        bar, p = ctx.bar, self.params
        for e in ctx.events:
            if isinstance(e, LiquiditySwept) or (
                p.use_previous_levels and isinstance(e, PreviousLevelBroken)
            ):
                side = Side.SELL if int(e.direction) == 1 else Side.BUY
                extreme = bar.high if side is Side.SELL else bar.low
                if isinstance(e, LiquiditySwept):
                    if ctx.index - e.swept_index > p.reclaim_bars:
                        continue  # learnt of too late to call it a fresh hunt
                    extreme = (
                        max(extreme, e.extreme) if side is Side.SELL else min(extreme, e.extreme)
                    )
                kind = "liquidity_pool" if isinstance(e, LiquiditySwept) else "previous_level"
                self._hunts.append(
                    _Hunt(side, e.level, extreme, ctx.index + p.reclaim_bars, describe(e, kind))
                )
        if not self._hunts or not bar.complete:
            self._hunts = [h for h in self._hunts if h.expires > ctx.index]
            return ()
        setups: list[Setup] = []
        keep: list[_Hunt] = []
        for h in self._hunts:
            sign = h.side.sign
            h.extreme = max(h.extreme, bar.high) if sign < 0 else min(h.extreme, bar.low)
            if (bar.close - h.level) * sign > 0:  # closed back inside the range
                s = self._setup(ctx, h)
                if s is not None:
                    setups.append(s)
            elif h.expires > ctx.index:
                keep.append(h)
        self._hunts = keep[-8:]
        return tuple(setups[-1:])  # one entry per bar: the latest hunt

    def _setup(self, ctx: BarContext, h: _Hunt) -> Setup | None:
        atr = ctx.atr
        if not atr:
            return None
        depth = abs(h.extreme - h.level) / atr
        if depth > self.params.max_depth_atr:
            return None  # pushed far through: a breakout, not a hunt
        reasons = (
            h.reason,
            {"role": "sweep_extreme", "level": h.extreme, "ts": ctx.bar.ts_open},
        )
        return self.make_setup(ctx, h.side, h.extreme, reasons, sweep_depth_atr=depth)
