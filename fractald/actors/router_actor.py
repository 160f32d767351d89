"""The router actor: the daemon's shell around `fractald.actors.router.Router` for the configured venue.

It lives under the supervisor next to trading and follows trading's
recoveries. For each recovered trading session (a `generation`) it opens
the venue, builds a Router whose memory of fills comes from the ledger,
and runs its recovery: every intent without an outcome is resolved by
asking the venue, and intents recorded but never claimed (the crash window
between trading's commit and the router's claim) are sent. Only then does
trading let the feeds start. Afterwards it sends what trading commits
(commands in) and passes the venue's reports back (reports out).

The Router runs with `record_outcomes=False`: trading applies each report
through the engine and commits the events and the intent's outcome in one
transaction, so a crash can never leave an order ended in the outbox whose
fill the ledger never got.

A transient venue failure restarts this actor (the supervisor's backoff
and budget), which recovers again by asking the venue; commands queued
meanwhile wait in the channel. A refused key is an AuthError: exit 77.
A restart of trading drops its session, and with it this life of the
router: the next life recovers against the next session.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import trio

from fractald.actors.router import Command, Router, RouterSettings
from fractald.actors.supervisor import ActorContext
from fractald.clock import wall_ms
from fractald.core.execution.reports import VenueReport
from fractald.routing.journal import recorded_fills
from fractald.venues.factory import open_venue

if TYPE_CHECKING:
    from fractald.actors.events import EventBus
    from fractald.shell_deps import LedgerSource, LiveConfig

# Orders and reports are never dropped: a full channel holds the sender back.
COMMAND_BUFFER = 10_000
REPORT_BUFFER = 10_000


class RouterActor:
    def __init__(
        self,
        config: LiveConfig,
        ledgers: LedgerSource,
        bus: EventBus,
        settings: RouterSettings | None = None,
    ) -> None:
        self.config = config
        self.ledgers = ledgers
        self.bus = bus
        self.settings = settings or RouterSettings()
        self.commands_send, self._commands = trio.open_memory_channel[Command](COMMAND_BUFFER)
        self.reports_send, self.reports_receive = trio.open_memory_channel[VenueReport](
            REPORT_BUFFER
        )
        self.session_generation = 0  # the trading session this router serves (0: none yet)
        self.recovered_generation = 0  # the session whose intents are all resolved
        self.router: Router | None = None
        self._wake = trio.Event()

    # -- what trading tells it, and waits for ---------------------------------------------------

    def _poke(self) -> None:
        self._wake, woken = trio.Event(), self._wake
        woken.set()

    def session_recovered(self, generation: int) -> None:
        self.session_generation = generation
        self._poke()

    def session_lost(self) -> None:
        """Trading is recovering afresh: this life of the router ends, the next recovers again."""
        self.session_generation = 0
        self._poke()

    async def _wait_until(self, ctx: ActorContext, done: Any) -> None:
        while not done():
            ctx.beat()
            with trio.move_on_after(ctx.beat_interval_s):
                await self._wake.wait()

    async def wait_recovered(self, ctx: ActorContext, generation: int) -> None:
        """Until every intent of session `generation` is resolved at the venue (ctx: the waiter's)."""
        await self._wait_until(ctx, lambda: self.recovered_generation == generation)

    def status(self) -> dict[str, Any]:
        r = self.router
        return {
            "venue": self.config.current.broker.kind,
            "network": self.config.current.broker.network,
            "recovered": self.recovered_generation == self.session_generation != 0,
            "unresolved": 0 if r is None else len(r.unresolved),
            "sent": 0 if r is None else len(r.sent),
        }

    # -- the actor ----------------------------------------------------------------------------

    async def run(self, ctx: ActorContext) -> None:
        while True:
            await self._wait_until(ctx, lambda: self.session_generation != 0)
            await self._life(ctx, self.session_generation)

    async def _life(self, ctx: ActorContext, generation: int) -> None:
        ledger = self.ledgers.ledger
        assert ledger is not None
        async with open_venue(self.config.current, os.environ, ctx.log) as venue:
            seen = await ledger.run(lambda led: set(recorded_fills(led)))
            router = self.router = Router(
                venue,
                ledger,
                self.reports_send,
                clock_ms=wall_ms,
                settings=self.settings,
                seen_trade_ids=seen,
                log=ctx.log,
                on_alarm=self._alarm,
                record_outcomes=False,
            )
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._beat, ctx)
                await nursery.start(router.run, self._commands.clone())
                ctx.log.info(
                    "router_recovered",
                    venue=venue.name,
                    generation=generation,
                    sent=len(router.sent),
                    unresolved=len(router.unresolved),
                )
                self.recovered_generation = generation
                self._poke()
                await self._wait_until(ctx, lambda: self.session_generation != generation)
                nursery.cancel_scope.cancel()
        ctx.log.info("router_life_ended", generation=generation)

    async def _beat(self, ctx: ActorContext) -> None:
        while True:
            await ctx.sleep(3600)

    def _alarm(self, code: str, detail: dict[str, Any]) -> None:
        self.bus.publish("router_alarm", {"code": code, **detail})
