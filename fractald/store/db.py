"""The state database's plumbing: state directory, connection, pragmas, schema and migrations.

One SQLite file in the state directory holds everything the daemon must
remember across restarts. This module knows how to open it safely; the
record-keeping API lives in `ledger.py`, backups in `backup.py`.

The schema grows by *forward migrations*: `MIGRATIONS[i]` is the list of SQL
statements that takes a database from version `i` to version `i + 1`.
Released steps are never edited; a change is a new step appended at the end.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fractald.errors import StateCorrupt, StateTooNew, StateUnavailable

RUNBOOK = "runbooks/state-database-corrupt.md"
BUSY_TIMEOUT_MS = 5_000

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # v1 (issue 3): the daemon's own record: starts, stops, actor restarts, exit reasons.
    (
        """CREATE TABLE daemon_events (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            ts_wall_ms INTEGER NOT NULL,
            kind TEXT NOT NULL CHECK (length(kind) > 0),
            detail TEXT NOT NULL)""",
    ),
    # v2 (issue 5): the ledger: append-only events, intents outbox, snapshots, settings.
    (
        """CREATE TABLE events (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            kind TEXT NOT NULL CHECK (length(kind) > 0),
            ts_event INTEGER NOT NULL,
            payload TEXT NOT NULL)""",
        # Append-only is a property of the schema, not just of this module's code.
        """CREATE TRIGGER events_no_update BEFORE UPDATE ON events
           BEGIN SELECT RAISE(ABORT, 'events are append-only'); END""",
        """CREATE TRIGGER events_no_delete BEFORE DELETE ON events
           BEGIN SELECT RAISE(ABORT, 'events are append-only'); END""",
        """CREATE TABLE intents (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            client_order_id TEXT NOT NULL UNIQUE CHECK (length(client_order_id) > 0),
            payload TEXT NOT NULL,
            recorded_ms INTEGER NOT NULL,
            submitted_ms INTEGER,
            outcome TEXT,
            outcome_ms INTEGER)""",
        "CREATE INDEX intents_pending ON intents (id) WHERE outcome IS NULL",
        # A submission is claimed once; identity and outcome never change; intents are kept.
        """CREATE TRIGGER intents_submit_once BEFORE UPDATE OF submitted_ms ON intents
           WHEN OLD.submitted_ms IS NOT NULL
           BEGIN SELECT RAISE(ABORT, 'client order id already submitted'); END""",
        """CREATE TRIGGER intents_outcome_once BEFORE UPDATE OF outcome ON intents
           WHEN OLD.outcome IS NOT NULL
           BEGIN SELECT RAISE(ABORT, 'intent already has an outcome'); END""",
        """CREATE TRIGGER intents_identity_fixed BEFORE UPDATE OF client_order_id, payload ON intents
           BEGIN SELECT RAISE(ABORT, 'an intent is immutable'); END""",
        """CREATE TRIGGER intents_no_delete BEFORE DELETE ON intents
           BEGIN SELECT RAISE(ABORT, 'intents are kept'); END""",
        """CREATE TABLE snapshots (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            last_seq INTEGER NOT NULL CHECK (last_seq >= 0),
            ts_wall_ms INTEGER NOT NULL,
            state TEXT NOT NULL,
            sha256 TEXT NOT NULL)""",
        """CREATE TABLE settings (
            key TEXT PRIMARY KEY CHECK (length(key) > 0),
            value TEXT NOT NULL,
            updated_ms INTEGER NOT NULL)""",
    ),
    # v3 (issue 5, reconciliation): positions and fills are re-derived from the log by kind.
    ("CREATE INDEX events_kind ON events (kind, seq)",),
    # v4 (issue 11, JSON state): the closed candles detection ran on, in the order it saw
    # them, so start-up rebuilds the live SMC state by running detection over them again.
    (
        """CREATE TABLE candles (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            symbol TEXT NOT NULL,
            timeframe TEXT NOT NULL,
            ts_open INTEGER NOT NULL,
            open REAL NOT NULL,
            high REAL NOT NULL,
            low REAL NOT NULL,
            close REAL NOT NULL,
            volume REAL NOT NULL,
            complete INTEGER NOT NULL CHECK (complete IN (0, 1)))""",
        "CREATE INDEX candles_series ON candles (symbol, timeframe, id)",
    ),
    # v5 (issue 11): the equity history's closed points, out of the snapshots
    # (`fractald.store.equity_store`); each snapshot then holds only the open ones.
    (
        """CREATE TABLE equity_points (
            level INTEGER NOT NULL,
            idx INTEGER NOT NULL,
            ts INTEGER NOT NULL,
            equity REAL NOT NULL,
            PRIMARY KEY (level, idx)) WITHOUT ROWID""",
    ),
    # v6 (issue 11): the engine's terminal orders, out of the snapshots, each written once
    # (`fractald.store.order_store`); each snapshot then holds the working orders' bodies.
    (
        """CREATE TABLE ended_orders (
            client_order_id TEXT PRIMARY KEY CHECK (length(client_order_id) > 0),
            body TEXT NOT NULL) WITHOUT ROWID""",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)

# SQLite primary result codes that mean "the bytes are bad", as opposed to
# "the file cannot be used right now" (permissions, I/O, disk full, locked).
_CORRUPT_CODES = {11, 26}  # SQLITE_CORRUPT, SQLITE_NOTADB


def now_ms() -> int:
    """Wall-clock milliseconds since the epoch, for bookkeeping columns (never for trading)."""
    return time.time_ns() // 1_000_000


def canonical_json(value: Any, what: str) -> str:
    """The one JSON text of `value` (sorted keys, no spaces, no NaN): what we store and hash.

    JSON has no tuples and only string keys, so tuples come back as lists and
    number keys as strings; callers store plain JSON-able data.
    """
    try:
        # ASCII output: any str (even a lone surrogate) survives UTF-8 storage and hashing.
        return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} is not plain JSON data: {exc}") from exc


def is_corruption(exc: sqlite3.Error) -> bool:
    """True when SQLite says the file's bytes are damaged or not a database at all."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return (code & 0xFF) in _CORRUPT_CODES
    text = str(exc).lower()
    return "malformed" in text or "not a database" in text


# SQLite primary result codes that mean "the file cannot be used now": exit 69 with its path.
_UNUSABLE = {
    3: "permission denied",
    5: "locked by another process (busy)",
    6: "locked by another connection",
    8: "read-only",
    10: "an I/O error",
    13: "the disk is full",
    14: "it cannot be opened",
}


def unusable_error(path: Path, exc: sqlite3.Error) -> StateUnavailable | None:
    """The fatal error (exit 69, naming the file) for a database that cannot be written now."""
    code = getattr(exc, "sqlite_errorcode", None)
    why = _UNUSABLE.get(code & 0xFF) if code is not None else None
    if why is None:
        return None
    return StateUnavailable(
        f"state database {path} cannot be written: {why} ({exc})",
        path=str(path),
        sqlite_error=getattr(exc, "sqlite_errorname", ""),
    )


def corrupt_error(path: Path, detail: str) -> StateCorrupt:
    """The fatal error for a damaged database with no good backup; it tells the operator what to do."""
    return StateCorrupt(
        f"state database {path} is corrupt ({detail}) and no good backup could be restored. "
        f"The daemon will not trade on state it cannot trust. Follow {RUNBOOK}: keep the "
        "damaged files for analysis, restore a backup by hand or start from empty state after "
        "reconciling positions with the venue.",
        path=str(path),
        runbook=RUNBOOK,
    )


def ensure_state_dir(directory: Path) -> None:
    """Create `directory` if missing and prove we can write to it, else raise StateUnavailable."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StateUnavailable(
            f"state directory {directory} cannot be created: {exc.strerror or exc}",
            path=str(directory),
        ) from exc
    try:
        # A unique name: several openers (threads, processes) may probe at once.
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".write-probe-"):
            pass
    except OSError as exc:
        raise StateUnavailable(
            f"state directory {directory} is not writable: {exc.strerror or exc}",
            path=str(directory),
        ) from exc


class StateLock:
    """An exclusive advisory lock beside the database, so two daemons never share one ledger.

    Released when closed or when the process dies (even by SIGKILL).
    """

    def __init__(self, db_path: Path) -> None:
        self.path = db_path.with_name(db_path.name + ".lock")
        try:
            self._fd: int | None = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StateUnavailable(
                f"state lock {self.path} cannot be opened: {exc}", path=str(self.path)
            ) from exc
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(self._fd)
            self._fd = None
            raise StateUnavailable(
                f"state database {db_path} is in use by another process (lock {self.path} held)",
                path=str(db_path),
            ) from exc

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None


def connect(path: Path) -> sqlite3.Connection:
    """Open `path` with the ledger's pragmas: WAL, synchronous=FULL, foreign keys, busy timeout.

    The connection is in autocommit mode (`isolation_level=None`): every
    write goes through an explicit `BEGIN IMMEDIATE ... COMMIT` (see
    `transaction`). `check_same_thread=False` because the async wrapper runs
    calls on a worker thread, one at a time.
    """
    try:
        conn = sqlite3.connect(
            path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000
        )
    except sqlite3.Error as exc:
        raise StateUnavailable(
            f"state database {path} cannot be opened: {exc}", path=str(path)
        ) from exc
    try:
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StateUnavailable(
                f"state database {path} cannot use WAL journaling (got {mode!r}); "
                "put the state directory on a local filesystem",
                path=str(path),
            )
        conn.execute("PRAGMA synchronous=FULL")  # a commit is on disk before we act on it
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    except BaseException:
        conn.close()
        raise
    return conn


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """All-or-nothing: BEGIN IMMEDIATE, COMMIT on success, ROLLBACK on any exception."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def schema_version(conn: sqlite3.Connection) -> int:
    """The database's schema version (0 for a new, empty database)."""
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type='table' AND name='schema_version'"
    ).fetchone()
    if not exists:
        return 0
    return int(conn.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0])


def migrate(conn: sqlite3.Connection, path: Path, target: int = SCHEMA_VERSION) -> int:
    """Apply the missing forward migrations up to `target` in one transaction; return the version.

    A database newer than this code knows is StateTooNew (exit 79, like a
    snapshot from a newer release): an older fractald after a rollback must not
    write to a schema it does not understand.
    """
    if not 0 <= target <= SCHEMA_VERSION:
        raise ValueError(f"target schema version {target} is outside 0..{SCHEMA_VERSION}")
    with transaction(conn):
        conn.execute("""CREATE TABLE IF NOT EXISTS schema_version (
                        version INTEGER PRIMARY KEY, applied_ms INTEGER NOT NULL)""")
        current = schema_version(conn)
        if current > SCHEMA_VERSION:
            raise StateTooNew(
                f"state database {path} has schema version {current}, newer than this fractald "
                f"understands ({SCHEMA_VERSION}); run the newer fractald that wrote it, or "
                "restore an older backup",
                path=str(path),
                version=current,
            )
        for version in range(current + 1, target + 1):
            for statement in MIGRATIONS[version - 1]:
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_version (version, applied_ms) VALUES (?, ?)",
                (version, now_ms()),
            )
        return max(current, target)


def integrity_problem(conn: sqlite3.Connection) -> str | None:
    """None when `PRAGMA integrity_check` says ok, else a short description of what is wrong."""
    try:
        rows = [str(r[0]) for r in conn.execute("PRAGMA integrity_check(5)").fetchall()]
    except sqlite3.DatabaseError as exc:
        if is_corruption(exc):
            return str(exc)
        raise
    if rows == ["ok"]:
        return None
    return "; ".join(rows)
