"""Multi-timeframe SMC chart: stacked candles on one time axis, the structure over them,
and what the bot did, as a PNG a trader can read at a glance.

Each panel is one timeframe (coarsest on top). Over the candles:
swing highs and lows (small triangles), BOS and CHoCH (a line from the
broken swing to the bar that broke it; CHoCH dashed), fair value gaps and
order blocks (shaded zones until mitigated), liquidity (dotted lines, a
cross where swept), and the bot's entries, exits, stops and targets.

The structure is what the daemon's live (causal) detectors reported, bar
by bar, with the swing length trading uses on each timeframe
(`fractald.reporting.live_overlays`): a chart explains a trade with what the
strategy could see then, not with hindsight. `compute_overlays` (the
offline detectors of `fractald.smc`, same API as smartmoneyconcepts 0.0.27)
stays for research plots that want the whole-frame view.

Each trade is one marker (its entry, numbered on the finest panel) linked
to its exit by a line; the numbers key a side table (id, side, entry,
exit, R, P&L). Prices are shown to the instrument's tick when it is given.
"""

from __future__ import annotations

import enum
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle

from fractald.core.models import ClosedTrade, Side, Signal, timeframe_ms
from fractald.core.strategies.base import TIMEFRAME_DEFAULTS
from fractald.price_format import price_text
from fractald.reporting.overlays import SmcOverlays
from fractald.reporting.plots import save_png, to_datenum, utc_date_axis

BULL, BEAR = "#26a69a", "#ef5350"
ZONE_FVG_BULL, ZONE_FVG_BEAR = "#7fd3a6", "#f4a3a3"
ZONE_OB_BULL, ZONE_OB_BEAR = "#4a7fd6", "#e08a2e"
LIQUIDITY, STRUCTURE = "#8e44ad", "#333333"
ENTRY, STOP, TARGET = "#1f4e8c", "#d62728", "#1b9e4b"
OHLC = ("open", "high", "low", "close", "volume")
DEFAULT_SWING_LENGTH = 8
# Bars either side that make a swing: the strategies' own per-timeframe defaults, so the chart
# draws the swings (and the structure built on them) the strategies trade on.
SWING_LENGTHS = {tf: int(d["swing_length"]) for tf, d in TIMEFRAME_DEFAULTS.items()}
DEFAULT_WINDOW_MS = 4 * 86_400_000


def smc_api() -> Any:
    """The SMC detector namespace: fractald's own, else the reference smartmoneyconcepts."""
    try:
        from fractald.smc import smc
    except ImportError:  # until fractald/smc.py lands, or in a trimmed install
        from smartmoneyconcepts import smc  # type: ignore[no-redef]
    return smc


def compute_overlays(ohlc: pd.DataFrame, swing_length: int = DEFAULT_SWING_LENGTH) -> SmcOverlays:
    smc = smc_api()
    swings = smc.swing_highs_lows(ohlc, swing_length=swing_length)
    return SmcOverlays(
        swings=swings,
        fvg=smc.fvg(ohlc),
        bos_choch=smc.bos_choch(ohlc, swings),
        ob=smc.ob(ohlc, swings),
        liquidity=smc.liquidity(ohlc, swings),
    )


def resample_ohlcv(df: pd.DataFrame, timeframe: str) -> pd.DataFrame:
    """Candles of `timeframe` from finer ones (UTC-aligned, labelled by their open time)."""
    rule = f"{timeframe_ms(timeframe) // 60_000}min"
    agg = {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}
    return df.resample(rule, label="left", closed="left").agg(agg).dropna(subset=["open"])


def frames_from(df: pd.DataFrame, timeframes: Sequence[str]) -> dict[str, pd.DataFrame]:
    return {tf: resample_ohlcv(df, tf) for tf in timeframes}


class MarkKind(enum.Enum):
    ENTRY = "entry"
    STOP = "stop"
    TARGET = "target"
    EXIT = "exit"


@attrs.frozen(slots=True)
class OrderMark:
    """An order of the bot at a price, live from `ts_ms` until `ts_end_ms` (None: still live)."""

    kind: MarkKind
    price: float
    ts_ms: int
    ts_end_ms: int | None = None
    label: str = ""


_MARK_STYLE = {
    MarkKind.ENTRY: (ENTRY, "-"),
    MarkKind.STOP: (STOP, "--"),
    MarkKind.TARGET: (TARGET, "--"),
    MarkKind.EXIT: (STRUCTURE, ":"),
}


@attrs.frozen(slots=True)
class _Panel:
    """One timeframe's frame, clipped to the window, with bar positions as x values."""

    timeframe: str
    frame: pd.DataFrame
    x: np.ndarray  # candle centres as date numbers, for every bar of the full frame
    width: float  # one bar, in days
    visible: np.ndarray  # boolean mask of bars inside the window
    x0: float
    x1: float

    def xat(self, index: float) -> float:
        i = int(index)
        return float(self.x[i]) if 0 <= i < len(self.x) else self.x1


def _panel(timeframe: str, frame: pd.DataFrame, start_ms: int, end_ms: int) -> _Panel:
    tf = timeframe_ms(timeframe)
    opens = frame.index.as_unit("ms").asi8
    x = to_datenum(opens + tf / 2)
    visible = (opens + tf > start_ms) & (opens <= end_ms)
    return _Panel(
        timeframe,
        frame,
        x,
        tf / 86_400_000,
        visible,
        float(to_datenum([start_ms])[0]),
        float(to_datenum([end_ms])[0]),
    )


def _candles(ax: Any, p: _Panel) -> None:
    f = p.frame[p.visible]
    x = p.x[p.visible]
    up = (f["close"] >= f["open"]).to_numpy()
    colours = np.where(up, BULL, BEAR)
    ax.vlines(x, f["low"], f["high"], colors=colours, linewidth=0.8, zorder=3)
    body_low = np.minimum(f["open"], f["close"]).to_numpy()
    body = np.abs(f["close"] - f["open"]).to_numpy()
    span = float(f["high"].max() - f["low"].min()) if len(f) else 0.0
    body = np.maximum(body, span * 0.002)  # a doji stays visible
    ax.bar(
        x,
        body,
        bottom=body_low,
        width=p.width * 0.7,
        color=colours,
        edgecolor=colours,
        linewidth=0.4,
        zorder=4,
    )


def _zone(
    ax: Any,
    p: _Panel,
    i: int,
    end_index: float,
    top: float,
    bottom: float,
    colour: str,
    alpha: float,
    hatch: str | None = None,
    gid: str = "",
) -> None:
    left = p.xat(i) - p.width / 2
    right = p.xat(end_index) if end_index and end_index > i else p.x1
    if right < p.x0 or left > p.x1:
        return
    ax.add_patch(
        Rectangle(
            (left, bottom),
            right - left,
            top - bottom,
            facecolor=colour,
            alpha=alpha,
            edgecolor=colour,
            linewidth=0.6,
            hatch=hatch,
            zorder=1,
            gid=gid,
        )
    )


def _gap_floor(p: _Panel) -> float:
    """Gaps thinner than this (a fifth of the median bar range) are noise on the chart."""
    ranges = (p.frame["high"] - p.frame["low"]).to_numpy()
    return float(np.median(ranges)) * 0.2 if len(ranges) else 0.0


def _fvgs(ax: Any, p: _Panel, fvg: pd.DataFrame) -> None:
    floor = _gap_floor(p)
    for i, row in fvg.dropna(subset=["FVG"]).iterrows():
        if row.Top - row.Bottom >= floor:
            colour = ZONE_FVG_BULL if row.FVG > 0 else ZONE_FVG_BEAR
            _zone(ax, p, int(i), row.MitigatedIndex, row.Top, row.Bottom, colour, 0.35, gid="fvg")


def _order_blocks(ax: Any, p: _Panel, ob: pd.DataFrame) -> None:
    for i, row in ob.dropna(subset=["OB"]).iterrows():
        colour = ZONE_OB_BULL if row.OB > 0 else ZONE_OB_BEAR
        _zone(
            ax,
            p,
            int(i),
            row.MitigatedIndex,
            row.Top,
            row.Bottom,
            colour,
            0.22,
            hatch="//",
            gid="ob_bull" if row.OB > 0 else "ob_bear",
        )


def _structure(ax: Any, p: _Panel, bos: pd.DataFrame) -> None:
    for i, row in bos.dropna(subset=["Level"]).iterrows():
        choch = not math.isnan(row.CHOCH)
        direction = row.CHOCH if choch else row.BOS
        if not row.BrokenIndex or row.BrokenIndex <= i:
            continue
        left, right = p.xat(int(i)), p.xat(row.BrokenIndex)
        if right < p.x0 or left > p.x1:
            continue
        colour = BULL if direction > 0 else BEAR
        ax.hlines(
            row.Level,
            left,
            right,
            colors=colour,
            linewidth=1.3,
            linestyles="--" if choch else "-",
            zorder=5,
            gid="choch" if choch else "bos",
        )
        ax.annotate(
            "CHoCH" if choch else "BOS",
            (max((left + right) / 2, p.x0), row.Level),
            xytext=(0, 3 if direction > 0 else -3),
            textcoords="offset points",
            ha="center",
            va="bottom" if direction > 0 else "top",
            fontsize=7.5,
            color=colour,
            fontweight="bold",
            zorder=6,
            annotation_clip=True,
        )


def _swings(ax: Any, p: _Panel, swings: pd.DataFrame) -> None:
    marked = swings.dropna(subset=["HighLow"])
    marked = marked[p.visible[marked.index.to_numpy(dtype=int)]]
    for high, marker, colour, offset in ((1, "v", BEAR, 1), (-1, "^", BULL, -1)):
        part = marked[marked.HighLow == high]
        xs = [p.x[int(i)] for i in part.index]
        if xs:
            ax.scatter(
                xs,
                part.Level,
                marker=marker,
                s=22,
                color=colour,
                edgecolors="black",
                linewidths=0.4,
                zorder=6,
                gid="swing",
            )


def _liquidity(ax: Any, p: _Panel, liq: pd.DataFrame) -> None:
    for i, row in liq.dropna(subset=["Liquidity"]).iterrows():
        swept = bool(row.Swept) and row.Swept > i
        left = p.xat(int(i))
        right = p.xat(row.Swept) if swept else p.x1
        if right < p.x0 or left > p.x1:
            continue
        ax.hlines(
            row.Level,
            left,
            right,
            colors=LIQUIDITY,
            linewidth=1.0,
            linestyles=":",
            zorder=5,
            gid="liquidity",
        )
        ax.annotate(
            "liq",
            (max(left, p.x0), row.Level),
            xytext=(2, 2),
            textcoords="offset points",
            fontsize=7,
            color=LIQUIDITY,
            zorder=6,
            annotation_clip=True,
        )
        if swept:
            ax.scatter([right], [row.Level], marker="x", s=30, color=LIQUIDITY, zorder=6)


def _trades_in_window(
    trades: Sequence[ClosedTrade], start_ms: int, end_ms: int
) -> list[ClosedTrade]:
    """The trades drawn (any part inside the window), in entry order: their number is place + 1."""
    return sorted(
        (t for t in trades if t.ts_exit >= start_ms and t.ts_entry <= end_ms),
        key=lambda t: (t.ts_entry, t.trade_id),
    )


def _trades(ax: Any, p: _Panel, trades: Sequence[ClosedTrade], numbers: bool) -> None:
    """One marker per trade: a triangle at the entry (its side), a line to the exit coloured by
    the outcome; on the finest panel (`numbers`) the trade's number, which keys the side table."""
    for n, t in enumerate(trades, 1):
        x_in, x_out = to_datenum([t.ts_entry, t.ts_exit])
        won = t.pnl > 0
        ax.plot(
            [x_in, x_out],
            [t.entry_price, t.exit_price],
            color=TARGET if won else STOP,
            linewidth=1.4,
            linestyle="-",
            marker="o",
            markevery=[1],
            markersize=3.5,
            zorder=7,
            gid="trade_line",
        )
        ax.scatter(
            [x_in],
            [t.entry_price],
            marker="^" if t.side is Side.BUY else "v",
            s=80,
            color=ENTRY,
            edgecolors="white",
            linewidths=0.8,
            zorder=8,
            gid="entry",
        )
        if numbers:
            below = t.side is Side.BUY
            ax.annotate(
                str(n),
                (x_in, t.entry_price),
                xytext=(0, -9 if below else 9),
                textcoords="offset points",
                ha="center",
                va="top" if below else "bottom",
                fontsize=7.5,
                fontweight="bold",
                color=ENTRY,
                zorder=9,
                gid="trade_number",
                annotation_clip=True,
            )


TABLE_ROWS = 40  # more would not be readable beside the panels
TRADE_COLUMNS = ("#", "id", "side", "entry", "exit", "R", "P&L")


def short_trade_id(t: ClosedTrade) -> str:
    """What finds the trade in `fractalctl trades`: its strategy and entry time (the full id,
    strategy:symbol:timeframe:side:ms, is too long for the table)."""
    return f"{t.strategy[:14]} {_utc(t.ts_entry)[5:]}"


def trade_table_rows(trades: Sequence[ClosedTrade], tick: float | None) -> list[list[str]]:
    """The side table: one row per drawn trade, numbered as on the chart."""
    rows = []
    for n, t in enumerate(trades, 1):
        rows.append(
            [
                str(n),
                short_trade_id(t),
                "LONG" if t.side is Side.BUY else "SHORT",
                price_text(t.entry_price, tick, grouping=True),
                price_text(t.exit_price, tick, grouping=True),
                f"{t.r_multiple:+.2f}",
                f"{t.pnl:+,.2f}",
            ]
        )
    return rows


def _trade_table(ax: Any, trades: Sequence[ClosedTrade], tick: float | None) -> None:
    ax.axis("off")
    ax.set_gid("trade_table")
    rows = trade_table_rows(trades, tick)
    shown = rows[:TABLE_ROWS]
    table = ax.table(
        cellText=shown, colLabels=TRADE_COLUMNS, loc="upper right", cellLoc="right", colLoc="right"
    )
    table.auto_set_font_size(False)
    table.set_fontsize(7)
    table.auto_set_column_width(list(range(len(TRADE_COLUMNS))))
    for (r, c), cell in table.get_celld().items():
        cell.set_linewidth(0.3)
        if r > 0 and c == len(TRADE_COLUMNS) - 1:  # P&L green or red, as the trade's line
            cell.get_text().set_color(TARGET if trades[r - 1].pnl > 0 else STOP)
    title = f"trades ({len(rows)})"
    if len(rows) > TABLE_ROWS:
        title += f", first {TABLE_ROWS} shown"
    ax.set_title(title, loc="left", fontsize=10, fontweight="bold")


def _trade_of(signal: Signal, trades: Sequence[ClosedTrade]) -> ClosedTrade | None:
    """The closed trade a signal became: same strategy and side, the first entry at or after it."""
    later = [
        t
        for t in trades
        if t.strategy == signal.strategy
        and t.side is signal.side
        and t.symbol == signal.symbol
        and t.ts_entry >= signal.ts_event
    ]
    return min(later, key=lambda t: t.ts_entry, default=None)


def _signal_marks(
    signals: Sequence[Signal], span_ms: int, trades: Sequence[ClosedTrade] = ()
) -> list[OrderMark]:
    """Each signal's entry, stop and targets. A signal that became a closed trade keeps only its
    stop and targets, unlabelled, until the trade's exit (the trade's marker and the side table
    say the rest); one still open keeps its labels."""
    marks = []
    for s in signals:
        traded = _trade_of(s, trades)
        end = traded.ts_exit if traded is not None else s.ts_event + span_ms
        label = traded is None
        if label:
            marks.append(
                OrderMark(MarkKind.ENTRY, s.entry, s.ts_event, end, f"{s.side.value} {s.strategy}")
            )
        marks.append(OrderMark(MarkKind.STOP, s.stop, s.ts_event, end, "SL" if label else ""))
        marks += [
            OrderMark(MarkKind.TARGET, t, s.ts_event, end, f"TP{n}" if label else "")
            for n, t in enumerate(s.targets, 1)
        ]
    return marks


def _orders(ax: Any, p: _Panel, marks: Sequence[OrderMark], labels: bool = True) -> None:
    """The bot's orders as levels; their labels only where asked (the finest panel), so that
    the same text does not pile up once per timeframe."""
    for m in marks:
        colour, style = _MARK_STYLE[m.kind]
        left = float(to_datenum([m.ts_ms])[0])
        right = float(to_datenum([m.ts_end_ms])[0]) if m.ts_end_ms is not None else p.x1
        if right < p.x0 or left > p.x1:
            continue
        ax.hlines(
            m.price,
            left,
            right,
            colors=colour,
            linewidth=1.6,
            linestyles=style,
            zorder=7,
            gid=m.kind.value,
        )
        if m.label and labels:
            ax.annotate(
                m.label,
                (min(right, p.x1), m.price),
                xytext=(-2, 1),
                textcoords="offset points",
                fontsize=7.5,
                color=colour,
                ha="right",
                va="bottom",
                fontweight="bold",
                zorder=8,
                annotation_clip=False,
                bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.75},
            )


def _price_range(
    p: _Panel, trades: Sequence[ClosedTrade], marks: Sequence[OrderMark], start_ms: int, end_ms: int
) -> tuple[float, float]:
    f = p.frame[p.visible]
    low, high = float(f["low"].min()), float(f["high"].max())
    prices = [t.entry_price for t in trades if start_ms <= t.ts_entry <= end_ms]
    prices += [t.exit_price for t in trades if start_ms <= t.ts_exit <= end_ms]
    prices += [m.price for m in marks if m.ts_ms <= end_ms and (m.ts_end_ms or end_ms) >= start_ms]
    low, high = min([low, *prices]), max([high, *prices])
    pad = (high - low) * 0.04 or high * 0.001
    return low - pad, high + pad


def _legend_handles(drawn: set[str] | None = None) -> list[Any]:
    """The legend entries, only for what is drawn (`drawn`: the gids of the drawn artists)."""
    entries = [
        ("bos", Line2D([], [], color=BULL, linewidth=1.3, label="BOS (bull / bear colour)")),
        ("choch", Line2D([], [], color=BEAR, linewidth=1.3, linestyle="--", label="CHoCH")),
        ("fvg", Patch(facecolor=ZONE_FVG_BULL, alpha=0.5, label="fair value gap")),
        (
            "ob_bull",
            Patch(facecolor=ZONE_OB_BULL, alpha=0.3, hatch="//", label="order block (bull)"),
        ),
        (
            "ob_bear",
            Patch(facecolor=ZONE_OB_BEAR, alpha=0.3, hatch="//", label="order block (bear)"),
        ),
        (
            "liquidity",
            Line2D([], [], color=LIQUIDITY, linestyle=":", label="liquidity (x = swept)"),
        ),
        (
            "swing",
            Line2D(
                [],
                [],
                marker="v",
                color=BEAR,
                linestyle="",
                markeredgecolor="black",
                label="swing high / low",
            ),
        ),
        (
            "entry",
            Line2D(
                [],
                [],
                marker="^",
                color=ENTRY,
                linestyle="",
                markersize=9,
                label="trade N: entry (long / short)",
            ),
        ),
        (
            "trade_line",
            Line2D(
                [],
                [],
                color=TARGET,
                marker="o",
                markevery=[1],
                markersize=3.5,
                label="to its exit (green win, red loss)",
            ),
        ),
        ("stop", Line2D([], [], color=STOP, linestyle="--", label="stop")),
        ("target", Line2D([], [], color=TARGET, linestyle="--", label="target")),
    ]
    return [h for key, h in entries if drawn is None or key in drawn]


def drawn_gids(fig: Figure) -> set[str]:
    """Which kinds of overlay the figure really drew (what its legend may list)."""
    return {str(a.get_gid()) for ax in fig.axes for a in ax.get_children() if a.get_gid()}


def plot_chart(
    frames: Mapping[str, pd.DataFrame], path: str | os.PathLike[str], **options: Any
) -> Path:
    """Draw the chart (see `chart_figure` for the options) and write it as a PNG to `path`."""
    return save_png(chart_figure(frames, **options), path)


def chart_figure(
    frames: Mapping[str, pd.DataFrame],
    *,
    overlays: Mapping[str, SmcOverlays] | None = None,
    trades: Sequence[ClosedTrade] = (),
    signals: Sequence[Signal] = (),
    orders: Sequence[OrderMark] = (),
    start_ms: int | None = None,
    end_ms: int | None = None,
    symbol: str = "",
    swing_length: int | Mapping[str, int] = SWING_LENGTHS,
    tick_size: float | None = None,
) -> Figure:
    """Draw `frames` (timeframe -> OHLCV DataFrame with a UTC DatetimeIndex) stacked,
    coarsest on top, over one time window.

    The window defaults to the last four days of the data. Overlays not
    given are what the live detectors (with `swing_length` for that
    timeframe) reported over each full frame, so structure that began
    before the window is still drawn. With `symbol`, trades and signals
    of other symbols are left out. With `tick_size`, prices are shown on it.
    """
    from fractald.core.smc.live import LiveSMCParams
    from fractald.reporting.live_overlays import live_overlays

    if not frames:
        raise ValueError("plot_chart needs at least one timeframe frame")
    order = sorted(frames, key=timeframe_ms, reverse=True)
    for tf in order:
        missing = [c for c in OHLC[:4] if c not in frames[tf].columns]
        if missing or frames[tf].empty:
            raise ValueError(f"frame {tf!r} is empty or lacks columns {missing}")
    last_ms = max(int(frames[tf].index[-1].value // 1_000_000) + timeframe_ms(tf) for tf in order)
    end_ms = last_ms if end_ms is None else end_ms
    start_ms = end_ms - DEFAULT_WINDOW_MS if start_ms is None else start_ms
    if end_ms <= start_ms:
        raise ValueError(f"chart window is empty: start {start_ms} >= end {end_ms}")
    if symbol:  # another symbol's prices would wreck the price axis
        trades = [t for t in trades if t.symbol == symbol]
        signals = [sg for sg in signals if sg.symbol == symbol]
    marks = list(orders) + _signal_marks(signals, (end_ms - start_ms) // 12, trades)
    drawn_trades = _trades_in_window(trades, start_ms, end_ms)

    fig = Figure(figsize=(16, 1.2 + 3.7 * len(order)), layout="constrained")
    if drawn_trades:  # panels on the left, the trade table beside them
        grid = fig.add_gridspec(len(order), 2, width_ratios=(3.8, 1.0))
        axes = [fig.add_subplot(grid[0, 0])]
        axes += [fig.add_subplot(grid[i, 0], sharex=axes[0]) for i in range(1, len(order))]
        _trade_table(fig.add_subplot(grid[:, 1]), drawn_trades, tick_size)
    else:
        axes = list(fig.subplots(len(order), 1, sharex=True, squeeze=False)[:, 0])
    for ax, tf in zip(axes, order):
        if isinstance(swing_length, Mapping):
            length = swing_length.get(tf, SWING_LENGTHS.get(tf, DEFAULT_SWING_LENGTH))
        else:
            length = swing_length
        over = (overlays or {}).get(tf) or live_overlays(
            frames[tf], tf, LiveSMCParams(swing_length=length), symbol or "CHART"
        )
        p = _panel(tf, frames[tf], start_ms, end_ms)
        if not p.visible.any():
            raise ValueError(f"frame {tf!r} has no bars inside the chart window")
        _fvgs(ax, p, over.fvg)
        _order_blocks(ax, p, over.ob)
        _candles(ax, p)
        _liquidity(ax, p, over.liquidity)
        _structure(ax, p, over.bos_choch)
        _swings(ax, p, over.swings)
        _orders(ax, p, marks, labels=tf == order[-1])
        _trades(ax, p, drawn_trades, numbers=tf == order[-1])
        ax.set_xlim(p.x0, p.x1)
        ax.set_ylim(*_price_range(p, trades, marks, start_ms, end_ms))
        ax.grid(True, alpha=0.25)
        ax.set_title(
            f"{symbol} {tf} (swing length {length})".strip(),
            loc="left",
            fontsize=11,
            fontweight="bold",
        )
        close = float(p.frame[p.visible]["close"].iloc[-1])
        close_text = price_text(close, tick_size, grouping=True) if tick_size else f"{close:,.2f}"
        ax.set_title(f"last close {close_text}", loc="right", fontsize=9)
        ax.yaxis.set_major_formatter(_price_axis_format(tick_size))
    for ax in axes[:-1]:
        ax.tick_params(labelbottom=False)
    utc_date_axis(axes[-1])
    axes[-1].set_xlabel("time (UTC)")
    handles = _legend_handles(drawn_gids(fig))
    if handles:
        fig.legend(handles=handles, loc="outside lower center", ncol=6, fontsize=8.5, frameon=False)
    # The window named is the window drawn (every panel shares it).
    fig.suptitle(
        f"{symbol + ' ' if symbol else ''}{_utc(start_ms)} .. {_utc(end_ms)} UTC",
        x=0.01,
        ha="left",
        fontsize=12,
        fontweight="bold",
    )
    return fig


def _price_axis_format(tick: float | None) -> str:
    """Axis prices with the tick's decimals (whole numbers without a tick, as for BTC)."""
    from fractald.price_format import tick_decimals

    decimals = tick_decimals(tick) if tick else 0
    return f"{{x:,.{decimals}f}}"


def _utc(ms: int) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).strftime("%Y-%m-%d %H:%M")
