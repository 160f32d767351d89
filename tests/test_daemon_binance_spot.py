"""`fractald run` on the fake Binance spot venue, killed with SIGKILL 20 times while it trades.

The futures crash loop (tests/test_daemon_binance.py) on spot, as issue 18 asks:
`[broker] kind = "binance-spot"` pointed at the fake spot venue on 127.0.0.1 (signed REST on
/api/v3, balances that lock, the user data stream as a WebSocket API subscription by
signature). The position is the coins held; each trade's stop rests at the venue as a
STOP_LOSS_LIMIT; while the daemon is down the price jumps through the stops (they trigger and
fill when the price comes back to their limit). After the kills and a last clean run the venue
and the ledger agree on every order, fill, balance and stop, and a short entry is denied with
its code.
"""

from __future__ import annotations

import math
import random
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from daemon_harness import DaemonProcess, ctl_json
from fakevenue.binance_exchange import Symbol
from fakevenue.binance_spot_server import FakeBinanceSpot
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

KEY, SECRET = "daemonSpotKey0001", "daemonSpotSecret0001"
SYMBOL = "BTCUSDT"
STEP = 0.00001
KILLS = 20


def spot_config(tmp: Path, fake: FakeBinanceSpot, candles: Path) -> Path:
    cfg = tmp / "fractald.toml"
    cfg.write_text(
        f'[daemon]\nstate_dir = "{tmp / "state"}"\ngate_timeout_s = 60.0\n'
        f'[feed]\nvenue = "replay"\nreplay_path = "{candles}"\nreplay_speed = 0.0\nsymbols = ["{SYMBOL}"]\n'
        f'[broker]\nkind = "binance-spot"\nnetwork = "testnet"\nrest_url = "{fake.rest_url}"\n'
        f'ws_url = "{fake.ws_api_url}"\napi_key_credential = "binance-key"\n'
        'api_secret_credential = "binance-secret"\n'
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


def venue_side(fake: FakeBinanceSpot) -> dict[str, Any]:
    acct = fake.exchange.accounts[KEY]
    orders = list(acct.orders.values())
    owner = {o.order_id: o.client_id for o in orders}
    live = [o for o in orders if o.status in ("NEW", "PARTIALLY_FILLED")]
    return {
        "cloids": [o.client_id for o in orders],
        "fills": {str(t["id"]): (owner[t["orderId"]], float(t["qty"])) for t in acct.trades},
        # The bot's coins: whole lot steps (the dust a fee in coins leaves is not a position).
        "position": round(math.floor(acct.total("BTC") / STEP + 1e-9) * STEP, 12),
        "open": {o.client_id for o in live},
        "stops": sum(o.qty - o.executed for o in live
                     if o.type == "STOP_LOSS_LIMIT" and o.side == "SELL"),
    }


def test_daemon_on_fake_binance_spot_survives_kills_and_both_sides_agree(tmp_path: Path) -> None:
    rng = random.Random(18)
    candles, close = candles_ending_now(tmp_path / "candles.csv")
    fake = FakeBinanceSpot([Symbol(SYMBOL, tick=0.01, step=STEP, min_qty=0.00001, min_notional=5.0)],
                           {SYMBOL: close})
    acct = fake.add_account(KEY, SECRET, wallet=100_000.0)
    # Fees in BNB (fee burn on): the coins bought are what was traded. A BUY's fee taken from
    # the coins leaves dust below a lot step each time, which adds up across trades to a step
    # the books do not hold (tests/test_binance_spot_venue.py covers one such trade).
    fake.exchange.fee_in = "bnb"
    fake.exchange.prices["BNBUSDT"] = 600.0
    acct.free["BNB"] = 10.0
    sock = tmp_path / "state" / "control.sock"
    env = credentials(tmp_path)
    with FakeInThread(fake) as venue:
        config = spot_config(tmp_path, fake, candles)
        levels = (round(close * 0.98, 2), round(close * 1.05, 2))

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
            short = ctl_json(sock, "enter", SYMBOL, "short", "--stop", str(round(close * 1.02, 2)),
                             "--target", str(round(close * 0.95, 2)))
            assert short["denied"][0]["code"] == "long_only", short  # spot cannot sell short
            enter = ctl_json(sock, "enter", SYMBOL, "long", "--stop", str(levels[0]),
                             "--target", str(levels[1]))
            assert enter["denied"] == [] or enter["denied"][0]["code"] == "position_already_open", enter
            wait_for(lambda: settled(sock, lambda: venue.call(venue_side, fake)), 60, "the last run to settle")
            books = ctl_json(sock, "positions")
            assert books and books[0]["quantity"] > 0  # it holds a trade, protected at the venue
            assert daemon.stop(signal.SIGTERM, timeout=30) == 0
        finally:
            daemon.kill()
        side = venue.call(venue_side, fake)
    print("venue side:", side)  # shown when the test fails
    placed = Counter(side["cloids"])
    assert max(placed.values()) == 1, f"placed twice: {[c for c, n in placed.items() if n > 1]}"
    # An entry and its venue stop per trade (targets are kept by the daemon on spot): at least
    # three trades' worth.
    check_both_sides(side, tmp_path / "state" / "fractald.db", books, SYMBOL, KILLS, min_orders=6)
