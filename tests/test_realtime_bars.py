"""5 s real-time bars to 1 m bars: aligned, complete only when whole, bad prints kept out."""

from __future__ import annotations

import pytest

from fractald.core.realtime_bars import FiveSecondRollup

T0 = 1_735_689_600_000  # 2025-01-01 00:00 UTC


def feed(r: FiveSecondRollup, n: int, start: int = T0, skip: tuple[int, ...] = ()) -> list:  # type: ignore[type-arg]
    out = []
    for k in range(n):
        if k in skip:
            continue
        p = 5000 + 0.25 * (k % 7)
        out += r.on_bar(start + k * 5_000, p, p + 0.5, p - 0.25, p + 0.25, 3.0)
    return out


def test_twelve_bars_make_a_complete_minute_closed_by_the_next() -> None:
    r = FiveSecondRollup("MES", 0.25)
    assert feed(r, 12) == []  # the minute is only known closed when the next one starts
    [bar] = r.on_bar(T0 + 60_000, 1, 1, 1, 1, 1)
    assert (bar.ts_open, bar.timeframe, bar.complete, bar.volume) == (T0, "1m", True, 36.0)
    assert bar.open == 5000 and bar.close == 5000 + 0.25 * (11 % 7) + 0.25
    assert bar.high == max(5000 + 0.25 * (k % 7) + 0.5 for k in range(12))


def test_a_missing_bar_makes_the_minute_incomplete_and_is_counted() -> None:
    r = FiveSecondRollup("MES", 0.25)
    bars = feed(r, 25, skip=(3,))
    assert [b.complete for b in bars] == [False, True] and r.missing == 1


def test_an_outlier_print_is_dropped_and_counted() -> None:
    r = FiveSecondRollup("MES", 0.25, outlier_ticks=40)
    feed(r, 5)
    assert r.on_bar(T0 + 25_000, 5000, 5100, 4990, 5000, 1) == [] and r.outliers == 1
    [bar] = feed(r, 1, start=T0 + 60_000)
    assert bar.high < 5100 and not bar.complete
    with pytest.raises(ValueError, match="5 s boundary"):
        r.on_bar(T0 + 1, 1, 1, 1, 1, 1)


def test_flush_closes_the_minute_in_progress_once() -> None:
    r = FiveSecondRollup("MES", 0.25)
    assert r.flush() == []
    for k in range(12):
        r.on_bar(60_000 + 5_000 * k, 10.0, 11.0, 9.0, 10.5, 1.0)
    [whole] = r.flush()
    assert (whole.ts_open, whole.complete, whole.volume) == (60_000, True, 12.0) and r.flush() == []
    r.on_bar(120_000, 10.0, 11.0, 9.0, 10.5, 1.0)
    [part] = r.flush()
    assert not part.complete and r.missing == 11
