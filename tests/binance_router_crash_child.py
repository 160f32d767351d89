"""One life of a router on Binance for the crash test: recover, follow the operator's plan, keep stops.

    python tests/binance_router_crash_child.py REST_URL WS_URL STATE_DIR PLAN_JSON KEY SECRET [--finish]

The Binance twin of tests/router_crash_child.py (same router, same journal,
same plan), with BinanceVenue against the fake Binance futures venue: prints
"recovered" once every intent without an outcome is resolved, then loops:
an entry for every plan item not yet recorded, and `protect()` with one
reduce-only stop per open trade (held in Binance's Algo Service). Killed
with SIGKILL by the test. With --finish it exits once nothing is unresolved
and the venue holds exactly the stops wanted.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import trio

from fractald.actors.router import Router, RouterSettings
from fractald.core.execution.events import OrderIntent
from fractald.core.execution.orders import OrderType, client_order_id
from fractald.core.execution.reports import VenueReport
from fractald.core.models import Side
from fractald.routing import protection
from fractald.routing.journal import LedgerJournal
from fractald.store.writer import AsyncLedger
from fractald.venues.binance import Market
from fractald.venues.binance_rest import BinanceRest
from fractald.venues.binance_venue import BinanceVenue


def now_ms() -> int:
    return int(time.time() * 1000)


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


async def main(rest_url: str, ws_url: str, state: Path, plan_path: Path, key: str, secret: str,
               finish: bool) -> None:
    ledger = await AsyncLedger.open(state / "fractald.db")
    rest = BinanceRest(Market.FUTURES, rest_url, key, secret, timeout_s=5.0)
    venue = BinanceVenue(Market.FUTURES, rest, ws_url, ["BTCUSDT", "ETHUSDT"])
    await venue.start()
    journal = LedgerJournal(ledger)
    seen = await journal.load()
    send, receive = trio.open_memory_channel[VenueReport](10_000)
    router = Router(venue, ledger, send, clock_ms=lambda: venue.rest.clock.venue_time(now_ms()),
                    seen_trade_ids=seen, record_outcomes=False,  # the journal commits them with the fills
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
                    venue.last_price[item["symbol"]] = float(item["price"])
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
    trio.run(main, a[0], a[1], Path(a[2]), Path(a[3]), a[4], a[5], "--finish" in a)
