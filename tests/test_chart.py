"""The multi-timeframe SMC chart from the bundled candles: a valid PNG that shows the structure."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from matplotlib.patches import Rectangle
from PIL import Image

from fractald.core.models import ClosedTrade, Side, Signal
from fractald.datasets import bundled_btc_1m
from fractald.reporting import chart

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def frames() -> dict[str, pd.DataFrame]:
    return chart.frames_from(bundled_btc_1m(), ["15m", "4h", "1h"])


def bar_ms(frame: pd.DataFrame, i: int) -> int:
    return int(frame.index[i].value // 1_000_000)


def sample_trades(m15: pd.DataFrame) -> list[ClosedTrade]:
    n = len(m15)
    a, b = n - 300, n - 260
    entry, exit_ = float(m15["close"].iloc[a]), float(m15["close"].iloc[b])
    return [ClosedTrade("T1", "BTC-PERP", "smc_ob", Side.BUY, 0.1, entry, exit_, bar_ms(m15, a),
                        bar_ms(m15, b), (exit_ - entry) * 0.1, 1.0, 72.0, 1.0)]


def test_resample_matches_the_minutes(frames: dict[str, pd.DataFrame]) -> None:
    minutes = bundled_btc_1m()
    h4 = frames["4h"]
    first = h4.index[1]
    inside = minutes[(minutes.index >= first) & (minutes.index < first + pd.Timedelta(hours=4))]
    assert h4.loc[first, "open"] == inside["open"].iloc[0]
    assert h4.loc[first, "high"] == inside["high"].max()
    assert h4.loc[first, "low"] == inside["low"].min()
    assert h4.loc[first, "close"] == inside["close"].iloc[-1]
    assert h4.loc[first, "volume"] == pytest.approx(inside["volume"].sum())
    assert (h4.index.hour % 4 == 0).all()


@pytest.mark.slow  # chart rendering
def test_chart_png_from_bundled_candles(tmp_path: Path, frames: dict[str, pd.DataFrame]) -> None:
    m15 = frames["15m"]
    out = chart.plot_chart(frames, tmp_path / "chart.png", trades=sample_trades(m15),
                           symbol="BTC-PERP")
    assert out.read_bytes()[:8] == PNG_SIGNATURE
    with Image.open(out) as img:
        width, height = img.size
        assert img.format == "PNG" and width == 1760 and 1200 <= height <= 1500
        assert len(img.convert("RGB").getcolors(maxcolors=1 << 16) or ()) > 100


@pytest.mark.slow  # chart rendering
def test_chart_draws_structure_trades_and_signals(frames: dict[str, pd.DataFrame]) -> None:
    m15 = frames["15m"]
    entry = float(m15["close"].iloc[-40])
    signal = Signal("BTC-PERP", Side.BUY, entry, entry * 0.99, (entry * 1.01, entry * 1.02), 80.0,
                    "smc_ob", "15m", bar_ms(m15, len(m15) - 40))
    stop = chart.OrderMark(chart.MarkKind.STOP, entry * 0.985, bar_ms(m15, len(m15) - 30),
                           label="SL order")
    eth = ClosedTrade("E1", "ETH-PERP", "smc_ob", Side.BUY, 1.0, 2500.0, 2600.0, bar_ms(m15, 10),
                      bar_ms(m15, len(m15) - 5), 100.0, 1.0)
    fig = chart.chart_figure(frames, trades=[*sample_trades(m15), eth], signals=[signal],
                             orders=[stop], symbol="BTC-PERP")
    *axes, table = fig.axes
    assert [ax.get_title(loc="left") for ax in axes] == [
        "BTC-PERP 4h (swing length 3)", "BTC-PERP 1h (swing length 5)",
        "BTC-PERP 15m (swing length 6)"]  # the strategies' own per-timeframe swing lengths
    assert table.get_gid() == "trade_table" and table.get_title(loc="left") == "trades (1)"
    assert len({ax.get_xlim() for ax in axes}) == 1  # one shared time window
    low = axes[2]
    zones = [p for p in low.patches if isinstance(p, Rectangle) and p.get_alpha() is not None]
    assert len(zones) >= 5  # fair value gaps and order blocks over the last four days
    labels = {t.get_text() for t in low.texts}
    assert {"BOS", "CHoCH", "liq", "SL", "TP1", "TP2", "SL order"} <= labels
    # The panel's price range holds the signal's stop and targets.
    y0, y1 = low.get_ylim()
    assert y0 < entry * 0.99 and entry * 1.02 < y1
    assert y0 > 3000  # the ETH trade is not drawn on the BTC chart


@pytest.mark.slow  # chart rendering
def test_chart_uses_given_overlays_and_window(frames: dict[str, pd.DataFrame]) -> None:
    h1 = frames["1h"]
    over = chart.compute_overlays(h1, swing_length=5)
    assert set(over.swings.columns) == {"HighLow", "Level"}
    start, end = bar_ms(h1, 100), bar_ms(h1, 200)
    fig = chart.chart_figure({"1h": h1}, overlays={"1h": over}, start_ms=start, end_ms=end)
    x0, x1 = fig.axes[0].get_xlim()
    assert (x0, x1) == pytest.approx((start / 86_400_000, end / 86_400_000))


def test_chart_rejects_bad_frames(frames: dict[str, pd.DataFrame]) -> None:
    with pytest.raises(ValueError, match="at least one timeframe"):
        chart.chart_figure({})
    with pytest.raises(ValueError, match="lacks columns \\['close'\\]"):
        chart.chart_figure({"1h": frames["1h"].drop(columns=["close"])})
    with pytest.raises(ValueError, match="unknown timeframe '7m'"):
        chart.chart_figure({"7m": frames["1h"]})
    with pytest.raises(ValueError, match="no bars inside"):
        chart.chart_figure({"1h": frames["1h"]}, start_ms=0, end_ms=1000)


def test_smc_adapter_prefers_fractald_and_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from smartmoneyconcepts import smc as reference

    try:
        from fractald.smc import smc as ours
    except ImportError:
        ours = reference
    assert chart.smc_api() is ours
    monkeypatch.setitem(sys.modules, "fractald.smc", None)  # as if the module were absent
    assert chart.smc_api() is reference


@pytest.mark.slow  # over a second: out of the fast suite (issue 16)
def test_legend_lists_only_what_is_drawn_and_the_title_names_the_window(
        frames: dict[str, pd.DataFrame]) -> None:
    h1 = frames["1h"]
    start, end = bar_ms(h1, 100), bar_ms(h1, 200)
    bare = chart.chart_figure({"1h": h1}, start_ms=start, end_ms=end, symbol="BTC-PERP")
    names = {t.get_text() for legend in bare.legends for t in legend.get_texts()}
    assert "entry" not in names and "stop" not in names  # no trade, no order: not in the legend
    assert names <= {"BOS (bull / bear colour)", "CHoCH", "fair value gap", "order block (bull)",
                     "order block (bear)", "liquidity (x = swept)", "swing high / low"}
    assert "swing high / low" in names
    title = bare._suptitle.get_text()
    assert title == (f"BTC-PERP {pd.Timestamp(start, unit='ms'):%Y-%m-%d %H:%M} .. "
                     f"{pd.Timestamp(end, unit='ms'):%Y-%m-%d %H:%M} UTC")
    m15 = frames["15m"]
    traded = chart.chart_figure(frames, trades=sample_trades(m15), symbol="BTC-PERP")
    names = {t.get_text() for legend in traded.legends for t in legend.get_texts()}
    assert {"trade N: entry (long / short)", "to its exit (green win, red loss)"} <= names
    # order labels once, on the finest panel, not once per timeframe
    signal = Signal("BTC-PERP", Side.BUY, float(m15["close"].iloc[-40]), float(m15["close"].iloc[-40]) * 0.99,
                    (float(m15["close"].iloc[-40]) * 1.01,), 80.0, "smc_ob", "15m", bar_ms(m15, len(m15) - 40))
    fig = chart.chart_figure(frames, signals=[signal], symbol="BTC-PERP")
    assert [sum(t.get_text() == "SL" for t in ax.texts) for ax in fig.axes] == [0, 0, 1]
