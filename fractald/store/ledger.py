"""The ledger: what the daemon must never forget, in one SQLite file.

* the daemon's own record (starts, stops, actor restarts, exit reasons);
* an append-only event log (intents, orders, fills, breaker trips, state
  changes, risk settings...), kinds are free strings, payloads plain JSON;
* the intents outbox, keyed by a unique client order id: an intent is
  recorded before its order leaves the process and a submission is claimed
  at most once, so a restart never sends an order twice nor forgets one
  (`fractald.store.outbox`);
* the closed candles detection ran on (`fractald.store.candle_store`);
* the equity history's closed points (`fractald.store.equity_store`);
* checksummed snapshots: start-up is the latest good snapshot plus the
  events after it (`recover`);
* key/value settings that survive restarts (`fractalctl risk set`).

The `Ledger` owns the connection and the transactions that span tables
(`commit_batch`); the outbox and the candle store are parts of it over that
connection. Every method is synchronous and each write is one transaction.
A `Ledger` is used by one thread at a time; the trio shell goes through
`fractald.store.writer.AsyncLedger`, which guarantees that.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Self

import attrs
import structlog

from fractald.store import db
from fractald.store.candle_store import (
    CANDLES_KEPT,
    CandleRow,
    CandleShift,
    CandleStore,
    candle_rows,
    insert_candles,
    shift_candles_in,
)
from fractald.store.equity_store import EquityRow, EquityStore, equity_rows, insert_equity
from fractald.store.order_store import OrderRow, insert_orders, order_rows
from fractald.store.outbox import (
    MAX_CLIENT_ORDER_ID_LEN,
    IntentOutbox,
    IntentRecord,
    claim_all_or_refuse,
    insert_intent,
    intent_row,
    outcome_rows,
    set_outcomes,
    submission_rows,
)
from fractald.store.values import check_int, check_text, dict_json, rowid

log = structlog.get_logger(__name__)

PAGE_SIZE = 500  # events read per query by `events_after`
SNAPSHOTS_KEPT = 10
DAEMON_EVENTS_KEPT = 10_000


@attrs.frozen
class Event:
    """One entry of the append-only event log."""

    seq: int
    kind: str
    ts_event: int
    payload: dict[str, Any]


@attrs.frozen
class DaemonEvent:
    """One entry of the daemon's own record (start, stop, actor restart, exit...)."""

    id: int
    kind: str
    detail: dict[str, Any]
    ts_wall_ms: int


@attrs.frozen
class Snapshot:
    """A checksummed copy of the daemon state covering every event up to `last_seq`."""

    id: int
    last_seq: int
    ts_wall_ms: int
    state: dict[str, Any]


def snapshot_checksum(state_json: str, last_seq: int) -> str:
    """sha256 over the snapshot's canonical JSON and the sequence number it covers."""
    return hashlib.sha256(f"{last_seq}\n{state_json}".encode()).hexdigest()


def _event_rows(items: Iterable[tuple[str, Mapping[str, Any], int]]) -> list[tuple[str, int, str]]:
    """Validate and encode events before any write, so a bad item writes nothing."""
    rows = []
    for kind, payload, ts_event in items:
        check_text(kind, "event kind")
        rows.append(
            (
                kind,
                check_int(ts_event, f"ts_event of {kind!r} event"),
                dict_json(payload, f"payload of {kind!r} event"),
            )
        )
    return rows


def _insert_events(conn: sqlite3.Connection, rows: list[tuple[str, int, str]]) -> list[int]:
    return [
        rowid(conn.execute("INSERT INTO events (kind, ts_event, payload) VALUES (?, ?, ?)", row))
        for row in rows
    ]


def _insert_snapshot(conn: sqlite3.Connection, state_json: str, last_seq: int, ts: int) -> int:
    snap_id = rowid(
        conn.execute(
            "INSERT INTO snapshots (last_seq, ts_wall_ms, state, sha256) VALUES (?, ?, ?, ?)",
            (last_seq, ts, state_json, snapshot_checksum(state_json, last_seq)),
        )
    )
    conn.execute("DELETE FROM snapshots WHERE id <= ?", (snap_id - SNAPSHOTS_KEPT,))
    return snap_id


class Ledger(IntentOutbox, CandleStore, EquityStore):
    """The state database. Open with `Ledger.open(path)` (or `backup.verify_and_open`)."""

    def __init__(self, conn: sqlite3.Connection, path: Path, lock: db.StateLock | None) -> None:
        self._conn = conn
        self.path = path
        self._lock = lock

    @classmethod
    def open(cls, path: str | Path, *, lock: bool = True) -> Ledger:
        """Open (creating if needed) the database at `path` and migrate it to the current schema.

        The state directory is created if missing; an unusable one raises
        StateUnavailable naming it. With `lock` (the default) an exclusive
        lock file beside the database keeps a second daemon out. A file that
        is not a sound database raises StateCorrupt (start-up should use
        `backup.verify_and_open`, which restores from backup instead).
        """
        path = Path(path)
        db.ensure_state_dir(path.parent)
        state_lock = db.StateLock(path) if lock else None
        try:
            return cls.from_locked(path, state_lock)
        except BaseException:
            if state_lock is not None:
                state_lock.release()
            raise

    @classmethod
    def from_locked(cls, path: Path, state_lock: db.StateLock | None) -> Ledger:
        """Open `path` under an already-held lock (used by the backup/restore path)."""
        try:
            conn = db.connect(path)
        except sqlite3.DatabaseError as exc:
            if db.is_corruption(exc):
                raise db.corrupt_error(path, str(exc)) from exc
            raise
        try:
            db.migrate(conn, path)
        except sqlite3.DatabaseError as exc:
            conn.close()
            if db.is_corruption(exc):
                raise db.corrupt_error(path, str(exc)) from exc
            raise
        except BaseException:
            conn.close()
            raise
        return cls(conn, path, state_lock)

    def close(self) -> None:
        """Close the connection (checkpointing the WAL) and release the lock. Idempotent."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None  # type: ignore[assignment]
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def connection(self) -> sqlite3.Connection:
        """The raw connection, for checks and tests; writes should use the methods."""
        return self._conn

    def schema_version(self) -> int:
        return db.schema_version(self._conn)

    # -- the daemon's own record ---------------------------------------------------------

    def record_daemon_event(self, kind: str, detail: Mapping[str, Any], ts_wall_ms: int) -> int:
        """Record a daemon start, stop, actor restart, exit reason...; returns its id.

        Only the newest DAEMON_EVENTS_KEPT entries are kept, so a long-lived
        daemon's record stays bounded.
        """
        check_text(kind, "daemon event kind")
        detail_json = dict_json(detail, f"detail of daemon event {kind!r}")
        check_int(ts_wall_ms, "ts_wall_ms", 0)
        with db.transaction(self._conn) as conn:
            row_id = rowid(
                conn.execute(
                    "INSERT INTO daemon_events (ts_wall_ms, kind, detail) VALUES (?, ?, ?)",
                    (ts_wall_ms, kind, detail_json),
                )
            )
            conn.execute("DELETE FROM daemon_events WHERE id <= ?", (row_id - DAEMON_EVENTS_KEPT,))
        return row_id

    def recent_daemon_events(self, limit: int = 50) -> list[DaemonEvent]:
        """The newest `limit` daemon events, newest first."""
        check_int(limit, "limit", 1)
        rows = self._conn.execute(
            "SELECT id, kind, detail, ts_wall_ms FROM daemon_events ORDER BY id DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [DaemonEvent(i, k, json.loads(d), ts) for i, k, d, ts in rows]

    # -- the append-only event log -------------------------------------------------------

    def append(self, kind: str, payload: Mapping[str, Any], ts_event: int) -> int:
        """Append one event and return its sequence number (1, 2, 3... never reused)."""
        return self.append_many([(kind, payload, ts_event)])[0]

    def append_many(self, items: Iterable[tuple[str, Mapping[str, Any], int]]) -> list[int]:
        """Append `(kind, payload, ts_event)` events in ONE transaction: all or none.

        Returns their sequence numbers in order. Every item is validated
        before anything is written.
        """
        rows = _event_rows(items)
        if not rows:
            return []
        with db.transaction(self._conn) as conn:
            return _insert_events(conn, rows)

    def commit_batch(
        self,
        items: Iterable[tuple[str, Mapping[str, Any], int]],
        intents: Iterable[tuple[str, Mapping[str, Any]]] = (),
        state: Mapping[str, Any] | None = None,
        *,
        submissions: Iterable[tuple[str, int]] = (),
        outcomes: Iterable[tuple[str, str, int]] = (),
        candles: Iterable[CandleRow] = (),
        equity: Iterable[EquityRow] = (),
        candle_shift: CandleShift | None = None,
        ended_orders: Iterable[OrderRow] = (),
    ) -> list[int]:
        """Events, the intents among them, their lifecycle and the state they lead to: ONE transaction.

        Appends `(kind, payload, ts_event)` events, records each
        `(client_order_id, payload)` intent (idempotently, as `record_intent`),
        claims each `(client_order_id, ts)` submission, sets each
        `(client_order_id, outcome, ts)` outcome (first one wins, as
        `mark_outcome`), appends the `candles` detection ran on since the last
        batch, and, when `state` is given, writes a snapshot
        covering every event up to the last one appended (with the `equity`
        points it no longer holds itself); a futures roll's `candle_shift`
        moves the stored candles before the new ones go in. All or nothing;
        returns the new seqs.

        A submission that was already claimed is an InvariantViolation and
        the whole batch is rolled back: within one batch the order has just
        been sent (an in-process broker), so a second claim means the same
        client order id went out twice.
        """
        rows = _event_rows(items)
        intent_rows = [intent_row(cid, payload) for cid, payload in intents]
        claims = submission_rows(submissions)
        ends = outcome_rows(outcomes)
        state_json = None if state is None else dict_json(state, "snapshot state")
        new_candles = candle_rows(candles)
        new_equity = equity_rows(equity)
        new_orders = order_rows(list(ended_orders))
        with db.transaction(self._conn) as conn:
            seqs = _insert_events(conn, rows)
            if candle_shift is not None:
                shift_candles_in(conn, candle_shift)
            if new_candles:
                insert_candles(conn, new_candles)
            stored = [insert_intent(conn, cid, payload_json) for cid, payload_json in intent_rows]
            claim_all_or_refuse(conn, claims)
            refused = set_outcomes(conn, ends)
            if new_equity:
                insert_equity(conn, new_equity)
            if new_orders:
                insert_orders(conn, new_orders)
            if state_json is not None:
                _insert_snapshot(conn, state_json, self.last_seq(), db.now_ms())
        self._after_batch(intent_rows, stored, refused)
        return seqs

    def last_seq(self) -> int:
        """The sequence number of the newest event (0 when the log is empty)."""
        return int(self._conn.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0])

    def count_events_after(self, seq: int, ignoring: Iterable[str] = ()) -> int:
        """How many events lie after `seq`, not counting the kinds in `ignoring`."""
        check_int(seq, "seq", 0)
        kinds = list(ignoring)
        marks = ",".join("?" * len(kinds))
        return int(
            self._conn.execute(
                f"SELECT count(*) FROM events WHERE seq > ? AND kind NOT IN ({marks})",
                (seq, *kinds),
            ).fetchone()[0]
        )

    def events_page(self, seq: int, limit: int | None = None) -> list[Event]:
        """Up to `limit` (default PAGE_SIZE) events with sequence numbers above `seq`, oldest first."""
        check_int(seq, "seq", 0)
        limit = PAGE_SIZE if limit is None else check_int(limit, "limit", 1)
        rows = self._conn.execute(
            "SELECT seq, kind, ts_event, payload FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
            (seq, limit),
        ).fetchall()
        return [Event(s, k, ts, json.loads(p)) for s, k, ts, p in rows]

    def events_after(self, seq: int) -> Iterator[Event]:
        """Every event with a sequence number greater than `seq`, oldest first.

        Reads page by page, so no cursor stays open between items and memory
        stays flat however long the log is.
        """
        while page := self.events_page(seq):
            yield from page
            seq = page[-1].seq

    # -- fills, re-derived from the log (reconciliation) ---------------------------------

    def fill_positions(self) -> dict[str, float]:
        """Net signed quantity per symbol, summed from every `order_filled` event in the log."""
        rows = self._conn.execute(
            "SELECT json_extract(payload, '$.symbol'), "
            "sum(CASE json_extract(payload, '$.side') WHEN 'SELL' THEN -1.0 ELSE 1.0 END "
            "    * json_extract(payload, '$.quantity')) "
            "FROM events WHERE kind = 'order_filled' GROUP BY 1"
        ).fetchall()
        return {str(symbol): float(qty) for symbol, qty in rows}

    def fills_of(self, client_order_ids: Iterable[str]) -> dict[str, dict[str, float]]:
        """Per client order id: {trade_id: quantity} of its `order_filled` events."""
        wanted = set(client_order_ids)
        out: dict[str, dict[str, float]] = {}
        if not wanted:
            return out
        rows = self._conn.execute(
            "SELECT json_extract(payload, '$.client_order_id'), "
            "json_extract(payload, '$.trade_id'), json_extract(payload, '$.quantity') "
            "FROM events WHERE kind = 'order_filled'"
        )
        for cid, trade_id, qty in rows:
            if cid in wanted:
                out.setdefault(cid, {})[str(trade_id)] = float(qty)
        return out

    def last_fill_ts(self) -> int:
        """ts_event of the newest `order_filled` event (0 when there is none)."""
        row = self._conn.execute(
            "SELECT coalesce(max(ts_event), 0) FROM events WHERE kind = 'order_filled'"
        ).fetchone()
        return int(row[0])

    # -- snapshots -----------------------------------------------------------------------

    def write_snapshot(
        self, state: Mapping[str, Any], last_seq: int, ts_wall_ms: int | None = None
    ) -> int:
        """Store `state` as covering every event up to `last_seq`; returns the snapshot id.

        `last_seq` may not be beyond the newest event. Only the newest
        SNAPSHOTS_KEPT snapshots are kept.
        """
        state_json = dict_json(state, "snapshot state")
        check_int(last_seq, "last_seq", 0)
        ts = db.now_ms() if ts_wall_ms is None else check_int(ts_wall_ms, "ts_wall_ms", 0)
        with db.transaction(self._conn) as conn:
            newest = self.last_seq()
            if last_seq > newest:
                raise ValueError(
                    f"snapshot last_seq {last_seq} is beyond the newest event ({newest})"
                )
            return _insert_snapshot(conn, state_json, last_seq, ts)

    def latest_good_snapshot(self) -> Snapshot | None:
        """The newest snapshot whose checksum matches; bad ones are skipped with a log line."""
        rows = self._conn.execute(
            "SELECT id, last_seq, ts_wall_ms, state, sha256 FROM snapshots ORDER BY id DESC"
        )
        for snap_id, last_seq, ts, state_json, checksum in rows:
            if snapshot_checksum(state_json, last_seq) != checksum:
                log.error("snapshot_checksum_mismatch", snapshot_id=snap_id, path=str(self.path))
                continue
            return Snapshot(snap_id, last_seq, ts, json.loads(state_json))
        return None

    def recover(self) -> tuple[Snapshot | None, Iterator[Event]]:
        """Start-up: the latest good snapshot and the events after it (all events if none)."""
        snapshot = self.latest_good_snapshot()
        return snapshot, self.events_after(snapshot.last_seq if snapshot else 0)

    # -- settings ------------------------------------------------------------------------

    def set_setting(self, key: str, value: Any, ts_wall_ms: int | None = None) -> None:
        """Set a persistent setting (e.g. a risk override); `value` is plain JSON data."""
        check_text(key, "setting key")
        value_json = db.canonical_json(value, f"value of setting {key!r}")
        ts = db.now_ms() if ts_wall_ms is None else check_int(ts_wall_ms, "ts_wall_ms", 0)
        with db.transaction(self._conn) as conn:
            conn.execute(
                "INSERT INTO settings (key, value, updated_ms) VALUES (?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value, "
                "updated_ms = excluded.updated_ms",
                (key, value_json, ts),
            )

    def clear_setting(self, key: str) -> bool:
        """Remove a setting (back to the configured default); True if it existed."""
        with db.transaction(self._conn) as conn:
            return conn.execute("DELETE FROM settings WHERE key = ?", (key,)).rowcount == 1

    def get_settings(self) -> dict[str, Any]:
        """Every persistent setting, by key."""
        rows = self._conn.execute("SELECT key, value FROM settings ORDER BY key").fetchall()
        return {k: json.loads(v) for k, v in rows}

    # -- integrity -----------------------------------------------------------------------

    def check_integrity(self) -> None:
        """Run `PRAGMA integrity_check`; raise StateCorrupt (naming the runbook) if it fails."""
        problem = db.integrity_problem(self._conn)
        if problem is not None:
            raise db.corrupt_error(self.path, problem)


__all__ = [
    "CANDLES_KEPT",
    "MAX_CLIENT_ORDER_ID_LEN",
    "CandleRow",
    "DaemonEvent",
    "Event",
    "IntentRecord",
    "Ledger",
    "Snapshot",
]
