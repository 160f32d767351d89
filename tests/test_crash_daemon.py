"""The crash test: `fractald run` on real candles with the paper broker, SIGKILLed 20 times.

Each run is a real subprocess killed with SIGKILL at a random moment
(seeded), then started again on the same state directory; the last run
finishes the replay and stops on SIGTERM. Afterwards the SQLite ledger
itself must show that no crash lost or duplicated an order:

* positions equal a re-derivation from the fills in the event log (and
  equal the paper broker's and the accounting's in the final snapshot);
* no client order id was ever submitted twice (one intent event, one
  claimed submission per id);
* every intent has an outcome, or is an order the final state still works;
* the trades equal those of one uninterrupted run of the same candles.
"""

from __future__ import annotations

import collections
import json
import random
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from daemon_harness import DaemonProcess, write_candles_csv, write_config

pytestmark = pytest.mark.slow

CANDLES = 20_000  # about 14 days of 1m candles: ~47 trades with the default strategies
KILLS = 20
SEED = 20261123


def wait_for_log(daemon: DaemonProcess, events: set[str], timeout: float = 60.0) -> str:
    """Poll the daemon's JSON log until one of `events` appears; return it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in daemon.log_lines():
            if line.get("event") in events:
                return str(line["event"])
        if daemon.proc.poll() is not None:
            raise AssertionError(f"daemon exited {daemon.proc.returncode} before {events}: "
                                 f"{daemon.stdout_path.read_text()[-3000:]}")
        time.sleep(0.02)
    raise AssertionError(f"none of {events} within {timeout}s")


def last_seq(db_path: Path) -> int:
    if not db_path.exists():
        return 0
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)
    try:
        row = conn.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()
        return int(row[0])
    except sqlite3.OperationalError:  # the schema is not there yet
        return 0
    finally:
        conn.close()


def wait_for_events(daemon: DaemonProcess, db_path: Path, seq: int, timeout: float = 60) -> None:
    """Wait until the ledger holds event `seq` (or the replay has finished)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and last_seq(db_path) < seq:
        if any(line.get("event") == "trading_caught_up" for line in daemon.log_lines()):
            return
        time.sleep(0.005)


def run_to_end(config: Path) -> DaemonProcess:
    """Start, let the replay finish, stop with SIGTERM (exit 0)."""
    daemon = DaemonProcess(config)
    try:
        wait_for_log(daemon, {"trading_caught_up"}, timeout=120)
        assert daemon.stop(signal.SIGTERM, timeout=30) == 0
    finally:
        daemon.kill()
    return daemon


def setup_dir(tmp: Path, candles: Path) -> Path:
    tmp.mkdir(parents=True, exist_ok=True)
    return write_config(tmp, replay_speed=0.0, candles=candles)


def ledger_rows(db_path: Path) -> dict[str, Any]:
    """Everything the checks need, read straight from the SQLite file."""
    from fractald.store.equity_store import whole_state

    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        events = [(kind, json.loads(payload)) for kind, payload in
                  conn.execute("SELECT kind, payload FROM events ORDER BY seq")]
        intents = conn.execute(
            "SELECT client_order_id, submitted_ms, outcome FROM intents ORDER BY id").fetchall()
        state = whole_state(conn, json.loads(conn.execute(
            "SELECT state FROM snapshots ORDER BY id DESC LIMIT 1").fetchone()[0]))
        starts = conn.execute(
            "SELECT count(*) FROM daemon_events WHERE kind = 'start'").fetchone()[0]
    finally:
        conn.close()
    return {"events": events, "intents": intents, "pipeline": restored(state), "starts": starts}


def restored(state: dict[str, Any]) -> Any:
    """The final snapshot's trading state (JSON) restored into a pipeline built as the daemon's."""
    from fractald.config import Config
    from fractald.pipeline_factory import pipeline_from_config
    from fractald.session_state import restore_into

    assert state["schema_version"] >= 2, "the snapshot is versioned JSON"
    pipeline = pipeline_from_config(Config())
    restore_into(pipeline, state)
    return pipeline


def of_kind(rows: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [payload for k, payload in rows["events"] if k == kind]


def fill_positions(rows: dict[str, Any]) -> dict[str, float]:
    """Net quantity per symbol, re-derived here from the fills in the log (not the ledger's SQL)."""
    net: dict[str, float] = collections.defaultdict(float)
    for fill in of_kind(rows, "order_filled"):
        net[fill["symbol"]] += fill["quantity"] * (1 if fill["side"] == "BUY" else -1)
    return dict(net)


def assert_ledger_sound(rows: dict[str, Any]) -> None:
    engine, venue = rows["pipeline"].engine, rows["pipeline"].venue
    # positions: the fills in the log, the accounting and the paper venue all agree
    derived = fill_positions(rows)
    books: dict[str, float] = collections.defaultdict(float)
    for position in engine.accounting.positions.values():
        books[position.symbol] += position.quantity
    for symbol in set(derived) | set(books) | set(venue.positions):
        assert derived.get(symbol, 0.0) == pytest.approx(books.get(symbol, 0.0), abs=1e-9)
        assert derived.get(symbol, 0.0) == pytest.approx(
            venue.positions.get(symbol, 0.0), abs=1e-9)
    # no client order id sent twice: one intent event and one claimed submission per id
    intent_ids = [p["client_order_id"] for p in of_kind(rows, "order_intent")]
    assert intent_ids and len(intent_ids) == len(set(intent_ids)), collections.Counter(
        intent_ids).most_common(3)
    table_ids = [cid for cid, _, _ in rows["intents"]]
    assert table_ids == intent_ids  # same ids, recorded in the same order
    assert all(submitted is not None for _, submitted, _ in rows["intents"])
    # fills never repeat a trade id
    trade_ids = [p["trade_id"] for p in of_kind(rows, "order_filled")]
    assert len(trade_ids) == len(set(trade_ids))
    # every intent has an outcome, or is an order the final state is still working
    pending = {cid for cid, _, outcome in rows["intents"] if outcome is None}
    assert pending == {o.client_order_id for o in engine.working_orders()}
    for cid, _, outcome in rows["intents"]:
        if outcome is not None:
            assert engine.orders.get(cid) is None or engine.orders[cid].status.value.lower() \
                == outcome


def trading_record(rows: dict[str, Any]) -> dict[str, list[Any]]:
    """What must not depend on crashes: every order, fill and closed trade, in order."""
    return {"intents": of_kind(rows, "order_intent"), "fills": of_kind(rows, "order_filled"),
            "trades": [p["trade"] for p in of_kind(rows, "trade_closed")]}


def test_twenty_sigkills_lose_and_duplicate_nothing(tmp_path: Path) -> None:
    started = time.monotonic()
    candles = write_candles_csv(tmp_path / "candles.csv", 0, CANDLES)

    reference_config = setup_dir(tmp_path / "reference", candles)
    run_to_end(reference_config)
    reference = ledger_rows(tmp_path / "reference" / "state" / "fractald.db")
    expected = trading_record(reference)
    assert len(expected["trades"]) >= 20, "the replay must trade for this test to mean anything"
    assert_ledger_sound(reference)

    config = setup_dir(tmp_path / "crashed", candles)
    db_path = tmp_path / "crashed" / "state" / "fractald.db"
    rng = random.Random(SEED)
    # Most kills land after the ledger has moved on by a random number of events (so a loaded
    # machine still spreads them over the replay); some land at random during start-up.
    step = max(2, int(1.6 * len(reference["events"]) / KILLS))
    logs: list[list[dict[str, Any]]] = []
    finished_before_kill = 0
    for _ in range(KILLS):
        daemon = DaemonProcess(config)
        try:
            if rng.random() < 0.15:
                time.sleep(rng.uniform(0.0, 1.0))
            else:
                wait_for_log(daemon, {"session_recovered", "session_fresh_start"})
                wait_for_events(daemon, db_path, last_seq(db_path) + rng.randint(1, step))
                time.sleep(rng.uniform(0.0, 0.02))
            finished_before_kill += any(line.get("event") == "trading_caught_up"
                                        for line in daemon.log_lines())
            daemon.proc.send_signal(signal.SIGKILL)
            assert daemon.proc.wait(10) == -signal.SIGKILL
        finally:
            daemon.kill()
        logs.append(daemon.log_lines())
    final = run_to_end(config)
    logs.append(final.log_lines())

    rows = ledger_rows(tmp_path / "crashed" / "state" / "fractald.db")
    # the daemon's own record has every start that got as far as opening the store
    assert rows["starts"] == sum(any(line.get("event") == "store_opened" for line in log)
                                 for log in logs)
    assert_ledger_sound(rows)
    got = trading_record(rows)
    assert len(got["trades"]) == len(expected["trades"])
    assert got == expected
    # every start reconciled the ledger with the broker and found them in agreement
    events = [[line.get("event") for line in log] for log in logs]
    assert not any("reconcile_mismatch" in e for e in events)
    assert sum("reconcile_clean" in e for e in events) >= KILLS // 2
    # the kills landed while trading, not only after the replay had finished
    assert finished_before_kill < KILLS // 2
    # the log each start found: what its snapshot covers plus what the bars after it remade
    progress = [line.get("last_seq", 0) + line.get("events_to_remake", 0) for log in logs
                for line in log if line.get("event") in ("session_recovered", "session_fresh_start")]
    assert len(set(progress)) >= KILLS // 2, progress  # most runs moved the state on
    print(f"\ncrash test: {KILLS} SIGKILLs, {len(got['trades'])} trades, "
          f"{len(got['intents'])} intents, {len(got['fills'])} fills, "
          f"{time.monotonic() - started:.1f}s; events logged at each recovery: {progress}")
