"""Versioned JSON state: no pickles, restore into a pipeline built from config, migrate, refuse newer."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import attrs
import pytest
import structlog
import trio

from fractald import state_schema
from fractald.actors.events import EventBus
from fractald.config import Config
from fractald.core.bars import SymbolBars
from fractald.core.models import Bar
from tests.data.make_state_schema2 import trade_events
from fractald.errors import ExitStatus, StateCorrupt, StateTooNew
from fractald.pipeline_factory import pipeline_from_config
from fractald.session import TradingSession
from fractald.session_state import candle_row, restore_into, session_state, warm_up_from
from fractald.store.ledger import Ledger, snapshot_checksum
from fractald.store.writer import AsyncLedger
from fractald.venues.replay import bundled_candles

PACKAGE = Path(__file__).resolve().parent.parent / "fractald"
PICKLING = re.compile(r"^\s*(import\s+(c?pickle|shelve|dill)\b|from\s+(c?pickle|shelve|dill)\s+import)"
                      r"|\b(pickle|shelve)\.(loads?|dumps?|open|Unpickler|Pickler)\b", re.MULTILINE)


def test_no_pickle_anywhere_in_fractald() -> None:
    found = [f"{path.relative_to(PACKAGE.parent)}: {m.group(0).strip()}"
             for path in sorted(PACKAGE.rglob("*.py"))
             for m in PICKLING.finditer(path.read_text())]
    assert found == [], "state is versioned JSON; pickles are code execution for whoever writes them"


def test_the_pattern_catches_what_it_should() -> None:
    assert PICKLING.search("import pickle\n") and PICKLING.search("    from pickle import loads")
    assert PICKLING.search("x = pickle.loads(b)") and not PICKLING.search("# unpickled from 0.1.0")


# -- the pipeline's state goes back into a pipeline built from the config -------------------

def feed(bars: list[Bar]) -> list[Bar]:
    builder = SymbolBars("BTC-PERP", ["1m", "15m", "1h", "4h"])
    return [b for bar in bars for b in builder.on_base_bar(bar).bars]


def drive(pipeline: Any, bars: list[Bar], candles: list[Any] | None = None) -> list[str]:
    out: list[str] = []
    for bar in bars:
        if candles is not None and bar.timeframe in pipeline.detection_timeframes(bar.symbol):
            candles.append(candle_row(bar))
        out += [repr(e) for e in pipeline.on_bar(bar)]
    return out


@pytest.fixture(scope="module")
def bars() -> list[Bar]:
    return feed(bundled_candles()[:9000])


def test_json_state_and_candles_continue_exactly_like_the_live_pipeline(bars: list[Bar]) -> None:
    split = next(i for i, b in enumerate(bars) if b.ts_open >= bars[0].ts_open + 5000 * 60_000)
    live = pipeline_from_config(Config())
    candles: list[Any] = []
    drive(live, bars[:split], candles)
    cursor = {f"{b.symbol}/{b.timeframe}": b.ts_open for b in bars[:split]}
    stored = json.loads(json.dumps(session_state(live, cursor, split)))  # through JSON text
    assert stored["schema_version"] == state_schema.SCHEMA_VERSION
    assert stored["code_version"] == state_schema.CODE_VERSION
    assert stored["engine"]["orders"] and stored["pipelines"]["BTC-PERP"]["learning"]

    twin = pipeline_from_config(Config())
    assert restore_into(twin, stored) == []
    assert warm_up_from(twin, candles, cursor) == len(candles)
    rest_live, rest_twin = drive(live, bars[split:]), drive(twin, bars[split:])
    assert rest_live == rest_twin
    assert any("TradeClosed" in e for e in rest_live) and any("SignalEmitted" in e for e in rest_live)


def test_a_restored_trade_of_a_strategy_no_longer_enabled_stays_managed(bars: list[Bar]) -> None:
    live = pipeline_from_config(Config())
    for i, bar in enumerate(bars):
        live.on_bar(bar)
        if live.pipelines["BTC-PERP"].open_trades():
            break
    engine = live.pipelines["BTC-PERP"].engine
    (sid,) = live.pipelines["BTC-PERP"].open_trades()
    held = engine.brackets[sid].strategy
    others = [s for s in Config().strategies.enabled if s != held]
    config = Config()
    config = attrs.evolve(config, strategies=attrs.evolve(config.strategies, enabled=others))
    twin = pipeline_from_config(config)
    notes = restore_into(twin, json.loads(json.dumps(session_state(live, {}, i))))
    assert any(held in n and "dropped" in n for n in notes)  # its learning; the trade stays
    assert twin.pipelines["BTC-PERP"].open_trades() == live.pipelines["BTC-PERP"].open_trades()


# -- migrations and refusal ------------------------------------------------------------------

def test_forward_migrations_run_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(state_schema, "SCHEMA_VERSION", 4)
    monkeypatch.setattr(state_schema, "MIGRATIONS", {
        2: lambda s: {**s, "two_to_three": True},
        3: lambda s: {**s, "three_to_four": s["two_to_three"]},
    })
    out = state_schema.migrate({"schema_version": 2, "cursor": {}}, "test")
    assert out == {"schema_version": 4, "cursor": {}, "two_to_three": True, "three_to_four": True}


def test_a_missing_migration_step_is_corrupt_state_not_a_guess(monkeypatch: pytest.MonkeyPatch) -> None:
    now = state_schema.SCHEMA_VERSION
    monkeypatch.setattr(state_schema, "SCHEMA_VERSION", now + 1)
    with pytest.raises(StateCorrupt, match=f"no migration from state schema {now} to {now + 1}"):
        state_schema.migrate({"schema_version": now}, "test")


def test_a_newer_state_is_refused_with_its_own_exit_status() -> None:
    newer = {"schema_version": state_schema.SCHEMA_VERSION + 1, "code_version": "9.9.9"}
    newer_re = rf"schema {state_schema.SCHEMA_VERSION + 1}, written by fractald 9\.9\.9"
    with pytest.raises(StateTooNew, match=newer_re) as caught:
        state_schema.migrate(newer, "snapshot 7")
    assert caught.value.exit_status == ExitStatus.STATE_TOO_NEW == 79
    assert "daemon-will-not-start.md" in str(caught.value)
    with pytest.raises(StateCorrupt, match="no valid schema_version"):
        state_schema.migrate({"cursor": {}}, "snapshot 7")


def test_code_that_knows_only_an_older_schema_refuses_the_state_and_writes_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rollback in-process: state written by this code, read by 'older' code (SCHEMA_VERSION - 1)."""
    db = tmp_path / "fractald.db"
    pipeline = pipeline_from_config(Config())
    for bar in feed(bundled_candles()[:300]):
        pipeline.on_bar(bar)
    with Ledger.open(db) as led:
        led.append("paused", {"ts": 1, "paused": True}, 1)
        led.write_snapshot(session_state(pipeline, {"BTC-PERP/1m": 1}, 1), led.last_seq())
        text = led.connection.execute("SELECT state FROM snapshots").fetchone()[0]
    older = state_schema.SCHEMA_VERSION - 1
    monkeypatch.setattr(state_schema, "SCHEMA_VERSION", older)

    async def start() -> None:
        async with await AsyncLedger.open(db) as ledger:
            await TradingSession.recover(Config(), ledger, structlog.get_logger("t"), EventBus())

    with pytest.raises(StateTooNew, match=f"reads schema {older} and older"):
        trio.run(start)
    with Ledger.open(db) as led:
        rows = led.connection.execute("SELECT state, sha256, last_seq FROM snapshots").fetchall()
    assert [(r[0], r[1]) for r in rows] == [(text, snapshot_checksum(text, rows[0][2]))]


# -- schema 2 -> 3: trade management moved from the pipeline to the engine's brackets -------

def test_a_schema_2_state_with_a_managed_trade_upgrades_with_its_management_intact() -> None:
    """`data/state-schema2-managed.json` was written by schema-2 code (`make_state_schema2.py`): an
    open trade whose strategy-side management had moved its stop to break-even. Upgraded, the
    engine holds the plan and goes on exactly as that code did: the same trailing moves, the
    same stop-out, the same closed trade."""
    fixture = json.loads((Path(__file__).parent / "data" / "state-schema2-managed.json").read_text())
    old, sid, split = fixture["state"], fixture["signal_id"], fixture["split"]
    assert state_schema.schema_of(old) == 2 and old["pipelines"]["BTC-PERP"]["trades"]
    state = state_schema.migrate(json.loads(json.dumps(old)), "fixture")
    assert state["schema_version"] == state_schema.SCHEMA_VERSION
    assert "trades" not in state["pipelines"]["BTC-PERP"]
    (bracket,) = [b for b in state["engine"]["brackets"] if b["signal_id"] == sid]
    was = old["pipelines"]["BTC-PERP"]["trades"][0]
    assert bracket["plan"]["invalidation"] == was["plan"]["invalidation"]
    assert (bracket["avg_entry"], bracket["plan_best"]) == (
        was["state"]["entry_price"], was["state"]["best"])

    bars = feed(bundled_candles())
    twin = pipeline_from_config(Config())
    assert restore_into(twin, state) == []
    candles = [candle_row(b) for b in bars[:split]
               if b.timeframe in twin.detection_timeframes(b.symbol)]
    warm_up_from(twin, candles, state["cursor"])
    assert list(twin.pipelines["BTC-PERP"].open_trades()) == [sid]
    after: list[dict[str, Any]] = []
    for bar in bars[split:]:
        after += trade_events(twin.on_bar(bar), sid)
        if any("closed" in x for x in after):
            break
    assert after == fixture["after"] and [x.get("reason") for x in after[:3]] == ["trail"] * 3


# -- schema 4 -> 5: a position's mark moved to the account's marks per symbol ----------------

def test_a_schema_4_state_with_an_open_position_restores_and_goes_on_identically() -> None:
    """`data/state-schema4-open.json` was written by schema-4 code (`make_state_schema4.py`): a
    position open and marked away from its entry. Migrated, its mark is the account's; restored,
    the books (cash, equity at the mark) are the old code's, and the next bars close the same
    trades with the same P&L and equity, to the bit."""
    from tests.data.make_state_schema4 import AFTER_BARS, books, closed_trades

    fixture = json.loads((Path(__file__).parent / "data" / "state-schema4-open.json").read_text())
    old, split = fixture["state"], fixture["split"]
    assert state_schema.schema_of(old) == 4
    held = [p for p in old["engine"]["accounting"]["positions"] if p["quantity"]]
    assert held and all(p["mark_price"] != p["avg_price"] for p in held)
    state = state_schema.migrate(json.loads(json.dumps(old)), "fixture")
    acc = state["engine"]["accounting"]
    assert all("mark_price" not in p for p in acc["positions"])
    assert acc["marks"] == {p["symbol"]: p["mark_price"] for p in held}

    bars = feed(bundled_candles())
    twin = pipeline_from_config(Config())
    assert restore_into(twin, state) == []
    engine = twin.pipelines["BTC-PERP"].engine
    unrealized = sum((p["mark_price"] - p["avg_price"]) * p["quantity"] for p in held)
    assert engine.accounting.unrealized == unrealized != 0
    candles = [candle_row(b) for b in bars[:split] if b.timeframe in twin.detection_timeframes(b.symbol)]
    warm_up_from(twin, candles, state["cursor"])
    after: list[dict[str, Any]] = []
    for bar in bars[split: split + AFTER_BARS]:
        after += closed_trades(twin.on_bar(bar), engine)
    assert after == fixture["after"] and after
    assert json.loads(json.dumps(books(engine))) == fixture["books"]


def test_the_marks_migration_keeps_a_mark_only_a_position_held() -> None:
    state = {"schema_version": 4, "engine": {"accounting": {"marks": {"ETH": 3.0}, "positions": [
        {"symbol": "BTC", "mark_price": 5.0}, {"symbol": "ETH", "mark_price": 3.0},
        {"symbol": "SOL", "mark_price": 0.0}]}}}
    out = state_schema.MIGRATIONS[4](state)["engine"]["accounting"]
    assert out["marks"] == {"ETH": 3.0, "BTC": 5.0}
    assert out["positions"] == [{"symbol": "BTC"}, {"symbol": "ETH"}, {"symbol": "SOL"}]
