"""A fee the venue takes out of the coins bought (Binance spot's default for a BUY).

The venue reports what traded (`quantity`, which fills the order), the coins it kept
(`fee_qty`) and the fee's value in quote (`fee`): the position, and so the stop that
protects it, is what is held (`quantity - fee_qty`), and the money is counted once.
"""

from __future__ import annotations

import pytest
from paper_engine import PaperEngine

from fractald.core.execution import events as ev
from fractald.core.execution.brackets import BracketParams
from fractald.core.execution.engine import EngineParams, TradingEngine
from fractald.core.execution.orders import Liquidity, OrderEvent, OrderStatus, OrderType
from fractald.core.execution.reports import VenueReport
from fractald.core.models import Side, Signal, TradeTick
from fractald.core.risk.params import GateParams, RiskParams, SizingParams
from fractald.venues import binance_replies as br

T0 = 19_700 * 86_400_000 + 3_600_000
HOUR = 3_600_000


def engine() -> TradingEngine:
    eng = PaperEngine(EngineParams(venue="sim", long_only=True,
                                   brackets=BracketParams(venue_stops=True, local_targets=True),
                                   risk=RiskParams(
        sizing=SizingParams(risk_fraction=0.01, min_notional=0),
        gates=GateParams(max_symbol_exposure_fraction=90, max_gross_exposure_fraction=90,
                         max_cluster_exposure_fraction=90))))
    eng.on_trade(TradeTick("BTC", 100.0, 1.0, Side.BUY, "t0", T0))
    return eng


def fill(coid: str, ts: int, qty: float, price: float, trade_id: str, fee: float,
         fee_qty: float = 0.0) -> VenueReport:
    return VenueReport(OrderEvent.FILL, coid, ts, trade_id=trade_id, quantity=qty, price=price,
                       fee=fee, liquidity=Liquidity.TAKER, fee_qty=fee_qty)


def entered(eng: TradingEngine) -> tuple[list[object], ev.OrderIntent, ev.OrderIntent, float]:
    events = list(eng.on_signal(Signal("BTC", Side.BUY, 100.0, 98.0, (110.0,), 90.0, "s", "1m", T0),
                                T0))
    entry = next(e for e in events if isinstance(e, ev.OrderIntent))
    kept = entry.quantity * 0.001
    events += eng.on_venue_report(VenueReport(OrderEvent.ACCEPT, entry.client_order_id, T0 + 10))
    events += eng.on_venue_report(fill(entry.client_order_id, T0 + 20, entry.quantity, 100.0, "e",
                                       fee=kept * 100.0, fee_qty=kept))
    stop = next(e for e in events
                if isinstance(e, ev.OrderIntent) and e.order_type is OrderType.STOP_MARKET)
    return events, entry, stop, kept


def test_the_order_fills_the_position_is_what_is_held_and_the_stop_protects_that() -> None:
    eng = engine()
    equity = eng.accounting.equity
    _, entry, stop, kept = entered(eng)
    assert eng.orders[entry.client_order_id].status is OrderStatus.FILLED
    held = entry.quantity - kept
    assert eng.accounting.position("s", "BTC").quantity == pytest.approx(held)
    assert stop.quantity == pytest.approx(held) and stop.side is Side.SELL
    # The money: the fee once (its coins are gone from the position, their value from equity).
    assert eng.accounting.equity == pytest.approx(equity - kept * 100.0)
    eng.on_venue_report(VenueReport(OrderEvent.ACCEPT, stop.client_order_id, T0 + 30))
    eng.on_venue_report(fill(stop.client_order_id, T0 + HOUR, stop.quantity, 98.0, "s",
                             fee=stop.quantity * 98.0 * 0.001))
    assert eng.accounting.position("s", "BTC").quantity == pytest.approx(0.0, abs=1e-12)
    assert eng.orders[stop.client_order_id].status is OrderStatus.FILLED
    loss = held * 2.0 + kept * 100.0 + stop.quantity * 98.0 * 0.001
    assert eng.accounting.equity == pytest.approx(equity - loss)


def test_a_rebuild_from_the_ledger_holds_the_same_and_old_fills_read_as_before() -> None:
    live = engine()
    rebuilt = PaperEngine(live.params)
    rebuilt.restore(live.snapshot())
    events, _, _, kept = entered(live)
    filled = [e for e in events if isinstance(e, ev.OrderFilled)]
    assert filled[0].fee_qty == pytest.approx(kept)
    for e in events:
        rebuilt.apply(ev.from_dict(ev.to_dict(e)))  # through the ledger's JSON
    assert rebuilt.snapshot()["accounting"] == live.snapshot()["accounting"]
    assert ev.to_dict(filled[0])["fee_qty"] == pytest.approx(kept)
    plain = ev.OrderFilled(1, "c", "t", "BTC", Side.BUY, 1.0, 100.0, 0.1, None, "s", "sig", "entry")
    assert "fee_qty" not in ev.to_dict(plain)  # every other venue's fills are recorded as before


def test_binance_spot_commissions_are_valued_in_quote() -> None:
    assert br.spot_fee(0.00001, "BTC", "BTCUSDT", 50_000.0) == (pytest.approx(0.5), 0.00001)
    assert br.spot_fee(0.5, "USDT", "BTCUSDT", 50_000.0) == (0.5, 0.0)
    assert br.spot_fee(0.001, "BNB", "BTCUSDT", 50_000.0, 600.0) == (pytest.approx(0.6), 0.0)
    assert br.spot_fee(0.0, "", "BTCUSDT", 50_000.0) == (0.0, 0.0)
    with pytest.raises(ValueError, match="BNB's price"):
        br.spot_fee(0.001, "BNB", "BTCUSDT", 50_000.0)


def test_the_coins_kept_reach_down_to_the_lot_step() -> None:
    assert br.kept_to_the_lot(0.01, 0.00001, 0.00001) == pytest.approx(0.00001)  # on the step
    assert br.kept_to_the_lot(0.01234, 0.00001234, 0.00001) == pytest.approx(0.00002)
    assert br.kept_to_the_lot(1.0, 0.0, 0.001) == 0.0  # a fee in quote takes no coins
