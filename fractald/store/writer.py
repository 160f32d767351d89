"""The async face of the ledger for the trio shell: one writer, never blocking the loop.

Every call for one database runs on a worker thread through a
`trio.CapacityLimiter(1)`: at most one SQLite call at a time on the one
connection (opened with `check_same_thread=False`), in FIFO order (trio's
limiter is fair), while the trio loop keeps running.

Cancellation safety: each ledger method is one whole transaction, and the
thread is never abandoned (`abandon_on_cancel=False`). A task cancelled
while *waiting for its turn* has written nothing; once its call has started
it runs to the end (commit or rollback) and the cancellation is delivered
afterwards. No await ever leaves half a transaction.

Payload dicts are encoded on the worker thread: do not mutate them while
the call is pending.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Self, TypeVar

import trio

from fractald.store import backup, db
from fractald.store.equity_store import EquityRow
from fractald.store.ledger import CandleRow, DaemonEvent, Event, IntentRecord, Ledger, Snapshot

T = TypeVar("T")


class AsyncLedger:
    """Async mirror of `Ledger`; see that class for what each method means."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        self._limiter = trio.CapacityLimiter(1)
        self._backup_lock = trio.Lock()
        self._closed = False

    @classmethod
    async def open(
        cls, path: str | Path, backups_dir: str | Path | None = None, *, lock: bool = True
    ) -> AsyncLedger:
        """Start-up: `backup.verify_and_open` on a worker thread (restores from backup if needed)."""
        ledger = await trio.to_thread.run_sync(
            functools.partial(backup.verify_and_open, path, backups_dir, lock=lock)
        )
        return cls(ledger)

    @property
    def path(self) -> Path:
        return self._ledger.path

    async def run(self, fn: Callable[[Ledger], T]) -> T:
        """Run `fn(ledger)` on the writer thread, alone: for a composite read or check."""
        if self._closed:
            raise RuntimeError(f"ledger {self.path} is closed")
        try:
            return await trio.to_thread.run_sync(fn, self._ledger, limiter=self._limiter)
        except sqlite3.OperationalError as exc:
            raise db.unusable_error(self.path, exc) or exc from exc

    async def _call(self, method: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await self.run(lambda _ledger: method(*args, **kwargs))

    async def aclose(self) -> None:
        """Wait for the call in progress, then close. Shielded: a cancel cannot skip it."""
        if self._closed:
            return
        with trio.CancelScope(shield=True):
            self._closed = True
            await trio.to_thread.run_sync(self._ledger.close, limiter=self._limiter)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- the daemon's own record
    async def record_daemon_event(
        self, kind: str, detail: Mapping[str, Any], ts_wall_ms: int
    ) -> int:
        return await self._call(self._ledger.record_daemon_event, kind, detail, ts_wall_ms)

    async def recent_daemon_events(self, limit: int = 50) -> list[DaemonEvent]:
        return await self._call(self._ledger.recent_daemon_events, limit)

    # -- the event log
    async def append(self, kind: str, payload: Mapping[str, Any], ts_event: int) -> int:
        return await self._call(self._ledger.append, kind, payload, ts_event)

    async def append_many(self, items: Iterable[tuple[str, Mapping[str, Any], int]]) -> list[int]:
        # Materialise here: a caller's generator must not run on the worker thread.
        return await self._call(self._ledger.append_many, list(items))

    async def commit_batch(
        self,
        items: Iterable[tuple[str, Mapping[str, Any], int]],
        intents: Iterable[tuple[str, Mapping[str, Any]]] = (),
        state: Mapping[str, Any] | None = None,
        *,
        submissions: Iterable[tuple[str, int]] = (),
        outcomes: Iterable[tuple[str, str, int]] = (),
        candles: Iterable[CandleRow] = (),
        equity: Iterable[EquityRow] = (),
        candle_shift: tuple[str, int, float] | None = None,
        ended_orders: Iterable[tuple[str, str]] = (),
    ) -> list[int]:
        return await self._call(
            self._ledger.commit_batch,
            list(items),
            list(intents),
            state,
            submissions=list(submissions),
            outcomes=list(outcomes),
            candles=list(candles),
            equity=list(equity),
            candle_shift=candle_shift,
            ended_orders=list(ended_orders),
        )

    async def last_seq(self) -> int:
        return await self._call(self._ledger.last_seq)

    async def events_page(self, seq: int, limit: int | None = None) -> list[Event]:
        return await self._call(self._ledger.events_page, seq, limit)

    async def events_after(self, seq: int) -> AsyncIterator[Event]:
        """Every event after `seq`, a page per worker call (the loop runs between pages)."""
        while page := await self.events_page(seq):
            for event in page:
                yield event
            seq = page[-1].seq

    # -- the intents outbox
    async def record_intent(self, client_order_id: str, payload: Mapping[str, Any]) -> IntentRecord:
        return await self._call(self._ledger.record_intent, client_order_id, payload)

    async def record_and_claim(
        self, client_order_id: str, payload: Mapping[str, Any], ts: int
    ) -> bool:
        return await self._call(self._ledger.record_and_claim, client_order_id, payload, ts)

    async def get_intent(self, client_order_id: str) -> IntentRecord | None:
        return await self._call(self._ledger.get_intent, client_order_id)

    async def record_submission(self, client_order_id: str, ts: int) -> bool:
        return await self._call(self._ledger.record_submission, client_order_id, ts)

    async def mark_outcome(self, client_order_id: str, outcome: str, ts: int | None = None) -> bool:
        return await self._call(self._ledger.mark_outcome, client_order_id, outcome, ts)

    async def pending_intents(self) -> list[IntentRecord]:
        return await self._call(self._ledger.pending_intents)

    # -- snapshots
    async def write_snapshot(
        self, state: Mapping[str, Any], last_seq: int, ts_wall_ms: int | None = None
    ) -> int:
        return await self._call(self._ledger.write_snapshot, state, last_seq, ts_wall_ms)

    async def latest_good_snapshot(self) -> Snapshot | None:
        return await self._call(self._ledger.latest_good_snapshot)

    async def recover(self) -> tuple[Snapshot | None, list[Event]]:
        """The latest good snapshot and every event after it, read in one worker call."""

        def read(ledger: Ledger) -> tuple[Snapshot | None, list[Event]]:
            snapshot, events = ledger.recover()
            return snapshot, list(events)

        return await self.run(read)

    # -- settings
    async def set_setting(self, key: str, value: Any, ts_wall_ms: int | None = None) -> None:
        await self._call(self._ledger.set_setting, key, value, ts_wall_ms)

    async def clear_setting(self, key: str) -> bool:
        return await self._call(self._ledger.clear_setting, key)

    async def get_settings(self) -> dict[str, Any]:
        return await self._call(self._ledger.get_settings)

    # -- integrity and backups
    async def check_integrity(self) -> None:
        await self._call(self._ledger.check_integrity)

    async def backup(
        self, backups_dir: str | Path | None = None, keep: int = backup.DEFAULT_KEEP
    ) -> Path:
        """Online backup on its own thread and read connection: writes continue meanwhile."""
        if self._closed:
            raise RuntimeError(f"ledger {self.path} is closed")
        async with self._backup_lock:  # one backup at a time, so pruning cannot race
            return await trio.to_thread.run_sync(
                functools.partial(backup.backup_database, self.path, backups_dir, keep)
            )
