"""The trading actor: drives the pure pipeline (strategies, risk, orders, paper fills, accounting).

Signals, risk and order routing share one actor on purpose: they must see
every bar, signal and fill in exactly the order the backtester does, so a
daemon replay and a backtest of the same candles make the same trades.
Split across actors, a decision would depend on task scheduling.

Crash-only: the events the bars of one feed batch produce are committed to
the ledger together (with the candles detection read) before the next batch
is read (with a venue broker, each bar's before the next bar); a
JSON snapshot of the trading state goes with it every SNAPSHOT_EVERY_BARS
bars, on a timer, after anything not caused by a bar, and at shutdown.
Start-up restores the latest good snapshot, the feed resumes at its
cursor, and the bars after it remake exactly the events the log holds
(checked, not committed again: `TradingSession._remade`), so nothing is
sent twice or forgotten. A restart of
this actor inside a running daemon (after a transient error) takes the
very same path: it recovers from the ledger (what it held in memory is
dropped), reconciles, bumps `generation`, and the market_data actor
restarts its feed so the bars after the recovered cursor come again.
"""

from __future__ import annotations

import collections
from typing import TYPE_CHECKING, Any

import attrs
import trio

from fractald.actors.supervisor import ActorContext
from fractald.core.bars import BarCorrection
from fractald.core.continuous import ContractRolled
from fractald.core.models import Bar, FeedHealth, Quote, TradeTick
from fractald.session import TradingSession

if TYPE_CHECKING:
    from fractald.actors.events import EventBus
    from fractald.actors.router_actor import RouterActor
    from fractald.config import Config
    from fractald.core.execution.reports import VenueReport
    from fractald.shell_deps import LedgerSource, LiveConfig

MARKET_BUFFER = 1024  # bars and trades are never dropped: a full buffer holds the feed back


@attrs.frozen
class FeedStart:
    """Sent first by a feed started for recovery `generation`: what precedes it is stale."""

    generation: int


@attrs.frozen
class MarketBatch:
    """Market events the feed had ready at once, crossing the channel together (one hop, one lock)."""

    events: tuple[Any, ...]


@attrs.frozen
class FeedEnd:
    """Sent by a feed that has nothing more to send (a finished replay), after its last event."""

    generation: int


class TradingActor:
    def __init__(self, config: LiveConfig, ledgers: LedgerSource, bus: EventBus) -> None:
        self.config = config
        self.ledgers = ledgers  # the store actor: the ledger is open once the store gate passed
        self.bus = bus
        self.market_send, self.market_receive = trio.open_memory_channel[Any](MARKET_BUFFER)
        self.accepting = True
        self.session: TradingSession | None = None
        self.recovered = trio.Event()
        # Each (re)start of this actor recovers afresh: generation counts them, and
        # `generation_changed` is set (then replaced) so the feed restarts after the cursor.
        self.generation = 0
        self.generation_changed = trio.Event()
        self.reconcile_every_s = config.current.daemon.reconcile_interval_s
        self._lock = trio.Lock()  # market events and reconciliation never interleave
        self.stopped = False  # set by the final snapshot
        # With a venue broker: the router actor (the daemon sets it) and the venue reports that
        # wait for the session to catch up with its log before the engine takes them.
        self.router: RouterActor | None = None
        self._held_reports: collections.deque[VenueReport] = collections.deque()
        self._cancels_swept = False

    # -- for other actors and the control socket ------------------------------------------
    def resume_after_ms(self) -> dict[str, int]:
        """Per symbol, the open time of the last 1m bar the committed state covers."""
        if self.session is None:
            return {}
        return {
            key.split("/")[0]: ts for key, ts in self.session.cursor.items() if key.endswith("/1m")
        }

    def summary_line(self) -> str:
        return "recovering" if self.session is None else self.session.summary_line()

    def status(self) -> dict[str, Any]:
        if self.session is None:
            return {"state": "recovering"}
        return {**self.session.status(), "accepting": self.accepts_entries()}

    def accepts_entries(self) -> bool:
        """`accepting` as operators see it: this run's flag AND the engine's persisted state.

        The flag alone lives in memory: after a restart it said yes while the
        engine was still paused or HALTED from before the restart.
        """
        from fractald.core.risk.breakers import TradingState

        engine = getattr(getattr(self.session, "pipeline", None), "engine", None)
        if engine is None:
            return self.accepting
        return self.accepting and not engine.paused and engine.state is TradingState.ACTIVE

    def apply_config(self, config: Config) -> None:
        if self.session is not None:
            self.session.apply_config(config)

    # -- the actor ------------------------------------------------------------------------
    async def run(self, ctx: ActorContext) -> None:
        """Start-up and restart are one path: recover from the ledger, reconcile, trade."""
        await ctx.wait_gate("store")
        ledger = self.ledgers.ledger
        assert ledger is not None
        self.session = None
        if self.router is not None:
            self.router.session_lost()
            self._held_reports.clear()  # not applied, not committed: the venue is asked again
            self._cancels_swept = False
        if self.recovered.is_set():  # a restart: others wait for this recovery, not the last
            self.recovered = trio.Event()
        self.session = await TradingSession.recover(self.config.current, ledger, ctx.log, self.bus)
        await self.session.reconcile("start")
        self.generation += 1
        generation = self.generation
        stale = self._drain_stale() if generation > 1 else 0
        async with trio.open_nursery() as nursery:
            if self.router is not None:  # the venue resolves every open intent before any feed
                await self._recover_at_venue(ctx, nursery, generation)
            self.recovered.set()
            changed, self.generation_changed = self.generation_changed, trio.Event()
            changed.set()
            ctx.log.info("trading_recovered", generation=generation, stale_events_dropped=stale)
            ctx.pass_gate("reconcile")
            nursery.start_soon(self._reconcile_periodically, ctx)
            nursery.start_soon(self._snapshot_periodically, ctx)
            await ctx.wait_gate("feeds")
            ctx.pass_gate("trading")
            # After a restart, what the old feed had buffered is stale: wait for the new one.
            waiting_for_feed = generation > 1
            while True:
                event = await ctx.receive(self.market_receive)
                if isinstance(event, FeedStart):
                    waiting_for_feed = waiting_for_feed and event.generation != generation
                    continue
                if isinstance(event, FeedEnd):
                    if not waiting_for_feed:
                        self._caught_up(ctx)
                    continue
                if not waiting_for_feed:
                    async with self._lock:
                        items = event.events if isinstance(event, MarketBatch) else (event,)
                        await self._on_market_items(items)
                        if self.router is not None:
                            await self._venue_work()

    # -- a venue broker: orders out through the router, reports in through the engine ----------
    async def _recover_at_venue(
        self, ctx: ActorContext, nursery: trio.Nursery, generation: int
    ) -> None:
        router = self.router
        session = self.session
        assert router is not None and session is not None
        session.after_commit = self._route
        session.venue_positions = self._venue_positions
        session.venue_snapshot = self._venue_snapshot
        nursery.start_soon(self._take_reports, ctx)
        router.session_recovered(generation)
        await router.wait_recovered(ctx, generation)
        async with self._lock:
            await self._venue_work()
            # The router settled our own open orders; this compares the rest (positions, money,
            # orders nobody here placed) before any feed (nothing, if still catching up).
            await session.reconcile("start")

    async def _route(self, events: list[Any]) -> None:
        """Committed orders and cancels go to the router, in the order the engine made them."""
        from fractald.actors.router import Cancel, Submit
        from fractald.core.execution.events import CancelRequested, OrderIntent

        router = self.router
        if router is None:
            return
        orders = getattr(self.session.engine if self.session else None, "orders", {})
        for event in events:
            if isinstance(event, OrderIntent):
                await router.commands_send.send(Submit(event))
            elif isinstance(event, CancelRequested):
                order = orders.get(event.client_order_id)
                await router.commands_send.send(
                    Cancel(event.client_order_id, order.symbol if order is not None else "")
                )

    async def _venue_positions(self) -> dict[str, float] | None:
        """The venue's net positions, when nothing is on its way between us (else None: ask later)."""
        from fractald.errors import FractalError

        router = self.router.router if self.router is not None else None
        if router is None or not self._venue_quiet():
            return None
        try:
            return await router.venue.positions()
        except FractalError as exc:  # the venue is away now: the next reconciliation asks again
            if self.session is not None:
                self.session.log.warning("reconcile_venue_unavailable", error=exc.code)
            return None

    async def _venue_snapshot(self, working: dict[str, str], fills_since_ms: int) -> Any:
        """What reconciliation compares (`fractald.routing.snapshot`), when nothing is in flight."""
        from fractald.clock import wall_ms
        from fractald.errors import FractalError
        from fractald.routing.snapshot import take_snapshot

        router = self.router.router if self.router is not None else None
        if router is None or not self._venue_quiet():
            return None
        try:
            return await take_snapshot(router.venue, working, fills_since_ms, wall_ms())
        except FractalError as exc:  # the venue is away now: the next reconciliation asks again
            if self.session is not None:
                self.session.log.warning("reconcile_venue_unavailable", error=exc.code)
            return None

    def _venue_quiet(self) -> bool:
        """Nothing on its way between us and the venue (else its answers race our books)."""
        actor = self.router
        router = actor.router if actor is not None else None
        return not (
            actor is None
            or router is None
            or actor.recovered_generation != self.generation
            or router.unresolved
            or router.in_flight > 0
            or self._held_reports
            or actor.commands_send.statistics().current_buffer_used
            or actor.reports_receive.statistics().current_buffer_used
        )

    async def _take_reports(self, ctx: ActorContext) -> None:
        router = self.router
        assert router is not None
        while True:
            report = await ctx.receive(router.reports_receive)
            async with self._lock:
                self._held_reports.append(report)
                await self._venue_work()

    async def _venue_work(self) -> None:
        """Once the session has caught up with its log: held reports in, then unsent cancels out."""
        session = self.session
        if session is None or session.catching_up or self.stopped:
            return
        while self._held_reports:
            await self._apply_report(self._held_reports.popleft())
        if not self._cancels_swept:
            self._cancels_swept = True
            await self._resend_cancels()

    async def _apply_report(self, report: VenueReport) -> None:
        """One venue report through the engine; its events and the intent's outcome in one commit."""
        from fractald.core.execution.orders import OrderEvent

        session = self.session
        assert session is not None
        engine = session.engine
        order = engine.orders.get(report.client_order_id)
        if (
            order is not None
            and report.kind not in (OrderEvent.FILL, OrderEvent.PARTIAL_FILL)
            and order.next_status(report.kind) is None
            and (order.status.terminal or report.kind in (OrderEvent.ACCEPT, OrderEvent.TRIGGER))
        ):
            # The venue restating what the engine knows: recovery asks about open orders, and a
            # cancel is confirmed by its reply and again by the stream.
            return
        on_report = getattr(session.pipeline, "on_venue_report", None)
        events = list(
            on_report(report) if on_report is not None else engine.on_venue_report(report)
        )
        if events:
            await session.commit(events, ts_event=max(0, int(report.ts)))
            session.announce(events)

    async def _resend_cancels(self) -> None:
        """Cancels committed before a crash but maybe never sent: asked again (a repeat is refused)."""
        from fractald.core.execution.orders import OrderStatus

        engine = self.session.engine if self.session is not None else None
        pending = [
            o
            for o in getattr(engine, "orders", {}).values()
            if o.status is OrderStatus.PENDING_CANCEL
        ]
        if pending and self.router is not None:
            from fractald.actors.router import Cancel

            for order in pending:
                await self.router.commands_send.send(Cancel(order.client_order_id, order.symbol))

    def _caught_up(self, ctx: ActorContext) -> None:
        """Every event of a finished feed is processed (and committed, if it made events)."""
        session = self.session
        assert session is not None
        session.feed_ended()
        ctx.log.info(
            "trading_caught_up", bars_processed=session.bars_processed, cursor=session.cursor
        )
        self.bus.publish("trading_caught_up", {"bars_processed": session.bars_processed})

    def _drain_stale(self) -> int:
        dropped = 0
        while True:
            try:
                self.market_receive.receive_nowait()
            except trio.WouldBlock:
                return dropped
            dropped += 1

    async def _reconcile_periodically(self, ctx: ActorContext) -> None:
        while True:
            await ctx.sleep(self.reconcile_every_s)
            async with self._lock:
                if self.session is not None:
                    await self.session.reconcile("periodic")

    async def _snapshot_periodically(self, ctx: ActorContext) -> None:
        """Bars commit their events without a snapshot in between: one every snapshot_interval_s."""
        while True:
            await ctx.sleep(self.config.current.daemon.snapshot_interval_s)
            async with self._lock:
                session = self.session
                if session is not None and session.bars_since_snapshot and not self.stopped:
                    await session.write_snapshot(reason="timer")

    async def reconcile_now(self, why: str = "operator") -> Any:
        """Run a reconciliation between two market events (for a control command or a test)."""
        async with self._lock:
            return None if self.session is None else await self.session.reconcile(why)

    async def _on_market_items(self, items: tuple[Any, ...]) -> None:
        """Feed events in order; consecutive bars go together (quiet ones cost no step each)."""
        session = self.session
        assert session is not None
        bars: list[Bar] = []
        for item in items:
            if self.stopped:
                break
            if isinstance(item, Bar):
                bars.append(item)
                continue
            if bars:
                await session.on_bars(bars, self._accepting)
                bars = []
            await self.on_market(item)
        if bars and not self.stopped:
            await session.on_bars(bars, self._accepting)

    def _accepting(self) -> bool:
        return self.accepting

    async def on_market(self, event: Any) -> None:
        session = self.session
        assert session is not None
        if isinstance(event, Bar):
            await session.on_bar(event, accepting=self.accepting)
        elif isinstance(event, (TradeTick, Quote)):
            await session.on_tick(event)
        elif isinstance(event, FeedHealth):
            session.on_feed_health(event)
        elif isinstance(event, ContractRolled):
            await session.on_contract_roll(event)
        elif isinstance(event, BarCorrection):
            from fractald.bar_corrections import apply_correction
            from fractald.logs import get_logger

            await apply_correction(event, session.ledger, self.bus, get_logger("daemon"))

    async def final_snapshot(self) -> None:
        """The last word before stopping: later market events are left for the next start.

        Bars processed after it (with entries refused while stopping) would
        be committed as covered, so the next start would never trade them.
        """
        async with self._lock:
            self.stopped = True
            if self.session is not None:
                await self.session.write_snapshot(reason="shutdown")
