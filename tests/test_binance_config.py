"""[broker] for Binance: check-config problems, COIN-M refusal, the daemon's refusal, preflight."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio
from fakevenue.binance_exchange import Symbol
from fakevenue.binance_exchange_server import FakeBinanceFutures

from fractald import daemon
from fractald.config import config_from_dict
from fractald.errors import AuthError, ConfigError, ExitStatus
from fractald.preflight import Environment, Status, check_broker
from fractald.venues import binance_config

KEY, SECRET = "configTestKey0001", "configTestSecret0001"


def binance_doc(**broker: Any) -> dict[str, Any]:
    b: dict[str, Any] = {"kind": "binance-futures", "api_key_credential": "binance_key",
                         "api_secret_credential": "binance_secret",
                         "leverage": {"BTCUSDT": 5}, "margin_type": {"BTCUSDT": "isolated"}}
    b.update(broker)
    return {"feed": {"venue": "binance-futures", "symbols": ["BTCUSDT"]}, "risk": {"mode": "live"},
            "broker": b}


def problems_of(doc: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as err:
        config_from_dict(doc)
    return err.value.problems


def test_a_binance_futures_broker_validates_with_testnet_by_default() -> None:
    config = config_from_dict(binance_doc())
    assert config.broker.network == "testnet"
    net = binance_config.urls(config)
    assert "testnet" in net.rest_url and "binancefuture" in net.ws_url
    overridden = config_from_dict(binance_doc(rest_url="http://127.0.0.1:9", ws_url="ws://127.0.0.1:9"))
    assert binance_config.urls(overridden).rest_url == "http://127.0.0.1:9"


def test_config_problems_name_the_key_and_the_valid_form() -> None:
    doc = binance_doc(leverage={"BTCUSDT": 200, "ETHUSDT": 3}, margin_type={"BTCUSDT": "portfolio"},
                      api_secret_credential="")
    doc["feed"]["symbols"] = ["btcusdt"]
    doc["risk"]["mode"] = "paper"
    text = "\n".join(problems_of(doc))
    assert "config.risk.mode" in text and "real orders" in text
    assert "config.broker.api_secret_credential" in text
    assert "'btcusdt'" in text and "'BTCUSDT'" in text
    assert "config.broker.leverage.BTCUSDT: 200" in text
    assert "config.broker.leverage.ETHUSDT: not one of feed.symbols" in text
    assert "config.broker.margin_type.BTCUSDT: 'portfolio'" in text
    bad_urls = "\n".join(problems_of(binance_doc(rest_url="ftp://x", ws_url="http://127.0.0.1:1")))
    assert "config.broker.rest_url" in bad_urls and "config.broker.ws_url" in bad_urls
    spot = binance_doc(kind="binance-spot")
    assert any("spot has no leverage" in p for p in problems_of(spot))


def test_coin_m_is_refused_with_a_clear_message() -> None:
    doc = binance_doc()
    doc["feed"]["symbols"] = ["BTCUSD_PERP"]
    doc["broker"].update(leverage={}, margin_type={})
    assert any("COIN-M" in p and "config.feed.symbols" in p for p in problems_of(doc))
    quarterly = binance_doc(rest_url="https://dapi.binance.com", leverage={}, margin_type={})
    assert any("COIN-M" in p and "config.broker.rest_url" in p for p in problems_of(quarterly))
    feed_only = {"feed": {"venue": "binance-futures", "symbols": ["ETHUSD_250328"]}}
    assert any("COIN-M" in p for p in problems_of(feed_only))


def test_the_daemon_routes_a_venue_config_and_a_missing_key_stops_it_with_77(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Never a quiet paper run: the router opens the venue, whose key is missing (nothing is
    # contacted: the feed waits for the router's recovery, and every URL is loopback).
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    path = tmp_path / "binance.toml"
    path.write_text(f'[daemon]\nstate_dir = "{tmp_path / "state"}"\n'
                    '[feed]\nvenue = "binance-futures"\nsymbols = ["BTCUSDT"]\n'
                    'rest_url = "http://127.0.0.1:9"\nws_url = "ws://127.0.0.1:9/ws"\n[risk]\nmode = "live"\n'
                    '[broker]\nkind = "binance-futures"\napi_key_credential = "k"\n'
                    'api_secret_credential = "s"\nrest_url = "http://127.0.0.1:9"\n'
                    'ws_url = "ws://127.0.0.1:9/ws"\n')
    assert daemon.main(str(path)) == int(ExitStatus.AUTH)


def test_credentials_come_from_files_and_missing_ones_are_named(tmp_path: Path) -> None:
    (tmp_path / "binance_key").write_text(KEY + "\n")
    env = {"CREDENTIALS_DIRECTORY": str(tmp_path)}
    assert binance_config.read_credential("binance_key", env) == KEY
    with pytest.raises(AuthError, match="binance_secret") as err:
        binance_config.build_venue(config_from_dict(binance_doc()), env)
    assert SECRET not in str(err.value)
    with pytest.raises(AuthError, match="CREDENTIALS_DIRECTORY"):
        binance_config.read_credential("binance_key", {})


def test_preflight_skips_paper_and_offline_and_fails_without_credentials(tmp_path: Path) -> None:
    paper = config_from_dict({})
    assert check_broker(paper, Environment(env={})).status is Status.SKIP
    live = config_from_dict(binance_doc())
    offline = Environment(env={}, online=lambda: False)
    assert check_broker(live, offline).status is Status.SKIP
    missing = Environment(env={"CREDENTIALS_DIRECTORY": str(tmp_path)}, online=lambda: True)
    result = check_broker(live, missing)
    assert result.status is Status.FAIL and "binance_key" in result.detail


async def test_preflight_findings_against_the_fake(tmp_path: Path) -> None:
    (tmp_path / "binance_key").write_text(KEY)
    (tmp_path / "binance_secret").write_text(SECRET)
    env = {"CREDENTIALS_DIRECTORY": str(tmp_path)}
    fake = FakeBinanceFutures([Symbol("BTCUSDT")], {"BTCUSDT": 50_000.0})
    fake.add_account(KEY, SECRET)
    async with trio.open_nursery() as nursery:
        await nursery.start(fake.run)
        config = config_from_dict(binance_doc(rest_url=fake.rest_url, ws_url=fake.ws_url))
        before = await binance_config.preflight_findings(binance_config.build_venue(config, env))
        assert any("leverage is 20, config says 5" in f for f in before)
        assert any("margin type is cross, config says isolated" in f for f in before)
        venue = binance_config.build_venue(config, env)
        await venue.start()  # what the daemon does at start
        assert await binance_config.preflight_findings(venue) == []
        (tmp_path / "binance_secret").write_text("wrong")
        refused = await binance_config.preflight_findings(binance_config.build_venue(config, env))
        assert refused and "auth_refused" in refused[0] and "-1022" in refused[0]
        nursery.cancel_scope.cancel()
