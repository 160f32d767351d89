"""The metrics actor: a MetricsSnapshot of the daemon every interval, written for node_exporter.

It also measures event-loop lag (LoopLagProbe) and watches the bus for
what the engine does not count itself: fills since start and the last
signal (for `status`). The textfile is written atomically on a worker
thread; a failed write is logged and retried next interval, never fatal.
When the actor stops (the daemon stops), it writes one last file saying
`fractald_up 0` with every actor down, so the file never claims a dead
bot is alive. The bot's name (the `bot` label) comes from $FRACTALD_BOT,
which the systemd units set ("main", or the instance of fractald@NAME).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import attrs
import trio

from fractald.clock import wall_ms
from fractald.core.models import FeedHealth
from fractald.core.risk.breakers import Breaker
from fractald.metrics import (
    ActorStatus,
    AlertCounters,
    LoopLagProbe,
    MetricsSnapshot,
    render_metrics,
    write_textfile,
)
from fractald.read_model import current_curve, risk_figures

if TYPE_CHECKING:
    from collections.abc import Callable

    from fractald.actors.events import EventBus
    from fractald.actors.supervisor import ActorContext
    from fractald.shell_deps import LiveConfig

_WATCHED = {"order_filled", "signal"}
FINAL_WRITE_TIMEOUT_S = 5.0


def bot_name() -> str:
    """The `bot` label: $FRACTALD_BOT (set by the units) or "main"."""
    return os.environ.get("FRACTALD_BOT") or "main"


_FEED_FIELDS = frozenset(f.name for f in attrs.fields(FeedHealth))


def _feeds(health: dict[str, dict[str, Any]]) -> tuple[FeedHealth, ...]:
    out = []
    for data in health.values():
        try:
            out.append(FeedHealth(**{k: v for k, v in data.items() if k in _FEED_FIELDS}))
        except (TypeError, ValueError):
            continue  # a half-initialised feed: shown next time
    return tuple(out)


class MetricsActor:
    def __init__(
        self,
        config: LiveConfig,
        bus: EventBus,
        *,
        engine: Callable[[], Any] = lambda: None,
        actors: Callable[[], list[dict[str, Any]]] = list,
        alert_counters: Callable[[], AlertCounters] = AlertCounters,
        feed_health: Callable[[], dict[str, dict[str, Any]]] = dict,
    ) -> None:
        self.config = config
        self.bus = bus
        self.engine = engine  # the trading engine, once recovered (else None)
        self.actors = actors  # the supervisor's view of every actor
        self.alert_counters = alert_counters
        self.feed_health = feed_health  # per symbol, as `status` shows it
        self.probe = LoopLagProbe()
        self.fills = 0
        self.last_signal: dict[str, Any] | None = None
        self.writes = 0
        self.write_errors = 0
        self.bot = bot_name()

    # -- the snapshot --------------------------------------------------------------------
    def snapshot(self, now_ms: int | None = None, up: bool = True) -> MetricsSnapshot:
        from fractald import __version__

        config = self.config.current
        engine = self.engine()
        actors = tuple(
            ActorStatus(a["name"], a["status"] == "running", int(a["restarts"]))
            for a in self.actors()
        )
        alerts = self.alert_counters()
        common: dict[str, Any] = {
            "ts_ms": wall_ms() if now_ms is None else now_ms,
            "fills_total": self.fills,
            "feeds": _feeds(self.feed_health()),
            "actors": actors,
            "loop_lag_s": self.probe.last_s,
            "loop_lag_max_s": self.probe.max_s,
            "alerts": alerts,
            "bot": self.bot,
            "version": __version__,
            "up": up,
            "drawdown_limit": config.risk.max_drawdown,
        }
        if engine is None:
            return MetricsSnapshot(
                equity=config.broker.starting_equity,
                drawdown=0.0,
                open_risk=0.0,
                heat_cap=0.0,
                breakers={b.value: False for b in Breaker},
                **common,
            )
        risk = risk_figures(engine)
        from fractald.reporting.report import max_drawdown_of

        deepest = max_drawdown_of(current_curve(engine), engine.accounting.initial_equity).max_pct
        positions: dict[str, float] = {}
        for p in engine.accounting.positions.values():
            positions[p.symbol] = positions.get(p.symbol, 0.0) + p.quantity
        orders: dict[str, int] = {}
        for o in engine.orders.values():
            orders[o.status.value] = orders.get(o.status.value, 0) + 1
        return MetricsSnapshot(
            equity=risk["equity"],
            drawdown=risk["drawdown"],
            open_risk=risk["open_risk"],
            heat_cap=risk["heat_cap_amount"],
            trading_state=engine.state.value,
            positions=positions,
            orders_by_state=orders,
            breakers={b.value: b in engine.breakers.trips for b in Breaker},
            max_drawdown=deepest,
            **common,
        )

    def render(self, up: bool = True) -> str:
        return render_metrics(self.snapshot(up=up))

    # -- the actor -----------------------------------------------------------------------
    async def run(self, ctx: ActorContext) -> None:
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self.probe.run)
                nursery.start_soon(self._watch_bus)
                while True:
                    await self.write_once(ctx.log)
                    await ctx.sleep(self.config.current.metrics.interval_s)
        finally:
            # Shielded: the stop cancelled us, and this last file is the point of stopping well.
            with trio.move_on_after(FINAL_WRITE_TIMEOUT_S) as scope:
                scope.shield = True
                await self.write_final(ctx.log)

    async def write_once(self, log: Any, up: bool = True) -> None:
        path = self.config.current.metrics.textfile_path
        if not path:
            return
        text = self.render(up=up)
        try:
            await trio.to_thread.run_sync(write_textfile, path, text)
        except OSError as exc:
            self.write_errors += 1
            if self.write_errors in (1, 10) or self.write_errors % 100 == 0:
                log.error(
                    "metrics_write_failed", path=path, error=str(exc), failures=self.write_errors
                )
            return
        self.writes += 1

    async def write_final(self, log: Any) -> None:
        """The last file, on stop: `fractald_up 0`, every actor down."""
        try:
            await self.write_once(log, up=False)
        except Exception as exc:  # noqa: BLE001 - a half-built daemon must not block the stop
            log.error("metrics_final_write_failed", error=repr(exc))

    async def _watch_bus(self) -> None:
        with self.bus.subscribe(_WATCHED) as events:
            async for event in events:
                if event.kind == "order_filled":
                    self.fills += 1
                elif event.kind == "signal":
                    s = event.data.get("signal", {})
                    self.last_signal = {
                        "ts": s.get("ts_event"),
                        "symbol": s.get("symbol"),
                        "strategy": s.get("strategy"),
                        "side": s.get("side"),
                        "confidence": s.get("confidence"),
                        "sent": event.data.get("sent"),
                    }
