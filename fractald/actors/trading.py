"""The trading actor: drives the pure pipeline (strategies, risk, orders, paper fills, accounting).

Signals, risk and order routing share one actor on purpose: they must see
every bar, signal and fill in exactly the order the backtester does, so a
daemon replay and a backtest of the same candles make the same trades.
Split across actors, a decision would depend on task scheduling.

Crash-only: every batch of events a bar produces is committed to the
ledger together with a snapshot of the pipeline in one transaction,
before the next bar is read; start-up restores the latest good snapshot
and asks the feed to resume after the bar it covers. Re-driving the bars
after it is deterministic, so nothing is sent twice or forgotten.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import trio

from fractald.actors.supervisor import ActorContext
from fractald.core.models import Bar, FeedHealth, Quote, TradeTick
from fractald.session import TradingSession

if TYPE_CHECKING:
    from fractald.config import Config
    from fractald.control.server import CommandRegistry
    from fractald.daemon import Daemon

MARKET_BUFFER = 1024  # bars and trades are never dropped: a full buffer holds the feed back


class TradingActor:
    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.market_send, self.market_receive = trio.open_memory_channel[Any](MARKET_BUFFER)
        self.accepting = True
        self.session: TradingSession | None = None
        self.recovered = trio.Event()

    # -- for other actors and the control socket ------------------------------------------
    def resume_after_ms(self) -> dict[str, int]:
        """Per symbol, the open time of the last 1m bar the committed state covers."""
        if self.session is None:
            return {}
        return {key.split("/")[0]: ts for key, ts in self.session.cursor.items()
                if key.endswith("/1m")}

    def summary_line(self) -> str:
        return "recovering" if self.session is None else self.session.summary_line()

    def status(self) -> dict[str, Any]:
        if self.session is None:
            return {"state": "recovering"}
        return {**self.session.status(), "accepting": self.accepting}

    def apply_config(self, config: Config) -> None:
        if self.session is not None:
            self.session.apply_config(config)

    def register_commands(self, registry: CommandRegistry) -> None:
        from fractald.control.trading_commands import register_trading_commands

        register_trading_commands(registry, self)

    # -- the actor ------------------------------------------------------------------------
    async def run(self, ctx: ActorContext) -> None:
        await ctx.wait_gate("store")
        ledger = self.daemon.store.ledger
        assert ledger is not None
        self.session = await TradingSession.recover(self.daemon.config, ledger, ctx.log,
                                                    self.daemon.bus)
        self.recovered.set()
        ctx.pass_gate("reconcile")
        await ctx.wait_gate("feeds")
        ctx.pass_gate("trading")
        while True:
            event = await ctx.receive(self.market_receive)
            await self.on_market(event)

    async def on_market(self, event: Any) -> None:
        session = self.session
        assert session is not None
        if isinstance(event, Bar):
            await session.on_bar(event, accepting=self.accepting)
        elif isinstance(event, (TradeTick, Quote)):
            await session.on_tick(event)
        elif isinstance(event, FeedHealth):
            session.on_feed_health(event)

    async def final_snapshot(self) -> None:
        if self.session is not None:
            await self.session.write_snapshot(reason="shutdown")
