"""The daemon: wires config, store, actors, control socket and systemd together.

Start-up is crash recovery: open (and if need be restore) the state
database, rebuild trading state from its latest snapshot, start the feed
where the state left off, and only then tell systemd READY=1. SIGTERM
stops new work, writes a final snapshot and exits 0; SIGHUP reloads what
may change live and refuses the rest with a log line naming it.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import trio

from fractald import __version__
from fractald.actors.events import EventBus
from fractald.actors.heartbeat import Heartbeat
from fractald.actors.supervisor import ActorContext, ActorSpec, Supervisor
from fractald.clock import wall_ms
from fractald.config import Config, load_config, reload_changes
from fractald.errors import ConfigError, ExitStatus, FatalError, FractalError, StartupGateFailed
from fractald.logs import configure_logging, get_logger, redactor
from fractald.notify import Notifier
from fractald.read_model import engine_of
from fractald.shell_deps import LiveConfig

if TYPE_CHECKING:
    from fractald.control.commands import ControlDeps
    from fractald.store.writer import AsyncLedger

# Added to each start-up gate's timeout in EXTEND_TIMEOUT_USEC: the control socket and READY=1.
START_SLACK_S = 15.0


class Daemon:
    """The composition root: builds every actor with only what it needs, then runs them.

    Nothing below receives the daemon itself: the actors and the command
    table get the live config, the bus, the ledger's holder, channels and
    functions (`fractald.shell_deps`), so no actor or control module imports
    this one (`tests/test_import_graph.py`).
    """

    def __init__(self, config: Config, config_path: str | None, notifier: Notifier) -> None:
        from fractald.actors.alerts import AlertsActor
        from fractald.actors.market_data import MarketDataActor
        from fractald.actors.metrics import MetricsActor
        from fractald.actors.store import StoreActor
        from fractald.actors.trading import TradingActor
        from fractald.control.report_commands import BarHistory
        from fractald.risk_overrides import RiskOverrides

        self.live = LiveConfig(config, config_path)
        self.notifier = notifier
        self.bus = EventBus()
        self.supervisor = Supervisor(on_event=self._supervision_event)
        self.log = get_logger("daemon")
        self.phase = "starting"
        self.started_wall_ms = wall_ms()
        self.store = StoreActor(self.live, self.bus, on_open=self._store_opened)
        self.risk_overrides = RiskOverrides(
            self.live, self.store, self.bus, apply_live=self.apply_live, log=self.log
        )
        self.trading = TradingActor(self.live, self.store, self.bus)
        # Recent 1m candles for `fractalctl chart`, recorded on their way to trading.
        self.bar_history = BarHistory()
        self.market_data = MarketDataActor(
            self.live, self.trading, self.bar_history.tap(self.trading.market_send), self.bus
        )
        self.alerts = AlertsActor(
            self.live,
            self.bus,
            feed_health=self.market_data.health_dicts,
            engine=self._engine,
            ledgers=self.store,
            log=self.log,
        )
        self.metrics = MetricsActor(
            self.live,
            self.bus,
            engine=self._engine,
            actors=self.supervisor.snapshot,
            alert_counters=self.alerts.counters,
            feed_health=self.market_data.health_dicts,
        )
        self.heartbeat = Heartbeat(self.supervisor, notifier, self.status_line)
        self.router = None
        if config.broker.kind != "paper":  # orders go to the venue through the router actor
            from fractald.actors.router_actor import RouterActor

            self.router = RouterActor(self.live, self.store, self.bus)
            self.trading.router = self.router
        self.control_ready = trio.Event()

    # The configuration in force: one holder every actor reads (reload and `risk set` replace it).
    @property
    def config(self) -> Config:
        return self.live.current

    @config.setter
    def config(self, config: Config) -> None:
        self.live.current = config

    @property
    def config_path(self) -> str | None:
        return self.live.path

    def _engine(self) -> Any:
        return engine_of(self.trading)

    async def _store_opened(self, ledger: AsyncLedger, log: Any) -> None:
        # Persisted `risk set` overrides go over the config file before trading is built.
        await self.risk_overrides.load(ledger, log)

    def _supervision_event(self, kind: str, detail: dict[str, Any]) -> None:
        self.bus.publish(kind, detail)

    # -- what operators see ------------------------------------------------------------
    def status_line(self) -> str:
        t = self.trading
        line = (
            f"{self.phase} | {self.config.feed.venue} {','.join(self.config.feed.symbols)} "
            f"| {t.summary_line()}"
        )
        replay = self.market_data.replay_status()
        return line if replay is None else f"{line} | {replay['progress']}"

    def status(self) -> dict[str, Any]:
        from fractald.control.trading_commands import account_status

        return {
            "daemon": {
                "version": __version__,
                "pid": os.getpid(),
                "phase": self.phase,
                "ready": self.phase == "ready",
                "uptime_s": round(trio.current_time() - self.supervisor.started_at, 3),
                "config": self.config_path or "(embedded default)",
                "state_dir": str(self.config.state_path()),
                "socket": str(self.config.socket_path()),
                "loop_lag_s": round(self.metrics.probe.last_s, 4),
                "loop_lag_max_s": round(self.metrics.probe.max_s, 4),
            },
            "gates": self.supervisor.gates_status(),
            "actors": self.supervisor.snapshot(),
            "feed": self.market_data.health_dicts(),
            **({"replay": r} if (r := self.market_data.replay_status()) is not None else {}),
            "account": account_status(self.trading, lambda: self.metrics.last_signal),
            "trading": self.trading.status(),
            **({"router": self.router.status()} if self.router is not None else {}),
        }

    # -- life cycle ----------------------------------------------------------------------
    def actor_specs(self) -> list[ActorSpec]:
        from fractald.control.commands import ControlActor

        d = self.config.daemon

        def spec(name: str, run: Callable[[ActorContext], Awaitable[None]]) -> ActorSpec:
            return ActorSpec(
                name,
                run,
                budget=d.restart_budget,
                window_s=d.restart_window_s,
                backoff_base_s=d.backoff_base_s,
                backoff_cap_s=d.backoff_cap_s,
                stall_limit_s=d.stall_limit_s,
            )

        control = ControlActor(self._control_deps())
        extra = []
        if self.config.telegram.enabled:  # chat commands, over the control socket's command table
            from fractald.actors.telegram import TelegramActor

            extra.append(spec("telegram", TelegramActor(self.live, control.registry).run))
        if self.router is not None:
            extra.append(spec("router", self.router.run))
        return [
            spec("store", self.store.run),
            spec("trading", self.trading.run),
            spec("market_data", self.market_data.run),
            spec("heartbeat", self.heartbeat.run),
            spec("control", control.run),
            spec("metrics", self.metrics.run),
            spec("alerts", self.alerts.run),
        ] + extra

    def _control_deps(self) -> ControlDeps:
        """What the command table reads and steers (the control socket's and Telegram's)."""
        from fractald.control.commands import ControlDeps
        from fractald.control.report_commands import ReportCommands

        return ControlDeps(
            config=self.live,
            bus=self.bus,
            trading=self.trading,
            reports=ReportCommands(
                self.live, self.store, self.bar_history, self.metrics.render, self._engine
            ),
            risk_overrides=self.risk_overrides,
            status=self.status,
            reload=self.reload,
            backup=self.store.backup,
            ready=self.control_ready,
            log=self.log,
        )

    async def run(self) -> int:
        self.log.info(
            "daemon_starting",
            version=__version__,
            pid=os.getpid(),
            config=self.config_path or "(embedded default)",
            state_dir=str(self.config.state_path()),
        )
        self.notifier.status("starting")
        await self.supervisor.run(self.actor_specs(), main=self._main)
        return await self._finish()

    async def _main(self, nursery: trio.Nursery) -> None:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
            nursery.start_soon(self._startup)
            async for signum in signals:
                if signum == signal.SIGHUP:
                    await self.reload()
                else:
                    self.log.info("signal_received", signal=signal.Signals(signum).name)
                    await self.shutdown()
                    return

    async def _startup(self) -> None:
        from fractald.actors.supervisor import GATES

        timeout_s = self.config.daemon.gate_timeout_s
        try:
            for gate in GATES:
                # Each gate may take its whole timeout; EXTEND_TIMEOUT_USEC keeps systemd's
                # TimeoutStartSec= from killing a start that is slow but still making progress.
                self.notifier.extend_timeout(timeout_s + START_SLACK_S)
                self.notifier.status(f"starting: waiting for {gate}")
                await self.supervisor.wait_gates(
                    timeout_s,
                    (gate,),
                    held_until=self.market_data.venue_wait_until,
                    on_held=self._gate_held,
                )
        except StartupGateFailed as exc:  # a clean fatal stop (logged, exit 1), not a traceback
            self.supervisor.stop_daemon(exc)
            return
        await self.control_ready.wait()
        self.phase = "ready"
        self.notifier.ready(status=self.status_line())
        self.log.info(
            "daemon_ready",
            status=self.status_line(),
            after_s=round(trio.current_time() - self.supervisor.started_at, 3),
        )
        self.bus.publish("daemon_ready", {"status": self.status_line()})

    def _gate_held(self, gate: str, seconds: float) -> None:
        """The venue asked us to wait (429): a slow start, not a failed one; systemd is told."""
        self.notifier.extend_timeout(seconds + START_SLACK_S)
        self.notifier.status(
            f"starting: waiting for {gate}: the venue asked us to wait "
            f"(rate limit); trying for {seconds:.0f} s more"
        )

    async def shutdown(self, reason: str = "signal") -> None:
        """Stop taking new work, write a final snapshot, then stop every actor."""
        if self.phase == "stopping":
            return
        self.phase = "stopping"
        self.notifier.stopping(status="stopping: writing final snapshot")
        self.trading.accepting = False
        with trio.move_on_after(self.config.daemon.shutdown_timeout_s) as scope:
            await self.trading.final_snapshot()
        if scope.cancelled_caught:
            self.log.error(
                "final_snapshot_timeout", timeout_s=self.config.daemon.shutdown_timeout_s
            )
        self.supervisor.stop_daemon()

    async def reload(self) -> dict[str, list[str]]:
        """SIGHUP / `fractalctl reload`: apply what may change live, refuse the rest.

        A reload never stops the daemon: whatever goes wrong, the running config
        stays, the log says why (never the file's contents) and systemd hears READY=1.
        """
        self.notifier.reloading()
        try:
            return await self._reload()
        except Exception as exc:  # noqa: BLE001 - a bad reload must not kill a trading daemon
            self.log.error(
                "reload_failed",
                error_type=type(exc).__name__,
                reason="kept the running configuration",
            )
            return {
                "applied": [],
                "refused": [],
                "errors": [
                    (f"reload failed ({type(exc).__name__}); the running configuration is kept")
                ],
            }
        finally:
            self.notifier.ready(status=self.status_line())

    async def _reload(self) -> dict[str, list[str]]:
        self.log.info("reload_requested", config=self.config_path or "(embedded default)")
        try:
            # Operator overrides (`fractalctl risk set`) stay in force over the re-read file.
            new = self.risk_overrides.overlay(load_config(self.config_path))
        except ConfigError as exc:
            self.log.error("reload_refused_invalid_config", problems=exc.problems)
            return {"applied": [], "refused": [], "errors": exc.problems}
        applied, refused = reload_changes(self.config, new)
        if refused:
            self.log.warning(
                "reload_refused_keys",
                keys=refused,
                reason="these keys need a restart (systemctl restart fractald)",
            )
        if applied:
            self.apply_live(new)
            self.log.info("reload_applied", keys=applied)
        self.log.info("reload_done", applied=applied, refused=refused)
        self.bus.publish("reload", {"applied": applied, "refused": refused})
        return {"applied": applied, "refused": refused, "errors": []}

    def apply_live(self, new: Config) -> None:
        merged = attrs.evolve(
            self.config, log=new.log, risk=new.risk, metrics=new.metrics, alerts=new.alerts
        )
        self.config = merged
        configure_logging(merged.log.format, merged.log.level)
        self.trading.apply_config(merged)

    async def _finish(self) -> int:
        fatal = self.supervisor.fatal
        status = ExitStatus.OK if fatal is None else getattr(fatal, "exit_status", ExitStatus.FATAL)
        detail: dict[str, Any] = {"exit_status": int(status)}
        if fatal is not None:
            detail["error"] = fatal.as_dict()
            self.log.error("daemon_fatal", exit_status=int(status), error=fatal.as_dict())
            self.notifier.stopping(status=f"fatal: {fatal.code}: {fatal.message}"[:200])
            left = await self.alerts.notify_fatal(fatal)
            if left:
                self.log.error("fatal_alert_undelivered", queued=left)
        await self.store.close(detail)
        self.log.info("daemon_stopped", exit_status=int(status))
        return int(status)


def _load_secrets_for_redaction(config: Config) -> None:
    """Register every credential the config names, so no log line can show one."""
    cred_dir = os.environ.get("CREDENTIALS_DIRECTORY")
    names = [
        config.broker.api_key_credential,
        config.broker.api_secret_credential,
        config.alerts.telegram_token_credential,
        config.telegram.token_credential,
        config.broker.private_key_credential,
    ]
    if not cred_dir:
        return
    secrets = []
    for name in filter(None, names):
        try:
            secrets.append((Path(cred_dir) / name).read_text().strip())
        except OSError:
            pass  # preflight reports missing credentials; the feed fails with AuthError
    redactor.register(secrets)


def main(config_path: str | None) -> int:
    """`fractald run`: returns the process exit status."""
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        configure_logging("auto", "info")
        get_logger("daemon").error("config_invalid", config=config_path, problems=exc.problems)
        return int(ExitStatus.CONFIG)
    configure_logging(config.log.format, config.log.level)
    from fractald.venues.factory import ROUTED_KINDS

    if config.broker.kind not in ("paper", *ROUTED_KINDS):  # never paper-trade a venue config
        get_logger("daemon").error(
            "broker_not_routable",
            kind=config.broker.kind,
            reason=f"this build routes orders to paper, {', '.join(ROUTED_KINDS)} only",
        )
        return int(ExitStatus.CONFIG)
    _load_secrets_for_redaction(config)
    from fractald.core.smc.offline import allow_compiled_kernels

    allow_compiled_kernels(False)  # no JIT in the daemon (MemoryDenyWriteExecute=yes)
    notifier = Notifier()
    try:
        daemon_instance: list[Daemon] = []

        async def _run() -> int:
            daemon = Daemon(config, config_path, notifier)
            daemon_instance.append(daemon)
            return await daemon.run()

        return trio.run(_run)
    except FatalError as exc:
        get_logger("daemon").error("daemon_fatal", error=exc.as_dict())
        return int(exc.exit_status)
    except FractalError as exc:
        get_logger("daemon").error("daemon_fatal", error=exc.as_dict())
        return int(ExitStatus.FATAL)
    finally:
        notifier.close()
