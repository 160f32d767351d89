"""Ask a venue for everything periodic reconciliation compares (`fractald.routing.reconciliation`)."""

from __future__ import annotations

from collections.abc import Mapping

from fractald.routing.reconciliation import VenueSnapshot
from fractald.venues.interface import Venue


async def take_snapshot(
    venue: Venue, working: Mapping[str, str], fills_since_ms: int, taken_ms: int
) -> VenueSnapshot:
    """Open orders first, then each of our working orders it does not list, then fills and money.

    In this order a fill that lands meanwhile is seen twice at worst (by status and by fill),
    never not at all; the comparison needs both views from the same quiet moment, which the
    caller ensures (nothing in flight between us and the venue).
    """
    open_orders = await venue.open_orders()
    listed = {o.client_order_id for o in open_orders}
    looked_up = {}
    for coid, symbol in working.items():  # our client order id -> its symbol
        if coid not in listed:
            looked_up[coid] = await venue.order_status(coid, symbol)
    fills = await venue.fills_since(max(0, fills_since_ms))
    details = await venue.position_details()
    account = await venue.account()
    return VenueSnapshot(
        open_orders,
        fills,
        looked_up,
        {p.symbol: p.quantity for p in details},
        account,
        details,
        taken_ms=taken_ms,
    )
