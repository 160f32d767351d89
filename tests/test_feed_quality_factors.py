"""[feed] quality_spread_factor and quality_outside_rth_factor: validated, and the score uses them."""

from __future__ import annotations

import types

import pytest

from fractald.config import Config, config_from_dict
from fractald.core.feed_health import HealthParams, HealthTracker
from fractald.errors import ConfigError
from fractald.venues.feed_core import _Symbol
from fractald.venues.feed_settings import FeedSettings


def test_bad_factors_are_named_with_their_keys() -> None:
    with pytest.raises(ConfigError) as bad:
        config_from_dict({"feed": {"quality_spread_factor": 1.5, "quality_outside_rth_factor": 0}})
    assert bad.value.problems == [
        "config.feed.quality_spread_factor: 1.5 must be within (0, 1]",
        "config.feed.quality_outside_rth_factor: 0 must be within (0, 1]",
    ]
    with pytest.raises(ValueError, match=r"spread_factor must be a factor in \(0, 1\], got 0.0"):
        HealthParams(spread_factor=0.0)
    with pytest.raises(ValueError, match=r"quality_outside_rth_factor must be a factor"):
        FeedSettings(quality_outside_rth_factor=2.0)


def test_the_score_takes_the_configured_factors() -> None:
    default = HealthTracker("MES", start_s=0.0)
    strict = HealthTracker("MES", HealthParams(spread_factor=0.5, outside_rth_factor=0.25), start_s=0.0)
    for tracker in (default, strict):
        tracker.on_spread(3.0)  # two ticks beyond one
        tracker.on_session(outside_rth=True)
    assert default.quality(1.0) == pytest.approx(0.9**2 * 0.9)
    assert strict.quality(1.0) == pytest.approx(0.5**2 * 0.25)


def test_the_config_reaches_the_feeds_health_tracker() -> None:
    from fractald.actors.market_data import MarketDataActor

    config = config_from_dict({"feed": {"venue": "ibkr", "symbols": ["MES"], "quality_spread_factor": 0.7,
                                        "quality_outside_rth_factor": 0.6}})
    actor = types.SimpleNamespace(config=types.SimpleNamespace(current=config),
                                  trading=types.SimpleNamespace(resume_after_ms=dict),
                                  _replay_catalog=MarketDataActor._replay_catalog)
    settings = MarketDataActor.feed_settings(actor)  # type: ignore[arg-type]
    assert (settings.quality_spread_factor, settings.quality_outside_rth_factor) == (0.7, 0.6)
    params = _Symbol("MES", settings, "1m", 0.0).health.params
    assert (params.spread_factor, params.outside_rth_factor) == (0.7, 0.6)
    assert Config().feed.quality_spread_factor == 0.9 == Config().feed.quality_outside_rth_factor
