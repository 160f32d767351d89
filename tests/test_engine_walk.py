"""Bar mode's short cuts change nothing: the engine gives the events and state of the full tick walk.

`TradingEngine.on_bar` walks a candle's intrabar path price by price. Where a
symbol has nothing that could act (no order, stop or position: "quiet"), or
nothing within the path's reach ("inert"), it does less at each point. The
reference here is the same engine with both short cuts turned off, so every
point of every path goes through the paper broker, the local stops and the
breakers. Both run the same real BTC candles on two symbols with trades,
breaker trips (intrabar, at day starts, mid-path when bars are not aligned
to the minute), resumes and flattens, and must agree event for event.
"""

from __future__ import annotations

from typing import Any

import attrs
import pytest
from paper_engine import PaperEngine

from fractald.core.execution.brackets import BracketParams, TrailMode
from fractald.core.execution.engine import EngineParams, FillSource, TradingEngine
from fractald.core.execution.orders import OrderType
from fractald.core.execution.paper import (
    PaperBroker,
    PaperParams,
    bar_path,
    bar_path_ends,
    bar_path_points,
    bar_path_trades,
)
from fractald.core.models import Bar, Side, Signal
from fractald.core.risk.breakers import Breaker
from fractald.core.risk.params import (
    BreakerParams,
    GateParams,
    ReliabilityParams,
    RiskParams,
    SizingParams,
)
from fractald.core.risk.sizing import Instrument
from fractald.datasets import bundled_btc_1m_arrays

BARS = 3_000


class FullWalkEngine(PaperEngine):
    """The reference: every path point through the broker, the brackets and the breakers."""

    def _quiet(self, symbol: str, broker: PaperBroker) -> bool:
        return False

    def _inert(self, symbol: str, broker: PaperBroker, lo: float, hi: float, until_ts: int) -> bool:
        return False


def engine_params(entry: OrderType, trail: bool, venue_stops: bool) -> EngineParams:
    return EngineParams(
        initial_equity=50_000.0, fills_from=FillSource.BARS, entry_type=entry, entry_ttl_bars=5,
        instruments=(Instrument("A", 0.001, 0.1), Instrument("B", 0.01, 0.01)),
        paper=PaperParams(latency_ms=50, funding_rate=0.0001, funding_interval_ms=3_600_000),
        brackets=BracketParams(trail_mode=TrailMode.PERCENT if trail else TrailMode.NONE,
                               trail_distance=0.003 if trail else 0.0, venue_stops=venue_stops),
        risk=RiskParams(
            sizing=SizingParams(risk_fraction=0.05, max_notional=1e9),
            gates=GateParams(max_orders_per_window=1_000_000, max_heat_fraction=0.9,
                             max_gross_exposure_fraction=50, max_symbol_exposure_fraction=50,
                             max_cluster_exposure_fraction=50),
            breakers=BreakerParams(max_trades_per_day=1_000_000, daily_loss_fraction=0.01,
                                   max_drawdown_fraction=0.03, max_consecutive_losses=1_000),
            reliability=ReliabilityParams(throttle_after_losses=1_000, quarantine_after_losses=1_000,
                                          quarantine_expectancy_r=-100.0)))


def candles(offset_ms: int) -> list[list[Bar]]:
    """Per step, a bar of A (BTC) and of B (BTC 777 bars later, scaled down), `offset_ms` off the minute."""
    a = bundled_btc_1m_arrays()
    # start two hours before a UTC midnight, so the run crosses day starts
    start = int(next(i for i, t in enumerate(a["ts_open_ms"]) if int(t) % 86_400_000 == 22 * 3_600_000))
    steps = []
    for i in range(start, start + BARS):
        row = []
        for symbol, scale, lag in (("A", 1.0, 0), ("B", 0.05, 777)):
            j = i + lag
            row.append(Bar(symbol, "1m", int(a["ts_open_ms"][i]) + offset_ms, float(a["open"][j]) * scale,
                           float(a["high"][j]) * scale, float(a["low"][j]) * scale,
                           float(a["close"][j]) * scale, float(a["volume"][j])))
        steps.append(row)
    return steps


def run(engine: TradingEngine, steps: list[list[Bar]]) -> list[Any]:
    out: list[Any] = []
    for i, row in enumerate(steps):
        for k, bar in enumerate(row):
            out += engine.on_bar(bar)
            if (i + 7 * k) % 13 == 3:
                side = Side.BUY if (i // 13) % 2 else Side.SELL
                px, sg = bar.close, side.sign
                entry = px * (1 - sg * 0.0005) if engine.params.entry_type is OrderType.LIMIT else px
                out += engine.on_signal(Signal(bar.symbol, side, entry, px * (1 - sg * 0.01),
                                               (px * (1 + sg * 0.01), px * (1 + sg * 0.02)), 90.0,
                                               f"s{i % 2}", "1m", bar.ts_event), bar.ts_event)
        if i % 400 == 399:
            out += engine.resume(row[0].ts_event)
        if i % 700 == 699:
            out += engine.flatten("B", row[0].ts_event)
    return out


@pytest.mark.parametrize(("entry", "trail", "venue_stops", "offset_ms"), [
    (OrderType.MARKET, False, False, 0),
    (OrderType.LIMIT, False, True, 0),
    (OrderType.MARKET, True, False, 0),
    (OrderType.MARKET, False, False, 30_000),  # bars off the minute: a day starts mid-path
    (OrderType.LIMIT, False, False, 45_000),
])
def test_bar_walk_short_cuts_match_the_full_walk(entry: OrderType, trail: bool, venue_stops: bool,
                                                  offset_ms: int) -> None:
    steps = candles(offset_ms)
    p = engine_params(entry, trail, venue_stops)
    fast, full = PaperEngine(p), FullWalkEngine(p)
    got, want = run(fast, steps), run(full, steps)
    kinds = {e.kind for e in want}
    # the run must reach what the short cuts have to get right
    assert {"order_filled", "breaker_tripped", "breakers_cleared", "trade_closed"} <= kinds
    assert got == want
    assert fast.snapshot() == full.snapshot()
    assert fast.broker is not None and full.broker is not None
    assert fast.broker.last_trade == full.broker.last_trade


def test_bar_path_forms_agree() -> None:
    bar = Bar("A", "1m", 1_700_000_040_000, 100.0, 104.0, 97.0, 99.0, 12.0)
    levels = [98.0, 103.0, 120.0, 97.0]
    ticks = bar_path(bar, levels)
    assert [(t.price, t.size, t.aggressor, t.ts_event) for t in ticks] == bar_path_trades(bar, levels)
    assert [(t.price, t.ts_event) for t in ticks] == bar_path_points(bar, levels)
    # down bar: open, high, low, close, with the levels each leg crosses; 97 is the low itself
    assert [t.price for t in ticks] == [100.0, 103.0, 104.0, 103.0, 98.0, 97.0, 98.0, 99.0]
    assert ticks[0].ts_event == bar.ts_open and ticks[-1].ts_event == bar.ts_event - 1


@pytest.mark.parametrize("bad", [{"low": 0.0}, {"high": float("nan")}, {"close": float("inf")},
                                 {"volume": float("nan")}])
def test_a_bar_that_cannot_be_traded_is_refused_quiet_or_not(bad: dict[str, float]) -> None:
    fields = {"open": 100.0, "high": 101.0, "low": 99.0, "close": 100.5, "volume": 5.0} | bad
    bar = Bar("A", "1m", 1_700_000_040_000, **fields)
    with pytest.raises(ValueError, match="to trade its path"):
        PaperEngine(engine_params(OrderType.MARKET, False, False)).on_bar(bar)
    with pytest.raises(ValueError, match="to trade its path"):
        FullWalkEngine(engine_params(OrderType.MARKET, False, False)).on_bar(bar)


def test_a_trip_inside_an_inert_path_hands_the_rest_of_it_to_the_full_walk() -> None:
    """A daily-loss trip at the low of a bar that crosses midnight, then the day starts at its next point.

    The trip withdraws a pending limit entry (its cancel is reported at once); the
    full walk books that cancel at the next point, before the new day clears the trip.
    """
    p = EngineParams(
        initial_equity=10_000.0, fills_from=FillSource.BARS, entry_type=OrderType.LIMIT, entry_ttl_bars=1_000,
        instruments=(Instrument("A", 0.001, 0.1),),
        paper=PaperParams(latency_ms=0, slippage_bps=0.0, maker_fee_bps=0.0, taker_fee_bps=0.0),
        risk=RiskParams(sizing=SizingParams(risk_fraction=0.1, max_notional=1e9, min_notional=0),
                        gates=GateParams(max_gross_exposure_fraction=50, max_symbol_exposure_fraction=50,
                                         max_cluster_exposure_fraction=50, max_heat_fraction=0.9),
                        breakers=BreakerParams(daily_loss_fraction=0.02, max_drawdown_fraction=0.5)))
    midnight = 1_700_006_400_000  # a UTC day start
    t0 = midnight - 10 * 60_000 + 30_000  # bars 30 s off the minute
    flat = [Bar("A", "1m", t0 + i * 60_000, 100.0, 100.0, 100.0, 100.0, 5.0) for i in range(9)]
    drop = Bar("A", "1m", t0 + 9 * 60_000, 99.9, 99.95, 97.0, 99.95, 5.0)  # 23:59:30, low at 23:59:50
    assert drop.ts_open < midnight < drop.ts_event
    results = []
    for engine in (PaperEngine(p), FullWalkEngine(p)):
        out: list[Any] = []
        for i, bar in enumerate(flat):
            out += engine.on_bar(bar)
            if i == 1:  # held long, and a second strategy's limit far below
                out += engine.on_signal(Signal("A", Side.BUY, 100.5, 90.0, (130.0, 140.0), 90.0, "s1", "1m",
                                               bar.ts_event), bar.ts_event)
                out += engine.on_signal(Signal("A", Side.BUY, 80.0, 70.0, (120.0, 130.0), 90.0, "s2", "1m",
                                               bar.ts_event), bar.ts_event)
        results.append((out, engine.on_bar(drop)))
    (setup, got), (_, want) = results
    assert [e.kind for e in setup].count("order_filled") == 1  # s1 in, s2 resting
    assert [e.kind for e in want][:3] == ["breaker_tripped", "trading_state", "bracket_exit"]
    assert [e.kind for e in want].index("bracket_closed") < [e.kind for e in want].index("breakers_cleared")
    assert got == want


@pytest.mark.parametrize("prices", [(100.0, 104.0, 97.0, 99.0), (100.0, 100.0, 100.0, 100.0),
                                    (100.0, 101.0, 100.0, 101.0), (100.0, 100.0, 99.0, 99.0)])
@pytest.mark.parametrize("ts_open", [1_700_000_040_000, 1_700_006_370_000])
def test_bar_path_ends_are_the_paths_ends(prices: tuple[float, float, float, float], ts_open: int) -> None:
    o, h, lo, c = prices
    for timeframe in ("1m", "1h"):
        bar = Bar("A", timeframe, ts_open, o, h, lo, c, 3.0)
        for levels in ([], [99.5, 100.5, 103.0]):
            points = bar_path_points(bar, levels)
            assert bar_path_ends(bar) == (points[0], points[-1])


def stopped_out(engine: TradingEngine, t0: int) -> list[Any]:
    """Flat at 97.5 after a long from 100 stopped at 98: about 1% of equity lost."""
    out = engine.on_bar(Bar("A", "1m", t0, 100.0, 100.0, 100.0, 100.0, 5.0))
    out += engine.on_signal(Signal("A", Side.BUY, 100.0, 98.0, (110.0, 120.0), 90.0, "s", "1m",
                                   t0 + 60_000), t0 + 60_000)
    out += engine.on_bar(Bar("A", "1m", t0 + 60_000, 100.0, 100.0, 97.0, 97.5, 5.0))
    out += engine.on_bar(Bar("A", "1m", t0 + 120_000, 97.5, 97.5, 97.5, 97.5, 5.0))
    assert not engine.brackets
    return out


def small_loss_params(**breakers: Any) -> EngineParams:
    return EngineParams(
        initial_equity=10_000.0, fills_from=FillSource.BARS, instruments=(Instrument("A", 0.001, 0.1),),
        paper=PaperParams(latency_ms=0, slippage_bps=0.0, maker_fee_bps=0.0, taker_fee_bps=0.0),
        risk=RiskParams(sizing=SizingParams(risk_fraction=0.01, min_notional=0),
                        gates=GateParams(max_gross_exposure_fraction=50, max_symbol_exposure_fraction=50,
                                         max_cluster_exposure_fraction=50),
                        breakers=BreakerParams(**breakers)))


T_DAY = 1_700_006_400_000 + 3_600_000  # 01:00 UTC
QUIET_BAR = Bar("A", "1m", T_DAY + 180_000, 97.5, 97.5, 97.5, 97.5, 5.0)


def test_new_breaker_limits_are_checked_at_the_next_price_even_when_nothing_moves() -> None:
    """The operator tightens the limits (as the daemon's risk overrides do) while flat: the next bar trips."""
    p = small_loss_params()
    results = []
    for engine in (PaperEngine(p), FullWalkEngine(p)):
        out = stopped_out(engine, T_DAY)
        assert engine.breakers.trips == {}
        tighter = attrs.evolve(p.risk.breakers, max_drawdown_fraction=0.005)
        engine.set_risk(attrs.evolve(engine.params.risk, breakers=tighter))
        results.append(out + engine.on_bar(QUIET_BAR))
    got, want = results
    assert [e.kind for e in want].count("order_filled") == 2
    assert want[-2].kind == "breaker_tripped" and want[-2].ts == QUIET_BAR.ts_open
    assert got == want


def test_a_resumed_daily_loss_trips_again_at_the_next_price_even_when_nothing_moves() -> None:
    """Resume clears the trip but not the day's loss: the next bar, at the same equity, trips it again."""
    p = small_loss_params(daily_loss_fraction=0.005)
    results = []
    for engine in (PaperEngine(p), FullWalkEngine(p)):
        out = stopped_out(engine, T_DAY)
        assert list(engine.breakers.trips) == [Breaker.DAILY_LOSS]
        out += engine.resume(QUIET_BAR.ts_open)
        assert engine.breakers.trips == {}
        results.append(out + engine.on_bar(QUIET_BAR))
    got, want = results
    assert [e.kind for e in want].count("breaker_tripped") == 2
    assert want[-2].kind == "breaker_tripped" and want[-2].ts == QUIET_BAR.ts_open
    assert got == want
