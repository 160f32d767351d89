"""TradingEngine: signal to fills to closed trades, brackets, breakers, commands, snapshots, rebuilds."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from paper_engine import PaperEngine

from fractald.core.execution import events as ev
from fractald.core.execution.brackets import BracketParams, TrailMode
from fractald.core.execution.engine import EngineParams, FillSource, TradingEngine
from fractald.core.execution.orders import OrderStatus, OrderType
from fractald.core.execution.paper import PaperParams
from fractald.core.models import Bar, FeedHealth, Quote, Side, Signal, TradeTick
from fractald.core.risk.breakers import Breaker, TradingState
from fractald.core.risk.denial import DenialCode
from fractald.core.risk.params import (
    BreakerParams,
    GateParams,
    ReliabilityParams,
    RiskParams,
    SizingParams,
)
from fractald.core.risk.sizing import Instrument

M = 60_000
T0 = 1_700_000_000_000 - (1_700_000_000_000 % 86_400_000) + 3_600_000  # 01:00 UTC


def params(**kw: Any) -> EngineParams:
    base: dict[str, Any] = dict(
        initial_equity=10_000.0,
        instruments=(Instrument("BTC", lot_size=0.001, tick_size=0.5),),
        paper=PaperParams(latency_ms=0, slippage_bps=0.0, maker_fee_bps=0.0, taker_fee_bps=0.0),
        risk=RiskParams(sizing=SizingParams(risk_fraction=0.01, min_notional=0),
                        gates=GateParams(max_symbol_exposure_fraction=50, max_gross_exposure_fraction=50,
                                         max_cluster_exposure_fraction=50)))
    base.update(kw)
    return EngineParams(**base)


def bar(i: int, o: float, h: float, lo: float, c: float, symbol: str = "BTC") -> Bar:
    return Bar(symbol, "1m", T0 + i * M, o, h, lo, c, 10.0)


def flat(i: int, px: float = 100.0) -> Bar:
    return bar(i, px, px, px, px)


def signal(i: int = 0, side: Side = Side.BUY, entry: float = 100.0, stop: float = 98.0,
           targets: tuple[float, ...] = (102.0, 104.0), strategy: str = "s", conf: float = 90.0,
           symbol: str = "BTC") -> Signal:
    return Signal(symbol, side, entry, stop, targets, conf, strategy, "1m", T0 + i * M)


def kinds(events: list[Any]) -> list[str]:
    return [e.kind for e in events]


def of(events: list[Any], cls: type) -> list[Any]:
    return [e for e in events if isinstance(e, cls)]


def started(p: EngineParams | None = None) -> TradingEngine:
    eng = PaperEngine(p or params())
    eng.on_bar(flat(0))
    return eng


def test_signal_to_entry_fill_and_targets() -> None:
    eng = started()
    out = eng.on_signal(signal(1), T0 + M)
    opened = of(out, ev.BracketOpened)[0]
    assert opened.quantity == pytest.approx(50.0)  # 1% of 10k over 2 per unit
    intents = of(out, ev.OrderIntent)
    assert [i.role for i in intents] == ["entry", "tp1", "tp2"]
    assert [i.quantity for i in intents] == [50.0, 25.0, 25.0]
    assert all(i.reduce_only for i in intents[1:])
    fill = of(out, ev.OrderFilled)[0]
    assert fill.price == 100.0 and fill.quantity == 50.0
    assert eng.accounting.position("s", "BTC").quantity == 50.0
    # the same signal again is a coded duplicate, with the same deterministic id as before
    again = eng.on_signal(signal(1), T0 + M)
    assert of(again, ev.SignalDenied)[0].code is DenialCode.DUPLICATE_SIGNAL


def test_tp1_then_break_even_stop_then_exit_at_entry() -> None:
    eng = started()
    eng.on_signal(signal(1), T0 + M)
    out = eng.on_bar(bar(1, 100, 102.5, 99.5, 102))  # up bar: low first, then through TP1
    assert [f.role for f in of(out, ev.OrderFilled)] == ["tp1"]
    moved = of(out, ev.StopMoved)
    assert moved and moved[0].reason == "break_even" and moved[0].new == 100.0
    out = eng.on_bar(bar(2, 102, 102, 99, 99.5))  # down through the break-even stop
    fills = of(out, ev.OrderFilled)
    assert [f.role for f in fills] == ["exit1"] and fills[0].price == 100.0
    closed = of(out, ev.TradeClosed)[0].trade
    assert closed.pnl == pytest.approx(25 * 2.0) and closed.r_multiple == pytest.approx(0.5)
    assert closed.exit_reason == "stop"
    assert of(out, ev.BracketClosed)[0].reason == "stop"
    tp2 = [o for o in eng.orders.values() if o.role == "tp2"][0]
    assert tp2.status is OrderStatus.CANCELED  # one-cancels-other
    assert eng.brackets == {}


def test_stop_loss_is_minus_one_r() -> None:
    eng = started()
    eng.on_signal(signal(1), T0 + M)
    out = eng.on_bar(bar(1, 100, 101, 97, 97.5))  # down bar: high first, then through the stop
    trade = of(out, ev.TradeClosed)[0].trade
    assert trade.exit_price == 98.0 and trade.r_multiple == pytest.approx(-1.0)
    assert eng.equity == pytest.approx(9_900.0)


def test_both_targets_close_the_bracket() -> None:
    eng = started()
    eng.on_signal(signal(1), T0 + M)
    out = eng.on_bar(bar(1, 100, 105, 99, 104.5))
    assert [f.role for f in of(out, ev.OrderFilled)] == ["tp1", "tp2"]
    trade = of(out, ev.TradeClosed)[0].trade
    assert trade.pnl == pytest.approx(25 * 2 + 25 * 4) and trade.exit_reason == "target"
    assert eng.brackets == {}


def test_trailing_stop_follows_the_best_price() -> None:
    p = params(brackets=BracketParams(trail_mode=TrailMode.FIXED, trail_distance=1.0,
                                      trail_after_tp1=False, break_even_after_tp1=False,
                                      target_fractions=(1.0,)))
    eng = started(p)
    eng.on_signal(signal(1, targets=(110.0,)), T0 + M)
    out = eng.on_bar(bar(1, 100, 103, 100, 103))
    stops = [m.new for m in of(out, ev.StopMoved)]
    assert stops and stops[-1] == 102.0
    out = eng.on_bar(bar(2, 103, 103, 101, 101))
    assert of(out, ev.OrderFilled)[0].price == 102.0


def test_time_exit_and_thesis_invalidation() -> None:
    eng = started(params(brackets=BracketParams(max_holding_bars=2)))
    eng.on_signal(signal(1), T0 + M)
    assert of(eng.on_bar(flat(1)), ev.BracketExit) == []
    out = eng.on_bar(flat(2))
    assert of(out, ev.BracketExit)[0].reason == "time" and of(out, ev.TradeClosed)
    eng.on_signal(signal(3), T0 + 3 * M)
    out = eng.invalidate(signal(3).signal_id, T0 + 3 * M + 1, "swing low broken")
    assert of(out, ev.BracketExit)[0].reason == "swing low broken"
    assert of(out, ev.TradeClosed)[0].trade.exit_reason == "swing low broken"


def test_gate_denials_are_coded() -> None:
    eng = started()
    eng.on_feed_health(FeedHealth("BTC", T0, 40.0, stale=True))
    assert of(eng.on_signal(signal(1), T0 + M), ev.SignalDenied)[0].code is DenialCode.FEED_STALE
    eng.on_feed_health(FeedHealth("BTC", T0, 0.1))
    eng.pause(T0 + M)
    assert of(eng.on_signal(signal(2), T0 + M), ev.SignalDenied)[0].code is DenialCode.TRADING_PAUSED
    eng.resume(T0 + M)
    assert of(eng.on_signal(signal(3, stop=100.5, entry=101, targets=(103,)), T0 + M),
              ev.SignalDenied)[0].code is DenialCode.STOP_ALREADY_HIT
    assert of(eng.on_signal(signal(4), T0 + M), ev.BracketOpened)
    d = of(eng.on_signal(signal(5, strategy="other", side=Side.SELL, stop=102, targets=(97,)), T0 + M),
           ev.SignalDenied)[0]
    assert d.code is DenialCode.POSITION_ALREADY_OPEN
    # heat: 1% per trade, cap 6%: open trades on other symbols until the cap denies
    heat = params(risk=RiskParams(sizing=SizingParams(risk_fraction=0.02, min_notional=0),
                                  gates=GateParams(max_heat_fraction=0.06, max_gross_exposure_fraction=50,
                                                   max_symbol_exposure_fraction=50,
                                                   max_cluster_exposure_fraction=50)))
    e2 = PaperEngine(heat)
    for sym in ("A", "B", "C"):
        e2.on_bar(flat(0, 100.0).__class__(sym, "1m", T0, 100, 100, 100, 100, 1.0))
    assert of(e2.on_signal(signal(1, symbol="A"), T0 + M), ev.BracketOpened)
    assert of(e2.on_signal(signal(1, symbol="B"), T0 + M), ev.BracketOpened)
    d = of(e2.on_signal(signal(1, symbol="C"), T0 + M), ev.SignalDenied)[0]
    assert d.code is DenialCode.PORTFOLIO_HEAT and d.figures["fraction"] == pytest.approx(0.06)


def test_drawdown_breaker_halts_and_resume_clears() -> None:
    p = params(risk=RiskParams(sizing=SizingParams(risk_fraction=0.05, min_notional=0),
                               breakers=BreakerParams(max_drawdown_fraction=0.10, daily_loss_fraction=0.5),
                               gates=GateParams(max_symbol_exposure_fraction=50,
                                                max_gross_exposure_fraction=50)))
    eng = started(p)
    eng.on_signal(signal(1), T0 + M)
    eng.on_bar(bar(1, 100, 100, 97, 97))  # -5%
    eng.on_signal(signal(2, entry=97, stop=95, targets=(99,)), T0 + 2 * M)
    out = eng.on_bar(bar(2, 97, 97, 94, 94))  # 5% of 9500 more: drawdown 9.75%, below the 10% cap
    trips = of(out, ev.BreakerTripped)
    assert not trips and eng.state is TradingState.ACTIVE
    eng.on_signal(signal(3, entry=94, stop=93, targets=(99,)), T0 + 3 * M)
    out = eng.on_bar(bar(3, 94, 94, 92, 92))
    trips = of(out, ev.BreakerTripped)
    assert [t.breaker for t in trips] == [Breaker.MAX_DRAWDOWN] and eng.state is TradingState.HALTED
    assert of(out, ev.TradingStateChanged)[0].new is TradingState.HALTED
    d = of(eng.on_signal(signal(4, entry=92, stop=91, targets=(95,)), T0 + 4 * M), ev.SignalDenied)[0]
    assert d.code is DenialCode.TRADING_HALTED
    out = eng.resume(T0 + 4 * M)
    assert eng.state is TradingState.ACTIVE and of(out, ev.BreakersCleared)
    assert eng.status()["trips"] == []


def test_kill_switch_halts_and_flattens() -> None:
    eng = started()
    eng.on_signal(signal(1), T0 + M)
    out = eng.kill(T0 + M + 5)
    assert eng.state is TradingState.HALTED
    assert [f.role for f in of(out, ev.OrderFilled)] == ["exit1"]
    assert eng.accounting.net_quantity("BTC") == 0.0 and eng.brackets == {}
    assert of(out, ev.TradeClosed)[0].trade.exit_reason == "flatten"


def test_ticks_mode_limit_entry_with_queue_and_quotes() -> None:
    p = params(fills_from=FillSource.TICKS, entry_type=OrderType.LIMIT,
               paper=PaperParams(latency_ms=10, slippage_bps=0, maker_fee_bps=0, taker_fee_bps=0))
    eng = PaperEngine(p)
    eng.on_quote(Quote("BTC", 100.0, 30.0, 100.5, 5.0, T0))
    out = eng.on_signal(signal(1, entry=100.0, stop=98.0), T0 + 1)
    assert of(out, ev.OrderFilled) == []
    eng.on_quote(Quote("BTC", 100.0, 30.0, 100.5, 5.0, T0 + 20))  # order reaches the book: 30 ahead
    assert of(eng.on_trade(TradeTick("BTC", 100.0, 40.0, Side.SELL, "a", T0 + 30)), ev.OrderFilled)[
        0].quantity == pytest.approx(10.0)
    out = eng.on_trade(TradeTick("BTC", 99.5, 1.0, Side.SELL, "b", T0 + 40))
    assert of(out, ev.OrderFilled)[0].quantity == pytest.approx(40.0)
    assert eng.accounting.position("s", "BTC").quantity == pytest.approx(50.0)
    # stops of a long are checked against the bid
    out = eng.on_quote(Quote("BTC", 97.5, 1.0, 98.5, 1.0, T0 + 100))
    assert of(out, ev.BracketExit)[0].reason == "stop"


def drive(eng: TradingEngine, steps: list[tuple[str, Any]]) -> list[Any]:
    out: list[Any] = []
    for what, x in steps:
        if what == "bar":
            out += eng.on_bar(x)
        elif what == "signal":
            out += eng.on_signal(x, x.ts_event)
        elif what == "flatten":
            out += eng.flatten(None, x)
    return out


def scenario(moves: list[int], sig_every: int = 3) -> list[tuple[str, Any]]:
    steps: list[tuple[str, Any]] = [("bar", flat(0))]
    px = 100.0
    for i, m in enumerate(moves, start=1):
        if i % sig_every == 0:
            side = Side.BUY if (i // sig_every) % 2 else Side.SELL
            stop = px - 1.5 * side.sign
            steps.append(("signal", Signal("BTC", side, px, stop, (px + 1.5 * side.sign, px + 3 * side.sign),
                                           80.0, f"s{i % 2}", "1m", T0 + (i - 1) * M + M)))
        o = px
        px = max(50.0, px + m * 0.5)
        steps.append(("bar", bar(i, o, max(o, px) + 0.5, min(o, px) - 0.5, px)))
    return steps


def comparable(snap: dict[str, Any]) -> dict[str, Any]:
    keep = ("orders", "brackets", "accounting", "trips", "reliability", "paused", "seen_signals")
    out = {k: snap[k] for k in keep}
    # marks and the equity curve come from prices, not from the ledger
    out["accounting"] = {k: v for k, v in snap["accounting"].items() if k not in ("equity_curve", "marks")}
    for b in out["brackets"]:
        b.pop("best_price")  # market-derived, not in the ledger
    return json.loads(json.dumps(out, sort_keys=True))


def test_snapshot_restore_continues_identically() -> None:
    steps = scenario([1, 2, -1, -3, 2, 2, 1, -2, -1, 3, 1, -1, 2, -2, 1] * 2)
    half = len(steps) // 2
    a = PaperEngine(params())
    drive(a, steps[:half])
    snap = json.loads(json.dumps(a.snapshot()))
    b = PaperEngine(params())
    b.restore(snap)
    out_a = drive(a, steps[half:])
    out_b = drive(b, steps[half:])
    assert [ev.to_dict(e) for e in out_a] == [ev.to_dict(e) for e in out_b]
    assert len(of(out_a, ev.TradeClosed)) >= 1


def test_rebuild_from_snapshot_plus_events_matches() -> None:
    steps = scenario([1, 2, -1, -3, 2, 2, 1, -2, -1, 3, 1, -1, 2, -2, 1] * 2)
    a = PaperEngine(params())
    drive(a, steps[:5])
    snap = json.loads(json.dumps(a.snapshot()))
    later = drive(a, steps[5:])
    b = PaperEngine(params())
    b.restore(snap)
    for e in later:
        b.apply(ev.from_dict(json.loads(json.dumps(ev.to_dict(e)))))
    assert comparable(b.snapshot()) == comparable(a.snapshot())


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(-4, 4), min_size=5, max_size=40), st.integers(2, 5), st.booleans(),
       st.sampled_from(list(TrailMode)))
def test_random_runs_keep_the_books_straight(moves: list[int], every: int, venue_stops: bool,
                                             trail: TrailMode) -> None:
    eng = PaperEngine(params(brackets=BracketParams(
        venue_stops=venue_stops, trail_mode=trail, trail_after_tp1=False, atr_period=3,
        trail_distance=0 if trail is TrailMode.NONE else 0.01 if trail is TrailMode.PERCENT else 1.0)))
    out = drive(eng, scenario(moves, every))
    out += eng.flatten(None, T0 + (len(moves) + 2) * M)
    intents = [e.client_order_id for e in of(out, ev.OrderIntent)]
    assert len(intents) == len(set(intents))  # no client order id is ever sent twice
    for o in eng.orders.values():
        assert o.filled_qty <= o.quantity + 1e-9
    per_key: dict[tuple[str, str], float] = {}
    for f in of(out, ev.OrderFilled):
        per_key[(f.strategy, f.symbol)] = per_key.get((f.strategy, f.symbol), 0.0) + f.quantity * f.side.sign
    for key, pos in eng.accounting.positions.items():
        assert pos.quantity == pytest.approx(per_key.get(key, 0.0), abs=1e-9)
    assert eng.broker is not None
    assert eng.broker.positions.get("BTC", 0.0) == pytest.approx(eng.accounting.net_quantity("BTC"), abs=1e-9)
    assert eng.accounting.net_quantity("BTC") == pytest.approx(0.0, abs=1e-9)  # flatten left nothing
    assert eng.brackets == {}
    closed = sum(t.trade.pnl for t in of(out, ev.TradeClosed))
    assert eng.equity == pytest.approx(10_000.0 + closed, abs=1e-6)


def test_replay_of_bundled_candles_keeps_the_books_straight() -> None:
    """Real BTC 1m candles (bundled in the package) through bar-mode paper trading."""
    from fractald.datasets import bundled_btc_1m_arrays

    arr = bundled_btc_1m_arrays()
    # a coin-flip strategy would be quarantined soon; here the books are under test, not it
    never = ReliabilityParams(throttle_after_losses=10_000, quarantine_after_losses=10_000,
                              quarantine_expectancy_r=-100.0)
    p = params(instruments=(Instrument("BTC", lot_size=0.001, tick_size=0.1),),
               paper=PaperParams(latency_ms=50, slippage_bps=1.0),
               brackets=BracketParams(trail_mode=TrailMode.PERCENT, trail_distance=0.003),
               risk=RiskParams(sizing=SizingParams(risk_fraction=0.01, min_notional=0),
                               reliability=never,
                               breakers=BreakerParams(max_consecutive_losses=10_000, daily_loss_fraction=0.5),
                               gates=GateParams(max_symbol_exposure_fraction=50,
                                                max_gross_exposure_fraction=50)))
    eng = PaperEngine(p)
    out: list[Any] = []
    n = 3_000
    for i in range(n):
        b = Bar("BTC", "1m", int(arr["ts_open_ms"][i]), float(arr["open"][i]), float(arr["high"][i]),
                float(arr["low"][i]), float(arr["close"][i]), float(arr["volume"][i]))
        out += eng.on_bar(b)
        if i % 20 == 10:  # alternate long and short ideas with a 0.4% stop and 1R/2R targets
            side = Side.BUY if (i // 20) % 2 else Side.SELL
            risk = b.close * 0.004
            out += eng.on_signal(Signal("BTC", side, b.close, b.close - side.sign * risk,
                                        (b.close + side.sign * risk, b.close + 2 * side.sign * risk),
                                        70.0, "alt", "1m", b.ts_event), b.ts_event)
    trades = [e.trade for e in of(out, ev.TradeClosed)]
    assert len(trades) > 40
    assert {t.exit_reason for t in trades} <= {"stop", "target"}
    net = sum(f.quantity * f.side.sign for f in of(out, ev.OrderFilled))
    assert eng.accounting.net_quantity("BTC") == pytest.approx(net, abs=1e-9)
    assert eng.broker is not None and eng.broker.positions["BTC"] == pytest.approx(net, abs=1e-9)
    realized = sum(t.pnl for t in trades)
    open_part = sum(p.realized_pnl - p.fees for p in eng.accounting.positions.values()) - realized
    assert eng.equity == pytest.approx(10_000.0 + realized + open_part + eng.accounting.unrealized)
    for t in trades:  # a stop-out loses 1R plus costs (fees are ~0.25R on a 0.4% stop), never more
        assert t.r_multiple > -1.5


def test_stale_signal_is_denied_and_market_entry_sizes_from_the_price() -> None:
    eng = started()
    eng.on_bar(flat(1, 99.0))
    d = of(eng.on_signal(signal(0), T0 + 2 * M + 1), ev.SignalDenied)[0]
    assert d.code is DenialCode.SIGNAL_STALE and d.figures["limit"] == M
    out = eng.on_signal(signal(2), T0 + 2 * M)  # entry 100, stop 98, but the market is at 99
    assert of(out, ev.BracketOpened)[0].entry == 99.0
    assert of(out, ev.BracketOpened)[0].quantity == pytest.approx(100.0)


def test_rebuilt_engine_trades_on_like_the_original() -> None:
    """Snapshot, then ledger events, then live again: the paper book is rebuilt from the orders."""
    steps = scenario([1, 2, -1, -3, 2, 2, 1, -2, -1, 3, 1, -1, 2, -2, 1] * 3)
    a = PaperEngine(params())
    drive(a, steps[:6])
    snap = json.loads(json.dumps(a.snapshot()))
    later = drive(a, steps[6:20])
    b = PaperEngine(params())
    b.restore(snap)
    for e in later:
        b.apply(ev.from_dict(ev.to_dict(e)))
    assert any(o.role.startswith("tp") for o in b.working_orders())  # resting targets to rebuild
    out_a, out_b = drive(a, steps[20:]), drive(b, steps[20:])
    assert [ev.to_dict(e) for e in out_b] == [ev.to_dict(e) for e in out_a]
    assert len(of(out_a, ev.OrderFilled)) > 3


def test_engine_pickles_and_carries_on_identically() -> None:
    """The daemon pickles the pipeline around the engine as its snapshot."""
    import pickle

    steps = scenario([1, 2, -1, -3, 2, 2, 1, -2, -1, 3, 1, -1, 2, -2, 1] * 2)
    a = PaperEngine(params())
    drive(a, steps[:12])
    b = pickle.loads(pickle.dumps(a))
    assert [ev.to_dict(e) for e in drive(b, steps[12:])] == [ev.to_dict(e) for e in drive(a, steps[12:])]


def test_target_fill_racing_a_stop_exit_never_flips_the_position() -> None:
    """Ticks mode with latency: the target's cancel is in flight when the target fills."""
    p = params(fills_from=FillSource.TICKS, brackets=BracketParams(target_fractions=(1.0,)),
               paper=PaperParams(latency_ms=50, slippage_bps=0, maker_fee_bps=0, taker_fee_bps=0))
    eng = PaperEngine(p)
    eng.on_quote(Quote("BTC", 99.5, 1.0, 100.0, 1.0, T0))
    eng.on_signal(signal(0, targets=(101.0,)), T0)
    eng.on_quote(Quote("BTC", 99.5, 1.0, 100.0, 1.0, T0 + 60))  # entry fills, the target rests
    eng.on_quote(Quote("BTC", 99.5, 1.0, 100.0, 1.0, T0 + 120))
    assert eng.accounting.net_quantity("BTC") == pytest.approx(50.0)
    out = eng.on_trade(TradeTick("BTC", 97.5, 1.0, Side.SELL, "s1", T0 + 200))  # stop: exit + cancel tp
    assert of(out, ev.BracketExit) and of(out, ev.CancelRequested)
    # within the cancel's latency a wild print trades through the target; then the exit fills
    out = eng.on_trade(TradeTick("BTC", 101.5, 60.0, Side.BUY, "s2", T0 + 220))
    out += eng.on_trade(TradeTick("BTC", 97.0, 1.0, Side.SELL, "s3", T0 + 260))
    assert [f.role for f in of(out, ev.OrderFilled)] == ["tp1"]  # the exit never filled
    exit1 = next(o for o in eng.orders.values() if o.role == "exit1")
    assert exit1.status is OrderStatus.CANCELED  # withdrawn once flat
    assert eng.accounting.net_quantity("BTC") == pytest.approx(0.0)
    assert eng.broker is not None and eng.broker.positions["BTC"] == pytest.approx(0.0)
    assert eng.brackets == {}
