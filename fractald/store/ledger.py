"""The ledger: what the daemon must never forget, in one SQLite file.

* the daemon's own record (starts, stops, actor restarts, exit reasons);
* an append-only event log (intents, orders, fills, breaker trips, state
  changes, risk settings...), kinds are free strings, payloads plain JSON;
* the intents outbox, keyed by a unique client order id: an intent is
  recorded before its order leaves the process and a submission is claimed
  at most once, so a restart never sends an order twice nor forgets one;
* checksummed snapshots: start-up is the latest good snapshot plus the
  events after it (`recover`);
* key/value settings that survive restarts (`fractalctl risk set`).

Every method is synchronous and each write is one transaction. A `Ledger`
is used by one thread at a time; the trio shell goes through
`fractald.store.writer.AsyncLedger`, which guarantees that.
"""

from __future__ import annotations

import hashlib
import json
import math
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Self

import attrs
import structlog

from fractald.errors import InvariantViolation
from fractald.store import db

log = structlog.get_logger(__name__)

PAGE_SIZE = 500  # events read per query by `events_after`
SNAPSHOTS_KEPT = 10
DAEMON_EVENTS_KEPT = 10_000
MAX_CLIENT_ORDER_ID_LEN = 128
# Closed candles kept per (symbol, timeframe) for rebuilding detection state at start-up
# (~208 days of 15m bars). Older ones are dropped: detection state is windowed, so what a
# rebuild from this many differs in is long forgotten by the detectors' rolling windows.
CANDLES_KEPT = 20_000
CandleRow = tuple[str, str, int, float, float, float, float, float, bool]


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
class IntentRecord:
    """An order intent in the outbox and how far it got."""

    client_order_id: str
    payload: dict[str, Any]
    recorded_ms: int
    submitted_ms: int | None
    outcome: str | None
    outcome_ms: int | None

    @property
    def submitted(self) -> bool:
        return self.submitted_ms is not None


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


def _check_text(value: object, what: str, max_len: int | None = None) -> str:
    if not isinstance(value, str) or not value or value != value.strip():
        raise ValueError(
            f"{what} must be a non-empty string without surrounding spaces, got {value!r}"
        )
    if max_len is not None and len(value) > max_len:
        raise ValueError(f"{what} is {len(value)} characters long; at most {max_len} allowed")
    return value


def _check_int(value: object, what: str, minimum: int | None = None) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{what} must be an int, got {value!r}")  # noqa: TRY004 - callers catch ValueError
    if minimum is not None and value < minimum:
        raise ValueError(f"{what} must be >= {minimum}, got {value}")
    return value


def _dict_json(value: object, what: str) -> str:
    if not isinstance(value, Mapping):
        raise ValueError(f"{what} must be a dict, got {type(value).__name__}")  # noqa: TRY004 - as above
    return db.canonical_json(dict(value), what)


def _rowid(cursor: sqlite3.Cursor) -> int:
    """The rowid an INSERT just made (sqlite3 types it Optional; after an INSERT it is set)."""
    assert cursor.lastrowid is not None
    return cursor.lastrowid


def _intent(row: sqlite3.Row | tuple[Any, ...]) -> IntentRecord:
    cid, payload, recorded, submitted, outcome, outcome_ms = row
    return IntentRecord(cid, json.loads(payload), recorded, submitted, outcome, outcome_ms)


_INTENT_COLUMNS = "client_order_id, payload, recorded_ms, submitted_ms, outcome, outcome_ms"


def _event_rows(items: Iterable[tuple[str, Mapping[str, Any], int]]) -> list[tuple[str, int, str]]:
    """Validate and encode events before any write, so a bad item writes nothing."""
    rows = []
    for kind, payload, ts_event in items:
        _check_text(kind, "event kind")
        rows.append(
            (
                kind,
                _check_int(ts_event, f"ts_event of {kind!r} event"),
                _dict_json(payload, f"payload of {kind!r} event"),
            )
        )
    return rows


def _insert_events(conn: sqlite3.Connection, rows: list[tuple[str, int, str]]) -> list[int]:
    return [
        _rowid(conn.execute("INSERT INTO events (kind, ts_event, payload) VALUES (?, ?, ?)", row))
        for row in rows
    ]


def _intent_row(client_order_id: str, payload: Mapping[str, Any]) -> tuple[str, str]:
    _check_text(client_order_id, "client_order_id", MAX_CLIENT_ORDER_ID_LEN)
    return client_order_id, _dict_json(payload, f"payload of intent {client_order_id!r}")


def _insert_intent(
    conn: sqlite3.Connection, client_order_id: str, payload_json: str
) -> tuple[Any, ...]:
    """Insert unless the id exists (never a second row); the stored row either way."""
    conn.execute(
        "INSERT INTO intents (client_order_id, payload, recorded_ms) VALUES (?, ?, ?) "
        "ON CONFLICT (client_order_id) DO NOTHING",
        (client_order_id, payload_json, db.now_ms()),
    )
    return tuple(
        conn.execute(
            f"SELECT {_INTENT_COLUMNS} FROM intents WHERE client_order_id = ?", (client_order_id,)
        ).fetchone()
    )


def _warn_if_intent_differs(client_order_id: str, row: tuple[Any, ...], offered: str) -> None:
    if row[1] != offered:
        log.warning(
            "intent_payload_mismatch",
            client_order_id=client_order_id,
            stored=row[1],
            offered=offered,
        )


def _claim(conn: sqlite3.Connection, client_order_id: str, ts: int) -> bool:
    """Set submitted_ms if unset; True when this call claimed the submission."""
    return (
        conn.execute(
            "UPDATE intents SET submitted_ms = ? "
            "WHERE client_order_id = ? AND submitted_ms IS NULL",
            (ts, client_order_id),
        ).rowcount
        == 1
    )


def _set_outcome(conn: sqlite3.Connection, client_order_id: str, outcome: str, ts: int) -> bool:
    """Set the outcome if unset; True when this call set it."""
    return (
        conn.execute(
            "UPDATE intents SET outcome = ?, outcome_ms = ? "
            "WHERE client_order_id = ? AND outcome IS NULL",
            (outcome, ts, client_order_id),
        ).rowcount
        == 1
    )


def _candle_rows(candles: Iterable[CandleRow]) -> list[CandleRow]:
    rows = []
    for row in candles:
        symbol, timeframe, ts_open, *prices, complete = row
        _check_text(symbol, "candle symbol")
        _check_text(timeframe, "candle timeframe")
        _check_int(ts_open, "candle ts_open", 0)
        rows.append((symbol, timeframe, ts_open, *(float(p) for p in prices), bool(complete)))
    return rows  # type: ignore[return-value]


def _insert_candles(conn: sqlite3.Connection, rows: list[CandleRow]) -> None:
    conn.executemany(
        "INSERT INTO candles (symbol, timeframe, ts_open, open, high, low, close, "
        "volume, complete) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    for symbol, timeframe in {(r[0], r[1]) for r in rows}:
        conn.execute(
            "DELETE FROM candles WHERE symbol = ? AND timeframe = ? AND id <= ("
            "SELECT id FROM candles WHERE symbol = ? AND timeframe = ? "
            "ORDER BY id DESC LIMIT 1 OFFSET ?)",
            (symbol, timeframe, symbol, timeframe, CANDLES_KEPT),
        )


def _insert_snapshot(conn: sqlite3.Connection, state_json: str, last_seq: int, ts: int) -> int:
    snap_id = _rowid(
        conn.execute(
            "INSERT INTO snapshots (last_seq, ts_wall_ms, state, sha256) VALUES (?, ?, ?, ?)",
            (last_seq, ts, state_json, snapshot_checksum(state_json, last_seq)),
        )
    )
    conn.execute("DELETE FROM snapshots WHERE id <= ?", (snap_id - SNAPSHOTS_KEPT,))
    return snap_id


class Ledger:
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
        _check_text(kind, "daemon event kind")
        detail_json = _dict_json(detail, f"detail of daemon event {kind!r}")
        _check_int(ts_wall_ms, "ts_wall_ms", 0)
        with db.transaction(self._conn) as conn:
            row_id = _rowid(
                conn.execute(
                    "INSERT INTO daemon_events (ts_wall_ms, kind, detail) VALUES (?, ?, ?)",
                    (ts_wall_ms, kind, detail_json),
                )
            )
            conn.execute("DELETE FROM daemon_events WHERE id <= ?", (row_id - DAEMON_EVENTS_KEPT,))
        return row_id

    def recent_daemon_events(self, limit: int = 50) -> list[DaemonEvent]:
        """The newest `limit` daemon events, newest first."""
        _check_int(limit, "limit", 1)
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
    ) -> list[int]:
        """Events, the intents among them, their lifecycle and the state they lead to: ONE transaction.

        Appends `(kind, payload, ts_event)` events, records each
        `(client_order_id, payload)` intent (idempotently, as `record_intent`),
        claims each `(client_order_id, ts)` submission, sets each
        `(client_order_id, outcome, ts)` outcome (first one wins, as
        `mark_outcome`), appends the `candles` detection ran on since the last
        batch, and, when `state` is given, writes a snapshot
        covering every event up to the last one appended. All or nothing;
        returns the new seqs.

        A submission that was already claimed is an InvariantViolation and
        the whole batch is rolled back: within one batch the order has just
        been sent (an in-process broker), so a second claim means the same
        client order id went out twice.
        """
        rows = _event_rows(items)
        intent_rows = [_intent_row(cid, payload) for cid, payload in intents]
        claims = [
            (
                _check_text(cid, "client_order_id", MAX_CLIENT_ORDER_ID_LEN),
                _check_int(ts, "submission ts", 0),
            )
            for cid, ts in submissions
        ]
        ends = [
            (
                _check_text(cid, "client_order_id", MAX_CLIENT_ORDER_ID_LEN),
                _check_text(outcome, "outcome"),
                _check_int(ts, "outcome ts", 0),
            )
            for cid, outcome, ts in outcomes
        ]
        state_json = None if state is None else _dict_json(state, "snapshot state")
        candle_rows = _candle_rows(candles)
        with db.transaction(self._conn) as conn:
            seqs = _insert_events(conn, rows)
            if candle_rows:
                _insert_candles(conn, candle_rows)
            stored = [_insert_intent(conn, cid, payload_json) for cid, payload_json in intent_rows]
            for cid, ts in claims:
                if not _claim(conn, cid, ts):
                    raise InvariantViolation(
                        f"client order id {cid!r} was already submitted (or never recorded); "
                        "refusing to record a second submission",
                        client_order_id=cid,
                    )
            conflicts = [
                (cid, outcome)
                for cid, outcome, ts in ends
                if not _set_outcome(conn, cid, outcome, ts)
            ]
            if state_json is not None:
                _insert_snapshot(conn, state_json, self.last_seq(), db.now_ms())
        for (cid, offered), row in zip(intent_rows, stored, strict=True):
            _warn_if_intent_differs(cid, row, offered)
        for cid, outcome in conflicts:
            self._explain_outcome_refused(cid, outcome)
        return seqs

    def last_seq(self) -> int:
        """The sequence number of the newest event (0 when the log is empty)."""
        return int(self._conn.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0])

    def count_events_after(self, seq: int, ignoring: Iterable[str] = ()) -> int:
        """How many events lie after `seq`, not counting the kinds in `ignoring`."""
        _check_int(seq, "seq", 0)
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
        _check_int(seq, "seq", 0)
        limit = PAGE_SIZE if limit is None else _check_int(limit, "limit", 1)
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

    # -- the intents outbox --------------------------------------------------------------

    def record_intent(self, client_order_id: str, payload: Mapping[str, Any]) -> IntentRecord:
        """Record an order intent BEFORE its order leaves the process; returns the stored row.

        Idempotent: recording an id that exists is a no-op returning the
        existing row (the first payload wins; a different payload is logged
        as `intent_payload_mismatch`, since ids derive from the intent).
        """
        cid, payload_json = _intent_row(client_order_id, payload)
        with db.transaction(self._conn) as conn:
            row = _insert_intent(conn, cid, payload_json)
        _warn_if_intent_differs(cid, row, payload_json)
        return _intent(row)

    def record_and_claim(self, client_order_id: str, payload: Mapping[str, Any], ts: int) -> bool:
        """A venue router's step before sending: record the intent and claim it, one transaction.

        True: this call claimed it, send the order now. False: it was claimed
        before (a run that then crashed?): look it up at the venue by client
        order id, never send it again. Then commit the venue's answer with
        `commit_batch` (events and, once it ends, the outcome).
        """
        cid, payload_json = _intent_row(client_order_id, payload)
        _check_int(ts, "submission ts", 0)
        with db.transaction(self._conn) as conn:
            row = _insert_intent(conn, cid, payload_json)
            claimed = _claim(conn, cid, ts)
        _warn_if_intent_differs(cid, row, payload_json)
        return claimed

    def get_intent(self, client_order_id: str) -> IntentRecord | None:
        """The stored intent for `client_order_id`, or None."""
        row = self._conn.execute(
            f"SELECT {_INTENT_COLUMNS} FROM intents WHERE client_order_id = ?", (client_order_id,)
        ).fetchone()
        return None if row is None else _intent(row)

    def _require_intent(self, client_order_id: str, action: str) -> IntentRecord:
        record = self.get_intent(client_order_id)
        if record is None:
            raise InvariantViolation(
                f"cannot {action} client order id {client_order_id!r}: no intent was recorded "
                "for it",
                client_order_id=client_order_id,
            )
        return record

    def record_submission(self, client_order_id: str, ts: int) -> bool:
        """Claim the right to send this intent's order; True exactly once per client order id.

        Call it just before the order leaves the process and send only on
        True. False means it was claimed before (maybe by a run that then
        crashed): reconcile with the venue by client order id, never resend.
        An id with no recorded intent is an InvariantViolation.
        """
        _check_text(client_order_id, "client_order_id", MAX_CLIENT_ORDER_ID_LEN)
        _check_int(ts, "submission ts", 0)
        with db.transaction(self._conn) as conn:
            claimed = _claim(conn, client_order_id, ts)
        if not claimed:
            self._require_intent(client_order_id, "submit")
        return claimed

    def mark_outcome(self, client_order_id: str, outcome: str, ts: int | None = None) -> bool:
        """Record how an intent ended (filled, canceled, rejected, denied...); first one wins.

        Returns True when this call set the outcome, False when the intent
        already had one (a different later outcome is logged as
        `intent_outcome_conflict` and ignored). Unknown ids raise
        InvariantViolation.
        """
        _check_text(client_order_id, "client_order_id", MAX_CLIENT_ORDER_ID_LEN)
        _check_text(outcome, "outcome")
        ts = db.now_ms() if ts is None else _check_int(ts, "outcome ts", 0)
        with db.transaction(self._conn) as conn:
            updated = _set_outcome(conn, client_order_id, outcome, ts)
        if not updated:
            self._explain_outcome_refused(client_order_id, outcome)
        return updated

    def _explain_outcome_refused(self, client_order_id: str, outcome: str) -> None:
        existing = self._require_intent(client_order_id, "mark the outcome of")
        if existing.outcome != outcome:
            log.warning(
                "intent_outcome_conflict",
                client_order_id=client_order_id,
                stored=existing.outcome,
                offered=outcome,
            )

    def pending_intents(self) -> list[IntentRecord]:
        """Intents with no outcome yet, oldest first: the work crash recovery must finish."""
        rows = self._conn.execute(
            f"SELECT {_INTENT_COLUMNS} FROM intents WHERE outcome IS NULL ORDER BY id"
        ).fetchall()
        return [_intent(r) for r in rows]

    def intents_by_id(self, client_order_ids: Iterable[str]) -> dict[str, IntentRecord]:
        """The stored intents among `client_order_ids` (unknown ids are simply absent)."""
        found: dict[str, IntentRecord] = {}
        ids = list(dict.fromkeys(client_order_ids))
        for start in range(0, len(ids), PAGE_SIZE):
            chunk = ids[start : start + PAGE_SIZE]
            marks = ",".join("?" * len(chunk))
            for row in self._conn.execute(
                f"SELECT {_INTENT_COLUMNS} FROM intents WHERE client_order_id IN ({marks})", chunk
            ):
                found[row[0]] = _intent(row)
        return found

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

    # -- candles (detection's input, for rebuilding its state) ---------------------------

    def candles_page(self, after_id: int, limit: int | None = None) -> list[tuple[int, CandleRow]]:
        """Up to `limit` stored candles with ids above `after_id`, in the order detection saw them."""
        _check_int(after_id, "after_id", 0)
        limit = PAGE_SIZE * 10 if limit is None else _check_int(limit, "limit", 1)
        rows = self._conn.execute(
            "SELECT id, symbol, timeframe, ts_open, open, high, low, close, volume, complete "
            "FROM candles WHERE id > ? ORDER BY id LIMIT ?",
            (after_id, limit),
        ).fetchall()
        return [(r[0], (r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], bool(r[9]))) for r in rows]

    def correct_candle(self, row: CandleRow) -> int:
        """Put the venue's true bar over a stored one that went out wrong; the rows changed.

        A feed sends a BarCorrection when a bar it emitted lacked trades (or was a
        placeholder); the next start's detection then runs over the true bar.
        """
        [(symbol, timeframe, ts_open, o, h, lo, c, v, complete)] = _candle_rows([row])
        with db.transaction(self._conn) as conn:
            return conn.execute(
                "UPDATE candles SET open = ?, high = ?, low = ?, close = ?, volume = ?, complete = ? "
                "WHERE symbol = ? AND timeframe = ? AND ts_open = ?",
                (o, h, lo, c, v, complete, symbol, timeframe, ts_open),
            ).rowcount

    def shift_candles(self, symbol: str, before_ms: int, offset: float) -> int:
        """Back-adjust a futures roll: add `offset` to the prices of `symbol`'s stored candles
        opening before `before_ms` (every timeframe); the rows changed. Detection rebuilt from
        them then sees one continuous series (`core/continuous.py`), not the step between months.
        """
        _check_text(symbol, "candle symbol")
        _check_int(before_ms, "before_ms", 0)
        if not math.isfinite(offset):
            raise ValueError(f"offset must be a finite price step, got {offset!r}")
        with db.transaction(self._conn) as conn:
            return conn.execute(
                "UPDATE candles SET open = open + ?, high = high + ?, low = low + ?, "
                "close = close + ? WHERE symbol = ? AND ts_open < ?",
                (offset, offset, offset, offset, symbol, before_ms),
            ).rowcount

    def newest_candles(self) -> dict[str, int]:
        """Per "symbol/timeframe", the open time of the newest stored candle."""
        rows = self._conn.execute(
            "SELECT symbol, timeframe, max(ts_open) FROM candles GROUP BY symbol, timeframe"
        )
        return {f"{symbol}/{timeframe}": int(ts) for symbol, timeframe, ts in rows}

    # -- snapshots -----------------------------------------------------------------------

    def write_snapshot(
        self, state: Mapping[str, Any], last_seq: int, ts_wall_ms: int | None = None
    ) -> int:
        """Store `state` as covering every event up to `last_seq`; returns the snapshot id.

        `last_seq` may not be beyond the newest event. Only the newest
        SNAPSHOTS_KEPT snapshots are kept.
        """
        state_json = _dict_json(state, "snapshot state")
        _check_int(last_seq, "last_seq", 0)
        ts = db.now_ms() if ts_wall_ms is None else _check_int(ts_wall_ms, "ts_wall_ms", 0)
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
        _check_text(key, "setting key")
        value_json = db.canonical_json(value, f"value of setting {key!r}")
        ts = db.now_ms() if ts_wall_ms is None else _check_int(ts_wall_ms, "ts_wall_ms", 0)
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


__all__ = ["DaemonEvent", "Event", "IntentRecord", "Ledger", "Snapshot"]
