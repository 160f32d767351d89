"""`fractald run` on the fake Binance USD-M venue, killed with SIGKILL 20 times while it trades.

The same loop as the Hyperliquid crash test (tests/test_daemon_crash_hyperliquid.py), as issue 18 asks:
`[broker] kind = "binance-futures"` pointed at the fake on 127.0.0.1 (which checks every HMAC
signature and timestamp window), API key and secret from credential files. Orders are placed
with our client ids, stops in Binance's Algo Service; after the kills and a last clean run,
the venue and the ledger agree on every order, fill, position and stop.
"""

from __future__ import annotations

import random
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from daemon_harness import DaemonProcess, ctl_json
from fakevenue.binance_exchange import Symbol
from fakevenue.binance_exchange_server import FakeBinanceFutures
from venue_daemon_support import (
    FakeInThread,
    candles_ending_now,
    check_both_sides,
    one_life,
    settled,
    wait_for,
    wait_ready_or_exit,
)

pytestmark = pytest.mark.slow

KEY, SECRET = "daemonTestKey0001", "daemonTestSecret0001"
SYMBOL = "BTCUSDT"
KILLS = 20


def binance_config(tmp: Path, fake: FakeBinanceFutures, candles: Path) -> Path:
    cfg = tmp / "fractald.toml"
    cfg.write_text(
        f'[daemon]\nstate_dir = "{tmp / "state"}"\ngate_timeout_s = 60.0\n'
        f'[feed]\nvenue = "replay"\nreplay_path = "{candles}"\nreplay_speed = 0.0\nsymbols = ["{SYMBOL}"]\n'
        f'[broker]\nkind = "binance-futures"\nnetwork = "testnet"\nrest_url = "{fake.rest_url}"\n'
        f'ws_url = "{fake.ws_url}"\napi_key_credential = "binance-key"\n'
        f'api_secret_credential = "binance-secret"\n[broker.leverage]\n{SYMBOL} = 5\n'
        '[risk]\nmode = "live"\nmax_open_positions = 10\nmin_execution_quality = 0.0\n'
        '[strategies]\nenabled = []\n'
        '[log]\nformat = "json"\nlevel = "info"\n')
    return cfg


def credentials(tmp: Path) -> dict[str, str]:
    creds = tmp / "creds"
    creds.mkdir(exist_ok=True)
    (creds / "binance-key").write_text(KEY + "\n")
    (creds / "binance-secret").write_text(SECRET + "\n")
    return {"CREDENTIALS_DIRECTORY": str(creds)}


def venue_side(fake: FakeBinanceFutures) -> dict[str, Any]:
    acct = fake.exchange.accounts[KEY]
    orders = [o for o in acct.orders.values() if not o.client_id.startswith("autoclose-")]
    algos = list(acct.algos.values())
    owner = {str(o.order_id): o.client_id for o in acct.orders.values()}
    owner |= {a.actual_order_id: a.client_id for a in algos if a.actual_order_id}
    position = acct.positions.get(SYMBOL)
    return {
        "cloids": [o.client_id for o in orders] + [a.client_id for a in algos],
        "fills": {str(t["id"]): (owner[str(t["orderId"])], float(t["qty"])) for t in acct.trades},
        "position": position.qty if position is not None else 0.0,
        "open": ({o.client_id for o in orders if o.status in ("NEW", "PARTIALLY_FILLED")}
                 | {a.client_id for a in algos if a.status == "NEW"}),
        "stops": sum(a.qty for a in algos if a.status == "NEW" and a.reduce_only and a.side == "SELL"),
        "leverage": dict(acct.leverage),
    }


def test_daemon_on_fake_binance_survives_kills_and_both_sides_agree(tmp_path: Path) -> None:
    rng = random.Random(18)
    candles, close = candles_ending_now(tmp_path / "candles.csv")
    fake = FakeBinanceFutures([Symbol(SYMBOL)], {SYMBOL: close})
    fake.add_account(KEY, SECRET, wallet=100_000.0)
    sock = tmp_path / "state" / "control.sock"
    env = credentials(tmp_path)
    with FakeInThread(fake) as venue:
        config = binance_config(tmp_path, fake, candles)
        levels = (round(close * 0.98, 1), round(close * 1.05, 1))

        def latency(seconds: float) -> None:
            venue.call(setattr, fake, "latency_s", seconds)

        for life in range(KILLS):
            one_life(config, env, sock, SYMBOL, life, rng, latency, levels)
            if life in (2, 4, 12):  # while it is down the price jumps through the stops, then comes back
                venue.call(fake.set_price, SYMBOL, close * 0.95)
                venue.call(fake.set_price, SYMBOL, close)
        daemon = DaemonProcess(config, env=env)
        try:
            wait_ready_or_exit(sock, daemon)
            enter = ctl_json(sock, "enter", SYMBOL, "long", "--stop", str(round(close * 0.98, 1)),
                             "--target", str(round(close * 1.05, 1)))
            assert enter["denied"] == [] or enter["denied"][0]["code"] == "position_already_open", enter
            wait_for(lambda: settled(sock, lambda: venue.call(venue_side, fake)), 60, "the last run to settle")
            books = ctl_json(sock, "positions")
            assert books and books[0]["quantity"] > 0  # it holds a trade, protected at the venue
            assert daemon.stop(signal.SIGTERM, timeout=30) == 0
        finally:
            daemon.kill()
        side = venue.call(venue_side, fake)
    assert side["leverage"] == {SYMBOL: 5}  # [broker.leverage], set by the daemon at start
    placed = Counter(side["cloids"])
    assert max(placed.values()) == 1, f"placed twice: {[c for c, n in placed.items() if n > 1]}"
    check_both_sides(side, tmp_path / "state" / "fractald.db", books, SYMBOL, KILLS)
