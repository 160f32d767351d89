"""Paper broker: a pure, deterministic fill model driven by trades, quotes or bars.

- Market orders fill at the quote (ask for buys, bid for sells) moved by
  `slippage_bps`, once `latency_ms` of event time has passed since submit;
  with only trades known, at the last trade price moved by the slippage.
- Limit orders fill when price trades through them (always, at the limit
  price), or trades *at* the limit after the volume queued ahead of them
  has traded (queue taken from the quote size at placement). A limit placed
  at a level not at the top of the book has an unknown queue until the
  quote shows that level: until then only a trade-through fills it.
- Stop orders trigger on trades at or through the trigger price.
- Maker fees for resting fills, taker fees otherwise (bps of notional).
- Reduce-only orders never flip the position the broker holds.
- Bar mode: `bar_path` turns a candle into a deterministic intrabar path
  (open, low, high, close for an up bar; open, high, low, close for a down
  bar) with every resting level inserted where the path crosses it, so
  stops fill at their level and limits only when traded through.

Every output is a VenueReport, exactly as a real venue adapter produces.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Any

import attrs

from fractald.core.execution.converter import converter, omit_when_default
from fractald.core.execution.events import OrderIntent
from fractald.core.execution.orders import (
    QTY_EPS,
    Liquidity,
    Order,
    OrderEvent,
    OrderType,
    TimeInForce,
)
from fractald.core.execution.reports import VenueReport
from fractald.core.models import Bar, Quote, Side, TradeTick
from fractald.core.risk.params import in_range, int_range

E = OrderEvent
_STOPS = (OrderType.STOP_MARKET, OrderType.STOP_LIMIT)  # a tuple: `in` by identity, no enum hashing


@attrs.frozen(slots=True)
class PaperParams:
    latency_ms: int = attrs.field(default=50, validator=int_range(0, 600_000))
    slippage_bps: float = attrs.field(default=1.0, validator=in_range(0, 1_000))
    maker_fee_bps: float = attrs.field(default=1.5, validator=in_range(-100, 100))
    taker_fee_bps: float = attrs.field(default=4.5, validator=in_range(0, 100))
    # Funding per interval as a fraction of notional (longs pay when positive); 0 = off.
    funding_rate: float = attrs.field(default=0.0, validator=in_range(-0.1, 0.1))
    funding_interval_ms: int = attrs.field(default=8 * 3_600_000, validator=int_range(1, 10**10))


@attrs.define(slots=True)
class PaperOrder:
    client_order_id: str
    symbol: str
    side: Side
    order_type: OrderType
    quantity: float
    price: float | None
    trigger_price: float | None
    tif: TimeInForce
    expire_ts: int | None
    reduce_only: bool
    active_ts: int
    filled: float = 0.0
    triggered: bool = False
    resting: bool = False  # placed on the book (fills are maker)
    queue_ahead: float | None = None  # None: unknown
    cancel_ts: int | None = None
    post_only: bool = False  # maker only: rejected if it would cross when it arrives

    @property
    def remaining(self) -> float:
        return self.quantity - self.filled


def bar_path_points(bar: Bar, levels: Collection[float] = ()) -> list[tuple[float, int]]:
    """The intrabar path as (price, ts): corners, with `levels` inserted where the path crosses them.

    Times are spread evenly over [ts_open, ts_event - 1]; repeated prices are dropped.
    """
    _check_path_bar(bar)
    o, h, lo, c = bar.open, bar.high, bar.low, bar.close
    corners = (lo, h, c) if c >= o else (h, lo, c)
    # only levels strictly inside the bar's range can lie strictly inside one of its legs
    bottom, top = min(o, lo, h, c), max(o, lo, h, c)
    lv = sorted({x for x in levels if bottom < x < top}) if levels else ()
    prices: list[float] = [o]
    a = o
    for b in corners:
        if lv:
            # strictly inside (a, b), so never equal to a neighbour
            inner = [x for x in lv if min(a, b) < x < max(a, b)]
            prices.extend(inner if b > a else reversed(inner))
        if b != prices[-1]:
            prices.append(b)
        a = b
    last = max(1, len(prices) - 1)
    span = max(1, bar.ts_event - 1 - bar.ts_open)
    t0 = bar.ts_open
    return [(p, t0 + (span * i) // last) for i, p in enumerate(prices)]


def bar_path_ends(bar: Bar) -> tuple[tuple[float, int], tuple[float, int]]:
    """The first and last points of `bar_path_points(bar, levels)`, whatever the levels, without the path.

    The path opens at the open and ends at the close at ts_event - 1; a flat bar is one point.
    """
    _check_path_bar(bar)
    t0 = bar.ts_open
    if bar.open == bar.high == bar.low == bar.close:
        return (bar.open, t0), (bar.open, t0)
    return (bar.open, t0), (bar.close, t0 + max(1, bar.ts_event - 1 - t0))


def path_trade(bar: Bar, points: list[tuple[float, int]], i: int) -> tuple[float, Side]:
    """Size and aggressor of `points[i]` (of `bar_path_points(bar, ...)`) traded: the bar's volume
    spread evenly; a price at or above the one before is bought, a lower one sold."""
    prev = points[i - 1][0] if i else points[0][0]
    return max(bar.volume / len(points), 1e-9), Side.BUY if points[i][0] >= prev else Side.SELL


def bar_path_trades(
    bar: Bar, levels: Collection[float] = ()
) -> list[tuple[float, float, Side, int]]:
    """`bar_path` as plain (price, size, aggressor, ts)."""
    points = bar_path_points(bar, levels)
    return [(p, *path_trade(bar, points, i), ts) for i, (p, ts) in enumerate(points)]


def bar_path(bar: Bar, levels: Collection[float] = ()) -> list[TradeTick]:
    """A deterministic intrabar path as trades, with `levels` inserted where the path crosses them."""
    return [
        TradeTick(bar.symbol, p, size, aggressor, f"{bar.symbol}:{bar.ts_open}:{i}", ts)
        for i, (p, size, aggressor, ts) in enumerate(bar_path_trades(bar, levels))
    ]


def _check_path_bar(bar: Bar) -> None:
    """A path is traded: its prices must be positive and finite, its volume finite (as a TradeTick's)."""
    inf = math.inf
    if not (
        0 < bar.open < inf and 0 < bar.high < inf and 0 < bar.low < inf and 0 < bar.close < inf
    ):
        raise ValueError(
            f"bar {bar.symbol} {bar.timeframe} at {bar.ts_open}: prices must be positive "
            f"and finite to trade its path, got o={bar.open} h={bar.high} l={bar.low} "
            f"c={bar.close}"
        )
    if not bar.volume < inf:
        raise ValueError(
            f"bar {bar.symbol} {bar.timeframe} at {bar.ts_open}: volume must be finite "
            f"to trade its path, got {bar.volume}"
        )


class PaperBroker:
    venue = "paper"

    def __init__(self, params: PaperParams | None = None) -> None:
        self.params = params or PaperParams()
        self.orders: dict[str, PaperOrder] = {}
        self.positions: dict[str, float] = {}
        self.quotes: dict[str, Quote] = {}
        self.last_trade: dict[str, tuple[int, float]] = {}
        self.seq = 0
        # Set by the bar-mode driver while it walks a bar's path: market orders
        # then fill at the current path price, since latency is far below a bar.
        self.immediate = False

    # -- helpers -------------------------------------------------------------------
    def _fee(self, qty: float, price: float, liq: Liquidity) -> float:
        bps = self.params.maker_fee_bps if liq is Liquidity.MAKER else self.params.taker_fee_bps
        return qty * price * bps / 1e4

    def _ref_price(self, symbol: str, side: Side) -> float | None:
        """Where a market order would fill now: the fresher of quote and last trade."""
        q = self.quotes.get(symbol)
        t = self.last_trade.get(symbol)
        if q is not None and (t is None or q.ts_event >= t[0]) and q.bid > 0 and q.ask > 0:
            return q.ask if side is Side.BUY else q.bid
        return t[1] if t is not None else None

    def _fill(
        self, o: PaperOrder, qty: float, price: float, liq: Liquidity, ts: int
    ) -> list[VenueReport]:
        if o.reduce_only:
            pos = self.positions.get(o.symbol, 0.0)
            reducible = max(0.0, -pos * o.side.sign)
            if reducible <= QTY_EPS:
                self._drop(o)
                return [
                    VenueReport(E.CANCEL, o.client_order_id, ts, reason="reduce_only_no_position")
                ]
            qty = min(qty, reducible)
        qty = min(qty, o.remaining)
        o.filled += qty
        self.positions[o.symbol] = self.positions.get(o.symbol, 0.0) + qty * o.side.sign
        self.seq += 1
        out = [
            VenueReport(
                E.FILL,
                o.client_order_id,
                ts,
                trade_id=f"paper-{self.seq}",
                quantity=qty,
                price=price,
                fee=self._fee(qty, price, liq),
                liquidity=liq,
            )
        ]
        if o.remaining <= QTY_EPS:
            self._drop(o)
        elif o.reduce_only and abs(self.positions[o.symbol]) <= QTY_EPS:
            self._drop(o)
            out.append(
                VenueReport(E.CANCEL, o.client_order_id, ts, reason="reduce_only_no_position")
            )
        return out

    def _would_take(self, o: PaperOrder) -> bool:
        ref = self._ref_price(o.symbol, o.side)
        return ref is not None and o.price is not None and (ref - o.price) * o.side.sign <= 0

    def _taker_fill(
        self, o: PaperOrder, ts: int, limit: float | None = None
    ) -> list[VenueReport] | None:
        ref = self._ref_price(o.symbol, o.side)
        if ref is None:
            return None
        if limit is not None and (ref - limit) * o.side.sign > 0:
            return None  # not marketable
        slip = 1 + o.side.sign * self.params.slippage_bps / 1e4
        price = (
            ref * slip
            if limit is None
            else min(ref * slip, limit)
            if o.side is Side.BUY
            else max(ref * slip, limit)
        )
        return self._fill(o, o.remaining, price, Liquidity.TAKER, ts)

    # -- commands -----------------------------------------------------------------------
    def submit(self, order: Order | OrderIntent, ts: int) -> list[VenueReport]:
        """A new order (an engine `Order`, or the `OrderIntent` that makes one): the venue's answer."""
        coid = order.client_order_id
        if coid in self.orders:
            return [VenueReport(E.REJECT, coid, ts, reason="duplicate_client_order_id")]
        if order.expire_ts is not None and order.expire_ts <= ts:
            return [VenueReport(E.REJECT, coid, ts, reason="already_expired")]
        po = PaperOrder(
            coid,
            order.symbol,
            order.side,
            order.order_type,
            order.leaves_qty if isinstance(order, Order) else order.quantity,
            order.price,
            order.trigger_price,
            order.tif,
            order.expire_ts,
            order.reduce_only,
            active_ts=ts + self.params.latency_ms,
            post_only=order.post_only,
        )
        self.orders[coid] = po
        out = [
            VenueReport(
                E.ACCEPT, coid, ts + self.params.latency_ms, venue_order_id=f"p-{coid[:12]}"
            )
        ]
        if self.immediate or self.params.latency_ms == 0:
            po.active_ts = ts
            out += self._activate(po, ts)
        return out

    def cancel(self, client_order_id: str, ts: int) -> list[VenueReport]:
        o = self.orders.get(client_order_id)
        if o is None:
            return [
                VenueReport(E.CANCEL_REJECT, client_order_id, ts, reason="unknown_or_closed_order")
            ]
        if self.params.latency_ms == 0 or self.immediate:
            self._drop(o)
            return [VenueReport(E.CANCEL, client_order_id, ts, reason="canceled")]
        # Effective after the latency: fills may still happen in between.
        o.cancel_ts = ts + self.params.latency_ms
        return []

    def modify(
        self,
        client_order_id: str,
        ts: int,
        quantity: float | None = None,
        price: float | None = None,
        trigger_price: float | None = None,
    ) -> list[VenueReport]:
        o = self.orders.get(client_order_id)
        if o is None:
            return [
                VenueReport(E.UPDATE_REJECT, client_order_id, ts, reason="unknown_or_closed_order")
            ]
        if quantity is not None and quantity <= o.filled + QTY_EPS:
            return [
                VenueReport(E.UPDATE_REJECT, client_order_id, ts, reason="quantity_below_filled")
            ]
        if quantity is not None:
            o.quantity = quantity
        if price is not None and price != o.price:
            o.price, o.queue_ahead = price, None  # a new price loses the queue place
            o.queue_ahead = self._queue_at_placement(o)
        if trigger_price is not None:
            o.trigger_price = trigger_price
        return [
            VenueReport(
                E.UPDATE,
                client_order_id,
                ts,
                quantity=o.quantity,
                price=o.price or 0.0,
                trigger_price=o.trigger_price,
            )
        ]

    # -- market data ----------------------------------------------------------------------
    def on_quote(self, q: Quote) -> list[VenueReport]:
        self.quotes[q.symbol] = q
        out = self._housekeeping(q.symbol, q.ts_event)
        for o in list(self._symbol_orders(q.symbol)):
            if not o.resting:
                continue
            level, size, opposite = (
                (q.bid, q.bid_size, q.ask) if o.side is Side.BUY else (q.ask, q.ask_size, q.bid)
            )
            assert o.price is not None
            if opposite > 0 and (opposite - o.price) * o.side.sign < 0:
                # The other side moved through our price: we were traded through.
                out += self._fill(o, o.remaining, o.price, Liquidity.MAKER, q.ts_event)
            elif level == o.price:
                o.queue_ahead = size if o.queue_ahead is None else min(o.queue_ahead, size)
        return out

    def on_trade(self, t: TradeTick) -> list[VenueReport]:
        return self.trade(t.symbol, t.price, t.size, t.aggressor, t.ts_event)

    def trade(
        self, symbol: str, price: float, size: float, aggressor: Side, ts: int
    ) -> list[VenueReport]:
        """`on_trade` from a trade's fields (the bar-mode driver has no TradeTick to build)."""
        self.last_trade[symbol] = (ts, price)
        out = self._housekeeping(symbol, ts)
        for o in self._symbol_orders(symbol):
            if o.client_order_id not in self.orders or o.active_ts > ts:
                continue
            if o.order_type in _STOPS and not o.triggered:
                assert o.trigger_price is not None
                if (price - o.trigger_price) * o.side.sign >= 0:
                    o.triggered = True
                    out.append(VenueReport(E.TRIGGER, o.client_order_id, ts))
                    out += self._activate(o, ts)
                continue
            if o.resting:
                out += self._trade_against_resting(o, price, size, aggressor, ts)
        return out

    def has_orders(self, symbol: str) -> bool:
        for o in self.orders.values():
            if o.symbol == symbol:
                return True
        return False

    def idle_within(self, symbol: str, lo: float, hi: float, until_ts: int) -> bool:
        """Whether trades of `symbol` priced within [lo, hi], up to `until_ts`, would only note their price.

        No cancel or expiry falls due, no order waits to reach the book, and no
        stop trigger or resting limit is within reach. Each reach test is monotone
        in the price, so testing both ends of the range covers all of it.
        """
        for o in self._symbol_orders(symbol):
            if (o.cancel_ts is not None and o.cancel_ts <= until_ts) or (
                o.expire_ts is not None and o.expire_ts <= until_ts
            ):
                return False
            if o.resting:
                assert o.price is not None
                limit = o.price  # fills on a trade at (queue permitting) or through it
                if (limit - lo) * o.side.sign >= 0 or (limit - hi) * o.side.sign >= 0:
                    return False
            elif o.order_type in _STOPS and not o.triggered:
                assert o.trigger_price is not None
                trigger = o.trigger_price
                if (lo - trigger) * o.side.sign >= 0 or (hi - trigger) * o.side.sign >= 0:
                    return False
            else:
                return False  # not on the book yet: the next trade activates it
        return True

    def record_trade(self, symbol: str, price: float, ts: int) -> None:
        """A trade that no order of `symbol` can act on (see `idle_within`): `on_trade` would only note its price."""
        self.last_trade[symbol] = (ts, price)

    def advance(self, symbol: str, ts: int) -> list[VenueReport]:
        """Let event time pass with no trade (e.g. a bar's close): due cancels and expiries."""
        return self._housekeeping(symbol, ts)

    def _trade_against_resting(
        self, o: PaperOrder, price: float, size: float, aggressor: Side, ts: int
    ) -> list[VenueReport]:
        assert o.price is not None
        through = (o.price - price) * o.side.sign
        if through > 0:
            return self._fill(o, o.remaining, o.price, Liquidity.MAKER, ts)
        hits_us = aggressor is not o.side  # sells hit bids, buys lift offers
        if through == 0 and hits_us and o.queue_ahead is not None:
            left = size - o.queue_ahead
            o.queue_ahead = max(0.0, o.queue_ahead - size)
            if left > QTY_EPS:
                return self._fill(o, min(left, o.remaining), o.price, Liquidity.MAKER, ts)
        return []

    def _drop(self, o: PaperOrder) -> None:
        """Take an order off the book (it filled, was cancelled, expired or refused)."""
        del self.orders[o.client_order_id]

    def _symbol_orders(self, symbol: str) -> list[PaperOrder]:
        return [o for o in self.orders.values() if o.symbol == symbol]

    def _housekeeping(self, symbol: str, ts: int) -> list[VenueReport]:
        """Due cancels and expiries, then activation of orders whose latency has passed."""
        out: list[VenueReport] = []
        for o in self._symbol_orders(symbol):
            if o.cancel_ts is not None and o.cancel_ts <= ts:
                self._drop(o)
                out.append(VenueReport(E.CANCEL, o.client_order_id, o.cancel_ts, reason="canceled"))
            elif o.expire_ts is not None and o.expire_ts <= ts:
                self._drop(o)
                out.append(VenueReport(E.EXPIRE, o.client_order_id, o.expire_ts))
            elif (
                not o.resting
                and o.active_ts <= ts
                and not (o.order_type in _STOPS and not o.triggered)
            ):
                out += self._activate(o, ts)
        return out

    def _queue_at_placement(self, o: PaperOrder) -> float | None:
        q = self.quotes.get(o.symbol)
        if q is None or o.price is None:
            return None
        best = q.bid if o.side is Side.BUY else q.ask
        if o.price == best:
            return q.bid_size if o.side is Side.BUY else q.ask_size
        if (o.price - best) * o.side.sign > 0:
            return 0.0  # we improve the book: first in a new level
        return None  # deeper in the book: size there is unknown

    def _activate(self, o: PaperOrder, ts: int) -> list[VenueReport]:
        """The order reaches the venue's matching engine (or its stop triggered)."""
        if o.order_type in (OrderType.STOP_MARKET, OrderType.STOP_LIMIT) and not o.triggered:
            return []  # waits for its trigger
        if o.order_type in (OrderType.MARKET, OrderType.STOP_MARKET):
            out = self._taker_fill(o, ts)
            return out if out is not None else []  # no price yet: fills on the next one
        if o.post_only and self._would_take(o):
            # As the venues do (Binance -5022 / LIMIT_MAKER -2010, Hyperliquid Alo): never a taker.
            self._drop(o)
            return [VenueReport(E.REJECT, o.client_order_id, ts, reason="post_only_would_take")]
        out = self._taker_fill(o, ts, limit=o.price)
        if out is not None:
            return out
        if o.tif in (TimeInForce.IOC, TimeInForce.FOK):
            self._drop(o)
            return [VenueReport(E.CANCEL, o.client_order_id, ts, reason="ioc_not_marketable")]
        o.resting = True
        o.queue_ahead = self._queue_at_placement(o)
        return []

    # -- funding and persistence -----------------------------------------------------------------
    def funding_due(self, prev_ts: int, ts: int) -> int:
        """How many funding instants lie in (prev_ts, ts]."""
        if self.params.funding_rate == 0 or prev_ts <= 0:
            return 0
        iv = self.params.funding_interval_ms
        return max(0, ts // iv - prev_ts // iv)

    def snapshot(self) -> dict[str, Any]:
        conv = converter
        return {
            "orders": [conv.unstructure(o) for o in self.orders.values()],
            "positions": dict(self.positions),
            "seq": self.seq,
            "quotes": [conv.unstructure(q) for q in self.quotes.values()],
            "last_trade": {s: list(v) for s, v in self.last_trade.items()},
        }

    def restore(self, data: dict[str, Any]) -> None:
        conv = converter
        self.orders = {
            o.client_order_id: o for o in (conv.structure(d, PaperOrder) for d in data["orders"])
        }
        self.positions = {k: float(v) for k, v in data["positions"].items()}
        self.seq = int(data["seq"])
        self.quotes = {
            q.symbol: q for q in (conv.structure(d, Quote) for d in data.get("quotes", []))
        }
        self.last_trade = {
            s: (int(v[0]), float(v[1])) for s, v in data.get("last_trade", {}).items()
        }

    def forget(self, client_order_id: str) -> None:
        self.orders.pop(client_order_id, None)


omit_when_default(PaperOrder, "post_only")  # paper snapshots unchanged for ordinary orders
