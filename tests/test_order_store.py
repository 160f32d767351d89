"""Ended orders out of the snapshots (`fractald.store.order_store`), restored exactly.

Real pipeline, paper broker and SQLite ledger: the engine's terminal
orders are written once each to `ended_orders` in a snapshot's transaction,
the snapshot keeps the working ones and every id in the engine's order, and
a restart restores the very same state; an older database is migrated and
an older snapshot (orders inline) is read and then split at the next write.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import structlog
from test_session_recovery import feed

from fractald.actors.events import EventBus
from fractald.config import Config
from fractald.core.models import Bar
from fractald.errors import StateCorrupt
from fractald.session import TradingSession
from fractald.store import db
from fractald.store.equity_store import whole_state
from fractald.store.ledger import Ledger
from fractald.store.order_store import MARK, join_orders, split_orders
from fractald.store.writer import AsyncLedger
from fractald.venues.replay import bundled_candles

CANDLES = 6000


@pytest.fixture(scope="module")
def bars() -> list[Bar]:
    return list(feed(bundled_candles()[:CANDLES], Config()))


async def start(db_path: Path) -> tuple[AsyncLedger, TradingSession]:
    ledger = await AsyncLedger.open(db_path)
    return ledger, await TradingSession.recover(Config(), ledger, structlog.get_logger("t"), EventBus())


def stored_snapshot(db_path: Path) -> dict[str, Any]:
    with sqlite3.connect(db_path) as conn:
        return json.loads(conn.execute("SELECT state FROM snapshots ORDER BY id DESC").fetchone()[0])


def ended_rows(db_path: Path) -> int:
    with sqlite3.connect(db_path) as conn:
        return int(conn.execute("SELECT count(*) FROM ended_orders").fetchone()[0])


def as_json(state: dict[str, Any]) -> str:
    return db.canonical_json(state, "state")


async def traded(db_path: Path, bars: list[Bar]) -> tuple[str, int]:
    """Trade `bars`, write a snapshot, stop; the state and how many orders had ended."""
    ledger, session = await start(db_path)
    await session.on_bars(bars)
    await session.write_snapshot("shutdown")
    state = session.snapshot_state()
    await ledger.aclose()
    return as_json(state), len(state["engine"]["closed_orders"])


async def test_ended_orders_leave_the_snapshot_and_come_back_exactly(
        tmp_path: Path, bars: list[Bar]) -> None:
    path = tmp_path / "s.db"
    state, ended = await traded(path, bars)
    assert ended > 10, "the replay must end orders for this test to mean anything"
    engine = stored_snapshot(path)["engine"]
    assert ended_rows(path) == ended
    assert len(engine["orders"]) == len(engine[MARK]) - ended  # only working orders inline
    assert len(json.dumps(stored_snapshot(path))) < len(state) - 20_000

    ledger, again = await start(path)  # a restart: the same state, to the byte
    assert as_json(again.snapshot_state()) == state
    await again.write_snapshot("shutdown")  # nothing ended since: no row written again
    assert ended_rows(path) == ended
    await ledger.aclose()
    with sqlite3.connect(path) as conn:  # any reader of the file gets the whole state
        whole = whole_state(conn, stored_snapshot(path))
    assert len(whole["engine"]["orders"]) == len(engine[MARK]) and MARK not in whole["engine"]


def test_split_writes_only_orders_that_ended_since() -> None:
    order = {"client_order_id": "a", "status": "FILLED"}
    state = {"engine": {"orders": [order, {"client_order_id": "b", "status": "NEW"}],
                        "closed_orders": ["a"]}}
    hot, rows, stored = split_orders(state, {})
    assert [cid for cid, _ in rows] == ["a"] and stored == {"a": order}
    assert hot["engine"]["orders"] == [{"client_order_id": "b", "status": "NEW"}]
    assert hot["engine"][MARK] == ["a", "b"]
    _, again, _ = split_orders(state, stored)
    assert again == []
    late = {"client_order_id": "a", "status": "FILLED", "filled_qty": 1.0}  # changed after all
    changed = {"engine": {**state["engine"], "orders": [late, state["engine"]["orders"][1]]}}
    _, rows, stored = split_orders(changed, stored)
    assert [cid for cid, _ in rows] == ["a"] and stored == {"a": late}


async def test_a_missing_ended_order_is_corrupt_state(tmp_path: Path, bars: list[Bar]) -> None:
    path = tmp_path / "s.db"
    await traded(path, bars)
    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM ended_orders WHERE client_order_id = "
                     "(SELECT min(client_order_id) FROM ended_orders)")
    ledger = await AsyncLedger.open(path)
    with pytest.raises(StateCorrupt, match="ended orders"):
        await TradingSession.recover(Config(), ledger, structlog.get_logger("t"), EventBus())
    await ledger.aclose()
    with sqlite3.connect(path) as conn, pytest.raises(ValueError, match="lacks 1 of"):
        join_orders(conn, stored_snapshot(path))


async def test_an_older_database_and_snapshot_are_migrated(tmp_path: Path, bars: list[Bar]) -> None:
    """A schema-5 database (no ended_orders table) whose snapshot holds every order inline."""
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    db.migrate(conn, path, target=5)
    conn.close()
    ledger, session = await start(path)  # opening migrates the database to the current schema
    await session.on_bars(bars)
    inline = session.snapshot_state()  # as an older release wrote it: no split
    await ledger.commit_batch([], (), inline)
    before = as_json(inline)
    await ledger.aclose()
    with sqlite3.connect(path) as conn:
        assert db.schema_version(conn) == db.SCHEMA_VERSION
        conn.execute("DELETE FROM ended_orders")  # written by this run's periodic snapshots
    assert MARK not in stored_snapshot(path)["engine"] and ended_rows(path) == 0

    ledger, again = await start(path)
    assert as_json(again.snapshot_state()) == before
    await again.write_snapshot("shutdown")  # the next snapshot moves them out, once
    await ledger.aclose()
    assert MARK in stored_snapshot(path)["engine"]
    assert ended_rows(path) == len(json.loads(before)["engine"]["closed_orders"]) > 0
    with Ledger.open(path) as led:
        assert as_json(led.whole_state(stored_snapshot(path))) == before
