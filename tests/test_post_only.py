"""Post-only entries: the core's flag, the paper broker's rejection, each venue's wire form."""

from __future__ import annotations

from typing import Any

import pytest
from attrs import evolve as attrs_evolve
from paper_engine import PaperEngine

from fractald.control.operator_entries import manual_signal
from fractald.control.protocol import CommandError
from fractald.core.execution import events as ev
from fractald.core.execution.engine import EngineParams
from fractald.core.execution.orders import (
    Liquidity,
    Order,
    OrderEvent,
    OrderStatus,
    OrderType,
    client_order_id,
)
from fractald.core.execution.paper import PaperBroker, PaperParams
from fractald.core.models import Bar, Quote, Side, Signal, TradeTick
from fractald.core.risk.params import GateParams, RiskParams, SizingParams
from fractald.core.risk.sizing import Instrument
from fractald.venues import binance_orders as bo
from fractald.venues import hyperliquid_orders as hl
from fractald.venues.binance import Market
from fractald.venues.interface import InstrumentSpec

E = OrderEvent
M = 60_000
T0 = 1_700_000_000_000 - (1_700_000_000_000 % 86_400_000) + 3_600_000


def broker() -> PaperBroker:
    return PaperBroker(PaperParams(latency_ms=0, slippage_bps=0.0, maker_fee_bps=1.0, taker_fee_bps=5.0))


def limit(coid: str, side: Side, price: float, post_only: bool = True) -> Order:
    return Order(coid, "BTC", side, OrderType.LIMIT, 1.0, price=price, post_only=post_only)


def test_paper_rejects_a_post_only_limit_that_would_take_as_the_venues_do() -> None:
    b = broker()
    b.on_quote(Quote("BTC", 99.0, 5.0, 101.0, 5.0, 0))
    out = b.submit(limit("buy-at-ask", Side.BUY, 101.0), 1)
    assert [r.kind for r in out] == [E.ACCEPT, E.REJECT]
    assert out[1].reason == "post_only_would_take" and "buy-at-ask" not in b.orders
    out = b.submit(limit("sell-below-bid", Side.SELL, 98.0), 2)
    assert [r.kind for r in out] == [E.ACCEPT, E.REJECT]
    # The same limit without the flag takes liquidity.
    taken = b.submit(limit("plain", Side.BUY, 101.0, post_only=False), 3)
    assert [r.kind for r in taken] == [E.ACCEPT, E.FILL] and taken[1].liquidity is Liquidity.TAKER


def test_paper_post_only_that_does_not_cross_rests_and_fills_as_maker() -> None:
    b = broker()
    b.on_quote(Quote("BTC", 99.0, 5.0, 101.0, 5.0, 0))
    assert [r.kind for r in b.submit(limit("rest", Side.BUY, 99.5), 1)] == [E.ACCEPT]
    assert b.orders["rest"].resting
    f = [r for r in b.on_trade(TradeTick("BTC", 99.0, 3.0, Side.SELL, "t1", 2)) if r.kind is E.FILL]
    assert f[0].liquidity is Liquidity.MAKER and f[0].quantity == 1.0
    # Its flag survives a snapshot of the paper book, and is absent when unset.
    b.submit(limit("later", Side.BUY, 90.0), 3)
    b.submit(limit("plain", Side.BUY, 90.0, post_only=False), 3)
    snap = {o["client_order_id"]: o for o in b.snapshot()["orders"]}
    assert snap["later"]["post_only"] is True and "post_only" not in snap["plain"]
    again = broker()
    again.restore(b.snapshot())
    assert again.orders["later"].post_only and not again.orders["plain"].post_only


def engine() -> PaperEngine:
    eng = PaperEngine(EngineParams(
        initial_equity=10_000.0, instruments=(Instrument("BTC", lot_size=0.001, tick_size=0.5),),
        paper=PaperParams(latency_ms=0, slippage_bps=0.0, maker_fee_bps=0.0, taker_fee_bps=0.0),
        risk=RiskParams(sizing=SizingParams(risk_fraction=0.01, min_notional=0),
                        gates=GateParams(max_symbol_exposure_fraction=50, max_gross_exposure_fraction=50,
                                         max_cluster_exposure_fraction=50))))
    eng.on_bar(Bar("BTC", "1m", T0, 100.0, 100.0, 100.0, 100.0, 10.0))
    return eng


def sig(entry: float, post_only: bool = True) -> Signal:
    return Signal("BTC", Side.BUY, entry, entry - 2, (entry + 4,), 90.0, "s", "1m", T0 + M,
                  post_only=post_only)


def test_a_post_only_signal_enters_with_a_post_only_limit_even_when_entries_are_market() -> None:
    eng = engine()
    out = eng.on_signal(sig(99.0), T0 + M)
    entry = [e for e in out if isinstance(e, ev.OrderIntent) and e.role == "entry"][0]
    assert entry.order_type is OrderType.LIMIT and entry.post_only and entry.price == 99.0
    assert entry.expire_ts is not None  # a limit entry lives entry_ttl_bars, as any limit entry
    assert eng.orders[entry.client_order_id].status is OrderStatus.ACCEPTED  # resting below 100
    assert ev.to_dict(entry)["post_only"] is True
    assert ev.from_dict(ev.to_dict(entry)) == entry


def test_a_post_only_entry_that_would_cross_is_rejected_and_the_trade_never_opens() -> None:
    eng = engine()
    out = eng.on_signal(sig(100.0), T0 + M)
    coid = client_order_id(sig(100.0).signal_id, "entry")
    status = [e for e in out if isinstance(e, ev.OrderStatusChanged) and e.client_order_id == coid]
    assert status[-1].status is OrderStatus.REJECTED and status[-1].reason == "post_only_would_take"
    assert not [e for e in out if isinstance(e, ev.OrderFilled)]
    assert eng.accounting.position("s", "BTC").quantity == 0.0


def test_an_ordinary_intent_keeps_its_old_json_form() -> None:
    """No `post_only` key unless set: the ledger's records and the golden digests are unchanged."""
    eng = engine()
    out = eng.on_signal(sig(100.0, post_only=False), T0 + M)
    entry = [e for e in out if isinstance(e, ev.OrderIntent) and e.role == "entry"][0]
    d = ev.to_dict(entry)
    assert "post_only" not in d and ev.from_dict(d) == entry
    orders = eng.snapshot()["orders"]
    assert orders and all("post_only" not in o for o in orders)
    resting = engine()
    resting.on_signal(sig(99.0), T0 + M)
    assert [o["post_only"] for o in resting.snapshot()["orders"]] == [True]


def intent(**kw: Any) -> ev.OrderIntent:
    base: dict[str, Any] = {"ts": 1, "client_order_id": client_order_id("sig-1", "entry"),
                            "symbol": "BTCUSDT", "side": Side.BUY, "order_type": OrderType.LIMIT,
                            "quantity": 0.01, "price": 50_000.0, "post_only": True}
    base.update(kw)
    return ev.OrderIntent(**base)


SPEC = InstrumentSpec("BTCUSDT", tick_size=0.1, lot_size=0.001, min_qty=0.001, min_notional=100.0)


def test_binance_maps_post_only_to_gtx_on_futures_and_limit_maker_on_spot() -> None:
    futures = dict(bo.new_order(intent(), SPEC, Market.FUTURES).params)
    assert futures["type"] == "LIMIT" and futures["timeInForce"] == "GTX"
    spot = dict(bo.new_order(intent(), SPEC, Market.SPOT).params)
    assert spot["type"] == "LIMIT_MAKER" and "timeInForce" not in spot
    plain = dict(bo.new_order(intent(post_only=False), SPEC, Market.FUTURES).params)
    assert plain["timeInForce"] == "GTC"


def test_hyperliquid_maps_post_only_to_alo() -> None:
    asset = hl.Asset("BTC", 0, 5, 50)
    assert hl.order_wire(intent(symbol="BTC"), asset)["t"] == {"limit": {"tif": "Alo"}}
    assert hl.order_wire(intent(symbol="BTC", post_only=False), asset)["t"] == {"limit": {"tif": "Gtc"}}


class _Engine:
    last_price = {"BTC": 100.0}
    last_ts = T0
    seen_signals: dict[str, Any] = {}


def test_operator_post_only_entry_at_a_limit_and_a_limit_alone_is_refused_by_name() -> None:
    s = manual_signal(_Engine(), "BTC", "long", 95.0, [110.0], "1m", post_only=True, limit=99.0)
    assert s.post_only and s.entry == 99.0
    assert manual_signal(_Engine(), "BTC", "long", 95.0, [110.0], "1m", post_only=True).entry == 100.0
    with pytest.raises(CommandError, match="--limit is the price of a --post-only entry"):
        manual_signal(_Engine(), "BTC", "long", 95.0, [110.0], "1m", limit=99.0)


def test_post_only_entries_from_the_config_make_every_strategy_entry_post_only() -> None:
    from fractald.config import config_from_dict
    from fractald.pipeline_factory import engine_params

    params = engine_params(config_from_dict({"strategies": {"post_only_entries": True}}))
    assert params.post_only_entries
    eng = PaperEngine(attrs_evolve(engine().params, post_only_entries=True))
    eng.on_bar(Bar("BTC", "1m", T0, 100.0, 100.0, 100.0, 100.0, 10.0))
    out = eng.on_signal(sig(99.5, post_only=False), T0 + M)
    entry = [e for e in out if isinstance(e, ev.OrderIntent) and e.role == "entry"][0]
    assert entry.post_only and entry.order_type is OrderType.LIMIT and entry.price == 99.5
