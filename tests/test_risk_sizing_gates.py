"""Sizing and portfolio gates, each at its exact threshold."""

from __future__ import annotations

import math

import pytest

from fractald.core.models import FeedHealth, Side, Signal
from fractald.core.risk.denial import Denial, DenialCode
from fractald.core.risk.gates import (
    Candidate,
    CorrelationTracker,
    OpenRisk,
    OrderRateLimiter,
    check_feed,
    check_portfolio,
)
from fractald.core.risk.params import GateParams, SizingParams
from fractald.core.risk.sizing import Instrument, SizedOrder, confidence_scale, size_signal

BTC = Instrument("BTC", lot_size=0.001, tick_size=0.1)


def sig(entry: float = 100.0, stop: float = 99.0, conf: float = 90.0, side: Side = Side.BUY) -> Signal:
    target = entry + 2 * (entry - stop)
    return Signal(symbol="BTC", side=side, entry=entry, stop=stop, targets=(target,),
                  confidence=conf, strategy="s", timeframe="1m", ts_event=0)


def test_fixed_fractional_size_from_stop_distance() -> None:
    p = SizingParams(risk_fraction=0.01, min_notional=0)
    out = size_signal(sig(100.0, 98.0), 10_000.0, BTC, p)
    assert isinstance(out, SizedOrder)
    # 1% of 10k = 100 at risk, 2 per unit -> 50 units
    assert out.quantity == pytest.approx(50.0)
    assert out.risk_amount == pytest.approx(100.0)


def test_confidence_scales_between_bounds() -> None:
    p = SizingParams(confidence_low=50, confidence_high=90, min_scale=0.5, max_scale=1.0)
    assert confidence_scale(30, p) == 0.5
    assert confidence_scale(70, p) == pytest.approx(0.75)
    assert confidence_scale(100, p) == 1.0
    full = size_signal(sig(conf=90), 10_000, BTC, p)
    half = size_signal(sig(conf=50), 10_000, BTC, p)
    assert isinstance(full, SizedOrder) and isinstance(half, SizedOrder)
    assert half.quantity == pytest.approx(full.quantity / 2, abs=BTC.lot_size)


def test_quantity_rounds_down_to_lot_and_never_over_risks() -> None:
    inst = Instrument("BTC", lot_size=0.01, tick_size=0.5)
    out = size_signal(sig(100.2, 97.3), 1_000.0, inst, SizingParams(risk_fraction=0.01, min_notional=0))
    assert isinstance(out, SizedOrder)
    assert out.entry == 100.0 and out.stop == 97.0  # stop rounds away from entry
    assert math.isclose(out.quantity / 0.01, round(out.quantity / 0.01))
    assert out.risk_amount <= 10.0 + 1e-9


def test_size_that_rounds_to_zero_is_a_coded_denial() -> None:
    inst = Instrument("BTC", lot_size=1.0)
    out = size_signal(sig(100, 50), 1_000.0, inst, SizingParams(risk_fraction=0.01, min_notional=0))
    assert isinstance(out, Denial) and out.code is DenialCode.SIZE_ROUNDS_TO_ZERO
    assert out.figures["quantity"] == 0


def test_max_notional_clamps_and_min_notional_denies() -> None:
    p = SizingParams(risk_fraction=0.01, max_notional=1_000.0, min_notional=0)
    out = size_signal(sig(100, 99.9), 100_000.0, BTC, p)
    assert isinstance(out, SizedOrder) and out.notional <= 1_000.0 and out.quantity == 10.0
    p2 = SizingParams(risk_fraction=0.001, min_notional=100.0)
    # 0.1% of 1000 = 1 at risk over 1 per unit = 1 unit = 100 notional: at the minimum passes
    ok = size_signal(sig(100, 99), 1_000.0, BTC, p2)
    assert isinstance(ok, SizedOrder) and ok.notional == pytest.approx(100.0)
    low = size_signal(sig(100, 99), 999.0, BTC, p2)
    assert isinstance(low, Denial) and low.code is DenialCode.BELOW_MIN_NOTIONAL


def test_min_confidence_and_no_equity() -> None:
    p = SizingParams(min_confidence=60)
    assert isinstance(size_signal(sig(conf=60), 1e4, BTC, p), SizedOrder)
    d = size_signal(sig(conf=59.9), 1e4, BTC, p)
    assert isinstance(d, Denial) and d.code is DenialCode.CONFIDENCE_TOO_LOW
    d = size_signal(sig(), 0.0, BTC, p)
    assert isinstance(d, Denial) and d.code is DenialCode.NO_EQUITY


def test_params_name_the_bad_value() -> None:
    with pytest.raises(ValueError, match=r"SizingParams.risk_fraction must be within \(0, 0.1\], got 0.5"):
        SizingParams(risk_fraction=0.5)
    with pytest.raises(ValueError, match="GateParams.max_open_positions"):
        GateParams(max_open_positions=0)


# -- gates at their thresholds ------------------------------------------------

EQ = 10_000.0


def test_heat_cap_just_below_passes_at_cap_denies() -> None:
    p = GateParams(max_heat_fraction=0.06)
    open_ = [OpenRisk("ETH", 1_000.0, 400.0)]
    assert check_portfolio(Candidate("BTC", 1_000.0, 199.99), open_, EQ, p) is None
    d = check_portfolio(Candidate("BTC", 1_000.0, 200.0), open_, EQ, p)
    assert isinstance(d, Denial) and d.code is DenialCode.PORTFOLIO_HEAT
    assert d.figures["value"] == 600.0 and d.figures["limit"] == pytest.approx(600.0)


@pytest.mark.parametrize("field,code,existing,cand_sym", [
    ("max_gross_exposure_fraction", DenialCode.GROSS_EXPOSURE, "ETH", "BTC"),
    ("max_symbol_exposure_fraction", DenialCode.SYMBOL_EXPOSURE, "BTC", "BTC"),
])
def test_exposure_caps(field: str, code: DenialCode, existing: str, cand_sym: str) -> None:
    p = GateParams(**{"max_gross_exposure_fraction": 100.0, "max_symbol_exposure_fraction": 100.0,
                      field: 2.0})
    open_ = [OpenRisk(existing, 15_000.0, 0.0)]
    assert check_portfolio(Candidate(cand_sym, 4_999.0, 0.0), open_, EQ, p) is None
    d = check_portfolio(Candidate(cand_sym, 5_000.0, 0.0), open_, EQ, p)
    assert isinstance(d, Denial) and d.code is code and d.figures["limit"] == 20_000.0


def test_cluster_cap_only_counts_the_cluster() -> None:
    p = GateParams(max_cluster_exposure_fraction=1.0)
    open_ = [OpenRisk("ETH", 6_000.0, 0.0), OpenRisk("SOL", 50_000.0, 0.0)]
    p = GateParams(max_cluster_exposure_fraction=1.0, max_gross_exposure_fraction=100.0)
    cluster = frozenset({"BTC", "ETH"})
    assert check_portfolio(Candidate("BTC", 3_999.0, 0.0), open_, EQ, p, cluster) is None
    d = check_portfolio(Candidate("BTC", 4_000.0, 0.0), open_, EQ, p, cluster)
    assert isinstance(d, Denial) and d.code is DenialCode.CLUSTER_EXPOSURE
    # without the correlation the same trade passes
    assert check_portfolio(Candidate("BTC", 4_000.0, 0.0), open_, EQ, p, frozenset({"BTC"})) is None


def test_max_open_positions() -> None:
    p = GateParams(max_open_positions=2, max_gross_exposure_fraction=100.0)
    one = [OpenRisk("ETH", 1.0, 0.0)]
    two = one + [OpenRisk("SOL", 1.0, 0.0)]
    assert check_portfolio(Candidate("BTC", 1.0, 0.0), one, EQ, p) is None
    d = check_portfolio(Candidate("BTC", 1.0, 0.0), two, EQ, p)
    assert isinstance(d, Denial) and d.code is DenialCode.MAX_OPEN_POSITIONS and d.figures["value"] == 2


def test_order_rate_limit_in_window() -> None:
    lim = OrderRateLimiter(limit=3, window_ms=1_000)
    for t in (0, 100, 200):
        assert lim.check(t) is None
        before, lim = lim, lim.recorded(t)
        assert before.count(t) == lim.count(t) - 1  # a value: the one before is unchanged
    d = lim.check(999)
    assert isinstance(d, Denial) and d.code is DenialCode.ORDER_RATE and d.figures["value"] == 3
    assert lim.check(1_000) is None  # the first one left the window
    assert isinstance(lim.check(1_000, orders=2), Denial)


def test_feed_and_execution_quality_thresholds() -> None:
    p = GateParams(min_execution_quality=0.75, min_data_quality=0.80)
    good = FeedHealth("BTC", 0, 0.1, quality=0.80)
    assert check_feed(good, 0.75, p, True) is None
    d = check_feed(FeedHealth("BTC", 0, 0.1, quality=0.7999), 1.0, p, True)
    assert isinstance(d, Denial) and d.code is DenialCode.DATA_QUALITY
    d = check_feed(good, 0.7499, p, True)
    assert isinstance(d, Denial) and d.code is DenialCode.EXECUTION_QUALITY
    d = check_feed(FeedHealth("BTC", 0, 30.0, stale=True), 1.0, p, True)
    assert isinstance(d, Denial) and d.code is DenialCode.FEED_STALE
    d = check_feed(None, 1.0, p, True)
    assert isinstance(d, Denial) and d.code is DenialCode.NO_FEED_HEALTH
    assert check_feed(None, 1.0, p, False) is None


def test_correlation_clusters_from_returns() -> None:
    tr = CorrelationTracker(window=50, threshold=0.7)
    price = {"BTC": 100.0, "ETH": 10.0, "DOGE": 1.0}
    for i in range(60):
        move = 1.01 if (i * 7) % 3 else 0.99
        other = 1.01 if (i * 5) % 4 < 2 else 0.99
        price["BTC"] *= move
        price["ETH"] *= move ** 1.5  # same direction, larger
        price["DOGE"] *= other
        for s, px in price.items():
            tr.add_close(s, i * 60_000, px)
    assert tr.correlation("BTC", "ETH") == pytest.approx(1.0)
    assert tr.cluster_of("BTC") == frozenset({"BTC", "ETH"})
    assert tr.cluster_of("DOGE") == frozenset({"DOGE"})
    restored = CorrelationTracker(50, 0.7)
    restored.restore(tr.snapshot())
    assert restored.cluster_of("ETH") == frozenset({"BTC", "ETH"})


def test_entry_override_measures_risk_from_the_market_price() -> None:
    p = SizingParams(risk_fraction=0.01, min_notional=0)
    out = size_signal(sig(100.0, 98.0), 10_000.0, BTC, p, entry=99.0)
    assert isinstance(out, SizedOrder) and out.entry == 99.0 and out.quantity == pytest.approx(100.0)
