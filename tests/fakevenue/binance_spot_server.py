"""A fake Binance spot venue on 127.0.0.1: signed REST on /api/v3 and the WebSocket API's
user data subscription.

REST is the futures fake's shell (`FakeBinanceFutures`: API key, HMAC signature, timestamp
window, usage headers, misbehaviour on command) over a spot book
(`binance_spot_exchange.SpotExchange`). The user data stream is what Binance documents since
spot's listenKey was discontinued: a WebSocket API session (`ws://.../ws-api/v3`) on which the
client sends `userDataStream.subscribe.signature` with `apiKey`, `timestamp` and an HMAC
`signature` over the parameters sorted by name; the answer is `{"id", "status": 200, "result":
{"subscriptionId": N}}` (or `{"status": 400, "error": {"code", "msg"}}`), then every event comes
as `{"subscriptionId": N, "event": {...}}`. `end_subscriptions()` sends `eventStreamTerminated`,
`drop_user_streams()` cuts the connections.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
from typing import Any
from urllib.parse import parse_qsl, urlencode

import trio
from websockets.exceptions import ConnectionClosed

from fakevenue.binance_exchange import ApiError, Symbol
from fakevenue.binance_exchange_server import FakeBinanceFutures
from fakevenue.binance_spot_exchange import SpotAccount, SpotExchange

SPOT_ORDER_PATHS = ("/api/v3/order",)


class FakeBinanceSpot(FakeBinanceFutures):
    """Run with `await nursery.start(venue.run)`; `rest_url` and `ws_api_url` are then live."""

    order_paths = SPOT_ORDER_PATHS

    def __init__(self, symbols: list[Symbol] | None = None, prices: dict[str, float] | None = None,
                 ) -> None:
        super().__init__(symbols, prices)
        self.exchange = SpotExchange(  # type: ignore[assignment]
            symbols or [Symbol("BTCUSDT", tick=0.01, step=0.00001, min_qty=0.00001,
                               min_notional=5.0)],
            prices or {"BTCUSDT": 50_000.0}, self.now_ms)
        self.exchange.emit = self._emit
        self.subscribers: dict[str, list[tuple[int, trio.MemorySendChannel[Any]]]] = {}
        self.subscription_ids = itertools.count(0)
        self.subscriptions = 0

    @property
    def ws_api_url(self) -> str:
        return f"ws://127.0.0.1:{self.ws_port}/ws-api/v3"

    def add_account(self, api_key: str, secret: str, wallet: float = 10_000.0) -> SpotAccount:  # type: ignore[override]
        return self.exchange.add_account(api_key, secret, wallet)  # type: ignore[return-value]

    # -- WebSocket API: the user data subscription --------------------------------------

    def _emit(self, api_key: str, event: dict[str, Any]) -> None:
        for sub_id, channel in self.subscribers.get(api_key, []):
            channel.send_nowait({"subscriptionId": sub_id, "event": event})

    def end_subscriptions(self) -> None:
        for subs in self.subscribers.values():
            for sub_id, channel in subs:
                channel.send_nowait({"subscriptionId": sub_id, "event": {
                    "e": "eventStreamTerminated", "E": self.now_ms()}})
        self.subscribers.clear()

    def drop_user_streams(self) -> None:
        for subs in self.subscribers.values():
            for _, channel in subs:
                channel.send_nowait(None)
        self.subscribers.clear()

    async def _ws(self, ws: Any) -> None:
        if ws.request.path != "/ws-api/v3":
            await ws.aclose(1008, "unknown path")
            return
        self.stream_connections += 1
        send, receive = trio.open_memory_channel[Any](10_000)
        mine: list[tuple[str, tuple[int, trio.MemorySendChannel[Any]]]] = []
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._pump, ws, receive, nursery.cancel_scope)
                async for frame in ws:
                    send.send_nowait(self._ws_request(frame, send, mine))
                nursery.cancel_scope.cancel()
        except* ConnectionClosed:
            pass  # the client went away (or was killed)
        finally:
            for key, sub in mine:
                if sub in self.subscribers.get(key, []):
                    self.subscribers[key].remove(sub)

    async def _pump(self, ws: Any, receive: trio.MemoryReceiveChannel[Any],
                    scope: trio.CancelScope) -> None:
        async for message in receive:
            if message is None:
                await ws.aclose(1011)
                scope.cancel()
                return
            await ws.send(json.dumps(message))

    def _ws_request(self, frame: str | bytes, send: trio.MemorySendChannel[Any],
                    mine: list[tuple[str, tuple[int, trio.MemorySendChannel[Any]]]]) -> dict[str, Any]:
        try:
            req = json.loads(frame)
            request_id, method, params = req["id"], req["method"], dict(req.get("params") or {})
        except (ValueError, KeyError, TypeError):
            return {"id": None, "status": 400, "error": {"code": -1000, "msg": "Malformed request."}}
        try:
            if method != "userDataStream.subscribe.signature":
                raise ApiError(400, -1020, "Unsupported operation.")
            acct = self._ws_authenticate(params)
        except ApiError as err:
            return {"id": request_id, "status": err.status, "error": err.body()}
        sub = (next(self.subscription_ids), send)
        self.subscribers.setdefault(acct.api_key, []).append(sub)
        mine.append((acct.api_key, sub))
        self.subscriptions += 1
        return {"id": request_id, "status": 200, "result": {"subscriptionId": sub[0]},
                "rateLimits": [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE",
                                "intervalNum": 1, "limit": 6000, "count": 2}]}

    def _ws_authenticate(self, params: dict[str, Any]) -> SpotAccount:
        acct = self.exchange.accounts.get(str(params.get("apiKey", "")))
        if acct is None:
            raise ApiError(401, -2015, "Invalid API-key, IP, or permissions for action.")
        signature = str(params.pop("signature", ""))
        payload = urlencode(sorted((k, str(v)) for k, v in params.items()))
        expected = hmac.new(acct.secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature.lower()):
            raise ApiError(400, -1022, "Signature for this request is not valid.")
        ts, now = int(params.get("timestamp", 0)), self.now_ms()
        window = int(params.get("recvWindow", 5000))
        if not (ts < now + 1000 and now - ts <= window):
            raise ApiError(400, -1021, "Timestamp for this request is outside of the recvWindow.")
        return acct  # type: ignore[no-any-return]

    # -- REST ----------------------------------------------------------------------------

    def _route(self, req: Any) -> Any:
        ex = self.exchange
        public = {("GET", "/api/v3/time"): lambda: {"serverTime": self.now_ms()},
                  ("GET", "/api/v3/ping"): dict,
                  ("GET", "/api/v3/exchangeInfo"): ex.exchange_info,
                  ("GET", "/api/v3/ticker/price"): lambda: self._ticker(req)}
        if (req.method, req.path) in public:
            return public[(req.method, req.path)]()
        if req.path == "/api/v3/userDataStream":
            raise ApiError(410, -1099, "Not found, unauthenticated, or unauthorized: the spot "
                           "listenKey was discontinued; subscribe on the WebSocket API.")
        acct, params = self._authenticate(req)
        return self._private(req.method, req.path, acct, params)

    def _ticker(self, req: Any) -> dict[str, str]:
        name = dict(parse_qsl(req.query)).get("symbol")
        if name in self.exchange.prices:  # a priced pair that is not traded here (BNBUSDT)
            return {"symbol": name, "price": f"{self.exchange.prices[name]:.8f}"}
        sym = self.exchange.symbol(name)
        return {"symbol": sym.name, "price": f"{self.exchange.prices[sym.name]:.8f}"}

    def _private(self, method: str, path: str, acct: Any, p: dict[str, str]) -> Any:
        ex = self.exchange
        route = {
            ("POST", "/api/v3/order"): lambda: ex.new_order(acct, p),
            ("DELETE", "/api/v3/order"): lambda: ex.cancel_order(acct, p),
            ("GET", "/api/v3/order"): lambda: ex.find_order(acct, p.get("origClientOrderId"),
                                                             p.get("orderId")).reply(),
            ("GET", "/api/v3/openOrders"): lambda: [
                o.reply() for o in acct.orders.values()
                if o.status in ("NEW", "PARTIALLY_FILLED") and p.get("symbol") in (None, o.symbol)],
            ("GET", "/api/v3/allOrders"): lambda: [
                o.reply() for o in acct.orders.values()
                if o.symbol == ex.symbol(p.get("symbol")).name
                and o.time >= int(p.get("startTime", 0))],
            ("GET", "/api/v3/account"): lambda: ex.account_reply(acct),
            ("GET", "/api/v3/myTrades"): lambda: self._my_trades(acct, p),
        }
        handler = route.get((method, path))
        if handler is None:
            raise ApiError(404, -5000, f"Path {path}, Method {method} is invalid")
        return handler()

    def _my_trades(self, acct: SpotAccount, p: dict[str, str]) -> list[dict[str, Any]]:
        sym = self.exchange.symbol(p.get("symbol"))
        if "fromId" in p and "startTime" in p:
            raise ApiError(400, -1128, "Combination of optional parameters invalid.")
        start, from_id = int(p.get("startTime", 0)), int(p.get("fromId", 0))
        rows = [t for t in self.exchange.my_trades(acct, sym.name)
                if t["time"] >= start and t["id"] >= from_id]
        return rows[: int(p.get("limit", 500))]
