"""The backtest loop takes quiet bars in runs (`Runner.feed`); it must leave every state as `step` does.

`Runner.step` hands each bar to the pipeline alone, as the daemon's session
does; `Runner.feed` gathers the base bars on which nothing can happen (no
order, position or trade, the breakers already checked that day, no higher
bar closing) and hands them over together. Both runs of the golden cases
must end with the same trades, the same engine and paper venue snapshots
(the equity curve, ATR, correlation windows, marks and breakers included)
and the same pipeline state, and the runs must actually have been taken.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from test_engine_golden import _params

from fractald.backtest import Runner, StrategySettings
from fractald.core.execution.engine import TradingEngine
from fractald.core.models import Bar
from fractald.core.pipeline import Pipeline, build_pipeline
from fractald.core.strategies.registry import SMC_STRATEGIES
from fractald.pipeline_factory import confidence_model
from fractald.venues.replay import bundled_candle_columns


def runner(case: str) -> Runner:
    timeframe = "15m" if case == "default" else "5m"
    st = StrategySettings.of(SMC_STRATEGIES, timeframe, [timeframe, "1h", "4h"])
    engine = TradingEngine(_params(case, st.config))
    pipeline = build_pipeline("BTC-PERP", engine, st.names, st.timeframe, params=st.params,
                              confidence=confidence_model(st.config), base_timeframe="1m",
                              trend_timeframes=[timeframe, "1h", "4h"])
    return Runner(pipeline, [timeframe, "1h", "4h"])


def state(r: Runner) -> dict[str, Any]:
    p = r.pipeline
    assert p.venue is not None
    return json.loads(json.dumps({
        "engine": p.engine.snapshot(), "venue": p.venue.snapshot(), "pipeline": p.export_state(),
        "bars": p.bars, "trades": [repr(t) for t in r.trades],
        "last_ts": p._last_ts, "rollups": [repr(b) for b in r.rollups._buf],
    }, default=repr))


@pytest.mark.parametrize("case", ["default", "busy"])
def test_quiet_runs_leave_every_state_as_stepping_each_bar(case: str,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    candles = bundled_candle_columns()
    if case != "default":
        candles = candles[:15_000]
    bars: list[Bar] = list(candles)
    stepped = runner(case)
    for bar in bars:
        stepped._tally(stepped.step(bar), True)  # what `feed` counts
    taken: list[int] = []
    real = Pipeline.on_quiet_bars

    def counted(self: Pipeline, run: list[Bar]) -> None:
        taken.append(len(run))
        real(self, run)

    monkeypatch.setattr(Pipeline, "on_quiet_bars", counted)
    fed = runner(case)
    fed.feed(candles)
    assert sum(taken) > len(bars) // 3  # most quiet bars went in runs
    assert fed.trades == stepped.trades and len(fed.trades) > 10
    assert state(fed) == state(stepped)


def test_a_bar_the_venue_cannot_trade_is_stepped_alone_and_named() -> None:
    r = runner("default")
    bars = list(bundled_candle_columns())[:300]
    r.feed(bars[:200])
    bad = bars[200]
    broken = Bar(bad.symbol, bad.timeframe, bad.ts_open, bad.open, bad.high, 0.0, bad.close, bad.volume)
    with pytest.raises(ValueError, match="to trade its path"):
        r.feed([broken])
