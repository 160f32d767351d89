"""Transport: WebSocket session (rotation, handshake 429, backoff) and REST client, on loopback."""

from __future__ import annotations

import random
from typing import Any

import pytest
import trio
import trio.lowlevel
import trio.testing
from fakevenue.harness import RecordingLog
from fakevenue.http import read_request, respond
from fakevenue.server import FakeBinance, FakeHyperliquid, Trade
from websockets.trio.server import serve

from fractald.errors import BadMessage, FatalError, RateLimited
from fractald.venues import binance, rest
from fractald.venues.rest import RestClient, WeightBudget
from fractald.venues.ws import Backoff, EndReason, WsSession, WsSettings


async def _ignore(raw: str | bytes) -> None:
    await trio.lowlevel.checkpoint()


def test_backoff_grows_jittered_and_capped() -> None:
    b, rng = Backoff(0.5, 8.0), random.Random(1)
    for attempt in range(12):
        full = min(8.0, 0.5 * 2 ** attempt)
        delays = [b.delay(attempt, rng) for _ in range(200)]
        assert all(full / 2 <= d <= full for d in delays)
        assert len(set(delays)) > 100  # jittered: clients do not reconnect in lockstep


async def _ws_server(nursery: trio.Nursery, handler: Any, process_request: Any = None) -> str:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    await nursery.start(lambda task_status: serve(handler, listeners=listeners, compression=None,
                                                   process_request=process_request,
                                                   task_status=task_status))
    return f"ws://127.0.0.1:{port}/"


async def test_connection_is_rotated_before_its_max_age_and_resubscribed(
        mock_clock: trio.testing.MockClock) -> None:
    mock_clock.autojump_threshold = 0.001
    received: list[list[str]] = []

    async def handler(ws: Any) -> None:
        mine: list[str] = []
        received.append(mine)
        mine.append(await ws.recv())
        while True:
            await ws.send('{"tick": 1}')
            await trio.sleep(1.0)

    ends: list[EndReason] = []

    async def on_disconnected(reason: EndReason, detail: str) -> None:
        ends.append(reason)

    async with trio.open_nursery() as nursery:
        url = await _ws_server(nursery, handler)
        session = WsSession(WsSettings(url=url, max_connection_s=100.0, silence_timeout_s=5.0),
                            lambda: ['{"subscribe": "all"}'])
        with trio.move_on_after(350.0):
            await session.run(_ignore, on_disconnected=on_disconnected)
        nursery.cancel_scope.cancel()
    assert ends == [EndReason.MAX_AGE] * 3
    assert len(received) == 4 and all(r == ['{"subscribe": "all"}'] for r in received)
    assert session.stats.failures_in_a_row == 0


async def test_handshake_429_waits_for_retry_after(mock_clock: trio.testing.MockClock) -> None:
    mock_clock.autojump_threshold = 0.001
    attempts: list[float] = []

    def process_request(connection: Any, request: Any) -> Any:
        attempts.append(trio.current_time())
        if len(attempts) <= 2:
            response = connection.respond(429, "slow down")
            response.headers["Retry-After"] = "40"
            return response
        return None

    async def handler(ws: Any) -> None:
        await ws.send("hello")
        await trio.sleep_forever()

    got: list[str | bytes] = []

    async def on_message(raw: str | bytes) -> None:
        got.append(raw)

    async with trio.open_nursery() as nursery:
        url = await _ws_server(nursery, handler, process_request)
        log = RecordingLog()
        session = WsSession(WsSettings(url=url, backoff=Backoff(0.1, 1.0)), list, log=log)
        nursery.start_soon(session.run, on_message)
        with trio.move_on_after(200.0):
            while not got:
                await trio.sleep(1.0)
        nursery.cancel_scope.cancel()
    assert got == ["hello"]
    assert attempts[1] - attempts[0] >= 40.0 and attempts[2] - attempts[1] >= 40.0
    assert [e["reason"] for e in log.events("ws_reconnecting")] == ["connect_failed"] * 2


async def test_a_refused_url_is_fatal_not_retried_forever() -> None:
    session = WsSession(WsSettings(url="http://127.0.0.1:1/not-a-websocket-url"), list)
    with pytest.raises(FatalError):
        await session.run(_ignore)


# -- REST -------------------------------------------------------------------------

class ScriptedHttp:
    """A loopback HTTP server answering from a script of (status, headers, body)."""

    def __init__(self, script: list[tuple[int, dict[str, str], str]]) -> None:
        self.script = script
        self.times: list[float] = []
        self.port = 0

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        await trio.serve_listeners(self._handle, listeners, task_status=task_status)

    async def _handle(self, stream: trio.SocketStream) -> None:
        if await read_request(stream) is None:
            return
        self.times.append(trio.current_time())
        status, headers, body = self.script[min(len(self.times), len(self.script)) - 1]
        await respond(stream, status, headers, body.encode())
        await stream.aclose()


async def _rest(script: list[tuple[int, dict[str, str], str]], call: Any, **kw: Any) -> tuple[Any, ScriptedHttp]:
    server = ScriptedHttp(script)
    result: Any = None
    error: Exception | None = None
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        client = RestClient(f"http://127.0.0.1:{server.port}", weight_per_minute=1200,
                            backoff=Backoff(0.5, 4.0), **kw)
        try:
            result = await call(client)
        except Exception as exc:  # noqa: BLE001 - re-raised below, outside the nursery
            error = exc
        finally:
            await client.aclose()
            nursery.cancel_scope.cancel()
    if error is not None:
        raise error
    return result, server


async def test_rest_429_honours_retry_after_and_blocks_the_client(
        mock_clock: trio.testing.MockClock) -> None:
    mock_clock.autojump_threshold = 0.001
    result, server = await _rest([(429, {"Retry-After": "7"}, "{}"), (200, {}, '{"ok": 1}')],
                                 lambda c: c.get_json("/x", {}, weight=1))
    assert result == {"ok": 1}
    assert server.times[1] - server.times[0] >= 7.0


async def test_rest_5xx_is_retried_then_succeeds(mock_clock: trio.testing.MockClock) -> None:
    mock_clock.autojump_threshold = 0.001
    result, server = await _rest([(503, {}, ""), (502, {}, ""), (200, {}, "[1]")],
                                 lambda c: c.post_json("/info", {"a": 1}, weight=20))
    assert result == [1] and len(server.times) == 3
    # Equal-jitter backoff: at least half of 0.5 s, then half of 1 s.
    assert server.times[1] - server.times[0] >= 0.25 and server.times[2] - server.times[1] >= 0.5


async def test_rest_4xx_is_not_retried(mock_clock: trio.testing.MockClock) -> None:
    mock_clock.autojump_threshold = 0.001
    with pytest.raises(FatalError, match="HTTP 400"):
        await _rest([(400, {}, '{"msg": "bad symbol"}')], lambda c: c.get_json("/x", {}, weight=1))


async def test_rest_long_ban_is_raised_not_slept_through(mock_clock: trio.testing.MockClock) -> None:
    mock_clock.autojump_threshold = 0.001
    with pytest.raises(RateLimited) as info:
        await _rest([(418, {"Retry-After": "3600"}, "")], lambda c: c.get_json("/x", {}, weight=1))
    assert info.value.retry_after_s == 3600.0


async def test_rest_garbage_body_is_a_bad_message(mock_clock: trio.testing.MockClock) -> None:
    mock_clock.autojump_threshold = 0.001
    with pytest.raises(BadMessage):
        await _rest([(200, {}, "<html>")], lambda c: c.get_json("/x", {}, weight=1), max_attempts=2)


async def test_rest_unreachable_is_a_network_error(autojump_clock: trio.testing.MockClock) -> None:
    client = RestClient("http://127.0.0.1:1", weight_per_minute=1200, max_attempts=2)
    with pytest.raises(Exception) as info:
        await client.get_json("/x", {}, weight=1)
    await client.aclose()
    assert getattr(info.value, "code", None) == "network"


async def test_weight_budget_spaces_requests(autojump_clock: trio.testing.MockClock) -> None:
    budget = WeightBudget(per_minute=100, share=1.0)  # 100 a minute: one weight unit per 0.6 s
    start = trio.current_time()
    for _ in range(3):
        await budget.acquire(50, max_wait_s=60)
    # Two fit at once; the third waits for 50 units to refill (30 s).
    assert trio.current_time() - start == pytest.approx(30.0, abs=0.1)
    with pytest.raises(RateLimited):
        await budget.acquire(100, max_wait_s=1.0)



@pytest.mark.parametrize("venue_kind, minutes, pages", [("binance", 2500, 3), ("hyperliquid", 12_000, 3)])
async def test_backfill_pages_within_the_venue_cap(venue_kind: str, minutes: int, pages: int) -> None:
    t0 = 1_700_006_400_000
    truth = [Trade(t0 + i * 60_000 + 1_000, 100.0 + i % 7, 1.0) for i in range(minutes)]
    fake_cls = FakeBinance if venue_kind == "binance" else FakeHyperliquid
    symbol = "BTCUSDT" if venue_kind == "binance" else "BTC"
    fake = fake_cls(truth, t0_ms=t0 + (minutes + 10) * 60_000, symbol=symbol)  # all of it is history
    async with trio.open_nursery() as nursery:
        await nursery.start(fake.run)
        client = RestClient(fake.rest_url, weight_per_minute=1200)
        try:
            if venue_kind == "binance":
                bars = await rest.binance_klines(client, binance.Market.FUTURES, symbol, "1m",
                                                 t0, t0 + minutes * 60_000)
            else:
                bars = await rest.hyperliquid_candles(client, symbol, "1m", t0, t0 + minutes * 60_000)
        finally:
            await client.aclose()
            nursery.cancel_scope.cancel()
    assert [b.ts_open for b in bars] == [t0 + i * 60_000 for i in range(minutes)]
    assert [b.close for b in bars[:8]] == [100.0 + i % 7 for i in range(8)]
    assert len(fake.rest_log) == pages and all(status == 200 for _, _, status in fake.rest_log)


async def test_an_error_in_the_callers_handler_is_raised_not_retried(
        mock_clock: trio.testing.MockClock) -> None:
    mock_clock.autojump_threshold = 0.001
    connections = 0

    async def handler(ws: Any) -> None:
        nonlocal connections
        connections += 1
        await ws.send("tick")
        await trio.sleep_forever()

    async def broken(raw: str | bytes) -> None:
        raise trio.BrokenResourceError("consumer went away")

    async with trio.open_nursery() as nursery:
        url = await _ws_server(nursery, handler)
        session = WsSession(WsSettings(url=url), list)
        with pytest.raises(trio.BrokenResourceError, match="consumer went away"):
            await session.run(broken)
        nursery.cancel_scope.cancel()
    assert connections == 1
