"""Execution quality per venue and symbol, folded into a score 0..1.

Each figure (adverse slippage against the intended price, submit-to-ack
and submit-to-fill latency, reject rate, failed-cancel rate) scores 1 at
zero and falls linearly to 0 at its configured 'bad' level. The score is
the *minimum* of those: one broken aspect (say a third of orders rejected)
must be enough to stop new entries, and an average would hide it.
"""

from __future__ import annotations

import collections
from typing import Any

from fractald.core.risk.params import ExecQualityParams


class _Stats:
    __slots__ = ("ack_ms", "cancels", "fill_ms", "rejects", "slippage_bps")

    def __init__(self, window: int) -> None:
        self.slippage_bps: collections.deque[float] = collections.deque(maxlen=window)
        self.ack_ms: collections.deque[float] = collections.deque(maxlen=window)
        self.fill_ms: collections.deque[float] = collections.deque(maxlen=window)
        self.rejects: collections.deque[bool] = collections.deque(maxlen=window)
        self.cancels: collections.deque[bool] = collections.deque(maxlen=window)


def _mean(values: collections.deque[Any]) -> float:
    return sum(values) / len(values) if values else 0.0


class ExecutionQuality:
    def __init__(self, params: ExecQualityParams) -> None:
        self.params = params
        self._stats: dict[tuple[str, str], _Stats] = {}

    def set_params(self, params: ExecQualityParams) -> None:
        """New thresholds; a new window keeps the newest figures that fit in it."""
        old, self.params = self.params, params
        if params.window == old.window:
            return
        for s in self._stats.values():
            for name in _Stats.__slots__:
                setattr(s, name, collections.deque(getattr(s, name), maxlen=params.window))

    def _s(self, venue: str, symbol: str) -> _Stats:
        key = (venue, symbol)
        s = self._stats.get(key)
        if s is None:
            s = self._stats[key] = _Stats(self.params.window)
        return s

    def record_slippage(
        self, venue: str, symbol: str, side_sign: int, intended: float, filled: float
    ) -> None:
        """Adverse slippage in basis points; a better price than intended counts as zero."""
        if intended > 0:
            bps = (filled - intended) / intended * 1e4 * side_sign
            self._s(venue, symbol).slippage_bps.append(max(0.0, bps))

    def record_ack(self, venue: str, symbol: str, latency_ms: float) -> None:
        self._s(venue, symbol).ack_ms.append(max(0.0, latency_ms))

    def record_fill_latency(self, venue: str, symbol: str, latency_ms: float) -> None:
        self._s(venue, symbol).fill_ms.append(max(0.0, latency_ms))

    def record_submit_outcome(self, venue: str, symbol: str, rejected: bool) -> None:
        self._s(venue, symbol).rejects.append(rejected)

    def record_cancel_outcome(self, venue: str, symbol: str, failed: bool) -> None:
        self._s(venue, symbol).cancels.append(failed)

    def components(self, venue: str, symbol: str) -> dict[str, float]:
        s = self._stats.get((venue, symbol))
        p = self.params
        if s is None:
            return {}
        out: dict[str, float] = {}
        for name, values, bad in (
            ("slippage", s.slippage_bps, p.bad_slippage_bps),
            ("ack_latency", s.ack_ms, p.bad_ack_ms),
            ("fill_latency", s.fill_ms, p.bad_fill_ms),
            ("reject_rate", s.rejects, p.bad_reject_rate),
            ("failed_cancel_rate", s.cancels, p.bad_failed_cancel_rate),
        ):
            if len(values) >= max(1, p.min_samples):
                out[name] = max(0.0, 1.0 - _mean(values) / bad)
        return out

    def score(self, venue: str, symbol: str) -> float:
        comps = self.components(venue, symbol)
        return min(comps.values()) if comps else 1.0

    def snapshot(self) -> dict[str, Any]:
        return {
            f"{v}|{s}": {k: list(getattr(st, k)) for k in _Stats.__slots__}
            for (v, s), st in self._stats.items()
        }

    def restore(self, data: dict[str, Any]) -> None:
        self._stats = {}
        for key, fields in data.items():
            venue, symbol = key.split("|", 1)
            st = self._s(venue, symbol)
            for k in _Stats.__slots__:
                getattr(st, k).extend(fields.get(k, []))
