"""`fractald run` on a fake TWS / IB Gateway (ib_async in the daemon), killed with SIGKILL 20 times.

The same loop as the Hyperliquid crash test (issue 19 asks for 20 kills, some between send and ack): `[broker] kind = "ibkr"` pointed at the
fake TWS on 127.0.0.1 (the TWS socket protocol, driven by ib_async's own client in the
daemon), our client order id in each order's orderRef, stops resting at IB. The future trades
whole contracts, so the account is 100k and the stops sit 300 points away (one contract at
the default risk, inside the exposure caps). After
the kills and a last clean run, the fake's orders, executions and position agree with the
ledger, and the position has its stop at IB.
"""

from __future__ import annotations

import random
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from daemon_harness import DaemonProcess, ctl_json
from venue_daemon_support import (
    candles_ending_now,
    check_both_sides,
    one_life,
    settled,
    wait_for,
    wait_ready_or_exit,
)

pytest.importorskip("ib_async")

from fakevenue.fake_tws import FakeTWS

pytestmark = pytest.mark.slow

SYMBOL = "MES"
KILLS = 20
RISK = 0.0065


@pytest.fixture
def tws_at(tmp_path: Path) -> Iterator[tuple[FakeTWS, Path, float]]:
    candles, close = candles_ending_now(tmp_path / "candles.csv")
    close = round(close * 4) / 4  # on the future's 0.25 tick
    tws = FakeTWS(price=close).start()
    try:
        yield tws, candles, close
    finally:
        tws.stop()


def ibkr_config(tmp: Path, tws: FakeTWS, candles: Path) -> Path:
    cfg = tmp / "fractald.toml"
    cfg.write_text(
        f'[daemon]\nstate_dir = "{tmp / "state"}"\ngate_timeout_s = 60.0\n'
        f'[feed]\nvenue = "replay"\nreplay_path = "{candles}"\nreplay_speed = 0.0\nsymbols = ["{SYMBOL}"]\n'
        f'[broker]\nkind = "ibkr"\nib_host = "127.0.0.1"\nib_port = {tws.port}\nib_client_id = 31\n'
        f'ib_symbol = "{SYMBOL}"\nlot_size = 1.0\ntick_size = 0.25\nstarting_equity = 100000.0\n'
        '[risk]\nmode = "live"\nmax_open_positions = 10\nmin_execution_quality = 0.0\n'
        '[strategies]\nenabled = []\n'
        '[log]\nformat = "json"\nlevel = "info"\n')
    return cfg


def venue_side(tws: FakeTWS) -> dict[str, Any]:
    with tws.lock:
        orders = list(tws.orders.values())
        return {
            "cloids": [o.order_ref for o in orders],
            "fills": {f.exec_id: (f.order.order_ref, float(f.shares)) for f in tws.fills},
            "position": float(tws.position),
            "open": {o.order_ref for o in orders if o.working},
            "stops": sum(o.remaining for o in orders if o.working and o.order_type == "STP"
                         and o.action == "SELL"),
        }


def test_daemon_on_fake_tws_survives_kills_and_both_sides_agree(
        tmp_path: Path, tws_at: tuple[FakeTWS, Path, float]) -> None:
    tws, candles, close = tws_at
    rng = random.Random(19)
    sock = tmp_path / "state" / "control.sock"
    config = ibkr_config(tmp_path, tws, candles)
    levels = (close - 300.0, close + 600.0)

    def latency(seconds: float) -> None:
        tws.ack_delay_s = seconds

    for life in range(KILLS):
        # 0.65 % a trade: at least one whole contract after the stop-outs below, at most two (the
        # exposure cap is 100k at about 43k a contract).
        one_life(config, {}, sock, SYMBOL, life, rng, latency, levels, risk=RISK)
        if life in (2, 4):  # while it is down the price jumps through the stops, then comes back
            tws.set_price(close - 400.0)
            tws.set_price(close)
    daemon = DaemonProcess(config)
    try:
        wait_ready_or_exit(sock, daemon)
        enter = ctl_json(sock, "enter", SYMBOL, "long", "--stop", str(levels[0]), "--target", str(levels[1]),
                         "--risk", str(RISK))
        assert enter["denied"] == [] or enter["denied"][0]["code"] == "position_already_open", enter
        wait_for(lambda: settled(sock, lambda: venue_side(tws)), 60, "the last run to settle")
        books = ctl_json(sock, "positions")
        assert books and books[0]["quantity"] >= 1  # whole contracts, protected at IB
        assert daemon.stop(signal.SIGTERM, timeout=30) == 0
    finally:
        daemon.kill()
    check_both_sides(venue_side(tws), tmp_path / "state" / "fractald.db", books, SYMBOL, KILLS)
