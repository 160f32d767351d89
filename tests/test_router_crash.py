"""Crash test through the router against the fake Hyperliquid venue: 20 times kill -9.

The kill loop of tests/router_crash_support.py (a router process follows an
operator's plan, keeps a reduce-only stop per open trade, is killed at random
moments, twice the price jumps through the stops while it is down), then
both sides are checked:

* no client order id was sent twice (the venue's own record of actions);
* every venue fill is recorded exactly once in the ledger, for its order;
* positions are equal on both sides;
* every open position has a resting reduce-only stop at the venue covering it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
from eth_account import Account
from fakevenue.hyperliquid_exchange import Coin
from fakevenue.hyperliquid_exchange_server import FakeHyperliquid
from router_crash_support import KILLS, check_ledger, check_positions_stopped, kill_loop

pytestmark = pytest.mark.slow

USER = Account.from_key("0x" + "01" * 32)
AGENT_KEY = "0x" + "02" * 32


async def test_twenty_kills_leave_both_sides_equal_and_every_position_stopped(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    plan_path = tmp_path / "plan.json"
    async with trio.open_nursery() as nursery:
        fake = FakeHyperliquid([Coin("BTC", 5), Coin("ETH", 4)], {"BTC": 50_000.0, "ETH": 3_000.0})
        fake.exchange.add_user(USER.address, usdc=100_000.0, agents=(Account.from_key(AGENT_KEY).address,))
        await nursery.start(fake.run)
        args = ["hyperliquid", fake.rest_url, fake.ws_url, str(state), str(plan_path), USER.address,
                AGENT_KEY]
        await kill_loop(fake, args, plan_path, ("BTC", "ETH"))
        check_both_sides(fake, state / "fractald.db")
        nursery.cancel_scope.cancel()


def check_both_sides(fake: FakeHyperliquid, db: Path) -> None:
    ex = fake.exchange
    sent = [o["c"] for a in ex.actions if a["type"] == "order" for o in a["orders"]]
    assert len(sent) == len(set(sent)), "a client order id went out twice"

    user = ex.users[USER.address.lower()]
    venue_fills = {str(f["tid"]): (f["cloid"][2:], float(f["sz"])) for f in user.fills}
    books = check_ledger(db, venue_fills)

    def stop_cover(symbol: str, qty: float) -> float:
        return sum(float(o.sz) for o in ex.orders.values() if o.user == user.address
                   and o.coin == symbol and o.status == "open" and o.reduce_only
                   and o.trigger_px is not None and o.is_buy == (qty < 0))

    venue_positions = {c: szi for c, (szi, _) in user.positions.items() if abs(szi) > 1e-9}
    check_positions_stopped(books, venue_positions, stop_cover)
    assert len(sent) > KILLS // 2 and len(user.fills) > 4  # it did trade
