"""Portfolio operator commands and the session's risk wiring, over the real engine.

A flatten, halt or kill goes to the shared engine, and its events pass
through every pipeline as a bar's would: a trade the flatten closes leaves
its pipeline's management and reaches its strategy's learning. A new
config reaches the engine's risk parameters through `TradingSession.apply_config`.
"""

from __future__ import annotations

import pickle
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from fractald.actors.events import EventBus
from fractald.config import Config
from fractald.core.bars import SymbolBars
from fractald.core.execution import events as ev
from fractald.core.execution.engine import EngineParams, TradingEngine
from fractald.core.pipeline import NullEngine, Portfolio, build_portfolio
from fractald.core.risk.breakers import Breaker, TradingState
from fractald.core.strategies.registry import SMC_STRATEGIES
from fractald.pipeline_factory import engine_params, pipeline_from_config
from fractald.risk_overrides import with_risk
from fractald.session import TradingSession, apply_risk_config
from fractald.store.writer import AsyncLedger
from fractald.venues.replay import bundled_candles

SYMBOL = "BTC-PERP"
TREND = ["15m", "1h", "4h"]


def of(events: list[Any], cls: type) -> list[Any]:
    return [e for e in events if isinstance(e, cls)]


def book_with_open_trade() -> tuple[Portfolio, TradingEngine]:
    """A one-symbol portfolio driven over the bundled candles until a managed trade is filled."""
    engine = TradingEngine(EngineParams())
    book = build_portfolio([SYMBOL], engine, list(SMC_STRATEGIES), trend_timeframes=TREND)
    feed = SymbolBars(SYMBOL, ["1m", *TREND])
    for bar in bundled_candles(SYMBOL):
        for b in feed.on_base_bar(bar).bars:
            book.on_bar(b)
        trades = book.pipelines[SYMBOL].open_trades()
        if trades and all(engine.brackets[sid].filled_qty > 0 for sid in trades):
            return book, engine
    raise AssertionError("no trade opened over the bundled candles")


@pytest.fixture(scope="module")
def opened() -> bytes:
    book, _ = book_with_open_trade()
    return pickle.dumps(book)  # each test gets its own copy of the same state


def restore(blob: bytes) -> tuple[Portfolio, TradingEngine]:
    book = pickle.loads(blob)
    return book, book.engine


def test_flatten_ends_management_and_teaches_the_strategy(opened: bytes) -> None:
    book, engine = restore(opened)
    pipe = book.pipelines[SYMBOL]
    (sid,) = pipe.open_trades()
    learned = sum(s.trades_learned for s in pipe.strategies)
    events = book.flatten(SYMBOL)
    closed = of(events, ev.BracketClosed)
    assert [c.signal_id for c in closed] == [sid] and closed[0].reason == "flatten"
    assert of(events, ev.TradeClosed)[0].trade.exit_reason == "flatten"
    assert pipe.open_trades() == {} and engine.brackets == {}
    assert sum(s.trades_learned for s in pipe.strategies) == learned + 1


def test_the_engine_alone_ends_management_it_is_the_one_owner(opened: bytes) -> None:
    """The trade's management plan lives on the engine's bracket: no pipeline copy to go stale."""
    book, engine = restore(opened)
    (sid,) = book.pipelines[SYMBOL].open_trades()
    assert engine.brackets[sid].plan is not None
    engine.flatten(SYMBOL, venue=book.venue)
    assert engine.brackets == {} and book.pipelines[SYMBOL].open_trades() == {}


def test_kill_halts_and_flattens_through_the_pipelines(opened: bytes) -> None:
    book, engine = restore(opened)
    events = book.kill()
    assert of(events, ev.BreakerTripped)[0].breaker is Breaker.KILL_SWITCH
    assert engine.state is TradingState.HALTED
    assert of(events, ev.BracketClosed) and book.pipelines[SYMBOL].open_trades() == {}


def test_pause_resume_halt(opened: bytes) -> None:
    book, engine = restore(opened)
    assert [e.paused for e in of(book.pause(), ev.Paused)] == [True] and engine.paused
    assert book.pause() == []  # paused already
    halted = book.halt()
    assert engine.state is TradingState.HALTED and of(halted, ev.TradingStateChanged)
    assert book.pipelines[SYMBOL].open_trades() != {}  # a halt keeps what is held, with its stop
    resumed = book.resume()
    assert not engine.paused and engine.state is TradingState.ACTIVE
    assert of(resumed, ev.BreakersCleared)[0].breakers == (Breaker.OPERATOR,)


def test_trip_through_the_portfolio(opened: bytes) -> None:
    book, engine = restore(opened)
    events = book.trip(Breaker.RECONCILIATION, TradingState.REDUCING, "mismatch", {"n": 1})
    assert [type(e) for e in events][:2] == [ev.BreakerTripped, ev.TradingStateChanged]
    assert engine.state is TradingState.REDUCING
    assert book.pipelines[SYMBOL].open_trades() != {}  # a filled entry is kept under REDUCING


def test_bad_commands_are_clear_errors() -> None:
    book = build_portfolio([SYMBOL], TradingEngine(EngineParams()), ["fvg_fill"])
    with pytest.raises(ValueError, match="no pipeline for SOL-PERP"):
        book.flatten("SOL-PERP")
    signal_only = build_portfolio([SYMBOL], NullEngine(), ["fvg_fill"])
    with pytest.raises(TypeError, match="NullEngine takes no operator commands"):
        signal_only.pause()


# --------------------------------------------------------------------------- config -> engine


def test_apply_risk_config_keeps_what_risk_does_not_hold() -> None:
    config = Config()
    engine = TradingEngine(engine_params(config))
    reliability = engine.params.risk.reliability
    apply_risk_config(engine, with_risk(config, {"max_trades_per_day": 7, "heat_cap": 0.02}))
    assert engine.breakers.params.max_trades_per_day == 7
    assert engine.params.risk.gates.max_heat_fraction == 0.02
    assert engine.params.risk.reliability is reliability
    apply_risk_config(None, config)  # no engine: nothing to do
    apply_risk_config(NullEngine(), config)


@pytest.fixture
async def session(tmp_path: Path) -> AsyncIterator[TradingSession]:
    """A fresh session on a real ledger, with the pipeline the daemon builds from the default config."""
    config = Config()
    ledger = await AsyncLedger.open(tmp_path / "fractald.db")
    try:
        yield TradingSession(config, ledger, structlog.get_logger("t"), EventBus(),
                             pipeline_from_config(config), {})
    finally:
        await ledger.aclose()


async def test_a_new_config_reaches_the_sessions_engine(session: TradingSession) -> None:
    """What a SIGHUP reload of [risk] does (Daemon.apply_live -> TradingActor -> session)."""
    engine = session.engine
    before = engine.params.risk
    session.apply_config(session.config)  # the same settings: nothing changes
    assert engine.params.risk is before
    session.apply_config(with_risk(session.config, {"max_trades_per_day": 3, "max_drawdown": 0.05}))
    assert engine.breakers.params.max_trades_per_day == 3
    assert engine.breakers.params.max_drawdown_fraction == 0.05
    assert engine.params.risk.breakers is engine.breakers.params
    # Kept in the snapshot: a recovery starts from what the engine had.
    restored = pickle.loads(pickle.dumps(session.pipeline)).engine
    assert restored.breakers.params.max_trades_per_day == 3


async def test_recovery_gives_the_restored_engine_the_daemons_settings(session: TradingSession) -> None:
    """An engine unpickled with old settings gets the config's at start-up (overrides included)."""
    await session.write_snapshot("test")
    new_config = with_risk(session.config, {"risk_per_trade": 0.002, "max_trades_per_day": 9})
    restored = await TradingSession.recover(new_config, session.ledger, structlog.get_logger("t"),
                                            EventBus())
    assert restored.engine is not session.engine
    assert restored.engine.params.risk.sizing.risk_fraction == 0.002
    assert restored.engine.breakers.params.max_trades_per_day == 9
    assert session.engine.params.risk.sizing.risk_fraction != 0.002


async def test_a_risk_change_is_in_the_ledger_so_its_replay_applies_it(session: TradingSession) -> None:
    """A reload or `risk set` is an engine event (risk_changed), committed first by the next commit."""
    session.apply_config(with_risk(session.config, {"max_trades_per_day": 3}))
    await session.commit([], ts_event=0)
    stored = [e for e in await session.ledger.events_page(0) if e.kind == "risk_changed"]
    assert len(stored) == 1
    replayed = ev.from_dict({**stored[0].payload, "kind": stored[0].kind})
    assert replayed.risk == session.engine.params.risk
    fresh = pipeline_from_config(session.config).engine
    fresh.apply(replayed)
    assert fresh.breakers.params.max_trades_per_day == 3
    await session.commit([], ts_event=0)  # committed once, not again
    assert len([e for e in await session.ledger.events_page(0) if e.kind == "risk_changed"]) == 1
