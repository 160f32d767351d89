"""A reconnecting WebSocket session on trio (the `websockets` library's native trio client).

One `WsSession.run()` call keeps one logical stream alive for as long as
the caller wants:

* connect, send every subscription, hand each message to the callback;
* a connection that stays open but delivers no market data for
  `silence_timeout_s` is treated as dead: closed and replaced (pongs and
  acks do not count: a venue that answers pings but streams nothing is
  stuck all the same);
* the venue's application ping (Hyperliquid) is sent on schedule; the
  protocol-level ping/pong (Binance's server pings) is answered by the
  library;
* a connection older than `max_connection_s` is replaced on our terms
  before the venue's own cut (Binance: 24 h);
* any transport failure reconnects after a jittered exponential backoff,
  and a 429/418 on the handshake waits at least its Retry-After;
* after `max_failures` attempts in a row with no data, `FeedDisconnected`
  is raised so the supervisor can restart the actor within its budget.

Time comes only from trio, so MockClock drives it in tests.
"""

from __future__ import annotations

import enum
import math
import random
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import attrs
import trio
from websockets.exceptions import ConnectionClosed
from websockets.trio.client import connect

from fractald.errors import Category, FeedDisconnected, RateLimited, classify


@attrs.frozen(slots=True)
class Backoff:
    """Exponential backoff with "equal jitter": half fixed, half random, capped."""

    base_s: float = attrs.field(default=0.5, validator=attrs.validators.gt(0))
    cap_s: float = attrs.field(default=30.0, validator=attrs.validators.gt(0))

    def delay(self, attempt: int, rng: random.Random) -> float:
        full = min(self.cap_s, self.base_s * 2.0 ** min(attempt, 30))
        return full / 2 + rng.uniform(0, full / 2)


@attrs.frozen(slots=True)
class WsSettings:
    url: str
    silence_timeout_s: float = attrs.field(default=60.0, validator=attrs.validators.gt(0))
    app_ping: str | None = None
    app_ping_interval_s: float = attrs.field(default=30.0, validator=attrs.validators.gt(0))
    max_connection_s: float | None = None
    max_frame_bytes: int = attrs.field(default=4 * 1024 * 1024, validator=attrs.validators.gt(0))
    open_timeout_s: float = attrs.field(default=10.0, validator=attrs.validators.gt(0))
    keepalive_s: float | None = 20.0  # protocol ping interval and timeout
    backoff: Backoff = Backoff()
    max_failures: int = attrs.field(default=8, validator=attrs.validators.ge(1))
    # A public stream (market data) carries no credentials: a 401/403 on its handshake is the
    # venue's firewall or a limit, retried with backoff, never an auth failure.
    public: bool = False


class EndReason(enum.Enum):
    """Why one connection ended."""

    SILENT = "silent"  # open but nothing received for too long
    MAX_AGE = "max_age"  # replaced on schedule before the venue's cut
    CLOSED = "closed"  # the venue closed it or the TCP connection broke
    OVERSIZED = "oversized"  # a frame above max_frame_bytes (close code 1009)
    CONNECT_FAILED = "connect_failed"


@attrs.define
class WsStats:
    connects: int = 0
    disconnects: int = 0
    silent: int = 0
    oversized: int = 0
    failures_in_a_row: int = 0
    messages: int = 0
    last_end: EndReason | None = None


# Returns False for a message that is not market data (pong, ack): it does not end a silence.
OnMessage = Callable[[str | bytes], Awaitable[bool | None]]
OnConnected = Callable[[int], Awaitable[None]]
OnDisconnected = Callable[[EndReason, str], Awaitable[None]]


class _CallbackFailed(Exception):
    """Carries an exception out of the caller's callback, past the reconnect logic."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


async def _call(awaitable: Awaitable[Any]) -> Any:
    try:
        return await awaitable
    except Exception as exc:
        raise _CallbackFailed(exc) from exc


async def _noop_connected(n: int) -> None:
    return None


async def _noop_disconnected(reason: EndReason, detail: str) -> None:
    return None


class WsSession:
    def __init__(
        self,
        settings: WsSettings,
        subscriptions: Callable[[], Sequence[str]],
        *,
        log: Any = None,
        rng: random.Random | None = None,
        on_rate_limited: Callable[[float], None] | None = None,
    ) -> None:
        self.settings = settings
        self.on_rate_limited = on_rate_limited  # told how long the venue asked us to wait
        self.subscriptions = subscriptions
        self.log = log
        self.rng = rng or random.Random()
        self.stats = WsStats()

    def _log(self, event: str, **kw: Any) -> None:
        if self.log is not None:
            self.log.info(event, url=self.settings.url, **kw)

    async def run(
        self,
        on_message: OnMessage,
        on_connected: OnConnected = _noop_connected,
        on_disconnected: OnDisconnected = _noop_disconnected,
    ) -> None:
        """Run until cancelled; raises FeedDisconnected after too many failures in a row."""
        s = self.settings
        while True:
            retry_after: float | None = None
            try:
                reason, detail = await self._one_connection(on_message, on_connected)
            except _CallbackFailed as failed:
                raise failed.error from None  # the caller's own failure: not ours to retry
            except Exception as exc:  # noqa: BLE001 - sorted into transient / fatal just below
                reason, detail, retry_after = self._sort_failure(exc)
            self.stats.last_end = reason
            self.stats.disconnects += reason is not EndReason.CONNECT_FAILED
            await on_disconnected(reason, detail)
            if reason in (EndReason.MAX_AGE,):
                self._log("ws_rotated", reason=reason.value)
                continue  # planned: reconnect at once
            self.stats.failures_in_a_row += 1
            # A venue answering 429/418 is alive and asked us to wait: a restart would not help
            # (it would only ask again), so those failures back off here, however many.
            if self.stats.failures_in_a_row >= s.max_failures and retry_after is None:
                raise FeedDisconnected(
                    f"{s.url}: {self.stats.failures_in_a_row} connection attempts in a row failed",
                    last=detail,
                )
            delay = s.backoff.delay(self.stats.failures_in_a_row - 1, self.rng)
            if retry_after is not None:
                delay = max(delay, retry_after)
                if self.on_rate_limited is not None:
                    self.on_rate_limited(delay)
            self._log(
                "ws_reconnecting", reason=reason.value, detail=detail, delay_s=round(delay, 3)
            )
            await trio.sleep(delay)

    def _sort_failure(self, exc: Exception) -> tuple[EndReason, str, float | None]:
        err = classify(exc, public=self.settings.public)
        if err.category is not Category.TRANSIENT:
            raise err from exc
        detail = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, ConnectionClosed):
            rcvd = exc.rcvd
            if (rcvd is not None and rcvd.code == 1009) or (
                exc.sent is not None and exc.sent.code == 1009
            ):
                self.stats.oversized += 1
                return EndReason.OVERSIZED, detail, None
            return EndReason.CLOSED, detail, None
        retry_after = err.retry_after_s if isinstance(err, RateLimited) else None
        return EndReason.CONNECT_FAILED, detail, retry_after

    async def _one_connection(
        self, on_message: OnMessage, on_connected: OnConnected
    ) -> tuple[EndReason, str]:
        s = self.settings
        async with connect(
            s.url,
            open_timeout=s.open_timeout_s,
            ping_interval=s.keepalive_s,
            ping_timeout=s.keepalive_s,
            max_size=s.max_frame_bytes,
            close_timeout=2.0,
            proxy=None,
        ) as ws:
            self.stats.connects += 1
            for message in self.subscriptions():
                await ws.send(message)
            self._log("ws_connected", connects=self.stats.connects)
            await _call(on_connected(self.stats.connects))
            return await self._receive(ws, on_message)

    async def _receive(self, ws: Any, on_message: OnMessage) -> tuple[EndReason, str]:
        s = self.settings
        now = trio.current_time()
        rotate_at = now + s.max_connection_s if s.max_connection_s else math.inf
        next_ping = now + s.app_ping_interval_s if s.app_ping else math.inf
        waiting_since = now
        while True:
            now = trio.current_time()
            if now >= rotate_at:
                return EndReason.MAX_AGE, f"connection older than {s.max_connection_s} s"
            if now >= next_ping:
                await ws.send(s.app_ping)
                next_ping = now + s.app_ping_interval_s
            silent_at = waiting_since + s.silence_timeout_s
            if now >= silent_at:
                self.stats.silent += 1
                return EndReason.SILENT, f"nothing received for {s.silence_timeout_s} s"
            message: str | bytes | None = None
            with trio.move_on_at(min(silent_at, next_ping, rotate_at)):
                message = await ws.recv()  # cancelling recv loses nothing
            if message is None:
                continue
            self.stats.messages += 1
            self.stats.failures_in_a_row = 0
            if await _call(on_message(message)) is not False:
                # Market data came. Time spent handing it on (backpressure) is not silence.
                waiting_since = trio.current_time()
            # else: a pong or an ack; a connection that only answers pings is still silent.
