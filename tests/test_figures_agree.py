"""The same run gives the same figures in the backtest, the report, the metrics and the plot (issue 15)."""

from __future__ import annotations

import argparse

import pytest

from fractald.backtest import (
    add_backtest_arguments,
    new_runner,
    run_report,
    settings_from,
    summarise,
)
from fractald.core.figures import format_pct
from fractald.read_model import current_curve
from fractald.reporting.plots import equity_figure
from fractald.reporting.report import build_report, max_drawdown_of
from fractald.venues.replay import bundled_candles


@pytest.fixture(scope="module")
def run() -> tuple:
    parser = argparse.ArgumentParser()
    add_backtest_arguments(parser)
    st = settings_from(parser.parse_args([]))
    bars = bundled_candles("BTC-PERP")[: 6 * 1440]
    runner = new_runner("BTC-PERP", "1m", st, 10_000.0)
    runner.feed(bars)
    return runner, bars


def test_backtest_report_metrics_and_plot_agree(run: tuple) -> None:
    runner, bars = run
    engine = runner.pipeline.engine
    summary = summarise(runner, bars, 10_000.0)
    # what `fractalctl report` computes from a daemon holding this engine
    daemon_view = build_report(runner.trades, current_curve(engine), engine.accounting.initial_equity)
    assert runner.trades and daemon_view.drawdown.max_pct > 0
    assert summary["max_drawdown_pct"] == pytest.approx(daemon_view.drawdown.max_pct, abs=1e-6)
    assert summary["pnl_pct"] == pytest.approx(daemon_view.pnl_pct, abs=1e-6)
    assert summary["report"]["drawdown"] == daemon_view.to_dict()["drawdown"]
    # the metrics' deepest drawdown
    metrics_dd = max_drawdown_of(current_curve(engine), engine.accounting.initial_equity).max_pct
    assert metrics_dd == daemon_view.drawdown.max_pct
    # the plot's headline and its drawdown pane
    rep = run_report(runner, 10_000.0)
    fig = equity_figure(current_curve(engine), runner.trades, starting_equity=10_000.0, report=rep)
    top, bottom = fig.axes
    assert format_pct(rep.drawdown.max_pct) in top.get_title(loc="left")
    assert format_pct(rep.pnl_pct, sign=True) in top.get_title(loc="left")
    assert bottom.texts[0].get_text() == f"{-rep.drawdown.max_pct * 100:.2f}%"


def test_the_backtest_covers_the_whole_run_not_its_last_points(run: tuple) -> None:
    runner, bars = run
    curve = current_curve(runner.pipeline.engine)
    assert curve[0][0] == bars[0].ts_event and curve[-1][0] == bars[-1].ts_event
    summary = summarise(runner, bars, 10_000.0)
    assert summary["starting_equity"] == 10_000.0
    assert summary["ratios_note"] == "ratios need at least 20 daily returns; this period has 7"  # the last close (00:00) opens day 7
    assert summary["sharpe"] is None
