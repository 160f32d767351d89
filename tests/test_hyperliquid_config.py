"""[broker] kind = "hyperliquid": the config's rules, a missing key, and the account preflight."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
from eth_account import Account
from fakevenue.hyperliquid_exchange import Coin
from fakevenue.hyperliquid_exchange_server import FakeHyperliquid

from fractald.config import load_config
from fractald.errors import ConfigError, ExitStatus
from fractald.preflight import Status
from fractald.venues.hyperliquid_preflight import check_account, preflight_checks
from fractald.venues.hyperliquid_signing import AgentSigner, NonceClock
from fractald.venues.hyperliquid_venue import HyperliquidSettings, HyperliquidVenue

USER = Account.from_key("0x" + "01" * 32)
AGENT_KEY = "0x" + "02" * 32
ADDRESS = "0x" + "ab" * 20
BROKER = (f"[broker]\nkind = 'hyperliquid'\naccount_address = '{ADDRESS}'\n"
          "private_key_credential = 'hl-agent'\nrest_url = 'http://127.0.0.1:9'\nws_url = 'ws://127.0.0.1:9/ws'\n")


def config_file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "fractald.toml"
    path.write_text(text)
    return str(path)


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as err:
        load_config(config_file(tmp_path, text))
    return err.value.problems


def test_live_needs_a_real_broker_and_paper_refuses_one(tmp_path: Path) -> None:
    assert any("'live' needs a real broker" in p for p in problems(tmp_path, "[risk]\nmode = 'live'\n"))
    assert any("'paper' refuses the real broker" in p
               for p in problems(tmp_path, "[risk]\nmode = 'paper'\n" + BROKER))
    config = load_config(config_file(tmp_path, "[risk]\nmode = 'live'\n" + BROKER))
    assert (config.broker.kind, config.broker.network) == ("hyperliquid", "testnet")  # testnet by default


def test_hyperliquid_fields_are_checked_and_a_pasted_key_is_not_echoed(tmp_path: Path) -> None:
    key = "4f" * 32
    text = (f"[risk]\nmode = 'live'\n[broker]\nkind = 'hyperliquid'\naccount_address = 'me'\n"
            f"private_key_credential = '{key}'\n")
    joined = "; ".join(problems(tmp_path, text))
    assert "account_address" in joined and "looks like a secret" in joined
    assert key not in joined
    network = "; ".join(problems(tmp_path, "[risk]\nmode = 'live'\n" + BROKER + "network = 'devnet'\n"))
    assert "config.broker.network" in network and "testnet" in network
    table = ("[risk]\nmode = 'live'\n[feed]\nsymbols = ['BTC']\n" + BROKER
             + "[broker.leverage]\nBTC = 0\nETH = 3\n[broker.margin_type]\nBTC = 'isolated!'\n")
    joined = "; ".join(problems(tmp_path, table))
    assert "config.broker.leverage.BTC: 0 must be at least 1" in joined
    assert "config.broker.leverage.ETH: not one of feed.symbols" in joined
    assert "config.broker.margin_type.BTC: 'isolated!' must be 'cross' or 'isolated'" in joined


def test_the_daemon_routes_to_hyperliquid_and_a_missing_key_stops_it_with_77(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fractald.daemon import main

    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path / "no-credentials"))
    path = config_file(tmp_path, f"[daemon]\nstate_dir = '{tmp_path / 'state'}'\n[risk]\nmode = 'live'\n" + BROKER)
    assert main(path) == int(ExitStatus.AUTH)


async def test_account_preflight_against_the_fake(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        fake = FakeHyperliquid([Coin("BTC", 5)], {"BTC": 50_000.0})
        fake.exchange.add_user(USER.address, usdc=1_000.0, agents=(Account.from_key(AGENT_KEY).address,))
        await nursery.start(fake.run)

        def venue(key: str) -> HyperliquidVenue:
            settings = HyperliquidSettings(USER.address, "testnet", rest_url=fake.rest_url, ws_url=fake.ws_url)
            return HyperliquidVenue(settings, AgentSigner(key, mainnet=False), NonceClock(None))

        good = {c.name: c for c in await check_account(venue(AGENT_KEY), ["BTC"])}
        assert {n: c.status for n, c in good.items()} == {
            "hl_key": Status.OK, "hl_margin": Status.OK, "hl_clock": Status.OK, "hl_symbols": Status.OK}
        fake.skew_ms = 10_000
        bad = {c.name: c for c in await check_account(venue("0x" + "07" * 32), ["BTC", "BTC-PERP"])}
        assert bad["hl_key"].status is Status.FAIL and "approve the API wallet" in bad["hl_key"].remedy
        assert bad["hl_clock"].status is Status.FAIL and bad["hl_symbols"].status is Status.FAIL
        assert "valid: BTC" in bad["hl_symbols"].detail
        nursery.cancel_scope.cancel()


def test_preflight_without_the_key_file_says_so(tmp_path: Path) -> None:
    config = load_config(config_file(tmp_path, "[risk]\nmode = 'live'\n" + BROKER))
    checks = preflight_checks(config, {"CREDENTIALS_DIRECTORY": str(tmp_path)})
    assert [(c.name, c.status) for c in checks] == [("hl_key", Status.FAIL)]
    assert "hl-agent" in checks[0].detail
