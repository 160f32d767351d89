"""The confidence factor model on constructed cases."""

from __future__ import annotations

import pytest

from fractald.core.models import Side
from fractald.core.strategies.confidence import (
    ConfidenceModel,
    ConfidenceWeights,
    Factors,
    score_gap_size,
    score_htf_alignment,
    score_session,
    score_sweep_depth,
    score_volatility,
)

HOUR = 3_600_000
ALL_UP = {"4h": 1, "1h": 1, "15m": 1}


def conf(**kw: object) -> float:
    weights = kw.pop("weights", ConfidenceWeights())
    return ConfidenceModel(weights).score(Factors(Side.BUY, **kw)).value  # type: ignore[arg-type]


def test_htf_agreement_scores_higher_and_longer_timeframes_weigh_more() -> None:
    all_agree = score_htf_alignment(Side.BUY, ALL_UP)
    h4_against = score_htf_alignment(Side.BUY, {"4h": -1, "1h": 1, "15m": 1})
    m15_against = score_htf_alignment(Side.BUY, {"4h": 1, "1h": 1, "15m": -1})
    none_agree = score_htf_alignment(Side.BUY, {"4h": -1, "1h": -1, "15m": -1})
    assert all_agree == 1.0 and none_agree == 0.0
    assert all_agree > m15_against > h4_against > none_agree
    assert score_htf_alignment(Side.SELL, {"4h": -1, "1h": -1}) == 1.0
    assert score_htf_alignment(Side.BUY, {"1h": 0}) == 0.5
    assert conf(trends=ALL_UP) > conf(trends={"4h": -1, "1h": 1, "15m": 1}) > conf(trends={"4h": -1, "1h": -1, "15m": -1})


def test_sweep_depth_rewards_a_hunt_not_a_breakout() -> None:
    sweet = 0.3
    assert score_sweep_depth(0.0, sweet) == 0.0
    assert score_sweep_depth(sweet / 2, sweet) == pytest.approx(0.5)
    assert score_sweep_depth(sweet, sweet) == score_sweep_depth(2 * sweet, sweet) == 1.0
    assert score_sweep_depth(3.5 * sweet, sweet) == pytest.approx(0.5)
    assert score_sweep_depth(5 * sweet, sweet) == 0.0 == score_sweep_depth(50.0, sweet)


def test_gap_volatility_and_session_shapes() -> None:
    assert score_gap_size(0.5, 1.0) == 0.5 and score_gap_size(3.0, 1.0) == 1.0
    assert score_volatility(1.0) == 1.0 and score_volatility(3.0) == pytest.approx(0.0)
    assert score_volatility(1 / 3) == pytest.approx(0.0) and 0 < score_volatility(1.5) < 1
    assert score_session(14 * HOUR) == 1.0 and score_session(9 * HOUR) == 0.8 and score_session(2 * HOUR) == 0.5


def test_confidence_is_the_weighted_mean_of_the_factors_that_apply() -> None:
    w = ConfidenceWeights(htf_alignment=3.0, gap_size=1.0, opposing_liquidity=0.0)
    c = ConfidenceModel(w).score(Factors(Side.BUY, ALL_UP, gap_atr=0.5))
    assert set(c.scores) == {"htf_alignment", "gap_size", "opposing_liquidity"}
    assert c.value == pytest.approx(100 * (3 * 1.0 + 1 * 0.5) / 4)
    # a factor that does not apply leaves the others' shares unchanged
    assert ConfidenceModel(w).score(Factors(Side.BUY, ALL_UP)).value == pytest.approx(100.0)


def test_zero_weight_removes_a_factor_and_room_to_liquidity_counts() -> None:
    w = ConfidenceWeights(htf_alignment=0.0)
    assert conf(trends=ALL_UP, weights=w) == conf(trends={"4h": -1}, weights=w)
    assert conf(room_r=3.0) > conf(room_r=1.0) > conf(room_r=0.1)


def test_multiplier_scales_and_clips() -> None:
    m = ConfidenceModel()
    f = Factors(Side.BUY, ALL_UP, room_r=5.0)
    assert m.score(f, 0.5).value == pytest.approx(m.score(f).value * 0.5)
    assert m.score(f, 10.0).value == 100.0
    reason = m.score(f).as_reason()
    assert reason["kind"] == "confidence" and reason["factors"]["htf_alignment"] == 1.0


def test_bad_weight_names_the_weight_and_range() -> None:
    with pytest.raises(ValueError, match=r"htf_alignment must be a number in 0\.0\.\.100\.0"):
        ConfidenceWeights(htf_alignment=-1)
