"""Config always applies: [strategies] and [broker] changes take effect on restart (issue 11, item 6).

A session trades real candles into a real SQLite ledger, stops (final
snapshot), and starts again from the same ledger under a changed config;
the trades after the restart must show the change. On SIGHUP the same
changes are refused by name (`test_reload_names_the_keys_that_need_a_restart`).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import attrs
import pytest
import structlog
from daemon_harness import DaemonProcess, ctl_json, fractalctl, write_candles_csv, write_config
from test_parity import wait_for_log
from test_session_recovery import feed

from fractald.actors.events import EventBus
from fractald.config import Config
from fractald.core.models import Bar
from fractald.session import TradingSession
from fractald.store.writer import AsyncLedger
from fractald.venues.replay import bundled_candles

CANDLES = 9000
RESTART_AT = 4000  # 1m candles before the restart


async def run_with_restart(db: Path, first: Config, second: Config) -> int:
    """Trade under `first`, stop cleanly, trade the rest under `second`; the seq where `second` began."""
    bars = list(feed(bundled_candles()[:CANDLES], first))
    split = next(i for i, b in enumerate(bars) if b.ts_open >= bars[0].ts_open + RESTART_AT * 60_000)
    await drive(db, first, bars[:split])
    async with await AsyncLedger.open(db) as ledger:
        restart_seq = await ledger.last_seq()
    await drive(db, second, bars)  # from the first bar again: the cursor skips what is covered
    return restart_seq


async def drive(db: Path, config: Config, bars: list[Bar]) -> None:
    async with await AsyncLedger.open(db) as ledger:
        session = await TradingSession.recover(config, ledger, structlog.get_logger("t"), EventBus())
        for bar in bars:
            await session.on_bar(bar)
        await session.write_snapshot("shutdown")


def events(db: Path, kind: str, after_seq: int = 0, upto: int = 2**62) -> list[dict[str, Any]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT payload FROM events WHERE kind = ? AND seq > ? AND seq <= ? "
                            "ORDER BY seq", (kind, after_seq, upto)).fetchall()
    return [json.loads(p) for (p,) in rows]


async def test_broker_fees_and_slippage_change_on_restart(tmp_path: Path) -> None:
    base = Config()
    dearer = attrs.evolve(base, broker=attrs.evolve(base.broker, taker_fee_bps=9.0, slippage_bps=6.0))
    seq = await run_with_restart(tmp_path / "a.db", base, dearer)
    before = events(tmp_path / "a.db", "order_filled", 0, seq)
    after = events(tmp_path / "a.db", "order_filled", seq)
    assert before and after, "trades on both sides of the restart"
    for fills, bps in ((before, base.broker.taker_fee_bps), (after, 9.0)):
        takers = [f for f in fills if f["liquidity"] == "TAKER"]
        assert takers
        for f in takers:
            assert f["fee"] == pytest.approx(f["price"] * f["quantity"] * bps / 10_000, rel=1e-9)
    # slippage: a market entry fills further from the bar's price than before
    ratio_before = [abs(f["price"] / i["intended_price"] - 1) for f, i in entry_pairs(tmp_path / "a.db", 0, seq)]
    ratio_after = [abs(f["price"] / i["intended_price"] - 1) for f, i in entry_pairs(tmp_path / "a.db", seq)]
    assert ratio_before and ratio_after
    assert min(ratio_after) > max(ratio_before)


def entry_pairs(db: Path, after: int, upto: int | None = None) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    intents = {i["client_order_id"]: i for i in events(db, "order_intent")
               if i["role"] == "entry" and i["order_type"] == "MARKET" and i["intended_price"]}
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT seq, payload FROM events WHERE kind = 'order_filled' AND seq > ?",
                            (after,)).fetchall()
    return [(f, intents[f["client_order_id"]]) for seq, f in ((s, json.loads(p)) for s, p in rows)
            if f["client_order_id"] in intents and (upto is None or seq <= upto)]


async def test_enabled_strategies_and_params_change_on_restart(tmp_path: Path) -> None:
    base = Config()
    only = "fvg_fill"
    narrower = attrs.evolve(base, strategies=attrs.evolve(
        base.strategies, enabled=[only], params={only: {"targets_r": [3.0, 5.0]}}))
    seq = await run_with_restart(tmp_path / "b.db", base, narrower)
    before = events(tmp_path / "b.db", "bracket_opened", 0, seq)
    after = events(tmp_path / "b.db", "bracket_opened", seq)
    assert {b["strategy"] for b in before} > {only}, "all three strategies traded before"
    assert after and {b["strategy"] for b in after} == {only}
    signals_after = [s["signal"] for s in events(tmp_path / "b.db", "signal", seq)]
    assert {s["strategy"] for s in signals_after} == {only}
    for b in after:  # the new params: targets at 3R and 5R (defaults: 1.5R and 3R)
        risk = abs(b["entry"] - b["stop"])
        assert [abs(t - b["entry"]) / risk for t in b["targets"]] == pytest.approx([3.0, 5.0], rel=0.01)  # to the tick


@pytest.mark.slow  # over a second: out of the fast suite (issue 16)
def test_reload_names_the_keys_that_need_a_restart(tmp_path: Path) -> None:
    candles = write_candles_csv(tmp_path / "candles.csv", count=600)
    config = write_config(tmp_path, candles=candles)
    daemon = DaemonProcess(config)
    sock = tmp_path / "state" / "control.sock"
    try:
        wait_for_log(daemon, "trading_caught_up", timeout=60)
        config.write_text(config.read_text() + '[strategies]\nenabled = ["fvg_fill"]\n'
                          '[broker]\ntaker_fee_bps = 9.0\n[risk]\nheat_cap = 0.05\n')
        answer = fractalctl(sock, "--json", "reload")  # an error reply: not all was taken
        status = ctl_json(sock, "status")
        assert daemon.stop() == 0
    finally:
        daemon.kill()
    assert answer.returncode == 1, answer.stdout + answer.stderr
    assert "reload_refused" in answer.stdout + answer.stderr
    assert "broker.taker_fee_bps, strategies.enabled" in answer.stdout + answer.stderr
    done = [line for line in daemon.log_lines() if line.get("event") == "reload_done"]
    assert done and done[-1]["applied"] == ["risk.heat_cap"]
    assert done[-1]["refused"] == ["broker.taker_fee_bps", "strategies.enabled"]
    refused = [line for line in daemon.log_lines() if line.get("event") == "reload_refused_keys"]
    assert refused and refused[-1]["keys"] == ["broker.taker_fee_bps", "strategies.enabled"]
    assert "restart" in refused[-1]["reason"]
    assert status["account"]["heat_cap"] == 0.05
    assert set(status["trading"]["symbols"]["BTC-PERP"]["strategies"]) == \
        {"bos_orderblock", "fvg_fill", "liquidity_sweep"}  # not applied, and not claimed to be
