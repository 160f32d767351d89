"""Strategies: constructed setups, properties of every signal on real candles, management, params."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from fractald.core.models import Bar, ClosedTrade, Side, Signal
from fractald.core.smc.live import (
    FVGMitigated,
    LiquiditySwept,
    OrderBlock,
    PreviousLevelBroken,
    StructureBreak,
)
from fractald.core.strategies import (
    STRATEGIES,
    MarketState,
    Setup,
    Skip,
    Strategy,
    StrategyParams,
    create,
)
from fractald.core.strategies.bos_orderblock import BOSOrderBlockParams
from fractald.core.strategies.liquidity_sweep import LiquiditySweepParams
from fractald.datasets import bundled_btc_1m

M15 = 15 * 60_000


def bars_from(rows: Sequence[tuple[float, float, float, float]], tf: str = "15m", step: int = M15) -> list[Bar]:
    return [Bar("BTC-PERP", tf, 1_700_000_000_000 - 1_700_000_000_000 % step + k * step, o, h, l, c, 1.0)
            for k, (o, h, l, c) in enumerate(rows)]


def run(strategy: Strategy, bars: list[Bar]) -> list[tuple[int, Setup, Signal | Skip]]:
    ms = MarketState(strategy.symbol, strategy.timeframe, strategy.smc_params())
    out = []
    for k, b in enumerate(bars):
        ctx = ms.update(b, {strategy.timeframe: ms.smc.trend})
        for s in strategy.detect(ctx):
            out.append((k, s, strategy.plan_entry(s)))
    return out


# a ranging warm-up, then two equal swing highs at 110 (a pool of buy stops) with lows between
WARM = [(100, 103, 99, 102), (102, 104, 100, 101)] * 8
LEG = [(101, 106, 100, 105), (105, 110, 104, 108), (108, 109, 103, 104), (104, 105, 100, 101),
       (101, 103, 99.5, 102), (102, 106, 101, 105), (105, 110, 104, 107), (107, 108, 103, 104),
       (104, 105, 100.5, 101), (101, 104, 100, 103), (103, 107, 102, 106)]


def test_a_stop_hunt_of_equal_highs_that_closes_back_inside_is_sold() -> None:
    sweep = (106, 112, 105, 106.5)  # trades through the 110 pool, closes back below it
    bars = bars_from(WARM + LEG + [sweep] + [(106, 107, 105, 106)] * 3)
    params = LiquiditySweepParams.for_timeframe("15m", swing_length=2, min_confidence=0, reclaim_bars=0,
                                                use_previous_levels=False)
    strat = STRATEGIES["liquidity_sweep"]("BTC-PERP", "15m", params)
    got = run(strat, bars)
    assert len(got) == 1
    k, _setup, signal = got[0]
    assert k == len(WARM) + len(LEG)
    assert isinstance(signal, Signal) and signal.side is Side.SELL
    assert signal.entry == 106.5 and signal.stop > 112
    pool = signal.reasons[0]
    assert pool["structure"] == "LiquiditySwept" and pool["level"] == 110 and pool["members"] == 2
    assert signal.targets[0] < signal.entry and signal.strategy == "liquidity_sweep"


def test_the_same_sweep_closing_beyond_the_pool_is_not_traded() -> None:
    breakout = [(106, 112, 105, 111.5), (111.5, 113, 111, 112.5), (112.5, 114, 112, 113.5)]
    params = LiquiditySweepParams.for_timeframe("15m", swing_length=2, min_confidence=0, use_previous_levels=False)
    assert run(STRATEGIES["liquidity_sweep"]("BTC-PERP", "15m", params), bars_from(WARM + LEG + breakout)) == []


@pytest.fixture(scope="module")
def m15_bars() -> list[Bar]:
    df = bundled_btc_1m().iloc[:30_000]
    agg = df.resample("15min").agg({"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"})
    ts = agg.index.as_unit("ms").asi8.tolist()
    return [Bar("BTC-PERP", "15m", t, o, h, l, c, v) for t, (o, h, l, c, v) in zip(ts, agg.itertuples(index=False))]


def signals_of(name: str, bars: list[Bar]) -> list[tuple[Setup, Signal]]:
    strat = create(name, "BTC-PERP", "15m", {"min_confidence": 0})
    got = [(s, sig) for _, s, sig in run(strat, bars) if isinstance(sig, Signal)]
    assert len(got) >= 5, f"{name} found only {len(got)} signals"
    return got


def reason(sig: Signal, role: str) -> dict:
    return next(r for r in sig.reasons if r.get("role") == role)


def test_every_liquidity_sweep_signal_reverses_a_swept_level(m15_bars: list[Bar]) -> None:
    for setup, sig in signals_of("liquidity_sweep", m15_bars):
        swept = sig.reasons[0]
        assert swept["structure"] in {LiquiditySwept.__name__, PreviousLevelBroken.__name__}
        assert sig.side is (Side.SELL if swept["direction"] == 1 else Side.BUY)
        extreme = reason(sig, "sweep_extreme")["level"]
        # the extreme went through the level and the entry closed back inside it
        assert (extreme - swept["level"]) * sig.side.sign < 0 < (sig.entry - swept["level"]) * sig.side.sign
        assert (sig.stop - extreme) * sig.side.sign <= 0
        assert 0 <= sig.confidence <= 100 and len(sig.targets) == 2


def test_every_fvg_fill_signal_trades_a_held_gap_with_the_trend(m15_bars: list[Bar]) -> None:
    for setup, sig in signals_of("fvg_fill", m15_bars):
        gap = reason(sig, "fair_value_gap")
        assert gap["structure"] == FVGMitigated.__name__
        assert sig.side is (Side.BUY if gap["direction"] == 1 else Side.SELL)
        far = gap["bottom"] if sig.side is Side.BUY else gap["top"]
        assert setup.invalidation == far
        assert (sig.entry - far) * sig.side.sign > 0 and (sig.stop - far) * sig.side.sign < 0
        assert gap["index"] < gap["known_index"]


def test_every_bos_orderblock_signal_retests_the_block_of_its_break(m15_bars: list[Bar]) -> None:
    for setup, sig in signals_of("bos_orderblock", m15_bars):
        brk, block = reason(sig, "structure_break"), reason(sig, "order_block")
        assert brk["structure"] == StructureBreak.__name__ and brk["kind"] == "BOS" and block["structure"] == OrderBlock.__name__
        assert brk["direction"] == block["direction"] == sig.side.sign
        assert block["swing_index"] >= brk["index"]
        far = block["bottom"] if sig.side is Side.BUY else block["top"]
        assert (sig.entry - far) * sig.side.sign > 0 and (sig.stop - far) * sig.side.sign < 0
        assert sig.ts_event > brk["known_ts"]  # the retest comes after the break is known


def plan_for(side: Side, entry: float, stop: float, **kw: object):  # type: ignore[no-untyped-def]
    strat = create("fvg_fill", "BTC-PERP", "15m", kw)
    from fractald.core.strategies.confidence import Factors
    setup = Setup("fvg_fill", "BTC-PERP", "15m", side, entry, stop, 10.0, 0, Factors(side), (), invalidation=None)
    sig = strat.plan_entry(setup)
    assert isinstance(sig, Signal)
    return strat, strat.plan_management(sig, setup)


def test_learning_from_losses_lowers_confidence() -> None:
    strat, _ = plan_for(Side.BUY, 100.0, 90.0, min_confidence=0)
    from fractald.core.strategies.confidence import Factors
    setup = Setup("fvg_fill", "BTC-PERP", "15m", Side.BUY, 100.0, 90.0, 10.0, 0, Factors(Side.BUY, {"1h": 1}))
    before = strat.confidence_of(setup).value
    for k in range(6):
        strat.learn(ClosedTrade(f"t{k}", "BTC-PERP", "fvg_fill", Side.BUY, 1, 100, 90, 0, 1, -10, 0, 50, -1.0))
    strat.learn(ClosedTrade("other", "BTC-PERP", "liquidity_sweep", Side.BUY, 1, 100, 200, 0, 1, 100, 0, 50, 10.0))
    assert strat.trades_learned == 6
    assert strat.confidence_of(setup).value < before


def test_low_confidence_and_wide_stops_are_coded_skips() -> None:
    from fractald.core.strategies.confidence import Factors
    strat = create("fvg_fill", "BTC-PERP", "15m", {"min_confidence": 99})
    setup = Setup("fvg_fill", "BTC-PERP", "15m", Side.BUY, 100.0, 90.0, 10.0, 0, Factors(Side.BUY, {"1h": -1}))
    skip = strat.plan_entry(setup)
    assert isinstance(skip, Skip) and skip.code.value == "LOW_CONFIDENCE"
    wide = Setup("fvg_fill", "BTC-PERP", "15m", Side.BUY, 100.0, 10.0, 10.0, 0, Factors(Side.BUY))
    assert strat.plan_entry(wide).code.value == "RISK_TOO_WIDE"  # type: ignore[union-attr]


def test_params_have_timeframe_defaults_and_name_bad_values() -> None:
    assert StrategyParams.for_timeframe("15m").swing_length != StrategyParams.for_timeframe("4h").swing_length
    assert create("bos_orderblock", "X", "4h").params.swing_length == 3
    with pytest.raises(ValueError, match=r"max_retest_bars must be an integer in 1\.\.100000, got 0"):
        BOSOrderBlockParams.for_timeframe("1h", max_retest_bars=0)
    with pytest.raises(ValueError, match="unknown parameter.*swing_lenght"):
        create("fvg_fill", "X", "1h", {"swing_lenght": 3})
    with pytest.raises(ValueError, match="targets_r"):
        StrategyParams(targets_r=(3.0, 1.0))
    with pytest.raises(ValueError, match="unknown strategy 'nope'; known: bos_orderblock, fvg_fill, k1_vwap_reversion.*liquidity_sweep"):
        create("nope", "X", "1h")
