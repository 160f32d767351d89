"""Risk in money and ticks (the v1 futures limits): each a coded denial or trip at its exact threshold."""

from __future__ import annotations

import pathlib
import tempfile

import pytest

from fractald.core.models import Side, Signal
from fractald.core.risk.breakers import Breaker, CircuitBreakers
from fractald.core.risk.denial import Denial, DenialCode
from fractald.core.risk.params import BreakerParams, SizingParams
from fractald.core.risk.sizing import Instrument, SizedOrder, size_signal

MES = Instrument("MES", lot_size=1.0, tick_size=0.25, min_qty=1.0)  # contracts; price in points


def signal(entry: float, stop: float) -> Signal:
    return Signal("MES", Side.BUY, entry, stop, (entry + 2 * (entry - stop),), 90.0, "k1_vwap_reversion", "5m", 0)


def test_stop_at_exactly_twelve_ticks_passes_and_one_more_tick_is_denied() -> None:
    p = SizingParams(risk_fraction=0.01, max_stop_ticks=12)
    assert isinstance(size_signal(signal(5000.0, 4997.0), 100_000.0, MES, p), SizedOrder)  # 12 ticks
    denied = size_signal(signal(5000.0, 4996.75), 100_000.0, MES, p)  # 13 ticks
    assert isinstance(denied, Denial) and denied.code is DenialCode.STOP_TICKS
    assert denied.figures == {"value": 13.0, "limit": 12}


def test_money_at_risk_is_capped_and_exactly_the_cap_passes() -> None:
    p = SizingParams(risk_fraction=0.01, max_risk_money=15.0)
    sized = size_signal(signal(5000.0, 4995.0), 100_000.0, MES, p)  # 5 a contract; budget 1000 capped at 15
    assert isinstance(sized, SizedOrder) and sized.quantity == 3 and sized.risk_amount == pytest.approx(15.0)
    exact = size_signal(signal(5000.0, 4985.0), 100_000.0, MES, p)  # one contract risks exactly 15
    assert isinstance(exact, SizedOrder) and exact.quantity == 1
    over = size_signal(signal(5000.0, 4984.75), 100_000.0, MES, p)  # one contract risks 15.25
    assert isinstance(over, Denial) and over.code is DenialCode.RISK_MONEY
    assert over.figures["value"] == pytest.approx(15.25) and over.figures["limit"] == 15.0


def test_daily_loss_in_money_trips_at_exactly_the_limit() -> None:
    b = CircuitBreakers(BreakerParams(daily_loss_money=30.0), equity=10_000.0)
    b.mark_equity(0, 10_000.0)
    assert b.check_equity(1, 9_970.01) == []
    trips = b.check_equity(2, 9_970.0)
    assert [t.breaker for t in trips] == [Breaker.DAILY_LOSS]
    assert trips[0].figures["value"] == pytest.approx(30.0) and trips[0].figures["limit"] == 30.0
    assert "money limit" in trips[0].reason


def test_limits_are_off_by_default() -> None:
    p = SizingParams(risk_fraction=0.01)
    assert isinstance(size_signal(signal(5000.0, 4900.0), 100_000.0, MES, p), SizedOrder)
    assert CircuitBreakers(BreakerParams(), equity=10_000.0).check_equity(1, 9_900.0) == []


def test_config_carries_the_limits_to_the_engine() -> None:
    from fractald.config import load_config
    from fractald.errors import ConfigError
    from fractald.pipeline_factory import risk_params

    with tempfile.TemporaryDirectory() as d:
        path = pathlib.Path(d) / "v1.toml"
        path.write_text("[risk]\nmax_risk_money = 15.0\nmax_stop_ticks = 12\ndaily_loss_money = 30.0\n"
                        "max_trades_per_day = 2\n")
        r = risk_params(load_config(path))
        bad = pathlib.Path(d) / "bad.toml"
        bad.write_text("[risk]\nmax_stop_ticks = -1\n")
        with pytest.raises(ConfigError) as err:
            load_config(bad)
    assert (r.sizing.max_risk_money, r.sizing.max_stop_ticks) == (15.0, 12)
    assert (r.breakers.daily_loss_money, r.breakers.max_trades_per_day) == (30.0, 2)
    assert any("max_stop_ticks" in p for p in err.value.problems)
