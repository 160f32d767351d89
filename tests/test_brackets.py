"""Bracket decisions: target sizing, break-even, trailing modes, time exit, limit entries."""

from __future__ import annotations

from typing import Any

import attrs
import pytest
from paper_engine import PaperEngine

from fractald.core.execution import events as ev
from fractald.core.execution.brackets import Bracket, BracketParams, BracketState, TrailMode
from fractald.core.execution.engine import EngineParams, TradingEngine
from fractald.core.execution.orders import Liquidity, OrderEvent, OrderStatus, OrderType
from fractald.core.execution.paper import PaperParams
from fractald.core.execution.reports import VenueReport
from fractald.core.models import Bar, Side, Signal, TradeTick
from fractald.core.risk.params import GateParams, RiskParams, SizingParams
from fractald.core.risk.sizing import Instrument

INST = Instrument("BTC", lot_size=0.01, tick_size=0.5)
M = 60_000
T0 = 1_699_920_000_000 + 3_600_000


def bracket(side: Side = Side.BUY, filled: float = 1.0, entry: float = 100.0, stop: float = 98.0,
            targets: tuple[float, ...] = (102.0, 104.0)) -> Bracket:
    b = Bracket("sig", "s", "BTC", side, "1m", filled, entry, stop, targets, 80.0, 0)
    return b.entry_filled(filled, entry, 1)


def with_targets(b: Bracket, qtys: tuple[float, ...], filled: tuple[float, ...]) -> Bracket:
    coids = tuple(f"t{i + 1}" for i in range(len(qtys)))
    return attrs.evolve(b, target_coids=coids, target_qtys=qtys, target_filled=filled)


def test_a_bracket_is_a_frozen_value() -> None:
    b = bracket()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        b.stop = 99.0  # type: ignore[misc]
    after = b.reduce_filled("t1", 0.4)
    assert (b.open_qty, after.open_qty) == (1.0, pytest.approx(0.6)) and after.initial_stop == 98.0


def test_target_plan_splits_filled_quantity_and_rounds_to_lots() -> None:
    b = bracket(filled=0.05)
    plan = b.target_plan(BracketParams(target_fractions=(0.5, 0.5)), INST)
    assert plan == [(102.0, 0.02), (104.0, 0.03)]  # the last takes the rounding leftover
    tiny = bracket(filled=0.01)
    assert tiny.target_plan(BracketParams(target_fractions=(0.5, 0.5)), INST) == [(104.0, 0.01)]
    one = bracket(filled=0.04, targets=(102.0,))
    assert one.target_plan(BracketParams(target_fractions=(0.5, 0.5)), INST) == [(102.0, 0.04)]


def test_break_even_after_tp1_with_offset() -> None:
    p = BracketParams(break_even_offset_ticks=2)
    b = with_targets(bracket(), (0.5, 0.5), (0.0, 0.0))
    assert b.break_even_stop(p, INST) is None
    b = b.reduce_filled("t1", 0.5)
    assert b.tp1_done() and b.open_qty == 0.5
    assert b.break_even_stop(p, INST) == 101.0
    assert b.break_even_stop(BracketParams(break_even_after_tp1=False), INST) is None
    short = with_targets(bracket(Side.SELL, stop=102.0, targets=(98.0,)), (0.5,), (0.5,))
    assert short.break_even_stop(p, INST) == 99.0


@pytest.mark.parametrize("mode,distance,atr,expected", [
    (TrailMode.FIXED, 1.5, None, 108.5),
    (TrailMode.PERCENT, 0.02, None, 107.5),  # 110 * 0.98 = 107.8, rounded down to the tick
    (TrailMode.ATR, 2.0, 1.2, 107.5),  # 110 - 2.4 = 107.6, rounded down
])
def test_trailing_modes(mode: TrailMode, distance: float, atr: float | None, expected: float) -> None:
    p = BracketParams(trail_mode=mode, trail_distance=distance, trail_after_tp1=False)
    b = bracket()
    assert b.trailing_stop(110.0, p, INST, atr) == expected
    b = attrs.evolve(b, stop=expected, best_price=b.best_after(110.0))
    assert b.trailing_stop(109.0, p, INST, atr) is None  # never loosens
    short = bracket(Side.SELL, stop=102.0, targets=(95.0,))
    got = short.trailing_stop(90.0, p, INST, atr)
    assert got is not None and got > 90.0 and got < 102.0


def test_trailing_waits_for_tp1_when_configured() -> None:
    p = BracketParams(trail_mode=TrailMode.FIXED, trail_distance=1.0, trail_after_tp1=True)
    b = with_targets(bracket(), (0.5,), (0.0,))
    assert b.trailing_stop(110.0, p, INST, None) is None
    b = attrs.evolve(b.reduce_filled("t1", 0.5), best_price=b.best_after(110.0))
    assert b.trailing_stop(110.5, p, INST, None) == 109.5


def test_params_validation() -> None:
    with pytest.raises(ValueError, match="sum to at most 1"):
        BracketParams(target_fractions=(0.7, 0.7))
    with pytest.raises(ValueError, match="trail_distance"):
        BracketParams(trail_mode=TrailMode.ATR)
    with pytest.raises(ValueError, match="max_holding_bars"):
        BracketParams(max_holding_bars=-1)


def test_time_exit_due() -> None:
    p = BracketParams(max_holding_bars=3)
    b = bracket()
    assert not b.time_exit_due(1 + 3 * M - 1, p, M)
    assert b.time_exit_due(1 + 3 * M, p, M)


# -- through the engine: limit entries, partial fills, stop before entry -------------

def engine() -> TradingEngine:
    return PaperEngine(EngineParams(
        entry_type=OrderType.LIMIT, entry_ttl_bars=2, instruments=(INST,),
        paper=PaperParams(latency_ms=0, slippage_bps=0, maker_fee_bps=0, taker_fee_bps=0),
        risk=RiskParams(sizing=SizingParams(risk_fraction=0.01, min_notional=0),
                        gates=GateParams(max_symbol_exposure_fraction=50, max_gross_exposure_fraction=50))))


def bar(i: int, o: float, h: float, lo: float, c: float) -> Bar:
    return Bar("BTC", "1m", T0 + i * M, o, h, lo, c, 10.0)


def of(events: list[Any], cls: type) -> list[Any]:
    return [e for e in events if isinstance(e, cls)]


def sig(entry: float = 99.0, stop: float = 97.0) -> Signal:
    return Signal("BTC", Side.BUY, entry, stop, (101.0, 103.0), 90.0, "s", "1m", T0 + M)


def test_limit_entry_fills_only_when_traded_through() -> None:
    eng = engine()
    eng.on_bar(bar(0, 100, 100, 100, 100))
    out = eng.on_signal(sig(), T0 + M)
    assert of(out, ev.OrderIntent)[0].order_type is OrderType.LIMIT
    assert of(eng.on_bar(bar(1, 100, 100.5, 99, 99.5)), ev.OrderFilled) == []  # touched, not through
    fills = of(eng.on_bar(bar(2, 99.5, 100, 98.5, 99.5)), ev.OrderFilled)
    assert [f.role for f in fills] == ["entry"] and fills[0].price == 99.0


def test_limit_entry_expires_and_bracket_closes() -> None:
    eng = engine()
    eng.on_bar(bar(0, 100, 100, 100, 100))
    eng.on_signal(sig(), T0 + M)
    eng.on_bar(bar(1, 100, 101, 99.5, 100.5))
    out = eng.on_bar(bar(2, 100.5, 101, 99.5, 100.5))
    entry = [o for o in eng.orders.values() if o.role == "entry"][0]
    assert entry.status is OrderStatus.EXPIRED
    assert of(out, ev.BracketClosed)[0].reason == "entry_expired" and eng.brackets == {}


def test_entry_fills_before_a_stop_below_it_and_the_stop_then_fires() -> None:
    eng = engine()
    eng.on_bar(bar(0, 100, 100, 100, 100))
    eng.on_signal(sig(entry=98.0, stop=96.0), T0 + M)
    # down bar: the path passes the entry (98) on the way to the low (95), through the stop
    out = eng.on_bar(bar(1, 100, 100, 95, 95.5))
    fills = of(out, ev.OrderFilled)
    assert [(f.role, f.price) for f in fills] == [("entry", 98.0), ("exit1", 96.0)]
    assert of(out, ev.TradeClosed)[0].trade.r_multiple == pytest.approx(-1.0)


def venue_engine(**kw: Any) -> TradingEngine:
    return PaperEngine(EngineParams(
        entry_type=OrderType.LIMIT, entry_ttl_bars=2, instruments=(INST,), venue="test-venue",
        risk=RiskParams(sizing=SizingParams(risk_fraction=0.01, min_notional=0),
                        gates=GateParams(max_symbol_exposure_fraction=50, max_gross_exposure_fraction=50)),
        **kw))


def test_stop_before_entry_withdraws_the_entry() -> None:
    eng = venue_engine()
    out = eng.on_signal(sig(entry=98.0, stop=96.0), T0 + M)
    coid = of(out, ev.OrderIntent)[0].client_order_id
    # the venue (a real one: no paper broker here) gaps through both levels with no fill for us
    out = eng.on_trade(TradeTick("BTC", 95.5, 1.0, Side.SELL, "x", T0 + M + 10))
    assert of(out, ev.BracketExit)[0].reason == "stop_before_entry"
    assert [c.client_order_id for c in of(out, ev.CancelRequested)] == [coid]
    out = eng.on_venue_report(VenueReport(OrderEvent.CANCEL, coid, T0 + M + 20))
    assert of(out, ev.BracketClosed)[0].reason == "stop_before_entry" and eng.brackets == {}


def test_partial_entry_then_expiry_sizes_targets_to_the_fill() -> None:
    eng = venue_engine()
    out = eng.on_signal(sig(), T0 + M)
    entry = of(out, ev.OrderIntent)[0]
    assert entry.quantity == 50.0 and eng.broker is None
    eng.on_venue_report(VenueReport(OrderEvent.ACCEPT, entry.client_order_id, T0 + M + 5))
    eng.on_venue_report(VenueReport(OrderEvent.FILL, entry.client_order_id, T0 + M + 9, trade_id="v1",
                                    quantity=20.0, price=99.0, liquidity=Liquidity.MAKER))
    out = eng.on_venue_report(VenueReport(OrderEvent.EXPIRE, entry.client_order_id, T0 + 3 * M))
    tps = of(out, ev.OrderIntent)
    assert [(t.role, t.quantity, t.price) for t in tps] == [("tp1", 10.0, 101.0), ("tp2", 10.0, 103.0)]
    assert eng.brackets[sig().signal_id].state is BracketState.OPEN


def stop_engine(venue: str = "paper") -> TradingEngine:
    return PaperEngine(EngineParams(
        venue=venue, instruments=(INST,), brackets=BracketParams(venue_stops=True),
        paper=PaperParams(latency_ms=0, slippage_bps=0, maker_fee_bps=0, taker_fee_bps=0),
        risk=RiskParams(sizing=SizingParams(risk_fraction=0.01, min_notional=0),
                        gates=GateParams(max_symbol_exposure_fraction=50, max_gross_exposure_fraction=50))))


def test_venue_stop_follows_the_position_and_fires_at_the_venue() -> None:
    eng = stop_engine()
    eng.on_bar(bar(0, 100, 100, 100, 100))
    out = eng.on_signal(Signal("BTC", Side.BUY, 100, 98, (102, 104), 90.0, "s", "1m", T0 + M), T0 + M)
    stops = [i for i in of(out, ev.OrderIntent) if i.role.startswith("stop")]
    assert [(s.order_type, s.trigger_price, s.quantity, s.reduce_only) for s in stops] == [
        (OrderType.STOP_MARKET, 98.0, 50.0, True)]
    out = eng.on_bar(bar(1, 100, 102.5, 99.5, 102))  # TP1: half out, stop to break-even
    stops = [i for i in of(out, ev.OrderIntent) if i.role.startswith("stop")]
    assert [(s.role, s.trigger_price, s.quantity) for s in stops] == [("stop2", 100.0, 25.0)]
    assert eng.orders[stops[0].client_order_id].status is OrderStatus.ACCEPTED
    assert [o.status for o in eng.orders.values() if o.role == "stop1"] == [OrderStatus.CANCELED]
    out = eng.on_bar(bar(2, 102, 102, 99, 99.5))
    fills = of(out, ev.OrderFilled)
    assert [(f.role, f.price) for f in fills] == [("stop2", 100.0)]  # the venue's stop, no market exit
    trade = of(out, ev.TradeClosed)[0].trade
    assert trade.exit_reason == "stop" and trade.pnl == pytest.approx(50.0)
    assert [o.status for o in eng.orders.values() if o.role == "tp2"] == [OrderStatus.CANCELED]
    assert eng.brackets == {} and eng.broker is not None and eng.broker.orders == {}


def test_local_stop_is_the_backstop_when_the_venue_stop_is_gone() -> None:
    eng = stop_engine("sim")
    out = eng.on_signal(Signal("BTC", Side.BUY, 100, 98, (102,), 90.0, "s", "1m", T0 + M), T0 + M)
    entry = of(out, ev.OrderIntent)[0].client_order_id
    out = eng.on_venue_report(VenueReport(OrderEvent.FILL, entry, T0 + M + 1, trade_id="f1",
                                          quantity=50.0, price=100.0, liquidity=Liquidity.TAKER))
    stop = [i for i in of(out, ev.OrderIntent) if i.role == "stop1"][0].client_order_id
    eng.on_venue_report(VenueReport(OrderEvent.ACCEPT, stop, T0 + M + 2))
    # price through the stop while the venue stop works: the venue handles it, no local exit
    assert of(eng.on_trade(TradeTick("BTC", 97.5, 1.0, Side.SELL, "a", T0 + M + 3)), ev.BracketExit) == []
    eng.on_venue_report(VenueReport(OrderEvent.CANCEL, stop, T0 + M + 4, reason="margin"))
    out = eng.on_trade(TradeTick("BTC", 97.5, 1.0, Side.SELL, "b", T0 + M + 5))
    assert of(out, ev.BracketExit)[0].reason == "stop"
    assert [i.role for i in of(out, ev.OrderIntent)] == ["exit1"]


def test_strategy_stop_moves_only_tighten_and_a_crossed_stop_exits() -> None:
    eng = stop_engine()
    eng.on_bar(bar(0, 100, 100, 100, 100))
    s = Signal("BTC", Side.BUY, 100, 98, (104,), 90.0, "s", "1m", T0 + M)
    eng.on_signal(s, T0 + M)
    out = eng.move_stop(s.signal_id, 97.0, T0 + M + 1, "trail_swing")
    assert of(out, ev.StopMoveRefused)[0].reason == "would_loosen" and eng.brackets[s.signal_id].stop == 98.0
    out = eng.move_stop(s.signal_id, 99.2, T0 + M + 2, "trail_swing")
    moved = of(out, ev.StopMoved)[0]
    assert (moved.old, moved.new, moved.reason) == (98.0, 99.0, "trail_swing")  # rounded down to the tick
    assert [(i.role, i.trigger_price) for i in of(out, ev.OrderIntent)] == [("stop2", 99.0)]
    out = eng.move_stop(s.signal_id, 100.5, T0 + M + 3, "structure")  # above the price: out now
    assert of(out, ev.BracketExit)[0].reason == "structure"
    assert of(out, ev.TradeClosed)[0].trade.exit_reason == "structure"
    assert of(eng.move_stop(s.signal_id, 99.0, T0 + M + 4), ev.StopMoveRefused)[0].reason == "no_open_trade"


def test_higher_timeframe_bars_feed_atr_and_time_exits_without_fills() -> None:
    eng = PaperEngine(EngineParams(
        instruments=(INST,), brackets=BracketParams(max_holding_bars=1),
        paper=PaperParams(latency_ms=0, slippage_bps=0, maker_fee_bps=0, taker_fee_bps=0),
        risk=RiskParams(sizing=SizingParams(risk_fraction=0.01, min_notional=0),
                        gates=GateParams(max_symbol_exposure_fraction=50, max_gross_exposure_fraction=50))))
    eng.on_bar(bar(0, 100, 100, 100, 100))
    s = Signal("BTC", Side.BUY, 100, 98, (104,), 90.0, "s", "15m", T0 + M)
    eng.on_signal(s, T0 + M)
    # a 15m bar whose low is through the stop: the base bars already decided that, so no fill here
    h = Bar("BTC", "15m", T0 - 14 * M + M, 100, 101, 97, 100, 50.0)
    out = eng.on_higher_timeframe_bar(h)
    assert of(out, ev.OrderFilled) == [] and "BTC|15m" in eng.atr
    late = Bar("BTC", "15m", T0 + M, 100, 101, 99, 100, 50.0)  # one full 15m bar after the fill
    out = eng.on_higher_timeframe_bar(late)
    assert of(out, ev.BracketExit)[0].reason == "time"
