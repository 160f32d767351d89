"""Golden runs: the engine's whole event stream on the bundled candles, pinned before the refactor.

Two runs through the backtest loop (the pipeline the daemon runs): the
default settings, and one that exercises what the default leaves idle
(limit entries, venue stops, ATR trailing, time exits, one-minute
strategies, a paper latency). Each pins the trade list to the bit and a
digest of every engine event (its JSON form, in order), so any change in
what the engine decides, or when, fails here with the first differing
trade. Regenerate (only for an intended change of behaviour) with
`FRACTALD_REGOLD=1 pytest tests/test_engine_golden.py`.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

import attrs
import pytest

from fractald.backtest import Runner, StrategySettings
from fractald.core.execution import events as ev
from fractald.core.execution.brackets import BracketParams, TrailMode
from fractald.core.execution.engine import EngineParams, FillSource, TradingEngine
from fractald.core.execution.orders import OrderType
from fractald.core.execution.paper import PaperParams
from fractald.core.pipeline import build_pipeline
from fractald.core.strategies.registry import SMC_STRATEGIES
from fractald.pipeline_factory import confidence_model, engine_params
from fractald.venues.replay import bundled_candles

GOLDEN = Path(__file__).parent / "data" / "golden"
ENGINE_EVENTS = tuple(ev.EVENT_TYPES.values())


def _params(case: str, config: Any) -> EngineParams:
    base = attrs.evolve(engine_params(config), initial_equity=10_000.0, fills_from=FillSource.BARS,
                        require_feed_health=False)
    if case == "default":
        return base
    # Execution quality is judged as configured: a resting venue stop's fill latency counts
    # from its trigger, not from its placement (it used to, and soon denied every entry).
    # Breakers and quarantines loosened, so the run keeps entering (they have their own tests).
    r = base.risk
    risk = attrs.evolve(r, breakers=attrs.evolve(r.breakers, max_consecutive_losses=1_000),
                        reliability=attrs.evolve(r.reliability, quarantine_after_losses=1_000))
    return attrs.evolve(
        base, risk=risk, entry_type=OrderType.LIMIT, entry_ttl_bars=4,
        paper=PaperParams(latency_ms=20, slippage_bps=2.0),
        brackets=BracketParams(target_fractions=(0.4, 0.6), venue_stops=True, trail_mode=TrailMode.ATR,
                               trail_distance=4.0, trail_after_tp1=False, max_holding_bars=12,
                               break_even_offset_ticks=3))


def run_case(case: str) -> tuple[list[dict[str, Any]], str, dict[str, int]]:
    timeframe = "15m" if case == "default" else "5m"
    st = StrategySettings.of(SMC_STRATEGIES, timeframe, [timeframe, "1h", "4h"])
    bars = bundled_candles()
    if case != "default":
        bars = bars[:15_000]
    engine = TradingEngine(_params(case, st.config))
    pipeline = build_pipeline(bars[0].symbol, engine, st.names, st.timeframe, params=st.params,
                              confidence=confidence_model(st.config), base_timeframe="1m",
                              trend_timeframes=[timeframe, "1h", "4h"])
    runner = Runner(pipeline, [timeframe, "1h", "4h"])
    digest = hashlib.sha256()
    kinds: Counter[str] = Counter()
    trades: list[dict[str, Any]] = []
    for bar in bars:
        for e in runner.step(bar):
            if not isinstance(e, ENGINE_EVENTS):
                continue
            d = ev.to_dict(e)
            kinds[d["kind"]] += 1
            digest.update(json.dumps(d, sort_keys=True).encode())
            if isinstance(e, ev.TradeClosed):
                trades.append(d["trade"])
    return trades, digest.hexdigest(), dict(sorted(kinds.items()))


@pytest.mark.parametrize("case", ["default", "busy"])
def test_engine_events_on_the_bundled_candles_are_unchanged(case: str) -> None:
    trades, digest, kinds = run_case(case)
    path = GOLDEN / f"backtest_{case}.json"
    if os.environ.get("FRACTALD_REGOLD"):
        path.write_text(json.dumps({"digest": digest, "kinds": kinds, "trades": trades}, indent=1) + "\n")
    golden = json.loads(path.read_text())
    assert len(trades) > 10, "the candles should make trades"
    for i, (got, want) in enumerate(zip(trades, golden["trades"])):
        assert got == want, f"trade {i} differs"
    assert len(trades) == len(golden["trades"])
    assert kinds == golden["kinds"]
    assert digest == golden["digest"]
