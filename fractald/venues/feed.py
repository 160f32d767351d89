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

The pieces live beside it: feed_settings (FeedSettings, VenueName),
feed_output (the bounded output), feed_core (per-symbol state, FeedState,
FeedCore), feed_live (venue loop, backfill, book snapshots) and feed_replay
(candle and capture replay).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import trio

from fractald.errors import FeedDisconnected
from fractald.venues import replay
from fractald.venues.feed_core import FeedCore, FeedState
from fractald.venues.feed_live import run_live
from fractald.venues.feed_output import FeedOutput
from fractald.venues.feed_replay import replay_candles, replay_capture
from fractald.venues.feed_settings import DEFAULT_TIMEFRAMES, FeedSettings, VenueName
from fractald.venues.replay_progress import ReplayProgress

__all__ = [
    "DEFAULT_TIMEFRAMES",
    "FeedCore",
    "FeedOutput",
    "FeedSettings",
    "FeedState",
    "VenueName",
    "run_feed",
]


async def run_feed(
    settings: FeedSettings,
    send: trio.MemorySendChannel[Any],
    beat: Callable[[], None],
    log: Any,
    state: FeedState | None = None,
    progress: ReplayProgress | None = None,
) -> None:
    """Run the market data feed described by `settings` until cancelled (or a replay ends).

    Pass the same `state` to every restart of a live feed so that its bars
    carry on without a hole (see FeedState). A replay advances `progress`.
    """
    out = FeedOutput(send)
    try:
        if settings.venue is VenueName.IBKR:
            from fractald.venues.feed_ibkr import run_ibkr

            await run_ibkr(settings, out, beat, log, state or FeedState())
        elif settings.venue is not VenueName.REPLAY:
            await run_live(settings, out, beat, log, state or FeedState())
        elif settings.replay_path is not None and replay.is_capture(settings.replay_path):
            await replay_capture(settings, out, beat, log, progress)
        else:
            await replay_candles(settings, out, beat, log, progress)
    except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
        # The consumer went away: nothing to feed; let the supervisor decide.
        raise FeedDisconnected(f"output channel closed: {exc}") from exc
