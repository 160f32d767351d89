"""Look-ahead check: does any signal depend on bars that came after it?

The strategy runs once on all the candles, then on growing prefixes of them.
Without look-ahead, what a prefix run signalled (and skipped) up to its last
bar is exactly what the full run signalled up to that bar. A signal that the
full run has but the prefix run did not (or the other way round), or that
differs in price, stop or side, changed once later bars arrived: a backdated
(repainting) signal, or one computed from data not yet known.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs

from fractald.core.models import Bar


@attrs.frozen(slots=True)
class Finding:
    cut_ms: int
    kind: str  # "only_with_later_bars" | "vanished_with_later_bars"
    signal: tuple[Any, ...]


def _signature(event: Any) -> tuple[Any, ...] | None:
    from fractald.core.pipeline import SetupSkipped, SignalEmitted

    if isinstance(event, SignalEmitted):
        s = event.signal
        return ("signal", s.strategy, s.side.value, s.ts_event, round(s.entry, 9), round(s.stop, 9))
    if isinstance(event, SetupSkipped):
        return ("skip", event.strategy, event.code, event.ts)
    return None


def _signatures(bars: Sequence[Bar], make_runner: Any) -> list[tuple[Any, ...]]:
    runner = make_runner()
    out: list[tuple[Any, ...]] = []
    for bar in bars:
        for e in runner.step(bar):
            sig = _signature(e)
            if sig is not None:
                out.append(sig)
    return out


def check(bars: Sequence[Bar], make_runner: Any, cuts: int = 8) -> tuple[list[Finding], int]:
    """Findings (empty: no look-ahead seen) and how many signals the full run made."""
    full = _signatures(bars, make_runner)
    findings: list[Finding] = []
    n = len(bars)
    points = sorted({max(1, n * (i + 1) // (cuts + 1)) for i in range(cuts)})
    for cut in points:
        cut_ms = bars[cut - 1].ts_event
        prefix = _signatures(bars[:cut], make_runner)
        known = [s for s in full if s[3] <= cut_ms]
        want, got = _count(known), _count(prefix)
        for sig in sorted(set(want) | set(got), key=repr):
            if want.get(sig, 0) > got.get(sig, 0):
                findings.append(Finding(cut_ms, "only_with_later_bars", sig))
            elif got.get(sig, 0) > want.get(sig, 0):
                findings.append(Finding(cut_ms, "vanished_with_later_bars", sig))
    return findings, sum(1 for s in full if s[0] == "signal")


def _count(sigs: Sequence[tuple[Any, ...]]) -> dict[tuple[Any, ...], int]:
    out: dict[tuple[Any, ...], int] = {}
    for s in sigs:
        out[s] = out.get(s, 0) + 1
    return out
