"""Snapshots off the hot path: bars commit only their events; a restart re-drives and checks them.

Real pipeline, real paper broker, real SQLite ledger (see test_session_recovery
for the randomised crash version and test_crash_daemon for the subprocess one).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import structlog
from test_session_recovery import feed

from fractald.actors.events import EventBus
from fractald.config import Config
from fractald.core.models import Bar
from fractald.errors import StateCorrupt
from fractald.session import SNAPSHOT_EVERY_BARS, TradingSession
from fractald.store.writer import AsyncLedger
from fractald.venues.replay import bundled_candles

CANDLES = 2400


@pytest.fixture(scope="module")
def bars() -> list[Bar]:
    return list(feed(bundled_candles()[:CANDLES], Config()))


async def start(db: Path) -> tuple[AsyncLedger, TradingSession]:
    ledger = await AsyncLedger.open(db)
    return ledger, await TradingSession.recover(Config(), ledger, structlog.get_logger("t"), EventBus())


def count(db: Path, sql: str) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute(sql).fetchone()[0])


async def test_bars_commit_events_without_a_snapshot_and_a_restart_catches_up(
        tmp_path: Path, bars: list[Bar]) -> None:
    db = tmp_path / "s.db"
    ledger, session = await start(db)
    for bar in bars:
        await session.on_bar(bar)
    events, snapshots = count(db, "SELECT count(*) FROM events"), count(db, "SELECT count(*) FROM snapshots")
    assert events > 50
    assert snapshots <= CANDLES // SNAPSHOT_EVERY_BARS  # not one per commit
    last_snapshot_seq = count(db, "SELECT coalesce(max(last_seq), 0) FROM snapshots")
    assert last_snapshot_seq < events  # the newest events follow the newest snapshot
    await ledger.aclose()  # a crash: no final snapshot

    ledger, again = await start(db)
    assert again.catching_up
    assert await again.reconcile("start") is None  # deferred: the book is behind the log
    for bar in bars:
        await again.on_bar(bar)
    assert not again.catching_up
    assert again.last_reconcile["clean"] and again.last_reconcile["why"] == "start"
    assert count(db, "SELECT count(*) FROM events") == events  # nothing written twice
    await again.write_snapshot("shutdown")
    await ledger.aclose()


async def test_a_feed_that_ends_before_the_log_is_remade_is_corrupt_state(
        tmp_path: Path, bars: list[Bar]) -> None:
    db = tmp_path / "s.db"
    ledger, session = await start(db)
    for bar in bars:
        await session.on_bar(bar)
    await ledger.aclose()
    ledger, again = await start(db)
    for bar in bars[:len(bars) // 3]:  # a shorter replay file than the one the log came from
        await again.on_bar(bar)
    assert again.catching_up
    with pytest.raises(StateCorrupt, match="the feed ended"):
        again.feed_ended()
    await ledger.aclose()


async def test_events_the_bars_do_not_remake_are_corrupt_state(tmp_path: Path, bars: list[Bar]) -> None:
    db = tmp_path / "s.db"
    ledger, session = await start(db)
    for bar in bars:
        await session.on_bar(bar)
    await ledger.aclose()
    with sqlite3.connect(db) as conn:  # the log says something happened that these bars never made
        conn.execute("INSERT INTO events (kind, ts_event, payload) VALUES ('paused', ?, "
                     "'{\"paused\":true,\"ts\":1}')", (bars[len(bars) // 2].ts_event,))

    ledger, again = await start(db)
    with pytest.raises(StateCorrupt, match="the log and the snapshot disagree"):
        for bar in bars:
            await again.on_bar(bar)
    await ledger.aclose()
