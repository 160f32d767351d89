"""Signed Binance REST on trio (httpx): the clock offset, rate limits and retries around the codec.

`BinanceRest.call` sends one request built by `binance_orders` and returns
the decoded body, or a `Refusal` when Binance refused the request on its
merits. On the way:

- the timestamp is our wall clock plus the server offset, measured at start
  and again after every -1021 (then the request is signed afresh and sent
  again: -1021 means it was not executed);
- every reply's `X-MBX-USED-WEIGHT-*` / `X-MBX-ORDER-COUNT-*` is read, and
  new requests wait while a window is nearly spent; 429/418 hold every
  request for Retry-After;
- reads (`idempotent=True`) are retried on 5xx and transport errors with
  jittered backoff; an order is never sent twice here: a 5xx or timeout on
  a POST leaves the outcome unknown, raised as a TransientError so the
  caller asks the venue by client order id.

The API key goes in the X-MBX-APIKEY header and the secret only into
the HMAC; neither is ever logged (requests are logged redacted).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from typing import Any

import httpx
import trio

from fractald.errors import (
    BadMessage,
    FractalError,
    NetworkError,
    RateLimited,
    TransientError,
)
from fractald.venues import binance_orders as bo
from fractald.venues.binance import Market
from fractald.venues.binance_replies import (
    ClockSkew,
    Refusal,
    UsageHeaders,
    judge_error,
    parse_server_time,
    pause_needed,
)
from fractald.venues.ws import Backoff


def wall_ms() -> int:
    """Binance signs against real time; the shell (never the core) reads the wall clock."""
    return int(time.time() * 1000)


REST_BACKOFF = Backoff(0.2, 4.0)
# Binance's documented defaults; exchangeInfo's rateLimits replace them at start.
DEFAULT_LIMITS = {("used-weight", 60): 2400, ("order-count", 60): 1200, ("order-count", 10): 300}


class BinanceRest:
    def __init__(
        self,
        market: Market,
        base_url: str,
        api_key: str,
        api_secret: str,
        *,
        client: httpx.AsyncClient | None = None,
        recv_window_ms: int = bo.DEFAULT_RECV_WINDOW_MS,
        now_ms: Callable[[], int] = wall_ms,
        max_attempts: int = 3,
        max_wait_s: float = 10.0,
        backoff: Backoff = REST_BACKOFF,
        rng: random.Random | None = None,
        timeout_s: float = 10.0,
        log: Any = None,
    ) -> None:
        self.market = market
        self.base_url = base_url.rstrip("/")
        self._key = api_key
        self._secret = api_secret
        self.client = client or httpx.AsyncClient(timeout=timeout_s, trust_env=False)
        self.recv_window_ms = recv_window_ms
        self.now_ms = now_ms
        self.max_attempts = max_attempts
        self.max_wait_s = max_wait_s
        self.backoff = backoff
        self.rng = rng or random.Random()
        self.log = log
        self.clock = bo.ClockOffset()
        self.limits = dict(DEFAULT_LIMITS)
        self.usage = UsageHeaders()
        self.hold_until = 0.0  # trio time before which nothing is sent
        self.requests = 0
        self.clock_resyncs = 0
        self.rate_limited = 0

    async def aclose(self) -> None:
        await self.client.aclose()

    def __repr__(self) -> str:  # never the key or the secret
        return f"BinanceRest({self.base_url!r})"

    # -- clock and limits ------------------------------------------------------------

    def user_stream_subscription(self, request_id: str) -> dict[str, Any]:
        """Spot's signed `userDataStream.subscribe.signature` request, stamped now."""
        now = self.clock.venue_time(self.now_ms())
        return bo.user_stream_subscription(self._key, self._secret, now, request_id)

    async def sync_clock(self) -> bo.ClockOffset:
        sent = self.now_ms()
        body = await self._send(bo.server_time(self.market), idempotent=True)
        self.clock = bo.ClockOffset.measure(sent, parse_server_time(body), self.now_ms())
        return self.clock

    def set_limits(self, exchange_info: dict[str, Any]) -> None:
        units = {"SECOND": 1, "MINUTE": 60, "HOUR": 3600, "DAY": 86400}
        for row in exchange_info.get("rateLimits", []):
            kind = {"REQUEST_WEIGHT": "used-weight", "ORDERS": "order-count"}.get(
                row.get("rateLimitType")
            )
            unit = units.get(row.get("interval"))
            if kind and unit:
                self.limits[(kind, unit * int(row.get("intervalNum", 1)))] = int(row["limit"])

    async def _wait_for_capacity(self) -> None:
        wait = self.hold_until - trio.current_time()
        if wait <= 0:
            return
        if wait > self.max_wait_s:
            raise RateLimited(f"binance: holding requests for {wait:.1f} s", retry_after_s=wait)
        await trio.sleep(wait)

    def _note_usage(self, headers: httpx.Headers) -> None:
        self.usage = UsageHeaders.parse(headers)
        pause = pause_needed(self.usage, self.limits, self.clock.venue_time(self.now_ms()) / 1000)
        if pause:
            self.hold_until = max(self.hold_until, trio.current_time() + pause)

    # -- requests ------------------------------------------------------------------------

    async def call(self, unsigned: bo.Unsigned, *, idempotent: bool = True) -> Any:
        """A signed request; the body, or a `Refusal`. -1021 resyncs the clock and signs again."""
        for _ in range(2):
            request = bo.sign(
                unsigned, self._secret, self.clock.venue_time(self.now_ms()), self.recv_window_ms
            )
            try:
                return await self._send(request, idempotent=idempotent)
            except ClockSkew:
                self.clock_resyncs += 1
                await self.sync_clock()
        return await self._send(
            bo.sign(
                unsigned, self._secret, self.clock.venue_time(self.now_ms()), self.recv_window_ms
            ),
            idempotent=idempotent,
        )

    async def public(self, request: bo.Request) -> Any:
        return await self._send(request, idempotent=request.method in ("GET", "PUT"))

    async def _send(self, request: bo.Request, *, idempotent: bool) -> Any:
        last: TransientError = NetworkError(f"{request.method} {request.path}: not sent")
        for attempt in range(self.max_attempts if idempotent else 1):
            if attempt:
                await trio.sleep(self.backoff.delay(attempt - 1, self.rng))
            await self._wait_for_capacity()
            outcome = await self._attempt(request)
            if not isinstance(outcome, FractalError):
                return outcome
            if not isinstance(outcome, TransientError) or isinstance(outcome, ClockSkew):
                raise outcome
            last = outcome
            if isinstance(outcome, RateLimited) and not idempotent:
                break
            if self.log is not None:
                self.log.info("binance_retry", request=request.redacted(), error=outcome.code)
        raise last

    async def _attempt(self, request: bo.Request) -> Any:
        headers = {"X-MBX-APIKEY": self._key} if request.api_key else {}
        self.requests += 1
        try:
            response = await self.client.request(
                request.method, self.base_url + request.target, headers=headers
            )
        except httpx.TransportError as exc:
            return NetworkError(f"{request.method} {request.path}: {type(exc).__name__}: {exc}")
        self._note_usage(response.headers)
        if response.status_code >= 400:
            judged = judge_error(
                response.status_code,
                response.content,
                response.headers,
                f"{request.method} {request.path}",
            )
            if isinstance(judged, RateLimited):
                self.rate_limited += 1
                hold = judged.retry_after_s if judged.retry_after_s is not None else 60.0
                self.hold_until = max(self.hold_until, trio.current_time() + hold)
            return judged
        try:
            return response.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            return BadMessage(f"{request.method} {request.path}: body is not JSON: {exc}")


__all__ = ["BinanceRest", "Refusal", "wall_ms"]
