"""Binance order requests (USD-M futures `/fapi` and spot `/api`), Sans-I/O: no sockets here.

Every private call is a `SignedRequest`: the parameters in Binance's
documented order, then `timestamp` and `recvWindow`, then `signature` =
hex HMAC-SHA256 of that query string under the API secret. The timestamp
is our clock plus the measured server offset (`ClockOffset`), so a drifting
VPS clock does not earn -1021 rejections. Everything goes in the query
string (Binance signs "query string + body"; with an empty body that is
the query string alone), which also keeps the request self-describing in
logs, minus the signature and the key.

Conditional orders on USD-M futures (STOP_MARKET, TAKE_PROFIT_MARKET) go to
the Algo Service (`/fapi/v1/algoOrder`, `clientAlgoId`, `triggerPrice`,
`algoType=CONDITIONAL`): since 2025-12-09 the classic `/fapi/v1/order`
answers them with -4120. On spot they are STOP_LOSS / TAKE_PROFIT orders
with a `stopPrice`.

Our client order id goes out unchanged as `newClientOrderId` (or
`clientAlgoId`); `check_client_id` refuses one outside Binance's rules
(1 to 36 of `A-Z a-z 0-9 _ -`, the set both markets accept) rather than
inventing a mapping a restart could lose.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal
from typing import Any
from urllib.parse import urlencode

import attrs

from fractald.core.execution.events import OrderIntent
from fractald.core.execution.orders import OrderType, TimeInForce
from fractald.venues.binance import Market
from fractald.venues.interface import InstrumentSpec

DEFAULT_RECV_WINDOW_MS = 5000
MAX_RECV_WINDOW_MS = 60_000
CLIENT_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,36}$")
LISTEN_KEY_KEEPALIVE_S = 30 * 60.0  # a listenKey lives 60 min without a keepalive


@attrs.frozen(slots=True)
class Network:
    rest_url: str
    ws_url: str  # the user data stream is `<ws_url>/ws/<listenKey>`


# Real venue URLs live here only as defaults; tests always override them with loopback.
NETWORKS: dict[tuple[Market, str], Network] = {
    (Market.FUTURES, "mainnet"): Network("https://fapi.binance.com", "wss://fstream.binance.com"),
    (Market.FUTURES, "testnet"): Network(
        "https://testnet.binancefuture.com", "wss://fstream.binancefuture.com"
    ),
    # Spot's user data stream is a subscription on the WebSocket API (its listenKey was
    # discontinued on 2026-02-20): `ws_url` is the WebSocket API's address there.
    (Market.SPOT, "mainnet"): Network(
        "https://api.binance.com", "wss://ws-api.binance.com:443/ws-api/v3"
    ),
    (Market.SPOT, "testnet"): Network(
        "https://testnet.binance.vision", "wss://ws-api.testnet.binance.vision/ws-api/v3"
    ),
}
# How far past its trigger a spot stop (STOP_LOSS_LIMIT) may still sell (or buy): the limit
# that keeps a triggered stop from selling at any price into an empty book.
SPOT_STOP_LIMIT_BAND = 0.02


@attrs.frozen(slots=True)
class Paths:
    time: str
    exchange_info: str
    order: str
    open_orders: str
    all_orders: str
    account: str
    user_trades: str
    listen_key: str
    position_risk: str = ""  # futures only
    algo_order: str = ""
    open_algo_orders: str = ""
    all_algo_orders: str = ""
    leverage: str = ""
    margin_type: str = ""


PATHS = {
    Market.FUTURES: Paths(
        time="/fapi/v1/time",
        exchange_info="/fapi/v1/exchangeInfo",
        order="/fapi/v1/order",
        open_orders="/fapi/v1/openOrders",
        all_orders="/fapi/v1/allOrders",
        account="/fapi/v3/account",
        user_trades="/fapi/v1/userTrades",
        listen_key="/fapi/v1/listenKey",
        position_risk="/fapi/v3/positionRisk",
        algo_order="/fapi/v1/algoOrder",
        open_algo_orders="/fapi/v1/openAlgoOrders",
        all_algo_orders="/fapi/v1/allAlgoOrders",
        leverage="/fapi/v1/leverage",
        margin_type="/fapi/v1/marginType",
    ),
    Market.SPOT: Paths(
        time="/api/v3/time",
        exchange_info="/api/v3/exchangeInfo",
        order="/api/v3/order",
        open_orders="/api/v3/openOrders",
        all_orders="/api/v3/allOrders",
        account="/api/v3/account",
        user_trades="/api/v3/myTrades",
        listen_key="/api/v3/userDataStream",
    ),
}


@attrs.frozen(slots=True)
class Request:
    """One HTTP request to Binance. `query` is the full query string (signed when `signed`)."""

    method: str
    path: str
    query: str = ""
    weight: int = 1
    signed: bool = False
    api_key: bool = False  # needs the X-MBX-APIKEY header (every signed call, and listenKey calls)
    orders: int = 0  # counts against the order-rate limits

    @property
    def target(self) -> str:
        return f"{self.path}?{self.query}" if self.query else self.path

    def redacted(self) -> str:
        """The target without the signature, for logs."""
        return re.sub(r"signature=[0-9a-f]+", "signature=<redacted>", self.target)


@attrs.frozen(slots=True)
class Unsigned:
    """A private request before it is signed: the transport stamps the time when it sends it,
    so a retry after -1021 gets a fresh timestamp."""

    method: str
    path: str
    params: tuple[tuple[str, str], ...]
    weight: int = 1
    orders: int = 0


# -- signing and time -----------------------------------------------------------


def signature(secret: str, payload: str) -> str:
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def sign(
    unsigned: Unsigned, secret: str, timestamp_ms: int, recv_window_ms: int = DEFAULT_RECV_WINDOW_MS
) -> Request:
    if not 0 < recv_window_ms <= MAX_RECV_WINDOW_MS:
        raise ValueError(
            f"recvWindow {recv_window_ms} ms: Binance allows 1 to {MAX_RECV_WINDOW_MS}"
        )
    params = [
        *unsigned.params,
        ("timestamp", str(timestamp_ms)),
        ("recvWindow", str(recv_window_ms)),
    ]
    query = urlencode(params)
    query += "&signature=" + signature(secret, query)
    return Request(
        unsigned.method,
        unsigned.path,
        query,
        unsigned.weight,
        signed=True,
        api_key=True,
        orders=unsigned.orders,
    )


@attrs.frozen(slots=True)
class ClockOffset:
    """Server time minus local time, measured from one `GET time` round trip."""

    offset_ms: int = 0
    round_trip_ms: int = 0

    @classmethod
    def measure(cls, sent_ms: int, server_ms: int, received_ms: int) -> ClockOffset:
        # The server stamped its time somewhere in the round trip: assume the middle.
        midpoint = (sent_ms + received_ms) // 2
        return cls(server_ms - midpoint, max(0, received_ms - sent_ms))

    def venue_time(self, local_ms: int) -> int:
        return local_ms + self.offset_ms


# -- numbers --------------------------------------------------------------------


def _step_text(value: float, step: float, rounding: str) -> str:
    step_d = Decimal(repr(step))
    units = (Decimal(repr(value)) / step_d).quantize(Decimal(1), rounding=rounding)
    out = (units * step_d).normalize()
    text = format(out, "f")
    return "0" if text in ("-0", "") else text


def price_text(price: float, spec: InstrumentSpec) -> str:
    """A price on the symbol's tick (nearest tick; the caller chose the price, we only snap it)."""
    return _step_text(price, spec.tick_size, ROUND_HALF_EVEN)


def quantity_text(quantity: float, spec: InstrumentSpec) -> str:
    """A quantity on the symbol's step, rounded down: never more than the risk sizing allowed."""
    return _step_text(quantity, spec.lot_size, ROUND_DOWN)


class OrderNotSendable(ValueError):
    """The intent cannot become a valid Binance order (below the minimums, bad client id)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def check_client_id(client_order_id: str) -> str:
    if not CLIENT_ID_RE.match(client_order_id):
        raise OrderNotSendable(
            "client_id_invalid",
            f"client order id {client_order_id!r} is not a Binance newClientOrderId "
            "(1 to 36 characters of A-Z a-z 0-9 _ -)",
        )
    return client_order_id


def check_minimums(quantity: str, price: float, spec: InstrumentSpec) -> None:
    qty = float(quantity)
    if qty <= 0 or qty < spec.min_qty:
        raise OrderNotSendable(
            "below_min_qty",
            f"{spec.symbol}: quantity {quantity} is below the "
            f"minimum {spec.min_qty:g} (step {spec.lot_size:g})",
        )
    if spec.min_notional and price > 0 and qty * price < spec.min_notional:
        raise OrderNotSendable(
            "below_min_notional",
            f"{spec.symbol}: notional {qty * price:.4f} is below the minimum {spec.min_notional:g}",
        )


# -- orders ---------------------------------------------------------------------


def is_conditional(intent: OrderIntent) -> bool:
    return intent.order_type in (OrderType.STOP_MARKET, OrderType.STOP_LIMIT)


def _trigger_kind(intent: OrderIntent) -> str:
    # Targets are "tp1", "tp2", ...; anything else that triggers is protective.
    return "TAKE_PROFIT" if intent.role.startswith("tp") else "STOP"


def new_order(
    intent: OrderIntent,
    spec: InstrumentSpec,
    market: Market,
    *,
    post_only: bool = False,
    close_position: bool = False,
    reference_price: float = 0.0,
    stop_limit_band: float = SPOT_STOP_LIMIT_BAND,
) -> Unsigned:
    """The request that places `intent`. `reference_price` (the last price) checks the minimum
    notional of market orders; `close_position` makes a futures stop close the whole position."""
    cid = check_client_id(intent.client_order_id)
    post_only = post_only or intent.post_only
    qty = quantity_text(intent.quantity, spec)
    notional_price = intent.price or intent.trigger_price or reference_price
    if not close_position:
        check_minimums(qty, notional_price, spec)
    if market is Market.FUTURES:
        if is_conditional(intent):
            return _futures_algo_order(intent, spec, cid, qty, close_position)
        return _futures_order(intent, spec, cid, qty, post_only)
    return _spot_order(intent, spec, cid, qty, post_only, stop_limit_band)


def _futures_order(
    intent: OrderIntent, spec: InstrumentSpec, cid: str, qty: str, post_only: bool
) -> Unsigned:
    p: list[tuple[str, str]] = [
        ("symbol", spec.symbol),
        ("side", intent.side.value.upper()),
        ("type", intent.order_type.value),
    ]
    if intent.order_type is OrderType.LIMIT:
        if intent.price is None:
            raise OrderNotSendable("no_price", f"{cid}: a LIMIT order needs a price")
        # GTD rests as GTC and the router cancels it at its expiry (Binance's own GTD wants
        # goodTillDate at least 600 s ahead, longer than an entry's time to live).
        tif = "GTX" if post_only else "GTC" if intent.tif is TimeInForce.GTD else intent.tif.value
        if tif not in ("GTC", "IOC", "FOK", "GTX"):
            raise OrderNotSendable("tif_unsupported", f"{cid}: time in force {tif} not supported")
        p += [("timeInForce", tif), ("price", price_text(intent.price, spec))]
    p.append(("quantity", qty))
    if intent.reduce_only:
        p.append(("reduceOnly", "true"))
    p += [("newClientOrderId", cid), ("newOrderRespType", "RESULT")]
    return Unsigned("POST", PATHS[Market.FUTURES].order, tuple(p), weight=1, orders=1)


def _futures_algo_order(
    intent: OrderIntent, spec: InstrumentSpec, cid: str, qty: str, close_position: bool
) -> Unsigned:
    if intent.trigger_price is None:
        raise OrderNotSendable("no_trigger", f"{cid}: a stop order needs a trigger price")
    kind = _trigger_kind(intent)
    limit = intent.order_type is OrderType.STOP_LIMIT
    order_type = kind if limit else f"{kind}_MARKET"
    p: list[tuple[str, str]] = [
        ("algoType", "CONDITIONAL"),
        ("symbol", spec.symbol),
        ("side", intent.side.value.upper()),
        ("type", order_type),
    ]
    if limit:
        if intent.price is None:
            raise OrderNotSendable("no_price", f"{cid}: a STOP_LIMIT order needs a price")
        p += [("timeInForce", intent.tif.value), ("price", price_text(intent.price, spec))]
    p.append(("triggerPrice", price_text(intent.trigger_price, spec)))
    if close_position and not limit:
        p.append(("closePosition", "true"))
    else:
        p.append(("quantity", qty))
        if intent.reduce_only:
            p.append(("reduceOnly", "true"))
    p += [("workingType", "MARK_PRICE"), ("priceProtect", "true"), ("clientAlgoId", cid)]
    return Unsigned("POST", PATHS[Market.FUTURES].algo_order, tuple(p), weight=1, orders=1)


def algo_order(
    symbol: str,
    side: str,
    order_type: str,
    client_id: str,
    trigger: str,
    *,
    quantity: str | None,
    reduce_only: bool,
) -> Unsigned:
    """A conditional order from its parts (a replacement keeps the original's client id);
    `quantity=None` closes the whole position."""
    p: list[tuple[str, str]] = [
        ("algoType", "CONDITIONAL"),
        ("symbol", symbol),
        ("side", side),
        ("type", order_type),
        ("triggerPrice", trigger),
    ]
    if quantity is None:
        p.append(("closePosition", "true"))
    else:
        p.append(("quantity", quantity))
        if reduce_only:
            p.append(("reduceOnly", "true"))
    p += [("workingType", "MARK_PRICE"), ("priceProtect", "true"), ("clientAlgoId", client_id)]
    return Unsigned("POST", PATHS[Market.FUTURES].algo_order, tuple(p), weight=1, orders=1)


def _spot_order(
    intent: OrderIntent,
    spec: InstrumentSpec,
    cid: str,
    qty: str,
    post_only: bool,
    stop_limit_band: float = SPOT_STOP_LIMIT_BAND,
) -> Unsigned:
    # Spot has no reduce-only: a SELL of what we hold is the protective leg. Nor GTD: a GTD
    # entry rests as GTC and the router cancels it at its expiry, as on futures.
    p: list[tuple[str, str]] = [("symbol", spec.symbol), ("side", intent.side.value.upper())]
    if intent.order_type is OrderType.MARKET:
        p.append(("type", "MARKET"))
    elif intent.order_type is OrderType.LIMIT:
        if intent.price is None:
            raise OrderNotSendable("no_price", f"{cid}: a LIMIT order needs a price")
        if post_only:
            p += [("type", "LIMIT_MAKER"), ("price", price_text(intent.price, spec))]
        else:
            tif = "GTC" if intent.tif is TimeInForce.GTD else intent.tif.value
            p += [
                ("type", "LIMIT"),
                ("timeInForce", tif),
                ("price", price_text(intent.price, spec)),
            ]
    else:
        if intent.trigger_price is None:
            raise OrderNotSendable("no_trigger", f"{cid}: a stop order needs a trigger price")
        kind = "TAKE_PROFIT" if _trigger_kind(intent) == "TAKE_PROFIT" else "STOP_LOSS"
        # A stop-market becomes STOP_LOSS_LIMIT with its limit `stop_limit_band` beyond the
        # trigger (STOP_LOSS, spot's stop-market, is not offered on every symbol).
        limit = intent.price
        if intent.order_type is OrderType.STOP_MARKET:
            sign = -1.0 if intent.side.value.upper() == "SELL" else 1.0
            limit = intent.trigger_price * (1.0 + sign * stop_limit_band)
        if limit is None:
            raise OrderNotSendable("no_price", f"{cid}: a STOP_LIMIT order needs a price")
        tif = "GTC" if intent.tif is TimeInForce.GTD else intent.tif.value
        p += [
            ("type", f"{kind}_LIMIT"),
            ("timeInForce", tif),
            ("price", price_text(limit, spec)),
        ]
        p.append(("stopPrice", price_text(intent.trigger_price, spec)))
    p += [("quantity", qty), ("newClientOrderId", cid), ("newOrderRespType", "FULL")]
    return Unsigned("POST", PATHS[Market.SPOT].order, tuple(p), weight=1, orders=1)


def cancel_order(
    market: Market, symbol: str, client_order_id: str, *, conditional: bool = False
) -> Unsigned:
    if conditional and market is Market.FUTURES:
        return Unsigned("DELETE", PATHS[market].algo_order, (("clientAlgoId", client_order_id),))
    return Unsigned(
        "DELETE", PATHS[market].order, (("symbol", symbol), ("origClientOrderId", client_order_id))
    )


def query_order(
    market: Market, symbol: str, client_order_id: str, *, conditional: bool = False
) -> Unsigned:
    if conditional and market is Market.FUTURES:
        return Unsigned("GET", PATHS[market].algo_order, (("clientAlgoId", client_order_id),))
    weight = 1 if market is Market.FUTURES else 4
    return Unsigned(
        "GET",
        PATHS[market].order,
        (("symbol", symbol), ("origClientOrderId", client_order_id)),
        weight=weight,
    )


def query_order_by_id(market: Market, symbol: str, order_id: str) -> Unsigned:
    """The matching-engine order a triggered conditional order became (`actualOrderId`)."""
    return Unsigned(
        "GET",
        PATHS[market].order,
        (("symbol", symbol), ("orderId", order_id)),
        weight=1 if market is Market.FUTURES else 4,
    )


def modify_order(
    symbol: str, client_order_id: str, side: str, quantity: str, price: str
) -> Unsigned:
    """Futures LIMIT orders only (PUT /fapi/v1/order); stops are replaced, not modified."""
    return Unsigned(
        "PUT",
        PATHS[Market.FUTURES].order,
        (
            ("symbol", symbol),
            ("origClientOrderId", client_order_id),
            ("side", side),
            ("quantity", quantity),
            ("price", price),
        ),
        weight=1,
        orders=1,
    )


def open_orders(market: Market, symbol: str = "") -> Unsigned:
    if symbol:
        return Unsigned(
            "GET",
            PATHS[market].open_orders,
            (("symbol", symbol),),
            weight=1 if market is Market.FUTURES else 6,
        )
    return Unsigned(
        "GET", PATHS[market].open_orders, (), weight=40 if market is Market.FUTURES else 80
    )


def open_algo_orders() -> Unsigned:
    return Unsigned("GET", PATHS[Market.FUTURES].open_algo_orders, (), weight=40)


def all_orders(market: Market, symbol: str, start_ms: int) -> Unsigned:
    return Unsigned(
        "GET",
        PATHS[market].all_orders,
        (("symbol", symbol), ("startTime", str(start_ms)), ("limit", "1000")),
        weight=5 if market is Market.FUTURES else 20,
    )


def all_algo_orders(symbol: str, start_ms: int) -> Unsigned:
    return Unsigned(
        "GET",
        PATHS[Market.FUTURES].all_algo_orders,
        (("symbol", symbol), ("startTime", str(start_ms)), ("limit", "100")),
        weight=5,
    )


TRADES_PAGE = 1000


def user_trades(market: Market, symbol: str, start_ms: int) -> Unsigned:
    """Trades since `start_ms` (Binance requires the symbol; at most 1000 per page)."""
    return Unsigned(
        "GET",
        PATHS[market].user_trades,
        (("symbol", symbol), ("startTime", str(start_ms)), ("limit", str(TRADES_PAGE))),
        weight=5 if market is Market.FUTURES else 20,
    )


def user_trades_from(market: Market, symbol: str, from_id: int) -> Unsigned:
    """The next page: trades from this trade id on (`fromId` cannot go with `startTime`)."""
    return Unsigned(
        "GET",
        PATHS[market].user_trades,
        (("symbol", symbol), ("fromId", str(from_id)), ("limit", str(TRADES_PAGE))),
        weight=5 if market is Market.FUTURES else 20,
    )


def account(market: Market) -> Unsigned:
    return Unsigned("GET", PATHS[market].account, (), weight=5 if market is Market.FUTURES else 20)


def position_risk() -> Unsigned:
    return Unsigned("GET", PATHS[Market.FUTURES].position_risk, (), weight=5)


def set_leverage(symbol: str, leverage: int) -> Unsigned:
    if not 1 <= leverage <= 125:
        raise ValueError(f"{symbol}: leverage {leverage} outside Binance's 1 to 125")
    return Unsigned(
        "POST", PATHS[Market.FUTURES].leverage, (("symbol", symbol), ("leverage", str(leverage)))
    )


MARGIN_TYPES = {"isolated": "ISOLATED", "cross": "CROSSED"}


def set_margin_type(symbol: str, margin_type: str) -> Unsigned:
    if margin_type not in MARGIN_TYPES:
        raise ValueError(
            f"{symbol}: margin type {margin_type!r} is not one of {', '.join(MARGIN_TYPES)}"
        )
    return Unsigned(
        "POST",
        PATHS[Market.FUTURES].margin_type,
        (("symbol", symbol), ("marginType", MARGIN_TYPES[margin_type])),
    )


# -- public and API-key-only calls ----------------------------------------------


def server_time(market: Market) -> Request:
    return Request("GET", PATHS[market].time)


def exchange_info(market: Market) -> Request:
    return Request("GET", PATHS[market].exchange_info, weight=1 if market is Market.FUTURES else 20)


def spot_ticker_price(symbol: str) -> Request:
    """The last price of one spot symbol (what its coins are worth now)."""
    return Request("GET", "/api/v3/ticker/price", urlencode({"symbol": symbol}), weight=2)


def listen_key_create(market: Market) -> Request:
    return Request("POST", PATHS[market].listen_key, api_key=True)


def listen_key_keepalive(market: Market, listen_key: str) -> Request:
    # Futures keeps the account's one key alive without naming it; spot needs it named.
    query = "" if market is Market.FUTURES else urlencode({"listenKey": listen_key})
    return Request("PUT", PATHS[market].listen_key, query, api_key=True)


def user_stream_subscription(
    api_key: str, secret: str, timestamp_ms: int, request_id: str
) -> dict[str, Any]:
    """Spot's user data stream: `userDataStream.subscribe.signature` on the WebSocket API.
    Its signature is over the parameters sorted by name (`apiKey=...&timestamp=...`)."""
    params: dict[str, Any] = {"apiKey": api_key, "timestamp": timestamp_ms}
    payload = urlencode(sorted(params.items()))
    params["signature"] = signature(secret, payload)
    return {"id": request_id, "method": "userDataStream.subscribe.signature", "params": params}


def user_stream_url(ws_url: str, listen_key: str) -> str:
    return f"{ws_url.rstrip('/')}/ws/{listen_key}"


def params_of(params: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """Plain values as Binance's text parameters (booleans lower-case)."""
    return tuple((k, str(v).lower() if isinstance(v, bool) else str(v)) for k, v in params.items())


__all__ = [
    "NETWORKS",
    "PATHS",
    "ClockOffset",
    "Market",
    "OrderNotSendable",
    "Request",
    "TimeInForce",
    "Unsigned",
    "check_client_id",
    "new_order",
    "sign",
    "signature",
]
