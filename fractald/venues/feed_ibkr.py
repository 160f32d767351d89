"""The IBKR market-data feed: 5 s real-time bars and top of book through the shared FeedCore.

`[feed] venue = "ibkr"`. Per configured future root (MES, MNQ, ...) the
front-month contract is resolved at IB, and its 5-second TRADES bars
(outside regular hours too) are rolled into UTC 1-minute bars by
`core/realtime_bars.py`; a minute missing any of its twelve 5 s bars (we
joined mid-minute, or IB skipped some) is refetched with `reqHistoricalData`,
as is every stretch the feed was cut off for. From there the shared FeedCore
does what it does for the crypto venues: higher timeframes, bars exactly
once and in order with no hole, health and the quality score, READY only on
data (the market_data actor's gate), refills of what history could not give.

Quality gets two IBKR figures on top of the usual ones: the bid/ask spread in
ticks, and whether the latest bar lies outside the contract's regular
(liquid) hours (`core/feed_health.py`). Bad 5 s prints count as outliers.

Connectivity is transient, never fatal: 1100 / 2110 (TWS lost IB's servers)
mark an outage until 1101 / 1102 (1101: data lost, so everything is
subscribed again), and the outage is backfilled from history; a closed API
socket (TWS restart) reconnects with jittered backoff, `max_failures`
connects in a row before the supervisor is asked to restart the feed.

The front month is chosen again each venue day (and on every connect):
`ib_roll_days` before expiry the feed rolls to the next month: the old
month's last whole minute goes out, then a `ContractRolled` with the price
step between the months (the new month's close minus the old one's over that
minute, from history; else estimated from the new month's first bar), then
the new month's bars. The trading session back-adjusts what it kept by that
step (stored candles, detection state rebuilt over them), as
`core/continuous.py` does for backtests, so the step is no move of the
market. A roll happens when the venue day turns (UTC midnight): every
timeframe up to 1d closes there, so no bar the feed still builds spans it.
Minutes outside the contract's trading hours are not waited for (the market
is shut, no bars are due) and go out as flat zero-volume bars when history
has none (`with_shut_minutes`), so a daily break or a weekend is no gap.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import trio

from fractald.core.bars import GapRequest
from fractald.core.continuous import ContractRolled
from fractald.core.models import Bar, Quote
from fractald.core.realtime_bars import FiveSecondRollup
from fractald.errors import AuthError, ConfigError, FeedDisconnected, NetworkError, TransientError
from fractald.venues.feed_core import FeedCore, FeedState, _Symbol
from fractald.venues.feed_live import _refill
from fractald.venues.feed_output import FeedOutput, feed_nursery
from fractald.venues.feed_settings import FeedSettings
from fractald.venues.ibkr_feed_link import (
    IBFeedLink,
    IBFeedSettings,
    Instrument,
    LinkItem,
    LinkLost,
    LinkNotice,
    RealtimeBar,
    TopOfBook,
    today_utc,
)
from fractald.venues.ws import Backoff

# IB sends minute M's last 5 s bar at M+1:00 and the rollup closes M with the first bar of M+1
# (at about M+1:05): the venue clock closes minutes this far behind, so a minute is asked for
# from history only when its bars are really late.
ADVANCE_LAG_MS = 15_000
LINK_BUFFER = 10_000  # items from the IB thread; it waits when full (a backfill holds the bar lock)
FIVE_S_MS = 5_000
# TWS <-> IB servers: these codes stop the data, these bring it back (1101: subscriptions lost).
LINK_DOWN = frozenset({1100, 2110})
LINK_UP = frozenset({1101, 1102})
# IB refused a history request for pacing although our budget allowed it: no request for this long.
PACING_HOLD_S = 60.0
QUIET_CODES = frozenset({162, 2104, 2106, 2107, 2108, 2158, 2119})  # no history / farms fine


def ib_settings(settings: FeedSettings) -> IBFeedSettings:
    return IBFeedSettings(
        host=settings.ib_host,
        port=settings.ib_port,
        client_id=settings.ib_client_id,
        exchange=settings.ib_exchange,
        roll_days=settings.ib_roll_days,
        calendar=settings.ib_calendar,
    )


class IBKRFeed:
    """One run of the feed: the connection loop, the IB items into FeedCore, the bar clock."""

    def __init__(self, settings: FeedSettings, core: FeedCore, link: IBFeedLink, log: Any) -> None:
        self.settings = settings
        self.core = core
        self.link = link
        self.log = log
        self.instruments: dict[str, Instrument] = {}
        self.rollups: dict[str, FiveSecondRollup] = {}
        self.streaming = False  # connected, subscribed and TWS in touch with IB's servers
        self.market_down = False  # 1100/2110 seen, no 1101/1102 yet
        self.lost = trio.Event()
        self.day: str | None = None  # the venue date the front months were chosen for
        # A roll whose price step history could not give: (old, new, the old month's last close)
        self.roll_from: dict[str, tuple[Instrument, Instrument, float]] = {}

    # -- the connection ------------------------------------------------------------------
    async def connections(self, push: trio.MemorySendChannel[LinkItem], resumed: bool) -> None:
        """Connect, subscribe, wait for the loss, again; FeedDisconnected after max_failures."""
        backoff = Backoff(self.settings.backoff_base_s, self.settings.backoff_cap_s)
        rng = random.Random()
        failures = connects = 0
        while True:
            self.lost = trio.Event()
            try:
                await self._open(push)
            except (TransientError, trio.TooSlowError) as exc:
                failures += 1
                self.log.warning(
                    "feed_connect_failed", venue="ibkr", attempt=failures, error=str(exc)
                )
                if failures >= self.settings.max_failures:
                    raise FeedDisconnected(
                        f"IBKR feed: {failures} connects failed in a row: {exc}"
                    ) from None
                await trio.sleep(backoff.delay(failures, rng))
                continue
            failures, connects = 0, connects + 1
            self.streaming, self.market_down = True, False
            if connects > 1 or resumed:
                self.core.connection_back()  # the stretch we were away for is a gap: backfilled
            self.log.info(
                "feed_connected",
                venue="ibkr",
                connects=connects,
                contracts={s: i.local_symbol for s, i in self.instruments.items()},
            )
            await self.lost.wait()
            self.streaming = False
            self.core.connection_lost()
            await self.link.disconnect()

    async def _open(self, push: trio.MemorySendChannel[LinkItem]) -> None:
        await self.link.connect(push)
        self.day = self._today()
        found = await self.link.resolve(list(self.core.symbols), self.day)
        for symbol, inst in found.items():
            old = self.instruments.get(symbol)
            if old is None and symbol not in self.rollups:  # this run's first connect
                await self._rolled_while_down(symbol, inst)
            elif old is not None and old.expiry != inst.expiry:  # rolled while we were away
                self._rolled(old, inst)
                await self._announce_roll(self.core.symbols[symbol], old, inst)
            if symbol not in self.rollups or (old is not None and old.expiry != inst.expiry):
                self.rollups[symbol] = FiveSecondRollup(symbol, inst.tick_size)
        self.instruments = found
        await self.link.subscribe(list(found.values()))

    def _today(self) -> str:
        """The venue's date (its clock, once its bars have set it), for the front-month choice."""
        now_ms = self.core.venue_now_ms()
        if now_ms is None:
            return today_utc()
        return datetime.fromtimestamp(now_ms / 1000, UTC).strftime("%Y%m%d")

    async def _roll_if_due(self) -> None:
        """Each venue day, the front month is chosen again; a root whose month changed rolls: the
        old month's minute in progress goes out, the new month is subscribed, and from there on
        (history included) the bars are the new month's."""
        day = self._today()
        if day == self.day:
            return
        self.day = day
        found = await self.link.resolve(list(self.core.symbols), day)
        for symbol, inst in found.items():
            old = self.instruments.get(symbol)
            if old is None or old.expiry == inst.expiry:
                if old is not None:  # the same month with today's hours (IB's reach a few days)
                    self.instruments[symbol] = inst
                continue
            await self.link.unsubscribe(symbol)
            sym = self.core.symbols[symbol]
            for minute in self.rollups[symbol].flush():
                if (
                    minute.complete
                ):  # the old month's last whole minute; a part of one is the new month's
                    await self._minute(sym, minute)
            self._rolled(old, inst)
            await self._announce_roll(sym, old, inst)
            self.rollups[symbol] = FiveSecondRollup(symbol, inst.tick_size)
            self.instruments[symbol] = inst  # from here on history is asked of the new month too
            await self.link.subscribe([inst])

    async def _rolled_while_down(self, symbol: str, new: Instrument) -> None:
        """A restart after the consumer's cursor: if the front month then was another, the roll
        happened while we were down. Its step (both months' closes over the cursor's minute,
        from history) goes out before any bar, for the session to back-adjust what it stored;
        the session ignores a roll it has applied already."""
        cursor = dict(self.settings.resume_after_ms).get(symbol)
        if cursor is None:
            return
        then_day = datetime.fromtimestamp(cursor / 1000, UTC).strftime("%Y%m%d")
        old = (await self.link.resolve([symbol], then_day, include_expired=True)).get(symbol)
        if old is None or old.expiry == new.expiry:
            return
        self._rolled(old, new)
        old_close = await self._close_at(old, cursor)
        step = None if old_close is None else await self._month_step(new, cursor, old_close)
        if step is None:
            self.log.warning(
                "front_month_roll_unadjusted",
                symbol=symbol,
                old=old.local_symbol,
                new=new.local_symbol,
                cursor_ms=cursor,
                why="history has no minute of both months at the cursor",
            )
            return
        async with self.core.lock:
            await self._send_roll(symbol, cursor + 60_000, old, new, step, measured=True)

    async def _close_at(self, inst: Instrument, minute_ms: int) -> float | None:
        try:
            got = await self.link.history(
                inst, minute_ms, minute_ms + 60_000, self.settings.backfill_timeout_s
            )
        except (TransientError, trio.TooSlowError):
            return None
        same = [b.close for b in got if b.ts_open == minute_ms]
        return same[0] if same else None

    async def _announce_roll(self, sym: _Symbol, old: Instrument, new: Instrument) -> None:
        """Tell the consumers the price step between the months, before any bar of the new one.

        The step is the new month's close minus the old one's over the last minute that went
        out (history of the new month, one request). When history has no such minute the
        step is estimated from the new month's first bar instead (`_minute`)."""
        last_close, next_ts = sym.bars.last_close, sym.bars.next_ts
        if last_close is None or next_ts is None:
            return  # nothing went out yet: nothing to adjust
        offset = await self._month_step(new, next_ts - 60_000, last_close)
        if offset is None:
            self.roll_from[sym.symbol] = (old, new, last_close)
            return
        async with self.core.lock:
            await self._send_roll(sym.symbol, next_ts, old, new, offset, measured=True)

    async def _month_step(self, new: Instrument, minute_ms: int, old_close: float) -> float | None:
        try:
            got = await self.link.history(
                new, minute_ms, minute_ms + 60_000, self.settings.backfill_timeout_s
            )
        except (TransientError, trio.TooSlowError) as exc:
            self.log.warning("front_month_step_unmeasured", symbol=new.symbol, error=str(exc))
            return None
        same = [b for b in got if b.ts_open == minute_ms]
        return round(same[0].close - old_close, 9) if same else None

    async def _send_roll(
        self,
        symbol: str,
        ts_ms: int,
        old: Instrument,
        new: Instrument,
        offset: float,
        measured: bool,
    ) -> None:
        """The roll event into the bar stream (lock held: between two bars, never inside a gap)."""
        self.log.info(
            "front_month_roll_gap",
            symbol=symbol,
            old=old.local_symbol,
            new=new.local_symbol,
            ts_ms=ts_ms,
            gap=offset,
            measured=measured,
        )
        await self.core.out.send(
            ContractRolled(symbol, ts_ms, old.local_symbol, new.local_symbol, offset, measured)
        )
        # What the feed still holds of the old month (a higher bar spanning the roll, the close a
        # shut minute repeats) moves with it: every bar from here on is of one series.
        self.core.symbols[symbol].bars.back_adjust(ts_ms, offset)

    def _rolled(self, old: Instrument, new: Instrument) -> None:
        self.log.warning(
            "front_month_rolled",
            symbol=new.symbol,
            old=old.local_symbol,
            new=new.local_symbol,
            old_expiry=old.expiry,
            new_expiry=new.expiry,
            roll_days=self.settings.ib_roll_days,
        )

    # -- what IB pushes ------------------------------------------------------------------
    async def consume(self, items: trio.MemoryReceiveChannel[LinkItem]) -> None:
        async for item in items:
            if isinstance(item, RealtimeBar):
                await self._five_seconds(item)
            elif isinstance(item, TopOfBook):
                await self._top_of_book(item)
            elif isinstance(item, LinkNotice):
                await self._notice(item)
            elif isinstance(item, LinkLost):
                self.log.warning("feed_disconnected", venue="ibkr", detail=item.detail)
                self.lost.set()

    async def _five_seconds(self, item: RealtimeBar) -> None:
        core, sym = self.core, self.core.symbols.get(item.symbol)
        rollup, inst = self.rollups.get(item.symbol), self.instruments.get(item.symbol)
        if sym is None or rollup is None or inst is None or item.con_id != inst.con_id:
            return  # a month we no longer follow (still in flight after a roll)
        now = trio.current_time()
        end = item.ts_ms + FIVE_S_MS  # IB sends a 5 s bar when it ends: its end is the venue's now
        if not core.state.clock.sample(end, now):
            sym.health.on_unparsed(now)
            self.log.warning(
                "timestamp_from_the_future", symbol=item.symbol, kind="bar", ts_event=end
            )
            return
        sym.health.on_message(now, end)
        outliers = rollup.outliers
        try:
            minutes = rollup.on_bar(
                item.ts_ms, item.open, item.high, item.low, item.close, item.volume
            )
        except ValueError as exc:
            sym.health.on_unparsed(now)
            self.log.warning("bad_realtime_bar", symbol=item.symbol, problem=str(exc))
            return
        if rollup.outliers != outliers:
            sym.health.on_outlier(now)
            self.log.warning(
                "price_outlier", symbol=item.symbol, ts=item.ts_ms, high=item.high, low=item.low
            )
        for minute in minutes:
            await self._minute(sym, minute)

    async def _minute(self, sym: _Symbol, bar: Bar) -> None:
        bars = sym.bars
        async with self.core.lock:
            rolled = self.roll_from.pop(sym.symbol, None)
            if rolled is not None:  # unmeasured at the roll: the new month's first bar tells
                old, new, old_close = rolled
                step = round(bar.open - old_close, 9)
                await self._send_roll(sym.symbol, bar.ts_open, old, new, step, measured=False)
            bars.start_live(bar.ts_open)
            if not bar.complete:
                bars.note_outage(
                    bar.ts_open, bar.ts_open
                )  # some 5 s bars missing: history's minute instead
            self._session(sym, bar.ts_open)
            await self.core.emit_step(sym, bars.on_base_bar(bar))

    def _session(self, sym: _Symbol, ts_ms: int) -> None:
        inst = self.instruments.get(sym.symbol)
        outside = inst is not None and inst.liquid_at(ts_ms) is False
        if outside != sym.health.outside_rth:
            self.log.info(
                "outside_regular_hours" if outside else "regular_hours", symbol=sym.symbol, ts=ts_ms
            )
        sym.health.on_session(outside_rth=outside)

    async def _top_of_book(self, item: TopOfBook) -> None:
        sym, inst = self.core.symbols.get(item.symbol), self.instruments.get(item.symbol)
        if sym is None or inst is None or item.con_id != inst.con_id:
            return
        if inst.tick_size > 0 and item.ask > item.bid:
            sym.health.on_spread((item.ask - item.bid) / inst.tick_size)
        await self.core.handle(
            [Quote(item.symbol, item.bid, item.bid_size, item.ask, item.ask_size, 0)]
        )

    async def _notice(self, item: LinkNotice) -> None:
        code = item.code
        if code in LINK_DOWN:
            if not self.market_down:
                self.market_down, self.streaming = True, False
                self.core.connection_lost()
            self.log.warning("ibkr_market_link_down", code=code, message=item.message)
        elif code in LINK_UP:
            if code == 1101:
                await self.link.subscribe(list(self.instruments.values()))  # TWS dropped them all
            if self.market_down:
                self.market_down, self.streaming = False, not self.lost.is_set()
                self.core.connection_back()
            self.log.info("ibkr_market_link_back", code=code, resubscribed=code == 1101)
        elif code == 162 and "pacing violation" in item.message:
            # Our budget kept to IB's rules, so another client of this TWS spent them: hold off.
            self.link.pacing.refused(trio.current_time(), PACING_HOLD_S)
            self.log.warning(
                "ibkr_history_pacing_violation",
                message=item.message,
                req_id=item.req_id,
                hold_s=PACING_HOLD_S,
            )
        elif code == 326:
            raise ConfigError(
                f"config.feed.ib_client_id: {self.settings.ib_client_id} is in use by another "
                "connection to TWS (error 326); give the feed its own client id"
            )
        elif code == 354:
            raise AuthError(
                f"IBKR: this account has no market data subscription for the feed's contracts "
                f"(error 354: {item.message})"
            )
        elif code not in QUIET_CODES:
            self.log.warning("ibkr_notice", code=code, message=item.message, req_id=item.req_id)

    # -- the bar clock and backfill ----------------------------------------------------------
    async def tick(self, beat: Callable[[], None]) -> None:
        """Close minutes IB has not sent in time (they are then fetched), publish health, beat."""
        next_health = trio.current_time()
        while True:
            now_ms = self.core.venue_now_ms()
            if self.streaming and now_ms is not None:
                await self._roll_if_due()
                await self._advance(now_ms - ADVANCE_LAG_MS)
            now = trio.current_time()
            if now >= next_health:
                self.core.publish_health()
                beat()
                next_health = now + self.settings.health_interval_s
            await trio.sleep(min(0.25, self.settings.health_interval_s))

    async def _advance(self, cutoff_ms: int) -> None:
        for sym in self.core.symbols.values():
            inst = self.instruments.get(sym.symbol)
            if inst is not None and inst.trading_at(cutoff_ms) is False:
                continue  # the market is shut: no bars are due
            async with self.core.lock:
                await self.core.emit_step(sym, sym.bars.advance(cutoff_ms))

    async def backfill(self, gap: GapRequest) -> list[Bar] | None:
        inst = self.instruments.get(gap.symbol)
        if inst is None or not self.link.connected:
            raise NetworkError(
                "IBKR feed: not connected to TWS; the stretch is asked for again later"
            )
        fetched = await self.link.history(
            inst, gap.start_ms, gap.end_ms, self.settings.backfill_timeout_s
        )
        shut = with_shut_minutes(
            fetched, gap, inst.trading_at, self.core.symbols[gap.symbol].bars.last_close
        )
        if len(shut) > len(fetched):
            self.log.info(
                "market_shut_minutes",
                symbol=gap.symbol,
                start_ms=gap.start_ms,
                end_ms=gap.end_ms,
                minutes=len(shut) - len(fetched),
            )
        return shut


def with_shut_minutes(
    fetched: list[Bar],
    gap: GapRequest,
    trading_at: Callable[[int], bool | None],
    last_close: float | None,
) -> list[Bar]:
    """History's bars, plus a flat zero-volume bar for each minute the contract's trading hours say
    the market was shut (the daily maintenance break, a weekend, a holiday: `trading_at`, IB's
    hours or the exchange calendar past them): nothing traded, so nothing is missing, and the
    stretch is whole. A minute whose hours are unknown stays missing."""
    step = 60_000
    have = {b.ts_open: b for b in fetched}
    out: list[Bar] = []
    close = last_close
    for ts in range(gap.start_ms, gap.end_ms, step):
        bar = have.get(ts)
        if (
            bar is None
            and close is not None
            and trading_at(ts) is False
            and trading_at(ts + step - 1) is False
        ):
            bar = Bar(gap.symbol, gap.timeframe, ts, close, close, close, close, 0.0)
        if bar is not None:
            out.append(bar)
            close = bar.close
    return out


async def run_ibkr(
    settings: FeedSettings, out: FeedOutput, beat: Callable[[], None], log: Any, state: FeedState
) -> None:
    resumed = state.adopt(settings)
    link = IBFeedLink(ib_settings(settings))
    symbols = list(settings.symbols)
    feed: IBKRFeed | None = None

    async def backfill(gap: GapRequest) -> list[Bar] | None:
        assert feed is not None
        return await feed.backfill(gap)

    core = FeedCore(settings, symbols, out, log, backfill=backfill, state=state)
    feed = IBKRFeed(settings, core, link, log)
    if resumed:
        core.connection_lost()  # the last run's connection died with it
    log.info(
        "feed_started",
        venue="ibkr",
        host=settings.ib_host,
        port=settings.ib_port,
        client_id=settings.ib_client_id,
        symbols=symbols,
        timeframes=list(settings.timeframes),
        run=state.runs,
        resumed=resumed,
        consumer_covered_until_ms=dict(settings.resume_after_ms),
    )
    push, items = trio.open_memory_channel[LinkItem](LINK_BUFFER)
    try:
        async with feed_nursery() as nursery:
            nursery.start_soon(out.pump)
            nursery.start_soon(feed.consume, items)
            nursery.start_soon(feed.tick, beat)
            nursery.start_soon(_refill, core)
            await feed.connections(push, resumed)
    finally:
        items.close()  # an IB thread waiting to hand something over is let go
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(link.close)
