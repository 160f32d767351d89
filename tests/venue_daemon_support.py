"""`fractald run` against a fake venue: the fake in a thread on the real clock, a replay ending now.

The replay is a slice of the bundled BTC candles shifted so its last bar
closed a minute ago: the engine's event time is the venue's wall time, so
intents are as young as a live feed's would be. The fake's price is the
replay's last close, so an operator's entry fills where the books expect.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

import pandas as pd
import pytest
import trio

from fractald.datasets import bundled_btc_1m


def candles_ending_now(path: Path, count: int = 300, start: int = 20_000) -> tuple[Path, float]:
    """`count` bundled 1m candles, shifted to end a minute ago; returns (path, last close)."""
    frame = bundled_btc_1m().iloc[start:start + count].copy()
    last_open = (int(time.time()) // 60 - 2) * 60
    shift = pd.Timestamp(last_open, unit="s", tz=frame.index.tz) - frame.index[-1]
    frame.index = frame.index + shift
    out = frame.copy()
    out.insert(0, "timestamp", out.index.strftime("%Y-%m-%d %H:%M:%S.%f"))
    out.to_csv(path, index=False)
    return path, float(frame["close"].iloc[-1])


class FakeInThread:
    """A trio fake venue (`await nursery.start(fake.run)`) on its own thread; `call` runs on its loop."""

    def __init__(self, fake: Any) -> None:
        self.fake = fake
        self._token: trio.lowlevel.TrioToken | None = None
        self._ready = threading.Event()
        self._stop: trio.Event | None = None
        self._thread = threading.Thread(target=lambda: trio.run(self._main), daemon=True)

    async def _main(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        self._stop = trio.Event()
        async with trio.open_nursery() as nursery:
            await nursery.start(self.fake.run)
            self._ready.set()
            await self._stop.wait()
            nursery.cancel_scope.cancel()

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """`fn(*args)` on the fake's loop (its state is the loop's to touch)."""
        assert self._token is not None
        return trio.from_thread.run_sync(fn, *args, trio_token=self._token)

    def __enter__(self) -> Self:
        self._thread.start()
        assert self._ready.wait(10), "the fake venue did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        if self._stop is not None and self._token is not None:
            trio.from_thread.run_sync(self._stop.set, trio_token=self._token)
        self._thread.join(10)


@contextmanager
def running(fake: Any) -> Iterator[FakeInThread]:
    with FakeInThread(fake) as runner:
        yield runner


def wait_for(what: Callable[[], Any], timeout: float, why: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = what()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s {why}")


# -- the kill -9 loop, for any venue ----------------------------------------------------------------

def is_ready(sock: Path) -> bool:
    from daemon_harness import fractalctl

    result = fractalctl(sock, "--json", "status", timeout=10) if sock.exists() else None
    return result is not None and result.returncode == 0 and '"ready": true' in result.stdout


def wait_ready_or_exit(sock: Path, daemon: Any, timeout: float = 90) -> None:
    """Until `status` says ready; a daemon that exits meanwhile fails at once, with its last log lines."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if daemon.proc.poll() is not None:
            raise AssertionError(f"the daemon exited {daemon.proc.returncode}: {daemon.log_lines()[-8:]}")
        if is_ready(sock):
            return
        time.sleep(0.1)
    raise AssertionError(f"not ready within {timeout}s: {daemon.log_lines()[-8:]}")


def operate(sock: Path, symbol: str, life: int, levels: tuple[float, float],
            risk: float | None = None) -> None:
    """The operator's action of this life; a kill may cut it short (no answer is fine).

    One manual trade per side and symbol is open at a time (the engine denies a second with
    `position_already_open`), so entries alternate with flattens and stop-outs.
    """
    import json

    from daemon_harness import fractalctl

    if life % 2 == 0:
        sizing = ["--risk", str(risk)] if risk is not None else []
        r = fractalctl(sock, "--json", "enter", symbol, "long", "--stop", str(levels[0]),
                       "--target", str(levels[1]), *sizing, timeout=10)
    elif life % 5 == 3:
        r = fractalctl(sock, "--json", "flatten", symbol, timeout=10)
    else:
        return
    answer: Any = json.loads(r.stdout) if r.returncode == 0 else r.stderr[-200:]
    if isinstance(answer, dict):
        answer = {k: answer.get(k) for k in ("trade_id", "denied", "events")}
    print("life", life, r.args[5:7], answer)  # shown when the test fails


def one_life(config: Path, env: dict[str, str], sock: Path, symbol: str, life: int, rng: Any,
             set_latency: Callable[[float], None], levels: tuple[float, float],
             risk: float | None = None) -> None:
    """Start the daemon, let it work a random while (perhaps trading), kill -9 it.

    `set_latency` holds the fake's replies back; `levels` are an entry's (stop, target).
    """
    from daemon_harness import DaemonProcess

    daemon = DaemonProcess(config, env=env)
    try:
        if rng.random() < 0.2:  # in the middle of start-up: recovery, asking the venue
            time.sleep(rng.uniform(0.5, 3.0))
            return
        wait_ready_or_exit(sock, daemon)
        set_latency(rng.choice([0.0, 0.0, 0.3]))  # a held reply: the kill may fall inside it
        operate(sock, symbol, life, levels, risk)
        time.sleep(rng.uniform(0.0, 1.5))
    finally:
        daemon.kill()
        set_latency(0.0)


def settled(sock: Path, venue_side: Callable[[], dict[str, Any]]) -> bool:
    """Nothing unresolved, the books' position is the venue's, and the venue's stops cover it."""
    from daemon_harness import ctl_json

    if ctl_json(sock, "status")["router"]["unresolved"]:
        return False
    books = sum(p["quantity"] for p in ctl_json(sock, "positions"))
    side = venue_side()
    return abs(books - side["position"]) < 1e-9 and side["stops"] >= side["position"] - 1e-9


def check_both_sides(side: dict[str, Any], db: Path, books: list[dict[str, Any]], symbol: str,
                     kills: int, min_orders: int | None = None) -> None:
    """After the last clean run: the venue's record (`side`) against the ledger and the books.

    `min_orders` (default: more than half the kills) is how many orders prove it traded; a
    venue without resting targets (spot) places fewer per trade."""
    from fractald.store.ledger import Ledger

    assert len(side["cloids"]) == len(set(side["cloids"])), "a client order id went out twice"
    fills, rows, positions = ledger_view(db)
    assert rows == len(fills), "a venue fill was recorded twice"
    assert fills == side["fills"], "ledger and venue disagree on fills"
    assert positions.get(symbol, 0.0) == pytest.approx(side["position"])
    assert sum(p["quantity"] for p in books) == pytest.approx(side["position"])
    ledger = Ledger.open(db, lock=False)
    try:
        pending = {r.client_order_id for r in ledger.pending_intents()}
        stopped = ledger.connection.execute(
            "SELECT count(*) FROM events WHERE kind = 'order_filled' "
            "AND json_extract(payload, '$.role') LIKE 'stop%'").fetchone()[0]
    finally:
        ledger.close()
    assert pending == side["open"], "an intent is unresolved, or the venue holds an order we forgot"
    assert side["stops"] >= side["position"] - 1e-9, "an open position lacks its venue stop"
    assert stopped >= 1, "the jumps through the stops while down left no stop fill in the ledger"
    wanted = kills // 2 + 1 if min_orders is None else min_orders
    assert len(side["cloids"]) >= wanted and len(side["fills"]) > 4  # it did trade


def ledger_view(db: Path) -> tuple[dict[str, tuple[str, float]], int, dict[str, float]]:
    """The ledger's fills by trade id, its count of fill events, and its net positions."""
    from fractald.routing.journal import recorded_fills
    from fractald.store.ledger import Ledger

    ledger = Ledger.open(db, lock=False)
    try:
        fills = recorded_fills(ledger)
        rows = ledger.connection.execute("SELECT count(*) FROM events WHERE kind = 'order_filled'").fetchone()[0]
        return fills, rows, {s: q for s, q in ledger.fill_positions().items() if abs(q) > 1e-9}
    finally:
        ledger.close()
