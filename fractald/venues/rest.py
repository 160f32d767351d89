"""REST for backfill and book snapshots: httpx on trio, within the venue's rate limits.

`RestClient` spends request weight from a per-minute budget before every
call, so a backfill of days never trips the venue's limit; a 429 or 418
blocks the whole client for Retry-After (or a backoff when the header is
missing) so nothing hammers a venue that asked us to stop; 5xx and
transport errors are retried with jittered backoff. A wait longer than
`max_wait_s` is not slept through inline: `RateLimited` is raised and the
caller decides (the feed marks the bars unfilled and moves on).

The venue calls at the bottom page through history within each venue's
per-request cap (Hyperliquid 5000 candles, Binance 1000 klines).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

import httpx
import trio

from fractald.core.book import BookSnapshot
from fractald.core.models import Bar, timeframe_ms
from fractald.errors import (
    BadMessage,
    FractalError,
    NetworkError,
    RateLimited,
    TransientError,
    VenueRefused,
    VenueUnavailable,
    classify,
    parse_retry_after,
)
from fractald.venues import binance, hyperliquid
from fractald.venues.ws import Backoff

REST_BACKOFF = Backoff(0.5, 8.0)


class WeightBudget:
    """Token bucket of request weight per minute, on trio's clock."""

    def __init__(self, per_minute: float, *, share: float = 0.8) -> None:
        # Keep a fifth of the venue's limit for other clients on the same IP.
        self.capacity = per_minute * share
        self.rate = self.capacity / 60.0
        self.tokens = self.capacity
        self.updated = trio.current_time()
        self.blocked_until = 0.0

    def _refill(self) -> None:
        now = trio.current_time()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now

    def block_for(self, seconds: float) -> None:
        self.blocked_until = max(self.blocked_until, trio.current_time() + seconds)

    def wait_needed(self, weight: float) -> float:
        self._refill()
        blocked = max(0.0, self.blocked_until - trio.current_time())
        short = max(0.0, min(weight, self.capacity) - self.tokens) / self.rate
        return max(blocked, short)

    async def acquire(self, weight: float, max_wait_s: float) -> None:
        wait = self.wait_needed(weight)
        if wait > max_wait_s:
            raise RateLimited(f"request weight budget needs {wait:.1f} s", retry_after_s=wait)
        if wait > 0:
            await trio.sleep(wait)
            self._refill()
        self.tokens -= weight


class RestClient:
    def __init__(
        self,
        base_url: str,
        *,
        weight_per_minute: float,
        client: httpx.AsyncClient | None = None,
        max_attempts: int = 4,
        max_wait_s: float = 30.0,
        timeout_s: float = 10.0,
        backoff: Backoff = REST_BACKOFF,
        rng: random.Random | None = None,
        log: Any = None,
        public: bool = False,
        on_rate_limited: Callable[[float], None] | None = None,
    ) -> None:
        # public: market data, no credentials. A 4xx is then the venue refusing (WAF 403, bad
        # symbol 400), transient, never an auth failure that would stop the daemon for good.
        self.public = public
        self.on_rate_limited = on_rate_limited  # told how long the venue asked us to wait
        self.base_url = base_url.rstrip("/")
        self.client = client or httpx.AsyncClient(timeout=timeout_s, trust_env=False)
        self.budget = WeightBudget(weight_per_minute)
        self.max_attempts = max_attempts
        self.max_wait_s = max_wait_s
        self.backoff = backoff
        self.rng = rng or random.Random()
        self.log = log
        self.requests = 0
        self.rate_limited = 0

    async def aclose(self) -> None:
        await self.client.aclose()

    async def get_json(self, path: str, params: dict[str, Any], weight: float) -> Any:
        return await self._request("GET", path, weight, params=params)

    async def post_json(self, path: str, body: dict[str, Any], weight: float) -> Any:
        return await self._request("POST", path, weight, json=body)

    async def _request(self, method: str, path: str, weight: float, **kw: Any) -> Any:
        last: TransientError = NetworkError(f"{method} {path}: no attempt made")
        for attempt in range(self.max_attempts):
            await self.budget.acquire(weight, self.max_wait_s)
            self.requests += 1
            try:
                response = await self.client.request(method, self.base_url + path, **kw)
            except httpx.TransportError as exc:
                last = NetworkError(f"{method} {path}: {type(exc).__name__}: {exc}")
            else:
                outcome = self._judge(method, path, response)
                if not isinstance(outcome, FractalError):
                    return outcome
                if not isinstance(outcome, TransientError) or _hopeless(outcome):
                    raise outcome
                last = outcome
            delay = self.backoff.delay(attempt, self.rng)
            if isinstance(last, RateLimited):
                delay = max(delay, self.budget.blocked_until - trio.current_time())
            if delay > self.max_wait_s:
                raise last
            if self.log is not None:
                self.log.info("rest_retry", path=path, error=last.code, delay_s=round(delay, 3))
            await trio.sleep(delay)
        raise last

    def _judge(self, method: str, path: str, response: httpx.Response) -> Any:
        status = response.status_code
        if status in (429, 418):
            self.rate_limited += 1
            retry_after = parse_retry_after(response.headers)
            # No header: back off a full minute's window rather than guess low.
            self.budget.block_for(retry_after if retry_after is not None else 60.0)
            if self.on_rate_limited is not None:
                self.on_rate_limited(retry_after if retry_after is not None else 60.0)
            return RateLimited(
                f"{method} {path}: HTTP {status}", retry_after_s=retry_after, status=status
            )
        if status >= 500:
            return VenueUnavailable(f"{method} {path}: HTTP {status}", status=status)
        if status >= 400:
            return classify(
                httpx.HTTPStatusError(
                    f"{method} {path}: HTTP {status}: {response.text[:200]}",
                    request=response.request,
                    response=response,
                ),
                public=self.public,
            )
        try:
            return response.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            return BadMessage(f"{method} {path}: body is not JSON: {exc}")


def _hopeless(error: TransientError) -> bool:
    """The same request again now would get the same answer (a 400 or 404): the caller retries later.

    A 403 from a public endpoint is the venue's firewall limit: worth a retry after a backoff.
    """
    return isinstance(error, VenueRefused) and error.context.get("status") != 403


# -- venue calls -------------------------------------------------------------------


async def hyperliquid_candles(
    rest: RestClient, coin: str, interval: str, start_ms: int, end_ms: int
) -> list[Bar]:
    """Candles with ts_open in [start_ms, end_ms), paged within the 5000-candle cap."""
    out: list[Bar] = []
    for lo, hi in hyperliquid.candle_pages(start_ms, end_ms, interval):
        expected = (hi + 1 - lo) // timeframe_ms(interval)
        payload = await rest.post_json(
            hyperliquid.INFO_PATH,
            hyperliquid.candle_snapshot_body(coin, interval, lo, hi),
            weight=hyperliquid.candle_snapshot_weight(expected),
        )
        try:
            out.extend(hyperliquid.parse_candle_snapshot(payload))
        except ValueError as exc:
            raise BadMessage(f"hyperliquid candleSnapshot for {coin}: {exc}") from exc
    return [b for b in out if start_ms <= b.ts_open < end_ms]


async def binance_klines(
    rest: RestClient, market: binance.Market, symbol: str, interval: str, start_ms: int, end_ms: int
) -> list[Bar]:
    ep = binance.ENDPOINTS[market]
    out: list[Bar] = []
    for lo, hi in binance.kline_pages(start_ms, end_ms, interval, ep.klines_limit):
        payload = await rest.get_json(
            ep.klines_path,
            binance.klines_params(symbol, interval, lo, hi, ep.klines_limit),
            weight=binance.klines_weight(market, ep.klines_limit),
        )
        try:
            out.extend(binance.parse_klines(symbol, interval, payload))
        except ValueError as exc:
            raise BadMessage(f"binance klines for {symbol}: {exc}") from exc
    return [b for b in out if start_ms <= b.ts_open < end_ms]


async def binance_depth(
    rest: RestClient, market: binance.Market, symbol: str, limit: int = 1000
) -> BookSnapshot:
    ep = binance.ENDPOINTS[market]
    payload = await rest.get_json(
        ep.depth_path,
        binance.depth_params(symbol, limit),
        weight=binance.depth_weight(market, limit),
    )
    try:
        return binance.parse_depth_snapshot(symbol, payload)
    except ValueError as exc:
        raise BadMessage(str(exc)) from exc
