"""Crash test through the router against the fake Hyperliquid venue: 20 times kill -9.

A router process (tests/router_crash_child.py) follows an operator's plan of
entries and keeps a reduce-only stop at the venue for every open trade. It
is killed with SIGKILL at random moments (some while the venue holds a
request back, so the kill falls between send and ack), restarted each time,
and twice the price jumps through the stops while it is down. New operator
entries arrive between lives. At the end a last life runs until settled,
then both sides are checked:

* no client order id was sent twice (the venue's own record of actions);
* every venue fill is recorded exactly once in the ledger, for its order;
* positions are equal on both sides;
* every open position has a resting reduce-only stop at the venue covering it.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import trio
from eth_account import Account
from fakevenue.hyperliquid_exchange import Coin
from fakevenue.hyperliquid_exchange_server import FakeHyperliquid

from fractald.routing.journal import recorded_fills
from fractald.store.ledger import Ledger

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
CHILD = REPO / "tests" / "router_crash_child.py"
USER = Account.from_key("0x" + "01" * 32)
AGENT_KEY = "0x" + "02" * 32
KILLS = 20


async def one_life(args: list[str], rng: random.Random, fake: FakeHyperliquid) -> None:
    """Start a router, let it work a random while, kill -9 it."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = await trio.lowlevel.open_process([sys.executable, str(CHILD), *args], env=env,
                                            stdout=subprocess.PIPE)
    try:
        if rng.random() < 0.7:  # mostly after recovery, sometimes in the middle of it
            with trio.move_on_after(30):
                assert proc.stdout is not None
                seen = b""
                while b"recovered" not in seen:
                    chunk = await proc.stdout.receive_some(1024)
                    if not chunk:
                        break
                    seen += chunk
        fake.latency_s = rng.choice([0.0, 0.0, 0.3])  # a held reply: the kill may fall inside it
        await trio.sleep(rng.uniform(0.05, 2.0))
    finally:
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        if proc.stdout is not None:
            await proc.stdout.aclose()
        fake.latency_s = 0.0


async def test_twenty_kills_leave_both_sides_equal_and_every_position_stopped(tmp_path: Path) -> None:
    rng = random.Random(20261203)
    state = tmp_path / "state"
    state.mkdir()
    plan_path = tmp_path / "plan.json"
    plan: list[dict[str, object]] = []
    async with trio.open_nursery() as nursery:
        fake = FakeHyperliquid([Coin("BTC", 5), Coin("ETH", 4)], {"BTC": 50_000.0, "ETH": 3_000.0})
        fake.exchange.add_user(USER.address, usdc=100_000.0, agents=(Account.from_key(AGENT_KEY).address,))
        await nursery.start(fake.run)
        args = [fake.rest_url, fake.ws_url, str(state), str(plan_path), USER.address, AGENT_KEY]
        for life in range(KILLS):
            if life % 2 == 0:  # an operator entry: BTC long or ETH short (one-way: no netting), 2% stop
                long = rng.random() < 0.5
                plan.append({"id": f"op-{life}", "symbol": "BTC" if long else "ETH",
                             "side": "BUY" if long else "SELL", "qty": 0.01 if long else 0.1,
                             "stop": 49_000.0 if long else 3_060.0})
                plan_path.write_text(json.dumps(plan))
            await one_life(args, rng, fake)
            if life in (8, 15):  # while it is down the price jumps through the stops, then comes back
                fake.set_price("BTC", 48_000.0)
                fake.set_price("ETH", 3_100.0)
                fake.set_price("BTC", 50_000.0)
                fake.set_price("ETH", 3_000.0)

        output = await settle(args)
        assert b"settled" in output, output[-3000:].decode()
        check_both_sides(fake, state / "fractald.db")
        nursery.cancel_scope.cancel()


async def settle(args: list[str]) -> bytes:
    """A last life without a kill, until it says it is settled (or 120 s: its output tells why)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = await trio.lowlevel.open_process([sys.executable, str(CHILD), *args, "--finish"], env=env,
                                            stdout=subprocess.PIPE)
    output = b""
    assert proc.stdout is not None
    with trio.move_on_after(120):
        while chunk := await proc.stdout.receive_some(65536):
            output += chunk
    proc.kill()
    await proc.wait()
    await proc.stdout.aclose()
    return output


def check_both_sides(fake: FakeHyperliquid, db: Path) -> None:
    ex = fake.exchange
    sent = [o["c"] for a in ex.actions if a["type"] == "order" for o in a["orders"]]
    assert len(sent) == len(set(sent)), "a client order id went out twice"

    user = ex.users[USER.address.lower()]
    venue_fills = {str(f["tid"]): (f["cloid"][2:], float(f["sz"])) for f in user.fills}
    ledger = Ledger.open(db, lock=False)
    try:
        recorded = recorded_fills(ledger)
        rows = ledger.connection.execute("SELECT count(*) FROM events WHERE kind = 'order_filled'").fetchone()[0]
        assert rows == len(recorded), "a venue fill was recorded twice"
        assert recorded == venue_fills, "ledger and venue disagree on fills"
        books = {s: q for s, q in ledger.fill_positions().items() if abs(q) > 1e-9}
        stopped = ledger.connection.execute(
            "SELECT count(*) FROM events WHERE kind = 'order_filled' "
            "AND json_extract(payload, '$.role') LIKE 'stop%'").fetchone()[0]
        assert stopped >= 1, "the jumps through the stops while down left no stop fill in the ledger"
    finally:
        ledger.close()
    venue_positions = {c: szi for c, (szi, _) in user.positions.items() if abs(szi) > 1e-9}
    assert books.keys() == venue_positions.keys()
    for symbol, qty in venue_positions.items():
        assert books[symbol] == pytest.approx(qty)
        stops = [o for o in ex.orders.values() if o.user == user.address and o.coin == symbol
                 and o.status == "open" and o.reduce_only and o.trigger_px is not None
                 and o.is_buy == (qty < 0)]
        assert sum(float(o.sz) for o in stops) >= abs(qty) - 1e-9, f"{symbol} {qty} lacks a venue stop"
    assert len(sent) > KILLS // 2 and len(user.fills) > 4  # it did trade
