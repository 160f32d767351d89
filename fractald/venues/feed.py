"""The market data pipeline the market_data actor runs: `run_feed(settings, send, beat, log)`.

It sends into `send` (a bounded channel):
  * `Bar` for every configured timeframe (the base timeframe included), each
    exactly once when it closes, in order, with no hole (`complete=False`
    marks what could not be filled);
  * `TradeTick` for every trade;
  * `Quote` best bid/offer, conflated per symbol when the consumer is slow;
  * `FeedHealth` per symbol every `health_interval_s`, also conflated.
Bars and trades are never dropped: when the channel is full the feed waits.

It calls `beat()` on every health tick while it is making progress, and
raises a `TransientError` subclass (FeedDisconnected, RateLimited, ...)
when it cannot go on for now, so the supervisor restarts it. A replay
returns normally once everything is sent ("replay finished").
"""

from __future__ import annotations

import bisect
import enum
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import trio

from fractald.core.bars import GapRequest, Step, SymbolBars
from fractald.core.book import BinanceBookSync, BookDelta, BookSnapshot, L2Book
from fractald.core.feed_health import HealthParams, HealthTracker
from fractald.core.models import TIMEFRAME_MS, Bar, FeedHealth, Quote, TradeTick, timeframe_ms
from fractald.datasets import BUNDLED_SYMBOL
from fractald.errors import FeedDisconnected, FractalError, TransientError
from fractald.venues import binance, hyperliquid, replay, rest
from fractald.venues.events import CandleUpdate, Mids, Unparsed, VenueErrorMsg, VenueEvent
from fractald.venues.ws import Backoff, EndReason, WsSession, WsSettings

DEFAULT_TIMEFRAMES = ("1m", "5m", "15m", "1h", "4h", "1d")
# A trade stamped further ahead of the venue clock than this is refused, not believed.
FUTURE_TOLERANCE_MS = 60_000


class VenueName(enum.Enum):
    REPLAY = "replay"
    HYPERLIQUID = "hyperliquid"
    HYPERLIQUID_TESTNET = "hyperliquid-testnet"
    BINANCE = "binance"
    BINANCE_FUTURES = "binance-futures"


def _venue_name(value: str | VenueName) -> VenueName:
    try:
        return VenueName(value)
    except ValueError:
        allowed = ", ".join(v.value for v in VenueName)
        raise ValueError(f"unknown venue {value!r}; allowed: {allowed}") from None


def _symbols(value: Iterable[str]) -> tuple[str, ...]:
    if isinstance(value, str):
        raise ValueError(f"symbols must be a list of names, got the string {value!r}")  # noqa: TRY004
    symbols = tuple(value)
    bad = [s for s in symbols if not isinstance(s, str) or not s.strip()]
    if bad:
        raise ValueError(f"symbols must be non-empty strings, got {bad!r}")
    return symbols


def _timeframes(value: Iterable[str]) -> tuple[str, ...]:
    tfs = tuple(value)
    for tf in tfs:
        timeframe_ms(tf)  # ValueError names the allowed ones
    if not tfs:
        raise ValueError("timeframes must not be empty")
    return tuple(sorted(set(tfs), key=timeframe_ms))


def _positive(instance: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{attribute.name} must be a positive number, got {value!r}")


@attrs.frozen(slots=True)
class FeedSettings:
    """Everything the feed needs; the config module maps the TOML onto it."""

    venue: VenueName = attrs.field(default=VenueName.REPLAY, converter=_venue_name)
    symbols: tuple[str, ...] = attrs.field(default=(), converter=_symbols)
    timeframes: tuple[str, ...] = attrs.field(default=DEFAULT_TIMEFRAMES, converter=_timeframes)
    ws_url: str | None = None  # None: the venue's public URL
    rest_url: str | None = None
    replay_path: str | None = None  # None: the bundled BTC 1m candles
    replay_speed: float = attrs.field(default=0.0)  # 0 as fast as possible, 1 real time, N times
    book: bool = False  # also keep an L2 book (Binance depth sync, Hyperliquid l2Book)
    stale_after_s: float = attrs.field(default=30.0, validator=_positive)
    silence_timeout_s: float = attrs.field(default=20.0, validator=_positive)
    grace_s: float = attrs.field(default=2.0, validator=attrs.validators.ge(0))
    backoff_base_s: float = attrs.field(default=0.5, validator=_positive)
    backoff_cap_s: float = attrs.field(default=30.0, validator=_positive)
    max_failures: int = attrs.field(default=8, validator=attrs.validators.ge(1))
    health_interval_s: float = attrs.field(default=1.0, validator=_positive)
    outlier_k: float = attrs.field(default=8.0, validator=_positive)
    backfill_timeout_s: float = attrs.field(default=15.0, validator=_positive)
    max_frame_bytes: int = attrs.field(default=4 * 1024 * 1024, validator=attrs.validators.gt(0))
    # Candle replay only: per symbol, the open time of the last 1m bar the consumer's state
    # already covers. The replay restarts at the start of the widest timeframe's bucket
    # holding it, so every higher-timeframe bar is rebuilt whole; the consumer skips the bars
    # it has (crash-only restart without re-pacing a month of candles).
    resume_after_ms: tuple[tuple[str, int], ...] = attrs.field(
        default=(), converter=lambda v: tuple(sorted(dict(v).items())))
    # Live feeds: 1m bars of history fetched from REST at start (up to 5000), so that the
    # first bar of every timeframe is whole. 0: start with the current minute.
    history_bars: int = attrs.field(default=0, validator=[attrs.validators.ge(0), attrs.validators.le(5000)])

    def __attrs_post_init__(self) -> None:
        if not (math.isfinite(self.replay_speed) and self.replay_speed >= 0):
            raise ValueError(f"replay_speed must be >= 0 (0 = as fast as possible), got {self.replay_speed!r}")
        if self.venue is not VenueName.REPLAY and not self.symbols:
            raise ValueError(f"venue {self.venue.value} needs at least one symbol")
        if self.grace_s * 1000 >= TIMEFRAME_MS["1m"]:
            raise ValueError(f"grace_s must be under a minute, got {self.grace_s}")


# -- output ------------------------------------------------------------------------

class FeedOutput:
    """Sends into the bounded channel: bars and trades wait for room, quotes and health conflate."""

    def __init__(self, send: trio.MemorySendChannel[Any]) -> None:
        self._send = send
        self._latest: dict[tuple[type, str], Quote | FeedHealth] = {}
        self._wake = trio.Event()
        self.conflated = 0
        self.sent = 0

    async def send(self, item: Bar | TradeTick) -> None:
        try:
            # No scheduler round trip while there is room; wait (never drop) when full.
            self._send.send_nowait(item)
        except trio.WouldBlock:
            await self._send.send(item)
        self.sent += 1

    def offer(self, item: Quote | FeedHealth) -> None:
        key = (type(item), item.symbol)
        if key in self._latest:
            self.conflated += 1
        self._latest[key] = item
        self._wake.set()

    async def pump(self) -> None:
        """Forward the latest quote/health per symbol whenever the channel has room."""
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            await self.flush()

    async def flush(self) -> None:
        while self._latest:
            key = next(iter(self._latest))
            await self._send.send(self._latest.pop(key))
            self.sent += 1


@asynccontextmanager
async def _nursery() -> AsyncIterator[trio.Nursery]:
    """A nursery that re-raises a lone error as itself, so the supervisor sees its category."""
    try:
        async with trio.open_nursery() as nursery:
            yield nursery
    except BaseExceptionGroup as group:
        leaves = _leaves(group)
        fractal = [e for e in leaves if isinstance(e, FractalError)]
        chosen = fractal[0] if fractal else leaves[0]
        if len(leaves) == 1 or fractal:
            raise chosen from group
        raise


def _leaves(group: BaseExceptionGroup) -> list[BaseException]:
    out: list[BaseException] = []
    for exc in group.exceptions:
        out.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return out


# -- per-symbol state, shared by live feeds and capture replay ------------------------

class _Symbol:
    def __init__(self, symbol: str, settings: FeedSettings, base_tf: str, now_s: float) -> None:
        self.symbol = symbol
        tfs = [tf for tf in settings.timeframes if timeframe_ms(tf) >= timeframe_ms(base_tf)]
        self.bars = SymbolBars(symbol, tfs, base_timeframe=base_tf, grace_ms=int(settings.grace_s * 1000),
                               history_bars=settings.history_bars)
        self.health = HealthTracker(symbol, HealthParams(stale_after_s=settings.stale_after_s,
                                                         outlier_k=settings.outlier_k), start_s=now_s)
        self.book_sync: BinanceBookSync | None = None
        self.book: L2Book | None = None
        self.last_trade_ts: int | None = None


Backfill = Callable[[GapRequest], Awaitable[list[Bar] | None]]


def _worth_logging(count: int) -> bool:
    """The first ten of a kind in full, then one in a hundred: trouble must not flood the journal."""
    return count <= 10 or count % 100 == 0


class FeedState:
    """What a live feed keeps across supervisor restarts: bar pipelines, health, the venue clock.

    Create one in the actor, outside its restart loop, and pass it to every
    `run_feed` call: a restart then continues the bar sequence (the missed
    stretch is refetched from REST) instead of starting a new one with a hole
    the consumers never hear about. It is dropped when the settings that
    shape the bars change.
    """

    def __init__(self) -> None:
        self.symbols: dict[str, _Symbol] = {}
        self.clock_offset_ms: float | None = None
        self.runs = 0
        self.key: tuple[Any, ...] | None = None

    def adopt(self, settings: FeedSettings) -> bool:
        """Start a run; True when it resumes an earlier one with the same shape."""
        key = (settings.venue, settings.symbols, settings.timeframes, settings.grace_s)
        if key != self.key:
            self.symbols.clear()
            self.clock_offset_ms = None
            self.key = key
        self.runs += 1
        return any(sym.bars.next_ts is not None for sym in self.symbols.values())


class FeedCore:
    """Routes venue events into bars, health and the output; the I/O around it varies."""

    def __init__(self, settings: FeedSettings, symbols: Sequence[str], out: FeedOutput, log: Any,
                 *, base_tf: str = "1m", backfill: Backfill | None = None, futures: bool = False,
                 state: FeedState | None = None) -> None:
        self.settings = settings
        self.out = out
        self.log = log
        self.backfill = backfill
        self.state = state or FeedState()
        now = trio.current_time()
        for s in symbols:
            if s not in self.state.symbols:
                self.state.symbols[s] = _Symbol(s, settings, base_tf, now)
        self.symbols = {s: self.state.symbols[s] for s in symbols}
        for sym in self.symbols.values():
            sym.book_sync, sym.book = None, None  # a book never survives a restart
            if settings.book:
                sym.book_sync = BinanceBookSync(sym.symbol, futures=futures)
                sym.book = sym.book_sync.book
        self.lock = trio.Lock()  # bars go out in order even with the ticker and receiver both feeding
        self.unparsed_logged = 0
        self.snapshot_wanted: set[str] = set()
        self.snapshot_event = trio.Event()

    @property
    def clock_offset_ms(self) -> float | None:
        return self.state.clock_offset_ms

    @clock_offset_ms.setter
    def clock_offset_ms(self, value: float | None) -> None:
        self.state.clock_offset_ms = value

    # -- clocks ---------------------------------------------------------------------
    def venue_now_ms(self) -> int | None:
        """The venue's clock as seen through its own timestamps (None before any arrived)."""
        if self.clock_offset_ms is None:
            return None
        return int(trio.current_time() * 1000 + self.clock_offset_ms)

    def _saw_venue_time(self, ts_ms: int) -> None:
        if ts_ms <= 0:
            return
        offset = ts_ms - trio.current_time() * 1000
        if self.clock_offset_ms is None or offset > self.clock_offset_ms:
            self.clock_offset_ms = offset

    # -- events ---------------------------------------------------------------------
    async def handle(self, events: Iterable[VenueEvent]) -> bool:
        """Route one message's events; True when it carried market data."""
        now = trio.current_time()
        market = False
        for event in events:
            if isinstance(event, TradeTick):
                await self._trade(event, now)
            elif isinstance(event, Quote):
                self._quote(event, now)
            elif isinstance(event, BookDelta):
                self._delta(event, now)
            elif isinstance(event, BookSnapshot):
                self._l2(event, now)
            elif isinstance(event, Unparsed):
                self._unparsed(event, now)
                continue
            elif isinstance(event, VenueErrorMsg):
                self.log.warning("venue_error", message=event.message, code=event.code)
                continue
            elif not isinstance(event, (CandleUpdate, Mids)):
                continue  # acks and pongs: the connection lives, the market says nothing
            # Candles and mids need nothing more here: bars come from trades.
            market = True
        return market

    async def _trade(self, tick: TradeTick, now: float) -> None:
        sym = self.symbols.get(tick.symbol)
        if sym is None:
            return
        venue_now = self.venue_now_ms()
        if venue_now is not None and tick.ts_event > venue_now + FUTURE_TOLERANCE_MS:
            # One bad timestamp must not drag the bar clock hours ahead of the market.
            sym.health.on_unparsed(now)
            self.log.warning("trade_from_the_future", symbol=tick.symbol, ts_event=tick.ts_event,
                             venue_now=venue_now, trade_id=tick.trade_id)
            return
        self._saw_venue_time(tick.ts_event)
        sym.health.on_message(now, tick.ts_event)
        if sym.health.check_price(now, tick.price):
            self.log.warning("price_outlier", symbol=tick.symbol, price=tick.price, trade_id=tick.trade_id)
        sym.last_trade_ts = tick.ts_event
        await self.out.send(tick)
        late_before = sym.bars.late_trades
        step = sym.bars.on_trade(tick)
        if sym.bars.late_trades != late_before and _worth_logging(sym.bars.late_trades):
            self.log.warning("late_trade", symbol=tick.symbol, ts_event=tick.ts_event,
                             trade_id=tick.trade_id, late_trades=sym.bars.late_trades)
        if step.bars or step.gap is not None:
            async with self.lock:
                await self.emit_step(sym, step)

    def _quote(self, quote: Quote, now: float) -> None:
        sym = self.symbols.get(quote.symbol)
        if sym is None:
            return
        if quote.ts_event == 0:
            quote = attrs.evolve(quote, ts_event=self.venue_now_ms() or 0)
        else:
            self._saw_venue_time(quote.ts_event)
        sym.health.on_message(now, quote.ts_event or None)
        if sym.health.check_quote(now, quote):
            self.log.warning("crossed_quote", symbol=quote.symbol, bid=quote.bid, ask=quote.ask)
        self.out.offer(quote)

    def _delta(self, delta: BookDelta, now: float) -> None:
        sym = self.symbols.get(delta.symbol)
        if sym is None or sym.book_sync is None:
            return
        self._saw_venue_time(delta.ts_event)
        sym.health.on_message(now, delta.ts_event)
        was_live = sym.book_sync.live
        result = sym.book_sync.on_delta(delta)
        sym.book = sym.book_sync.book
        if sym.book_sync.live and not was_live:
            self.log.info("book_synced", symbol=delta.symbol, update_id=delta.final_update_id)
        if result.gap:
            self.log.warning("book_gap", symbol=delta.symbol, gaps=sym.book_sync.gaps)
        if result.need_snapshot:
            self.want_snapshot(delta.symbol)
        if result.crossed:
            sym.health.check_quote(now, sym.book.quote())  # type: ignore[union-attr,arg-type]

    def _l2(self, snap: BookSnapshot, now: float) -> None:
        sym = self.symbols.get(snap.symbol)
        if sym is None:
            return
        self._saw_venue_time(snap.ts_event)
        sym.health.on_message(now, snap.ts_event)
        sym.book = sym.book or L2Book(snap.symbol)
        sym.book.load(snap)
        quote = sym.book.quote()
        if quote is not None and sym.health.check_quote(now, quote):
            self.log.warning("crossed_book", symbol=snap.symbol)

    def _unparsed(self, event: Unparsed, now: float) -> None:
        for sym in self.symbols.values():
            sym.health.on_unparsed(now)
        self.unparsed_logged += 1
        if _worth_logging(self.unparsed_logged):
            self.log.warning("unparsed_message", reason=event.reason.value, detail=event.detail,
                             raw=event.raw, count=self.unparsed_logged)

    def want_snapshot(self, symbol: str) -> None:
        self.snapshot_wanted.add(symbol)
        self.snapshot_event.set()

    # -- bars -----------------------------------------------------------------------
    async def emit_step(self, sym: _Symbol, step: Step) -> None:
        """Send a step's bars; fill its gap from REST first if there is one (lock held)."""
        while True:
            for bar in step.bars:
                if bar.timeframe == sym.bars.base_timeframe:
                    sym.health.on_bar(bar)
                await self.out.send(bar)
            if step.gap is None:
                return
            step = await self._fill(sym, step.gap)

    async def _fill(self, sym: _Symbol, gap: GapRequest) -> Step:
        fetched: list[Bar] | None = None
        if self.backfill is not None:
            with trio.move_on_after(self.settings.backfill_timeout_s):
                try:
                    fetched = await self.backfill(gap)
                except TransientError as exc:
                    self.log.warning("backfill_failed", symbol=sym.symbol, error=exc.code,
                                     message=exc.message)
        got = {b.ts_open for b in fetched or ()}
        filled = all(ts in got for ts in range(gap.start_ms, gap.end_ms, timeframe_ms(gap.timeframe)))
        sym.health.on_gap(trio.current_time(), filled=filled)
        self.log.info("bar_gap", symbol=sym.symbol, start_ms=gap.start_ms, end_ms=gap.end_ms,
                      bars=gap.bars, filled=filled)
        return sym.bars.resolve_gap(fetched)

    async def advance(self, venue_ms: int | None = None) -> None:
        """Close bars by the venue clock even when no trade comes."""
        now_ms = venue_ms if venue_ms is not None else self.venue_now_ms()
        if now_ms is None:
            return
        async with self.lock:
            for sym in self.symbols.values():
                await self.emit_step(sym, sym.bars.advance(now_ms))

    def publish_health(self) -> None:
        now = trio.current_time()
        ts = self.venue_now_ms() or 0
        for sym in self.symbols.values():
            self.out.offer(sym.health.snapshot(now, ts))

    # -- connection events ------------------------------------------------------------
    def connection_lost(self) -> None:
        for sym in self.symbols.values():
            start = sym.last_trade_ts if sym.last_trade_ts is not None else self.venue_now_ms()
            if start is not None and sym.bars.next_ts is not None:
                sym.bars.begin_outage(start)

    def connection_back(self) -> None:
        now_ms = self.venue_now_ms()
        now = trio.current_time()
        for sym in self.symbols.values():
            sym.health.on_reconnect(now)
            if now_ms is not None:
                sym.bars.end_outage(now_ms)
            if sym.book_sync is not None:
                sym.book_sync = BinanceBookSync(sym.symbol, futures=sym.book_sync.futures)
                sym.book = sym.book_sync.book
                self.want_snapshot(sym.symbol)


# -- venues ------------------------------------------------------------------------

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


def _venue(settings: FeedSettings) -> _Venue:
    v = settings.venue
    if v in (VenueName.HYPERLIQUID, VenueName.HYPERLIQUID_TESTNET):
        testnet = v is VenueName.HYPERLIQUID_TESTNET
        coins = list(settings.symbols)
        return _Venue(
            ws_url=settings.ws_url or (hyperliquid.TESTNET_WS_URL if testnet else hyperliquid.MAINNET_WS_URL),
            rest_url=settings.rest_url or (hyperliquid.TESTNET_REST_URL if testnet
                                           else hyperliquid.MAINNET_REST_URL),
            parse=hyperliquid.parse_message,
            subscriptions=lambda: hyperliquid.market_subscriptions(coins, book=settings.book),
            app_ping=hyperliquid.PING_MESSAGE, max_connection_s=None,
            weight_per_minute=hyperliquid.WEIGHT_LIMIT_PER_MINUTE, futures=False,
            normalise=lambda s: s)
    market = binance.Market.FUTURES if v is VenueName.BINANCE_FUTURES else binance.Market.SPOT
    ep = binance.ENDPOINTS[market]
    symbols = [s.upper() for s in settings.symbols]
    return _Venue(
        ws_url=settings.ws_url or ep.ws_url, rest_url=settings.rest_url or ep.rest_url,
        parse=binance.parse_message,
        subscriptions=lambda: binance.subscribe_messages(binance.market_streams(symbols, book=settings.book)),
        app_ping=None, max_connection_s=binance.MAX_CONNECTION_S,
        weight_per_minute=ep.weight_per_minute, futures=market is binance.Market.FUTURES,
        normalise=str.upper)


def _backfill_for(settings: FeedSettings, client: rest.RestClient) -> Backfill:
    v = settings.venue

    async def backfill(gap: GapRequest) -> list[Bar]:
        if v in (VenueName.HYPERLIQUID, VenueName.HYPERLIQUID_TESTNET):
            return await rest.hyperliquid_candles(client, gap.symbol, gap.timeframe, gap.start_ms, gap.end_ms)
        market = binance.Market.FUTURES if v is VenueName.BINANCE_FUTURES else binance.Market.SPOT
        return await rest.binance_klines(client, market, gap.symbol, gap.timeframe, gap.start_ms, gap.end_ms)

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


async def _run_live(settings: FeedSettings, out: FeedOutput, beat: Callable[[], None], log: Any,
                    state: FeedState) -> None:
    venue = _venue(settings)
    resumed = state.adopt(settings)
    client = rest.RestClient(venue.rest_url, weight_per_minute=venue.weight_per_minute,
                             backoff=Backoff(settings.backoff_base_s, settings.backoff_cap_s), log=log)
    symbols = [venue.normalise(s) for s in settings.symbols]
    core = FeedCore(settings, symbols, out, log, backfill=_backfill_for(settings, client),
                    futures=venue.futures, state=state)
    if resumed:
        core.connection_lost()  # the last run's connection died with it
    session = WsSession(
        WsSettings(url=venue.ws_url, silence_timeout_s=settings.silence_timeout_s, app_ping=venue.app_ping,
                   max_connection_s=venue.max_connection_s, max_frame_bytes=settings.max_frame_bytes,
                   backoff=Backoff(settings.backoff_base_s, settings.backoff_cap_s),
                   max_failures=settings.max_failures),
        venue.subscriptions, log=log)

    async def on_message(raw: str | bytes) -> bool:
        return await core.handle(venue.parse(raw))

    async def on_connected(n: int) -> None:
        if n > 1 or resumed:
            core.connection_back()
        elif settings.book and settings.venue in (VenueName.BINANCE, VenueName.BINANCE_FUTURES):
            for symbol in symbols:
                core.want_snapshot(symbol)

    async def on_disconnected(reason: EndReason, detail: str) -> None:
        log.warning("feed_disconnected", reason=reason.value, detail=detail)
        core.connection_lost()

    log.info("feed_started", venue=settings.venue.value, url=venue.ws_url, symbols=symbols,
             timeframes=list(settings.timeframes), run=state.runs, resumed=resumed)
    try:
        async with _nursery() as nursery:
            nursery.start_soon(out.pump)
            nursery.start_soon(_ticker, core, beat, settings.health_interval_s)
            if settings.book and not venue.app_ping:
                market = binance.Market.FUTURES if venue.futures else binance.Market.SPOT
                nursery.start_soon(_snapshots, core, client, market)
            await session.run(on_message, on_connected, on_disconnected)
    finally:
        with trio.CancelScope(shield=True):
            await client.aclose()


# -- replay ------------------------------------------------------------------------

def _resume_point(candles: list[Bar], settings: FeedSettings, symbol: str, log: Any) -> list[Bar]:
    covered = dict(settings.resume_after_ms).get(symbol)
    if covered is None:
        return candles
    widest = max(timeframe_ms(tf) for tf in settings.timeframes)
    start = covered // widest * widest
    first = bisect.bisect_left([c.ts_open for c in candles], start)
    log.info("replay_resumed", symbol=symbol, covered_until_ms=covered, restart_at_ms=start,
             candles_skipped=first)
    return candles[first:]


async def _replay_candles(settings: FeedSettings, out: FeedOutput, beat: Callable[[], None], log: Any) -> None:
    symbol = settings.symbols[0] if settings.symbols else (
        BUNDLED_SYMBOL if settings.replay_path is None else Path(settings.replay_path).stem)
    candles = (replay.bundled_candles(symbol) if settings.replay_path is None
               else replay.load_candles(settings.replay_path, symbol))
    base_tf = candles[0].timeframe
    candles = _resume_point(candles, settings, symbol, log)
    skipped = [tf for tf in settings.timeframes if timeframe_ms(tf) < timeframe_ms(base_tf)]
    if skipped:
        log.warning("replay_timeframes_below_data", skipped=skipped, data_timeframe=base_tf)
    stale_after_s = settings.stale_after_s
    if settings.replay_speed > 0:
        # Candles arrive one per bar: silence between two of them is not staleness.
        stale_after_s = max(stale_after_s, 3 * timeframe_ms(base_tf) / 1000 / settings.replay_speed)
    core = FeedCore(attrs.evolve(settings, book=False, stale_after_s=stale_after_s), [symbol], out, log,
                    base_tf=base_tf)
    sym = core.symbols[symbol]
    log.info("replay_started", path=settings.replay_path or "bundled", symbol=symbol, candles=len(candles),
             timeframe=base_tf, speed=settings.replay_speed)
    next_beat = trio.current_time()
    async with _nursery() as nursery:
        nursery.start_soon(out.pump)
        async for bar in replay.paced(candles, lambda b: b.ts_event, settings.replay_speed):
            now = trio.current_time()
            sym.health.on_message(now, bar.ts_event)
            core.clock_offset_ms = bar.ts_event - now * 1000
            await core.emit_step(sym, sym.bars.on_base_bar(bar))
            if now >= next_beat:
                core.publish_health()
                beat()
                next_beat = now + settings.health_interval_s
        core.publish_health()
        await out.flush()
        nursery.cancel_scope.cancel()
    beat()
    log.info("replay finished", symbol=symbol, bars_in=len(candles), sent=out.sent,
             duplicates=sym.bars.duplicate_bars, unfilled=sym.bars.bars_unfilled)


async def _replay_capture(settings: FeedSettings, out: FeedOutput, beat: Callable[[], None], log: Any) -> None:
    """A recorded Binance WS capture through the same codec and core as a live feed (no REST)."""
    assert settings.replay_path is not None
    url, lines = replay.read_capture(settings.replay_path)
    futures = "fstream" in url or "dstream" in url
    symbols = [s.upper() for s in settings.symbols] or sorted({
        stream.split("@")[0].upper() for stream in url.split("streams=")[-1].split("/") if "@" in stream})
    core = FeedCore(attrs.evolve(settings, book=False), symbols, out, log, futures=futures)
    log.info("replay_started", path=settings.replay_path, symbols=symbols, messages=len(lines),
             speed=settings.replay_speed)
    next_beat = trio.current_time()
    async with _nursery() as nursery:
        nursery.start_soon(out.pump)
        async for line in replay.paced(lines, lambda c: int(c.received_s * 1000), settings.replay_speed):
            await core.handle(binance.parse_message(line.raw))
            if trio.current_time() >= next_beat:
                core.publish_health()
                beat()
                next_beat = trio.current_time() + settings.health_interval_s
        # The capture ends mid-bar: what it holds of the last bars is partial, and says so.
        end_ms = core.venue_now_ms() or 0
        for sym in core.symbols.values():
            if sym.bars.next_ts is not None:
                sym.bars.note_outage(end_ms, end_ms)
        await core.advance(end_ms + timeframe_ms("1m") + int(settings.grace_s * 1000))
        core.publish_health()
        await out.flush()
        nursery.cancel_scope.cancel()
    beat()
    log.info("replay finished", symbols=symbols, sent=out.sent)


# -- entry point -------------------------------------------------------------------

async def run_feed(settings: FeedSettings, send: trio.MemorySendChannel[Any], beat: Callable[[], None],
                   log: Any, state: FeedState | None = None) -> None:
    """Run the market data feed described by `settings` until cancelled (or a replay ends).

    Pass the same `state` to every restart of a live feed so that its bars
    carry on without a hole (see FeedState).
    """
    out = FeedOutput(send)
    try:
        if settings.venue is not VenueName.REPLAY:
            await _run_live(settings, out, beat, log, state or FeedState())
        elif settings.replay_path is not None and replay.is_capture(settings.replay_path):
            await _replay_capture(settings, out, beat, log)
        else:
            await _replay_candles(settings, out, beat, log)
    except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
        # The consumer went away: nothing to feed; let the supervisor decide.
        raise FeedDisconnected(f"output channel closed: {exc}") from exc
