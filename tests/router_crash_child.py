"""One life of a router for the crash tests: recover, follow the operator's plan, keep stops at the venue.

    python tests/router_crash_child.py hyperliquid REST_URL WS_URL STATE_DIR PLAN_JSON ACCOUNT AGENT_KEY [--finish]
    python tests/router_crash_child.py binance REST_URL WS_URL STATE_DIR PLAN_JSON KEY SECRET [--finish]

Prints "recovered" once every intent without an outcome is resolved, then
loops: an entry for every plan item not yet recorded (market, with the
router: recorded and claimed before it is sent), and `protect()` with one
reduce-only stop per open trade (on Binance held in its Algo Service).
Killed with SIGKILL by tests/router_crash_support.py at random moments.
With --finish it exits 0 once nothing is unresolved and the venue holds
exactly the stops wanted. The venue is the only part that differs
(`VENUES`): the same router, journal and plan for each.

The plan is a JSON list of {"id", "symbol", "side": "BUY"|"SELL", "qty", "stop"}
(and "price", the market price a Binance market order is sized at).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import attrs
import trio

from fractald.actors.router import Router, RouterSettings
from fractald.core.execution.events import OrderIntent
from fractald.core.execution.orders import OrderType, client_order_id
from fractald.core.execution.reports import VenueReport
from fractald.core.models import Side
from fractald.routing import protection
from fractald.routing.journal import LedgerJournal
from fractald.store.writer import AsyncLedger


def now_ms() -> int:
    return int(time.time() * 1000)


@attrs.frozen
class VenueParts:
    """What differs between venues: the venue, the router's clock, what an entry needs first."""

    venue: Any
    clock_ms: Callable[[], int]
    before_entry: Callable[[dict[str, Any]], None] = lambda item: None


async def hyperliquid(rest_url: str, ws_url: str, state: Path, account: str, key: str) -> VenueParts:
    from fractald.venues.hyperliquid_signing import AgentSigner, NonceClock
    from fractald.venues.hyperliquid_venue import HyperliquidSettings, HyperliquidVenue

    venue = HyperliquidVenue(HyperliquidSettings(account, "testnet", rest_url=rest_url, ws_url=ws_url,
                                                 timeout_s=5.0),
                             AgentSigner(key, mainnet=False), NonceClock(state / "hyperliquid-nonce"))
    return VenueParts(venue, now_ms)


async def binance(rest_url: str, ws_url: str, state: Path, key: str, secret: str) -> VenueParts:
    from fractald.venues.binance import Market
    from fractald.venues.binance_rest import BinanceRest
    from fractald.venues.binance_venue import BinanceVenue

    rest = BinanceRest(Market.FUTURES, rest_url, key, secret, timeout_s=5.0)
    venue = BinanceVenue(Market.FUTURES, rest, ws_url, ["BTCUSDT", "ETHUSDT"])
    await venue.start()

    def set_price(item: dict[str, Any]) -> None:
        venue.last_price[item["symbol"]] = float(item["price"])

    return VenueParts(venue, lambda: venue.rest.clock.venue_time(now_ms()), set_price)


VENUES: dict[str, Callable[[str, str, Path, str, str], Awaitable[VenueParts]]] = {
    "hyperliquid": hyperliquid,
    "binance": binance,
}


async def stop_for(ledger: AsyncLedger, journal: LedgerJournal,
                   item: dict[str, Any]) -> protection.WantedStop | None:
    """The stop this trade wants, or None (entry not filled, or the trade ended on its stop)."""
    entry_qty = journal.filled.get(client_order_id(item["id"], "entry"), 0.0)
    if entry_qty <= 0:
        return None
    n = 1
    while True:  # a stop that was refused or cancelled is replaced by the next one (a new id)
        coid = client_order_id(item["id"], f"stop{n}")
        if journal.filled.get(coid, 0.0) > 0:
            return None  # stopped out (the stop is the whole size)
        record = await ledger.get_intent(coid)
        if record is None or record.outcome is None:
            closing = "SELL" if item["side"] == "BUY" else "BUY"
            return protection.WantedStop(coid, item["symbol"], closing, entry_qty, float(item["stop"]))
        n += 1


async def main(venue_name: str, rest_url: str, ws_url: str, state: Path, plan_path: Path,
               credential: str, secret: str, finish: bool) -> None:
    ledger = await AsyncLedger.open(state / "fractald.db")
    parts = await VENUES[venue_name](rest_url, ws_url, state, credential, secret)
    journal = LedgerJournal(ledger)
    seen = await journal.load()
    send, receive = trio.open_memory_channel[VenueReport](10_000)
    router = Router(parts.venue, ledger, send, clock_ms=parts.clock_ms, seen_trade_ids=seen,
                    record_outcomes=False,  # the journal commits them with the fills
                    settings=RouterSettings(settle_ms=3_000, resolve_interval_s=0.2,
                                            max_entry_age_ms=10**12))
    _commands_send, commands = trio.open_memory_channel[object](10)  # kept open: no commands here
    async with trio.open_nursery() as nursery:
        nursery.start_soon(journal.run, receive)
        await nursery.start(router.run, commands)
        print("recovered", flush=True)
        while True:
            plan = json.loads(plan_path.read_text())
            for item in plan:
                coid = client_order_id(item["id"], "entry")
                if await ledger.get_intent(coid) is None:
                    parts.before_entry(item)
                    await router.submit(OrderIntent(now_ms(), coid, item["symbol"], Side(item["side"]),
                                                    OrderType.MARKET, float(item["qty"]),
                                                    strategy="manual", signal_id=item["id"],
                                                    role="entry"))
            await trio.sleep(0.1)  # let the fills' reports reach the journal
            wanted = [w for item in plan if (w := await stop_for(ledger, journal, item)) is not None]
            actions = await router.protect(wanted)
            if finish:
                print("loop", len(router.unresolved), [type(a).__name__ for a in actions], flush=True)
            if finish and not router.unresolved and not [
                    a for a in actions if not isinstance(a, protection.Unprotected)]:
                await trio.sleep(0.5)  # the last reports into the journal
                print("settled", flush=True)
                nursery.cancel_scope.cancel()
            await trio.sleep(0.2)
    await ledger.aclose()


if __name__ == "__main__":
    a = sys.argv[1:]
    trio.run(main, a[0], a[1], a[2], Path(a[3]), Path(a[4]), a[5], a[6], "--finish" in a)
