"""Config validation: every mistake named with its key path, value and what is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest

from fractald.config import Config, config_from_dict, load_config, reload_changes
from fractald.errors import ConfigError


def test_no_file_is_the_embedded_default() -> None:
    config = load_config(None)
    assert config == Config()
    assert config.feed.venue == "replay" and config.broker.kind == "paper"


def test_full_valid_file_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "fractald.toml"
    path.write_text(
        '[daemon]\nstate_dir = "/var/lib/x"\n'
        '[feed]\nvenue = "binance-futures"\nsymbols = ["BTCUSDT", "ETHUSDT"]\n'
        'timeframes = ["1m", "15m", "1h", "4h"]\nws_url = "ws://127.0.0.1:9000/ws"\n'
        '[risk]\nrisk_per_trade = 0.01\n[log]\nlevel = "debug"\n'
    )
    config = load_config(path)
    assert config.feed.symbols == ["BTCUSDT", "ETHUSDT"]
    assert config.risk.risk_per_trade == 0.01
    assert config.state_path() == Path("/var/lib/x")
    assert config.socket_path() == Path("/var/lib/x/control.sock")


def test_three_mistakes_are_all_named(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[feed]\nvenue = "kraken"\nsymbls = ["BTC"]\n[risk]\nheat_cap = "lots"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    problems = info.value.problems
    assert len(problems) == 3
    text = "\n".join(problems)
    assert "config.feed.venue: 'kraken' must be one of 'replay'" in text
    assert "config.feed.symbls: unknown key" in text and "symbols" in text
    assert "config.risk.heat_cap: 'lots' is not a valid value: expected a number" in text
    assert info.value.exit_status == 78


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ({"risk": {"risk_per_trade": 0.0}}, "config.risk.risk_per_trade: 0.0 must be within (0, 0.05]"),
        ({"daemon": {"backups_keep": 2.5}}, "config.daemon.backups_keep: 2.5 is not a valid value: expected an integer"),
        ({"feed": {"timeframes": ["2m"]}}, "unknown timeframe(s) ['2m']"),
        ({"feed": {"symbols": []}}, "config.feed.symbols: [] must not be empty"),
        ({"log": {"verbose": True}}, "config.log.verbose: unknown key"),
        ({"feed": "replay"}, "config.feed: expected a table, got 'replay'"),
        ({"daemon": {"test_hooks": 1}}, "expected a boolean"),
        ({"daemon": {"backoff_base_s": 10.0, "backoff_cap_s": 5.0}}, "backoff_cap_s: 5.0 must be >= backoff_base_s"),
        ({"feed": {"venue": "binance", "replay_path": "x.csv"}}, "only used with venue = \"replay\""),
    ],
)
def test_each_rule(doc: dict, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_dict(doc)
    assert any(expected in p for p in info.value.problems), info.value.problems


def test_unreadable_and_invalid_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "x.toml"
    bad.write_text("[feed\nvenue=1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def test_reload_splits_live_and_restart_only_changes() -> None:
    old = Config()
    new = config_from_dict({"log": {"level": "debug"}, "risk": {"heat_cap": 0.05},
                            "feed": {"symbols": ["ETH-PERP"]}})
    live, refused = reload_changes(old, new)
    assert live == ["log.level", "risk.heat_cap"]
    assert refused == ["feed.symbols"]


def test_reload_refuses_what_shapes_the_pipeline_by_key() -> None:
    """[strategies] and [broker] take effect on restart; a reload names them as refused."""
    new = config_from_dict({"strategies": {"enabled": ["fvg_fill"]},
                            "broker": {"taker_fee_bps": 9.0}, "risk": {"heat_cap": 0.05}})
    live, refused = reload_changes(Config(), new)
    assert live == ["risk.heat_cap"]
    assert refused == ["broker.taker_fee_bps", "strategies.enabled"]


def test_feed_must_carry_the_timeframes_strategies_need() -> None:
    with pytest.raises(ConfigError) as info:
        config_from_dict({"feed": {"timeframes": ["1m", "15m"]}})
    assert any("config.feed.timeframes" in p and "'1h', '4h'" in p for p in info.value.problems)


def test_strategy_names_and_params_are_checked_by_building_them() -> None:
    with pytest.raises(ConfigError) as info:
        config_from_dict({"strategies": {"enabled": ["liquidity_sweep", "moon_shot"]}})
    assert "unknown strategy ['moon_shot']" in info.value.problems[0]
    with pytest.raises(ConfigError) as info:
        config_from_dict({"strategies": {"params": {"fvg_fill": {"swing_length": -3}}}})
    assert info.value.problems[0].startswith("config.strategies:")
    assert "swing_length" in info.value.problems[0]
    with pytest.raises(ConfigError) as info:
        config_from_dict({"strategies": {"confidence": {"htf_alignment": -1.0}}})
    assert "htf_alignment" in info.value.problems[0]
