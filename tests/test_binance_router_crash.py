"""Crash test through the router against the fake Binance futures venue: 20 times kill -9.

The kill loop of tests/router_crash_support.py, as for Hyperliquid
(tests/test_router_crash.py), with Binance: the router keeps a reduce-only
stop in Binance's Algo Service for every open trade. Then, from both sides:

* no newClientOrderId was placed twice, and a clientAlgoId only again after
  the earlier one was cancelled (a stop moved by cancel-and-replace);
* every venue fill is recorded exactly once in the ledger, for its order (a
  fired stop's fill under the stop's own client id, not Binance's);
* positions are equal on both sides;
* every open position has a resting reduce-only stop at the venue covering it.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import trio
from fakevenue.binance_exchange import Symbol
from fakevenue.binance_exchange_server import FakeBinanceFutures
from router_crash_support import KILLS, check_ledger, check_positions_stopped, kill_loop

pytestmark = pytest.mark.slow

KEY, SECRET = "crashTestKey0001", "crashTestSecret0001"


async def test_twenty_kills_through_binance_leave_both_sides_equal_and_stopped(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    plan_path = tmp_path / "plan.json"
    async with trio.open_nursery() as nursery:
        fake = FakeBinanceFutures([Symbol("BTCUSDT"), Symbol("ETHUSDT", tick=0.01)],
                                  {"BTCUSDT": 50_000.0, "ETHUSDT": 3_000.0})
        fake.add_account(KEY, SECRET, wallet=100_000.0)
        await nursery.start(fake.run)
        args = ["binance", fake.rest_url, fake.ws_url, str(state), str(plan_path), KEY, SECRET]
        await kill_loop(fake, args, plan_path, ("BTCUSDT", "ETHUSDT"))
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
    books = check_ledger(db, venue_fills)

    def stop_cover(symbol: str, qty: float) -> float:
        return sum(a.qty for a in algos if a.symbol == symbol and a.status == "NEW" and a.reduce_only
                   and a.side == ("BUY" if qty < 0 else "SELL"))

    venue_positions = {s: p.qty for s, p in acct.positions.items() if abs(p.qty) > 1e-9}
    check_positions_stopped(books, venue_positions, stop_cover)
    assert len(placed) == KILLS // 2 and algos and len(acct.trades) > 4  # every entry; it traded
