"""Feed health scoring: age, staleness, gaps, outliers, garbage."""

from __future__ import annotations

import pytest

from fractald.core.feed_health import HealthParams, HealthTracker
from fractald.core.models import Bar, Quote


def _tracker() -> HealthTracker:
    return HealthTracker("X", HealthParams(stale_after_s=10.0, outlier_k=5.0))


def test_fresh_feed_scores_one_and_goes_stale_with_silence() -> None:
    h = _tracker()
    h.on_message(100.0, ts_event=1_000)
    fresh = h.snapshot(101.0)
    assert fresh.quality == 1.0 and not fresh.stale and fresh.last_message_age_s == 1.0
    assert fresh.ts_event == 1_000
    fading = h.snapshot(107.5)
    assert 0.0 < fading.quality < 1.0 and not fading.stale
    stale = h.snapshot(110.0)
    assert stale.stale and stale.quality == 0.0
    h.on_message(111.0)
    assert h.snapshot(111.0).quality == 1.0  # recovers as soon as data flows


def test_unfilled_gaps_cost_more_than_filled_ones_and_age_out() -> None:
    h, g = _tracker(), _tracker()
    for t in (h, g):
        t.on_message(0.0)
    h.on_gap(0.0, filled=False)
    g.on_gap(0.0, filled=True)
    assert h.quality(1.0) == pytest.approx(0.5) and g.quality(1.0) == pytest.approx(0.9)
    h.on_message(4000.0)
    assert h.quality(4000.0) == 1.0  # an hour later it no longer counts
    assert (h.gaps_found, h.gaps_filled, g.gaps_filled) == (1, 0, 1)


def test_price_jump_beyond_k_true_ranges_is_an_outlier() -> None:
    h = _tracker()
    for i in range(5):
        h.on_bar(Bar("X", "1m", i * 60_000, 100, 101, 99, 100, 1.0))  # true range 2
    assert not h.check_price(1.0, 100.0)
    assert not h.check_price(1.0, 109.0)  # 9 < 5 * 2
    assert h.check_price(1.0, 120.0)  # 11 > 10
    assert h.outliers == 1 and h.snapshot(1.0).outliers == 1
    h.on_message(1.0)
    assert h.quality(1.0) == pytest.approx(0.8)


def test_crossed_quote_is_an_outlier() -> None:
    h = _tracker()
    assert not h.check_quote(0.0, Quote("X", 99, 1, 100, 1, 0))
    assert h.check_quote(0.0, Quote("X", 100, 1, 100, 1, 0))


def test_garbage_share_lowers_quality() -> None:
    h = _tracker()
    for _ in range(15):
        h.on_message(0.0)
    for _ in range(5):
        h.on_unparsed(0.0)
    assert h.quality(0.0) == pytest.approx(0.75) and h.unparsed == 5


def test_reconnects_lower_quality_for_a_while() -> None:
    h = _tracker()
    h.on_reconnect(0.0)
    h.on_message(0.0)
    assert h.quality(0.0) == pytest.approx(0.9) and h.snapshot(0.0).reconnects == 1
