"""GTD orders on a venue without GTD (Hyperliquid: Gtc; Binance: GTC here): the router cancels them at expiry.

Against the fake Hyperliquid on 127.0.0.1 with a real SQLite ledger: a GTD limit far from the
price rests at the venue as Gtc; once its expiry has passed the router cancels it by client
order id and the CANCEL reaches trading. An expiry in the future is left alone, and a
restarted router learns the expiries of the orders it recovers.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import trio
from eth_account import Account
from fakevenue.hyperliquid_exchange import Coin
from fakevenue.hyperliquid_exchange_server import FakeHyperliquid

from fractald.actors.router import Router, RouterSettings
from fractald.core.execution.events import OrderIntent
from fractald.core.execution.orders import OrderEvent, OrderType, TimeInForce, client_order_id
from fractald.core.execution.reports import VenueReport
from fractald.core.models import Side
from fractald.store.writer import AsyncLedger
from fractald.venues.hyperliquid_signing import AgentSigner, NonceClock
from fractald.venues.hyperliquid_venue import HyperliquidSettings, HyperliquidVenue

USER = Account.from_key("0x" + "01" * 32)
AGENT_KEY = "0x" + "02" * 32


def now_ms() -> int:
    return int(time.time() * 1000)


def gtd_entry(key: str, expire_ts: int) -> OrderIntent:
    return OrderIntent(now_ms(), client_order_id(key, "entry"), "BTC", Side.BUY, OrderType.LIMIT, 0.01,
                       price=40_000.0, tif=TimeInForce.GTD, expire_ts=expire_ts, role="entry")


def venue_status(fake: FakeHyperliquid, intent: OrderIntent) -> str:
    return next(o.status for o in fake.exchange.orders.values() if o.cloid == "0x" + intent.client_order_id)


async def test_gtd_orders_are_cancelled_at_expiry_even_after_a_restart(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        fake = FakeHyperliquid([Coin("BTC", 5)], {"BTC": 50_000.0})
        fake.exchange.add_user(USER.address, usdc=100_000.0, agents=(Account.from_key(AGENT_KEY).address,))
        await nursery.start(fake.run)
        ledger = await AsyncLedger.open(tmp_path / "fractald.db")
        settings = HyperliquidSettings(USER.address, "testnet", rest_url=fake.rest_url, ws_url=fake.ws_url)

        def router_on(send: trio.MemorySendChannel[VenueReport]) -> Router:
            venue = HyperliquidVenue(settings, AgentSigner(AGENT_KEY, mainnet=False),
                                     NonceClock(tmp_path / "nonce"))
            return Router(venue, ledger, send, clock_ms=now_ms,
                          settings=RouterSettings(resolve_interval_s=0.05))

        send, receive = trio.open_memory_channel[VenueReport](100)
        soon, later = gtd_entry("soon", now_ms() + 300), gtd_entry("later", now_ms() + 3_600_000)
        first = router_on(send)
        await first.recover()
        await first.submit(soon)
        await first.submit(later)
        assert venue_status(fake, soon) == venue_status(fake, later) == "open"  # rested as Gtc
        second = router_on(send)  # a restart: the expiries come back from the ledger's open intents
        commands_send, commands = trio.open_memory_channel[Any](10)
        await nursery.start(second.run, commands)
        with trio.fail_after(10):
            async for report in receive:  # what trading hears
                if report.kind is OrderEvent.CANCEL and report.client_order_id == soon.client_order_id:
                    break
        assert venue_status(fake, soon) == "canceled"
        assert venue_status(fake, later) == "open" and list(second.expiries) == [later.client_order_id]
        await commands_send.aclose()
        await ledger.aclose()
        nursery.cancel_scope.cancel()
