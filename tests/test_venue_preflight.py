"""Preflight asks the venue: are the symbols listed, and is this host's clock within 2 s of the venue's."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import attrs
import pytest

from fractald.config import Config, FeedConfig
from fractald.venue_preflight import check_clock_skew, check_symbols


class Venue:
    """Binance futures' exchangeInfo and time, and Hyperliquid's /info meta, on 127.0.0.1."""

    def __init__(self) -> None:
        self.clock_offset_ms = 0
        self.requests: list[str] = []

    def now_ms(self) -> int:
        return int(time.time() * 1000) + self.clock_offset_ms


@pytest.fixture
def venue() -> Iterator[tuple[Venue, str]]:
    state = Venue()

    class Handler(BaseHTTPRequestHandler):
        def _send(self, body: object) -> None:
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def date_time_string(self, timestamp: float | None = None) -> str:  # the Date header, on the venue's clock
            return formatdate(state.now_ms() / 1000, usegmt=True)

        def do_GET(self) -> None:  # noqa: N802
            state.requests.append(self.path)
            if self.path.startswith("/fapi/v1/exchangeInfo"):
                self._send({"symbols": [{"symbol": s, "status": "TRADING"} for s in ("BTCUSDT", "ETHUSDT")]
                                       + [{"symbol": "LUNAUSDT", "status": "SETTLING"}]})
            elif self.path.startswith("/fapi/v1/time"):
                self._send({"serverTime": state.now_ms()})
            else:
                self.send_error(404)

        def do_POST(self) -> None:  # noqa: N802
            state.requests.append(self.path)
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self._send({"universe": [{"name": "BTC", "szDecimals": 5}, {"name": "ETH", "szDecimals": 4}]})

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def config(venue: str, url: str, symbols: list[str]) -> Config:
    return attrs.evolve(Config(), feed=attrs.evolve(FeedConfig(), venue=venue, rest_url=url, symbols=symbols,
                                                   replay_path=""))


def offline() -> bool:
    return False


def test_listed_symbols_pass_and_unlisted_ones_are_named_with_close_names(venue: tuple[Venue, str]) -> None:
    _, url = venue
    good = check_symbols(config("binance-futures", url, ["BTCUSDT", "ETHUSDT"]), offline)
    assert good.status.value == "ok" and "2 instruments" in good.detail
    bad = check_symbols(config("binance-futures", url, ["BTCUSDT", "ETHUSTD", "LUNAUSDT"]), offline)
    assert bad.status.value == "fail"
    assert "'ETHUSTD' is not listed by binance-futures; close ones it lists: ETHUSDT" in bad.detail
    assert "'LUNAUSDT' is not listed" in bad.detail  # settling, not trading
    hl = check_symbols(config("hyperliquid", url, ["BTC", "SOL"]), offline)
    assert hl.status.value == "fail" and "'SOL' is not listed by hyperliquid" in hl.detail


def test_a_clock_more_than_two_seconds_off_the_venues_is_a_red_line(venue: tuple[Venue, str]) -> None:
    state, url = venue
    cfg = config("binance-futures", url, ["BTCUSDT"])
    assert check_clock_skew(cfg, offline).status.value == "ok"
    state.clock_offset_ms = -5_000  # the venue is 5 s behind: this host runs fast
    fast = check_clock_skew(cfg, offline)
    assert fast.status.value == "fail" and "ahead of binance-futures's" in fast.detail and "timedatectl" in fast.remedy
    state.clock_offset_ms = 0
    hl = config("hyperliquid", url, ["BTC"])
    assert check_clock_skew(hl, offline).status.value == "ok"  # from the HTTP Date, to the second
    state.clock_offset_ms = 8_000
    slow = check_clock_skew(hl, offline)
    assert slow.status.value == "fail" and "behind hyperliquid's" in slow.detail


def test_nothing_is_asked_of_a_remote_venue_when_offline_or_on_replay() -> None:
    remote = config("binance-futures", "https://fapi.binance.com", ["BTCUSDT"])
    assert check_symbols(remote, offline).status.value == "skipped"
    assert check_clock_skew(remote, offline).status.value == "skipped"
    assert check_symbols(Config(), offline).status.value == "skipped"
