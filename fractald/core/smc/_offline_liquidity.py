"""The NumPy path of offline liquidity() (`offline` keeps liquidity() and the numba switch)."""

from __future__ import annotations

import numpy as np

from fractald.core.smc._offline_scan import (
    first_reaching,
    flat_ranges,
    run_starts,
)

# Candles per piece of a stretch (see _Pools): a sweeping candle is found by scanning the
# maxima of at most (stretch length / _PIECE) pieces, then the _PIECE candles of one piece.
_PIECE = 64


class _Pools:
    """Swing highs and lows as one problem: lows are mirrored (prices negated) so that
    "a low reaches the band's bottom" reads like "a high reaches the band's top".

    Ranks index the swings, highs first, then lows; `side_end[r]` is one past the last
    rank of r's side. The stretch of swing r runs from the candle after it to the next
    swing of its side (inclusive; to the end for the last one), so a pool's sweeping
    candle lies in the first stretch whose furthest mirrored price reaches the band.
    Stretches are cut into pieces of at most _PIECE candles: `piece_start`, `piece_far`
    (furthest mirrored price of each piece), `first_piece[r]` and `pieces[r]` (how many);
    `stretch_far[r]` is the furthest price of the whole stretch (NaN when it is empty).
    """

    def __init__(
        self,
        high: np.ndarray,
        low: np.ndarray,
        highs: np.ndarray,
        lows: np.ndarray,
        level: np.ndarray,
        range_percent: float,
    ) -> None:
        n, split = len(high), len(highs)
        self.swing = np.concatenate((highs, lows))
        count = len(self.swing)
        self.bullish = np.arange(count) < split
        self.side_end = np.where(self.bullish, split, count)
        start = self.swing + 1
        stop = np.empty_like(start)
        stop[:-1] = start[1:]
        stop[self.side_end - 1] = n
        self.pieces = -(-(stop - start) // _PIECE)
        self.first_piece = np.cumsum(self.pieces) - self.pieces
        total = int(self.pieces.sum())
        step = np.arange(total) - np.repeat(self.first_piece, self.pieces)
        self.piece_start = np.repeat(start, self.pieces) + _PIECE * step
        # The pieces of one side are contiguous and run to the last candle: one pass over
        # the highs and one over the lows, each also covering the candles before the first
        # piece, give the pieces' extremes and the frame's (NaN-ignoring, like pandas).
        cut = int(self.pieces[:split].sum())
        self.piece_far = np.empty(total)
        top = _head_and_pieces(high, self.piece_start[:cut], np.fmax, self.piece_far[:cut])
        bottom = _head_and_pieces(low, self.piece_start[cut:], np.fmin, self.piece_far[cut:])
        self.piece_far[cut:] *= -1
        self.stretch_far = np.full(count, np.nan)
        filled = self.pieces > 0
        if total:
            self.stretch_far[filled] = np.fmax.reduceat(self.piece_far, self.first_piece[filled])
        band = (top - bottom) * range_percent  # the reference's band half-width
        self.level = level[self.swing]
        self.lower, self.upper = self.level - band, self.level + band
        # the band edge that sweeps the pool, mirrored: high >= upper, or -low >= -lower
        self.edge = np.where(self.bullish, self.upper, -self.lower)
        self.high, self.low = high, low


def _head_and_pieces(
    values: np.ndarray, starts: np.ndarray, reduce: np.ufunc, out: np.ndarray
) -> float:
    """Write reduce(values[starts[i] : starts[i + 1]]) (the last piece to the end) into `out`
    and return reduce over all of `values`, in one pass."""
    if len(starts) == 0:
        return reduce.reduce(values)
    if starts[0] == 0:
        out[:] = reduce.reduceat(values, starts)
        return reduce.reduce(out)
    with_head = reduce.reduceat(values, np.concatenate(([0], starts)))
    out[:] = with_head[1:]
    return reduce.reduce(with_head)


def _write_pools(out: np.ndarray, pools: _Pools) -> None:
    """Group swings into pools (see liquidity()) and write them into `out` (4 rows)."""
    count = len(pools.swing)
    rank = np.arange(count)
    sweep_stretch = first_reaching(pools.stretch_far, pools.edge)
    swept = (sweep_stretch >= 0) & (sweep_stretch < pools.side_end)
    # later swings of the same side that come before the sweeping candle
    last = np.where(swept, sweep_stretch + 1, pools.side_end)
    members, _ = flat_ranges(rank + 1, last)
    leads = np.repeat(rank, last - rank - 1)
    own = pools.level[members]
    near = (pools.lower[leads] <= own) & (own <= pools.upper[leads])
    lead, member = leads[near], members[near]
    free = _resolve_free(count, lead, member)
    # each taken swing belongs to its earliest free claimant; pairs run by lead, then member
    by_free = free[lead]
    lead, member = lead[by_free], member[by_free]
    if len(lead) == 0:
        return
    earliest = np.full(count, count)
    np.minimum.at(earliest, member, lead)
    keep = lead == earliest[member]
    lead, member = lead[keep], member[keep]
    new_pool = run_starts(lead)
    first = np.flatnonzero(new_pool)
    leaders = lead[first]
    size = np.diff(np.append(first, len(lead)))
    rows = pools.swing[leaders]
    out[0, rows] = np.where(pools.bullish[leaders], 1.0, -1.0)
    out[1, rows] = _pool_sums(pools.level, leaders, member, first, new_pool) / (size + 1)
    out[2, rows] = pools.swing[member[first + size - 1]]
    out[3, rows] = _sweeping_candles(pools, leaders, sweep_stretch[leaders], swept[leaders])


def _pool_sums(
    level: np.ndarray,
    leaders: np.ndarray,
    member: np.ndarray,
    first: np.ndarray,
    new_pool: np.ndarray,
) -> np.ndarray:
    """Summed level of each pool, added as the reference adds: leader first, then members in
    time order, left to right (np.add.accumulate is strictly sequential, and the zeros
    padding short pools leave their sums unchanged)."""
    pool = np.cumsum(new_pool) - 1
    slot = np.arange(len(member)) - first[pool] + 1
    table = np.zeros((int(slot.max()) + 1, len(leaders)))
    table[0] = level[leaders]
    table[slot, pool] = level[member]
    return np.add.accumulate(table, axis=0)[-1]


def _sweeping_candles(
    pools: _Pools, leaders: np.ndarray, stretch: np.ndarray, swept: np.ndarray
) -> np.ndarray:
    """The candle that sweeps each pool (0 if none): the first piece of its sweeping stretch
    whose furthest price reaches the band, then the first candle of that piece that does.

    Queries run along the inner (contiguous) axis of the small 2-D arrays, so NumPy loops
    over pieces and candles, not over pools.
    """
    out = np.zeros(len(leaders))
    if not swept.any():
        return out
    leaders, stretch = leaders[swept], stretch[swept]
    edge = pools.edge[leaders]
    first, pieces = pools.first_piece[stretch], pools.pieces[stretch]
    step = np.arange(int(pieces.max()))[:, None]
    at = np.minimum(first + step, len(pools.piece_far) - 1)
    reaches = (pools.piece_far[at] >= edge) & (step < pieces)
    piece = first + reaches.argmax(axis=0)
    n = len(pools.high)
    found = np.empty(len(piece), dtype=np.int64)
    bullish = pools.bullish[leaders]
    for side, values, reaches, edge in (
        (bullish, pools.high, np.greater_equal, pools.upper),
        (~bullish, pools.low, np.less_equal, pools.lower),
    ):
        start = pools.piece_start[piece[side]]
        candle = np.minimum(start + np.arange(_PIECE)[:, None], n - 1)
        hit = reaches(values[candle], edge[leaders[side]])
        found[side] = start + hit.argmax(axis=0)
    out[swept] = found
    return out


def _resolve_free(count: int, lead: np.ndarray, member: np.ndarray) -> np.ndarray:
    """Which swings lead a pool: those not taken by an earlier free swing that claims them.

    free[j] = no claimant of j is free. Claimants come before j, so resolving the earliest
    undecided swing each round always progresses; rounds repeat only along chains of
    claims, which are short in practice.
    """
    claimed = np.zeros(count, dtype=bool)
    claimed[member] = True
    state = np.where(claimed, 0, 1).astype(np.int8)  # 0 undecided, 1 free, 2 taken
    while True:
        of_lead = state[lead]
        state[member[of_lead == 1]] = 2  # a free claimant takes it
        undecided = state == 0
        if not undecided.any():
            return state == 1
        # free once no claimant is undecided any more (all taken); a claimant taken in
        # this very round still counts as undecided, which only delays by one round
        waiting = np.bincount(member[of_lead == 0], minlength=count)
        state[undecided & (waiting == 0)] = 1
