"""Replays: recorded candles (resumable) and recorded Binance WS captures."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import trio

from fractald.core.candles import Candles
from fractald.core.models import timeframe_ms
from fractald.datasets import BUNDLED_SYMBOL
from fractald.venues import binance, replay
from fractald.venues.feed_core import FeedCore
from fractald.venues.feed_output import FeedOutput, feed_nursery
from fractald.venues.feed_settings import FeedSettings
from fractald.venues.replay_progress import ReplayProgress


def _resume_point(candles: Candles, settings: FeedSettings, symbol: str, log: Any) -> Candles:
    covered = dict(settings.resume_after_ms).get(symbol)
    if covered is None:
        return candles
    widest = max(timeframe_ms(tf) for tf in settings.timeframes)
    start = covered // widest * widest
    rest = candles.between(start, None)
    log.info(
        "replay_resumed",
        symbol=symbol,
        covered_until_ms=covered,
        restart_at_ms=start,
        candles_skipped=len(candles) - len(rest),
    )
    return rest


def _candles(settings: FeedSettings, symbol: str, log: Any) -> Candles:
    """The replay's candles as columns: a catalog's range, a file, or the bundled month."""
    if settings.replay_catalog is not None:
        from fractald.research.catalog import Catalog

        assert settings.replay_from_ms is not None  # FeedSettings checks it
        return Catalog(settings.replay_catalog).load_columns(
            settings.replay_catalog_venue,
            symbol,
            settings.replay_from_ms,
            settings.replay_to_ms if settings.replay_to_ms is not None else 2**62,
        )
    return (
        replay.bundled_candle_columns(symbol)
        if settings.replay_path is None
        else replay.load_checked_candles(settings.replay_path, symbol, settings.replay_repair, log)
    )


async def replay_candles(
    settings: FeedSettings,
    out: FeedOutput,
    beat: Callable[[], None],
    log: Any,
    progress: ReplayProgress | None = None,
) -> None:
    symbol = (
        settings.symbols[0]
        if settings.symbols
        else (BUNDLED_SYMBOL if settings.replay_path is None else Path(settings.replay_path).stem)
    )
    candles = _candles(settings, symbol, log)
    base_tf = candles[0].timeframe
    candles = _resume_point(candles, settings, symbol, log)
    skipped = [tf for tf in settings.timeframes if timeframe_ms(tf) < timeframe_ms(base_tf)]
    if skipped:
        log.warning("replay_timeframes_below_data", skipped=skipped, data_timeframe=base_tf)
    stale_after_s = settings.stale_after_s
    if settings.replay_speed > 0:
        # Candles arrive one per bar: silence between two of them is not staleness.
        stale_after_s = max(stale_after_s, 3 * timeframe_ms(base_tf) / 1000 / settings.replay_speed)
    core = FeedCore(
        attrs.evolve(settings, book=False, stale_after_s=stale_after_s),
        [symbol],
        out,
        log,
        base_tf=base_tf,
    )
    sym = core.symbols[symbol]
    source = (
        f"catalog {settings.replay_catalog} {settings.replay_catalog_venue}"
        if settings.replay_catalog
        else settings.replay_path or "bundled"
    )
    log.info(
        "replay_started",
        path=source,
        symbol=symbol,
        candles=len(candles),
        timeframe=base_tf,
        speed=settings.replay_speed,
    )
    progress = progress or ReplayProgress()
    progress.start(
        settings.replay_path or "bundled",
        len(candles),
        candles[0].ts_event if candles else None,
        candles[-1].ts_event if candles else None,
        trio.current_time(),
    )
    next_beat = trio.current_time()
    async with feed_nursery() as nursery:
        nursery.start_soon(out.pump)
        async for bar in replay.paced(candles, lambda b: b.ts_event, settings.replay_speed):
            now = trio.current_time()
            progress.advance(bar.ts_event, now)
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
    progress.finish(trio.current_time())
    log.info(
        "replay finished",
        symbol=symbol,
        bars_in=len(candles),
        sent=out.sent,
        duplicates=sym.bars.duplicate_bars,
        unfilled=sym.bars.bars_unfilled,
    )


async def replay_capture(
    settings: FeedSettings,
    out: FeedOutput,
    beat: Callable[[], None],
    log: Any,
    progress: ReplayProgress | None = None,
) -> None:
    """A recorded Binance WS capture through the same codec and core as a live feed (no REST)."""
    assert settings.replay_path is not None
    url, lines = replay.read_capture(settings.replay_path)
    futures = "fstream" in url or "dstream" in url
    symbols = [s.upper() for s in settings.symbols] or sorted(
        {
            stream.split("@")[0].upper()
            for stream in url.split("streams=")[-1].split("/")
            if "@" in stream
        }
    )
    core = FeedCore(attrs.evolve(settings, book=False), symbols, out, log, futures=futures)
    log.info(
        "replay_started",
        path=settings.replay_path,
        symbols=symbols,
        messages=len(lines),
        speed=settings.replay_speed,
    )
    progress = progress or ReplayProgress()
    progress.start(
        str(settings.replay_path),
        len(lines),
        int(lines[0].received_s * 1000) if lines else None,
        int(lines[-1].received_s * 1000) if lines else None,
        trio.current_time(),
        unit="messages",
    )
    next_beat = trio.current_time()
    async with feed_nursery() as nursery:
        nursery.start_soon(out.pump)
        async for line in replay.paced(
            lines, lambda c: int(c.received_s * 1000), settings.replay_speed
        ):
            progress.advance(int(line.received_s * 1000), trio.current_time())
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
    progress.finish(trio.current_time())
    log.info("replay finished", symbols=symbols, sent=out.sent)
