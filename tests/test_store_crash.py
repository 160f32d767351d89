"""kill -9 a real process in the middle of its writes, again and again: every commit it
reported survives, the log has no holes, and no client order id is ever sent twice."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from fractald.store.backup import verify_and_open

REPO = Path(__file__).resolve().parent.parent

# The child is a tiny router: deterministic ids, intent recorded before "sending", a send
# only when the submission claim succeeds, then a fill event and the outcome.
CHILD = r"""
import sys
from fractald.store.backup import verify_and_open
led = verify_and_open(sys.argv[1])
for i in range(int(sys.argv[2])):
    cid = f"cid-{i}"
    led.record_intent(cid, {"i": i, "qty": 1})
    if led.record_submission(cid, i):
        print("SENT", cid, flush=True)
    if led.get_intent(cid).outcome is None:
        seq = led.append("fill", {"cid": cid, "qty": 1}, i)
        print("FILL", seq, flush=True)
        led.mark_outcome(cid, "filled", i)
    if i % 50 == 49:
        led.write_snapshot({"done": i + 1}, led.last_seq())
print("DONE", flush=True)
"""


def run_until_killed(path: Path, total: int, kill_after: int | None) -> list[list[str]]:
    """Run the child; SIGKILL it after `kill_after` output lines (None: let it finish)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(path), str(total)], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    lines: list[list[str]] = []
    assert child.stdout is not None
    for line in child.stdout:
        lines.append(line.split())
        if kill_after is not None and len(lines) >= kill_after:
            child.send_signal(signal.SIGKILL)
            break
    child.stdout.close()
    child.wait(timeout=30)
    return lines


@pytest.mark.parametrize("rounds, total", [(3, 120), pytest.param(20, 400, marks=pytest.mark.slow)])
def test_sigkill_never_loses_a_commit_nor_sends_twice(tmp_path: Path, rounds: int,
                                                      total: int) -> None:
    path = tmp_path / "state" / "fractald.sqlite"
    rng = random.Random(rounds)
    output: list[list[str]] = []
    for _ in range(rounds):
        output += run_until_killed(path, total, kill_after=rng.randint(5, total // 3))
    output += run_until_killed(path, total, kill_after=None)
    assert output[-1] == ["DONE"]

    sent = [cid for tag, cid in (ln for ln in output if ln[0] == "SENT")]
    assert len(sent) == len(set(sent)), "a client order id was sent twice"
    reported_fills = {int(seq) for tag, seq in (ln for ln in output if ln[0] == "FILL")}

    with verify_and_open(path) as led:
        led.check_integrity()
        events = list(led.events_after(0))
        assert [e.seq for e in events] == list(range(1, len(events) + 1))  # no holes
        assert reported_fills <= {e.seq for e in events}  # every reported commit survived
        assert led.pending_intents() == []  # every intent got its outcome
        submitted = led.connection.execute(
            "SELECT count(*) FROM intents WHERE submitted_ms IS NOT NULL").fetchone()[0]
        assert submitted == total
        # A crash between the fill and the outcome replays the fill on restart; at most
        # once per crash, and a real router dedupes fills by trade id.
        per_cid: dict[str, int] = {}
        for event in events:
            per_cid[event.payload["cid"]] = per_cid.get(event.payload["cid"], 0) + 1
        assert set(per_cid) == {f"cid-{i}" for i in range(total)}
        assert sum(per_cid.values()) - total <= rounds
