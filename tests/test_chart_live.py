"""The chart draws what the live (causal) detectors reported, with the daemon's swing lengths,
and each trade as one numbered marker keyed to a side table."""

from __future__ import annotations

import argparse

import matplotlib.dates as mdates
import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import LineCollection, PathCollection

from fractald.config import config_from_dict
from fractald.core.models import ClosedTrade, Side, Signal
from fractald.core.smc.live import LiveSMCParams, StructureBreak, SwingPoint
from fractald.datasets import bundled_btc_1m
from fractald.reporting import chart
from fractald.reporting.chart_cli import parse_swing_length_option
from fractald.reporting.live_overlays import chart_settings, live_events, live_overlays
from fractald.swing_lengths import parse_swing_lengths


@pytest.fixture(scope="module")
def h1() -> pd.DataFrame:
    return chart.frames_from(bundled_btc_1m(), ["1h"])["1h"]


def bar_ms(frame: pd.DataFrame, i: int) -> int:
    return int(frame.index[i].value // 1_000_000)


def bar_at(frame: pd.DataFrame, x: float) -> int:
    """The bar whose centre is drawn at date number `x`."""
    centres = mdates.date2num(frame.index + pd.Timedelta(minutes=30))
    i = int(np.argmin(np.abs(centres - x)))
    assert abs(centres[i] - x) < 1e-6, "a drawn structure ends between bars"
    return i


def test_every_drawn_break_and_swing_is_in_the_live_output_at_that_bar(h1: pd.DataFrame) -> None:
    start, end = bar_ms(h1, 300), bar_ms(h1, 500)
    fig = chart.chart_figure({"1h": h1}, start_ms=start, end_ms=end, swing_length={"1h": 4})
    per_bar = live_events(h1, "1h", LiveSMCParams(swing_length=4))
    ax = fig.axes[0]
    lines = [c for c in ax.collections if isinstance(c, LineCollection)
             and c.get_gid() in ("bos", "choch")]
    assert len(lines) >= 5
    for line in lines:
        (x0, level), (x1, level_end) = line.get_segments()[0]
        assert level == level_end
        broken, swing = bar_at(h1, x1), bar_at(h1, x0)
        # the live detectors reported this break (that swing, that level, broken at the bar the
        # line ends on, that kind) at the close of some bar: what a strategy saw from then on
        reported = [(at, e) for at, events in enumerate(per_bar) for e in events
                    if isinstance(e, StructureBreak) and e.level == level and e.index == swing
                    and e.broken_index == broken]
        assert len(reported) == 1
        at, event = reported[0]
        assert event.kind.value.lower() == line.get_gid() and at == event.known_index >= broken
    swings = [c for c in ax.collections if isinstance(c, PathCollection) and c.get_gid() == "swing"]
    points = [tuple(xy) for c in swings for xy in c.get_offsets()]
    assert len(points) >= 10
    known = {(e.index, e.level): e for bar in per_bar for e in bar if isinstance(e, SwingPoint)}
    for x, level in points:
        event = known[(bar_at(h1, x), level)]
        assert event.known_index >= event.index + 4  # learnt swing_length bars after its bar


def test_live_structure_differs_from_hindsight(h1: pd.DataFrame) -> None:
    live = live_overlays(h1, "1h", LiveSMCParams(swing_length=5))
    offline = chart.compute_overlays(h1, swing_length=5)
    live_swings = set(live.swings.dropna().index)
    assert live_swings and live_swings != set(offline.swings.dropna().index)
    # live never draws a swing in the last swing_length bars: it could not know it yet
    assert max(live_swings) < len(h1) - 5


def test_swing_lengths_come_from_the_config_and_options() -> None:
    lengths, tick = chart_settings(config_from_dict({}), "BTC-PERP")
    assert (lengths["4h"], lengths["1h"], lengths["15m"]) == (3, 5, 6)
    tuned = config_from_dict({"strategies": {"params": {"liquidity_sweep": {"swing_length": 4}}}})
    assert chart_settings(tuned, "BTC-PERP")[0]["15m"] == 4  # the strategy's own, on its timeframe
    assert tick > 0
    assert parse_swing_lengths(" 15m=4, 1h=7 ") == {"15m": 4, "1h": 7}
    for bad, words in (("15m", "TIMEFRAME=N"), ("7m=3", "TIMEFRAME=N"), ("1h=0", "1..500"),
                       ("1h=x", "1..500"), (",", "none given")):
        with pytest.raises(ValueError, match=words):
            parse_swing_lengths(bad)
    with pytest.raises(argparse.ArgumentTypeError, match="1..500"):
        parse_swing_length_option("1h=900")


def test_one_numbered_marker_per_trade_and_a_side_table(h1: pd.DataFrame) -> None:
    n = len(h1)
    trades = []
    for k, (a, b, side) in enumerate([(n - 80, n - 70, Side.BUY), (n - 50, n - 30, Side.SELL)]):
        entry, exit_ = float(h1["close"].iloc[a]) + 0.04, float(h1["close"].iloc[b])
        pnl = (exit_ - entry) * side.sign
        trades.append(ClosedTrade(f"T{k}", "BTC-PERP", "fvg_fill", side, 1.0, entry, exit_,
                                  bar_ms(h1, a), bar_ms(h1, b), pnl, 0.5, 60.0, pnl / 100))
    # the signal of the first trade: its stop and target end at the exit, unlabelled
    s = trades[0]
    signal = Signal("BTC-PERP", Side.BUY, s.entry_price, s.entry_price * 0.99,
                    (s.entry_price * 1.02,), 70.0, "fvg_fill", "1h", s.ts_entry - 3_600_000)
    fig = chart.chart_figure({"4h": chart.resample_ohlcv(h1, "4h"), "1h": h1}, trades=trades,
                             signals=[signal], tick_size=0.5, start_ms=bar_ms(h1, n - 100))
    *panels, table = fig.axes
    for ax in panels:
        entries = [c for c in ax.collections if c.get_gid() == "entry"]
        assert len(entries) == 2  # one marker per trade, no separate exit marker
        assert not {t.get_text() for t in ax.texts} & {"SL", "TP1"}
    assert [t.get_text() for t in panels[-1].texts if t.get_gid() == "trade_number"] == ["1", "2"]
    assert not [t for t in panels[0].texts if t.get_gid() == "trade_number"]
    cells = table.tables[0].get_celld()
    header = [cells[0, c].get_text().get_text() for c in range(7)]
    assert header == ["#", "id", "side", "entry", "exit", "R", "P&L"]
    row = [cells[1, c].get_text().get_text() for c in range(7)]
    assert row[0] == "1" and row[1].startswith("fvg_fill ") and row[2] == "LONG"
    assert row[3] == f"{round(trades[0].entry_price * 2) / 2:,.1f}"  # on the 0.5 tick
    assert cells[2, 2].get_text().get_text() == "SHORT"
