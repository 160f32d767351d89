"""Benchmark of the state store; prints figures, asserts nothing.

    .venv/bin/python bench/bench_store.py [STATE_DIR]

STATE_DIR defaults to a temporary directory; point it at the disk the daemon
will use, since synchronous=FULL makes every commit wait for an fsync.
"""

from __future__ import annotations

import contextlib
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import trio

from fractald.store.backup import backup_database, verify_and_open
from fractald.store.ledger import Ledger
from fractald.store.writer import AsyncLedger


def _percentiles(samples_s: list[float]) -> str:
    ordered = sorted(samples_s)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"p50 {statistics.median(ordered) * 1e3:.3f} ms, p99 {p99 * 1e3:.3f} ms"


def _timed(fn: Callable[[], object], repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


def _sync_figures(led: Ledger) -> None:
    payload = {"symbol": "BTC", "side": "buy", "qty": 0.01, "px": 65_000.5}
    print("append (1 event, 1 fsync'd commit):", _percentiles(
        _timed(lambda: led.append("fill", payload, 1), 300)))
    batch = [("fill", payload, i) for i in range(1_000)]
    start = time.perf_counter()
    led.append_many(batch)
    print(f"append_many (1000 events, 1 commit): {(time.perf_counter() - start) * 1e3:.1f} ms")
    counter = iter(range(10**9))

    def intent_and_claim() -> None:
        cid = f"bench-{next(counter)}"
        led.record_intent(cid, payload)
        led.record_submission(cid, 1)
    print("record_intent + record_submission:", _percentiles(_timed(intent_and_claim, 300)))


async def _async_figures(path: Path) -> None:
    async with await AsyncLedger.open(path) as led:
        samples = []
        for i in range(300):
            start = time.perf_counter()
            await led.append("fill", {"i": i}, i)
            samples.append(time.perf_counter() - start)
        print("AsyncLedger.append from trio (thread hop + commit):", _percentiles(samples))


def main(argv: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        state_dir = Path(argv[0]) if argv else Path(tmp)
        path = state_dir / "bench.sqlite"
        with Ledger.open(path) as led:
            _sync_figures(led)
            led.append_many([("fill", {"i": i, "pad": "x" * 100}, i) for i in range(100_000)])
        trio.run(_async_figures, path)
        size_mb = path.stat().st_size / 1e6
        start = time.perf_counter()
        made = backup_database(path)
        print(f"online backup + integrity_check of {size_mb:.1f} MB: "
              f"{(time.perf_counter() - start) * 1e3:.0f} ms")
        start = time.perf_counter()
        verify_and_open(path).close()
        print(f"verify_and_open (integrity_check) of {size_mb:.1f} MB: "
              f"{(time.perf_counter() - start) * 1e3:.0f} ms")
        made.unlink()
        if argv:  # leave the operator's directory as we found it
            for leftover in state_dir.glob("bench.sqlite*"):
                leftover.unlink()
            with contextlib.suppress(OSError):
                (state_dir / "backups").rmdir()


if __name__ == "__main__":
    main(sys.argv[1:])
