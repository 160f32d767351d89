"""Accounting: average price, realized/unrealized P&L, fees, flips, round trips, per strategy/symbol."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fractald.core.execution.accounting import Accounting, TripContext
from fractald.core.models import Side


def test_average_price_realized_and_unrealized() -> None:
    a = Accounting(10_000.0)
    a.apply_fill("s", "BTC", Side.BUY, 1.0, 100.0, 0.1, 1)
    a.apply_fill("s", "BTC", Side.BUY, 1.0, 110.0, 0.1, 2)
    p = a.position("s", "BTC")
    assert p.avg_price == pytest.approx(105.0)
    a.mark("BTC", 120.0)
    assert a.unrealized == pytest.approx(30.0)
    assert a.equity == pytest.approx(10_000.0 - 0.2 + 30.0)
    closed = a.apply_fill("s", "BTC", Side.SELL, 0.5, 120.0, 0.05, 3)
    assert p.quantity == 2.0  # a position is a value: the one read before stays as it was
    p = a.position("s", "BTC")
    assert closed == [] and p.realized_pnl == pytest.approx(7.5) and p.quantity == 1.5


def test_round_trip_becomes_closed_trade_with_r_multiple() -> None:
    a = Accounting(1_000.0)
    ctx = TripContext(trip_id="sig1", risk=10.0, confidence=80.0)
    a.apply_fill("s", "BTC", Side.SELL, 2.0, 100.0, 1.0, 1_000, ctx)
    a.apply_fill("s", "BTC", Side.BUY, 1.0, 90.0, 0.5, 2_000)
    closed = a.apply_fill("s", "BTC", Side.BUY, 1.0, 95.0, 0.5, 3_000,
                          TripContext(exit_reason="stop"))
    assert len(closed) == 1
    t = closed[0]
    assert t.side is Side.SELL and t.trade_id == "sig1" and t.quantity == 2.0
    assert t.entry_price == 100.0 and t.exit_price == pytest.approx(92.5)
    assert t.fees == pytest.approx(2.0) and t.pnl == pytest.approx(15.0 - 2.0)
    assert t.r_multiple == pytest.approx(1.3) and t.exit_reason == "stop" and t.confidence == 80.0
    assert a.cash == pytest.approx(1_013.0)


def test_flip_closes_and_opens() -> None:
    a = Accounting(0.0)
    a.apply_fill("s", "BTC", Side.BUY, 1.0, 100.0, 0.0, 1)
    closed = a.apply_fill("s", "BTC", Side.SELL, 3.0, 110.0, 0.3, 2)
    assert len(closed) == 1 and closed[0].pnl == pytest.approx(10.0 - 0.1)
    p = a.position("s", "BTC")
    assert p.quantity == -2.0 and p.avg_price == 110.0 and p.trip_fees == pytest.approx(0.2)


def test_per_strategy_and_symbol_views_and_funding() -> None:
    a = Accounting(0.0)
    a.apply_fill("a", "BTC", Side.BUY, 1.0, 100.0, 0.0, 1)
    a.apply_fill("b", "BTC", Side.SELL, 0.5, 100.0, 0.0, 1)
    a.apply_fill("b", "ETH", Side.BUY, 2.0, 10.0, 0.0, 1)
    a.mark("BTC", 110.0)
    a.mark("ETH", 11.0)
    by_sym = a.summary("symbol")
    assert by_sym["BTC"]["quantity"] == 0.5 and by_sym["BTC"]["unrealized_pnl"] == pytest.approx(5.0)
    by_strat = a.summary("strategy")
    assert by_strat["b"]["unrealized_pnl"] == pytest.approx(-5.0 + 2.0)
    paid = a.apply_funding("BTC", 0.001)  # long 1 pays 0.11, short 0.5 receives 0.055
    assert paid == pytest.approx(0.055)
    assert a.cash == pytest.approx(-0.055)
    b = Accounting(0.0)
    b.restore(a.snapshot())
    assert b.equity == pytest.approx(a.equity) and b.summary("symbol") == a.summary("symbol")


fill = st.tuples(st.sampled_from(["a", "b"]), st.sampled_from(["BTC", "ETH"]),
                 st.sampled_from([Side.BUY, Side.SELL]), st.integers(1, 50), st.integers(90, 110))


@settings(max_examples=200, deadline=None)
@given(st.lists(fill, max_size=40))
def test_positions_equal_sum_of_fills_and_cash_conserves(fills: list[tuple]) -> None:  # type: ignore[type-arg]
    a = Accounting(1_000.0)
    expected: dict[tuple[str, str], float] = {}
    cashflow = 0.0
    for ts, (strat, sym, side, q, px) in enumerate(fills):
        qty = q / 10
        a.apply_fill(strat, sym, side, qty, float(px), 0.01, ts)
        expected[(strat, sym)] = expected.get((strat, sym), 0.0) + qty * side.sign
        cashflow += -qty * side.sign * px - 0.01
    for key, qty in expected.items():
        assert a.positions[key].quantity == pytest.approx(qty, abs=1e-9)
    for sym in ("BTC", "ETH"):
        a.mark(sym, 100.0)
    # equity = initial + cash flows + value of holdings at the mark
    holdings = sum(q * 100.0 for q in expected.values())
    assert a.equity == pytest.approx(1_000.0 + cashflow + holdings, abs=1e-6)


fill_steps = st.lists(st.tuples(st.sampled_from(["s1", "s2"]), st.sampled_from(["BTC", "ETH"]),
                                st.sampled_from([Side.BUY, Side.SELL]), st.floats(0.001, 5.0),
                                st.floats(1.0, 1_000.0), st.floats(0.0, 10.0)), min_size=1, max_size=25)


@settings(max_examples=150, deadline=None)
@given(fill_steps, st.floats(0.5, 2_000.0), st.floats(0.0, 0.01))
def test_cached_equity_and_equity_at_are_the_fresh_sums(steps: list[tuple], price: float,  # type: ignore[type-arg]
                                                        rate: float) -> None:
    """Equity is cached between changes; read at any point it is the sum worked out afresh, to the bit."""

    def fresh(a: Accounting) -> float:
        return (a.initial_equity + sum(p.realized_pnl - p.fees - p.funding for p in a.positions.values())
                + sum(a.unrealized_of(p) for p in a.positions.values()))

    a = Accounting(10_000.0)
    for i, (strategy, symbol, side, qty, px, fee) in enumerate(steps):
        assert a.equity == fresh(a)
        a.apply_fill(strategy, symbol, side, qty, px, fee, i)
        assert a.equity == fresh(a)
        a.mark(symbol, px * 1.01)
        assert a.equity == fresh(a)
        if i % 5 == 4:
            a.apply_funding(symbol, rate)
            assert a.equity == fresh(a)
    at = a.equity_at("BTC", price)
    a.mark("BTC", price)
    assert at == a.equity == fresh(a)
