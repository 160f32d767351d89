"""Continuous futures series for backtests: contracts stitched at their rolls, back-adjusted.

Each contract trades until `roll_days` before its expiry; from the first bar
at or after that roll time the next contract takes over. Back-adjustment
(difference method) shifts every earlier bar by the price gap between the
two contracts at the roll, so the series has no artificial jump and its
latest prices are the real ones; P&L of a backtest on it is the P&L of
holding the front month and rolling. Pure: bars in, bars out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import attrs

from fractald.core.models import Bar


@attrs.frozen(slots=True)
class ContractBars:
    expiry: str  # YYYYMMDD
    bars: Sequence[Bar]  # this contract's bars, in time order


@attrs.frozen(slots=True)
class Roll:
    ts: int  # first bar of the new contract in the series
    from_expiry: str
    to_expiry: str
    gap: float  # new contract's close minus the old one's at the roll bar


def roll_time(expiry: str, roll_days: int) -> int:
    day = datetime.strptime(expiry, "%Y%m%d").replace(tzinfo=UTC) - timedelta(days=roll_days)
    return int(day.timestamp() * 1000)


def back_adjusted(
    contracts: Sequence[ContractBars], roll_days: int, symbol: str
) -> tuple[list[Bar], list[Roll]]:
    """The continuous series (renamed `symbol`) and its rolls, oldest contract first."""
    chain = sorted(contracts, key=lambda c: c.expiry)
    if not chain:
        raise ValueError("no contracts to stitch")
    pieces: list[list[Bar]] = []
    rolls: list[Roll] = []
    start = -(2**62)
    for current, nxt in zip(chain, [*chain[1:], None], strict=True):
        end = roll_time(current.expiry, roll_days) if nxt is not None else 2**62
        own = [b for b in current.bars if start <= b.ts_open < end]
        if nxt is not None:
            later = {b.ts_open: b for b in nxt.bars if b.ts_open >= end}
            first = min(later) if later else None
            if first is None:
                raise ValueError(
                    f"contract {nxt.expiry} has no bars from its roll on; cannot stitch"
                )
            before = [b for b in current.bars if b.ts_open < first]
            if not before:
                raise ValueError(
                    f"contract {current.expiry} has no bar before the roll to {nxt.expiry}"
                )
            ref = {b.ts_open: b for b in nxt.bars}
            old_close = before[-1].close
            new_close = (
                ref[before[-1].ts_open].close if before[-1].ts_open in ref else later[first].open
            )
            rolls.append(Roll(first, current.expiry, nxt.expiry, new_close - old_close))
            start = first
        pieces.append(own)
    out: list[Bar] = []
    for i, piece in enumerate(pieces):
        shift = sum(r.gap for r in rolls[i:])
        out += [
            attrs.evolve(
                b,
                symbol=symbol,
                open=b.open + shift,
                high=b.high + shift,
                low=b.low + shift,
                close=b.close + shift,
            )
            for b in piece
        ]
    return out, rolls


@attrs.frozen(slots=True)
class ContractRolled:
    """A live feed moved `symbol` to the next contract month; bars from `ts_ms` on are the new one's.

    `offset` is the new month's price minus the old one's at the roll. Whoever kept
    the bars before `ts_ms` (stored candles, detection state built on them) adds it to
    their prices: the series is then back-adjusted exactly as `back_adjusted` makes it
    for backtests, and the step between the months is no move of the market.
    """

    symbol: str
    ts_ms: int
    old: str  # the contracts' local symbols, for the log (MESZ6 -> MESH7)
    new: str
    offset: float = attrs.field(validator=attrs.validators.instance_of(float))
    measured: bool = True  # False: estimated from the new month's first bar (no quote of both)

    def __attrs_post_init__(self) -> None:
        if not math.isfinite(self.offset):
            raise ValueError(f"a roll's offset must be a finite price step, got {self.offset!r}")


def shifted(bar: Bar, offset: float) -> Bar:
    """`bar` with every price moved by `offset` (volume and times unchanged)."""
    return attrs.evolve(
        bar,
        open=bar.open + offset,
        high=bar.high + offset,
        low=bar.low + offset,
        close=bar.close + offset,
    )
