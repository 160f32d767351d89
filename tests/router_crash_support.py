"""The router crash tests' kill loop, for any venue: a router process killed with SIGKILL 20 times.

A router process (tests/router_crash_child.py, told which venue) follows an
operator's plan of entries and keeps a reduce-only stop at the venue for
every open trade. It is killed with SIGKILL at random moments (some while
the venue holds a request back, so the kill falls between send and ack),
restarted each time, and twice the price jumps through the stops while it
is down. New operator entries arrive between lives. A last life then runs
until settled. Each venue's test gives its plan entries, its price jump and
its own reading of the venue's record; the ledger side is checked here.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trio

from fractald.routing.journal import recorded_fills
from fractald.store.ledger import Ledger

REPO = Path(__file__).resolve().parents[1]
CHILD = REPO / "tests" / "router_crash_child.py"
KILLS = 20
JUMP_LIVES = (8, 15)  # after these lives, while the router is down, the price jumps through the stops


def child_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'tests'}"}


async def one_life(args: list[str], rng: random.Random, fake: Any) -> None:
    """Start a router, let it work a random while, kill -9 it."""
    proc = await trio.lowlevel.open_process([sys.executable, str(CHILD), *args], env=child_env(),
                                            stdout=subprocess.PIPE)
    try:
        if rng.random() < 0.7:  # mostly after recovery, sometimes in the middle of it
            with trio.move_on_after(30):
                assert proc.stdout is not None
                seen = b""
                while b"recovered" not in seen:
                    chunk = await proc.stdout.receive_some(1024)
                    if not chunk:
                        break
                    seen += chunk
        fake.latency_s = rng.choice([0.0, 0.0, 0.3])  # a held reply: the kill may fall inside it
        await trio.sleep(rng.uniform(0.05, 2.0))
    finally:
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        if proc.stdout is not None:
            await proc.stdout.aclose()
        fake.latency_s = 0.0


async def settle(args: list[str]) -> bytes:
    """A last life without a kill, until it says it is settled (or 120 s: its output tells why)."""
    proc = await trio.lowlevel.open_process([sys.executable, str(CHILD), *args, "--finish"],
                                            env=child_env(), stdout=subprocess.PIPE)
    output = b""
    assert proc.stdout is not None
    with trio.move_on_after(120):
        while chunk := await proc.stdout.receive_some(65536):
            output += chunk
    proc.kill()
    await proc.wait()
    await proc.stdout.aclose()
    return output


def operator_entry(life: int, rng: random.Random, symbols: tuple[str, str]) -> dict[str, object]:
    """A long of the first symbol (BTC) or a short of the second (ETH), one-way (no netting),
    with a 2% stop and the price a market order is sized at."""
    long = rng.random() < 0.5
    return {"id": f"op-{life}", "symbol": symbols[0] if long else symbols[1],
            "side": "BUY" if long else "SELL", "qty": 0.01 if long else 0.1,
            "price": 50_000.0 if long else 3_000.0,
            "stop": 49_000.0 if long else 3_060.0}


def jump_through_stops(fake: Any, symbols: tuple[str, str]) -> None:
    """The long's price falls and the short's rises through their stops, then both come back."""
    fake.set_price(symbols[0], 48_000.0)
    fake.set_price(symbols[1], 3_100.0)
    fake.set_price(symbols[0], 50_000.0)
    fake.set_price(symbols[1], 3_000.0)


async def kill_loop(fake: Any, args: list[str], plan_path: Path, symbols: tuple[str, str]) -> None:
    """KILLS lives, each killed, an operator entry before every other one and the price
    jumping through the stops after JUMP_LIVES; then a last life until settled."""
    rng = random.Random(20261203)
    plan: list[dict[str, object]] = []
    for life in range(KILLS):
        if life % 2 == 0:
            plan.append(operator_entry(life, rng, symbols))
            plan_path.write_text(json.dumps(plan))
        await one_life(args, rng, fake)
        if life in JUMP_LIVES:
            jump_through_stops(fake, symbols)
    output = await settle(args)
    assert b"settled" in output, output[-3000:].decode()


def check_ledger(db: Path, venue_fills: dict[str, tuple[str, float]]) -> dict[str, float]:
    """Every venue fill recorded exactly once, for its order, a stop fill among them; the
    ledger's net positions (beyond dust)."""
    ledger = Ledger.open(db, lock=False)
    try:
        recorded = recorded_fills(ledger)
        rows = ledger.connection.execute(
            "SELECT count(*) FROM events WHERE kind = 'order_filled'").fetchone()[0]
        assert rows == len(recorded), "a venue fill was recorded twice"
        assert recorded == venue_fills, "ledger and venue disagree on fills"
        books = {s: q for s, q in ledger.fill_positions().items() if abs(q) > 1e-9}
        stopped = ledger.connection.execute(
            "SELECT count(*) FROM events WHERE kind = 'order_filled' "
            "AND json_extract(payload, '$.role') LIKE 'stop%'").fetchone()[0]
        assert stopped >= 1, "the jumps through the stops while down left no stop fill in the ledger"
    finally:
        ledger.close()
    return books


def check_positions_stopped(books: dict[str, float], venue_positions: dict[str, float],
                            stop_cover: Callable[[str, float], float]) -> None:
    """Positions equal on both sides, each covered by resting reduce-only stops at the venue.

    `stop_cover(symbol, qty)` is the size of the venue's resting stops closing that position.
    """
    assert books.keys() == venue_positions.keys()
    for symbol, qty in venue_positions.items():
        assert books[symbol] == pytest.approx(qty)
        assert stop_cover(symbol, qty) >= abs(qty) - 1e-9, f"{symbol} {qty} lacks a venue stop"
