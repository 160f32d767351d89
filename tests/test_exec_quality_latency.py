"""Fill latency counts from when an order starts to take liquidity, not from when it was placed.

A venue stop rests for as long as the market stays away from it; that wait
is the market's, not the venue's. Counting it (as the engine once did) scored
every venue with resting stops as slow and soon denied all entries
(`EXECUTION_QUALITY`). A stop-market's latency runs from its trigger; one
whose trigger the venue never reported is not counted at all.
"""

from __future__ import annotations

from paper_engine import PaperEngine

from fractald.core.execution import events as ev
from fractald.core.execution.brackets import BracketParams
from fractald.core.execution.engine import EngineParams, TradingEngine
from fractald.core.execution.orders import Liquidity, OrderEvent, OrderType
from fractald.core.execution.reports import VenueReport
from fractald.core.models import Side, Signal, TradeTick
from fractald.core.risk.denial import DenialCode
from fractald.core.risk.params import GateParams, RiskParams, SizingParams

T0 = 19_700 * 86_400_000 + 3_600_000
HOUR = 3_600_000


def engine() -> TradingEngine:
    eng = PaperEngine(EngineParams(venue="sim", brackets=BracketParams(venue_stops=True), risk=RiskParams(
        sizing=SizingParams(risk_fraction=0.01, min_notional=0),
        gates=GateParams(max_symbol_exposure_fraction=90, max_gross_exposure_fraction=90,
                         max_cluster_exposure_fraction=90))))
    eng.on_trade(TradeTick("BTC", 100.0, 1.0, Side.BUY, "t0", T0))
    return eng


def fill(coid: str, ts: int, qty: float, price: float, trade_id: str) -> VenueReport:
    return VenueReport(OrderEvent.FILL, coid, ts, trade_id=trade_id, quantity=qty, price=price, fee=0.0,
                       liquidity=Liquidity.TAKER)


def stopped_out(eng: TradingEngine, strategy: str, ts: int, trigger_reported: bool) -> None:
    """A long entered at market at `ts` (filled 20 ms later), whose venue stop fires an hour on."""
    signal = Signal("BTC", Side.BUY, 100.0, 98.0, (110.0,), 90.0, strategy, "1m", ts)
    events = eng.on_signal(signal, ts)
    entry = next(e for e in events if isinstance(e, ev.OrderIntent))
    eng.on_venue_report(VenueReport(OrderEvent.ACCEPT, entry.client_order_id, ts + 10))
    out = eng.on_venue_report(fill(entry.client_order_id, ts + 20, entry.quantity, 100.0, f"{strategy}-e"))
    stop = next(e for e in out if isinstance(e, ev.OrderIntent) and e.order_type is OrderType.STOP_MARKET)
    eng.on_venue_report(VenueReport(OrderEvent.ACCEPT, stop.client_order_id, ts + 30))
    if trigger_reported:
        eng.on_venue_report(VenueReport(OrderEvent.TRIGGER, stop.client_order_id, ts + HOUR))
    eng.on_venue_report(fill(stop.client_order_id, ts + HOUR + 50, stop.quantity, 98.0, f"{strategy}-s"))


def fill_latencies(eng: TradingEngine) -> list[float]:
    return list(eng.exec_quality.snapshot()["sim|BTC"]["fill_ms"])


def test_a_venue_stop_counts_from_its_trigger_and_entries_stay_allowed() -> None:
    eng = engine()
    for i in range(5):
        stopped_out(eng, f"s{i}", T0 + i * 2 * HOUR, trigger_reported=True)
    assert fill_latencies(eng) == [20.0, 50.0] * 5  # entry: submit -> fill; stop: trigger -> fill
    assert eng.exec_quality.score("sim", "BTC") > 0.99
    ts = T0 + 11 * HOUR
    eng.on_trade(TradeTick("BTC", 100.0, 1.0, Side.BUY, "t1", ts))
    taken = eng.on_signal(Signal("BTC", Side.BUY, 100.0, 98.0, (110.0,), 90.0, "next", "1m", ts), ts)
    assert not any(isinstance(e, ev.SignalDenied) and e.code is DenialCode.EXECUTION_QUALITY
                   for e in taken), taken


def test_a_stop_whose_trigger_was_never_reported_is_not_counted() -> None:
    eng = engine()
    stopped_out(eng, "s", T0, trigger_reported=False)
    assert fill_latencies(eng) == [20.0]  # the entry only; the stop's wait is unknown


def test_the_trigger_time_survives_a_rebuild_from_the_ledger() -> None:
    live = engine()
    rebuilt = PaperEngine(live.params)
    rebuilt.restore(live.snapshot())
    events = []
    ts = T0
    signal = Signal("BTC", Side.BUY, 100.0, 98.0, (110.0,), 90.0, "s", "1m", ts)
    events += live.on_signal(signal, ts)
    entry = next(e for e in events if isinstance(e, ev.OrderIntent))
    events += live.on_venue_report(fill(entry.client_order_id, ts + 20, entry.quantity, 100.0, "e"))
    stop = next(e for e in events if isinstance(e, ev.OrderIntent) and e.order_type is OrderType.STOP_MARKET)
    events += live.on_venue_report(VenueReport(OrderEvent.TRIGGER, stop.client_order_id, ts + HOUR))
    for e in events:
        rebuilt.apply(e)
    assert rebuilt.orders[stop.client_order_id].ts_marketable == ts + HOUR
    assert rebuilt.snapshot()["orders"] == live.snapshot()["orders"]


def test_reports_recovered_from_the_venue_after_a_crash_count_no_latency() -> None:
    """A crash between send and ack: the router later learns from the venue that the entry was
    accepted and filled, and that its stop fired, while we were down. The ack and trigger it
    re-creates carry the time it asked, not the venue's, so they say nothing about latency."""
    from fractald.routing.recovery import reports_from_venue
    from fractald.venues.interface import VenueFill, VenueOrder

    eng = engine()
    events = eng.on_signal(Signal("BTC", Side.BUY, 100.0, 98.0, (110.0,), 90.0, "s", "1m", T0), T0)
    entry = next(e for e in events if isinstance(e, ev.OrderIntent))
    back = T0 + HOUR  # the daemon is back an hour later and asks the venue
    fills = [VenueFill(entry.client_order_id, "e1", T0 + 20, entry.quantity, 100.0, 0.0)]
    out = []
    for report in reports_from_venue(VenueOrder(entry.client_order_id, "BTC", "filled", entry.quantity,
                                                entry.quantity), fills, set(), back):
        out += eng.on_venue_report(report)
    stats = eng.exec_quality.snapshot()["sim|BTC"]
    assert list(stats["ack_ms"]) == []  # not an hour-long ack
    assert list(stats["fill_ms"]) == [20.0]  # the venue's own fill time, from our submit
    stop = next(e for e in out if isinstance(e, ev.OrderIntent) and e.order_type is OrderType.STOP_MARKET)
    eng.on_venue_report(VenueReport(OrderEvent.ACCEPT, stop.client_order_id, stop.ts + 10))
    later = back + 3 * HOUR
    stop_fill = [VenueFill(stop.client_order_id, "s1", back + HOUR, stop.quantity, 98.0, 0.0)]
    for report in reports_from_venue(VenueOrder(stop.client_order_id, "BTC", "filled", stop.quantity,
                                                stop.quantity, trigger_price=98.0), stop_fill, set(), later):
        eng.on_venue_report(report)
    stats = eng.exec_quality.snapshot()["sim|BTC"]
    assert list(stats["ack_ms"]) == [10.0] and list(stats["fill_ms"]) == [20.0]  # the stop's wait: unknown
    assert eng.orders[stop.client_order_id].status.value == "FILLED"
