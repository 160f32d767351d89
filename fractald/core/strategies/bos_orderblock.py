"""bos_orderblock: a break of structure, then entry on the retest of the order block that caused it.

When a BOS (and, if enabled, a CHoCH) is confirmed, the order block whose
swing it broke (the last opposite candle before the displacement) is
armed. The first later bar that trades back into the block and closes
outside its far side is the retest: enter at its close, stop beyond the
block; a close beyond the block's far side invalidates the trade. A block
that is mitigated (traded through) or not retested within
`max_retest_bars` is dropped.
"""

from __future__ import annotations

from typing import Any

import attrs

from fractald.core.models import Side
from fractald.core.smc._live_validate import int_in
from fractald.core.smc.live import OrderBlock, StructureBreak, StructureKind
from fractald.core.strategies.base import BarContext, Setup, Strategy, StrategyParams, describe


@attrs.frozen(slots=True)
class BOSOrderBlockParams(StrategyParams):
    max_retest_bars: int = attrs.field(default=24, validator=int_in(1, 100_000))
    include_choch: bool = False


class _Armed:
    __slots__ = ("block", "brk", "expires")

    def __init__(self, block: OrderBlock, brk: StructureBreak, expires: int) -> None:
        self.block = block
        self.brk = brk
        self.expires = expires


class BOSOrderBlock(Strategy):
    name = "bos_orderblock"
    params_type = BOSOrderBlockParams
    params: BOSOrderBlockParams

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._armed: list[_Armed] = []

    def detect(self, ctx: BarContext) -> tuple[Setup, ...]:
        active = {(int(b.direction), b.index): b for b in ctx.smc.active_order_blocks}
        setups = self._retests(ctx, active)
        for e in ctx.events:
            if isinstance(e, StructureBreak) and (
                e.kind is StructureKind.BOS or self.params.include_choch
            ):
                block = self._block_for(e, active)
                if block is not None:
                    self._armed.append(_Armed(block, e, ctx.index + self.params.max_retest_bars))
        self._armed = self._armed[-8:]
        return setups

    @staticmethod
    def _block_for(
        brk: StructureBreak, active: dict[tuple[int, int], OrderBlock]
    ) -> OrderBlock | None:
        """The unmitigated block made by crossing the broken swing, else the newest one made after it."""
        same = [
            b
            for b in active.values()
            if b.direction == brk.direction and b.swing_index >= brk.index
        ]
        exact = [b for b in same if b.swing_index == brk.index]
        pool = exact or same
        return max(pool, key=lambda b: b.known_index) if pool else None

    def _retests(
        self, ctx: BarContext, active: dict[tuple[int, int], OrderBlock]
    ) -> tuple[Setup, ...]:
        bar = ctx.bar
        out: list[Setup] = []
        keep: list[_Armed] = []
        for a in self._armed:
            b = a.block
            if (int(b.direction), b.index) not in active or ctx.index > a.expires:
                continue  # mitigated or stale
            side = Side.BUY if b.direction == 1 else Side.SELL
            near, far = (b.top, b.bottom) if side is Side.BUY else (b.bottom, b.top)
            touched = (bar.low <= near) if side is Side.BUY else (bar.high >= near)
            if not (touched and bar.complete and (bar.close - far) * side.sign > 0):
                keep.append(a)
                continue
            vol_ratio = (b.volume / 3.0) / ctx.volume_mean if ctx.volume_mean else None
            reasons = (describe(a.brk, "structure_break"), describe(b, "order_block"))
            s = self.make_setup(
                ctx, side, far, reasons, invalidation=far, ob_volume_ratio=vol_ratio
            )
            if s is not None:
                out.append(s)
        self._armed = keep
        return tuple(out[-1:])
