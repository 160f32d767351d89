"""One periodic venue reconciliation against the fake Hyperliquid on loopback: wall time, p50/p99.

The account holds a position, its stop, and N resting limit orders of ours; the
ledger's newest fill is a minute old. One reconciliation is what the trading
actor does every `daemon.reconcile_interval_s` while it holds its lock (no bar
is processed meanwhile): `take_snapshot` (openOrders, an orderStatus for each
working order the venue does not list, userFillsByTime, clearinghouseState,
each an unsigned /info POST over a kept-alive httpx connection) and the pure
`plan_repairs` + `account_mismatches`. The rate-limit budget is refilled before
each round, so the figure is latency, not the limiter; the weight one
reconciliation spends is printed with it (at 1200/min it decides how often one
may run: once per `reconcile_interval_s`, 300 s by default, spends little).

    .venv/bin/python bench/bench_reconcile.py [--rounds 200] [--orders 5,50,200]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from eth_account import Account
from fakevenue.hyperliquid_exchange import Coin
from fakevenue.hyperliquid_exchange_server import FakeHyperliquid

from fractald.core.execution.events import OrderIntent
from fractald.core.execution.orders import OrderType, client_order_id
from fractald.core.models import Side
from fractald.routing.reconciliation import (
    AccountLimits,
    BookOrder,
    BooksView,
    account_mismatches,
    plan_repairs,
)
from fractald.routing.snapshot import take_snapshot
from fractald.venues.hyperliquid_signing import AgentSigner, NonceClock
from fractald.venues.hyperliquid_venue import HyperliquidSettings, HyperliquidVenue

USER = Account.from_key("0x" + "01" * 32)
AGENT_KEY = "0x" + "02" * 32


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def one_size(n: int, rounds: int, tmp: Path) -> tuple[list[float], list[float]]:
    fake = FakeHyperliquid([Coin("BTC", 5)], {"BTC": 50_000.0})
    fake.exchange.add_user(USER.address, usdc=1_000_000.0, agents=(Account.from_key(AGENT_KEY).address,))
    async with trio.open_nursery() as nursery:
        await nursery.start(fake.run)
        settings = HyperliquidSettings(USER.address, "testnet", rest_url=fake.rest_url, ws_url=fake.ws_url,
                                       timeout_s=5.0)
        venue = HyperliquidVenue(settings, AgentSigner(AGENT_KEY, mainnet=False), NonceClock(tmp / f"n{n}"))
        now = fake.now_ms()

        def order(role: str, **kw: object) -> OrderIntent:
            return OrderIntent(ts=now, client_order_id=client_order_id("bench", role), symbol="BTC",
                               **kw)  # type: ignore[arg-type]

        await venue.submit(order("entry", side=Side.BUY, order_type=OrderType.MARKET, quantity=0.1,
                                 intended_price=50_000.0))
        placed = [order("stop", side=Side.SELL, order_type=OrderType.STOP_MARKET, quantity=0.1,
                        trigger_price=45_000.0, reduce_only=True)]
        placed += [order(f"bid{i}", side=Side.BUY, order_type=OrderType.LIMIT, quantity=0.001,
                         price=40_000.0 - i) for i in range(n)]
        for i in placed:
            await venue.submit(i)
        working = {i.client_order_id: "BTC" for i in placed}
        books = BooksView({i.client_order_id: BookOrder(i.client_order_id, "BTC", i.quantity, 0.0, now)
                           for i in placed}, frozenset(f.trade_id for f in await venue.fills_since(0)))
        limits = AccountLimits(leverage={"BTC": 20.0})
        walls, plans, weights = [], [], []
        budget = venue.info_rest.budget
        for _ in range(rounds):
            budget.tokens, budget.updated = budget.capacity, trio.current_time()  # latency, not the limiter
            t0 = time.perf_counter()
            snap = await take_snapshot(venue, working, now - 60_000, fake.now_ms())
            t1 = time.perf_counter()
            plan = plan_repairs(books, snap, now_ms=snap.taken_ms, settle_ms=15_000)
            account_mismatches(1_000_000.0, snap.account, snap.position_details, limits)
            t2 = time.perf_counter()
            assert not plan.repairs and not plan.mismatches, plan
            walls.append(t2 - t0)
            plans.append(t2 - t1)
            weights.append(budget.capacity - budget.tokens + (trio.current_time() - budget.updated) * budget.rate)
        nursery.cancel_scope.cancel()
    return walls, plans, weights[0], budget.rate


async def main(rounds: int, sizes: list[int]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            walls, plans, weight, rate = await one_size(n, rounds, Path(tmp))
            ms = [w * 1000 for w in walls]
            print(f"{n + 1:4d} working orders: one reconciliation p50 {statistics.median(ms):.2f} ms, "
                  f"p99 {pct(ms, 0.99):.2f} ms; planning p50 {statistics.median(plans) * 1e6:.0f} us; "
                  f"weight {weight:.0f} of the 1200/min budget ({weight / rate:.1f} s of refill at our "
                  f"80 % share; {rounds} rounds, loopback)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--orders", default="5,50,200")
    args = parser.parse_args()
    trio.run(main, args.rounds, [int(x) for x in args.orders.split(",")])
