"""A fake Hyperliquid venue on 127.0.0.1: `POST /info`, `POST /exchange` and the `/ws` user channels.

REST answers as the venue does: 200 with `{"status": "ok"|"err", ...}` for
every action it could read (a refused signer or nonce is an "err" with the
venue's words), 422 "Failed to deserialize the JSON body into the target
type" for a body it could not. The WS speaks `{"method": "subscribe",
"subscription": {"type": "orderUpdates"|"userFills"|"userEvents", "user"}}`
(userFills starts with a snapshot, `isSnapshot: true`) and answers
`{"method": "ping"}` with `{"channel": "pong"}`.

Misbehaviour on command: `latency_s` before every REST answer,
`fail_next` (canned 429 / 5xx for the next requests), `lose_next_exchange_replies`
(the action is carried out but the reply never sent), `drop_user_streams()`,
and `set_price` (a jump fires the stops it passes at once).
"""

from __future__ import annotations

import json
import time
from typing import Any

import attrs
import trio
from websockets.exceptions import ConnectionClosed
from websockets.trio.server import serve

from fakevenue.binance_exchange_server import read_http, write_http
from fakevenue.hyperliquid_exchange import Coin, ExchangeError, HlExchange


@attrs.frozen
class Failure:
    status: int
    retry_after_s: float | None = None


class FakeHyperliquid:
    """Run with `await nursery.start(venue.run)`; then `rest_url` and `ws_url` are live."""

    def __init__(self, coins: list[Coin] | None = None, prices: dict[str, float] | None = None, *,
                 mainnet: bool = False) -> None:
        self.skew_ms = 0
        self.exchange = HlExchange(coins or [Coin("BTC", 5), Coin("ETH", 4)],
                                   prices or {"BTC": 50_000.0, "ETH": 3_000.0}, self.now_ms, mainnet=mainnet)
        self.exchange.emit = self._emit
        self.latency_s = 0.0
        self.fail_next: list[Failure] = []
        self.lose_next_exchange_replies = 0
        self.subscribers: dict[tuple[str, str], list[trio.MemorySendChannel[Any]]] = {}
        self.ws_connections = 0
        self.log: list[tuple[str, str, int]] = []  # (path, type, http status)
        self.rest_port = 0
        self.ws_port = 0

    def now_ms(self) -> int:
        return int(time.time() * 1000) + self.skew_ms

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.ws_port}/ws"

    def set_price(self, coin: str, price: float) -> None:
        self.exchange.set_price(coin, price)

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

    # -- WS ----------------------------------------------------------------------------

    def _emit(self, user: str, channel: str, data: Any) -> None:
        for send in self.subscribers.get((user, channel), []):
            send.send_nowait({"channel": channel, "data": data})

    def exchange_subscribed(self, user: str) -> bool:
        """True once some socket listens to this user's fills (the tests wait for it)."""
        return bool(self.subscribers.get((user.lower(), "userFills")))

    def drop_user_streams(self) -> None:
        for channels in self.subscribers.values():
            for send in channels:
                send.send_nowait(None)

    async def _ws(self, ws: Any) -> None:
        self.ws_connections += 1
        send, receive = trio.open_memory_channel[Any](10_000)
        mine: list[tuple[str, str]] = []
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._ws_reader, ws, send, mine, nursery.cancel_scope)
                async for msg in receive:
                    try:
                        if msg is None:
                            await ws.close(1011)
                        else:
                            await ws.send(json.dumps(msg))
                            continue
                    except ConnectionClosed:
                        pass  # the client went away (killed): nothing more to send
                    nursery.cancel_scope.cancel()
                    return
        finally:
            for key in mine:
                if send in self.subscribers.get(key, []):
                    self.subscribers[key].remove(send)

    async def _ws_reader(self, ws: Any, send: trio.MemorySendChannel[Any], mine: list[tuple[str, str]],
                         scope: trio.CancelScope) -> None:
        try:
            async for raw in ws:
                msg = json.loads(raw)
                if msg.get("method") == "ping":
                    send.send_nowait({"channel": "pong"})
                    continue
                sub = msg.get("subscription", {})
                key = (str(sub.get("user", "")).lower(), str(sub.get("type")))
                if msg.get("method") == "subscribe":
                    self.subscribers.setdefault(key, []).append(send)
                    mine.append(key)
                    send.send_nowait({"channel": "subscriptionResponse", "data": msg})
                    if key[1] == "userFills" and key[0] in self.exchange.users:
                        fills = self.exchange.users[key[0]].fills
                        send.send_nowait({"channel": "userFills",
                                          "data": {"isSnapshot": True, "user": key[0], "fills": fills[-2000:]}})
        except ConnectionClosed:
            pass
        scope.cancel()

    # -- REST ---------------------------------------------------------------------------

    async def _http(self, stream: trio.SocketStream) -> None:
        try:
            request = await read_http(stream)
            if request is None:
                return
            if self.latency_s:
                await trio.sleep(self.latency_s)
            status, headers, body, hang_up = self._answer(request.path, request.body)
            if not hang_up:
                await write_http(stream, status, headers, body)
        except trio.BrokenResourceError:
            pass
        finally:
            await stream.aclose()

    def _answer(self, path: str, raw: str) -> tuple[int, dict[str, str], Any, bool]:
        try:
            body = json.loads(raw)
            kind = str(body["action"]["type"]) if path == "/exchange" else str(body["type"])
        except (json.JSONDecodeError, KeyError, TypeError):
            self.log.append((path, "?", 422))
            return 422, {}, "Failed to deserialize the JSON body into the target type", False
        if self.fail_next:
            f = self.fail_next.pop(0)
            self.log.append((path, kind, f.status))
            headers = {"Retry-After": f"{f.retry_after_s:g}"} if f.retry_after_s is not None else {}
            return f.status, headers, None, False
        self.log.append((path, kind, 200))
        if path == "/info":
            try:
                return 200, {}, self.exchange.info(body), False
            except ExchangeError as err:
                return 422, {}, str(err), False
        if path != "/exchange":
            return 404, {}, None, False
        try:
            reply = self.exchange.exchange(body)
        except ExchangeError as err:
            return 200, {}, {"status": "err", "response": str(err)}, False
        lose = self.lose_next_exchange_replies > 0
        if lose:
            self.lose_next_exchange_replies -= 1
        return 200, {}, reply, lose
