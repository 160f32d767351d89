"""Circuit breakers, execution quality and the strategy reliability loop at their thresholds."""

from __future__ import annotations

import pytest

from fractald.core.models import ClosedTrade, Side
from fractald.core.risk.breakers import MS_PER_DAY, Breaker, CircuitBreakers, TradingState
from fractald.core.risk.exec_quality import ExecutionQuality
from fractald.core.risk.params import BreakerParams, ExecQualityParams, ReliabilityParams
from fractald.core.risk.reliability import StrategyReliability, StrategyState

T0 = 20_000 * MS_PER_DAY  # midnight UTC


def breakers(**kw: object) -> CircuitBreakers:
    b = CircuitBreakers(BreakerParams(**kw), equity=10_000.0)  # type: ignore[arg-type]
    b.mark_equity(T0, 10_000.0)
    return b


def trip_all(b: CircuitBreakers, trips: list) -> None:  # type: ignore[type-arg]
    for t in trips:
        b.trip(t)


def test_drawdown_from_peak_trips_at_limit() -> None:
    b = breakers(max_drawdown_fraction=0.20, daily_loss_fraction=0.99)
    b.mark_equity(T0 + 1, 12_000.0)
    assert b.check_equity(T0 + 2, 9_600.01) == []
    trips = b.check_equity(T0 + 2, 9_600.0)
    assert [t.breaker for t in trips] == [Breaker.MAX_DRAWDOWN]
    assert trips[0].figures["value"] == pytest.approx(0.2) and trips[0].figures["peak"] == 12_000.0
    trip_all(b, trips)
    assert b.state is TradingState.HALTED
    assert b.check_equity(T0 + 3, 9_000.0) == []  # a tripped breaker does not trip twice


def test_live_preset_is_stricter() -> None:
    assert BreakerParams.for_live().max_drawdown_fraction == 0.10
    assert BreakerParams().max_drawdown_fraction == 0.20


def test_daily_loss_trips_reducing_and_clears_next_day() -> None:
    b = breakers(daily_loss_fraction=0.05)
    assert b.check_equity(T0 + 5, 9_500.01) == []
    trips = b.check_equity(T0 + 5, 9_500.0)
    assert [t.breaker for t in trips] == [Breaker.DAILY_LOSS]
    trip_all(b, trips)
    assert b.state is TradingState.REDUCING
    assert b.roll_day(T0 + 10, 9_500.0) == []  # same day: nothing clears
    assert b.roll_day(T0 + MS_PER_DAY, 9_500.0) == [Breaker.DAILY_LOSS]
    assert b.state is TradingState.ACTIVE


def test_daily_reset_off_needs_resume() -> None:
    b = breakers(daily_loss_fraction=0.05, daily_reset_breakers=())
    trip_all(b, b.check_equity(T0 + 5, 9_000.0))
    b.roll_day(T0 + MS_PER_DAY, 9_000.0)
    assert b.state is TradingState.REDUCING
    b.resume(9_000.0)
    assert b.state is TradingState.ACTIVE and b.peak_equity == 9_000.0


def test_trades_per_day_limit() -> None:
    b = breakers(max_trades_per_day=50)
    for _ in range(49):
        b.record_trade_opened()
    assert b.check_counters(T0) == []
    b.record_trade_opened()
    trips = b.check_counters(T0)
    assert [t.breaker for t in trips] == [Breaker.TRADES_PER_DAY] and trips[0].figures["value"] == 50


def test_consecutive_losses_reset_by_a_win() -> None:
    b = breakers(max_consecutive_losses=3)
    for pnl in (-1, -1, 5, -1, -1):
        b.record_trade_closed(pnl)
    assert b.check_counters(T0) == []
    b.record_trade_closed(-0.01)
    assert [t.breaker for t in b.check_counters(T0)] == [Breaker.CONSECUTIVE_LOSSES]


def test_error_burst_in_window() -> None:
    b = breakers(error_burst_count=3, error_burst_window_ms=1_000)
    for t in (T0, T0 + 500):
        b.record_error(t)
    b.record_error(T0 + 1_001)
    assert b.check_counters(T0 + 1_001) == []  # the first error left the window
    b.record_error(T0 + 1_200)
    trips = b.check_counters(T0 + 1_200)
    assert [t.breaker for t in trips] == [Breaker.ERROR_BURST] and trips[0].state is TradingState.HALTED


def test_snapshot_round_trip() -> None:
    b = breakers()
    b.record_trade_opened()
    b.record_error(T0)
    b2 = CircuitBreakers(b.params)
    b2.restore(b.snapshot())
    assert b2.snapshot() == b.snapshot()


# -- execution quality --------------------------------------------------------

def test_execution_quality_score() -> None:
    q = ExecutionQuality(ExecQualityParams(min_samples=4, bad_reject_rate=0.25))
    assert q.score("paper", "BTC") == 1.0
    for rejected in (False, False, False, True):  # 25% rejects: the bad level
        q.record_submit_outcome("paper", "BTC", rejected)
    assert q.score("paper", "BTC") == pytest.approx(0.0)
    assert q.score("paper", "ETH") == 1.0
    for _ in range(4):
        q.record_slippage("paper", "ETH", +1, 100.0, 100.125)  # 12.5 bps of 25 bad
        q.record_slippage("paper", "ETH", -1, 100.0, 100.0)  # a better-or-equal sell counts zero
    assert q.components("paper", "ETH")["slippage"] == pytest.approx(1 - 6.25 / 25)
    q2 = ExecutionQuality(q.params)
    q2.restore(q.snapshot())
    assert q2.score("paper", "ETH") == q.score("paper", "ETH")


# -- reliability ----------------------------------------------------------------

def ct(pnl: float, r: float, strategy: str = "s") -> ClosedTrade:
    return ClosedTrade(trade_id="t", symbol="BTC", strategy=strategy, side=Side.BUY, quantity=1,
                       entry_price=100, exit_price=100 + pnl, ts_entry=0, ts_exit=1, pnl=pnl, fees=0,
                       r_multiple=r)


def feed(rel: StrategyReliability, pnls: list[float], ts: int = 0) -> list[StrategyState]:
    states = []
    for p in pnls:
        rel.record(ct(p, p))
        ch = rel.evaluate("s", ts)
        if ch:
            rel.apply(ch)
        states.append(rel.record_of("s").state)
    return states


def test_reliability_throttles_quarantines_and_recovers() -> None:
    p = ReliabilityParams(throttle_after_losses=2, quarantine_after_losses=4, recovery_wins=2,
                          quarantine_ms=1_000, min_trades_for_expectancy=10)
    rel = StrategyReliability(p)
    assert feed(rel, [-1]) == [StrategyState.ACTIVE]
    assert feed(rel, [-1]) == [StrategyState.THROTTLED]
    assert rel.scale("s") == p.throttle_scale
    assert feed(rel, [-1, -1], ts=100) == [StrategyState.THROTTLED, StrategyState.QUARANTINED]
    assert rel.scale("s") == 0.0
    assert rel.evaluate("s", 1_099) is None
    ch = rel.evaluate("s", 1_100)
    assert ch is not None and ch.new is StrategyState.THROTTLED
    rel.apply(ch)
    assert feed(rel, [1, 1]) == [StrategyState.THROTTLED, StrategyState.ACTIVE]


def test_negative_expectancy_quarantines() -> None:
    p = ReliabilityParams(throttle_after_losses=50, quarantine_after_losses=50,
                          min_trades_for_expectancy=4, expectancy_window=4,
                          quarantine_expectancy_r=-0.5)
    rel = StrategyReliability(p)
    states = feed(rel, [1.0, -1.0, -2.0, 1.0])  # mean -0.25: throttled, not quarantined
    assert states[-1] is StrategyState.THROTTLED
    states = feed(rel, [-1.0])  # window -1,-2,1,-1 mean -0.75
    assert states[-1] is StrategyState.QUARANTINED


def test_consecutive_losses_can_reset_daily_with_a_fresh_count() -> None:
    b = breakers(max_consecutive_losses=2,
                 daily_reset_breakers=("daily_loss", "trades_per_day", "consecutive_losses"))
    b.record_trade_closed(-1)
    b.record_trade_closed(-1)
    trip_all(b, b.check_counters(T0))
    assert b.state is TradingState.REDUCING
    assert b.roll_day(T0 + MS_PER_DAY, 10_000.0) == [Breaker.CONSECUTIVE_LOSSES]
    assert b.state is TradingState.ACTIVE and b.check_counters(T0 + MS_PER_DAY) == []
    with pytest.raises(ValueError, match="max_drawdown.*cannot reset daily"):
        BreakerParams(daily_reset_breakers=("max_drawdown",))


@pytest.mark.parametrize("money_limit", [0.0, 450.0])
def test_untripped_bounds_every_check_it_stands_for(money_limit: float) -> None:
    """`untripped(peak, low)` says no check can trip only where none does: each equity from `low` up,
    each peak up to `peak`, near both limits (the bar walk skips those checks on its word)."""
    b = breakers(max_drawdown_fraction=0.10, daily_loss_fraction=0.05, daily_loss_money=money_limit)
    said_untripped = 0
    for peak in (10_000.0, 10_500.0, 10_555.5, 11_000.0):
        for low in (9_400.0, 9_499.99, 9_500.0, 9_550.0, 9_600.0, 9_899.0, 10_000.0):
            if not b.untripped(peak, low):
                continue
            said_untripped += 1
            for lower_peak in (10_000.0, (10_000.0 + peak) / 2, peak):
                for equity in (low, (low + lower_peak) / 2, lower_peak):
                    probe = breakers(max_drawdown_fraction=0.10, daily_loss_fraction=0.05,
                                     daily_loss_money=money_limit)
                    probe.mark_equity(T0 + 1, lower_peak)
                    assert probe.check_equity(T0 + 2, equity) == [], (peak, low, lower_peak, equity)
    assert said_untripped >= 5
    # at a limit it says "may trip": a check there does
    assert not b.untripped(10_000.0, 9_500.0)
    assert b.check_equity(T0 + 1, 9_500.0) != []
    assert not b.untripped(11_000.0, 9_900.0)  # a drawdown of 10 % from that peak


def test_untripped_ignores_a_breaker_already_tripped() -> None:
    b = breakers(max_drawdown_fraction=0.10, daily_loss_fraction=0.05)
    trip_all(b, b.check_equity(T0 + 1, 9_000.0))
    assert {Breaker.MAX_DRAWDOWN, Breaker.DAILY_LOSS} <= set(b.trips)
    assert b.untripped(10_000.0, 9_000.0)
    assert b.check_equity(T0 + 2, 9_000.0) == []
