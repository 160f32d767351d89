"""The store actor: opens (and if need be restores) the state database, keeps backups.

It is the single owner of the ledger; every write goes through
`AsyncLedger`, whose one worker thread keeps SQLite off the trio loop.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from fractald import __version__
from fractald.actors.supervisor import ActorContext
from fractald.clock import wall_ms
from fractald.errors import StateUnavailable

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from fractald.actors.events import EventBus
    from fractald.shell_deps import LiveConfig
    from fractald.store.writer import AsyncLedger

    # Run once the ledger is open, before the store gate passes (the `risk set` overrides).
    OnOpen = Callable[[AsyncLedger, Any], Awaitable[None]]

DB_NAME = "fractald.db"
SUPERVISION_EVENTS = {"actor_restart", "actor_fatal", "reload", "daemon_ready"}


class StoreActor:
    def __init__(self, config: LiveConfig, bus: EventBus, on_open: OnOpen | None = None) -> None:
        self.config = config
        self.bus = bus
        self.on_open = on_open
        self.ledger: AsyncLedger | None = None
        self.opened = trio.Event()
        self.last_backup: str = ""

    @property
    def db_path(self) -> Path:
        return self.config.current.state_path() / DB_NAME

    async def open(self, ctx: ActorContext) -> AsyncLedger:
        from fractald.store.writer import AsyncLedger

        if self.ledger is None:
            try:
                self.ledger = await AsyncLedger.open(self.db_path)
            except PermissionError as exc:
                raise StateUnavailable(
                    f"state directory {self.db_path.parent} is not usable: {exc}",
                    path=str(self.db_path),
                ) from exc
            await self.ledger.record_daemon_event(
                "start",
                {
                    "pid": os.getpid(),
                    "version": __version__,
                    "config": self.config.describe_path(),
                },
                wall_ms(),
            )
            ctx.log.info("store_opened", db=str(self.db_path))
        self.opened.set()
        return self.ledger

    async def run(self, ctx: ActorContext) -> None:
        ledger = await self.open(ctx)
        if self.on_open is not None:  # before trading is built: it reads the config then
            await self.on_open(ledger, ctx.log)
        ctx.pass_gate("store")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._record_supervision, ledger)
            interval = self.config.current.daemon.backup_interval_s
            while True:
                await ctx.sleep(interval)
                await self.backup(ctx.log)
                await ledger.check_integrity()

    async def _record_supervision(self, ledger: AsyncLedger) -> None:
        """Actor restarts and fatal errors go into the daemon's own record."""

        with self.bus.subscribe(SUPERVISION_EVENTS) as events:
            async for event in events:
                await ledger.record_daemon_event(event.kind, event.data, wall_ms())

    async def backup(self, log: Any) -> str:
        if self.ledger is None:
            raise StateUnavailable("the state database is not open yet")
        path = await self.ledger.backup(keep=self.config.current.daemon.backups_keep)
        self.last_backup = str(path)
        log.info("backup_written", path=str(path))
        self.bus.publish("backup", {"path": str(path)})
        return str(path)

    async def close(self, detail: dict[str, Any]) -> None:

        if self.ledger is None:
            return
        with trio.CancelScope(shield=True):
            try:
                await self.ledger.record_daemon_event("stop", detail, wall_ms())
            finally:
                await self.ledger.aclose()
                self.ledger = None
