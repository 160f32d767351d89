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

import json
import random
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from daemon_harness import DaemonProcess, ctl_json, fractalctl
from test_daemon_hyperliquid import (
    USER,
    credentials,
    hl_config,
    ledger_view,
    make_fake,
    sent_cloids,
)
from venue_daemon_support import FakeInThread, candles_ending_now, wait_for

from fractald.store.ledger import Ledger

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


def ready(sock: Path) -> bool:
    result = fractalctl(sock, "--json", "status", timeout=10) if sock.exists() else None
    return result is not None and result.returncode == 0 and '"ready": true' in result.stdout


def wait_ready(sock: Path, daemon: DaemonProcess, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if daemon.proc.poll() is not None:
            raise AssertionError(f"the daemon exited {daemon.proc.returncode}: {daemon.log_lines()[-8:]}")
        if ready(sock):
            return
        time.sleep(0.1)
    raise AssertionError(f"not ready within {timeout}s: {daemon.log_lines()[-8:]}")


def operate(sock: Path, life: int, price: float) -> None:
    """The operator's action of this life; a kill may cut it short (no answer is fine).

    One manual trade per side and symbol is open at a time (the engine denies a second with
    `position_already_open`), so entries alternate with flattens and stop-outs.
    """
    if life % 2 == 0:
        r = fractalctl(sock, "--json", "enter", "BTC", "long", "--stop", str(round(price * 0.98, 1)),
                       "--target", str(round(price * 1.05, 1)), timeout=10)
    elif life % 5 == 3:
        r = fractalctl(sock, "--json", "flatten", "BTC", timeout=10)
    else:
        return
    answer = json.loads(r.stdout) if r.returncode == 0 else r.stderr[-200:]
    if isinstance(answer, dict):
        answer = {k: answer.get(k) for k in ("trade_id", "denied", "events")}
    print("life", life, r.args[5:7], answer)  # shown when the test fails


def one_life(config: Path, env: dict[str, str], sock: Path, life: int, rng: random.Random,
             venue: FakeInThread, price: float) -> None:
    daemon = DaemonProcess(config, env=env)
    try:
        if rng.random() < 0.2:  # in the middle of start-up: recovery, asking the venue
            time.sleep(rng.uniform(0.5, 3.0))
            return
        wait_ready(sock, daemon)
        latency = rng.choice([0.0, 0.0, 0.3])  # a held reply: the kill may fall inside it
        venue.call(setattr, venue.fake, "latency_s", latency)
        operate(sock, life, price)
        time.sleep(rng.uniform(0.0, 1.5))
    finally:
        daemon.kill()
        venue.call(setattr, venue.fake, "latency_s", 0.0)
        side = venue.call(venue_side, venue.fake)
        print("after life", life, {k: side[k] for k in ("position", "open", "stops")}, len(side["fills"]))


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


def settled(sock: Path, venue: FakeInThread) -> bool:
    status = ctl_json(sock, "status")
    if status["router"]["unresolved"]:
        return False
    books = sum(p["quantity"] for p in ctl_json(sock, "positions"))
    side = venue.call(venue_side, venue.fake)
    return abs(books - side["position"]) < 1e-9 and side["stops"] >= side["position"] - 1e-9


def test_twenty_kills_of_the_daemon_lose_and_repeat_nothing_at_the_venue(tmp_path: Path) -> None:
    rng = random.Random(20261203)
    candles, close = candles_ending_now(tmp_path / "candles.csv")
    fake = make_fake(close)
    sock = tmp_path / "state" / "control.sock"
    env = credentials(tmp_path)
    with FakeInThread(fake) as venue:
        config = crash_config(tmp_path, fake, candles)
        for life in range(KILLS):
            one_life(config, env, sock, life, rng, venue, close)
            if life in (8, 15):  # while it is down the price jumps through the stops, then comes back
                venue.call(fake.set_price, "BTC", close * 0.95)
                venue.call(fake.set_price, "BTC", close)
        daemon = DaemonProcess(config, env=env)
        try:
            wait_ready(sock, daemon)
            wait_for(lambda: settled(sock, venue), 60, "the last run to settle")
            books = ctl_json(sock, "positions")
            assert daemon.stop(signal.SIGTERM, timeout=30) == 0
        finally:
            daemon.kill()
        side = venue.call(venue_side, fake)
    check_both_sides(side, tmp_path / "state" / "fractald.db", books)


def check_both_sides(side: dict[str, Any], db: Path, books: list[dict[str, Any]]) -> None:
    assert len(side["cloids"]) == len(set(side["cloids"])), "a client order id went out twice"
    fills, rows, positions = ledger_view(db)
    assert rows == len(fills), "a venue fill was recorded twice"
    assert fills == side["fills"], "ledger and venue disagree on fills"
    assert positions.get("BTC", 0.0) == pytest.approx(side["position"])
    assert sum(p["quantity"] for p in books) == pytest.approx(side["position"])
    ledger = Ledger.open(db, lock=False)
    try:
        pending = {r.client_order_id for r in ledger.pending_intents()}
        stopped = ledger.connection.execute(
            "SELECT count(*) FROM events WHERE kind = 'order_filled' "
            "AND json_extract(payload, '$.role') LIKE 'stop%'").fetchone()[0]
    finally:
        ledger.close()
    assert pending == side["open"], "an intent is unresolved, or the venue holds an order we forgot"
    assert side["stops"] >= side["position"] - 1e-9, "an open position lacks its venue stop"
    assert stopped >= 1, "the jumps through the stops while down left no stop fill in the ledger"
    assert len(side["cloids"]) > KILLS // 2 and len(side["fills"]) > 4  # it did trade
