"""The paper broker as a venue: intents and cancels in, reports out, and what it answers when asked.

The engine holds no venue (the pipeline passes it with each input); the
reconciler asks the venue itself through the `Venue` interface, so a venue
book that differs from the ledger is found, as it would be at a real venue.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import structlog

from fractald.actors.events import EventBus
from fractald.config import Config
from fractald.core.execution import events as ev
from fractald.core.execution.engine import TradingEngine
from fractald.core.execution.orders import OrderEvent, OrderType, TimeInForce
from fractald.core.execution.paper import PaperParams
from fractald.core.execution.paper_venue import PaperVenue, paper_trade_number, paper_venue_for
from fractald.core.models import Bar, Side, Signal
from fractald.pipeline_factory import engine_params
from fractald.reconcile import MismatchCode
from fractald.session import TradingSession
from fractald.store.writer import AsyncLedger
from fractald.venues.paper import PaperVenueAdapter

T0 = 1_700_000_000_000 - (1_700_000_000_000 % 86_400_000) + 3_600_000
M = 60_000


def intent(cid: str, side: Side, qty: float, kind: OrderType = OrderType.MARKET,
           price: float | None = None, ts: int = T0, reduce_only: bool = False) -> ev.OrderIntent:
    return ev.OrderIntent(ts, cid, "BTC", side, kind, qty, price, reduce_only=reduce_only)


def venue() -> PaperVenue:
    v = PaperVenue(PaperParams(latency_ms=0, slippage_bps=0.0, maker_fee_bps=0.0, taker_fee_bps=10.0),
                   immediate=True)
    v.record_trade("BTC", 100.0, T0)
    return v


def test_intents_in_reports_out_and_the_venue_remembers_what_ended() -> None:
    v = venue()
    accepted, filled = v.send(intent("buy", Side.BUY, 2.0))
    assert accepted.kind is OrderEvent.ACCEPT and filled.kind is OrderEvent.FILL
    assert (filled.quantity, filled.price, filled.fee) == (2.0, 100.0, pytest.approx(0.2))
    assert v.positions == {"BTC": 2.0} and v.order("buy") == ("BTC", "filled", 2.0, 2.0)
    # a resting limit, then its cancel: the venue's history says how each order ended
    assert [r.kind for r in v.send(intent("bid", Side.BUY, 1.0, OrderType.LIMIT, 90.0))] == [
        OrderEvent.ACCEPT]
    assert v.order("bid") == ("BTC", "open", 1.0, 0.0) and v.levels("BTC") == [90.0]
    [cancel] = v.send(ev.CancelRequested(T0 + 1, "bid", "test"))
    assert cancel.kind is OrderEvent.CANCEL and v.order("bid") == ("BTC", "canceled", 1.0, 0.0)
    assert v.order("never") is None
    assert [(f[0], f[1], f[3]) for f in v.fills_since(T0)] == [("buy", filled.trade_id, 2.0)]
    assert v.fills_since(T0 + 1) == []
    with pytest.raises(TypeError, match="OrderIntent or CancelRequested, got ErrorRecorded"):
        v.send(ev.ErrorRecorded(T0, "feed", "gap"))


def test_a_reduce_only_order_that_finds_no_position_ends_cancelled() -> None:
    v = venue()
    reports = v.send(intent("exit", Side.SELL, 1.0, reduce_only=True))
    assert reports[-1].kind is OrderEvent.CANCEL and reports[-1].reason == "reduce_only_no_position"
    assert v.order("exit") == ("BTC", "canceled", 1.0, 0.0) and v.positions == {}


def test_the_book_and_its_history_survive_a_snapshot_as_plain_json() -> None:
    import json

    v = venue()
    v.send(intent("buy", Side.BUY, 2.0))
    v.send(intent("ask", Side.SELL, 1.0, OrderType.LIMIT, 110.0))
    again = PaperVenue(v.params, immediate=True)
    again.restore(json.loads(json.dumps(v.snapshot())))
    assert again.snapshot() == v.snapshot()
    assert again.order("buy") == v.order("buy") and again.fills_since(0) == v.fills_since(0)


def test_resync_rebuilds_the_book_from_the_engine_orders_and_keeps_trade_ids_unique() -> None:
    v = venue()
    v.send(intent("buy", Side.BUY, 2.0))
    assert paper_trade_number(v.fills_since(0)[0][1]) == 1 and paper_trade_number("hl-9") == 0
    fresh = PaperVenue(v.params, immediate=True)
    fresh.resync([], {"BTC": 2.0, "ETH": 0.0}, seq=7)
    assert fresh.positions == {"BTC": 2.0} and fresh.seq == 7 and fresh.orders == {}


def test_a_paper_engine_input_without_its_venue_is_refused_not_left_unsent() -> None:
    engine = TradingEngine(engine_params(Config()))
    engine.on_bar(Bar("BTC-PERP", "1m", T0, 100.0, 100.0, 100.0, 100.0, 1.0))
    sig = Signal("BTC-PERP", Side.BUY, 100.0, 98.0, (104.0,), 90.0, "s", "1m", T0 + M)
    with pytest.raises(RuntimeError, match="must come with its paper venue"):
        engine.on_signal(sig, T0 + M)
    # with it, the order is sent and filled in the same call
    engine = TradingEngine(engine_params(Config()))
    v = paper_venue_for(engine)
    assert v is not None and v.immediate  # candles drive it: orders act at once
    engine.on_bar(Bar("BTC-PERP", "1m", T0, 100.0, 100.0, 100.0, 100.0, 1.0), v)
    out = engine.on_signal(sig, T0 + M, venue=v)
    assert any(isinstance(e, ev.OrderFilled) for e in out)
    assert v.positions["BTC-PERP"] == pytest.approx(engine.accounting.net_quantity("BTC-PERP"))


class _Pipeline:
    def __init__(self) -> None:
        self.engine = TradingEngine(engine_params(Config()))
        self.venue = paper_venue_for(self.engine)

    def on_bar(self, bar: Bar, accepting: bool = True) -> list[Any]:
        return self.engine.on_bar(bar, self.venue)


async def test_the_reconciler_asks_the_venue_itself_and_finds_a_book_the_ledger_never_saw(
        tmp_path: Path) -> None:
    ledger = await AsyncLedger.open(tmp_path / "state" / "fractald.db")
    pipeline = _Pipeline()
    session = TradingSession(Config(), ledger, structlog.get_logger("test"), EventBus(), pipeline, {})
    await session.on_bar(Bar("BTC-PERP", "1m", T0, 100.0, 100.0, 100.0, 100.0, 1.0))
    report = await session.reconcile("test")
    assert report is not None and report.clean
    # an order placed at the venue behind the ledger's back (by hand, another process)
    assert pipeline.venue is not None
    pipeline.venue.send(ev.OrderIntent(T0, "by-hand", "BTC-PERP", Side.SELL, OrderType.LIMIT, 1.0,
                                       150.0, tif=TimeInForce.GTC))
    adapter = PaperVenueAdapter(pipeline.venue)
    assert [o.client_order_id for o in await adapter.open_orders()] == ["by-hand"]
    report = await session.reconcile("again")
    assert report is not None and [(m.code, m.subject) for m in report.mismatches] == [
        (MismatchCode.UNKNOWN_ORDER, "by-hand")]
    await ledger.aclose()
