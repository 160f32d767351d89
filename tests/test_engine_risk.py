"""The engine's risk loop end to end: execution quality, reliability, breakers, correlation, anomalies."""

from __future__ import annotations

import math
from typing import Any

import pytest
from paper_engine import PaperEngine

from fractald.core.execution import events as ev
from fractald.core.execution.engine import EngineParams, TradingEngine
from fractald.core.execution.orders import Liquidity, OrderEvent
from fractald.core.execution.paper import PaperParams
from fractald.core.execution.reports import VenueReport
from fractald.core.models import Bar, Side, Signal
from fractald.core.risk.breakers import Breaker, TradingState
from fractald.core.risk.denial import DenialCode
from fractald.core.risk.params import (
    BreakerParams,
    ExecQualityParams,
    GateParams,
    ReliabilityParams,
    RiskParams,
    SizingParams,
)
from fractald.core.risk.reliability import StrategyState
from fractald.errors import InvariantViolation

M = 60_000
DAY = 86_400_000
T0 = 19_700 * DAY + 3_600_000
WIDE = dict(max_symbol_exposure_fraction=50.0, max_gross_exposure_fraction=50.0,
            max_cluster_exposure_fraction=50.0)


def engine(venue: str = "paper", gates: dict[str, Any] | None = None, **risk: Any) -> TradingEngine:
    r = RiskParams(**{"sizing": SizingParams(risk_fraction=0.01, min_notional=0),
                      "gates": GateParams(**{**WIDE, **(gates or {})}), **risk})
    return PaperEngine(EngineParams(
        venue=venue, risk=r,
        paper=PaperParams(latency_ms=0, slippage_bps=0, maker_fee_bps=0, taker_fee_bps=0)))


def flat(i: int, px: float = 100.0, symbol: str = "BTC") -> Bar:
    return Bar(symbol, "1m", T0 + i * M, px, px, px, px, 1.0)


def sig(i: int, strategy: str = "s", symbol: str = "BTC", px: float = 100.0) -> Signal:
    return Signal(symbol, Side.BUY, px, px - 2, (px + 2, px + 4), 90.0, strategy, "1m", T0 + i * M)


def of(events: list[Any], cls: type) -> list[Any]:
    return [e for e in events if isinstance(e, cls)]


def denial(events: list[Any]) -> DenialCode | None:
    d = of(events, ev.SignalDenied)
    return d[0].code if d else None


def lose(eng: TradingEngine, i: int, strategy: str = "s") -> list[Any]:
    """Open a long at 100 and stop it out at 98 on the next bar."""
    eng.on_bar(flat(i))
    out = eng.on_signal(sig(i + 1, strategy), T0 + (i + 1) * M)
    out += eng.on_bar(Bar("BTC", "1m", T0 + (i + 1) * M, 100, 100, 97, 100, 1.0))
    return out


def test_rejects_lower_execution_quality_until_entries_stop() -> None:
    eng = engine("venue", exec_quality=ExecQualityParams(min_samples=4, bad_reject_rate=0.5))
    for i in range(4):
        out = eng.on_signal(sig(i, strategy=f"s{i}"), T0 + i * M)
        coid = of(out, ev.OrderIntent)[0].client_order_id
        kind = OrderEvent.REJECT if i < 2 else OrderEvent.ACCEPT  # 2 of 4 rejected: rate 0.5
        eng.on_venue_report(VenueReport(kind, coid, T0 + i * M + 5))
        if kind is OrderEvent.ACCEPT:
            eng.on_venue_report(VenueReport(OrderEvent.CANCEL, coid, T0 + i * M + 6))
    assert eng.exec_quality.score("venue", "BTC") == pytest.approx(0.0)
    out = eng.on_signal(sig(10, strategy="x"), T0 + 10 * M)
    assert denial(out) is DenialCode.EXECUTION_QUALITY


def test_reliability_throttles_then_quarantines_a_losing_strategy() -> None:
    rel = ReliabilityParams(throttle_after_losses=2, quarantine_after_losses=3, quarantine_ms=10 * M)
    eng = engine(reliability=rel, breakers=BreakerParams(max_consecutive_losses=100,
                                                         daily_loss_fraction=0.9))
    lose(eng, 0)
    out = lose(eng, 2)
    change = of(out, ev.StrategyStateChanged)[0]
    assert change.new is StrategyState.THROTTLED and change.figures["loss_streak"] == 2
    out = lose(eng, 4)
    opened = of(out, ev.BracketOpened)[0]
    # throttled: half of the 1% budget (confidence 90 is full scale)
    assert opened.risk_amount == pytest.approx(0.005 * eng.accounting.equity_curve[-2][1], rel=0.01)
    assert of(out, ev.StrategyStateChanged)[0].new is StrategyState.QUARANTINED
    eng.on_bar(flat(6))
    assert denial(eng.on_signal(sig(7), T0 + 7 * M)) is DenialCode.STRATEGY_QUARANTINED
    assert denial(eng.on_signal(sig(7, strategy="other"), T0 + 7 * M)) is None  # others unaffected
    out = eng.on_bar(flat(15))  # quarantine served: probation
    assert of(out, ev.StrategyStateChanged)[0].new is StrategyState.THROTTLED


def test_consecutive_losses_breaker_goes_reducing() -> None:
    eng = engine(breakers=BreakerParams(max_consecutive_losses=2, daily_loss_fraction=0.9),
                 reliability=ReliabilityParams(throttle_after_losses=50, quarantine_after_losses=50))
    lose(eng, 0)
    assert eng.state is TradingState.ACTIVE
    out = lose(eng, 2)
    assert [t.breaker for t in of(out, ev.BreakerTripped)] == [Breaker.CONSECUTIVE_LOSSES]
    assert eng.state is TradingState.REDUCING
    eng.on_bar(flat(4))
    assert denial(eng.on_signal(sig(5, "t"), T0 + 5 * M)) is DenialCode.TRADING_REDUCING


def test_error_burst_halts() -> None:
    eng = engine(breakers=BreakerParams(error_burst_count=3, error_burst_window_ms=10_000))
    eng.on_error(T0, "feed", "disconnect")
    eng.on_error(T0 + 5_000, "feed", "disconnect")
    assert eng.state is TradingState.ACTIVE
    out = eng.on_error(T0 + 9_999, "venue", "timeout")
    assert of(out, ev.BreakerTripped)[0].breaker is Breaker.ERROR_BURST
    assert eng.state is TradingState.HALTED


def test_daily_loss_trips_and_a_new_day_clears_it() -> None:
    eng = engine(sizing=SizingParams(risk_fraction=0.03, min_notional=0),
                 breakers=BreakerParams(daily_loss_fraction=0.05))
    lose(eng, 0)
    out = lose(eng, 2)  # 3% + 2.91%: past 5%
    assert Breaker.DAILY_LOSS in [t.breaker for t in of(out, ev.BreakerTripped)]
    assert eng.state is TradingState.REDUCING
    out = eng.on_bar(flat(DAY // M))  # next UTC day
    cleared = of(out, ev.BreakersCleared)
    assert cleared and cleared[0].reason == "daily_reset" and eng.state is TradingState.ACTIVE


def test_trades_per_day_limit_in_the_engine() -> None:
    eng = engine(breakers=BreakerParams(max_trades_per_day=2))
    eng.on_bar(flat(0))
    assert denial(eng.on_signal(sig(1, "a"), T0 + M)) is None
    out = eng.on_signal(sig(1, "b"), T0 + M)
    assert denial(out) is None and of(out, ev.BreakerTripped)[0].breaker is Breaker.TRADES_PER_DAY
    assert denial(eng.on_signal(sig(1, "c"), T0 + M)) is DenialCode.TRADES_PER_DAY


def test_correlated_symbols_share_a_cluster_cap() -> None:
    eng = engine(gates={"max_cluster_exposure_fraction": 0.6, "correlation_threshold": 0.9,
                        "correlation_window": 20})
    for i in range(25):
        move = 1 + 0.01 * math.sin(i * 1.7)
        for sym, base in (("BTC", 100.0), ("ETH", 50.0), ("SOL", 20.0)):
            drift = move if sym != "SOL" else 1 + 0.01 * math.cos(i * 2.9)
            px = base * drift ** (i % 7)
            eng.on_bar(Bar(sym, "1m", T0 + i * M, px, px, px, px, 1.0))
    assert eng.correlation.cluster_of("BTC") == {"BTC", "ETH"}
    assert eng.correlation.cluster_of("SOL") == {"SOL"}
    px = {s: eng.last_price[s] for s in ("BTC", "ETH", "SOL")}
    # 1% risk over a 2-unit stop is 50 units: about 5000 of BTC, 2500 of ETH, 1000 of SOL
    assert denial(eng.on_signal(sig(30, symbol="BTC", px=px["BTC"]), T0 + 30 * M)) is None
    eth = of(eng.on_signal(sig(30, symbol="ETH", px=px["ETH"]), T0 + 30 * M), ev.SignalDenied)[0]
    assert eth.code is DenialCode.CLUSTER_EXPOSURE and eth.figures["limit"] == pytest.approx(
        0.6 * eng.equity)
    assert denial(eng.on_signal(sig(30, symbol="SOL", px=px["SOL"]), T0 + 30 * M)) is None


def test_order_rate_gate() -> None:
    eng = engine(gates={"max_orders_per_window": 3, "order_rate_window_ms": 60_000})
    eng.on_bar(flat(0))
    out = eng.on_signal(sig(1, "a"), T0 + M)  # entry + 2 targets = 3 orders
    assert len(of(out, ev.OrderIntent)) == 3
    out = eng.on_signal(sig(1, "b"), T0 + M)
    assert denial(out) is DenialCode.ORDER_RATE
    out = eng.on_signal(sig(2, "b"), T0 + 2 * M + 1)
    assert denial(out) is None


def test_venue_anomalies_duplicates_and_overfill() -> None:
    eng = engine("venue")
    out = eng.on_venue_report(VenueReport(OrderEvent.ACCEPT, "nope", T0))
    assert of(out, ev.OrderAnomaly)[0].what == "unknown_order"
    out = eng.on_signal(sig(0), T0)
    coid = of(out, ev.OrderIntent)[0].client_order_id
    fill = VenueReport(OrderEvent.FILL, coid, T0 + 1, trade_id="t1", quantity=10.0, price=100.0,
                       liquidity=Liquidity.TAKER)
    assert len(of(eng.on_venue_report(fill), ev.OrderFilled)) == 1
    assert eng.on_venue_report(fill) == []  # the same trade id again: ignored
    assert eng.accounting.position("s", "BTC").quantity == 10.0
    late_ack = eng.on_venue_report(VenueReport(OrderEvent.ACCEPT, coid, T0 + 2))
    assert of(late_ack, ev.OrderStatusChanged)  # a partially filled order may still be acked
    with pytest.raises(InvariantViolation, match="overfill"):
        eng.on_venue_report(VenueReport(OrderEvent.FILL, coid, T0 + 3, trade_id="t2", quantity=41.0,
                                        price=100.0))


def test_funding_is_charged_at_interval_boundaries() -> None:
    eng = PaperEngine(EngineParams(
        risk=RiskParams(sizing=SizingParams(risk_fraction=0.01, min_notional=0), gates=GateParams(**WIDE)),
        paper=PaperParams(latency_ms=0, slippage_bps=0, maker_fee_bps=0, taker_fee_bps=0,
                          funding_rate=0.0001, funding_interval_ms=8 * 3_600_000)))
    start = 19_700 * DAY + 7 * 3_600_000 + 58 * M  # 07:58 UTC
    eng.on_bar(Bar("BTC", "1m", start, 100, 100, 100, 100, 1.0))
    snap = eng.snapshot()
    out = eng.on_signal(Signal("BTC", Side.BUY, 100, 98, (110,), 90, "s", "1m", start + M), start + M)
    out += eng.on_bar(Bar("BTC", "1m", start + M, 100, 100, 100, 100, 1.0))  # closes 08:00
    paid = of(out, ev.FundingPaid)
    assert len(paid) == 1 and paid[0].amount == pytest.approx(50 * 100 * 0.0001)
    assert eng.accounting.cash == pytest.approx(10_000 - 0.5)
    rebuilt = PaperEngine(eng.params)
    rebuilt.restore(snap)
    for e in out:
        rebuilt.apply(e)
    assert rebuilt.accounting.cash == pytest.approx(eng.accounting.cash)


def test_orders_awaiting_ack_survive_a_restart() -> None:
    eng = engine("venue")
    out = eng.on_signal(sig(0), T0)
    coid = of(out, ev.OrderIntent)[0].client_order_id
    snap = eng.snapshot()
    again = engine("venue")
    again.restore(snap)
    assert [o.client_order_id for o in again.orders_awaiting_ack()] == [coid]
    again.on_venue_report(VenueReport(OrderEvent.ACCEPT, coid, T0 + 5))
    assert again.orders_awaiting_ack() == []


def test_a_sub_lot_remainder_still_goes_out_on_exit() -> None:
    eng = engine("venue")
    out = eng.on_signal(sig(0), T0)
    coid = of(out, ev.OrderIntent)[0].client_order_id
    odd = 10.0004  # not a whole number of 0.001 lots
    eng.on_venue_report(VenueReport(OrderEvent.FILL, coid, T0 + 1, trade_id="t1", quantity=odd,
                                    price=100.0))
    out = eng.flatten("BTC", T0 + 2)
    exits = [i for i in of(out, ev.OrderIntent) if i.role == "exit1"]
    assert exits and exits[0].quantity == pytest.approx(10.0)
    out = eng.on_venue_report(VenueReport(OrderEvent.FILL, exits[0].client_order_id, T0 + 3,
                                          trade_id="x1", quantity=10.0, price=100.0))
    rest = [i for i in of(out, ev.OrderIntent) if i.role == "exit2"]
    assert rest and rest[0].quantity == pytest.approx(0.0004)
    eng.on_venue_report(VenueReport(OrderEvent.CANCEL, coid, T0 + 4))  # the entry's unfilled rest
    out = eng.on_venue_report(VenueReport(OrderEvent.FILL, rest[0].client_order_id, T0 + 5,
                                          trade_id="x2", quantity=0.0004, price=100.0))
    assert of(out, ev.BracketClosed) and eng.accounting.net_quantity("BTC") == pytest.approx(0.0)
