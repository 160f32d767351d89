"""core.figures against hand-computed cases, and the equity history's promise: exact figures at a bounded size."""

from __future__ import annotations

import math
import random
import statistics

import numpy as np
import pytest

from fractald.core import figures as fig
from fractald.core.equity_history import EquityHistory, reduce_points

DAY = 86_400_000
MIN = 60_000
DAY0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC


def test_drawdown_fraction_and_return_by_hand() -> None:
    assert fig.drawdown_fraction(10_000.0, 9_500.0) == pytest.approx(0.05)
    assert fig.drawdown_fraction(10_000.0, 10_500.0) == 0.0
    assert fig.drawdown_fraction(0.0, 5.0) == 0.0
    assert fig.total_return(10_000.0, 9_420.0) == pytest.approx(-0.058)
    with pytest.raises(ValueError, match="positive starting equity"):
        fig.total_return(0.0, 1.0)
    assert fig.format_pct(-0.058) == "-5.80%" and fig.format_pct(0.05, 1, sign=True) == "+5.0%"
    assert fig.format_pct(None) == "-"


def test_max_drawdown_by_hand() -> None:
    # 100 -> 120 (peak, t=1) -> 90 (trough, t=3: 25 % below 120) -> 130 (recovered past 120 at t=5)
    ts = [0, 1, 2, 3, 4, 5]
    values = [100.0, 120.0, 110.0, 90.0, 115.0, 130.0]
    d = fig.max_drawdown(ts, values)
    assert d.max_pct == pytest.approx(0.25) and d.max_abs == pytest.approx(30.0)
    assert (d.peak_ms, d.trough_ms, d.recovery_ms, d.recovered, d.duration_ms) == (1, 3, 5, True, 4)
    unrecovered = fig.max_drawdown([0, 1, 2], [100.0, 80.0, 90.0])
    assert unrecovered.max_pct == pytest.approx(0.2) and not unrecovered.recovered
    assert unrecovered.duration_ms == 2
    assert fig.max_drawdown([0, 1], [1.0, 2.0]) == fig.NO_DRAWDOWN
    assert fig.max_drawdown([0], [1.0]) == fig.NO_DRAWDOWN
    with pytest.raises(ValueError, match="2 timestamps for 3"):
        fig.max_drawdown([0, 1], [1.0, 2.0, 3.0])


def test_daily_returns_use_each_days_last_equity_and_carry_empty_days() -> None:
    ts = [DAY0, DAY0 + 3_600_000, DAY0 + 20 * 3_600_000, DAY0 + 2 * DAY + 1]  # day 1 has no point
    values = [100.0, 90.0, 110.0, 121.0]
    r = fig.daily_returns(ts, values)
    assert r.tolist() == pytest.approx([0.10, 0.0, 0.10])
    assert fig.daily_returns([DAY0], [100.0]).size == 0


def test_ratios_by_hand_and_the_minimum_sample_rule() -> None:
    rng = np.random.default_rng(7)
    daily = rng.normal(0.001, 0.01, 30)
    r = fig.ratios(daily, 0.05)
    sharpe = statistics.mean(daily) / statistics.stdev(daily) * math.sqrt(365)
    downside = math.sqrt(sum(min(x, 0.0) ** 2 for x in daily) / len(daily)) * math.sqrt(365)
    annual = float(np.prod(1 + daily)) ** (365 / 30) - 1
    assert r.sharpe == pytest.approx(sharpe, rel=1e-9)
    assert r.sortino == pytest.approx(statistics.mean(daily) * 365 / downside, rel=1e-9)
    assert r.calmar == pytest.approx(annual / 0.05, rel=1e-9)
    assert (r.returns, r.note) == (30, None)
    few = fig.ratios(daily[:2], 0.05)
    assert (few.sharpe, few.sortino, few.calmar) == (None, None, None)
    assert few.note == "ratios need at least 20 daily returns; this period has 2"
    assert fig.ratios(daily, 0.0).calmar is None  # no drawdown: Calmar is undefined, not infinite


@pytest.mark.parametrize("case", ["noise", "gains_only", "constant", "zeros", "one", "two", "year"])
def test_sharpe_and_sortino_equal_empyricals(case: str) -> None:
    # empyrical-reloaded is the reference; figures computes its definitions with NumPy alone
    # so a backtest's report does not import SciPy (a second of start-up).
    empyrical = pytest.importorskip("empyrical")
    rng = np.random.default_rng(11)
    daily = {"noise": rng.normal(0.001, 0.02, 33), "gains_only": np.abs(rng.normal(0, 0.01, 30)),
             "constant": np.full(25, 0.01), "zeros": np.zeros(25), "one": np.array([0.01]),
             "two": np.array([0.01, -0.02]), "year": rng.normal(-0.002, 0.03, 365)}[case]
    for ours, theirs in ((fig.sharpe_ratio(daily, 365), empyrical.sharpe_ratio(daily, annualization=365)),
                         (fig.sortino_ratio(daily, 365), empyrical.sortino_ratio(daily, annualization=365))):
        if math.isnan(theirs):
            assert math.isnan(ours)
        else:
            assert ours == pytest.approx(theirs, rel=1e-9, abs=0)


def test_trade_stats_by_hand() -> None:
    s = fig.trade_stats([200.0, -100.0, -100.0, 300.0, 0.0], [2, 1, 1, 3, 1], [2, -1, -1, 3, 0])
    assert (s.trades, s.wins, s.losses, s.breakeven) == (5, 2, 2, 1)
    assert s.win_rate == pytest.approx(0.4) and s.profit_factor == pytest.approx(2.5)
    assert (s.net_pnl, s.fees, s.expectancy, s.avg_r) == (300.0, 8.0, 60.0, 0.6)
    none = fig.trade_stats([])
    assert (none.win_rate, none.profit_factor, none.expectancy) == (None, None, None)
    assert fig.trade_stats([5.0]).profit_factor is None  # no losing trade: undefined


# --------------------------------------------------------------------------- equity history


def random_walk(n: int, seed: int, step_ms: int = MIN) -> list[tuple[int, float]]:
    rng = random.Random(seed)
    equity, out = 10_000.0, []
    for i in range(n):
        equity *= 1 + rng.gauss(0.00002, 0.0015)
        out.append((DAY0 + 7 * MIN + i * step_ms, equity))
    return out


def figures_of(points: list[tuple[int, float]]) -> tuple:
    """Everything the history keeps exact (the recovery time only to within a bucket: see below)."""
    ts = [p[0] for p in points]
    values = [p[1] for p in points]
    d = fig.max_drawdown(ts, values)
    return ((d.max_pct, d.max_abs, d.peak_ms, d.trough_ms, d.recovered),
            fig.daily_returns(ts, values).tolist(), points[0], points[-1], min(values), max(values))


def recovery_of(points: list[tuple[int, float]]) -> int | None:
    return fig.max_drawdown([p[0] for p in points], [p[1] for p in points]).recovery_ms


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_month_of_minutes_keeps_every_figure_exact_within_the_cap(seed: int) -> None:
    points = random_walk(31 * 1440, seed)
    history = EquityHistory(cap=3_000)
    for ts, value in points:
        history.record(ts, value)
    kept = history.points()
    assert len(kept) <= 3_000 + 64 and history.width_ms > MIN
    assert kept == sorted(kept) and set(kept) <= set(points)
    assert figures_of(kept) == figures_of(points)
    true_recovery, kept_recovery = recovery_of(points), recovery_of(kept)
    if true_recovery is not None:
        assert kept_recovery is not None and 0 <= kept_recovery - true_recovery < history.width_ms


def test_a_second_record_at_the_same_time_replaces_the_first() -> None:
    history = EquityHistory()
    history.record(DAY0, 100.0)
    history.record(DAY0 + MIN, 50.0)
    history.record(DAY0 + MIN, 99.0)  # the same bar's later equity (a fill's fees)
    assert history.points() == [(DAY0, 100.0), (DAY0 + MIN, 99.0)]
    assert history[-1] == (DAY0 + MIN, 99.0) and len(history) == 2
    with pytest.raises(ValueError, match="earlier than the last recorded"):
        history.record(DAY0, 1.0)
    with pytest.raises(ValueError, match="at least 64"):
        EquityHistory(cap=10)


def test_a_restored_history_resumes_where_it_was() -> None:
    points = random_walk(20 * 1440, 5)
    history = EquityHistory(cap=2_000)
    for ts, value in points[:10_000]:
        history.record(ts, value)
    restored = EquityHistory(cap=2_000)
    restored.extend(history.points(), history.width_ms)
    # Re-recording may merge a bucket that was kept in two parts: fewer points, the same figures.
    assert restored.width_ms == history.width_ms and len(restored) <= len(history)
    assert figures_of(restored.points()) == figures_of(history.points())
    for ts, value in points[10_000:]:
        history.record(ts, value)
        restored.record(ts, value)
    assert figures_of(restored.points()) == figures_of(points)


def test_reduce_keeps_the_deepest_fall_inside_a_bucket() -> None:
    # 105, 120, 80, 130: the fall 120 -> 80 is neither from the first point nor to the last.
    pts = [(0, 105.0), (1, 120.0), (2, 80.0), (3, 130.0), (4, 125.0)]
    assert reduce_points(pts) == pts  # all five matter here
    flat = [(i, 100.0 + (i % 2)) for i in range(50)]
    assert len(reduce_points(flat)) <= 6
