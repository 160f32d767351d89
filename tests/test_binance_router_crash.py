"""Crash test through the router against the fake Binance futures venue: 20 times kill -9.

The same harness as tests/test_router_crash.py (Hyperliquid), with Binance:
a router process (tests/binance_router_crash_child.py) follows an operator's
plan of entries and keeps a reduce-only stop in Binance's Algo Service for
every open trade; it is killed with SIGKILL at random moments (some while
the venue holds a request back), restarted each time, and twice the price
jumps through the stops while it is down. Then, from both sides:

* no newClientOrderId was placed twice, and a clientAlgoId only again after
  the earlier one was cancelled (a stop moved by cancel-and-replace);
* every venue fill is recorded exactly once in the ledger, for its order (a
  fired stop's fill under the stop's own client id, not Binance's);
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
from collections import Counter
from pathlib import Path

import pytest
import trio

from fakevenue.binance_exchange import Symbol
from fakevenue.binance_exchange_server import FakeBinanceFutures

journal = pytest.importorskip("fractald.routing.journal")  # lands with the router's journal

from fractald.store.ledger import Ledger  # noqa: E402

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
CHILD = REPO / "tests" / "binance_router_crash_child.py"
KEY, SECRET = "crashTestKey0001", "crashTestSecret0001"
KILLS = 20


def child_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'tests'}"}


async def one_life(args: list[str], rng: random.Random, fake: FakeBinanceFutures) -> None:
    """Start a router, let it work a random while, kill -9 it."""
    proc = await trio.lowlevel.open_process([sys.executable, str(CHILD), *args], env=child_env(),
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


async def settle(args: list[str]) -> bytes:
    """A last life without a kill, until it says it is settled (or 120 s: its output tells why)."""
    proc = await trio.lowlevel.open_process([sys.executable, str(CHILD), *args, "--finish"],
                                            env=child_env(), stdout=subprocess.PIPE)
    output = b""
    assert proc.stdout is not None
    with trio.move_on_after(120):
        while chunk := await proc.stdout.receive_some(65536):
            output += chunk
    proc.kill()
    await proc.wait()
    await proc.stdout.aclose()
    return output


async def test_twenty_kills_through_binance_leave_both_sides_equal_and_stopped(tmp_path: Path) -> None:
    rng = random.Random(20261203)
    state = tmp_path / "state"
    state.mkdir()
    plan_path = tmp_path / "plan.json"
    plan: list[dict[str, object]] = []
    async with trio.open_nursery() as nursery:
        fake = FakeBinanceFutures([Symbol("BTCUSDT"), Symbol("ETHUSDT", tick=0.01)],
                                  {"BTCUSDT": 50_000.0, "ETHUSDT": 3_000.0})
        fake.add_account(KEY, SECRET, wallet=100_000.0)
        await nursery.start(fake.run)
        args = [fake.rest_url, fake.ws_url, str(state), str(plan_path), KEY, SECRET]
        for life in range(KILLS):
            if life % 2 == 0:  # an operator entry: BTC long or ETH short, 2% stop
                long = rng.random() < 0.5
                plan.append({"id": f"op-{life}", "symbol": "BTCUSDT" if long else "ETHUSDT",
                             "side": "BUY" if long else "SELL", "qty": 0.01 if long else 0.1,
                             "price": 50_000.0 if long else 3_000.0,
                             "stop": 49_000.0 if long else 3_060.0})
                plan_path.write_text(json.dumps(plan))
            await one_life(args, rng, fake)
            if life in (8, 15):  # while it is down the price jumps through the stops and back
                fake.set_price("BTCUSDT", 48_000.0)
                fake.set_price("ETHUSDT", 3_100.0)
                fake.set_price("BTCUSDT", 50_000.0)
                fake.set_price("ETHUSDT", 3_000.0)

        output = await settle(args)
        assert b"settled" in output, output[-3000:].decode()
        check_both_sides(fake, state / "fractald.db")
        nursery.cancel_scope.cancel()


def check_both_sides(fake: FakeBinanceFutures, db: Path) -> None:
    acct = fake.exchange.accounts[KEY]
    placed = Counter(o.client_id for o in acct.orders.values() if not o.client_id.startswith("autoclose-"))
    assert max(placed.values()) == 1, "a newClientOrderId was placed twice"
    algos = sorted(acct.algos.values(), key=lambda a: a.algo_id)
    for cid in {a.client_id for a in algos}:
        instances = [a for a in algos if a.client_id == cid]
        assert all(a.status == "CANCELED" for a in instances[:-1]), f"stop {cid} placed twice"

    owner = {str(o.order_id): o.client_id for o in acct.orders.values()}
    owner |= {a.actual_order_id: a.client_id for a in algos if a.actual_order_id}
    venue_fills = {str(t["id"]): (owner[str(t["orderId"])], float(t["qty"])) for t in acct.trades}
    ledger = Ledger.open(db, lock=False)
    try:
        recorded = journal.recorded_fills(ledger)
        rows = ledger.connection.execute(
            "SELECT count(*) FROM events WHERE kind = 'order_filled'").fetchone()[0]
        assert rows == len(recorded), "a venue fill was recorded twice"
        assert recorded == venue_fills, "ledger and venue disagree on fills"
        books = {s: q for s, q in ledger.fill_positions().items() if abs(q) > 1e-9}
        stopped = ledger.connection.execute(
            "SELECT count(*) FROM events WHERE kind = 'order_filled' "
            "AND json_extract(payload, '$.role') LIKE 'stop%'").fetchone()[0]
        assert stopped >= 1, "the jumps through the stops while down left no stop fill in the ledger"
    finally:
        ledger.close()
    venue_positions = {s: p.qty for s, p in acct.positions.items() if abs(p.qty) > 1e-9}
    assert books.keys() == venue_positions.keys()
    for symbol, qty in venue_positions.items():
        assert books[symbol] == pytest.approx(qty)
        stops = [a for a in algos if a.symbol == symbol and a.status == "NEW" and a.reduce_only
                 and a.side == ("BUY" if qty < 0 else "SELL")]
        assert sum(a.qty for a in stops) >= abs(qty) - 1e-9, f"{symbol} {qty} lacks a venue stop"
    assert len(placed) == KILLS // 2 and algos and len(acct.trades) > 4  # every entry; it traded
