"""Property tests: random venue report sequences against the engine (real-venue mode)."""

from __future__ import annotations

import json
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from paper_engine import PaperEngine

from fractald.core.execution import events as ev
from fractald.core.execution.brackets import BracketParams
from fractald.core.execution.engine import EngineParams, FillSource, TradingEngine, event_sourced
from fractald.core.execution.orders import Liquidity, OrderEvent, OrderStatus
from fractald.core.execution.paper import PaperParams
from fractald.core.execution.reports import VenueReport
from fractald.core.models import Side, Signal, TradeTick
from fractald.core.risk.params import BreakerParams, GateParams, RiskParams, SizingParams

T0 = 19_700 * 86_400_000 + 3_600_000
KINDS = [OrderEvent.ACCEPT, OrderEvent.REJECT, OrderEvent.CANCEL, OrderEvent.CANCEL_REJECT,
         OrderEvent.EXPIRE, OrderEvent.TRIGGER, OrderEvent.FILL, OrderEvent.FILL, OrderEvent.FILL]

signal_a = st.tuples(st.just("signal"), st.sampled_from(["a", "b"]), st.sampled_from([Side.BUY, Side.SELL]))
report_a = st.tuples(st.just("report"), st.integers(0, 30), st.sampled_from(KINDS), st.integers(1, 100),
                     st.integers(0, 8))
price_a = st.tuples(st.just("price"), st.integers(90, 110))
command_a = st.tuples(st.just("cmd"), st.sampled_from(["flatten", "halt", "resume", "pause"]))
risk_a = st.tuples(st.just("risk"), st.integers(1, 6))  # the operator's `risk set max_trades_per_day N`
# Reports dominate, as they do in life; operator commands are rare.
action = st.one_of(signal_a, report_a, report_a, report_a, price_a, price_a,
                   st.one_of(signal_a, command_a, report_a, price_a, risk_a))


def engine(venue_stops: bool = False) -> TradingEngine:
    return PaperEngine(EngineParams(
        venue="sim", brackets=BracketParams(venue_stops=venue_stops), risk=RiskParams(
            sizing=SizingParams(risk_fraction=0.01, min_notional=0),
            gates=GateParams(max_symbol_exposure_fraction=90, max_gross_exposure_fraction=90,
                             max_cluster_exposure_fraction=90, max_orders_per_window=10_000),
            breakers=BreakerParams(max_trades_per_day=10_000, max_consecutive_losses=10_000))))


def run(eng: TradingEngine, actions: list[tuple[Any, ...]], start: int = 0) -> list[Any]:
    out: list[Any] = []
    for n, a in enumerate(actions, start=start):
        ts = T0 + n * 1_000
        if a[0] == "signal":
            px = eng.last_price.get("BTC", 100.0)
            sign = a[2].sign
            out += eng.on_signal(Signal("BTC", a[2], px, px - 2 * sign, (px + 2 * sign, px + 4 * sign),
                                        90.0, a[1], "1m", ts), ts)
        elif a[0] == "report":
            coids = list(eng.orders)
            if not coids:
                continue
            o = eng.orders[coids[a[1] % len(coids)]]
            if a[2] is OrderEvent.FILL:
                # some fills repeat a trade id; none overfill (that is a separate, fatal test)
                qty = min(o.leaves_qty, o.quantity * a[3] / 100)
                if qty <= 0:
                    continue
                r = VenueReport(OrderEvent.FILL, o.client_order_id, ts, trade_id=f"{o.client_order_id}-{a[4]}",
                                quantity=qty, price=float(95 + a[4]), fee=0.01, liquidity=Liquidity.TAKER)
            else:
                r = VenueReport(a[2], o.client_order_id, ts)
            out += eng.on_venue_report(r)
        elif a[0] == "price":
            out += eng.on_trade(TradeTick("BTC", float(a[1]), 1.0, Side.BUY, f"x{n}", ts))
        elif a[0] == "risk":
            r = eng.params.risk
            out += eng.set_risk(attrs.evolve(r, breakers=attrs.evolve(r.breakers, max_trades_per_day=a[1])),
                                ts, "operator")
        else:
            out += getattr(eng, a[1])(ts=ts) if a[1] != "flatten" else eng.flatten(None, ts)
    return out


@settings(max_examples=150, deadline=None)
@given(st.lists(action, max_size=60), st.booleans())
def test_random_venue_reports_keep_orders_valid_and_books_equal_fills(actions: list[tuple[Any, ...]],
                                                                      venue_stops: bool) -> None:
    eng = engine(venue_stops)
    out = run(eng, actions)
    fills: dict[tuple[str, str], float] = {}
    seen_trades: set[tuple[str, str]] = set()
    for f in (e for e in out if isinstance(e, ev.OrderFilled)):
        assert (f.client_order_id, f.trade_id) not in seen_trades  # duplicates never booked
        seen_trades.add((f.client_order_id, f.trade_id))
        fills[(f.strategy, f.symbol)] = fills.get((f.strategy, f.symbol), 0.0) + f.quantity * f.side.sign
    for key, pos in eng.accounting.positions.items():
        assert pos.quantity == pytest.approx(fills.get(key, 0.0), abs=1e-9)
    for o in eng.orders.values():
        assert isinstance(o.status, OrderStatus)
        assert -1e-9 <= o.filled_qty <= o.quantity + 1e-9
        assert (o.status is OrderStatus.FILLED) == (o.filled_qty >= o.quantity - 1e-9) or (
            o.status in (OrderStatus.CANCELED, OrderStatus.EXPIRED, OrderStatus.PENDING_CANCEL,
                         OrderStatus.PENDING_UPDATE) and o.filled_qty < o.quantity)
    intents = [e.client_order_id for e in out if isinstance(e, ev.OrderIntent)]
    assert len(intents) == len(set(intents))
    for e in out:
        json.dumps(ev.to_dict(e))  # every event is plain data


@settings(max_examples=60, deadline=None)
@given(st.lists(action, min_size=2, max_size=50), st.data(), st.booleans())
def test_snapshot_plus_events_rebuilds_the_same_books(actions: list[tuple[Any, ...]], data: st.DataObject,
                                                      venue_stops: bool) -> None:
    cut = data.draw(st.integers(0, len(actions)))
    a = engine(venue_stops)
    run(a, actions[:cut])
    snap = json.loads(json.dumps(a.snapshot()))
    later = run(a, actions[cut:], start=cut)
    b = engine(venue_stops)
    b.restore(snap)
    for e in later:
        b.apply(ev.from_dict(json.loads(json.dumps(ev.to_dict(e)))))
    for key, pos in a.accounting.positions.items():
        other = b.accounting.positions[key]
        assert (other.quantity, other.realized_pnl, other.fees) == pytest.approx(
            (pos.quantity, pos.realized_pnl, pos.fees))
    assert {c: o.status for c, o in b.orders.items()} == {c: o.status for c, o in a.orders.items()}
    assert {s: (x.stop, x.open_qty, x.state) for s, x in b.brackets.items()} == {
        s: (x.stop, x.open_qty, x.state) for s, x in a.brackets.items()}
    assert b.state is a.state and b.paused == a.paused
    assert b.breakers.counts == a.breakers.counts  # trips, counts, recent errors: one value
    assert b.reliability.records == a.reliability.records  # frozen values, compared whole
    assert b.exec_quality.snapshot() == a.exec_quality.snapshot()
    assert b.rate == a.rate  # the order-rate window: a value, pruned only when an order is recorded


def _json(x: Any) -> Any:
    return json.loads(json.dumps(x))


@settings(max_examples=120, deadline=None)
@given(st.lists(action, min_size=2, max_size=60), st.data(), st.booleans())
def test_rebuild_from_snapshot_and_later_events_equals_the_live_state_to_the_bit(
        actions: list[tuple[Any, ...]], data: st.DataObject, venue_stops: bool) -> None:
    """What start-up does (restore the stored snapshot, apply each later ledger event as stored)
    lands on exactly the live engine's state: every order, bracket, book, counter and trip,
    compared as the JSON the snapshot stores (floats to the bit). Only what comes from market
    data, not events (prices, marks, ATR, the drawdown peak: `event_sourced` says which), is left out."""
    cut = data.draw(st.integers(0, len(actions)))
    live = engine(venue_stops)
    run(live, actions[:cut])
    stored, risk_at_cut = _json(live.snapshot()), live.params.risk
    later = [_json(ev.to_dict(e)) for e in run(live, actions[cut:], start=cut)]
    rebuilt = engine(venue_stops)
    rebuilt.restore(stored)
    rebuilt.set_risk(risk_at_cut)  # start-up applies the config and the operator's overrides
    for d in later:
        rebuilt.apply(ev.from_dict(d))
    assert event_sourced(_json(rebuilt.snapshot())) == event_sourced(_json(live.snapshot()))
    assert rebuilt.params == live.params
    assert rebuilt.state is live.state and rebuilt.status()["strategies"] == live.status()["strategies"]


paper_action = st.one_of(signal_a, price_a, price_a, price_a, command_a)


@settings(max_examples=80, deadline=None)
@given(st.lists(paper_action, min_size=2, max_size=60), st.data(), st.booleans(),
       st.sampled_from([0, 500, 3_000]))
def test_rebuild_equals_the_live_state_with_the_paper_broker_filling(
        actions: list[tuple[Any, ...]], data: st.DataObject, venue_stops: bool, latency_ms: int) -> None:
    """The same with the daemon's default venue: the paper broker fills on trades, with latency."""
    def paper() -> TradingEngine:
        p = engine(venue_stops).params
        return PaperEngine(attrs.evolve(p, venue="paper", fills_from=FillSource.TICKS,
                                          paper=PaperParams(latency_ms=latency_ms)))
    cut = data.draw(st.integers(0, len(actions)))
    live = paper()
    run(live, actions[:cut])
    stored = _json(live.snapshot())
    later = [_json(ev.to_dict(e)) for e in run(live, actions[cut:], start=cut)]
    rebuilt = paper()
    rebuilt.restore(stored)
    for d in later:
        rebuilt.apply(ev.from_dict(d))
    assert event_sourced(_json(rebuilt.snapshot())) == event_sourced(_json(live.snapshot()))
