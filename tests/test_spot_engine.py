"""The engine as it trades spot: no short entries (coded), the stop at the venue, targets kept here."""

from __future__ import annotations

from typing import Any

from paper_engine import PaperEngine

from fractald.config import config_from_dict
from fractald.core.execution import events as ev
from fractald.core.execution.brackets import BracketParams
from fractald.core.execution.engine import EngineParams, TradingEngine
from fractald.core.execution.orders import OrderStatus, OrderType
from fractald.core.execution.paper import PaperParams
from fractald.core.models import Bar, Side, Signal, TradeTick
from fractald.core.risk.denial import DenialCode
from fractald.core.risk.params import GateParams, RiskParams, SizingParams
from fractald.core.risk.sizing import Instrument
from fractald.pipeline_factory import engine_params

M = 60_000
T0 = 1_700_000_000_000 - (1_700_000_000_000 % 86_400_000) + 3_600_000


def spot_engine() -> TradingEngine:
    eng = PaperEngine(EngineParams(
        initial_equity=10_000.0, long_only=True,  # on the paper broker, to see the fills
        instruments=(Instrument("BTC", lot_size=0.001, tick_size=0.5),),
        paper=PaperParams(latency_ms=0, slippage_bps=0.0, maker_fee_bps=0.0, taker_fee_bps=0.0),
        brackets=BracketParams(venue_stops=True, local_targets=True),
        risk=RiskParams(sizing=SizingParams(risk_fraction=0.01, min_notional=0),
                        gates=GateParams(max_symbol_exposure_fraction=50, max_gross_exposure_fraction=50,
                                         max_cluster_exposure_fraction=50))))
    eng.on_bar(Bar("BTC", "1m", T0, 100.0, 100.0, 100.0, 100.0, 10.0))
    return eng


def tick(eng: TradingEngine, i: int, price: float) -> list[Any]:
    return eng.on_trade(TradeTick("BTC", price, 1.0, Side.BUY, f"t{i}", T0 + M + i))


def intents(events: list[Any]) -> list[ev.OrderIntent]:
    return [e for e in events if isinstance(e, ev.OrderIntent)]


def test_a_short_entry_on_spot_is_denied_with_its_code() -> None:
    eng = spot_engine()
    out = eng.on_signal(Signal("BTC", Side.SELL, 100.0, 102.0, (96.0,), 90.0, "s", "1m", T0 + M), T0 + M)
    denied = [e for e in out if isinstance(e, ev.SignalDenied)]
    assert denied and denied[0].code is DenialCode.LONG_ONLY and "cannot sell short" in denied[0].message
    assert not intents(out)


def test_spot_rests_only_the_stop_and_sells_each_target_at_market_after_lifting_the_stop() -> None:
    eng = spot_engine()
    out = eng.on_signal(Signal("BTC", Side.BUY, 100.0, 98.0, (102.0, 104.0), 90.0, "s", "1m", T0 + M),
                        T0 + M)
    placed = intents(out)
    # The entry, then the venue stop for everything bought: no resting target beside it.
    assert [(i.role, i.order_type) for i in placed] == [("entry", OrderType.MARKET),
                                                       ("stop1", OrderType.STOP_MARKET)]
    assert placed[1].quantity == 50.0
    assert not intents(tick(eng, 1, 101.0))  # below the first target: nothing
    out = tick(eng, 2, 102.0)
    cancels = [e for e in out if isinstance(e, ev.CancelRequested)]
    tp1 = [i for i in intents(out) if i.role == "tp1"]
    assert cancels[0].client_order_id == placed[1].client_order_id  # the stop comes off first
    assert out.index(cancels[0]) < out.index(tp1[0])
    assert tp1[0].order_type is OrderType.MARKET and tp1[0].quantity == 25.0 and tp1[0].reduce_only
    # Once the target's exit filled, the stop is back for what is left (at break-even).
    stop2 = [i for i in intents(out) if i.role == "stop2"]
    assert stop2 and stop2[0].quantity == 25.0 and stop2[0].trigger_price == 100.0
    assert eng.orders[stop2[0].client_order_id].status is OrderStatus.ACCEPTED
    out = tick(eng, 3, 104.5)
    tp2 = [i for i in intents(out) if i.role == "tp2"]
    assert tp2 and tp2[0].quantity == 25.0
    closed = [e for e in out if isinstance(e, ev.BracketClosed)]
    assert closed and closed[0].reason == "targets"
    assert eng.accounting.position("s", "BTC").quantity == 0.0


def test_the_spot_broker_config_makes_a_long_only_engine_with_local_targets() -> None:
    def of(kind: str) -> dict[str, Any]:
        return {"broker": {"kind": kind, "api_key_credential": "k", "api_secret_credential": "s"},
                "risk": {"mode": "live"}, "feed": {"symbols": ["BTCUSDT"]}}

    spot = engine_params(config_from_dict(of("binance-spot")))
    assert spot.long_only and spot.brackets.local_targets and spot.brackets.venue_stops
    futures = engine_params(config_from_dict(of("binance-futures")))
    assert not futures.long_only and not futures.brackets.local_targets
