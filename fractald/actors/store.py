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
    from fractald.daemon import Daemon
    from fractald.store.writer import AsyncLedger

DB_NAME = "fractald.db"
SUPERVISION_EVENTS = {"actor_restart", "actor_fatal", "reload", "daemon_ready"}


class StoreActor:
    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.ledger: AsyncLedger | None = None
        self.opened = trio.Event()
        self.last_backup: str = ""

    @property
    def db_path(self) -> Path:
        return self.daemon.config.state_path() / DB_NAME

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
                    "config": self.daemon.config_path or "(embedded default)",
                },
                wall_ms(),
            )
            ctx.log.info("store_opened", db=str(self.db_path))
        self.opened.set()
        return self.ledger

    async def run(self, ctx: ActorContext) -> None:
        ledger = await self.open(ctx)
        # Persisted `risk set` overrides go over the config file before trading is built.
        await self.daemon.risk_overrides.load(ledger, ctx.log)
        ctx.pass_gate("store")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._record_supervision, ledger)
            interval = self.daemon.config.daemon.backup_interval_s
            while True:
                await ctx.sleep(interval)
                await self.backup(ctx.log)
                await ledger.check_integrity()

    async def _record_supervision(self, ledger: AsyncLedger) -> None:
        """Actor restarts and fatal errors go into the daemon's own record."""

        with self.daemon.bus.subscribe(SUPERVISION_EVENTS) as events:
            async for event in events:
                await ledger.record_daemon_event(event.kind, event.data, wall_ms())

    async def backup(self, log: Any) -> str:
        if self.ledger is None:
            raise StateUnavailable("the state database is not open yet")
        path = await self.ledger.backup(keep=self.daemon.config.daemon.backups_keep)
        self.last_backup = str(path)
        log.info("backup_written", path=str(path))
        self.daemon.bus.publish("backup", {"path": str(path)})
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
