"""Report figures against hand-computed expectations on a small fixed trade list."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import math
import statistics

import pytest

from fractald.core.models import ClosedTrade, Side
from fractald.reporting import export
from fractald.reporting.report import Period, Report, build_report, period_bounds

DAY = 86_400_000
HOUR = 3_600_000
DAY0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC, a Monday


def ms(*args: int) -> int:
    return int(dt.datetime(*args, tzinfo=dt.UTC).timestamp()) * 1000


def trade(n: int, day: int, symbol: str, strategy: str, pnl: float, fees: float,
          confidence: float, r: float) -> ClosedTrade:
    exit_ts = DAY0 + day * DAY + 12 * HOUR
    return ClosedTrade(
        trade_id=f"T{n}", symbol=symbol, strategy=strategy, side=Side.BUY, quantity=0.1,
        entry_price=100.0, exit_price=100.0 + pnl, ts_entry=exit_ts - 2 * HOUR, ts_exit=exit_ts,
        pnl=pnl, fees=fees, confidence=confidence, r_multiple=r,
    )


# Realised equity from 10,000: 10200, 10100, 10000, 10300, 10300 at noon of days 0..4.
TRADES = [
    trade(1, 0, "BTC", "A", 200.0, 2.0, 75.0, 2.0),
    trade(2, 1, "ETH", "B", -100.0, 1.0, 55.0, -1.0),
    trade(3, 2, "BTC", "A", -100.0, 1.0, 85.0, -1.0),
    trade(4, 3, "BTC", "B", 300.0, 3.0, 95.0, 3.0),
    trade(5, 4, "ETH", "A", 0.0, 1.0, 40.0, 0.0),
]


@pytest.fixture(scope="module")
def full() -> Report:
    # Five daily returns: below the 20 the ratios need by default, allowed here to check the formulas.
    return build_report(TRADES, [], 10_000.0, min_ratio_returns=2)


def test_trade_figures(full: Report) -> None:
    s = full.stats
    assert (s.trades, s.wins, s.losses, s.breakeven) == (5, 2, 2, 1)
    assert s.win_rate == pytest.approx(2 / 5)
    assert (s.gross_profit, s.gross_loss, s.net_pnl, s.fees) == (500.0, -200.0, 300.0, 8.0)
    assert s.avg_win == pytest.approx(250.0)
    assert s.avg_loss == pytest.approx(-100.0)
    assert s.profit_factor == pytest.approx(500 / 200)
    assert s.expectancy == pytest.approx(300 / 5)
    assert s.avg_r == pytest.approx((2 - 1 - 1 + 3 + 0) / 5)
    assert (full.starting_equity, full.ending_equity, full.pnl_abs) == (10_000.0, 10_300.0, 300.0)
    assert full.pnl_pct == pytest.approx(0.03)
    assert full.best_trade is not None and full.best_trade.trade_id == "T4"
    # T2 and T3 both lost 100: the earlier one is reported.
    assert full.worst_trade is not None and full.worst_trade.trade_id == "T2"


def test_drawdown_and_its_duration(full: Report) -> None:
    d = full.drawdown
    assert d.max_pct == pytest.approx(200 / 10_200)
    assert d.max_abs == pytest.approx(200.0)
    assert d.peak_ms == TRADES[0].ts_exit
    assert d.trough_ms == TRADES[2].ts_exit
    assert d.recovered and d.recovery_ms == TRADES[3].ts_exit
    assert d.duration_ms == 3 * DAY


def test_risk_adjusted_ratios_match_textbook_formulas(full: Report) -> None:
    closes = [10_000.0, 10_200.0, 10_100.0, 10_000.0, 10_300.0, 10_300.0]
    r = [b / a - 1 for a, b in itertools.pairwise(closes)]
    assert full.daily_returns == 5
    sharpe = statistics.mean(r) / statistics.stdev(r) * math.sqrt(365)
    downside = math.sqrt(sum(min(x, 0.0) ** 2 for x in r) / len(r)) * math.sqrt(365)
    sortino = statistics.mean(r) * 365 / downside
    cagr = (10_300 / 10_000) ** (365 / 5) - 1
    calmar = cagr / (200 / 10_200)
    assert full.sharpe == pytest.approx(sharpe, rel=1e-9)
    assert full.sortino == pytest.approx(sortino, rel=1e-9)
    assert full.calmar == pytest.approx(calmar, rel=1e-9)


def test_confidence_distribution(full: Report) -> None:
    got = {(b.low, b.high): (b.trades, b.wins, b.net_pnl) for b in full.confidence}
    assert got == {
        (0.0, 50.0): (1, 0, 0.0), (50.0, 60.0): (1, 0, -100.0), (60.0, 70.0): (0, 0, 0.0),
        (70.0, 80.0): (1, 1, 200.0), (80.0, 90.0): (1, 0, -100.0), (90.0, 100.0): (1, 1, 300.0),
    }
    edge = build_report([trade(9, 0, "BTC", "A", 5.0, 0.0, 100.0, 1.0),
                         trade(8, 0, "BTC", "A", 5.0, 0.0, 50.0, 1.0)], [], 1000.0)
    assert [b.trades for b in edge.confidence] == [0, 1, 0, 0, 0, 1]


def test_breakdowns(full: Report) -> None:
    by_strategy = {g.key: g.stats for g in full.by_strategy}
    assert list(by_strategy) == ["A", "B"]
    assert (by_strategy["A"].trades, by_strategy["A"].net_pnl) == (3, 100.0)
    assert by_strategy["A"].profit_factor == pytest.approx(2.0)
    assert (by_strategy["B"].trades, by_strategy["B"].net_pnl) == (2, 200.0)
    assert by_strategy["B"].profit_factor == pytest.approx(3.0)
    by_symbol = {g.key: g.stats for g in full.by_symbol}
    assert (by_symbol["BTC"].trades, by_symbol["BTC"].net_pnl) == (3, 400.0)
    assert by_symbol["BTC"].profit_factor == pytest.approx(5.0)
    assert (by_symbol["ETH"].win_rate, by_symbol["ETH"].profit_factor) == (0.0, 0.0)


def test_period_starts_from_equity_before_it() -> None:
    period = Period(DAY0 + 2 * DAY, DAY0 + 4 * DAY - 1, "custom")
    rep = build_report(TRADES, [], 10_000.0, period)
    assert [rep.stats.trades, rep.starting_equity, rep.ending_equity] == [2, 10_100.0, 10_300.0]
    assert rep.pnl_pct == pytest.approx(200 / 10_100)
    assert rep.drawdown.max_pct == pytest.approx(100 / 10_100)
    assert rep.drawdown.peak_ms == period.start_ms
    assert rep.drawdown.recovery_ms == TRADES[3].ts_exit


def test_unrecovered_drawdown_lasts_to_period_end() -> None:
    equity = [(DAY0, 1000.0), (DAY0 + HOUR, 1100.0), (DAY0 + 2 * HOUR, 900.0),
              (DAY0 + 5 * HOUR, 950.0)]
    rep = build_report([], equity, 1000.0)
    d = rep.drawdown
    assert d.max_pct == pytest.approx(200 / 1100)
    assert (d.recovered, d.recovery_ms) == (False, None)
    assert d.duration_ms == 4 * HOUR
    # A single day of data cannot give a Sharpe ratio; it is None, not NaN.
    assert (rep.daily_returns, rep.sharpe, rep.sortino, rep.calmar) == (1, None, None, None)


def test_empty_report_is_well_defined() -> None:
    rep = build_report([], [], 5000.0, Period(DAY0, DAY0 + DAY, "day"))
    assert (rep.stats.trades, rep.stats.win_rate, rep.stats.profit_factor) == (0, None, None)
    assert (rep.best_trade, rep.pnl_abs, rep.drawdown.max_pct) == (None, 0.0, 0.0)


@pytest.mark.parametrize(
    "name, now, calendar, start",
    [
        ("day", ms(2024, 1, 3, 15, 30), True, ms(2024, 1, 3)),
        ("week", ms(2024, 1, 3, 15, 30), True, ms(2024, 1, 1)),
        ("week", ms(2024, 2, 29, 1), True, ms(2024, 2, 26)),
        ("week", ms(2024, 3, 3, 23), True, ms(2024, 2, 26)),  # a Sunday
        ("month", ms(2024, 2, 29, 1), True, ms(2024, 2, 1)),
        ("day", ms(2024, 1, 3, 15, 30), False, ms(2024, 1, 2, 15, 30)),
        ("month", ms(2024, 3, 31), False, ms(2024, 3, 1)),
        ("all", ms(2024, 3, 31), True, None),
    ],
)
def test_period_bounds(name: str, now: int, calendar: bool, start: int | None) -> None:
    assert period_bounds(name, now, calendar=calendar) == Period(start, now, name)


def test_bad_input_is_named() -> None:
    with pytest.raises(ValueError, match="unknown period 'year'"):
        period_bounds("year", DAY0)
    with pytest.raises(ValueError, match="starting_equity"):
        build_report([], [], 0.0)
    with pytest.raises(ValueError, match=r"equity\[1\].*earlier"):
        build_report([], [(DAY0 + 5, 1.0), (DAY0, 1.0)], 1.0)
    with pytest.raises(ValueError, match="before its start"):
        Period(10, 5)


ODD_NAMES = [trade(7, 0, 'BTC,"PERP"', "smc\nob, v2", -3.0, 0.5, 60.0, -0.2)]


@pytest.mark.parametrize("trades", [TRADES, [], TRADES[:1], ODD_NAMES],
                         ids=["five", "none", "no-losses", "odd-names"])
def test_json_and_csv_round_trip(trades: list[ClosedTrade]) -> None:
    rep = build_report(trades, [], 10_000.0, Period(None, DAY0 + 9 * DAY, "all"))
    assert export.from_json(export.to_json(rep)) == rep
    assert export.from_csv(export.to_csv(rep)) == rep
    json.loads(export.render(rep, "json"))  # strict JSON: no NaN or Infinity


def test_csv_is_long_format_with_readable_rows(full: Report) -> None:
    rows = export.to_csv(full).splitlines()
    assert rows[0] == "section,key,field,value"
    assert "stats,,win_rate,0.4" in rows
    assert "strategy,A,net_pnl,100.0" in rows
    assert "drawdown,,recovered,true" in rows
    with pytest.raises(ValueError, match="TradeStats.trades"):
        export.from_csv(export.to_csv(full).replace("stats,,trades,5", "stats,,trades,five"))


def test_table_shows_the_headline_figures(full: Report) -> None:
    text = export.render(full, "table")
    assert "10,000.00 -> 10,300.00" in text
    assert "Win rate" in text and "40.00%" in text
    assert "Max drawdown" in text and "1.96%" in text
    assert "3d 0h00m" in text
    with pytest.raises(ValueError, match="allowed: table, json, csv"):
        export.render(full, "xml")
