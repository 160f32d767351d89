"""Online backups and restore-on-start, with real files whose bytes we really damage."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from fractald.errors import StateCorrupt, StateUnavailable
from fractald.store import backup, db
from fractald.store.backup import backup_database, list_backups, verify_and_open
from fractald.store.ledger import Ledger

EVENTS = 3_000  # enough rows for a file of many pages, so "the middle" is real table data


def write_events(path: Path, count: int = EVENTS) -> None:
    with Ledger.open(path) as led:
        led.append_many([("fill", {"i": i, "pad": "x" * 80}, i) for i in range(count)])
        led.record_intent("cid-1", {"qty": 1})
        led.set_setting("risk.max_heat", 0.05)


def overwrite_middle(path: Path, seed: int = 7) -> None:
    """Overwrite four whole pages in the middle of the file with random bytes."""
    page = 4096
    pages = path.stat().st_size // page
    assert pages > 8, "the database is too small to damage its middle"
    rng = random.Random(seed)
    with open(path, "r+b") as f:
        f.seek((pages // 2) * page)
        f.write(rng.randbytes(4 * page))


def integrity(path: Path) -> str:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        return str(exc)
    finally:
        conn.close()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "fractald.sqlite"


def test_backup_is_a_verified_self_contained_copy(db_path: Path) -> None:
    write_events(db_path, 10)
    made = backup_database(db_path)
    assert made.parent == db_path.parent / "backups"
    assert list_backups(db_path) == [made]
    assert not Path(f"{made}-wal").exists()
    conn = sqlite3.connect(made)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == 10
    conn.close()


def test_backup_while_the_ledger_is_open_and_written(db_path: Path) -> None:
    with Ledger.open(db_path) as led:
        led.append("fill", {"i": 0}, 0)
        first = backup_database(db_path)
        led.append("fill", {"i": 1}, 1)  # the live ledger keeps working
        second = backup_database(db_path)
    counts = []
    for made in (first, second):
        conn = sqlite3.connect(made)
        counts.append(conn.execute("SELECT count(*) FROM events").fetchone()[0])
        conn.close()
    assert counts == [1, 2]


def test_only_the_newest_backups_are_kept(db_path: Path) -> None:
    write_events(db_path, 1)
    stale = db_path.parent / "backups" / f"{db_path.stem}-20200101T000000000000Z.sqlite.tmp"
    stale.parent.mkdir()
    stale.write_bytes(b"half a copy from a crash")
    made = [backup_database(db_path, keep=3) for _ in range(5)]
    assert list_backups(db_path) == list(reversed(made[-3:]))
    assert not any(p.name.endswith(".tmp") for p in (db_path.parent / "backups").iterdir())
    with pytest.raises(ValueError, match="keep must be an int >= 1"):
        backup_database(db_path, keep=0)


def test_a_sound_database_opens_without_restore(db_path: Path) -> None:
    write_events(db_path, 5)
    backup_database(db_path)
    with capture_logs() as logs, verify_and_open(db_path) as led:
        assert led.last_seq() == 5
    assert not any(entry["event"] == "state_restored_from_backup" for entry in logs)


def test_first_start_with_nothing_is_an_empty_ledger(db_path: Path) -> None:
    with verify_and_open(db_path) as led:
        assert led.last_seq() == 0 and led.schema_version() == db.SCHEMA_VERSION


def test_corrupt_database_is_restored_then_all_backups_corrupt_is_fatal(db_path: Path) -> None:
    write_events(db_path)
    made = backup_database(db_path)
    overwrite_middle(db_path)
    assert integrity(db_path) != "ok"  # the damage is real

    with capture_logs() as logs, verify_and_open(db_path) as led:
        events = list(led.events_after(0))
        assert [e.payload["i"] for e in events] == list(range(EVENTS))
        assert led.get_intent("cid-1").payload == {"qty": 1}
        assert led.get_settings() == {"risk.max_heat": 0.05}
        led.check_integrity()
    restored = [e for e in logs if e["event"] == "state_restored_from_backup"]
    assert len(restored) == 1
    assert restored[0]["db"] == str(db_path) and restored[0]["backup"] == str(made)
    assert restored[0]["log_level"] == "critical"
    aside = restored[0]["damaged_files_kept"][0]
    assert Path(aside).is_file() and integrity(Path(aside)) != "ok"

    overwrite_middle(db_path, seed=8)
    for each in list_backups(db_path):
        overwrite_middle(each, seed=9)
    with pytest.raises(StateCorrupt) as info:
        verify_and_open(db_path)
    message = str(info.value)
    assert "runbooks/state-database-corrupt.md" in message
    assert str(db_path) in message and "no good backup" in message
    assert info.value.exit_status == 65
    with pytest.raises(StateCorrupt):  # and again on the next start: never silently empty
        verify_and_open(db_path)


def test_not_a_database_is_restored_from_backup(db_path: Path) -> None:
    write_events(db_path, 20)
    backup_database(db_path)
    db_path.write_bytes(b"\x00garbage" * 1000)
    with verify_and_open(db_path) as led:
        assert led.last_seq() == 20


def test_a_bad_newest_backup_falls_back_to_an_older_good_one(db_path: Path) -> None:
    write_events(db_path, 2_000)
    older = backup_database(db_path)
    with Ledger.open(db_path) as led:
        led.append("fill", {"late": True}, 1)
    newer = backup_database(db_path)
    overwrite_middle(newer)
    overwrite_middle(db_path)
    with capture_logs() as logs, verify_and_open(db_path) as led:
        assert led.last_seq() == 2_000  # the older backup: the late event is lost
    names = [e["event"] for e in logs]
    assert "state_backup_bad" in names
    assert next(e for e in logs if e["event"] == "state_restored_from_backup")["backup"] == \
        str(older)


def test_missing_database_with_backups_is_restored(db_path: Path) -> None:
    write_events(db_path, 3)
    backup_database(db_path)
    db_path.unlink()
    with verify_and_open(db_path) as led:
        assert led.last_seq() == 3


def test_corrupt_database_and_no_backups_is_fatal(db_path: Path) -> None:
    write_events(db_path)
    overwrite_middle(db_path)
    with pytest.raises(StateCorrupt, match="no good backup"):
        verify_and_open(db_path)
    assert db_path.exists()  # nothing was moved or deleted


def test_backing_up_a_corrupt_database_fails_loudly(db_path: Path) -> None:
    write_events(db_path)
    overwrite_middle(db_path)
    with pytest.raises(StateCorrupt):
        backup_database(db_path)
    assert list_backups(db_path) == []


def test_restore_helper_raises_without_backups_dir(tmp_path: Path) -> None:
    with pytest.raises(StateCorrupt, match=db.RUNBOOK):
        backup.restore_from_backup(tmp_path / "x.sqlite", tmp_path / "nowhere", "broken")


def test_start_up_refuses_state_held_by_another_daemon(db_path: Path) -> None:
    write_events(db_path, 1)
    with Ledger.open(db_path), pytest.raises(StateUnavailable, match="in use by another process"):
        verify_and_open(db_path)
    with verify_and_open(db_path) as led:  # and the refusal left nothing locked behind
        assert led.last_seq() == 1
