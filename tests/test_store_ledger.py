"""The ledger on real SQLite files: pragmas, migrations, event log, intents, snapshots, settings."""

from __future__ import annotations

import math
import os
import sqlite3
import threading
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from fractald.errors import ExitStatus, InvariantViolation, StateCorrupt, StateTooNew, StateUnavailable
from fractald.store import db, ledger
from fractald.store.ledger import Ledger


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "fractald.sqlite"


@pytest.fixture
def led(db_path: Path):
    with Ledger.open(db_path) as opened:
        yield opened


# -- state directory and connection ---------------------------------------------------------

def test_missing_state_directory_is_created(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "c" / "state.sqlite"
    with Ledger.open(path) as opened:
        opened.append("state", {"x": 1}, 1)
    assert path.is_file()


def test_state_directory_under_a_file_is_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    with pytest.raises(StateUnavailable) as info:
        Ledger.open(blocker / "state" / "db.sqlite")
    assert str(blocker / "state") in str(info.value)
    assert "cannot be created" in str(info.value)


@pytest.mark.skipif(not Path("/proc/self").exists(), reason="needs Linux /proc")
def test_existing_unwritable_state_directory_is_unavailable() -> None:
    # /proc refuses new files even to root, unlike a chmod-ed directory.
    with pytest.raises(StateUnavailable) as info:
        Ledger.open("/proc/fractald.sqlite")
    assert "state directory /proc is not writable" in str(info.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_read_only_state_directory_is_unavailable(tmp_path: Path) -> None:
    state = tmp_path / "ro"
    state.mkdir()
    state.chmod(0o500)
    try:
        with pytest.raises(StateUnavailable, match="is not writable"):
            Ledger.open(state / "db.sqlite")
    finally:
        state.chmod(0o700)


def test_pragmas_are_wal_and_synchronous_full(led: Ledger) -> None:
    conn = led.connection
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1


def test_a_second_daemon_cannot_open_the_same_state(db_path: Path) -> None:
    with Ledger.open(db_path):
        with pytest.raises(StateUnavailable, match="in use by another process"):
            Ledger.open(db_path)
    with Ledger.open(db_path) as reopened:  # the lock goes with the first owner
        assert reopened.last_seq() == 0


# -- schema and migrations ------------------------------------------------------------------

def test_new_database_is_at_current_schema(led: Ledger) -> None:
    assert led.schema_version() == db.SCHEMA_VERSION == len(db.MIGRATIONS)
    versions = [r[0] for r in led.connection.execute("SELECT version FROM schema_version")]
    assert versions == list(range(1, db.SCHEMA_VERSION + 1))


def test_opening_an_older_database_migrates_it_and_keeps_data(db_path: Path) -> None:
    db.ensure_state_dir(db_path.parent)
    conn = db.connect(db_path)
    assert db.migrate(conn, db_path, target=1) == 1
    conn.execute("INSERT INTO daemon_events (ts_wall_ms, kind, detail) VALUES (7, 'start', '{}')")
    assert conn.execute("SELECT name FROM sqlite_master WHERE name='events'").fetchone() is None
    conn.close()

    with Ledger.open(db_path) as opened:
        assert opened.schema_version() == db.SCHEMA_VERSION
        assert [(e.kind, e.ts_wall_ms) for e in opened.recent_daemon_events()] == [("start", 7)]
        assert opened.append("fill", {"qty": 1}, 10) == 1


def test_a_newer_database_is_a_clear_fatal_error(db_path: Path) -> None:
    Ledger.open(db_path).close()
    conn = sqlite3.connect(db_path)
    conn.execute("INSERT INTO schema_version (version, applied_ms) VALUES (99, 0)")
    conn.commit()
    conn.close()
    with pytest.raises(StateTooNew) as info:
        Ledger.open(db_path)
    assert info.value.exit_status == ExitStatus.STATE_TOO_NEW == 79  # a rollback, as for a snapshot
    assert "schema version 99, newer than this fractald understands" in str(info.value)
    assert str(db_path) in str(info.value)
    conn = sqlite3.connect(db_path)
    assert conn.execute("SELECT max(version) FROM schema_version").fetchone()[0] == 99
    conn.close()


def test_garbage_file_is_state_corrupt_naming_the_runbook(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    db_path.write_bytes(b"this is not a database at all" * 200)
    with pytest.raises(StateCorrupt) as info:
        Ledger.open(db_path)
    assert db.RUNBOOK in str(info.value)


# -- daemon record --------------------------------------------------------------------------

def test_daemon_events_newest_first_and_bounded(led: Ledger, monkeypatch) -> None:
    monkeypatch.setattr(ledger, "DAEMON_EVENTS_KEPT", 3)
    for i, kind in enumerate(["start", "actor_restart", "actor_restart", "stop", "exit"]):
        led.record_daemon_event(kind, {"n": i, "actor": "feed"}, 1_000 + i)
    events = led.recent_daemon_events(limit=10)
    assert [(e.kind, e.detail["n"], e.ts_wall_ms) for e in events] == [
        ("exit", 4, 1004), ("stop", 3, 1003), ("actor_restart", 2, 1002)]
    assert [e.kind for e in led.recent_daemon_events(limit=1)] == ["exit"]


def test_daemon_event_input_is_checked(led: Ledger) -> None:
    with pytest.raises(ValueError, match="daemon event kind"):
        led.record_daemon_event("", {}, 1)
    with pytest.raises(ValueError, match="must be a dict"):
        led.record_daemon_event("start", ["not", "a", "dict"], 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ts_wall_ms must be an int"):
        led.record_daemon_event("start", {}, 1.5)  # type: ignore[arg-type]


# -- event log ------------------------------------------------------------------------------

def test_append_and_read_back_in_order_across_pages(led: Ledger, monkeypatch) -> None:
    monkeypatch.setattr(ledger, "PAGE_SIZE", 3)
    seqs = [led.append(f"k{i % 3}", {"i": i, "nested": {"b": [1, 2]}}, 100 + i) for i in range(10)]
    assert seqs == list(range(1, 11))
    after4 = list(led.events_after(4))
    assert [e.seq for e in after4] == list(range(5, 11))
    assert [(e.kind, e.ts_event, e.payload["i"]) for e in after4[:2]] == [("k1", 104, 4),
                                                                          ("k2", 105, 5)]
    assert list(led.events_after(10)) == []
    assert led.last_seq() == 10


def test_any_text_round_trips(led: Ledger) -> None:
    odd = {"name": "caf\u00e9 \u20bf \ud800", "k\u00e9y": ["\x00", "\U0001f680"]}
    led.append("note", odd, 1)
    led.write_snapshot(odd, 1)
    assert next(led.events_after(0)).payload == odd
    assert led.latest_good_snapshot().state == odd


def test_append_many_is_one_transaction(led: Ledger) -> None:
    led.append("state", {"s": "ACTIVE"}, 1)
    # A trigger that fails the third insert: the first two must be rolled back with it.
    led.connection.execute("""CREATE TEMP TRIGGER boom BEFORE INSERT ON events
                              WHEN NEW.kind = 'boom' BEGIN SELECT RAISE(ABORT, 'boom'); END""")
    with pytest.raises(sqlite3.IntegrityError, match="boom"):
        led.append_many([("fill", {"q": 1}, 2), ("fill", {"q": 2}, 3), ("boom", {}, 4)])
    assert led.last_seq() == 1
    assert led.append_many([("fill", {"q": 1}, 2), ("order", {"q": 2}, 3)]) == [2, 3]
    assert led.append_many([]) == []


def test_commit_batch_writes_events_intents_and_snapshot_together(led: Ledger) -> None:
    led.append("state", {"s": "ACTIVE"}, 1)
    led.record_intent("cid-old", {"q": 1})
    seqs = led.commit_batch([("order_intent", {"cid": "cid-new"}, 2), ("fill", {"q": 1}, 2)],
                            intents=[("cid-new", {"q": 2}), ("cid-old", {"q": 1})],
                            state={"bars": 7})
    assert seqs == [2, 3]
    snapshot, events = led.recover()
    assert snapshot is not None and (snapshot.last_seq, snapshot.state) == (3, {"bars": 7})
    assert list(events) == []
    assert [i.client_order_id for i in led.pending_intents()] == ["cid-old", "cid-new"]
    led.commit_batch([], state={"bars": 8})  # a snapshot alone covers the log as it is
    assert led.latest_good_snapshot().last_seq == 3


def test_commit_batch_is_all_or_nothing(led: Ledger) -> None:
    with pytest.raises(ValueError, match="client_order_id must be a non-empty string"):
        led.commit_batch([("fill", {}, 1)], intents=[("", {})], state={})
    led.connection.execute("""CREATE TEMP TRIGGER no_snap BEFORE INSERT ON snapshots
                              BEGIN SELECT RAISE(ABORT, 'disk says no'); END""")
    with pytest.raises(sqlite3.IntegrityError, match="disk says no"):
        led.commit_batch([("fill", {}, 1)], intents=[("cid", {})], state={"x": 1})
    assert led.last_seq() == 0 and led.get_intent("cid") is None
    assert led.latest_good_snapshot() is None


def test_append_many_validates_every_item_before_writing(led: Ledger) -> None:
    with pytest.raises(ValueError, match=r"ts_event of 'fill' event must be an int"):
        led.append_many([("fill", {"q": 1}, 2), ("fill", {"q": 2}, True)])
    assert led.last_seq() == 0


@pytest.mark.parametrize("kind, payload, ts, problem", [
    ("", {}, 1, "event kind must be a non-empty string"),
    (" fill", {}, 1, "event kind must be a non-empty string"),
    ("fill", {"px": math.nan}, 1, "payload of 'fill' event is not plain JSON data"),
    ("fill", {"obj": object()}, 1, "payload of 'fill' event is not plain JSON data"),
    ("fill", [1], 1, "payload of 'fill' event must be a dict"),
    ("fill", {}, "1", "ts_event of 'fill' event must be an int"),
])
def test_bad_events_are_refused_with_the_problem_named(led: Ledger, kind, payload, ts,
                                                       problem) -> None:
    with pytest.raises(ValueError, match=problem):
        led.append(kind, payload, ts)
    assert led.last_seq() == 0


def test_the_event_log_is_append_only_in_the_schema(led: Ledger) -> None:
    led.append("fill", {"q": 1}, 1)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        led.connection.execute("UPDATE events SET payload = '{}'")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        led.connection.execute("DELETE FROM events")
    assert [e.payload for e in led.events_after(0)] == [{"q": 1}]


# -- intents --------------------------------------------------------------------------------

def test_record_intent_is_idempotent(led: Ledger) -> None:
    first = led.record_intent("cid-1", {"side": "buy", "qty": 1})
    again = led.record_intent("cid-1", {"side": "buy", "qty": 1})
    assert first == again
    assert first.payload == {"side": "buy", "qty": 1} and not first.submitted
    count = led.connection.execute("SELECT count(*) FROM intents").fetchone()[0]
    assert count == 1


def test_record_intent_with_a_different_payload_keeps_the_first_and_says_so(led: Ledger) -> None:
    led.record_intent("cid-1", {"qty": 1})
    with capture_logs() as logs:
        kept = led.record_intent("cid-1", {"qty": 2})
    assert kept.payload == {"qty": 1}
    assert [entry["event"] for entry in logs] == ["intent_payload_mismatch"]


def test_a_client_order_id_is_submitted_at_most_once(led: Ledger) -> None:
    led.record_intent("cid-1", {"qty": 1})
    assert led.record_submission("cid-1", 1_000) is True
    assert led.record_submission("cid-1", 2_000) is False
    assert led.get_intent("cid-1").submitted_ms == 1_000
    # Even raw SQL cannot submit it again, nor insert the id a second time.
    with pytest.raises(sqlite3.IntegrityError, match="already submitted"):
        led.connection.execute("UPDATE intents SET submitted_ms = 3 WHERE client_order_id='cid-1'")
    with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
        led.connection.execute("INSERT INTO intents (client_order_id, payload, recorded_ms) "
                               "VALUES ('cid-1', '{}', 0)")
    with pytest.raises(sqlite3.IntegrityError, match="intents are kept"):
        led.connection.execute("DELETE FROM intents")


def test_submitting_or_finishing_an_unknown_intent_is_an_invariant_violation(led: Ledger) -> None:
    with pytest.raises(InvariantViolation, match="no intent was recorded"):
        led.record_submission("ghost", 1)
    with pytest.raises(InvariantViolation, match="no intent was recorded"):
        led.mark_outcome("ghost", "filled")


def test_outcomes_and_pending_intents(led: Ledger) -> None:
    for cid in ("a", "b", "c"):
        led.record_intent(cid, {"cid": cid})
    led.record_submission("a", 10)
    led.record_submission("b", 11)
    assert led.mark_outcome("a", "filled", 20) is True
    assert led.mark_outcome("c", "denied", 21) is True  # never sent
    assert [(i.client_order_id, i.submitted) for i in led.pending_intents()] == [("b", True)]
    with capture_logs() as logs:
        assert led.mark_outcome("a", "canceled", 30) is False
    assert led.get_intent("a").outcome == "filled"
    assert [entry["event"] for entry in logs] == ["intent_outcome_conflict"]
    assert led.mark_outcome("a", "filled", 31) is False


def test_racing_connections_claim_each_submission_exactly_once(db_path: Path) -> None:
    Ledger.open(db_path).close()
    ids = [f"cid-{i}" for i in range(40)]
    claims: list[str] = []
    barrier = threading.Barrier(4, timeout=30)
    errors: list[BaseException] = []

    def contender() -> None:
        try:
            with Ledger.open(db_path, lock=False) as mine:
                barrier.wait()
                for cid in ids:
                    mine.record_intent(cid, {"cid": cid})
                    if mine.record_submission(cid, 1):
                        claims.append(cid)
        except Exception as exc:  # surfaced below
            barrier.abort()  # never leave the other contenders waiting
            errors.append(exc)

    threads = [threading.Thread(target=contender) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(claims) == sorted(ids)  # every id claimed, none twice
    with Ledger.open(db_path) as opened:
        assert opened.connection.execute("SELECT count(*) FROM intents").fetchone()[0] == len(ids)


# -- snapshots ------------------------------------------------------------------------------

def test_snapshot_round_trip_and_recover(led: Ledger) -> None:
    for i in range(5):
        led.append("fill", {"i": i}, i)
    led.write_snapshot({"position": 3, "marks": [1.5, 2.5]}, last_seq=3, ts_wall_ms=99)
    snapshot, events = led.recover()
    assert snapshot is not None
    assert (snapshot.last_seq, snapshot.state, snapshot.ts_wall_ms) == (
        3, {"position": 3, "marks": [1.5, 2.5]}, 99)
    assert [e.seq for e in events] == [4, 5]


def test_recover_without_snapshot_replays_everything(led: Ledger) -> None:
    led.append("fill", {}, 1)
    snapshot, events = led.recover()
    assert snapshot is None and [e.seq for e in events] == [1]


def test_a_snapshot_with_a_bad_checksum_is_skipped(led: Ledger) -> None:
    led.append("fill", {}, 1)
    led.append("fill", {}, 2)
    led.write_snapshot({"v": 1}, 1)
    bad = led.write_snapshot({"v": 2}, 2)
    led.connection.execute("UPDATE snapshots SET state = '{\"v\":3}' WHERE id = ?", (bad,))
    with capture_logs() as logs:
        good = led.latest_good_snapshot()
    assert good is not None and good.state == {"v": 1} and good.last_seq == 1
    assert logs[0]["event"] == "snapshot_checksum_mismatch" and logs[0]["snapshot_id"] == bad
    # The checksum covers last_seq too.
    led.connection.execute("UPDATE snapshots SET last_seq = 0 WHERE id = ?", (good.id,))
    assert led.latest_good_snapshot() is None


def test_snapshot_beyond_the_log_is_refused(led: Ledger) -> None:
    led.append("fill", {}, 1)
    with pytest.raises(ValueError, match="last_seq 5 is beyond the newest event"):
        led.write_snapshot({}, 5)


def test_only_the_newest_snapshots_are_kept(led: Ledger, monkeypatch) -> None:
    monkeypatch.setattr(ledger, "SNAPSHOTS_KEPT", 2)
    for i in range(5):
        led.write_snapshot({"i": i}, 0)
    rows = led.connection.execute("SELECT state FROM snapshots ORDER BY id").fetchall()
    assert [r[0] for r in rows] == ['{"i":3}', '{"i":4}']


# -- settings -------------------------------------------------------------------------------

def test_settings_persist_across_restarts(db_path: Path) -> None:
    with Ledger.open(db_path) as opened:
        opened.set_setting("risk.max_heat", 0.05)
        opened.set_setting("risk.max_open_positions", 3)
        opened.set_setting("risk.max_heat", 0.04)
        opened.set_setting("risk.symbols", ["BTC", "ETH"])
    with Ledger.open(db_path) as reopened:
        assert reopened.get_settings() == {"risk.max_heat": 0.04, "risk.max_open_positions": 3,
                                           "risk.symbols": ["BTC", "ETH"]}
        assert reopened.clear_setting("risk.max_open_positions") is True
        assert reopened.clear_setting("risk.max_open_positions") is False
        assert "risk.max_open_positions" not in reopened.get_settings()
        with pytest.raises(ValueError, match="value of setting 'x' is not plain JSON"):
            reopened.set_setting("x", math.inf)
