"""Online backups of the state database and the start-up check that restores from them.

`backup_database` copies the live database with the sqlite3 backup API into
`<state_dir>/backups/` (as a self-contained, non-WAL file), verifies the copy
with `PRAGMA integrity_check`, and keeps the newest N. `verify_and_open` is
the start-up path: a sound database is opened as is; a corrupt one (or one
that vanished while backups exist) is moved aside and replaced by the newest
good backup, loudly; with no good backup it raises StateCorrupt naming the
runbook.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from pathlib import Path

import structlog

from fractald.errors import StateUnavailable
from fractald.store import db
from fractald.store.ledger import Ledger

log = structlog.get_logger(__name__)

DEFAULT_KEEP = 5


def default_backups_dir(db_path: Path) -> Path:
    """`<state_dir>/backups`, beside the database."""
    return db_path.parent / "backups"


def _stamp() -> str:
    """A UTC timestamp with microseconds that sorts as text: 20261123T161632123456Z."""
    ns = time.time_ns()
    return (
        time.strftime("%Y%m%dT%H%M%S", time.gmtime(ns // 1_000_000_000))
        + f"{ns // 1_000 % 1_000_000:06d}Z"
    )


def list_backups(db_path: Path, backups_dir: Path | None = None) -> list[Path]:
    """The backups of `db_path` in `backups_dir`, newest first."""
    db_path = Path(db_path)
    backups_dir = default_backups_dir(db_path) if backups_dir is None else Path(backups_dir)
    if not backups_dir.is_dir():
        return []
    suffix = db_path.suffix or ".db"
    found = [p for p in backups_dir.glob(f"{db_path.stem}-*{suffix}") if p.is_file()]
    return sorted(found, key=lambda p: p.name, reverse=True)


def _fsync(path: Path, directory: bool = False) -> None:
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def file_problem(path: Path) -> str | None:
    """None when `path` is a sound SQLite database, else what is wrong with it.

    Errors that are not about the bytes (permissions, I/O, locking) raise
    StateUnavailable instead: restoring a backup would not fix those.
    """
    if not path.is_file():
        return "missing"
    try:
        conn = sqlite3.connect(path, timeout=db.BUSY_TIMEOUT_MS / 1000)
    except sqlite3.Error as exc:
        raise StateUnavailable(f"{path} cannot be opened: {exc}", path=str(path)) from exc
    try:
        return db.integrity_problem(conn)
    except sqlite3.Error as exc:
        raise StateUnavailable(f"{path} cannot be checked: {exc}", path=str(path)) from exc
    finally:
        conn.close()


def backup_database(
    db_path: str | Path, backups_dir: str | Path | None = None, keep: int = DEFAULT_KEEP
) -> Path:
    """Copy the live database into `backups_dir`, verify the copy, keep the newest `keep`.

    Uses its own read connection, so under WAL the daemon keeps writing
    while the copy is taken (the copy is one consistent read snapshot).
    Returns the new backup's path. A copy that fails integrity_check means
    the live database is damaged: StateCorrupt.
    """
    db_path = Path(db_path)
    backups_dir = default_backups_dir(db_path) if backups_dir is None else Path(backups_dir)
    if not isinstance(keep, int) or isinstance(keep, bool) or keep < 1:
        raise ValueError(f"keep must be an int >= 1, got {keep!r}")
    if not db_path.is_file():
        raise StateUnavailable(
            f"state database {db_path} does not exist; nothing to back up", path=str(db_path)
        )
    db.ensure_state_dir(backups_dir)
    final = backups_dir / f"{db_path.stem}-{_stamp()}{db_path.suffix or '.db'}"
    tmp = final.with_name(final.name + ".tmp")
    try:
        _copy_online(db_path, tmp)
        problem = file_problem(tmp)
        if problem is not None:
            raise db.corrupt_error(db_path, f"its backup failed integrity_check: {problem}")
        _fsync(tmp)
        os.replace(tmp, final)
        _fsync(backups_dir, directory=True)
    finally:
        _remove_partial(tmp)
    _prune(db_path, backups_dir, keep)
    log.info("state_backup_written", db=str(db_path), backup=str(final))
    return final


def _remove_partial(tmp: Path) -> None:
    """A failed copy leaves nothing: the file and SQLite's companions (-journal, -wal, -shm)."""
    for leftover in (tmp, *(tmp.with_name(tmp.name + s) for s in ("-journal", "-wal", "-shm"))):
        leftover.unlink(missing_ok=True)


def _copy_online(db_path: Path, target: Path) -> None:
    src = sqlite3.connect(db_path, timeout=db.BUSY_TIMEOUT_MS / 1000)
    try:
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)
            # The copy carries the source's WAL flag; switch it back so a backup
            # is one self-contained file with no -wal/-shm companions.
            dst.execute("PRAGMA journal_mode=DELETE")
        finally:
            dst.close()
    except sqlite3.DatabaseError as exc:
        if db.is_corruption(exc):
            raise db.corrupt_error(db_path, f"online backup failed: {exc}") from exc
        raise StateUnavailable(f"backup of {db_path} failed: {exc}", path=str(db_path)) from exc
    finally:
        src.close()


def _prune(db_path: Path, backups_dir: Path, keep: int) -> None:
    for old in list_backups(db_path, backups_dir)[keep:]:
        old.unlink(missing_ok=True)
        log.info("state_backup_pruned", backup=str(old))
    # Half-written copies left by a crash mid-backup (backups are serialised per ledger).
    for stale in backups_dir.glob(f"{db_path.stem}-*{db_path.suffix or '.db'}.tmp"):
        _remove_partial(stale)
    for journal in backups_dir.glob(f"{db_path.stem}-*{db_path.suffix or '.db'}.tmp-journal"):
        journal.unlink(missing_ok=True)


def _needs_restore(db_path: Path, backups_dir: Path) -> str | None:
    """Why the main database must be restored, or None when it can be opened as it is."""
    if not db_path.exists() or (db_path.is_file() and db_path.stat().st_size == 0):
        # A fresh start has no backups either; a missing ledger WITH backups means
        # state was lost, and forgetting open positions is worse than restoring.
        return (
            "missing or empty while backups exist" if list_backups(db_path, backups_dir) else None
        )
    return file_problem(db_path)


def restore_from_backup(db_path: Path, backups_dir: Path, problem: str) -> Path:
    """Replace the damaged `db_path` by the newest good backup; returns the backup used.

    The damaged files (database, -wal, -shm) are kept beside it as
    `*.corrupt-<stamp>` for analysis. Raises StateCorrupt when no backup is good.
    """
    for candidate in list_backups(db_path, backups_dir):
        bad = file_problem(candidate)
        if bad is None:
            break
        log.error("state_backup_bad", backup=str(candidate), problem=bad)
    else:
        raise db.corrupt_error(db_path, problem)
    stamp = _stamp()
    kept_aside = []
    for suffix in ("", "-wal", "-shm"):
        damaged = Path(f"{db_path}{suffix}")
        if damaged.exists():
            aside = Path(f"{db_path}{suffix}.corrupt-{stamp}")
            os.replace(damaged, aside)
            kept_aside.append(str(aside))
    tmp = db_path.with_name(db_path.name + ".restore.tmp")
    shutil.copyfile(candidate, tmp)
    _fsync(tmp)
    os.replace(tmp, db_path)
    _fsync(db_path.parent, directory=True)
    log.critical(
        "state_restored_from_backup",
        db=str(db_path),
        backup=str(candidate),
        problem=problem,
        damaged_files_kept=kept_aside,
        note="events written after this backup are lost; reconcile with the venue",
    )
    return candidate


def verify_and_open(
    path: str | Path, backups_dir: str | Path | None = None, *, lock: bool = True
) -> Ledger:
    """Start-up: check the state database, restore it from backup if damaged, open it.

    integrity_check runs on the main database first. A corrupt file (or not
    a database at all, or missing while backups exist) is replaced by the
    newest backup that passes integrity_check, with a critical
    `state_restored_from_backup` log line naming both paths. With no good
    backup: StateCorrupt, whose message says what to do and names the runbook.
    """
    path = Path(path)
    backups_dir = default_backups_dir(path) if backups_dir is None else Path(backups_dir)
    db.ensure_state_dir(path.parent)
    state_lock = db.StateLock(path) if lock else None
    try:
        problem = _needs_restore(path, backups_dir)
        if problem is not None:
            log.error("state_database_damaged", db=str(path), problem=problem)
            restore_from_backup(path, backups_dir, problem)
        return Ledger.from_locked(path, state_lock)
    except BaseException:
        if state_lock is not None:
            state_lock.release()
        raise


__all__ = [
    "DEFAULT_KEEP",
    "backup_database",
    "default_backups_dir",
    "file_problem",
    "list_backups",
    "restore_from_backup",
    "verify_and_open",
]
