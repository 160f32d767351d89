"""Stops live at the venue: what to place, resize, move or cancel so every position is protected.

A pure decider over two views, for any venue that holds trigger orders:

* the engine's: the protective stops it wants (`WantedStop`: one per open
  trade, our client order id, side, quantity, trigger price);
* the venue's: net positions and its open orders.

The plan makes the venue match the engine: a wanted stop the venue does
not hold is placed; one it holds with another size or trigger is modified
(resized after partial fills and scale-outs, moved on break-even and
trailing); a reduce-only trigger order nobody wants any more (the trade
ended) is cancelled. A venue position that no wanted stop covers in full is
an alarm (`Unprotected`): the caller goes REDUCING and alerts. It is never
"clean".
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from fractald.venues.interface import VenueOrder

QTY_EPS = 1e-9


@attrs.frozen(slots=True)
class WantedStop:
    client_order_id: str
    symbol: str
    side: str  # "BUY" / "SELL": the closing side
    quantity: float
    trigger_price: float


@attrs.frozen(slots=True)
class Place:
    stop: WantedStop


@attrs.frozen(slots=True)
class Resize:
    stop: WantedStop
    held_quantity: float
    held_trigger: float | None


@attrs.frozen(slots=True)
class CancelStop:
    client_order_id: str
    symbol: str


@attrs.frozen(slots=True)
class Unprotected:
    symbol: str
    position: float
    protected: float
    reason: str  # "no_stop_wanted" | "stops_too_small" | "stop_without_position"


Action = Place | Resize | CancelStop | Unprotected


def is_protective(order: VenueOrder) -> bool:
    return order.reduce_only and order.trigger_price is not None and not order.terminal


def plan(
    wanted: Iterable[WantedStop],
    positions: dict[str, float],
    open_orders: Iterable[VenueOrder],
    *,
    price_tolerance: float = 1e-9,
) -> list[Action]:
    wanted = list(wanted)
    held = {o.client_order_id: o for o in open_orders if is_protective(o)}
    wanted_ids = {w.client_order_id for w in wanted}
    actions: list[Action] = []
    for w in wanted:
        order = held.get(w.client_order_id)
        if order is None:
            position = positions.get(w.symbol, 0.0)
            closable = position > QTY_EPS if w.side == "SELL" else position < -QTY_EPS
            # Nothing at the venue this stop could close (a reduce-only order would be refused):
            # the books disagree with the venue, which is reconciliation's to settle.
            actions.append(
                Place(w)
                if closable
                else Unprotected(w.symbol, position, 0.0, "stop_without_position")
            )
            continue
        remaining = order.quantity - order.filled_qty
        moved = order.trigger_price is None or abs(
            order.trigger_price - w.trigger_price
        ) > price_tolerance * max(1.0, abs(w.trigger_price))
        if abs(remaining - w.quantity) > QTY_EPS or moved:
            actions.append(Resize(w, remaining, order.trigger_price))
    for coid, order in held.items():
        if coid not in wanted_ids:
            actions.append(CancelStop(coid, order.symbol))
    for symbol, qty in sorted(positions.items()):
        if abs(qty) <= QTY_EPS:
            continue
        closing = "SELL" if qty > 0 else "BUY"
        protected = sum(w.quantity for w in wanted if w.symbol == symbol and w.side == closing)
        if protected <= QTY_EPS:
            actions.append(Unprotected(symbol, qty, 0.0, "no_stop_wanted"))
        elif protected + QTY_EPS < abs(qty):
            actions.append(Unprotected(symbol, qty, protected, "stops_too_small"))
    return actions
