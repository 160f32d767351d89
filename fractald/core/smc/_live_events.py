"""Enums, parameters and event classes of the live SMC detectors (public home: `live`)."""

from __future__ import annotations

import enum

import attrs

from fractald.core.smc._live_validate import float_in, int_in, known_timeframe


class Direction(enum.IntEnum):
    """Bullish (+1: swing high, bullish gap/block/break, pool above) or bearish (-1)."""

    BULLISH = 1
    BEARISH = -1


class StructureKind(enum.Enum):
    BOS = "BOS"
    CHOCH = "CHOCH"


@attrs.frozen(slots=True)
class LiveSMCParams:
    """Tuning of the live detectors; a bad value names the parameter and its allowed range."""

    swing_length: int = attrs.field(default=5, validator=int_in(1, 500))
    close_break: bool = True
    close_mitigation: bool = False
    liquidity_range: float | None = attrs.field(
        default=None, validator=float_in(0.0, 1e12, optional=True)
    )
    liquidity_atr_multiple: float = attrs.field(default=0.25, validator=float_in(0.0, 100.0))
    atr_length: int = attrs.field(default=14, validator=int_in(1, 1000))
    previous_timeframe: str = attrs.field(default="1d", validator=known_timeframe)
    max_fvgs: int = attrs.field(default=50, validator=int_in(1, 100_000))
    max_order_blocks: int = attrs.field(default=50, validator=int_in(1, 100_000))
    max_pools: int = attrs.field(default=50, validator=int_in(1, 100_000))
    max_structures: int = attrs.field(default=20, validator=int_in(1, 100_000))


# --- events -----------------------------------------------------------------


@attrs.frozen(slots=True)
class SwingPoint:
    """A swing high (+1) or low (-1): the run's extreme so far when reported."""

    direction: Direction
    index: int
    ts: int
    level: float
    known_index: int
    known_ts: int
    supersedes: int | None = None


@attrs.frozen(slots=True)
class Zone:
    """A price zone (gap or block) between `bottom` and `top` made at bar `index`."""

    direction: Direction
    index: int
    ts: int
    top: float
    bottom: float
    known_index: int
    known_ts: int


@attrs.frozen(slots=True)
class FairValueGap(Zone):
    """`index` is the middle bar of the three; known when the third closes."""


@attrs.frozen(slots=True)
class FVGMitigated(Zone):
    """`index` is the gap's middle bar; `known_index` the mitigating bar."""


@attrs.frozen(slots=True)
class StructureBreak:
    """A BOS or CHoCH at the swing whose level was broken."""

    kind: StructureKind
    direction: Direction
    index: int  # the broken swing
    ts: int
    level: float
    broken_index: int
    broken_ts: int
    known_index: int
    known_ts: int


@attrs.frozen(slots=True)
class OrderBlock:
    direction: Direction
    index: int  # the block's bar
    ts: int
    top: float
    bottom: float
    volume: float
    percentage: float
    swing_index: int  # the swing whose crossing created it
    known_index: int  # the crossing bar
    known_ts: int


@attrs.frozen(slots=True)
class OrderBlockMitigated(Zone):
    """Price traded through the block (it becomes a breaker)."""


@attrs.frozen(slots=True)
class OrderBlockInvalidated(Zone):
    """After mitigation, price went back beyond the block's far side."""


@attrs.frozen(slots=True)
class LiquidityPool:
    """Equal highs (+1, resting buy stops) or lows (-1); reported on forming and on every new member."""

    direction: Direction
    index: int  # the anchor swing
    ts: int
    level: float
    members: int
    end_index: int
    swept_index: int | None
    known_index: int
    known_ts: int


@attrs.frozen(slots=True)
class LiquiditySwept:
    """A pool's anchor level + range was traded through at bar `swept_index`.

    Usually known at that bar; when the pool itself only forms later (its second
    swing becomes final after the sweep), it is reported when the pool forms.
    `extreme` is the sweeping bar's high (pool of highs) or low (pool of lows).
    """

    direction: Direction
    index: int  # the pool's anchor swing
    ts: int
    level: float
    members: int
    swept_index: int
    extreme: float
    known_index: int
    known_ts: int


@attrs.frozen(slots=True)
class PreviousLevelBroken:
    """The current period traded above (+1) the previous period's high or below (-1) its low."""

    direction: Direction
    level: float
    period_ts: int  # open time of the period whose level was broken
    known_index: int
    known_ts: int


SMCEvent = (
    SwingPoint
    | FairValueGap
    | FVGMitigated
    | StructureBreak
    | OrderBlock
    | OrderBlockMitigated
    | OrderBlockInvalidated
    | LiquidityPool
    | LiquiditySwept
    | PreviousLevelBroken
)


# Pickles of LiveSMC (daemon snapshots) name these classes by their public home.
for _cls in (
    Direction,
    StructureKind,
    LiveSMCParams,
    SwingPoint,
    Zone,
    FairValueGap,
    FVGMitigated,
    StructureBreak,
    OrderBlock,
    OrderBlockMitigated,
    OrderBlockInvalidated,
    LiquidityPool,
    LiquiditySwept,
    PreviousLevelBroken,
):
    _cls.__module__ = "fractald.core.smc.live"
