"""The daemon's control commands, registered on the generic ControlServer.

Each handler reads or steers the running daemon; the protocol layer
validates arguments, logs mutating commands with the peer's uid and turns
CommandError into a coded reply.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import attrs
import trio

from fractald import __version__
from fractald.config import public_dict
from fractald.control.protocol import Arg, CommandError, PeerCred
from fractald.control.server import CommandRegistry, ControlServer
from fractald.control.trading_commands import register_trading_commands
from fractald.logs import redactor

if TYPE_CHECKING:
    from fractald.actors.events import EventBus
    from fractald.actors.supervisor import ActorContext
    from fractald.actors.trading import TradingActor
    from fractald.control.report_commands import ReportCommands
    from fractald.risk_overrides import RiskOverrides
    from fractald.shell_deps import LiveConfig


@attrs.frozen
class ControlDeps:
    """What the command table reads and steers, handed over by the daemon (its composition root)."""

    config: LiveConfig
    bus: EventBus
    trading: TradingActor
    reports: ReportCommands
    risk_overrides: RiskOverrides
    status: Callable[[], dict[str, Any]]  # the whole daemon's status, as `status` shows it
    reload: Callable[[], Awaitable[dict[str, list[str]]]]  # SIGHUP's reload
    backup: Callable[[Any], Awaitable[str]]  # an online backup now; returns its path
    ready: trio.Event  # set once the socket listens (a start-up gate)
    log: Any


class ControlActor:
    def __init__(self, deps: ControlDeps) -> None:
        self.deps = deps
        self.registry = CommandRegistry()
        self._register()

    async def run(self, ctx: ActorContext) -> None:
        cfg = self.deps.config.current
        server = ControlServer(
            cfg.socket_path(),
            cfg.control.allowed_uids,
            cfg.control.allowed_gids,
            self.registry,
            ctx.log,
            idle_timeout_s=cfg.control.idle_timeout_s,
            max_line_bytes=cfg.control.max_line_bytes,
            max_clients=cfg.control.max_clients,
            send_timeout_s=cfg.control.send_timeout_s,
            max_streams=cfg.control.max_streams,
        )
        async with trio.open_nursery() as nursery:
            await nursery.start(server.serve)
            self.deps.ready.set()
            while True:  # the server runs in its own tasks; this loop only proves liveness
                await ctx.sleep(ctx.beat_interval_s)

    # -- registration --------------------------------------------------------------------
    def _register(self) -> None:
        r = self.registry
        d = self.deps
        r.register("version", self.version, help="the daemon's version")
        r.register("status", self.status, help="daemon, actors, gates, feeds, trading state")
        r.register("config", self.config, help="the effective configuration (secrets redacted)")
        r.register(
            "tail",
            self.tail,
            help="stream the daemon's events as JSON lines",
            args=[Arg("kind", list, help="only these event kinds")],
        )
        r.register("reload", self.reload, mutating=True, help="re-read the config (like SIGHUP)")
        r.register("backup", self.backup, mutating=True, help="write an online backup now")
        # the trading actor knows nothing of control
        register_trading_commands(r, d.trading, d.reports, d.risk_overrides)
        if d.config.current.daemon.test_hooks:
            r.register(
                "debug-block-loop",
                self.block_loop,
                mutating=True,
                args=[Arg("seconds", float, required=True, minimum=0, maximum=3600)],
                help="TEST ONLY: block the event loop (to exercise the watchdog)",
            )

    # -- handlers ------------------------------------------------------------------------
    async def version(self, args: dict[str, Any], peer: PeerCred) -> dict[str, Any]:
        return {"version": __version__}

    async def status(self, args: dict[str, Any], peer: PeerCred) -> dict[str, Any]:
        return self.deps.status()

    async def config(self, args: dict[str, Any], peer: PeerCred) -> dict[str, Any]:
        return redactor.redact(public_dict(self.deps.config.current))  # type: ignore[no-any-return]

    async def tail(self, args: dict[str, Any], peer: PeerCred) -> AsyncIterator[dict[str, Any]]:
        kinds = set(args.get("kind") or []) or None
        with self.deps.bus.subscribe(kinds) as events:
            async for event in events:
                yield event.as_dict()

    async def reload(self, args: dict[str, Any], peer: PeerCred) -> dict[str, Any]:
        result = await self.deps.reload()
        # An error reply, so `fractalctl reload` (the unit's ExecReload=) exits non-zero and
        # `systemctl reload` fails when the new config was not (fully) taken.
        if result["errors"]:
            raise CommandError(
                "reload_refused",
                "the new configuration is invalid; nothing "
                "was applied: " + "; ".join(result["errors"]),
                **result,
            )
        if result["refused"]:
            raise CommandError(
                "reload_refused",
                "these keys need a restart (systemctl restart): "
                + ", ".join(result["refused"])
                + "; the others were applied",
                **result,
            )
        return result

    async def backup(self, args: dict[str, Any], peer: PeerCred) -> dict[str, Any]:
        try:
            path = await self.deps.backup(self.deps.log)
        except Exception as exc:
            raise CommandError("backup_failed", f"backup failed: {exc}") from exc
        return {"path": path}

    async def block_loop(self, args: dict[str, Any], peer: PeerCred) -> dict[str, Any]:
        seconds = float(args["seconds"])
        self.deps.log.warning("debug_block_loop", seconds=seconds, **peer.as_log())
        time.sleep(seconds)  # noqa: ASYNC251 - deliberately blocking: the point is to starve the loop
        return {"blocked_s": seconds}
