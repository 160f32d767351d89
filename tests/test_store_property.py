"""Randomised: whatever the mix of appends, snapshots, damaged snapshots and restarts,
snapshot + replay after reopening equals the state folded from every event; and no
client order id is ever claimed for submission twice."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fractald.store.ledger import Event, Ledger

KINDS = ["fill", "order", "intent", "breaker", "state", "risk_setting"]

op = st.one_of(
    st.tuples(st.just("append"), st.sampled_from(KINDS), st.integers(-1_000, 1_000)),
    st.tuples(st.just("batch"), st.lists(st.tuples(st.sampled_from(KINDS),
                                                   st.integers(-1_000, 1_000)), max_size=5)),
    st.just(("snapshot",)),
    st.just(("damage_snapshot",)),
    st.just(("reopen",)),
)


def fold(state: dict[str, Any], event: Event) -> dict[str, Any]:
    """A toy reducer standing in for the core: per-kind counts, a running sum, the last seq."""
    counts = dict(state.get("counts", {}))
    counts[event.kind] = counts.get(event.kind, 0) + 1
    return {"counts": counts, "total": state.get("total", 0) + event.payload["v"],
            "last_ts": event.ts_event}


def recovered_state(led: Ledger) -> dict[str, Any]:
    snapshot, events = led.recover()
    state = snapshot.state if snapshot else {}
    for event in events:
        state = fold(state, event)
    return state


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(op, max_size=25))
def test_snapshot_plus_replay_equals_the_folded_log(ops: list[tuple]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "state.sqlite"
        led = Ledger.open(path)
        model: dict[str, Any] = {}
        appended: list[tuple[str, int, int]] = []
        ts = 0
        try:
            for step in ops:
                if step[0] in ("append", "batch"):
                    items = [step[1:]] if step[0] == "append" else step[1]
                    batch = []
                    for kind, value in items:
                        ts += 1
                        batch.append((kind, {"v": value}, ts))
                    seqs = led.append_many(batch)
                    for seq, (kind, payload, ts_event) in zip(seqs, batch, strict=True):
                        model = fold(model, Event(seq, kind, ts_event, payload))
                        appended.append((kind, payload["v"], ts_event))
                elif step[0] == "snapshot":
                    led.write_snapshot(model, led.last_seq())
                elif step[0] == "damage_snapshot":
                    led.connection.execute(
                        "UPDATE snapshots SET sha256 = 'x' WHERE id = (SELECT max(id) FROM snapshots)")
                else:
                    led.close()
                    led = Ledger.open(path)
                assert recovered_state(led) == model
            led.close()
            led = Ledger.open(path)
            assert recovered_state(led) == model
            assert [(e.kind, e.payload["v"], e.ts_event) for e in led.events_after(0)] == appended
            assert [e.seq for e in led.events_after(0)] == list(range(1, len(appended) + 1))
        finally:
            led.close()


intent_op = st.tuples(st.sampled_from(["record", "submit", "outcome", "reopen"]),
                      st.integers(0, 5))


@settings(max_examples=40, deadline=None)
@given(st.lists(intent_op, max_size=30))
def test_no_client_order_id_is_recorded_or_submitted_twice(ops: list[tuple[str, int]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "state.sqlite"
        led = Ledger.open(path)
        recorded: set[str] = set()
        submitted: set[str] = set()
        finished: set[str] = set()
        try:
            for action, n in ops:
                cid = f"cid-{n}"
                if action == "record":
                    assert led.record_intent(cid, {"n": n}).submitted == (cid in submitted)
                    recorded.add(cid)
                elif action == "submit" and cid in recorded:
                    assert led.record_submission(cid, 1) == (cid not in submitted)
                    submitted.add(cid)
                elif action == "outcome" and cid in recorded:
                    assert led.mark_outcome(cid, "filled") == (cid not in finished)
                    finished.add(cid)
                elif action == "reopen":
                    led.close()
                    led = Ledger.open(path)
            rows = led.connection.execute(
                "SELECT client_order_id, submitted_ms IS NOT NULL FROM intents").fetchall()
            assert sorted(r[0] for r in rows) == sorted(recorded)  # one row per id
            assert {r[0] for r in rows if r[1]} == submitted
            assert {i.client_order_id for i in led.pending_intents()} == recorded - finished
        finally:
            led.close()
