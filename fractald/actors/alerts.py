"""The alerts actor: turns what happens in the daemon into webhook notifications.

It maps bus events to alerts (a breaker trip, the kill switch), watches
feed health for staleness beyond `[alerts] feed_stale_alert_s`, sends a
daily summary at 00:00 UTC, and on a fatal stop the daemon calls
`notify_fatal` then `flush`. Delivery is `fractald.alerts.AlertSender`:
queued per target, retried with backoff, never in trading's way.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from fractald import alerts as al
from fractald.clock import wall_ms
from fractald.control.protocol import CommandError
from fractald.logs import get_logger
from fractald.metrics import AlertCounters
from fractald.read_model import current_curve

if TYPE_CHECKING:
    from collections.abc import Callable

    from fractald.actors.events import EventBus
    from fractald.actors.supervisor import ActorContext
    from fractald.shell_deps import LedgerSource, LiveConfig

FEED_CHECK_S = 5.0
FATAL_FLUSH_S = 5.0
_BUS_KINDS = {"breaker_tripped", "kill_switch"}


def _scalars(figures: dict[str, Any]) -> dict[str, al.Scalar]:
    return {k: v for k, v in figures.items() if isinstance(v, (str, int, float, bool)) or v is None}


def alert_for(kind: str, data: dict[str, Any], wall_ms: int) -> al.Alert | None:
    """The alert a bus event calls for, if any (pure: the mapping is tested on its own)."""
    if kind == "breaker_tripped":
        breaker = str(data.get("breaker", "?"))
        if breaker == "operator" or (
            breaker == "kill_switch" and data.get("reason") == "kill switch"
        ):
            # The operator's halt or kill (the engine's kill() gives that reason): announced
            # once, by the kill_switch bus event that names who did it.
            return None
        if breaker == "kill_switch":  # tripped by the daemon itself, not by a command
            return al.kill_switch(
                str(data.get("reason", "")), int(data.get("ts") or wall_ms), by="daemon"
            )
        return al.breaker_trip(
            breaker,
            str(data.get("reason", "")),
            int(data.get("ts") or wall_ms),
            state=str(data.get("state", "")),
            **_scalars(dict(data.get("figures") or {})),
        )
    if kind == "kill_switch":
        return al.kill_switch(
            "operator halt: trading halted and every position flattened",
            wall_ms,
            by=f"uid {data.get('by_uid', '?')}",
        )
    return None


def _telegram_token(name: str) -> str:
    cred_dir = os.environ.get("CREDENTIALS_DIRECTORY")
    if not name or not cred_dir:
        return ""
    try:
        return (Path(cred_dir) / name).read_text().strip()
    except OSError:
        return ""  # preflight names the missing credential; targets_from_config refuses it


class AlertsActor:
    def __init__(
        self,
        config: LiveConfig,
        bus: EventBus,
        *,
        feed_health: Callable[[], dict[str, dict[str, Any]]] = dict,
        engine: Callable[[], Any] = lambda: None,
        ledgers: LedgerSource | None = None,
        log: Any = None,
    ) -> None:
        self.config = config
        self.bus = bus
        self.feed_health = feed_health  # per symbol, as `status` shows it
        self.engine = engine  # the trading engine, once recovered (else None)
        self.ledgers = ledgers  # closed trades for the daily summary
        self.log = log if log is not None else get_logger("daemon")
        self.sender: al.AlertSender | None = None
        self.stale = al.FeedStaleWatch(config.current.alerts.feed_stale_alert_s)

    def counters(self) -> AlertCounters:
        return self.sender.counters() if self.sender is not None else AlertCounters()

    def _build_sender(self) -> al.AlertSender | None:
        cfg = self.config.current.alerts
        targets = al.targets_from_config(
            cfg.webhook_urls,
            cfg.telegram_chat_id,
            _telegram_token(cfg.telegram_token_credential),
            cfg.telegram_api_url,
        )
        return al.AlertSender(targets, instance=socket.gethostname()) if targets else None

    def notify(self, alert: al.Alert) -> None:
        if self.sender is not None:
            self.sender.notify(alert)
            self.log.info("alert_queued", kind=alert.kind.value, title=alert.title)

    # -- the actor -----------------------------------------------------------------------
    async def run(self, ctx: ActorContext) -> None:
        """Serve alerts; a reload that changes [alerts] rebuilds the targets (queued ones flushed)."""
        while True:
            with self.bus.subscribe({"reload"}) as reloads:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._serve, ctx)
                    await self._alerts_reloaded(ctx, reloads)
                    if self.sender is not None:
                        await self.sender.flush(FATAL_FLUSH_S)
                    nursery.cancel_scope.cancel()
            self.sender = None
            self.stale = al.FeedStaleWatch(self.config.current.alerts.feed_stale_alert_s)
            ctx.log.info("alerts_reconfigured")

    async def _alerts_reloaded(
        self, ctx: ActorContext, reloads: trio.MemoryReceiveChannel[Any]
    ) -> None:
        while True:
            event = await ctx.receive(reloads)
            if any(key.startswith("alerts.") for key in event.data.get("applied", [])):
                return

    async def _serve(self, ctx: ActorContext) -> None:

        if self.sender is None:
            try:
                self.sender = self._build_sender()
            except ValueError as exc:  # a telegram chat without a token: say so, run without
                ctx.log.error("alerts_misconfigured", problem=str(exc))
        if self.sender is None:
            while True:  # nothing to send to; stay alive for the supervisor
                await ctx.sleep(3600)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self.sender.run)
            nursery.start_soon(self._watch_feeds)
            nursery.start_soon(self._daily_summaries)
            with self.bus.subscribe(_BUS_KINDS) as events:
                while True:
                    event = await ctx.receive(events)
                    alert = alert_for(event.kind, event.data, wall_ms())
                    if alert is not None:
                        self.notify(alert)

    async def _watch_feeds(self) -> None:

        while True:
            await trio.sleep(FEED_CHECK_S)
            for symbol, health in self.feed_health().items():
                alert = self.stale.check(
                    symbol, float(health.get("last_message_age_s", 0.0)), wall_ms()
                )
                if alert is not None:
                    self.notify(alert)

    async def _daily_summaries(self) -> None:
        from fractald.ledger_queries import closed_trades
        from fractald.reporting.report import build_report, period_bounds

        while True:
            now = wall_ms()
            await trio.sleep((al.next_daily_summary_ms(now) - now) / 1000)
            engine = self.engine()
            if engine is None or self.ledgers is None:
                continue
            try:
                trades = await closed_trades(self.ledgers)
                report = build_report(
                    trades,
                    current_curve(engine),
                    engine.accounting.initial_equity,
                    period_bounds("day", engine.last_ts or wall_ms(), calendar=False),
                )
            except (CommandError, ValueError, RuntimeError, OSError) as exc:
                # a summary must never take the alerts down (the ledger closing, a bad curve)
                self.log.error("daily_summary_failed", error=str(exc))
                continue
            self.notify(al.daily_summary(report, wall_ms()))

    # -- a fatal stop ----------------------------------------------------------------------
    async def notify_fatal(self, error: BaseException) -> int:
        """Queue the fatal-error alert and deliver what is queued; returns what was left."""

        if self.sender is None:
            try:
                self.sender = self._build_sender()
            except ValueError:
                return 0
        if self.sender is None:
            return 0
        self.sender.notify(al.fatal_error(error, wall_ms()))
        left = 0
        with trio.CancelScope(shield=True):
            left = await self.sender.flush(FATAL_FLUSH_S)
        return left
