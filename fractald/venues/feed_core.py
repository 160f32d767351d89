"""Per-symbol feed state (`FeedState`) and `FeedCore`, which routes venue events into bars,
health and the output; shared by live feeds and capture replay."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

import attrs
import trio

from fractald.core.bars import EMPTY_STEP, GapRequest, Step, SymbolBars
from fractald.core.book import BinanceBookSync, BookDelta, BookSnapshot, L2Book
from fractald.core.feed_health import HealthParams, HealthTracker
from fractald.core.models import Bar, Quote, TradeTick, timeframe_ms
from fractald.errors import TransientError
from fractald.venues.events import CandleUpdate, Mids, Unparsed, VenueErrorMsg, VenueEvent
from fractald.venues.feed_clock import FUTURE_TOLERANCE_MS, VenueClock
from fractald.venues.feed_output import FeedOutput
from fractald.venues.feed_settings import FeedSettings, VenueName

__all__ = ["FUTURE_TOLERANCE_MS", "FeedCore", "FeedState"]

# The local clock this far off the venue's is reported (a median of message times carries
# the network latency too, so a few hundred ms mean nothing).
CLOCK_SKEW_WARN_MS = 2_000
# Bars REST could not give at once are asked for again later: after 30 s, doubling to 30 min,
# 20 times at most (about 8 hours), at most 64 stretches per symbol; always within the
# client's weight budget and any Retry-After the venue gave.
REFILL_FIRST_S = 30.0
REFILL_CAP_S = 1800.0
REFILL_ATTEMPTS = 20
REFILL_MAX = 64
CLOCK_SKEW_LOG_EVERY_S = 60.0


class _Symbol:
    def __init__(self, symbol: str, settings: FeedSettings, base_tf: str, now_s: float) -> None:
        self.symbol = symbol
        tfs = [tf for tf in settings.timeframes if timeframe_ms(tf) >= timeframe_ms(base_tf)]
        self.bars = SymbolBars(
            symbol,
            tfs,
            base_timeframe=base_tf,
            grace_ms=int(settings.grace_s * 1000),
            history_bars=settings.history_bars,
            start_at_ms=_resume_at(settings, symbol, tfs),
        )
        self.health = HealthTracker(
            symbol,
            HealthParams(
                stale_after_s=settings.stale_after_s,
                outlier_k=settings.outlier_k,
                spread_factor=settings.quality_spread_factor,
                outside_rth_factor=settings.quality_outside_rth_factor,
            ),
            start_s=now_s,
        )
        self.book_sync: BinanceBookSync | None = None
        self.book: L2Book | None = None
        self.last_trade_ts: int | None = None
        self.last_trade_id: int | None = None  # venues whose trade ids count up by one
        self.venue_candle: Bar | None = None  # Hyperliquid: the candle in progress
        self.repaired_seen = 0
        self.unfilled: list[_Refill] = []  # stretches REST could not give yet
        self.stale = False  # as last published: a change is logged


Backfill = Callable[[GapRequest], Awaitable[list[Bar] | None]]


@attrs.define
class _Refill:
    gap: GapRequest
    due_s: float
    attempts: int = 0
    # The bars went out already (trades lost while connected): fetched to correct them downstream.
    correct: bool = False


def _resume_at(settings: FeedSettings, symbol: str, timeframes: Sequence[str]) -> int | None:
    """A live feed restarting after the consumer's cursor: where its bars start again.

    Like a candle replay, on the boundary of the widest timeframe holding the cursor, so every
    higher-timeframe bar is rebuilt whole from REST; the consumer skips the bars it has, and
    stops and targets see every bar the daemon was down for, before any live one.
    """
    covered = dict(settings.resume_after_ms).get(symbol)
    if covered is None or settings.venue is VenueName.REPLAY:
        return None
    widest = max(timeframe_ms(tf) for tf in timeframes)
    return covered // widest * widest


def _whole(gap: GapRequest, fetched: list[Bar] | None) -> bool:
    got = {b.ts_open for b in fetched or () if b.complete}
    return all(ts in got for ts in range(gap.start_ms, gap.end_ms, timeframe_ms(gap.timeframe)))


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
        self.clock = VenueClock()
        self.clock_skew_ms: float | None = None  # local wall clock minus the venue's
        self.symbols_validated = False  # the venue listed every symbol once: no need to ask again
        self.runs = 0
        # Trio time until which the venue asked us to wait (429/418 + Retry-After), REST or WS:
        # a start held up by it is waiting, not failing (the daemon's feeds gate reads it).
        self.venue_wait_until = 0.0
        self.key: tuple[Any, ...] | None = None

    def note_rate_limited(self, retry_after_s: float) -> None:
        self.venue_wait_until = max(self.venue_wait_until, trio.current_time() + retry_after_s)

    def adopt(self, settings: FeedSettings) -> bool:
        """Start a run; True when it resumes an earlier one with the same shape."""
        key = (settings.venue, settings.symbols, settings.timeframes, settings.grace_s)
        if key != self.key:
            self.symbols.clear()
            self.clock = VenueClock()
            self.symbols_validated = False
            self.key = key
        self.runs += 1
        return any(sym.bars.next_ts is not None for sym in self.symbols.values())


class FeedCore:
    """Routes venue events into bars, health and the output; the I/O around it varies."""

    def __init__(
        self,
        settings: FeedSettings,
        symbols: Sequence[str],
        out: FeedOutput,
        log: Any,
        *,
        base_tf: str = "1m",
        backfill: Backfill | None = None,
        futures: bool = False,
        state: FeedState | None = None,
        wall_ms: Callable[[], float] | None = None,
        contiguous_trade_ids: bool = False,
    ) -> None:
        self.contiguous_trade_ids = contiguous_trade_ids
        self.settings = settings
        self.wall_ms = wall_ms or (lambda: time.time() * 1000)
        self.skew_logged_at = -1e18
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
        self.lock = (
            trio.Lock()
        )  # bars go out in order even with the ticker and receiver both feeding
        self.unparsed_logged = 0
        self.snapshot_wanted: set[str] = set()
        self.snapshot_event = trio.Event()

    @property
    def clock_offset_ms(self) -> float | None:
        return self.state.clock.offset_ms

    @clock_offset_ms.setter
    def clock_offset_ms(self, value: float) -> None:
        self.state.clock.set(value)

    # -- clocks ---------------------------------------------------------------------
    def venue_now_ms(self) -> int | None:
        """The venue's clock as seen through its own timestamps (None before any arrived)."""
        return self.state.clock.now_ms(trio.current_time())

    def _believable(self, sym: _Symbol, ts_ms: int, now: float, kind: str) -> bool:
        """Sample the venue clock; False (counted, logged sparingly) for a time too far ahead.

        Every kind of message gets the same bound: one quote stamped hours ahead must not
        drag the bar clock there, whatever carried it.
        """
        if ts_ms <= 0 or self.state.clock.sample(ts_ms, now):
            return True
        self._refused(sym, ts_ms, now, kind)
        return False

    def _refused(self, sym: _Symbol, ts_ms: int, now: float, kind: str) -> None:
        sym.health.on_unparsed(now)
        refused = self.state.clock.refused
        if _worth_logging(refused):
            self.log.warning(
                "timestamp_from_the_future",
                symbol=sym.symbol,
                kind=kind,
                ts_event=ts_ms,
                venue_now=self.venue_now_ms(),
                refused=refused,
            )

    def check_local_clock(self) -> float | None:
        """How far this host's clock runs ahead of the venue's; logged when it is too far."""
        skew = self.state.clock.skew_ms(self.wall_ms(), trio.current_time())
        self.state.clock_skew_ms = skew
        now = trio.current_time()
        if (
            skew is not None
            and abs(skew) > CLOCK_SKEW_WARN_MS
            and now - self.skew_logged_at >= CLOCK_SKEW_LOG_EVERY_S
        ):
            self.skew_logged_at = now
            self.log.warning(
                "local_clock_skew",
                local_ahead_ms=round(skew),
                hint="the host clock is off the venue's: check NTP (timedatectl)",
            )
        return skew

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
            elif isinstance(event, CandleUpdate):
                self._candle(event, now)
                await self._flush_corrections(event.bar.symbol)
            elif not isinstance(event, Mids):
                continue  # acks and pongs: the connection lives, the market says nothing
            market = True
        return market

    async def _trade(self, tick: TradeTick, now: float) -> None:
        # The hot path (every trade): kept flat, each step's common case inline.
        sym = self.symbols.get(tick.symbol)
        if sym is None:
            return
        ts = tick.ts_event
        if ts > 0 and not self.state.clock.sample(ts, now):
            self._refused(sym, ts, now, "trade")
            return
        if self.contiguous_trade_ids:
            tid = int(tick.trade_id)
            last = sym.last_trade_id
            if last is not None and tid == last + 1:
                sym.last_trade_id = tid
            else:
                self._check_trade_id(sym, tick, now)
        health = sym.health
        health.on_message(now, ts)
        if health.check_price(now, tick.price):
            self.log.warning(
                "price_outlier", symbol=tick.symbol, price=tick.price, trade_id=tick.trade_id
            )
        sym.last_trade_ts = ts
        await self.out.send(tick)
        bars = sym.bars
        late_before = bars.late_trades
        step = bars.add_trade(tick.price, tick.size, ts)
        if bars.late_trades != late_before and _worth_logging(bars.late_trades):
            self.log.warning(
                "late_trade",
                symbol=tick.symbol,
                ts_event=ts,
                trade_id=tick.trade_id,
                late_trades=bars.late_trades,
            )
        if step is not EMPTY_STEP and (step.bars or step.gap is not None):
            async with self.lock:
                await self.emit_step(sym, step)

    def _check_trade_id(self, sym: _Symbol, tick: TradeTick, now: float) -> None:
        """Trades lost while the connection stayed up: the bars they belong to are refetched."""
        tid = int(tick.trade_id)
        last = sym.last_trade_id
        if last is None or tid > last:
            sym.last_trade_id = tid
        if last is None or tid <= last + 1 or sym.last_trade_ts is None:
            return
        gone = sym.bars.note_outage(sym.last_trade_ts, tick.ts_event)
        for _ in range(gone):
            sym.health.on_gap(now, filled=False)
        if gone and self.backfill is not None:
            # Those bars went out short of trades: fetch them at once and send the true ones.
            step = timeframe_ms(sym.bars.base_timeframe)
            start = min(sym.last_trade_ts, tick.ts_event)
            start -= start % step
            sym.unfilled.append(
                _Refill(
                    GapRequest(sym.symbol, sym.bars.base_timeframe, start, start + gone * step),
                    now,
                    correct=True,
                )
            )
        self.log.warning(
            "trades_missing",
            symbol=sym.symbol,
            after_id=last,
            next_id=tid,
            missing=tid - last - 1,
            bars_already_out=gone,
        )

    def _candle(self, update: CandleUpdate, now: float) -> None:
        """The venue's own candles cross-check ours (Hyperliquid's is final once the next begins)."""
        bar = update.bar
        sym = self.symbols.get(bar.symbol)
        if sym is None or bar.timeframe != sym.bars.base_timeframe:
            return
        sym.health.on_message(now, None)
        if not update.closed:
            previous, sym.venue_candle = sym.venue_candle, bar
            if previous is None or previous.ts_open >= bar.ts_open:
                return
            bar = previous
        if not sym.bars.venue_bar(bar):
            # Ours went out differing from the venue's own candle: the venue's is sent after it.
            sym.health.on_gap(now, filled=True)
            self.log.warning(
                "bar_mismatch",
                symbol=sym.symbol,
                ts_open=bar.ts_open,
                venue_close=bar.close,
                venue_volume=bar.volume,
                mismatched=sym.bars.bars_mismatched,
                corrected=True,
            )

    def _quote(self, quote: Quote, now: float) -> None:
        sym = self.symbols.get(quote.symbol)
        if sym is None:
            return
        if quote.ts_event == 0:
            quote = attrs.evolve(quote, ts_event=self.venue_now_ms() or 0)
        elif not self._believable(sym, quote.ts_event, now, "quote"):
            return
        sym.health.on_message(now, quote.ts_event or None)
        if sym.health.check_quote(now, quote):
            self.log.warning("crossed_quote", symbol=quote.symbol, bid=quote.bid, ask=quote.ask)
        self.out.offer(quote)

    def _delta(self, delta: BookDelta, now: float) -> None:
        sym = self.symbols.get(delta.symbol)
        if sym is None or sym.book_sync is None:
            return
        if not self._believable(sym, delta.ts_event, now, "depth"):
            return
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
        if not self._believable(sym, snap.ts_event, now, "book"):
            return
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
            self.log.warning(
                "unparsed_message",
                reason=event.reason.value,
                detail=event.detail,
                raw=event.raw,
                count=self.unparsed_logged,
            )

    def want_snapshot(self, symbol: str) -> None:
        self.snapshot_wanted.add(symbol)
        self.snapshot_event.set()

    # -- bars -----------------------------------------------------------------------
    async def emit_step(self, sym: _Symbol, step: Step) -> None:
        """Send a step's bars; fill its gap from REST first if there is one (lock held)."""
        while True:
            if sym.bars.bars_repaired != sym.repaired_seen:
                self._repaired(sym)
            for bar in step.bars:
                if bar.timeframe == sym.bars.base_timeframe:
                    sym.health.on_bar(bar)
                await self.out.send(bar)
            if sym.bars.corrections:
                await self._send_corrections(sym)
            if step.gap is None:
                return
            step = await self._fill(sym, step.gap)

    async def _flush_corrections(self, symbol: str) -> None:
        sym = self.symbols.get(symbol)
        if sym is not None and sym.bars.corrections:
            async with self.lock:  # after the bars they correct, never between a gap and its bars
                await self._send_corrections(sym)

    async def _send_corrections(self, sym: _Symbol) -> None:
        for correction in sym.bars.take_corrections():
            was = correction.was
            self.log.warning(
                "bar_corrected",
                symbol=sym.symbol,
                ts_open=correction.bar.ts_open,
                reason=correction.reason,
                close=correction.bar.close,
                volume=correction.bar.volume,
                was_close=None if was is None else was.close,
                was_volume=None if was is None else was.volume,
            )
            await self.out.send(correction)

    def _repaired(self, sym: _Symbol) -> None:
        now = trio.current_time()
        for _ in range(sym.bars.bars_repaired - sym.repaired_seen):
            sym.health.on_gap(now, filled=True)
        sym.repaired_seen = sym.bars.bars_repaired
        self.log.warning(
            "bar_repaired_from_venue_candle", symbol=sym.symbol, repaired=sym.repaired_seen
        )

    async def _fill(self, sym: _Symbol, gap: GapRequest) -> Step:
        fetched: list[Bar] | None = None
        if self.backfill is not None:
            with trio.move_on_after(self.settings.backfill_timeout_s):
                try:
                    fetched = await self.backfill(gap)
                except TransientError as exc:
                    self.log.warning(
                        "backfill_failed", symbol=sym.symbol, error=exc.code, message=exc.message
                    )
        filled = _whole(gap, fetched)
        now = trio.current_time()
        sym.health.on_gap(now, filled=filled)
        if not filled and self.backfill is not None:
            if len(sym.unfilled) >= REFILL_MAX:
                dropped = sym.unfilled.pop(0)
                self.log.warning(
                    "gap_refill_dropped",
                    symbol=sym.symbol,
                    start_ms=dropped.gap.start_ms,
                    end_ms=dropped.gap.end_ms,
                )
            sym.unfilled.append(_Refill(gap, now + REFILL_FIRST_S))
        self.log.info(
            "bar_gap",
            symbol=sym.symbol,
            start_ms=gap.start_ms,
            end_ms=gap.end_ms,
            bars=gap.bars,
            filled=filled,
        )
        return sym.bars.resolve_gap(fetched)

    async def refill_due(self) -> None:
        """Ask REST again for stretches it could not give; a whole answer lifts the quality cost.

        The bars went out marked incomplete at the time (the stream does not wait); a stretch
        fetched whole later is logged with its figures and scored as a filled gap.
        """
        assert self.backfill is not None
        now = trio.current_time()
        due = [
            (sym, item)
            for sym in self.symbols.values()
            for item in sym.unfilled
            if item.due_s <= now
        ]
        if due:
            # One stretch a call: the caller holds the bar lock, and live bars must not wait long.
            await self._refill_one(*due[0])

    async def _refill_one(self, sym: _Symbol, item: _Refill) -> None:
        assert self.backfill is not None
        fetched: list[Bar] | None = None
        with trio.move_on_after(self.settings.backfill_timeout_s):
            try:
                fetched = await self.backfill(item.gap)
            except TransientError as exc:
                self.log.info(
                    "gap_refill_failed",
                    symbol=sym.symbol,
                    error=exc.code,
                    attempt=item.attempts + 1,
                )
        now = trio.current_time()
        if _whole(item.gap, fetched):
            sym.unfilled.remove(item)
            for _ in range(item.gap.bars if item.correct else 1):
                sym.health.on_gap_refilled(now)
            sym.bars.correct(fetched or (), item.gap.start_ms, item.gap.end_ms)
            await self._send_corrections(sym)
            self.log.info(
                "gap_refilled",
                symbol=sym.symbol,
                start_ms=item.gap.start_ms,
                end_ms=item.gap.end_ms,
                bars=item.gap.bars,
                attempts=item.attempts + 1,
                venue_bars=[attrs.astuple(b) for b in (fetched or ())][:10],
            )
            return
        item.attempts += 1
        if item.attempts >= REFILL_ATTEMPTS:
            sym.unfilled.remove(item)
            self.log.warning(
                "gap_refill_given_up",
                symbol=sym.symbol,
                start_ms=item.gap.start_ms,
                end_ms=item.gap.end_ms,
                attempts=item.attempts,
            )
        else:
            item.due_s = now + min(REFILL_CAP_S, REFILL_FIRST_S * 2.0**item.attempts)

    async def advance(self, venue_ms: int | None = None) -> None:
        """Close bars by the venue clock even when no trade comes."""
        now_ms = venue_ms if venue_ms is not None else self.venue_now_ms()
        if now_ms is None:
            return
        async with self.lock:
            for sym in self.symbols.values():
                await self.emit_step(sym, sym.bars.advance(now_ms))

    def publish_health(self) -> None:
        self.check_local_clock()
        now = trio.current_time()
        ts = self.venue_now_ms() or 0
        for sym in self.symbols.values():
            health = sym.health.snapshot(now, ts)
            if health.stale != sym.stale:
                sym.stale = health.stale
                if health.stale:
                    self.log.warning(
                        "feed_stale",
                        symbol=sym.symbol,
                        age_s=round(health.last_message_age_s, 1),
                        quality=health.quality,
                    )
                else:
                    self.log.info(
                        "feed_fresh_again", symbol=sym.symbol, quality=round(health.quality, 3)
                    )
            self.out.offer(health)

    # -- connection events ------------------------------------------------------------
    def connection_lost(self) -> None:
        for sym in self.symbols.values():
            sym.last_trade_id = None  # the outage is refetched as a whole: no id jump to chase
            sym.venue_candle = None
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
                self.connection_back_book(sym)

    def connection_back_book(self, sym: _Symbol) -> None:
        """A new connection's depth stream starts afresh: the book syncs again from a snapshot."""
        assert sym.book_sync is not None
        sym.book_sync = BinanceBookSync(sym.symbol, futures=sym.book_sync.futures)
        sym.book = sym.book_sync.book
        self.want_snapshot(sym.symbol)
