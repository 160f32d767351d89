"""The equity plot: rendered headless to a valid PNG, with the trades and drawdown it claims."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from fractald.core.models import ClosedTrade, Side
from fractald.datasets import bundled_btc_1m_arrays
from fractald.reporting.plots import equity_figure, plot_equity
from fractald.reporting.report import build_report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def bundled_trades() -> list[ClosedTrade]:
    """A trade every 12 hours over the bundled BTC candles, held 4 hours, alternating sides."""
    a = bundled_btc_1m_arrays()
    ts, close = a["ts_open_ms"], a["close"]
    trades = []
    for k, i in enumerate(range(0, len(ts) - 300, 720)):
        side = Side.BUY if k % 3 else Side.SELL
        entry, exit_ = float(close[i]), float(close[i + 240])
        pnl = 0.2 * (exit_ - entry) * side.sign - 2.0
        trades.append(ClosedTrade(f"T{k}", "BTC-PERP", "smc", side, 0.2, entry, exit_,
                                  int(ts[i]), int(ts[i + 240]), pnl, 2.0))
    return trades


@pytest.mark.slow  # chart rendering
def test_equity_png_is_valid_and_sized(tmp_path: Path) -> None:
    out = plot_equity([], bundled_trades(), tmp_path / "sub" / "equity.png", starting_equity=10_000.0)
    assert out.read_bytes()[:8] == PNG_SIGNATURE
    with Image.open(out) as img:
        assert img.format == "PNG" and img.size == (1320, 770)
        # Not a blank canvas: the curve, markers and drawdown fill add colour.
        assert len(img.convert("RGB").getcolors(maxcolors=1 << 16) or ()) > 50


@pytest.mark.slow  # chart rendering
def test_equity_figure_marks_every_trade_and_the_worst_drawdown() -> None:
    trades = bundled_trades()
    fig = equity_figure([], trades, starting_equity=10_000.0)
    top, bottom = fig.axes
    wins = sum(t.pnl > 0 for t in trades)
    losses = sum(t.pnl < 0 for t in trades)
    legend = [t.get_text() for t in top.get_legend().get_texts()]
    assert f"winning trade ({wins})" in legend and f"losing trade ({losses})" in legend
    plotted = sum(len(c.get_offsets()) for c in top.collections)
    assert plotted == len(trades)
    report = build_report(trades, [], 10_000.0)
    assert [t.get_text() for t in bottom.texts] == [f"{-report.drawdown.max_pct * 100:.2f}%"]
    assert f"{report.stats.trades} trades" in top.get_title(loc="left")


def test_equity_needs_data() -> None:
    with pytest.raises(ValueError, match="starting_equity"):
        equity_figure([], [])
    with pytest.raises(ValueError, match="at least 2 equity points"):
        equity_figure([(0, 1.0)], [])


@pytest.mark.slow
def test_the_full_bundled_month_is_drawn_not_its_last_week(tmp_path: Path) -> None:
    """Issue 15 item 1: the equity history covers the whole run (at a bounded size), and so does the plot."""
    import argparse

    from fractald.backtest import (
        add_backtest_arguments,
        new_runner,
        run_report,
        settings_from,
        summarise,
    )
    from fractald.reporting.plots import to_datenum
    from fractald.venues.replay import bundled_candles

    parser = argparse.ArgumentParser()
    add_backtest_arguments(parser)
    bars = bundled_candles("BTC-PERP")
    runner = new_runner("BTC-PERP", "1m", settings_from(parser.parse_args([])), 10_000.0)
    runner.feed(bars)
    history = runner.pipeline.engine.accounting.equity_curve
    assert len(bars) > 40_000 and len(history) <= 20_000 + 64  # every bar marked, a bounded part kept
    s = summarise(runner, bars, 10_000.0)
    assert s["daily_returns"] >= 30 and s["sharpe"] is not None and s["ratios_note"] is None
    fig = equity_figure(list(history), runner.trades, starting_equity=10_000.0,
                        report=run_report(runner, 10_000.0))
    top, bottom = fig.axes
    lo, hi = top.get_xlim()
    first, last = to_datenum([bars[0].ts_event, bars[-1].ts_event])
    assert lo <= first and hi >= last  # the month, end to end
    assert f"max drawdown {s['max_drawdown_pct'] * 100:.2f}%" in top.get_title(loc="left")
    assert bottom.texts[0].get_text() == f"{-s['max_drawdown_pct'] * 100:.2f}%"
    out = tmp_path / "month.png"
    fig.savefig(out, format="png")
    assert out.read_bytes()[:8] == PNG_SIGNATURE
