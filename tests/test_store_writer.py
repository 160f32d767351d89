"""The async single-writer wrapper: off the trio thread, never blocking it, cancellation-safe."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
import trio

from fractald.store.backup import backup_database, list_backups
from fractald.store.writer import AsyncLedger


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "fractald.sqlite"


def blocker_for(path: Path) -> sqlite3.Connection:
    """A second connection that takes the write lock, so the writer thread has to wait."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    return conn


def committed_events(path: Path) -> int:
    """What another process would see: the committed events only."""
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT count(*) FROM events").fetchone()[0]
    finally:
        conn.close()


async def test_async_mirror_of_the_ledger(db_path: Path) -> None:
    async with await AsyncLedger.open(db_path) as led:
        await led.record_daemon_event("start", {"version": "0.1.0"}, 5)
        assert await led.append("fill", {"q": 1}, 10) == 1
        assert await led.append_many(("order", {"n": n}, 11 + n) for n in range(3)) == [2, 3, 4]
        assert [e.seq async for e in led.events_after(2)] == [3, 4]
        assert (await led.record_intent("cid", {"q": 1})).client_order_id == "cid"
        assert await led.record_submission("cid", 12) is True
        assert await led.record_submission("cid", 13) is False
        assert [i.client_order_id for i in await led.pending_intents()] == ["cid"]
        assert await led.mark_outcome("cid", "filled", 14) is True
        assert (await led.get_intent("cid")).outcome == "filled"
        await led.write_snapshot({"pos": 1}, 3)
        assert await led.commit_batch([], [("cid-2", {"q": 2})], None) == []
        assert (await led.get_intent("cid-2")).payload == {"q": 2}
        await led.set_setting("risk.max_heat", 0.05)
        await led.check_integrity()
    async with await AsyncLedger.open(db_path) as reopened:
        snapshot, events = await reopened.recover()
        assert snapshot is not None and snapshot.state == {"pos": 1}
        assert [e.seq for e in events] == [4]
        assert await reopened.get_settings() == {"risk.max_heat": 0.05}
        assert [e.kind for e in await reopened.recent_daemon_events()] == ["start"]
        assert (await reopened.latest_good_snapshot()).last_seq == 3
        assert await reopened.last_seq() == 4
        assert await reopened.clear_setting("risk.max_heat") is True
    with pytest.raises(RuntimeError, match="is closed"):
        await reopened.append("fill", {}, 1)


async def test_sqlite_runs_on_a_worker_thread(db_path: Path) -> None:
    async with await AsyncLedger.open(db_path) as led:
        worker = await led.run(lambda _ledger: threading.get_ident())
    assert worker != threading.get_ident()


async def test_a_blocked_write_does_not_block_the_trio_loop(db_path: Path) -> None:
    async with await AsyncLedger.open(db_path) as led:
        blocker = blocker_for(db_path)
        written: list[int] = []

        async def write() -> None:
            written.append(await led.append("fill", {"q": 1}, 1))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(write)
            ticks = 0
            for _ in range(20):  # the loop keeps running while the writer waits for the lock
                await trio.sleep(0.005)
                ticks += 1
            assert ticks == 20 and written == []
            blocker.execute("COMMIT")
            blocker.close()
        assert written == [1]


async def cancellable(fn, *args, task_status=trio.TASK_STATUS_IGNORED) -> None:
    """Run `fn(*args)` in its own cancel scope, handed to the starter for cancelling."""
    with trio.CancelScope() as scope:
        task_status.started(scope)
        await fn(*args)


async def test_a_cancelled_write_is_all_or_nothing(db_path: Path) -> None:
    batch = [("fill", {"n": n}, n) for n in range(100)]
    async with await AsyncLedger.open(db_path) as led:
        blocker = blocker_for(db_path)
        first_done = trio.Event()

        async def first() -> None:  # holds the writer while SQLite makes it wait
            await led.append("state", {"s": "ACTIVE"}, 0)
            first_done.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(first)
            await trio.sleep(0.05)
            queued = await nursery.start(cancellable, led.append_many, batch)
            await trio.sleep(0.05)
            queued.cancel()  # second in line: cancelled before its turn
            await trio.sleep(0.05)
            assert not first_done.is_set()
            blocker.execute("COMMIT")
            blocker.close()
        assert first_done.is_set()
        assert await led.last_seq() == 1  # the queued batch wrote nothing

        blocker = blocker_for(db_path)
        async with trio.open_nursery() as nursery:
            running = await nursery.start(cancellable, led.append_many, batch)
            await trio.sleep(0.05)
            running.cancel()  # cancelled while its transaction waits on SQLite
            await trio.sleep(0.05)
            assert committed_events(db_path) == 1  # nothing half-written meanwhile
            blocker.execute("COMMIT")
            blocker.close()
        events = [e async for e in led.events_after(1)]
        assert [e.payload["n"] for e in events] == list(range(100))  # all of it, not half


async def test_open_restores_a_damaged_database(db_path: Path) -> None:
    async with await AsyncLedger.open(db_path) as led:
        await led.append_many([("fill", {"n": n}, n) for n in range(50)])
        await led.backup()
    db_path.write_bytes(b"definitely not sqlite" * 100)
    async with await AsyncLedger.open(db_path) as led:
        assert await led.last_seq() == 50


async def test_backups_run_beside_writes(db_path: Path) -> None:
    async with await AsyncLedger.open(db_path) as led:
        async with trio.open_nursery() as nursery:
            for n in range(20):
                nursery.start_soon(led.append, "fill", {"n": n}, n)
            for _ in range(3):
                nursery.start_soon(led.backup)
        assert await led.last_seq() == 20
        assert len(list_backups(db_path)) == 3
        backup_database(db_path, keep=2)
        assert len(list_backups(db_path)) == 2
