"""Portfolio gates for new entries. Each returns None (pass) or a coded Denial.

Every cap is exclusive: the figure *after* the new trade must stay strictly
below its cap (at or above is denied). Exits and reductions never go through
these gates: they always reduce risk.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Iterable
from typing import Any

import attrs
import numpy as np

from fractald.core.models import FeedHealth
from fractald.core.risk.denial import Denial, DenialCode, deny
from fractald.core.risk.params import GateParams


@attrs.frozen(slots=True)
class OpenRisk:
    """One open position or working entry, as the gates see it."""

    symbol: str
    notional: float  # absolute, in quote currency
    risk: float  # money lost if the stop is hit (>= 0)


@attrs.frozen(slots=True)
class Candidate:
    """The entry being asked for."""

    symbol: str
    notional: float
    risk: float


def check_feed(
    feed: FeedHealth | None, exec_score: float, params: GateParams, require_feed_health: bool
) -> Denial | None:
    """No new entries on stale or poor data, or on a venue that executes badly."""
    if feed is None:
        if require_feed_health:
            return deny(DenialCode.NO_FEED_HEALTH, "no feed health known for this symbol yet")
    elif feed.stale:
        return deny(
            DenialCode.FEED_STALE,
            f"feed for {feed.symbol} is stale (last message {feed.last_message_age_s:.1f}s ago)",
            last_message_age_s=feed.last_message_age_s,
        )
    elif feed.quality < params.min_data_quality:
        return deny(
            DenialCode.DATA_QUALITY,
            f"data quality {feed.quality:.3f} is below the minimum {params.min_data_quality}",
            value=feed.quality,
            limit=params.min_data_quality,
        )
    if exec_score < params.min_execution_quality:
        return deny(
            DenialCode.EXECUTION_QUALITY,
            f"execution quality {exec_score:.3f} is below the minimum "
            f"{params.min_execution_quality}",
            value=exec_score,
            limit=params.min_execution_quality,
        )
    return None


def _cap(code: DenialCode, what: str, value: float, limit: float, **extra: float) -> Denial | None:
    if value >= limit:
        return deny(
            code,
            f"{what} would be {value:.6g}, at or above the cap {limit:.6g}",
            value=value,
            limit=limit,
            **extra,
        )
    return None


def check_portfolio(
    candidate: Candidate,
    open_risks: Iterable[OpenRisk],
    equity: float,
    params: GateParams,
    cluster: frozenset[str] | None = None,
) -> Denial | None:
    """Heat, open positions, gross, per-symbol and per-cluster exposure after the new trade."""
    risks = list(open_risks)
    symbols_open = {r.symbol for r in risks}
    if candidate.symbol not in symbols_open and len(symbols_open) >= params.max_open_positions:
        return deny(
            DenialCode.MAX_OPEN_POSITIONS,
            f"{len(symbols_open)} positions open, at the cap {params.max_open_positions}",
            value=len(symbols_open),
            limit=params.max_open_positions,
        )
    heat = sum(r.risk for r in risks) + candidate.risk
    d = _cap(
        DenialCode.PORTFOLIO_HEAT,
        "portfolio heat",
        heat,
        params.max_heat_fraction * equity,
        equity=equity,
        fraction=heat / equity,
    )
    if d:
        return d
    gross = sum(r.notional for r in risks) + candidate.notional
    d = _cap(
        DenialCode.GROSS_EXPOSURE,
        "gross exposure",
        gross,
        params.max_gross_exposure_fraction * equity,
        equity=equity,
    )
    if d:
        return d
    sym = sum(r.notional for r in risks if r.symbol == candidate.symbol) + candidate.notional
    d = _cap(
        DenialCode.SYMBOL_EXPOSURE,
        f"exposure on {candidate.symbol}",
        sym,
        params.max_symbol_exposure_fraction * equity,
        equity=equity,
    )
    if d:
        return d
    if cluster and len(cluster) > 1:
        clustered = sum(r.notional for r in risks if r.symbol in cluster) + candidate.notional
        d = _cap(
            DenialCode.CLUSTER_EXPOSURE,
            f"exposure on the correlated cluster {sorted(cluster)}",
            clustered,
            params.max_cluster_exposure_fraction * equity,
            equity=equity,
        )
        if d:
            return d
    return None


def _stamps(values: Iterable[int]) -> tuple[int, ...]:
    return tuple(values)


@attrs.frozen(slots=True)
class OrderRateLimiter:
    """Counts orders submitted in a sliding window of event time: a value (`recorded` makes
    the next one; the engine's evolve does, at each order intent)."""

    limit: int
    window_ms: int
    # The latest submit times, at most `limit` (more could never change a check).
    stamps: tuple[int, ...] = attrs.field(default=(), converter=_stamps)

    def count(self, ts: int) -> int:
        """Orders submitted in the window that ends at `ts` (a pure read)."""
        start = ts - self.window_ms
        return sum(1 for t in self.stamps if start < t <= ts)

    def check(self, ts: int, orders: int = 1) -> Denial | None:
        n = self.count(ts)
        if n + orders > self.limit:
            return deny(
                DenialCode.ORDER_RATE,
                f"{n} orders in the last {self.window_ms} ms; {orders} more would pass "
                f"the limit {self.limit}",
                value=n,
                limit=self.limit,
                window_ms=self.window_ms,
            )
        return None

    def recorded(self, ts: int) -> OrderRateLimiter:
        """This window with an order submitted at `ts`; times that left the window drop out
        (event time only moves forward, so they never count again)."""
        start = ts - self.window_ms
        kept = tuple(t for t in self.stamps if t > start)
        return attrs.evolve(self, stamps=(*kept, ts)[-self.limit :])

    def history(self) -> list[int]:
        return list(self.stamps)


class CorrelationTracker:
    """Rolling return correlation between symbols, grouped into clusters.

    Returns are keyed by bar open time so symbols are compared on the same
    bars; two symbols whose correlation over the common window is at or above
    the threshold are linked, and clusters are the connected groups
    (single linkage), so A~B and B~C puts A, B and C in one cluster.
    """

    def __init__(self, window: int, threshold: float) -> None:
        self.window = window
        self.threshold = threshold
        self._last_close: dict[str, float] = {}
        self._returns: dict[str, collections.OrderedDict[int, float]] = {}
        self._clusters: dict[str, frozenset[str]] | None = None

    def set_params(self, window: int, threshold: float) -> None:
        """New window and threshold: a shorter window drops the oldest returns, clusters are redone."""
        self.window = window
        self.threshold = threshold
        for series in self._returns.values():
            while len(series) > window:
                series.popitem(last=False)
        self._clusters = None

    def add_close(self, symbol: str, ts: int, close: float) -> None:
        prev = self._last_close.get(symbol)
        self._last_close[symbol] = close
        if prev is None or prev <= 0 or close <= 0:
            return
        series = self._returns.get(symbol)
        if series is None:
            series = self._returns[symbol] = collections.OrderedDict()
        series[ts] = math.log(close / prev)
        if len(series) > self.window:
            while len(series) > self.window:
                series.popitem(last=False)
        self._clusters = None

    def correlation(self, a: str, b: str) -> float | None:
        ra, rb = self._returns.get(a), self._returns.get(b)
        if not ra or not rb:
            return None
        common = [t for t in ra if t in rb]
        if len(common) < 3:
            return None
        xa = np.fromiter((ra[t] for t in common), float, len(common))
        xb = np.fromiter((rb[t] for t in common), float, len(common))
        if xa.std() == 0 or xb.std() == 0:
            return None
        return float(np.corrcoef(xa, xb)[0, 1])

    def cluster_of(self, symbol: str) -> frozenset[str]:
        if self._clusters is None:
            self._clusters = self._build()
        return self._clusters.get(symbol, frozenset({symbol}))

    def _build(self) -> dict[str, frozenset[str]]:
        symbols = sorted(self._returns)
        parent = {s: s for s in symbols}

        def find(s: str) -> str:
            while parent[s] != s:
                parent[s] = parent[parent[s]]
                s = parent[s]
            return s

        for i, a in enumerate(symbols):
            for b in symbols[i + 1 :]:
                c = self.correlation(a, b)
                if c is not None and c >= self.threshold:
                    parent[find(a)] = find(b)
        groups: dict[str, set[str]] = {}
        for s in symbols:
            groups.setdefault(find(s), set()).add(s)
        return {s: frozenset(groups[find(s)]) for s in symbols}

    def snapshot(self) -> dict[str, Any]:
        return {
            "last_close": dict(self._last_close),
            "returns": {s: [[t, r] for t, r in v.items()] for s, v in self._returns.items()},
        }

    def restore(self, data: dict[str, Any]) -> None:
        self._last_close = {s: float(c) for s, c in data.get("last_close", {}).items()}
        self._returns = {
            s: collections.OrderedDict((int(t), float(r)) for t, r in v)
            for s, v in data.get("returns", {}).items()
        }
        self._clusters = None
