"""The daemon's session takes a feed batch's quiet bars in runs, as the backtest loop does.

Real pipeline, paper broker and SQLite ledger: the same candles through
`TradingSession.on_bar` one at a time and through `on_bars` in batches of
uneven sizes leave the same trading state and the same event log, and the
runs really happen (the engine's quiet step is taken).
"""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import structlog
from test_session_recovery import feed

from fractald.actors.events import EventBus
from fractald.config import Config
from fractald.core.execution.engine import TradingEngine
from fractald.core.models import Bar
from fractald.session import TradingSession
from fractald.store.db import canonical_json
from fractald.store.writer import AsyncLedger
from fractald.venues.replay import bundled_candles

CANDLES = 3000


@pytest.fixture(scope="module")
def bars() -> list[Bar]:
    return list(feed(bundled_candles()[:CANDLES], Config()))


def batches(bars: list[Bar], seed: int) -> list[list[Bar]]:
    rng, out, i = random.Random(seed), [], 0
    while i < len(bars):
        n = rng.choice((1, 2, 7, 30, 64, 300))
        out.append(bars[i:i + n])
        i += n
    return out


async def start(db: Path) -> tuple[AsyncLedger, TradingSession]:
    ledger = await AsyncLedger.open(db)
    return ledger, await TradingSession.recover(Config(), ledger, structlog.get_logger("t"), EventBus())


def logged(db: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT kind, payload, ts_event FROM events ORDER BY seq").fetchall()


def state_of(session: TradingSession) -> str:
    return canonical_json(session.snapshot_state(), "snapshot")


async def test_bars_in_batches_end_as_bars_one_by_one(
        tmp_path: Path, bars: list[Bar], monkeypatch: pytest.MonkeyPatch) -> None:
    """Same state and log; the batch's events in one transaction (the paper broker's case)."""
    commits = {"n": 0}
    commit_batch = AsyncLedger.commit_batch

    async def counted_commit(self: AsyncLedger, *args: Any, **kwargs: Any) -> Any:
        commits["n"] += 1
        return await commit_batch(self, *args, **kwargs)

    monkeypatch.setattr(AsyncLedger, "commit_batch", counted_commit)
    ledger, one = await start(tmp_path / "one.db")
    for bar in bars:
        await one.on_bar(bar)
    await ledger.aclose()
    commits_one, commits["n"] = commits["n"], 0

    quiet_runs: list[int] = []
    original = TradingEngine.on_quiet_bars

    def counted(self: TradingEngine, run: list[Bar], venue: Any) -> None:
        quiet_runs.append(len(run))
        original(self, run, venue)

    monkeypatch.setattr(TradingEngine, "on_quiet_bars", counted)
    ledger, batched = await start(tmp_path / "batched.db")
    for batch in batches(bars, seed=7):
        await batched.on_bars(batch)
    await ledger.aclose()

    assert sum(quiet_runs) > CANDLES // 2 and max(quiet_runs) > 1  # runs were taken
    assert 0 < commits["n"] < commits_one  # a batch's bars commit together
    assert len(logged(tmp_path / "one.db")) > 20
    assert logged(tmp_path / "batched.db") == logged(tmp_path / "one.db")
    assert state_of(batched) == state_of(one)
    assert batched.cursor == one.cursor and batched.last_bar == one.last_bar
    assert batched.bars_processed == one.bars_processed
    assert batched.bars_since_snapshot == one.bars_since_snapshot


async def test_a_restart_catches_up_from_batches_bar_by_bar(tmp_path: Path, bars: list[Bar]) -> None:
    """While catching up each bar is checked against the log: no quiet run skips that check."""
    db = tmp_path / "s.db"
    ledger, session = await start(db)
    for batch in batches(bars, seed=3):
        await session.on_bars(batch)
    events = logged(db)
    final = state_of(session)
    await ledger.aclose()  # a crash: no final snapshot

    ledger, again = await start(db)
    assert again.catching_up
    for batch in batches(bars, seed=11):
        await again.on_bars(batch)
    assert not again.catching_up
    assert logged(db) == events  # nothing written twice, nothing lost
    assert state_of(again) == final
    await ledger.aclose()
