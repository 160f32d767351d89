"""The paper broker as a venue: order intents and cancels in, venue reports out.

`PaperVenue` is the paper broker's matching (`paper.PaperBroker`, pure and
deterministic) behind what every venue offers: it takes the engine's
`OrderIntent` and `CancelRequested` events (`send`) and answers with
`VenueReport`s, the message type every real venue adapter produces; it
remembers, as a venue does, the orders that ended (bounded) and the fills it
made (bounded), so it can be asked what became of an order and which fills
it made since a time, and it holds the positions its fills built.

The engine owns no venue. Whoever drives the engine holds the paper venue
and passes it with each input (`core.pipeline.Pipeline` does, for the
daemon's session and the backtest loop alike); the engine hands it that
input's intents and cancels and handles its reports in the same call, as
it handles a real venue's. Market data reaches it through the same calls
(each bar's intrabar path, or live trades and quotes).

The reconciler asks it through `fractald.venues.paper.PaperVenueAdapter`,
the async `Venue` interface. Its book is snapshotted by its owner, and after
a rebuild from ledger events it is resynced from the engine's working
orders and positions (`resync`), queue places unknown (conservative).
"""

from __future__ import annotations

import collections
from collections.abc import Iterable
from typing import Any

from fractald.core.execution import events as ev
from fractald.core.execution.orders import Order, OrderEvent, OrderStatus, OrderType
from fractald.core.execution.paper import PaperBroker, PaperOrder, PaperParams
from fractald.core.execution.reports import VenueReport
from fractald.core.models import Quote, Side

# How much history the venue keeps for `closed`/`fills` (a real venue's order and fill history):
# enough for what reconciliation asks (fills since the ledger's last, intents just ended), and
# small in the snapshot.
HISTORY = 100

_INTENT = ev.OrderIntent
_CANCEL = ev.CancelRequested
_ENDS = {
    OrderEvent.FILL: "filled",
    OrderEvent.CANCEL: "canceled",
    OrderEvent.REJECT: "rejected",
    OrderEvent.EXPIRE: "expired",
}


class PaperVenue(PaperBroker):
    """The paper broker's book and matching, addressed by our client order ids (see module doc)."""

    name = "paper"

    def __init__(self, params: PaperParams | None = None, *, immediate: bool = False) -> None:
        super().__init__(params)
        # Driven by candles, latency is far below a bar: orders act at the current path price.
        self.immediate = immediate
        # Orders that ended: client order id -> (symbol, status, quantity, filled).
        self.closed: collections.OrderedDict[str, tuple[str, str, float, float]] = (
            collections.OrderedDict()
        )
        # Fills made: (client order id, trade id, ts, quantity, price, fee, symbol, side).
        self.fills: collections.deque[tuple[str, str, int, float, float, float, str, str]] = (
            collections.deque(maxlen=HISTORY)
        )
        self._ended: dict[str, PaperOrder] = {}  # dropped from the book by the call under way

    # -- intents and cancels in, reports out -------------------------------------------------
    def send(self, event: Any) -> list[VenueReport]:
        """An `OrderIntent` (submit) or a `CancelRequested` (cancel): the venue's reports."""
        if type(event) is _INTENT:
            return self._booked(self.submit_intent(event))
        if type(event) is _CANCEL:
            return self._booked(self.cancel(event.client_order_id, event.ts))
        raise TypeError(
            f"the paper venue takes OrderIntent or CancelRequested, got {type(event).__name__}"
        )

    def submit_intent(self, intent: ev.OrderIntent) -> list[VenueReport]:
        """Submit the order an intent describes (a new order: nothing of it filled yet)."""
        return self.submit(intent, intent.ts)

    # Every path that makes reports goes through `_booked`, so the history sees them all.
    def trade(
        self, symbol: str, price: float, size: float, aggressor: Side, ts: int
    ) -> list[VenueReport]:
        return self._booked(super().trade(symbol, price, size, aggressor, ts))

    def advance(self, symbol: str, ts: int) -> list[VenueReport]:
        return self._booked(super().advance(symbol, ts))

    def on_quote(self, q: Quote) -> list[VenueReport]:
        return self._booked(super().on_quote(q))

    def _booked(self, reports: list[VenueReport]) -> list[VenueReport]:
        """Note the fills and the ends of orders these reports tell (a venue's own history)."""
        if not reports:
            return reports
        ended = self._ended
        for r in reports:
            cid = r.client_order_id
            o = self.orders.get(cid) or ended.get(cid)
            if r.kind is OrderEvent.FILL and o is not None:
                self.fills.append(
                    (cid, r.trade_id, r.ts, r.quantity, r.price, r.fee, o.symbol, o.side.value)
                )
            end = _ENDS.get(r.kind)
            if end is not None and cid in ended:
                o = ended[cid]  # a later report of the same order (a cancel after a fill) wins
                self.closed[cid] = (o.symbol, end, o.quantity, o.filled)
                self.closed.move_to_end(cid)
        ended.clear()
        while len(self.closed) > HISTORY:
            self.closed.popitem(last=False)
        return reports

    def _drop(self, o: PaperOrder) -> None:
        super()._drop(o)
        self._ended[o.client_order_id] = o  # what it was, for the report that says why it ended

    # -- what the venue answers when asked -------------------------------------------------------
    def order(self, client_order_id: str) -> tuple[str, str, float, float] | None:
        """(symbol, status, quantity, filled) of one order: working, ended, or None (never seen)."""
        o = self.orders.get(client_order_id)
        if o is not None:
            return o.symbol, "partially_filled" if o.filled > 0 else "open", o.quantity, o.filled
        return self.closed.get(client_order_id)

    def fills_since(self, ts: int) -> list[tuple[str, str, int, float, float, float, str, str]]:
        return [f for f in self.fills if f[2] >= ts]

    # -- the hot path's questions ---------------------------------------------------------------
    def levels(self, symbol: str) -> list[float]:
        """The prices of `symbol`'s working orders (limits and triggers): where a path must stop."""
        levels: list[float] = []
        for o in self.orders.values():
            if o.symbol == symbol:
                levels += [x for x in (o.price, o.trigger_price) if x]
        return levels

    # -- persistence and rebuilds -------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        data = super().snapshot()
        data["closed"] = [[cid, *rest] for cid, rest in self.closed.items()]
        data["fills"] = [list(f) for f in self.fills]
        return data

    def restore(self, data: dict[str, Any]) -> None:
        super().restore(data)
        self.closed = collections.OrderedDict(
            (str(c[0]), (str(c[1]), str(c[2]), float(c[3]), float(c[4])))
            for c in data.get("closed", [])
        )
        self.fills = collections.deque(
            (
                (str(f[0]), str(f[1]), int(f[2]), float(f[3]), float(f[4]), float(f[5]))
                + (str(f[6]), str(f[7]))
                for f in data.get("fills", [])
            ),
            maxlen=HISTORY,
        )

    def resync(self, working: Iterable[Order], positions: dict[str, float], seq: int) -> None:
        """After a rebuild from ledger events: the book is the engine's working orders.

        Queue places are not in the ledger, so a rebuilt resting order has an
        unknown queue (only a trade-through fills it): conservative. `seq` is
        the highest paper trade number the ledger holds (trade ids stay unique).
        """
        book: dict[str, PaperOrder] = {}
        for o in working:
            triggered = o.status is OrderStatus.TRIGGERED
            book[o.client_order_id] = PaperOrder(
                o.client_order_id,
                o.symbol,
                o.side,
                o.order_type,
                o.quantity,
                o.price,
                o.trigger_price,
                o.tif,
                o.expire_ts,
                o.reduce_only,
                active_ts=o.ts_submitted,
                filled=o.filled_qty,
                triggered=triggered,
                resting=o.order_type is OrderType.LIMIT
                or (triggered and o.order_type is OrderType.STOP_LIMIT),
                post_only=o.post_only,
            )
        self.orders = book
        self.positions = {s: q for s, q in positions.items() if q != 0.0}
        self.seq = max(self.seq, seq)


def paper_trade_number(trade_id: str) -> int:
    """The number in a paper trade id (`paper-17` -> 17); 0 for any other venue's id."""
    if trade_id.startswith("paper-") and trade_id[6:].isdigit():
        return int(trade_id[6:])
    return 0


def paper_venue_for(engine: Any) -> PaperVenue | None:
    """The paper venue an engine's orders go to: one for a paper engine, None for a real venue's.

    Fills driven by candles act at once (latency is far below a bar).
    """
    params: Any = getattr(engine, "params", None)
    if params is None or getattr(params, "venue", None) != "paper":
        return None
    # `FillSource.BARS` by its value: the engine's modules import this one, not the reverse.
    return PaperVenue(params.paper, immediate=params.fills_from.value == "BARS")
