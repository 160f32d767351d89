"""A live venue feed: the WebSocket loop, REST backfill of gaps, Binance book snapshots."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
import trio

from fractald.core.bars import GapRequest
from fractald.core.models import Bar
from fractald.errors import ConfigError, TransientError
from fractald.venues import binance, hyperliquid, instruments, rest
from fractald.venues.events import VenueEvent
from fractald.venues.feed_core import Backfill, FeedCore, FeedState
from fractald.venues.feed_output import FeedOutput, feed_nursery
from fractald.venues.feed_settings import FeedSettings, VenueName
from fractald.venues.ws import Backoff, EndReason, WsSession, WsSettings


@attrs.frozen(slots=True)
class _Venue:
    ws_url: str
    rest_url: str
    parse: Callable[[str | bytes], list[VenueEvent]]
    subscriptions: Callable[[], list[str]]
    app_ping: str | None
    max_connection_s: float | None
    weight_per_minute: int
    futures: bool
    normalise: Callable[[str], str]
    contiguous_trade_ids: bool = (
        False  # Binance aggTrade ids count up by one; Hyperliquid tids do not
    )


def _venue(settings: FeedSettings) -> _Venue:
    v = settings.venue
    if v in (VenueName.HYPERLIQUID, VenueName.HYPERLIQUID_TESTNET):
        testnet = v is VenueName.HYPERLIQUID_TESTNET
        coins = list(settings.symbols)
        return _Venue(
            ws_url=settings.ws_url
            or (hyperliquid.TESTNET_WS_URL if testnet else hyperliquid.MAINNET_WS_URL),
            rest_url=settings.rest_url
            or (hyperliquid.TESTNET_REST_URL if testnet else hyperliquid.MAINNET_REST_URL),
            parse=hyperliquid.parse_message,
            subscriptions=lambda: hyperliquid.market_subscriptions(
                coins, book=settings.book, candle_interval="1m"
            ),
            app_ping=hyperliquid.PING_MESSAGE,
            max_connection_s=None,
            weight_per_minute=hyperliquid.WEIGHT_LIMIT_PER_MINUTE,
            futures=False,
            normalise=lambda s: s,
        )
    market = binance.Market.FUTURES if v is VenueName.BINANCE_FUTURES else binance.Market.SPOT
    ep = binance.ENDPOINTS[market]
    symbols = [s.upper() for s in settings.symbols]
    return _Venue(
        ws_url=settings.ws_url or ep.ws_url,
        rest_url=settings.rest_url or ep.rest_url,
        parse=binance.parse_message,
        subscriptions=lambda: binance.subscribe_messages(
            binance.market_streams(symbols, book=settings.book, candles=True)
        ),
        app_ping=None,
        max_connection_s=binance.MAX_CONNECTION_S,
        weight_per_minute=ep.weight_per_minute,
        futures=market is binance.Market.FUTURES,
        normalise=str.upper,
        contiguous_trade_ids=True,
    )


def _backfill_for(settings: FeedSettings, client: rest.RestClient) -> Backfill:
    v = settings.venue

    async def backfill(gap: GapRequest) -> list[Bar]:
        if v in (VenueName.HYPERLIQUID, VenueName.HYPERLIQUID_TESTNET):
            return await rest.hyperliquid_candles(
                client, gap.symbol, gap.timeframe, gap.start_ms, gap.end_ms
            )
        market = binance.Market.FUTURES if v is VenueName.BINANCE_FUTURES else binance.Market.SPOT
        return await rest.binance_klines(
            client, market, gap.symbol, gap.timeframe, gap.start_ms, gap.end_ms
        )

    return backfill


async def _ticker(core: FeedCore, beat: Callable[[], None], interval_s: float) -> None:
    """Close bars on the venue clock, publish health, prove liveness."""
    next_health = trio.current_time()
    while True:
        await core.advance()
        now = trio.current_time()
        if now >= next_health:
            core.publish_health()
            beat()
            next_health = now + interval_s
        await trio.sleep(min(0.25, interval_s))


async def _refill(core: FeedCore, every_s: float = 5.0) -> None:
    """Stretches REST could not give at once are asked for again when due (see FeedCore.refill_due)."""
    while True:
        await trio.sleep(every_s)
        async with core.lock:  # never between a gap and the bars after it
            await core.refill_due()


async def _snapshots(core: FeedCore, client: rest.RestClient, market: binance.Market) -> None:
    """Fetch Binance depth snapshots whenever a book asks for one."""
    while True:
        await core.snapshot_event.wait()
        core.snapshot_event = trio.Event()
        while core.snapshot_wanted:
            symbol = core.snapshot_wanted.pop()
            sym = core.symbols[symbol]
            try:
                snap = await rest.binance_depth(client, market, symbol)
            except TransientError as exc:
                core.log.warning("depth_snapshot_failed", symbol=symbol, error=exc.code)
                await trio.sleep(1.0)
                core.want_snapshot(symbol)
                continue
            if sym.book_sync is not None:
                result = sym.book_sync.on_snapshot(snap)
                sym.book = sym.book_sync.book
                if sym.book_sync.live:
                    core.log.info("book_synced", symbol=symbol, update_id=snap.last_update_id)
                if result.need_snapshot:
                    core.want_snapshot(symbol)


async def _validate_symbols(
    settings: FeedSettings, client: rest.RestClient, symbols: list[str], state: FeedState, log: Any
) -> None:
    """Refuse symbols the venue does not list (a config error, exit 78), once per feed state.

    A venue that cannot say now (network, 403, 429) does not hold market data up: the check
    is logged and tried again on the next start of the feed.
    """
    if state.symbols_validated:
        return
    venue = settings.venue.value
    try:
        listed = await instruments.listed_symbols(client, venue)
    except TransientError as exc:
        log.warning("instruments_unavailable", venue=venue, error=exc.code, message=exc.message)
        return
    problems = instruments.unknown_problems(venue, symbols, listed)
    for problem in problems:
        log.error("unknown_symbol", venue=venue, problem=problem)
    if problems:
        raise ConfigError(
            f"{venue} does not list every configured symbol: " + "; ".join(problems),
            problems=problems,
        )
    state.symbols_validated = True


async def run_live(
    settings: FeedSettings, out: FeedOutput, beat: Callable[[], None], log: Any, state: FeedState
) -> None:
    venue = _venue(settings)
    resumed = state.adopt(settings)
    client = rest.RestClient(
        venue.rest_url,
        weight_per_minute=venue.weight_per_minute,
        backoff=Backoff(settings.backoff_base_s, settings.backoff_cap_s),
        log=log,
        public=True,
        on_rate_limited=state.note_rate_limited,
    )
    symbols = [venue.normalise(s) for s in settings.symbols]
    core = FeedCore(
        settings,
        symbols,
        out,
        log,
        backfill=_backfill_for(settings, client),
        futures=venue.futures,
        state=state,
        contiguous_trade_ids=venue.contiguous_trade_ids,
    )
    if resumed:
        core.connection_lost()  # the last run's connection died with it
    session = WsSession(
        WsSettings(
            url=venue.ws_url,
            silence_timeout_s=settings.silence_timeout_s,
            app_ping=venue.app_ping,
            max_connection_s=venue.max_connection_s,
            max_frame_bytes=settings.max_frame_bytes,
            backoff=Backoff(settings.backoff_base_s, settings.backoff_cap_s),
            max_failures=settings.max_failures,
            public=True,
        ),
        venue.subscriptions,
        log=log,
        on_rate_limited=state.note_rate_limited,
    )

    async def on_message(raw: str | bytes) -> bool:
        return await core.handle(venue.parse(raw))

    rotating = False  # a planned replacement (Binance's 24 h cut): not an outage

    async def on_connected(n: int) -> None:
        nonlocal rotating
        if rotating:
            # The old connection closed a moment ago on our terms: no reconnect to count and no
            # stretch to refetch; a trade lost in between shows as a jump in the trade ids.
            rotating = False
            for sym in core.symbols.values():
                if sym.book_sync is not None:
                    core.connection_back_book(sym)
        elif n > 1 or resumed:
            core.connection_back()
        elif settings.book and settings.venue in (VenueName.BINANCE, VenueName.BINANCE_FUTURES):
            for symbol in symbols:
                core.want_snapshot(symbol)

    async def on_disconnected(reason: EndReason, detail: str) -> None:
        nonlocal rotating
        if reason is EndReason.MAX_AGE and venue.contiguous_trade_ids:
            rotating = True
            log.info("feed_rotating", detail=detail)
            return
        log.warning("feed_disconnected", reason=reason.value, detail=detail)
        core.connection_lost()

    log.info(
        "feed_started",
        venue=settings.venue.value,
        url=venue.ws_url,
        symbols=symbols,
        timeframes=list(settings.timeframes),
        run=state.runs,
        resumed=resumed,
        consumer_covered_until_ms=dict(settings.resume_after_ms),
    )
    try:
        await _validate_symbols(settings, client, symbols, state, log)
        async with feed_nursery() as nursery:
            nursery.start_soon(out.pump)
            nursery.start_soon(_ticker, core, beat, settings.health_interval_s)
            nursery.start_soon(_refill, core)
            if settings.book and not venue.app_ping:
                market = binance.Market.FUTURES if venue.futures else binance.Market.SPOT
                nursery.start_soon(_snapshots, core, client, market)
            await session.run(on_message, on_connected, on_disconnected)
    finally:
        with trio.CancelScope(shield=True):
            await client.aclose()
