"""A fake Binance USD-M venue on 127.0.0.1 that misbehaves on command.

WebSocket (`/stream`, the combined-stream protocol) and REST (klines,
depth) on two loopback ports, both on trio. The market is a script of
trades (`truth`) laid on the trio clock: a trade at venue time `ts` is sent
when trio.current_time() * 1000 + t0_ms reaches `ts`, so the whole thing
runs on MockClock. REST klines are computed from the complete truth, so a
feed that backfills correctly reproduces it bar for bar.

Misbehaviour is a list of `Trouble` items, each at a venue time, applied
to whichever connection is live then: drop (clean close), abort (TCP close
with no close frame: the client sees 1006), stall (open but silent),
garbage, oversized frame, burst. REST can answer the first N requests
with 429 and a Retry-After, refuse WebSocket handshakes (`ws_refuse`, e.g. 403: Binance's
WAF answer), and answer scripted statuses first (`rest_refuse`, with the venue's error bodies).
"""

from __future__ import annotations

import enum
import json
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qs, urlsplit

import attrs
import trio
from websockets.exceptions import ConnectionClosed
from websockets.trio.server import serve

from fakevenue.http import read_request, respond

MIN = 60_000


@attrs.frozen
class Trade:
    ts: int
    price: float
    size: float
    buyer_maker: bool = False


class Trouble(enum.Enum):
    DROP = "drop"  # close cleanly (1001) and hang up
    ABORT = "abort"  # kill the TCP connection without a close frame: 1006 at the client
    STALL = "stall"  # stay open, send nothing for `arg` seconds
    GARBAGE = "garbage"  # a handful of frames that are not valid messages
    OVERSIZED = "oversized"  # one frame of `arg` bytes
    BURST = "burst"  # `arg` bookTicker messages back to back
    SKIP_DEPTH = "skip_depth"  # the next depth delta is lost on the way: a sequence gap
    LOSE_TRADES = "lose_trades"  # the next `arg` trades never reach this connection (ids still count)
    FUTURE_QUOTE = "future_quote"  # one bookTicker stamped `arg` seconds ahead of the venue clock
    # Open but nothing for `arg` seconds, and what fell due meanwhile is lost, the closing
    # candle of a minute that ended inside it too (a venue dropping a slow consumer's frames).
    BLACKOUT = "blackout"


@attrs.frozen
class Event:
    at_ms: int
    trouble: Trouble
    arg: float = 0


@attrs.frozen
class RawBody:
    """A response body sent as it is (not JSON): what a firewall answers."""

    data: bytes


def minute_bars(trades: Sequence[Trade], symbol: str) -> dict[int, list[Any]]:
    """Truth klines: {ts_open: [open time, o, h, l, c, v, close time, ...]}."""
    out: dict[int, list[Any]] = {}
    for t in trades:
        m = t.ts - t.ts % MIN
        row = out.get(m)
        if row is None:
            out[m] = [m, t.price, t.price, t.price, t.price, t.size, m + MIN - 1]
        else:
            row[2] = max(row[2], t.price)
            row[3] = min(row[3], t.price)
            row[4] = t.price
            row[5] += t.size
    return out


class FakeBinance:
    def __init__(self, truth: Sequence[Trade], *, t0_ms: int, symbol: str = "BTCUSDT",
                 trouble: Sequence[Event] = (), rest_429_first: int = 0, retry_after_s: float = 3.0,
                 ws_refuse: Sequence[int] = (), rest_refuse: Sequence[int] = (),
                 limited_for_s: float = 0.0) -> None:
        self.truth = sorted(truth, key=lambda t: t.ts)
        self.t0_ms = t0_ms
        self.symbol = symbol
        self.trouble = sorted(trouble, key=lambda e: e.at_ms)
        self.rest_429_first = rest_429_first
        self.retry_after_s = retry_after_s
        self.ws_refuse = list(ws_refuse)  # statuses for the next handshakes, one each
        self.rest_refuse = list(rest_refuse)  # statuses for the next REST requests, one each
        # A rate-limit spell from the start: every REST request and handshake gets 429 and a
        # Retry-After (Binance's -1003 body on REST) until this many seconds have passed.
        self.limited_for_s = limited_for_s
        self.answered_429 = 0
        self.started_at = 0.0
        self.handshakes_refused = 0
        self.ws_port = 0
        self.rest_port = 0
        self.connections = 0
        self.subscriptions: list[list[str]] = []  # per connection, what it asked for
        self.rest_log: list[tuple[float, str, int]] = []  # (trio time, path, status)
        self.sent_trades = 0
        self._bars = minute_bars(self.truth, symbol)
        # A small order book on a fixed grid, changed with every trade (futures ids: U, u, pu).
        self.book_bids = {100.0 + i: 1.0 for i in range(10)}
        self.book_asks = {111.0 + i: 1.0 for i in range(10)}
        self.update_id = 1_000
        self._skip_next_depth = False
        self._lose = 0

    def venue_ms(self) -> int:
        return self.t0_ms + round(trio.current_time() * 1000)

    def at(self, venue_ms: int) -> float:
        return (venue_ms - self.t0_ms) / 1000.0

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.ws_port}/stream"

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self.started_at = trio.current_time()
        ws_listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        rest_listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.ws_port = ws_listeners[0].socket.getsockname()[1]
        self.rest_port = rest_listeners[0].socket.getsockname()[1]
        async with trio.open_nursery() as nursery:
            await nursery.start(lambda task_status: serve(self._ws, listeners=ws_listeners,
                                                           compression=None, task_status=task_status,
                                                           process_request=self._handshake))
            await nursery.start(trio.serve_listeners, self._http, rest_listeners)
            task_status.started()

    # -- WebSocket ----------------------------------------------------------------
    def _handshake(self, connection: Any, request: Any) -> Any:
        """Refuse the upgrade while `ws_refuse` says so (Binance's WAF answers 403 to anyone)."""
        if self._limited():
            response = connection.respond(429, "Too many requests\n")
            response.headers["Retry-After"] = f"{self.retry_after_s:g}"
            return response
        if not self.ws_refuse:
            return None
        self.handshakes_refused += 1
        status = self.ws_refuse.pop(0)
        return connection.respond(status, "Forbidden\n" if status == 403 else "Refused\n")

    def _agg(self, t: Trade, n: int) -> str:
        return json.dumps({"stream": f"{self.symbol.lower()}@aggTrade", "data": {
            "e": "aggTrade", "E": t.ts + 5, "s": self.symbol, "a": n, "p": f"{t.price:.2f}",
            "q": f"{t.size:.3f}", "f": n, "l": n, "T": t.ts, "m": t.buyer_maker}})

    def _ticker(self, n: int, price: float, ahead_ms: int = 0) -> str:
        ts = self.venue_ms() + ahead_ms
        return json.dumps({"stream": f"{self.symbol.lower()}@bookTicker", "data": {
            "e": "bookTicker", "u": n, "s": self.symbol, "b": f"{price - 0.5:.2f}", "B": "1",
            "a": f"{price + 0.5:.2f}", "A": "2", "T": ts, "E": ts}})

    async def _ws(self, ws: Any) -> None:
        try:
            await self._stream(ws)
        except* ConnectionClosed:
            pass  # the client hung up (on purpose, after a stall or a bad frame)

    async def _stream(self, ws: Any) -> None:
        self.connections += 1
        subs: list[Any] = []
        self.subscriptions.append(subs)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._reader, ws, subs)
            await self._script(ws, subs)
            nursery.cancel_scope.cancel()

    async def _reader(self, ws: Any, subs: list[Any]) -> None:
        """Everything the client sends: subscriptions (acknowledged) and pings (answered)."""
        try:
            async for raw in ws:
                for reply in self._on_client_message(json.loads(raw), subs):
                    await ws.send(reply)
        except Exception:  # noqa: BLE001 - the connection went away under us: that is the point
            return

    def _on_client_message(self, msg: dict[str, Any], subs: list[Any]) -> list[str]:
        if msg.get("method") == "SUBSCRIBE":
            subs.extend(msg.get("params", []))
            return [json.dumps({"result": None, "id": msg.get("id")})]
        return []

    async def _script(self, ws: Any, subs: list[Any]) -> None:
        """Send the market as it happens, and the trouble when it is due."""
        now = self.venue_ms()
        trades = [(n, t) for n, t in enumerate(self.truth) if t.ts >= now]
        trouble = [e for e in self.trouble if e.at_ms >= now]
        minute: int | None = None  # the minute whose candle this connection pushes at its close
        while trades or trouble:
            next_trade = trades[0][1].ts if trades else None
            next_trouble = trouble[0].at_ms if trouble else None
            if next_trouble is not None and (next_trade is None or next_trouble <= next_trade):
                event = trouble.pop(0)
                await trio.sleep_until(self.at(event.at_ms))
                if event not in self.trouble:
                    continue  # another connection already had it: each happens once
                self.trouble.remove(event)
                if not await self._misbehave(ws, event):
                    return
                if event.trouble is Trouble.BLACKOUT:
                    minute = None  # the candle of the minute that closed inside it is lost
                now = self.venue_ms()
                trades = [(n, t) for n, t in trades if t.ts >= now]
                continue
            n, trade = trades.pop(0)
            await trio.sleep_until(self.at(trade.ts))
            m = trade.ts - trade.ts % MIN
            if minute is not None and m > minute and self._wants_candles(subs):
                for message in self._closed_candle(minute, m):
                    await ws.send(message)
            minute = m
            if self._lose > 0:
                self._lose -= 1  # lost on the way: the venue's candles and REST still count it
                continue
            await ws.send(self._agg(trade, n))
            self.sent_trades += 1
            if any("@depth" in str(sub) for sub in subs):
                depth = self._depth_update(n)
                if self._skip_next_depth:
                    self._skip_next_depth = False
                else:
                    await ws.send(depth)
        await trio.sleep_forever()

    def _wants_candles(self, subs: list[Any]) -> bool:
        return any("@kline_1m" in str(sub) for sub in subs)

    def _closed_candle(self, minute: int, now_minute: int) -> list[str]:
        """The final kline of a minute, pushed as it closes (x: true)."""
        r = self._bars.get(minute)
        if r is None:
            return []
        s = self.symbol
        return [json.dumps({"stream": f"{s.lower()}@kline_1m", "data": {
            "e": "kline", "E": now_minute + 1, "s": s, "k": {
                "t": r[0], "T": r[6], "s": s, "i": "1m", "f": 0, "L": 0, "o": str(r[1]), "c": str(r[4]),
                "h": str(r[2]), "l": str(r[3]), "v": str(r[5]), "n": 1, "x": True, "q": "0", "V": "0",
                "Q": "0", "B": "0"}}})]

    def _depth_update(self, n: int) -> str:
        """Change two levels of the book; ids move by 3 per update, as futures ids jump."""
        bid, ask = 100.0 + n % 10, 111.0 + (n * 7) % 10
        self.book_bids[bid] = float(n % 4)  # 0 removes the level
        self.book_asks[ask] = float((n + 1) % 3)
        pu, self.update_id = self.update_id, self.update_id + 3
        ts = self.venue_ms()
        return json.dumps({"stream": f"{self.symbol.lower()}@depth@100ms", "data": {
            "e": "depthUpdate", "E": ts, "T": ts, "s": self.symbol, "U": pu + 1, "u": self.update_id,
            "pu": pu, "b": [[str(bid), str(self.book_bids[bid])]], "a": [[str(ask), str(self.book_asks[ask])]]}})

    def book_snapshot(self) -> dict[str, Any]:
        return {"lastUpdateId": self.update_id,
                "bids": [[str(p), str(q)] for p, q in sorted(self.book_bids.items(), reverse=True) if q > 0],
                "asks": [[str(p), str(q)] for p, q in sorted(self.book_asks.items()) if q > 0]}

    async def _misbehave(self, ws: Any, event: Event) -> bool:
        """Apply one trouble; False when the connection is gone."""
        if event.trouble is Trouble.DROP:
            await ws.aclose(1001, "going away")
            return False
        if event.trouble is Trouble.ABORT:
            await trio.aclose_forcefully(ws.stream)
            return False
        if event.trouble in (Trouble.STALL, Trouble.BLACKOUT):
            await trio.sleep(event.arg)
        elif event.trouble is Trouble.GARBAGE:
            for frame in ("{not json", "[]", '{"stream":"x@nothing","data":{"e":"nothing"}}',
                          '{"stream":"btcusdt@aggTrade","data":{"e":"aggTrade","s":"BTCUSDT"}}'):
                await ws.send(frame)
        elif event.trouble is Trouble.OVERSIZED:
            await ws.send("x" * int(event.arg))
        elif event.trouble is Trouble.LOSE_TRADES:
            self._lose = int(event.arg)
        elif event.trouble is Trouble.FUTURE_QUOTE:
            await ws.send(self._ticker(0, self.truth[0].price, ahead_ms=int(event.arg * 1000)))
        elif event.trouble is Trouble.SKIP_DEPTH:
            self._skip_next_depth = True
        elif event.trouble is Trouble.BURST:
            price = self.truth[0].price
            for n in range(int(event.arg)):
                await ws.send(self._ticker(n, price))
        return True

    # -- REST ---------------------------------------------------------------------
    async def _http(self, stream: trio.SocketStream) -> None:
        try:
            request = await read_request(stream)
            if request is None:
                return
            status, headers, body = self._route(request.method, request.target, request.body)
            self.rest_log.append((trio.current_time(), urlsplit(request.target).path, status))
            await respond(stream, status, headers,
                          body.data if isinstance(body, RawBody) else json.dumps(body).encode())
        except trio.BrokenResourceError:
            pass
        finally:
            await stream.aclose()

    def _route(self, method: str, target: str, body: Any) -> tuple[int, dict[str, str], Any]:
        url = urlsplit(target)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        if len(self.rest_log) < self.rest_429_first or self._limited():
            return 429, {"Retry-After": f"{self.retry_after_s:g}"}, {"code": -1003, "msg": "Too many requests"}
        if self.rest_refuse and self._is_history(url.path, body):
            return self._refusal(self.rest_refuse.pop(0))
        return self._answer(url.path, query, body)

    def _limited(self) -> bool:
        if trio.current_time() < self.started_at + self.limited_for_s:
            self.answered_429 += 1
            return True
        return False

    def _is_history(self, path: str, body: Any) -> bool:
        return path.endswith("/klines")

    def _refusal(self, status: int) -> tuple[int, dict[str, str], Any]:
        """Binance's error bodies: WAF 403 is a bare page, a bad symbol is code -1121."""
        if status == 403:
            return 403, {"Content-Type": "text/html"}, RawBody(b"<html><body>403 Forbidden</body></html>")
        if status == 400:
            return 400, {}, {"code": -1121, "msg": "Invalid symbol."}
        return status, {}, {"code": -1, "msg": f"HTTP {status}"}

    def _closed_rows(self, start: int, end: int) -> list[list[Any]]:
        now = self.venue_ms()
        return [row for m, row in sorted(self._bars.items()) if start <= m <= end and m + MIN <= now]

    def _answer(self, path: str, query: dict[str, str], body: Any) -> tuple[int, dict[str, str], Any]:
        if path == "/fapi/v1/klines":
            start, end = int(query["startTime"]), int(query["endTime"])
            limit = int(query.get("limit", 500))
            rows = self._closed_rows(start, end)
            return 200, {}, [[r[0], str(r[1]), str(r[2]), str(r[3]), str(r[4]), str(r[5]), r[6],
                              "0", 1, "0", "0", "0"] for r in rows[:limit]]
        if path == "/fapi/v1/depth":
            return 200, {}, self.book_snapshot()
        if path == "/fapi/v1/exchangeInfo":
            return 200, {}, {"timezone": "UTC", "serverTime": self.venue_ms(), "symbols": [
                {"symbol": self.symbol, "pair": self.symbol, "contractType": "PERPETUAL", "status": "TRADING",
                 "baseAsset": self.symbol.removesuffix("USDT"), "quoteAsset": "USDT"},
                {"symbol": "ETHUSDT", "pair": "ETHUSDT", "contractType": "PERPETUAL", "status": "TRADING",
                 "baseAsset": "ETH", "quoteAsset": "USDT"}]}
        return 404, {}, {"code": -1, "msg": f"no route {path}"}


class FakeHyperliquid(FakeBinance):
    """The same market and trouble, in Hyperliquid's protocol: JSON subscribe, app ping, POST /info."""

    def __init__(self, truth: Sequence[Trade], *, t0_ms: int, symbol: str = "BTC", **kw: Any) -> None:
        super().__init__(truth, t0_ms=t0_ms, symbol=symbol, **kw)
        self.pings = 0

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.ws_port}/ws"

    async def _stream(self, ws: Any) -> None:
        await ws.send("Websocket connection established.")  # what Hyperliquid says first, as text
        await super()._stream(ws)

    def _on_client_message(self, msg: dict[str, Any], subs: list[Any]) -> list[str]:
        if msg.get("method") == "ping":
            self.pings += 1
            return [json.dumps({"channel": "pong"})]
        if msg.get("method") == "subscribe":
            subs.append(msg["subscription"])
            return [json.dumps({"channel": "subscriptionResponse", "data": msg})]
        return [json.dumps({"channel": "error", "data": f"unknown request {msg}"})]

    def _agg(self, t: Trade, n: int) -> str:
        return json.dumps({"channel": "trades", "data": [{
            "coin": self.symbol, "side": "A" if t.buyer_maker else "B", "px": f"{t.price:.2f}",
            "sz": f"{t.size:.3f}", "hash": "0x0", "time": t.ts, "tid": n}]})

    def _ticker(self, n: int, price: float, ahead_ms: int = 0) -> str:
        return json.dumps({"channel": "bbo", "data": {"coin": self.symbol, "time": self.venue_ms() + ahead_ms, "bbo": [
            {"px": f"{price - 0.5:.2f}", "sz": "1", "n": 1}, {"px": f"{price + 0.5:.2f}", "sz": "2", "n": 1}]}})

    def _wants_candles(self, subs: list[Any]) -> bool:
        return any(isinstance(sub, dict) and sub.get("type") == "candle" for sub in subs)

    def _candle(self, r: list[Any]) -> dict[str, Any]:
        return {"t": r[0], "T": r[6], "s": self.symbol, "i": "1m", "o": str(r[1]), "c": str(r[4]),
                "h": str(r[2]), "l": str(r[3]), "v": str(r[5]), "n": 1}

    def _closed_candle(self, minute: int, now_minute: int) -> list[str]:
        """Hyperliquid pushes the candle in progress on every trade: its last push of a minute holds
        the final figures, and the first push of the next minute says that one is over."""
        out = []
        for m in (minute, now_minute):
            r = self._bars.get(m)
            if r is not None:
                out.append(json.dumps({"channel": "candle", "data": self._candle(r)}))
        return out

    def _is_history(self, path: str, body: Any) -> bool:
        return isinstance(body, dict) and body.get("type") == "candleSnapshot"

    def _answer(self, path: str, query: dict[str, str], body: Any) -> tuple[int, dict[str, str], Any]:
        if path == "/info" and isinstance(body, dict) and body.get("type") == "meta":
            return 200, {}, {"universe": [{"name": self.symbol, "szDecimals": 5, "maxLeverage": 50},
                                          {"name": "ETH", "szDecimals": 4, "maxLeverage": 50}]}
        if path != "/info" or not isinstance(body, dict) or body.get("type") != "candleSnapshot":
            return 400, {}, {"error": "bad request"}
        req = body["req"]
        rows = self._closed_rows(int(req["startTime"]), int(req["endTime"]))[:5000]
        return 200, {}, [self._candle(r) for r in rows]
