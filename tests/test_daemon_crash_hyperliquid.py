"""`fractald run` on the fake Hyperliquid, killed with SIGKILL 20 times while it trades.

The daemon (a real subprocess, the whole daemon: store, trading, router,
feeds, control socket) is started again after every kill, as systemd would.
In between, the operator enters trades and sometimes flattens; some kills
fall while the fake holds a reply back (between send and ack), some in the
middle of start-up recovery, and twice the price jumps through the stops
while the daemon is down. A last clean run settles, then both sides are
checked:

* no client order id went out twice (the venue's own record of actions);
* every intent is resolved: the ledger's open intents are exactly our
  orders the venue still holds open;
* every venue fill is in the ledger once, for its order;
* the venue's position equals the ledger's (and `fractalctl positions`);
* every open position has resting reduce-only stops at the venue covering it.
"""

from __future__ import annotations

import random
import signal
from pathlib import Path
from typing import Any

import pytest
from daemon_harness import DaemonProcess, ctl_json
from test_daemon_hyperliquid import (
    USER,
    credentials,
    hl_config,
    make_fake,
    sent_cloids,
)
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

KILLS = 20
# Only the operator trades (no strategy reads the replay); a jump through a stop is (truly) awful
# execution, and the execution-quality gate would refuse every later entry of the test.
RISK = ('[risk]\nmode = "live"\nmax_open_positions = 10\nmin_execution_quality = 0.0\n'
        '[strategies]\nenabled = []\n')


def crash_config(tmp: Path, fake: Any, candles: Path) -> Path:
    cfg = hl_config(tmp, fake, candles)
    cfg.write_text(cfg.read_text().replace('[risk]\nmode = "live"\n', RISK))
    return cfg


def venue_side(fake: Any) -> dict[str, Any]:
    user = fake.exchange.users[USER.address.lower()]
    ours = [o for o in fake.exchange.orders.values() if o.user == user.address]
    return {
        "cloids": sent_cloids(fake),
        "fills": {str(f["tid"]): (f["cloid"][2:], float(f["sz"])) for f in user.fills},
        "position": user.positions.get("BTC", (0.0, 0.0))[0],
        "open": {o.cloid[2:] for o in ours if o.status == "open" and o.cloid},
        "stops": sum(float(o.sz) for o in ours if o.status == "open" and o.reduce_only
                     and o.trigger_px is not None and not o.is_buy),
    }


def test_twenty_kills_of_the_daemon_lose_and_repeat_nothing_at_the_venue(tmp_path: Path) -> None:
    rng = random.Random(20261203)
    candles, close = candles_ending_now(tmp_path / "candles.csv")
    fake = make_fake(close)
    sock = tmp_path / "state" / "control.sock"
    env = credentials(tmp_path)
    with FakeInThread(fake) as venue:
        config = crash_config(tmp_path, fake, candles)
        levels = (round(close * 0.98, 1), round(close * 1.05, 1))

        def latency(seconds: float) -> None:
            venue.call(setattr, fake, "latency_s", seconds)

        for life in range(KILLS):
            one_life(config, env, sock, "BTC", life, rng, latency, levels)
            side = venue.call(venue_side, fake)
            print("after life", life, {k: side[k] for k in ("position", "open", "stops")}, len(side["fills"]))
            if life in (8, 15):  # while it is down the price jumps through the stops, then comes back
                venue.call(fake.set_price, "BTC", close * 0.95)
                venue.call(fake.set_price, "BTC", close)
        daemon = DaemonProcess(config, env=env)
        try:
            wait_ready_or_exit(sock, daemon)
            wait_for(lambda: settled(sock, lambda: venue.call(venue_side, fake)), 60, "the last run to settle")
            books = ctl_json(sock, "positions")
            assert daemon.stop(signal.SIGTERM, timeout=30) == 0
        finally:
            daemon.kill()
        side = venue.call(venue_side, fake)
    check_both_sides(side, tmp_path / "state" / "fractald.db", books, "BTC", KILLS)
