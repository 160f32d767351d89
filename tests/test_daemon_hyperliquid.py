"""`fractald run` trading on the fake Hyperliquid venue: signed orders out, fills back, books equal.

The daemon is a real subprocess with `[broker] kind = "hyperliquid"` pointed
at the fake on 127.0.0.1 (which recovers every signer and refuses what the
approved agent did not sign). An operator's entry goes out through the
router; the fill comes back over the user stream; the protective stop rests
at the venue (reduce-only trigger); a price jump through it closes the trade
at the venue, and the ledger, `fractalctl` and the venue agree throughout.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest
from daemon_harness import DaemonProcess, ctl_json, wait_ready
from eth_account import Account
from fakevenue.hyperliquid_exchange import Coin
from fakevenue.hyperliquid_exchange_server import FakeHyperliquid
from venue_daemon_support import FakeInThread, candles_ending_now, ledger_view, wait_for

pytestmark = pytest.mark.slow

USER = Account.from_key("0x" + "01" * 32)
AGENT_KEY = "0x" + "02" * 32


def hl_config(tmp: Path, fake: FakeHyperliquid, candles: Path) -> Path:
    cfg = tmp / "fractald.toml"
    cfg.write_text(
        f'[daemon]\nstate_dir = "{tmp / "state"}"\ngate_timeout_s = 60.0\n'
        f'[feed]\nvenue = "replay"\nreplay_path = "{candles}"\nreplay_speed = 0.0\nsymbols = ["BTC"]\n'
        f'[broker]\nkind = "hyperliquid"\nnetwork = "testnet"\nrest_url = "{fake.rest_url}"\n'
        f'ws_url = "{fake.ws_url}"\naccount_address = "{USER.address}"\n'
        f'private_key_credential = "hl-agent"\n[broker.leverage]\nBTC = 5\n'
        f'[risk]\nmode = "live"\n'
        f'[log]\nformat = "json"\nlevel = "info"\n')
    return cfg


def credentials(tmp: Path) -> dict[str, str]:
    creds = tmp / "creds"
    creds.mkdir(exist_ok=True)
    (creds / "hl-agent").write_text(AGENT_KEY + "\n")
    return {"CREDENTIALS_DIRECTORY": str(creds)}


def make_fake(price: float) -> FakeHyperliquid:
    fake = FakeHyperliquid([Coin("BTC", 5)], {"BTC": price})
    fake.exchange.add_user(USER.address, usdc=100_000.0, agents=(Account.from_key(AGENT_KEY).address,))
    return fake


def venue_position(fake: FakeHyperliquid) -> float:
    user = fake.exchange.users[USER.address.lower()]
    return user.positions.get("BTC", (0.0, 0.0))[0]


def venue_stops(fake: FakeHyperliquid) -> list[Any]:
    return [o for o in fake.exchange.orders.values() if o.user == USER.address.lower() and o.status == "open"
            and o.reduce_only and o.trigger_px is not None]


def sent_cloids(fake: FakeHyperliquid) -> list[str]:
    return [o["c"] for a in fake.exchange.actions if a["type"] == "order" for o in a["orders"]]


def test_daemon_trades_on_fake_hyperliquid_and_both_sides_agree(tmp_path: Path) -> None:
    candles, close = candles_ending_now(tmp_path / "candles.csv")
    fake = make_fake(close)
    sock = tmp_path / "state" / "control.sock"
    with FakeInThread(fake) as venue:
        daemon = DaemonProcess(hl_config(tmp_path, fake, candles), env=credentials(tmp_path))
        try:
            wait_ready(sock, timeout=90)
            wait_for(lambda: ctl_json(sock, "status")["trading"]["bars_processed"] >= 290, 60, "replay")
            stop = round(close * 0.98, 1)
            target = round(close * 1.05, 1)  # rests at the venue as a reduce-only limit
            entered = ctl_json(sock, "enter", "BTC", "long", "--stop", str(stop), "--target", str(target))
            assert not entered["denied"], entered
            held = wait_for(lambda: venue.call(venue_position, fake), 30, "the entry to fill at the venue")
            assert held > 0
            stops = wait_for(lambda: venue.call(venue_stops, fake), 30, "the stop to rest at the venue")
            assert sum(float(o.sz) for o in stops) == pytest.approx(held)
            assert all(not o.is_buy for o in stops)
            positions = wait_for(lambda: ctl_json(sock, "positions"), 30, "the books")
            assert [p["symbol"] for p in positions] == ["BTC"]
            assert positions[0]["quantity"] == pytest.approx(held)

            venue.call(fake.set_price, "BTC", stop * 0.99)  # through the stop: the venue fires it
            wait_for(lambda: venue.call(venue_position, fake) == 0.0, 30, "the stop to fire")
            wait_for(lambda: not ctl_json(sock, "positions"), 30, "the books to go flat")
            trades = wait_for(lambda: ctl_json(sock, "trades"), 30, "the closed trade")
            assert len(trades) == 1 and trades[0]["symbol"] == "BTC"
            assert ctl_json(sock, "status")["router"]["recovered"] is True
            assert venue.call(lambda: fake.exchange.users[USER.address.lower()].leverage) == {"BTC": (5, True)}
            assert daemon.stop(signal.SIGTERM, timeout=30) == 0
            noise = [line for line in daemon.log_lines()
                     if line.get("event") in ("order_anomaly", "actor_restarting", "actor_exception")]
            assert not noise, noise
        finally:
            daemon.kill()
        cloids = venue.call(sent_cloids, fake)
        venue_fills = venue.call(lambda: {str(f["tid"]): (f["cloid"][2:], float(f["sz"]))
                                          for f in fake.exchange.users[USER.address.lower()].fills})
    assert len(cloids) == len(set(cloids)), "a client order id went out twice"
    fills, rows, books = ledger_view(tmp_path / "state" / "fractald.db")
    assert rows == len(fills) == len(venue_fills) == 2  # the entry and its stop, each once
    assert fills == venue_fills
    assert books == {}


def test_a_position_changed_by_hand_at_the_venue_puts_the_daemon_in_reducing(tmp_path: Path) -> None:
    candles, close = candles_ending_now(tmp_path / "candles.csv")
    fake = make_fake(close)
    sock = tmp_path / "state" / "control.sock"
    with FakeInThread(fake) as venue:
        config = hl_config(tmp_path, fake, candles)
        config.write_text(config.read_text().replace("gate_timeout_s = 60.0\n",
                                                     "gate_timeout_s = 60.0\nreconcile_interval_s = 5.0\n"))
        daemon = DaemonProcess(config, env=credentials(tmp_path))
        try:
            wait_ready(sock, timeout=90)
            wait_for(lambda: ctl_json(sock, "status")["trading"]["bars_processed"] >= 290, 60, "replay")
            entered = ctl_json(sock, "enter", "BTC", "long", "--stop", str(round(close * 0.98, 1)),
                               "--target", str(round(close * 1.05, 1)))
            assert not entered["denied"], entered
            held = wait_for(lambda: venue.call(venue_position, fake), 30, "the entry to fill at the venue")
            wait_for(lambda: ctl_json(sock, "positions"), 30, "the books")

            def by_hand() -> None:  # someone adds to the position on the venue's website
                user = fake.exchange.users[USER.address.lower()]
                user.positions["BTC"] = (held + 0.5, close)

            venue.call(by_hand)
            tripped = wait_for(lambda: [b for b in ctl_json(sock, "breakers")["breakers"]
                                        if b["breaker"] == "reconciliation" and b["tripped"]], 40,
                               "the reconciliation breaker")
            assert tripped[0]["state"] == "REDUCING" and "position" in tripped[0]["reason"]
            assert daemon.stop(signal.SIGTERM, timeout=30) == 0
        finally:
            daemon.kill()
    differs = [line for line in daemon.log_lines() if line.get("event") == "reconcile_differs"]
    assert differs, "a first sighting is only a warning (a fill may be on its way)"
