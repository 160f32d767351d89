"""Periodic reconciliation inside the running daemon (in-process, replaying real candles).

A submitted order the broker never saw is written into the ledger while
the daemon trades; the next periodic reconciliation must find it, say so
on the event bus with the figures, and put trading in REDUCING (persisted):
no new entries afterwards, only coded denials.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import trio
from daemon_harness import write_candles_csv, write_config

from fractald.config import load_config
from fractald.core.risk.breakers import TradingState
from fractald.daemon import Daemon
from fractald.notify import Notifier

pytestmark = pytest.mark.slow


def logged_events(db_path: Path) -> list[tuple[str, dict[str, Any]]]:
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        return [(k, json.loads(p)) for k, p in
                conn.execute("SELECT kind, payload FROM events ORDER BY seq")]
    finally:
        conn.close()


async def test_periodic_reconciliation_finds_a_ghost_order_and_goes_reducing(
        tmp_path: Path) -> None:
    config_path = write_config(tmp_path, replay_speed=0.0,
                               candles=write_candles_csv(tmp_path / "candles.csv", 0, 6000))
    daemon = Daemon(load_config(str(config_path)), str(config_path), Notifier())
    daemon.trading.reconcile_every_s = 0.05
    found: list[dict[str, Any]] = []
    with daemon.bus.subscribe({"reconcile_mismatch", "trading_caught_up"}) as events:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(daemon.run)
            with trio.fail_after(60):
                await daemon.trading.recovered.wait()
                assert daemon.store.ledger is not None
                assert await daemon.store.ledger.record_and_claim(
                    "ghost-order", {"symbol": "BTC-PERP", "quantity": 1.0}, 1)
                while (event := await events.receive()).kind != "trading_caught_up":
                    if event.kind == "reconcile_mismatch":
                        found.append(event.data)
            session = daemon.trading.session
            assert session is not None
            assert session.engine.state is TradingState.REDUCING
            assert daemon.trading.status()["reconcile"]["why"] == "periodic"
            await daemon.shutdown()

    assert found, "the periodic reconciliation did not report the ghost order"
    assert found[0]["why"] == "periodic"
    assert [(m["code"], m["subject"]) for m in found[0]["mismatches"]] == [
        ("submitted_order_missing", "ghost-order")]
    events_logged = logged_events(tmp_path / "state" / "fractald.db")
    kinds = [k for k, _ in events_logged]
    trip_at = kinds.index("breaker_tripped")
    trip = events_logged[trip_at][1]
    assert trip["breaker"] == "reconciliation" and trip["state"] == "REDUCING"
    assert kinds.count("breaker_tripped") == 1  # found again every period, tripped once
    after = events_logged[trip_at:]
    assert not [p for k, p in after if k == "bracket_opened"]
    denials = [p["code"] for k, p in after if k == "signal_denied"]
    assert denials and set(denials) == {"trading_reducing"}
