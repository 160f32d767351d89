"""Execution quality per venue and symbol, folded into a score 0..1.

Each figure (adverse slippage against the intended price, submit-to-ack
and submit-to-fill latency, reject rate, failed-cancel rate) scores 1 at
zero and falls linearly to 0 at its configured 'bad' level. The score is
the *minimum* of those: one broken aspect (say a third of orders rejected)
must be enough to stop new entries, and an average would hide it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs

from fractald.core.risk.params import ExecQualityParams


@attrs.frozen(slots=True)
class _Stats:
    """One (venue, symbol)'s latest samples, a value: `with_sample` makes the next one."""

    # In the order snapshots have always listed them.
    ack_ms: tuple[float, ...] = ()
    cancels: tuple[bool, ...] = ()
    fill_ms: tuple[float, ...] = ()
    rejects: tuple[bool, ...] = ()
    slippage_bps: tuple[float, ...] = ()

    def with_sample(self, name: str, value: float | bool, window: int) -> _Stats:
        """These samples with `value` added to `name`'s (its latest `window` kept)."""
        values = (*getattr(self, name), value)
        return attrs.evolve(self, **{name: values[-window:]})

    def within(self, window: int) -> _Stats:
        """The newest samples of each figure that fit in `window`."""
        return _Stats(*(values[-window:] for values in attrs.astuple(self, recurse=False)))


_FIELDS = tuple(a.name for a in attrs.fields(_Stats))


def _mean(values: Sequence[Any]) -> float:
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
        self._stats = {k: s.within(params.window) for k, s in self._stats.items()}

    def _add(self, venue: str, symbol: str, name: str, value: float | bool) -> None:
        """Record one sample (the (venue, symbol) samples are replaced; evolve calls this)."""
        key = (venue, symbol)
        stats = self._stats.get(key) or _Stats()
        self._stats[key] = stats.with_sample(name, value, self.params.window)

    def record_slippage(
        self, venue: str, symbol: str, side_sign: int, intended: float, filled: float
    ) -> None:
        """Adverse slippage in basis points; a better price than intended counts as zero."""
        if intended > 0:
            bps = (filled - intended) / intended * 1e4 * side_sign
            self._add(venue, symbol, "slippage_bps", max(0.0, bps))

    def record_ack(self, venue: str, symbol: str, latency_ms: float) -> None:
        self._add(venue, symbol, "ack_ms", max(0.0, latency_ms))

    def record_fill_latency(self, venue: str, symbol: str, latency_ms: float) -> None:
        self._add(venue, symbol, "fill_ms", max(0.0, latency_ms))

    def record_submit_outcome(self, venue: str, symbol: str, rejected: bool) -> None:
        self._add(venue, symbol, "rejects", rejected)

    def record_cancel_outcome(self, venue: str, symbol: str, failed: bool) -> None:
        self._add(venue, symbol, "cancels", failed)

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
            f"{v}|{s}": {k: list(getattr(st, k)) for k in _FIELDS}
            for (v, s), st in self._stats.items()
        }

    def restore(self, data: dict[str, Any]) -> None:
        self._stats = {}
        for key, fields in data.items():
            venue, symbol = key.split("|", 1)
            stats = _Stats(*(tuple(fields.get(k, [])) for k in _FIELDS))
            self._stats[(venue, symbol)] = stats.within(self.params.window)
