"""The equity history out of the hot snapshot: exact state, closed points in their own ledger table."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fractald.core.equity_history import EquityHistory
from fractald.state_schema import SCHEMA_VERSION, migrate
from fractald.store.equity_store import (
    EquityMark,
    equity_in_ledger,
    read_equity,
    split_equity,
    whole_state,
)
from fractald.store.ledger import Ledger

T0 = 1_641_081_600_000  # 2022-01-02 00:00 UTC
M = 60_000

steps = st.lists(
    st.tuples(st.integers(0, 400), st.floats(-50.0, 50.0, allow_nan=False)), min_size=1, max_size=600
)


def history_of(moves: list[tuple[int, float]], cap: int = 64) -> EquityHistory:
    """Equity recorded minute by minute (gaps of up to `minutes`), small cap: buckets widen."""
    h = EquityHistory(cap)
    ts, equity = T0, 10_000.0
    for minutes, change in moves:
        ts += minutes * M
        equity = max(1.0, equity + change)
        h.record(ts, equity)
    return h


def as_json(value: Any) -> Any:
    return json.loads(json.dumps(value))


def wrapped(h: EquityHistory) -> dict[str, Any]:
    """A snapshot-shaped state around one equity history (what `split_equity` looks into)."""
    return {"schema_version": 4, "engine": {"accounting": {"equity_curve": h.state()}}}


@settings(max_examples=60, deadline=None)
@given(steps, steps)
def test_state_restores_the_very_history_and_it_carries_on_the_same(
    before: list[tuple[int, float]], after: list[tuple[int, float]]
) -> None:
    live = history_of(before)
    twin = EquityHistory(64)
    twin.restore_state(as_json(live.state()))  # as it comes back from JSON
    assert twin.state() == live.state() and twin.points() == live.points()
    last = live.last()
    assert last is not None
    ts = last[0]
    for minutes, change in after:  # both record the same later points
        ts += minutes * M
        live.record(ts, max(1.0, live.last()[1] + change))  # type: ignore[index]
        twin.record(ts, max(1.0, twin.last()[1] + change))  # type: ignore[index]
    assert twin.state() == live.state()


def test_a_bad_history_is_refused_by_name() -> None:
    h = EquityHistory(64)
    with pytest.raises(ValueError, match="level 9"):
        h.restore_state({"level": 9, "closed": [], "bucket": [], "bucket_key": -1, "pending": None})
    with pytest.raises(TypeError, match="closed"):
        h.restore_state({"level": 0, "closed": 5, "bucket": [], "bucket_key": -1, "pending": None})


def commit(led: Ledger, h: EquityHistory, stored: EquityMark | None) -> EquityMark | None:
    hot, rows, mark = split_equity(wrapped(h), stored)
    led.commit_batch([("bench", {}, 0)], (), hot, equity=rows)
    return mark


@settings(max_examples=25, deadline=None)
@given(st.lists(steps, min_size=1, max_size=6))
def test_each_snapshot_reads_back_whole_from_the_ledger(tmp_path_factory: Any, runs: Any) -> None:
    """Snapshots written one after another (buckets widening between some): each, read back from
    the file with its points, is the history as it was when written, to the bit."""
    path = tmp_path_factory.mktemp("eq") / "fractald.db"
    h = EquityHistory(64)
    ts, equity = T0, 10_000.0
    written: list[dict[str, Any]] = []
    stored = None
    with Ledger.open(path) as led:
        for moves in runs:
            for minutes, change in moves:
                ts += (minutes + 1) * M
                equity = max(1.0, equity + change)
                h.record(ts, equity)
            stored = commit(led, h, stored)
            written.append(as_json(wrapped(h)))
        states = [
            json.loads(text)
            for (text,) in led.connection.execute("SELECT state FROM snapshots ORDER BY id")
        ]
        for hot, expected in zip(states, written, strict=True):  # older snapshots too
            curve = hot["engine"]["accounting"]["equity_curve"]
            assert "closed" not in curve  # the hot snapshot holds the open points only
            assert as_json(whole_state(led.connection, hot)) == expected


def test_the_snapshot_stays_small_and_only_new_points_are_written(tmp_path: Path) -> None:
    h = EquityHistory()  # the default cap: a month of minutes stays at 1m buckets
    with Ledger.open(tmp_path / "fractald.db") as led:
        stored = None
        sizes, rows_after = [], []
        for day in range(3):
            for minute in range(1440):
                h.record(T0 + (day * 1440 + minute) * M, 10_000.0 + minute % 7)
            hot, rows, stored = split_equity(wrapped(h), stored)
            led.commit_batch([("x", {}, 0)], (), hot, equity=rows)
            sizes.append(len(json.dumps(hot)))
            rows_after.append(
                led.connection.execute("SELECT count(*) FROM equity_points").fetchone()[0]
            )
        assert max(sizes) < 1_000, sizes  # 4,320 points, none of them in the snapshot
        # Each closed point written once; the open bucket's point and the pending one stay hot.
        assert rows_after == [1438, 2878, 4318]
        assert equity_in_ledger(hot) == EquityMark(0, 4318)


def test_a_missing_point_is_an_error_not_a_shorter_curve(tmp_path: Path) -> None:
    h = history_of([(1, 1.0)] * 200, cap=10_000)
    with Ledger.open(tmp_path / "fractald.db") as led:
        assert commit(led, h, None) == EquityMark(0, 198)
        (text,) = led.connection.execute("SELECT state FROM snapshots").fetchone()
        led.connection.execute("DELETE FROM equity_points WHERE idx = 17")
        with pytest.raises(ValueError, match="holds 197 of the 198 equity points"):
            read_equity(led.connection, EquityMark(0, 198))
        with pytest.raises(ValueError):
            whole_state(led.connection, json.loads(text))


def test_schema_3_points_become_the_history_a_restore_made_of_them() -> None:
    h = history_of([(1, 3.0), (2, -5.0), (1, 1.5)] * 40)
    v3 = {
        "schema_version": 3,
        "cursor": {},
        "bars_processed": 0,
        "engine": {
            "accounting": {"equity_curve": as_json(h.points()), "equity_curve_width_ms": h.width_ms}
        },
        "pipelines": {},
    }
    replayed = EquityHistory()
    replayed.extend(h.points(), h.width_ms)  # what a schema-3 restore did
    state = migrate(v3, "test")
    assert state["schema_version"] == SCHEMA_VERSION
    assert state["engine"]["accounting"]["equity_curve"] == replayed.state()
    assert "equity_curve_width_ms" not in state["engine"]["accounting"]


def test_the_table_is_plain_sql(tmp_path: Path) -> None:
    """`sqlite3 fractald.db 'select * from equity_points'` reads the curve, to the bit (REAL)."""
    h = history_of([(1, 0.1)] * 50, cap=10_000)
    with Ledger.open(tmp_path / "fractald.db") as led:
        commit(led, h, None)
    conn = sqlite3.connect(tmp_path / "fractald.db")
    try:
        rows = conn.execute("SELECT ts, equity FROM equity_points ORDER BY level, idx").fetchall()
    finally:
        conn.close()
    assert rows == h.points()[:-2]  # all but the open bucket's point and the pending one


def test_an_older_snapshot_reads_back_after_the_buckets_widened(tmp_path: Path) -> None:
    h = history_of([(1, 1.0)] * 50)
    with Ledger.open(tmp_path / "fractald.db") as led:
        stored = commit(led, h, None)
        first = as_json(wrapped(h))
        for minute in range(400):  # past the cap of 64: 1m buckets become 15m ones
            h.record(T0 + (60 + minute) * M, 9_000.0 + (minute * 37) % 101)
        assert h.level > 0
        commit(led, h, stored)
        older, newer = (
            json.loads(text)
            for (text,) in led.connection.execute("SELECT state FROM snapshots ORDER BY id")
        )
        assert as_json(whole_state(led.connection, older)) == first
        assert as_json(whole_state(led.connection, newer)) == as_json(wrapped(h))
