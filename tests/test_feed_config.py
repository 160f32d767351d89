"""The [feed] section: symbols in the venue's form, every feed setting reachable from the TOML."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import trio
import trio.testing
from fakevenue.harness import RecordingLog
from fakevenue.server import FakeBinance, FakeHyperliquid

from fractald.config import config_from_dict
from fractald.errors import ConfigError
from fractald.venues.feed import FeedSettings, run_feed

T0 = 1_700_006_400_000


def _problems(feed: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        config_from_dict({"feed": feed})
    return info.value.problems


@pytest.mark.parametrize(("venue", "symbol", "hint"), [
    ("binance-futures", "btcusdt", "upper case, e.g. 'BTCUSDT'"),
    ("binance", "BTC-USDT", "no separator, e.g. 'BTCUSDT'"),
    ("hyperliquid", "BTC-PERP", "named by their coin alone, e.g. 'BTC'"),
    ("hyperliquid", "BTCUSDT", "e.g. 'BTC'"),
    ("hyperliquid-testnet", "eth", "upper case, e.g. 'ETH'"),
])
def test_check_config_names_the_venues_form_of_a_symbol(venue: str, symbol: str, hint: str) -> None:
    problems = _problems({"venue": venue, "symbols": [symbol]})
    assert any(p.startswith("config.feed.symbols[0]: ") and hint in p for p in problems), problems


@pytest.mark.parametrize(("venue", "symbol"), [
    ("binance-futures", "BTCUSDT"), ("binance-futures", "BTCUSDT_250328"), ("hyperliquid", "BTC"),
    ("hyperliquid", "kPEPE"), ("replay", "BTC-PERP")])
def test_good_symbols_pass(venue: str, symbol: str) -> None:
    config_from_dict({"feed": {"venue": venue, "symbols": [symbol]}})


def test_every_feed_setting_reaches_the_feed() -> None:
    from fractald.actors.market_data import MarketDataActor

    config = config_from_dict({"feed": {
        "venue": "binance-futures", "symbols": ["BTCUSDT"], "book": True, "max_frame_bytes": 65536,
        "reconnect_backoff_base_s": 0.2, "reconnect_backoff_cap_s": 5.0, "max_failures": 3,
        "health_interval_s": 2.0, "backfill_timeout_s": 40.0}})
    from fractald.actors.events import EventBus
    from fractald.shell_deps import LiveConfig

    trading = SimpleNamespace(resume_after_ms=dict)
    settings = MarketDataActor(
        LiveConfig(config), trading, None, EventBus()  # type: ignore[arg-type]
    ).feed_settings()
    assert (settings.book, settings.max_frame_bytes, settings.backoff_base_s, settings.backoff_cap_s,
            settings.max_failures, settings.health_interval_s, settings.backfill_timeout_s) == (
        True, 65536, 0.2, 5.0, 3, 2.0, 40.0)
    problems = _problems({"venue": "binance-futures", "symbols": ["BTCUSDT"], "max_frame_bytes": 10})
    assert any(p.startswith("config.feed.max_frame_bytes") for p in problems)
    problems = _problems({"venue": "binance-futures", "symbols": ["BTCUSDT"],
                          "reconnect_backoff_base_s": 9.0, "reconnect_backoff_cap_s": 1.0})
    assert any(p.startswith("config.feed.reconnect_backoff_cap_s") for p in problems)


@pytest.mark.parametrize(("fake", "venue", "symbol", "close"), [
    (FakeBinance, "binance-futures", "BTCUSDX", "BTCUSDT"),
    (FakeHyperliquid, "hyperliquid", "ETC", "ETH"),
])
async def test_a_symbol_the_venue_does_not_list_stops_the_feed_with_a_config_error(
        autojump_clock: trio.testing.MockClock, fake: type[FakeBinance], venue: str, symbol: str,
        close: str) -> None:
    fake_venue = fake([], t0_ms=T0)
    log = RecordingLog()
    send, _receive = trio.open_memory_channel[object](8)
    async with trio.open_nursery() as nursery:
        await nursery.start(fake_venue.run)
        settings = FeedSettings(venue=venue, symbols=(symbol,), ws_url=fake_venue.ws_url,
                                rest_url=fake_venue.rest_url)
        with pytest.raises(ConfigError) as info:
            await run_feed(settings, send, lambda: None, log)
        nursery.cancel_scope.cancel()
    assert f"{symbol!r} is not listed by {venue}" in info.value.problems[0]
    assert close in info.value.problems[0]
    assert log.events("unknown_symbol") and fake_venue.connections == 0  # refused before connecting
