"""Paper broker: quote fills with latency and slippage, queue position, trade-through, stops, bars."""

from __future__ import annotations

import pytest

from fractald.core.execution.orders import Liquidity, Order, OrderEvent, OrderType, TimeInForce
from fractald.core.execution.paper import PaperBroker, PaperParams, bar_path
from fractald.core.execution.reports import VenueReport
from fractald.core.models import Bar, Quote, Side, TradeTick

E = OrderEvent


def broker(**kw: object) -> PaperBroker:
    base = {"latency_ms": 0, "slippage_bps": 0.0, "maker_fee_bps": 1.0, "taker_fee_bps": 5.0}
    base.update(kw)
    return PaperBroker(PaperParams(**base))  # type: ignore[arg-type]


def q(ts: int, bid: float = 99.0, ask: float = 101.0, bid_size: float = 5.0, ask_size: float = 5.0) -> Quote:
    return Quote("BTC", bid, bid_size, ask, ask_size, ts)


def tr(ts: int, price: float, size: float, aggressor: Side = Side.SELL, tid: str = "") -> TradeTick:
    return TradeTick("BTC", price, size, aggressor, tid or f"x{ts}", ts)


def order(coid: str, side: Side, typ: OrderType = OrderType.MARKET, qty: float = 1.0, **kw: object) -> Order:
    return Order(coid, "BTC", side, typ, qty, **kw)  # type: ignore[arg-type]


def fills(reports: list[VenueReport]) -> list[VenueReport]:
    return [r for r in reports if r.kind is E.FILL]


def test_market_order_waits_for_latency_and_pays_slippage_and_taker_fee() -> None:
    b = broker(latency_ms=100, slippage_bps=10.0)
    b.on_quote(q(0))
    out = b.submit(order("m1", Side.BUY), 1_000)
    assert [r.kind for r in out] == [E.ACCEPT] and out[0].ts == 1_100
    assert fills(b.on_quote(q(1_099, ask=102.0))) == []
    f = fills(b.on_quote(q(1_100, ask=103.0)))
    assert len(f) == 1 and f[0].price == pytest.approx(103.0 * 1.001)
    assert f[0].liquidity is Liquidity.TAKER and f[0].fee == pytest.approx(f[0].price * 5e-4)
    sell = b.submit(order("m2", Side.SELL), 2_000)
    f2 = fills(b.on_quote(q(2_100, bid=100.0)))
    assert sell and f2[0].price == pytest.approx(100.0 * 0.999)


def test_limit_fills_after_queue_ahead_trades_with_partial_fills() -> None:
    b = broker()
    b.on_quote(q(0, bid=99.0, bid_size=3.0))
    assert fills(b.submit(order("l1", Side.BUY, OrderType.LIMIT, 2.0, price=99.0), 1)) == []
    assert fills(b.on_trade(tr(2, 99.0, 2.0))) == []  # 1 still ahead of us
    assert fills(b.on_trade(tr(3, 99.0, 1.0, aggressor=Side.BUY))) == []  # buys do not hit bids
    f = fills(b.on_trade(tr(4, 99.0, 1.5)))  # 1 ahead consumed, 0.5 for us
    assert len(f) == 1 and f[0].quantity == pytest.approx(0.5) and f[0].liquidity is Liquidity.MAKER
    f = fills(b.on_trade(tr(5, 99.0, 4.0)))
    assert f[0].quantity == pytest.approx(1.5) and "l1" not in b.orders
    assert f[0].fee == pytest.approx(1.5 * 99.0 * 1e-4)


def test_limit_fills_fully_when_traded_through() -> None:
    b = broker()
    b.on_quote(q(0, bid=99.0, bid_size=1_000.0))
    b.submit(order("l1", Side.BUY, OrderType.LIMIT, 2.0, price=99.0), 1)
    assert fills(b.on_trade(tr(2, 99.0, 5.0))) == []
    f = fills(b.on_trade(tr(3, 98.9, 0.01)))
    assert f[0].quantity == 2.0 and f[0].price == 99.0


def test_limit_deeper_in_book_has_unknown_queue_until_level_shows() -> None:
    b = broker()
    b.on_quote(q(0, bid=99.0))
    b.submit(order("l1", Side.BUY, OrderType.LIMIT, 1.0, price=98.0), 1)
    assert fills(b.on_trade(tr(2, 98.0, 100.0))) == []  # unknown queue: a touch is not enough
    b.on_quote(q(3, bid=98.0, bid_size=2.0, ask=98.5))
    assert b.orders["l1"].queue_ahead == 2.0
    f = fills(b.on_trade(tr(4, 98.0, 2.5)))
    assert f[0].quantity == pytest.approx(0.5)


def test_marketable_limit_takes_at_quote_and_ioc_cancels_when_not() -> None:
    b = broker()
    b.on_quote(q(0))
    f = fills(b.submit(order("l1", Side.BUY, OrderType.LIMIT, 1.0, price=102.0), 1))
    assert f[0].price == 101.0 and f[0].liquidity is Liquidity.TAKER
    out = b.submit(order("l2", Side.BUY, OrderType.LIMIT, 1.0, price=100.0, tif=TimeInForce.IOC), 2)
    assert [r.kind for r in out] == [E.ACCEPT, E.CANCEL]


def test_stop_market_triggers_on_trade_and_fills_as_taker() -> None:
    b = broker()
    b.on_trade(tr(0, 100.0, 1.0))
    b.submit(order("s0", Side.BUY, qty=1.0), 1)  # open a long
    b.submit(order("s1", Side.SELL, OrderType.STOP_MARKET, 1.0, trigger_price=95.0, reduce_only=True), 2)
    assert b.on_trade(tr(3, 95.1, 1.0)) == []
    out = b.on_trade(tr(4, 94.5, 1.0))
    assert [r.kind for r in out] == [E.TRIGGER, E.FILL] and out[1].price == 94.5
    assert b.positions["BTC"] == 0.0


def test_reduce_only_never_flips() -> None:
    b = broker()
    b.on_trade(tr(0, 100.0, 1.0))
    b.submit(order("o1", Side.BUY, qty=1.0), 1)
    out = b.submit(order("r1", Side.SELL, qty=3.0, reduce_only=True), 2)
    assert fills(out)[0].quantity == 1.0 and out[-1].kind is E.CANCEL
    out = b.submit(order("r2", Side.SELL, qty=1.0, reduce_only=True), 3)
    assert [r.kind for r in out] == [E.ACCEPT, E.CANCEL] and b.positions["BTC"] == 0.0


def test_gtd_expiry_and_cancel_latency_lets_a_fill_through() -> None:
    b = broker(latency_ms=10)
    b.on_quote(q(0, bid=99.0, bid_size=0.0))
    b.submit(order("g1", Side.BUY, OrderType.LIMIT, 1.0, price=99.0, tif=TimeInForce.GTD, expire_ts=500), 0)
    b.on_quote(q(20, bid=99.0, bid_size=0.0))
    out = b.on_quote(q(600))
    assert [(r.kind, r.ts) for r in out] == [(E.EXPIRE, 500)]
    b.submit(order("c1", Side.BUY, OrderType.LIMIT, 1.0, price=99.0), 1_000)
    b.on_quote(q(1_010, bid=99.0, bid_size=0.0))
    assert b.cancel("c1", 1_020) == []  # takes effect at 1030
    f = b.on_trade(tr(1_025, 98.0, 1.0))  # fill after the cancel request
    assert fills(f) and "c1" not in b.orders
    assert b.cancel("c1", 1_040)[0].kind is E.CANCEL_REJECT


def test_bar_path_up_and_down_with_levels() -> None:
    up = Bar("BTC", "1m", 0, open=100, high=110, low=95, close=105, volume=8.0)
    prices = [t.price for t in bar_path(up, levels=[97.0, 108.0, 200.0])]
    assert prices == [100, 97, 95, 97, 108, 110, 108, 105]
    down = Bar("BTC", "1m", 0, open=100, high=104, low=90, close=92, volume=4.0)
    ticks = bar_path(down)
    assert [t.price for t in ticks] == [100, 104, 90, 92]
    assert ticks[0].ts_event == 0 and ticks[-1].ts_event == 59_999
    assert [t.aggressor for t in ticks[1:]] == [Side.BUY, Side.SELL, Side.BUY]


def test_bar_mode_limit_needs_trade_through_and_stop_fills_at_level() -> None:
    b = broker()
    b.immediate = True
    bar0 = Bar("BTC", "1m", 0, 100, 101, 99, 100, 10.0)
    for t in bar_path(bar0):
        b.on_trade(t)
    b.submit(order("l1", Side.BUY, OrderType.LIMIT, 1.0, price=97.0), 60_000)
    touch = Bar("BTC", "1m", 60_000, 100, 101, 97, 100, 10.0)  # low exactly at the limit
    assert not [r for t in bar_path(touch, [97.0]) for r in fills(b.on_trade(t))]
    through = Bar("BTC", "1m", 120_000, 100, 101, 96, 100, 10.0)
    got = [r for t in bar_path(through, [97.0]) for r in fills(b.on_trade(t))]
    assert len(got) == 1 and got[0].price == 97.0


def test_snapshot_round_trip_keeps_queue() -> None:
    b = broker()
    b.on_quote(q(0, bid=99.0, bid_size=3.0))
    b.submit(order("l1", Side.BUY, OrderType.LIMIT, 2.0, price=99.0), 1)
    b.on_trade(tr(2, 99.0, 2.0))
    b2 = broker()
    b2.restore(b.snapshot())
    f = fills(b2.on_trade(tr(4, 99.0, 1.5)))
    assert f[0].quantity == pytest.approx(0.5)


def test_modify_keeps_queue_on_size_change_and_loses_it_on_price_change() -> None:
    b = broker()
    b.on_quote(q(0, bid=99.0, bid_size=3.0))
    b.submit(order("l1", Side.BUY, OrderType.LIMIT, 2.0, price=99.0), 1)
    out = b.modify("l1", 2, quantity=3.0)
    assert out[0].kind is E.UPDATE and b.orders["l1"].queue_ahead == 3.0
    b.on_quote(q(3, bid=99.5, bid_size=4.0, ask=100.0))
    b.modify("l1", 4, price=99.5)
    assert b.orders["l1"].queue_ahead == 4.0  # the back of the new level's queue
    assert fills(b.on_trade(tr(5, 99.5, 5.0)))[0].quantity == pytest.approx(1.0)
    assert b.modify("l1", 6, quantity=0.5)[0].kind is E.UPDATE_REJECT  # below what already filled
    assert b.modify("nope", 7, quantity=1.0)[0].kind is E.UPDATE_REJECT
