"""The per-bar pipeline: deterministic, feeds the real engine, follows trades, learns, pickles."""

from __future__ import annotations

import pickle
from typing import Any

import pytest

from fractald.backtest import Runner, StrategySettings, new_runner
from fractald.core.bars import SymbolBars
from fractald.core.models import Bar
from fractald.core.pipeline import NullEngine, SetupSkipped, SignalEmitted, build_pipeline
from fractald.core.strategies.registry import SMC_STRATEGIES, STRATEGIES
from fractald.venues.replay import bundled_candles

ALL = list(SMC_STRATEGIES)
TREND = ["15m", "1h", "4h"]


@pytest.fixture(scope="module")
def bars() -> list[Bar]:
    return bundled_candles()[:12_000]


def events_of(runner: Runner, bars: list[Bar], accepting: bool = True) -> list[Any]:
    return [e for bar in bars for e in runner.step(bar, accepting)]


@pytest.fixture(scope="module")
def run(bars: list[Bar]) -> tuple[Runner, list[Any]]:
    runner = new_runner("BTC-PERP", "1m", StrategySettings.of(ALL, "15m", TREND), 10_000.0)
    return runner, events_of(runner, bars)


def test_same_bars_same_events(bars: list[Bar], run: tuple[Runner, list[Any]]) -> None:
    again = events_of(new_runner("BTC-PERP", "1m", StrategySettings.of(ALL, "15m", TREND), 10_000.0), bars)
    assert [repr(e) for e in again] == [repr(e) for e in run[1]]
    assert any(getattr(e, "kind", "") == "trade_closed" for e in again)


def test_daemon_bar_pipeline_gives_the_same_events_as_the_backtest_loop(bars: list[Bar],
                                                                         run: tuple[Runner, list[Any]]) -> None:
    """SymbolBars (what the market data actor runs) emits base then rollups in the order the backtest uses."""
    pipe = new_runner("BTC-PERP", "1m", StrategySettings.of(ALL, "15m", TREND), 10_000.0).pipeline
    feed = SymbolBars("BTC-PERP", ["1m", *TREND])
    out: list[Any] = []
    for bar in bars:
        step = feed.on_base_bar(bar)
        assert step.gap is None
        for b in step.bars:
            out += pipe.on_bar(b)
    assert [repr(e) for e in out] == [repr(e) for e in run[1]]


def test_every_sent_signal_is_sized_or_denied_by_the_engine(run: tuple[Runner, list[Any]]) -> None:
    events = run[1]
    sent = [e.signal for e in events if isinstance(e, SignalEmitted) and e.sent]
    assert len(sent) >= 10
    answered = {e.signal_id: e.kind for e in events if getattr(e, "kind", "") in ("bracket_opened", "signal_denied")}
    for s in sent:
        assert s.signal_id in answered
        assert 0 <= s.confidence <= 100 and s.strategy in STRATEGIES and s.timeframe == "15m"
    assert all(isinstance(e.code, str) for e in events if isinstance(e, SetupSkipped))


def test_strategies_learn_every_closed_trade_and_manage_exits(run: tuple[Runner, list[Any]]) -> None:
    runner, events = run
    closed = [e.trade for e in events if getattr(e, "kind", "") == "trade_closed"]
    for s in runner.pipeline.strategies:
        assert s.trades_learned == sum(1 for t in closed if t.strategy == s.name)
    # the strategies' own exits (invalidation, time) reach the engine and close trades
    assert {t.exit_reason for t in closed} & {"strategy_invalidated", "strategy_time"}
    assert runner.pipeline.open_trades().keys() <= set(getattr(runner.pipeline.engine, "brackets", {}))


def test_not_accepting_emits_signals_but_opens_nothing(bars: list[Bar]) -> None:
    out = events_of(new_runner("BTC-PERP", "1m", StrategySettings.of(ALL, "15m", TREND), 10_000.0), bars[:6000], accepting=False)
    emitted = [e for e in out if isinstance(e, SignalEmitted)]
    assert emitted and not any(e.sent for e in emitted)
    assert not any(getattr(e, "kind", "") in ("bracket_opened", "order_intent") for e in out)


def test_pipeline_state_pickles_and_continues_identically(bars: list[Bar]) -> None:
    """The daemon snapshots the pipeline by pickling it; a restored copy must trade on identically."""
    runner = new_runner("BTC-PERP", "1m", StrategySettings.of(ALL, "15m", TREND), 10_000.0)
    events_of(runner, bars[:5000])
    twin = pickle.loads(pickle.dumps(runner))
    rest_a = [repr(e) for e in events_of(runner, bars[5000:9000])]
    rest_b = [repr(e) for e in events_of(twin, bars[5000:9000])]
    assert rest_a == rest_b
    assert any("SignalEmitted" in e for e in rest_a) and any("TradeClosed" in e for e in rest_a)


def test_bad_input_is_refused_with_a_clear_message(bars: list[Bar]) -> None:
    pipe = build_pipeline("BTC-PERP", NullEngine(), ["fvg_fill"])
    pipe.on_bar(bars[1])
    with pytest.raises(ValueError, match="1m bars must arrive in time order"):
        pipe.on_bar(bars[0])
    with pytest.raises(ValueError, match="pipeline for BTC-PERP got a ETH bar"):
        pipe.on_bar(Bar("ETH", "1m", bars[2].ts_open, 1, 1, 1, 1, 1))
    with pytest.raises(ValueError, match="not enabled: bos_orderblock"):
        build_pipeline("BTC-PERP", NullEngine(), ["fvg_fill"], params={"bos_orderblock": {}})
    with pytest.raises(ValueError, match="unknown strategy 'x'"):
        build_pipeline("BTC-PERP", NullEngine(), ["x"])


def test_a_portfolio_routes_each_symbol_to_its_pipeline_around_one_engine(bars: list[Bar]) -> None:
    from fractald.core.execution.engine import TradingEngine
    from fractald.core.pipeline import Portfolio, build_portfolio

    engine = TradingEngine()
    book = build_portfolio(["BTC-PERP", "ETH-PERP"], engine, ALL)
    eth = [Bar("ETH-PERP", b.timeframe, b.ts_open, b.open / 10, b.high / 10, b.low / 10, b.close / 10, b.volume)
           for b in bars[:3000]]
    for a, b in zip(bars[:3000], eth):
        book.on_bar(a)
        book.on_bar(b)
    assert book.pipelines["BTC-PERP"].bars == book.pipelines["ETH-PERP"].bars == 3000
    assert set(engine.last_price) == {"BTC-PERP", "ETH-PERP"}
    with pytest.raises(ValueError, match="no pipeline for SOL-PERP"):
        book.on_bar(Bar("SOL-PERP", "1m", bars[0].ts_open, 1, 1, 1, 1, 1))
    with pytest.raises(ValueError, match="share one engine"):
        Portfolio([build_pipeline("A", TradingEngine(), ALL), build_pipeline("B", TradingEngine(), ALL)])
