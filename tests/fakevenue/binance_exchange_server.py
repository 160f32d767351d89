"""A fake Binance USD-M futures venue on 127.0.0.1: signed REST and the user data stream WS.

REST checks what Binance checks, in its order and with its error shapes:
the API key (`X-MBX-APIKEY`: -2014 missing, -2015 unknown), the HMAC-SHA256
signature over "query string + body" (-1022), the timestamp inside
`recvWindow` of the server clock (-1021), then the request itself
(`binance_exchange.Exchange`). Every reply carries `X-MBX-USED-WEIGHT-1M`;
order calls also `X-MBX-ORDER-COUNT-10S` / `-1M`.

The user data stream is `ws://.../ws/<listenKey>`; keys come from
`POST /fapi/v1/listenKey`, are kept alive by `PUT`, and die on command.

Misbehaviour on command: `latency_s` before every REST answer, `other_weight` (the
minute's weight looks spent), `fail_next`
(canned 429 with Retry-After, 418, 5xx for the next requests), `lose_next_order_replies`
(an order is placed but its reply is never sent: the client cannot know),
`skew_ms` (the server's clock runs ahead), `expire_listen_keys()`,
`drop_user_streams()`, and the price moved by `set_price` (a jump triggers stops at once).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import time
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import attrs
import trio
from websockets.exceptions import ConnectionClosed
from websockets.trio.server import serve

from fakevenue.binance_exchange import Account, ApiError, Exchange, Symbol

ORDER_PATHS = ("/fapi/v1/order", "/fapi/v1/algoOrder")


@attrs.frozen
class HttpRequest:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: str


@attrs.frozen
class Failure:
    status: int
    code: int = 0
    msg: str = ""
    retry_after_s: float | None = None


async def read_http(stream: trio.abc.Stream) -> HttpRequest | None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await stream.receive_some(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = await stream.receive_some(65536)
        if not chunk:
            return None
        body += chunk
    url = urlsplit(target)
    return HttpRequest(method, url.path, url.query, headers, body.decode())


async def write_http(stream: trio.abc.Stream, status: int, headers: dict[str, str], body: Any) -> None:
    raw = json.dumps(body).encode()
    head = [f"HTTP/1.1 {status} X", "Content-Type: application/json",
            f"Content-Length: {len(raw)}", "Connection: close",
            *(f"{k}: {v}" for k, v in headers.items())]
    await stream.send_all(("\r\n".join(head) + "\r\n\r\n").encode() + raw)


class FakeBinanceFutures:
    """Run with `await nursery.start(venue.run)`; then `rest_url` and `ws_url` are live."""

    order_paths = ORDER_PATHS

    def __init__(self, symbols: list[Symbol] | None = None, prices: dict[str, float] | None = None,
                 ) -> None:
        self.skew_ms = 0
        self.exchange = Exchange(symbols or [Symbol("BTCUSDT"), Symbol("ETHUSDT", tick=0.01)],
                                 prices or {"BTCUSDT": 50_000.0, "ETHUSDT": 3_000.0}, self.now_ms)
        self.exchange.emit = self._emit
        self.latency_s = 0.0
        self.other_weight = 0  # weight other clients on "our IP" used this minute (shown in headers)
        self.fail_next: list[Failure] = []
        self.lose_next_order_replies = 0
        self.listen_keys: dict[str, str] = {}  # listenKey -> api key
        self.keepalives = 0
        self.streams: dict[str, list[trio.MemorySendChannel[dict[str, Any] | None]]] = {}
        self.stream_connections = 0
        self.log: list[tuple[str, str, int]] = []  # (method, path, status)
        self.weight_window = (0, 0)  # (minute, used)
        self.order_window = (0, 0)  # (10-second slot, count)
        self.rest_port = 0
        self.ws_port = 0

    def now_ms(self) -> int:
        return int(time.time() * 1000) + self.skew_ms

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.ws_port}"

    def add_account(self, api_key: str, secret: str, wallet: float = 10_000.0) -> Account:
        return self.exchange.add_account(api_key, secret, wallet)

    def set_price(self, symbol: str, price: float) -> None:
        self.exchange.set_price(symbol, price)

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        ws_listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        rest_listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.ws_port = ws_listeners[0].socket.getsockname()[1]
        self.rest_port = rest_listeners[0].socket.getsockname()[1]
        async with trio.open_nursery() as nursery:
            await nursery.start(lambda task_status: serve(self._ws, listeners=ws_listeners,
                                                           compression=None, task_status=task_status))
            await nursery.start(trio.serve_listeners, self._http, rest_listeners)
            task_status.started()

    # -- user data stream ----------------------------------------------------------

    def _emit(self, api_key: str, event: dict[str, Any]) -> None:
        for key, owner in self.listen_keys.items():
            if owner == api_key:
                for channel in self.streams.get(key, []):
                    channel.send_nowait(event)

    def expire_listen_keys(self) -> None:
        """Binance forgets every key: each stream gets `listenKeyExpired` and is closed."""
        for key in list(self.listen_keys):
            for channel in self.streams.get(key, []):
                channel.send_nowait({"e": "listenKeyExpired", "E": str(self.now_ms()),
                                     "listenKey": key})
                channel.send_nowait(None)
            del self.listen_keys[key]

    def drop_user_streams(self) -> None:
        """Cut every user stream (close 1011) although its key is still good."""
        for channels in self.streams.values():
            for channel in channels:
                channel.send_nowait(None)

    async def _ws(self, ws: Any) -> None:
        key = ws.request.path.rsplit("/", 1)[-1]
        if key not in self.listen_keys:
            await ws.aclose(1008, "invalid listenKey")
            return
        self.stream_connections += 1
        send, receive = trio.open_memory_channel[dict[str, Any] | None](10_000)
        self.streams.setdefault(key, []).append(send)
        try:
            async for event in receive:
                if event is None:  # dropped (key still valid: 1011) or expired (1000)
                    await ws.aclose(1011 if key in self.listen_keys else 1000)
                    return
                await ws.send(json.dumps(event))
        except ConnectionClosed:
            pass
        finally:
            self.streams[key].remove(send)

    # -- REST ----------------------------------------------------------------------

    async def _http(self, stream: trio.SocketStream) -> None:
        try:
            request = await read_http(stream)
            if request is None:
                return
            if self.latency_s:
                await trio.sleep(self.latency_s)
            status, headers, body, hang_up = self._answer(request)
            self.log.append((request.method, request.path, status))
            if not hang_up:
                await write_http(stream, status, headers, body)
        except trio.BrokenResourceError:
            pass
        finally:
            await stream.aclose()

    def _usage_headers(self, path: str, method: str) -> dict[str, str]:
        now = self.now_ms()
        minute, used = self.weight_window
        used = used + 1 if minute == now // 60_000 else 1
        self.weight_window = (now // 60_000, used)
        headers = {"X-MBX-USED-WEIGHT-1M": str(used + self.other_weight)}
        if path in self.order_paths and method in ("POST", "PUT"):
            slot, count = self.order_window
            count = count + 1 if slot == now // 10_000 else 1
            self.order_window = (now // 10_000, count)
            headers |= {"X-MBX-ORDER-COUNT-10S": str(count), "X-MBX-ORDER-COUNT-1M": str(count)}
        return headers

    def _answer(self, req: HttpRequest) -> tuple[int, dict[str, str], Any, bool]:
        headers = self._usage_headers(req.path, req.method)
        if self.fail_next:
            f = self.fail_next.pop(0)
            if f.retry_after_s is not None:
                headers["Retry-After"] = f"{f.retry_after_s:g}"
            body = {"code": f.code, "msg": f.msg} if f.code else "<html>Service Unavailable</html>"
            return f.status, headers, body, False
        try:
            body = self._route(req)
        except ApiError as err:
            return err.status, headers, err.body(), False
        lose = (self.lose_next_order_replies > 0 and req.method == "POST"
                and req.path in self.order_paths)
        if lose:
            self.lose_next_order_replies -= 1
        return 200, headers, body, lose

    def _route(self, req: HttpRequest) -> Any:
        public = {("GET", "/fapi/v1/time"): lambda: {"serverTime": self.now_ms()},
                  ("GET", "/fapi/v1/ping"): dict,
                  ("GET", "/fapi/v1/exchangeInfo"): self.exchange.exchange_info}
        if (req.method, req.path) in public:
            return public[(req.method, req.path)]()
        if req.path == "/fapi/v1/listenKey":
            return self._listen_key(req)
        acct, params = self._authenticate(req)
        return self._private(req.method, req.path, acct, params)

    def _account_of(self, req: HttpRequest) -> Account:
        key = req.headers.get("x-mbx-apikey", "")
        if not re.fullmatch(r"[A-Za-z0-9]{8,64}", key):
            raise ApiError(401, -2014, "API-key format invalid.")
        acct = self.exchange.accounts.get(key)
        if acct is None:
            raise ApiError(401, -2015, "Invalid API-key, IP, or permissions for action, "
                           "request ip: 127.0.0.1")
        return acct

    def _authenticate(self, req: HttpRequest) -> tuple[Account, dict[str, str]]:
        acct = self._account_of(req)
        total = req.query + req.body
        m = re.search(r"&?signature=([0-9a-fA-F]*)", total)
        if m is None:
            raise ApiError(400, -1102, "Mandatory parameter 'signature' was not sent, was empty/null, "
                           "or malformed.")
        payload = total[:m.start()] + total[m.end():]
        expected = hmac.new(acct.secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, m.group(1).lower()):
            raise ApiError(400, -1022, "Signature for this request is not valid.")
        params = dict(parse_qsl(req.query)) | dict(parse_qsl(req.body))
        try:
            ts = int(params["timestamp"])
            window = int(params.get("recvWindow", "5000"))
        except (KeyError, ValueError) as exc:
            raise ApiError(400, -1102, "Mandatory parameter 'timestamp' was not sent, was "
                           "empty/null, or malformed.") from exc
        now = self.now_ms()
        if not (ts < now + 1000 and now - ts <= window) or window > 60_000:
            raise ApiError(400, -1021, "Timestamp for this request is outside of the recvWindow.")
        return acct, params

    def _listen_key(self, req: HttpRequest) -> Any:
        acct = self._account_of(req)
        if req.method == "POST":
            key = next((k for k, owner in self.listen_keys.items() if owner == acct.api_key), None)
            if key is None:
                key = secrets.token_hex(32)
                self.listen_keys[key] = acct.api_key
            return {"listenKey": key}
        key = next((k for k, owner in self.listen_keys.items() if owner == acct.api_key), None)
        if req.method == "PUT":
            if key is None:
                raise ApiError(400, -1125, "This listenKey does not exist.")
            self.keepalives += 1
            return {"listenKey": key}
        if req.method == "DELETE" and key is not None:
            del self.listen_keys[key]
        return {}

    def _private(self, method: str, path: str, acct: Account, p: dict[str, str]) -> Any:
        ex = self.exchange
        route = {
            ("POST", "/fapi/v1/order"): lambda: ex.new_order(acct, p),
            ("DELETE", "/fapi/v1/order"): lambda: ex.cancel_order(acct, p),
            ("PUT", "/fapi/v1/order"): lambda: ex.modify_order(acct, p),
            ("GET", "/fapi/v1/order"): lambda: ex.find_order(acct, p.get("origClientOrderId"),
                                                              p.get("orderId")).reply(),
            ("GET", "/fapi/v1/openOrders"): lambda: [
                o.reply() for o in acct.orders.values()
                if o.status in ("NEW", "PARTIALLY_FILLED") and p.get("symbol") in (None, o.symbol)],
            ("GET", "/fapi/v1/allOrders"): lambda: [
                o.reply() for o in acct.orders.values()
                if o.symbol == p.get("symbol") and o.time >= int(p.get("startTime", 0))],
            ("POST", "/fapi/v1/algoOrder"): lambda: ex.new_algo(acct, p),
            ("DELETE", "/fapi/v1/algoOrder"): lambda: ex.cancel_algo(acct, p),
            ("GET", "/fapi/v1/algoOrder"): lambda: ex.find_algo(acct, p.get("clientAlgoId"),
                                                                 p.get("algoId")).reply(),
            ("GET", "/fapi/v1/openAlgoOrders"): lambda: [
                a.reply() for a in acct.algos.values() if a.status == "NEW"],
            ("GET", "/fapi/v1/allAlgoOrders"): lambda: [
                a.reply() for a in acct.algos.values()
                if a.symbol == p.get("symbol") and a.time >= int(p.get("startTime", 0))],
            ("GET", "/fapi/v3/account"): lambda: ex.account_reply(acct),
            ("GET", "/fapi/v2/account"): lambda: ex.account_reply(acct),
            ("GET", "/fapi/v3/positionRisk"): lambda: ex.position_risk(acct),
            ("GET", "/fapi/v2/positionRisk"): lambda: ex.position_risk(acct),
            ("GET", "/fapi/v1/userTrades"): lambda: self._user_trades(acct, p),
            ("POST", "/fapi/v1/leverage"): lambda: self._leverage(acct, p),
            ("POST", "/fapi/v1/marginType"): lambda: self._margin_type(acct, p),
        }
        handler = route.get((method, path))
        if handler is None:
            raise ApiError(404, -5000, f"Path {path}, Method {method} is invalid")
        return handler()

    def _user_trades(self, acct: Account, p: dict[str, str]) -> list[dict[str, Any]]:
        self.exchange.symbol(p.get("symbol"))
        if "fromId" in p and "startTime" in p:
            raise ApiError(400, -1128, "Combination of optional parameters invalid.")
        start, from_id = int(p.get("startTime", 0)), int(p.get("fromId", 0))
        rows = [t for t in acct.trades if t["symbol"] == p["symbol"] and t["time"] >= start
                and t["id"] >= from_id]
        return rows[: int(p.get("limit", 500))]

    def _leverage(self, acct: Account, p: dict[str, str]) -> dict[str, Any]:
        sym = self.exchange.symbol(p.get("symbol"))
        leverage = int(p.get("leverage", "0"))
        if not 1 <= leverage <= 125:
            raise ApiError(400, -4028, "Leverage 0 is not valid")
        acct.leverage[sym.name] = leverage
        return {"leverage": leverage, "maxNotionalValue": "1000000", "symbol": sym.name}

    def _margin_type(self, acct: Account, p: dict[str, str]) -> dict[str, Any]:
        sym = self.exchange.symbol(p.get("symbol"))
        wanted = {"ISOLATED": "isolated", "CROSSED": "cross"}.get(p.get("marginType", ""))
        if wanted is None:
            raise ApiError(400, -1116, "Invalid marginType.")
        if acct.margin_type.get(sym.name, "cross") == wanted:
            raise ApiError(400, -4046, "No need to change margin type.")
        acct.margin_type[sym.name] = wanted
        return {"code": 200, "msg": "success"}
