"""The market_data actor: runs the venue feed and hands its events to the trading actor.

It waits for the trading state to be recovered before starting the feed;
bars the recovered state already covers are skipped by the session (a
replay restarts from its first candle: a "resume after ts" option in the
feed would spare re-reading them). When the trading actor recovers
afresh (it restarted after an error), the feed is restarted too and
announces itself with `FeedStart(generation)`, so nothing between the
recovered cursor and the old feed's position is skipped. The feeds gate
passes only on real market data (a trade, a quote or a bar) from every
configured symbol, or when a replay has nothing left to send: health
figures and acks prove nothing about the market.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs
import trio

from fractald.actors.supervisor import ActorContext
from fractald.core.models import Bar, FeedHealth, Quote, TradeTick
from fractald.venues.replay_progress import ReplayProgress

if TYPE_CHECKING:
    from fractald.actors.events import EventBus
    from fractald.actors.trading import TradingActor
    from fractald.shell_deps import LiveConfig

FORWARD_BUFFER = 256
NO_DATA_LOG_EVERY_S = 5.0
FORWARD_BATCH = 256  # events per hop to trading at most (the lock is held per batch: ~9 ms at most)


class MarketDataActor:
    def __init__(
        self,
        config: LiveConfig,
        trading: TradingActor,
        downstream: trio.MemorySendChannel[Any],
        bus: EventBus,
    ) -> None:
        self.config = config
        # Read, never driven: where the committed state ends (the resume cursor) and each
        # recovery (`generation`), after which the feed starts over.
        self.trading = trading
        self.bus = bus
        self.downstream = downstream
        self.health: dict[str, FeedHealth] = {}
        self.replay_finished = False
        self.replay_progress = ReplayProgress()  # advanced by a replay feed; read by status
        self.events_forwarded = 0
        # A live feed's bar pipelines survive restarts of this actor (the missed stretch is
        # refetched); a new recovery of the trading state starts them afresh.
        self.feed_state: Any = None
        self._state_generation: int | None = None
        self.symbols_with_data: set[str] | None = set()  # None once the feeds gate has passed
        self.gate_symbols: set[str] = set()
        self._health_at: dict[str, float] = {}  # when each symbol's last FeedHealth came
        self._no_data_logged_at = -1e9

    def health_dicts(self) -> dict[str, dict[str, Any]]:
        # How far this host's clock runs ahead of the venue's (None: no venue time seen yet).
        skew = getattr(self.feed_state, "clock_skew_ms", None)
        ahead = None if skew is None else round(skew)
        out = {}
        for symbol, h in self.health.items():
            figures = {
                **attrs.asdict(h),
                "local_clock_ahead_ms": ahead,
                "ended": self.replay_finished,
            }
            if self.replay_finished:
                # Nothing comes any more: the age keeps growing rather than freeze at its last value.
                figures["last_message_age_s"] = (
                    h.last_message_age_s + trio.current_time() - self._health_at[symbol]
                )
            out[symbol] = figures
        return out

    def replay_status(self) -> dict[str, Any] | None:
        """How far the replay has got (None: a live feed, or no replay started yet)."""
        if self.config.current.feed.venue != "replay" or not self.replay_progress.active:
            return None
        return self.replay_progress.view()

    def feed_settings(self) -> Any:
        from fractald.venues.feed import FeedSettings

        f = self.config.current.feed
        return FeedSettings(
            venue=f.venue,
            symbols=tuple(f.symbols),
            timeframes=tuple(f.timeframes),
            ws_url=f.ws_url or None,
            rest_url=f.rest_url or None,
            replay_path=f.replay_path or None,
            replay_speed=f.replay_speed,
            replay_repair=f.replay_repair,
            stale_after_s=f.stale_after_s,
            silence_timeout_s=f.silence_timeout_s,
            grace_s=f.late_grace_s,
            history_bars=f.history_bars,
            book=f.book,
            max_frame_bytes=f.max_frame_bytes,
            backoff_base_s=f.reconnect_backoff_base_s,
            backoff_cap_s=f.reconnect_backoff_cap_s,
            max_failures=f.max_failures,
            health_interval_s=f.health_interval_s,
            backfill_timeout_s=f.backfill_timeout_s,
            resume_after_ms=self.trading.resume_after_ms(),
            **self._replay_catalog(f),
            ib_host=f.ib_host,
            ib_port=f.ib_port,
            ib_client_id=f.ib_client_id,
            ib_exchange=f.ib_exchange,
            ib_roll_days=f.ib_roll_days,
            ib_calendar=f.ib_calendar,
            quality_spread_factor=f.quality_spread_factor,
            quality_outside_rth_factor=f.quality_outside_rth_factor,
        )

    @staticmethod
    def _replay_catalog(f: Any) -> dict[str, Any]:
        """[feed] replay_catalog and its range, when the replay reads a catalog (check-config vetted them)."""
        if not f.replay_catalog:
            return {}
        from fractald.config import replay_time_ms

        return {
            "replay_catalog": f.replay_catalog,
            "replay_catalog_venue": f.replay_catalog_venue,
            "replay_from_ms": replay_time_ms(f.replay_from),
            "replay_to_ms": replay_time_ms(f.replay_to),
        }

    async def run(self, ctx: ActorContext) -> None:
        """One feed per recovery of the trading state; a re-recovery restarts the feed."""
        trading = self.trading
        while True:
            while (
                not trading.recovered.is_set()
            ):  # beating: with a venue, recovery asks the venue first
                ctx.beat()
                with trio.move_on_after(ctx.beat_interval_s):
                    await trading.recovered.wait()
            generation, changed = trading.generation, trading.generation_changed
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._feed_once, ctx, generation)
                await changed.wait()  # the trading actor recovered afresh: start over
                nursery.cancel_scope.cancel()
            ctx.log.info("feed_restarting", after_generation=generation)

    def _feed_state(self, generation: int) -> Any:
        from fractald.venues.feed import FeedState

        if self.feed_state is None or self._state_generation != generation:
            self.feed_state, self._state_generation = FeedState(), generation
        return self.feed_state

    async def _feed_once(self, ctx: ActorContext, generation: int) -> None:
        from fractald.actors.trading import FeedEnd, FeedStart
        from fractald.venues.feed import run_feed

        self.replay_finished = False
        send, receive = trio.open_memory_channel[Any](FORWARD_BUFFER)
        await self.downstream.send(FeedStart(generation))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._forward, ctx, receive)
            async with send:
                await run_feed(
                    self.feed_settings(),
                    send,
                    ctx.beat,
                    ctx.log,
                    self._feed_state(generation),
                    self.replay_progress,
                )
            # A replay that ended (or had nothing left after a resume) still counts as started.
        await self.downstream.send(FeedEnd(generation))
        self.replay_finished = True
        ctx.pass_gate("feeds")
        ctx.log.info("feed_finished", forwarded=self.events_forwarded, generation=generation)
        self.bus.publish("replay_finished", {"forwarded": self.events_forwarded})
        await _idle(ctx)

    def venue_wait_until(self) -> float:
        """Trio time until which the venue asked the feed to wait (429/418); 0 when it never did."""
        return self.feed_state.venue_wait_until if self.feed_state is not None else 0.0

    def symbols_expected(self) -> int:
        """How many symbols must have sent market data before the feeds gate passes."""
        f = self.config.current.feed
        return 1 if f.venue == "replay" else len({s.upper() for s in f.symbols})

    def _saw(self, ctx: ActorContext, event: Any) -> None:
        seen = self.symbols_with_data
        if seen is None:
            return
        if isinstance(event, (TradeTick, Quote, Bar)):
            if event.symbol not in seen:
                seen.add(event.symbol)
                ctx.log.info("feed_first_data", symbol=event.symbol, kind=type(event).__name__)
                if len(seen) >= self.symbols_expected():
                    ctx.pass_gate("feeds")
                    self.gate_symbols, self.symbols_with_data = seen, None
        elif isinstance(event, FeedHealth):
            now = trio.current_time()
            if now - self._no_data_logged_at >= NO_DATA_LOG_EVERY_S:
                self._no_data_logged_at = now
                ctx.log.warning(
                    "feed_no_data_yet",
                    waiting_for=sorted(set(self.health) - seen),
                    have=sorted(seen),
                )

    async def _forward(self, ctx: ActorContext, receive: trio.MemoryReceiveChannel[Any]) -> None:
        """Feed events to trading, batched: what is ready now crosses in one hop (a fast replay)."""
        from fractald.actors.trading import MarketBatch

        async with receive:
            async for event in receive:
                batch = [event]
                while len(batch) < FORWARD_BATCH:
                    try:
                        batch.append(receive.receive_nowait())
                    except (trio.WouldBlock, trio.EndOfChannel):
                        break
                for item in batch:
                    self._take(ctx, item)
                await self.downstream.send(MarketBatch(tuple(batch)) if len(batch) > 1 else event)
                self.events_forwarded += len(batch)
                ctx.beat()

    def _take(self, ctx: ActorContext, event: Any) -> None:
        if type(event) is FeedHealth:
            self.health[event.symbol] = event
            self._health_at[event.symbol] = trio.current_time()
        self._saw(ctx, event)


async def _idle(ctx: ActorContext) -> None:
    while True:
        await ctx.sleep(3600)
