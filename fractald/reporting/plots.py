"""The equity curve with its drawdown beneath and the trades marked, as a PNG.

matplotlib with the Agg backend (no display needed). Figures are built
with the object API (no pyplot state), so plotting from several threads
or in a long-running daemon leaks nothing.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.dates as mdates
import matplotlib.ticker as mticker
import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from fractald.core.figures import drawdown_series, format_pct
from fractald.core.models import ClosedTrade
from fractald.reporting.report import Report, build_report, equity_from_trades

WIN, LOSS, FLAT = "#1b9e4b", "#d62728", "#7f7f7f"
EQUITY, PEAK = "#1f4e8c", "#9aa7b8"
DPI = 110


def to_datenum(ts_ms: Sequence[int] | np.ndarray) -> np.ndarray:
    """Epoch milliseconds to matplotlib date numbers (days since 1970-01-01 UTC)."""
    return np.asarray(ts_ms, dtype=float) / 86_400_000.0


def utc_date_axis(ax: object) -> None:
    locator = mdates.AutoDateLocator(tz=dt.UTC, minticks=4, maxticks=10)
    ax.xaxis.set_major_locator(locator)  # type: ignore[attr-defined]
    ax.xaxis.set_major_formatter(  # type: ignore[attr-defined]
        mdates.ConciseDateFormatter(locator, tz=dt.UTC)
    )


def save_png(fig: Figure, path: str | os.PathLike[str]) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(target, format="png", dpi=DPI)
    return target


def _headline(rep: Report) -> str:
    """The report's own figures (core.figures), so the plot and the table never disagree."""
    sharpe = "-" if rep.sharpe is None else f"{rep.sharpe:.2f}"
    return (
        f"Equity {rep.starting_equity:,.0f} \u2192 {rep.ending_equity:,.0f} "
        f"({format_pct(rep.pnl_pct, sign=True)})   {rep.stats.trades} trades, win rate "
        f"{format_pct(rep.stats.win_rate, 0)}   max drawdown {format_pct(rep.drawdown.max_pct)}"
        f"   Sharpe {sharpe}"
    )


def plot_equity(
    equity: Sequence[tuple[int, float]],
    trades: Sequence[ClosedTrade],
    path: str | os.PathLike[str],
    *,
    starting_equity: float | None = None,
    title: str = "fractald equity",
    report: Report | None = None,
) -> Path:
    """Draw the equity figure (see `equity_figure`) and write it as a PNG to `path`."""
    return save_png(
        equity_figure(equity, trades, starting_equity=starting_equity, title=title, report=report),
        path,
    )


def equity_figure(
    equity: Sequence[tuple[int, float]],
    trades: Sequence[ClosedTrade],
    *,
    starting_equity: float | None = None,
    title: str = "fractald equity",
    report: Report | None = None,
) -> Figure:
    """The equity curve, its running peak, trade exits (green win, red loss) and the
    drawdown (percent below the peak) underneath.

    `equity` is (ts_ms, equity) in time order; when empty, the realised
    curve from `trades` and `starting_equity` is drawn instead. The
    headline shows `report`'s figures (default: the report of what is
    drawn); the drawdown pane is `core.figures.drawdown_series`, so its
    deepest point is the report's maximum drawdown.
    """
    curve = list(equity)
    if not curve:
        if starting_equity is None:
            raise ValueError("plot_equity needs an equity curve or a starting_equity to build one")
        first = min((t.ts_entry for t in trades), default=0)
        curve = [(first, starting_equity)] + equity_from_trades(trades, starting_equity)
    if len(curve) < 2:
        raise ValueError(f"plot_equity needs at least 2 equity points, got {len(curve)}")
    ts = np.array([p[0] for p in curve], dtype=np.int64)
    values = np.array([p[1] for p in curve], dtype=float)
    x = to_datenum(ts)
    peak = np.maximum.accumulate(values)
    drawdown = -drawdown_series(values) * 100.0
    if report is None:
        report = build_report(trades, curve, float(values[0]))

    fig = Figure(figsize=(12, 7), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    top.plot(x, values, color=EQUITY, linewidth=1.6, label="equity", zorder=3)
    top.plot(x, peak, color=PEAK, linewidth=0.9, linestyle="--", label="running peak", zorder=2)
    _mark_trades(top, trades, ts, values)
    top.set_ylabel("equity")
    top.grid(True, alpha=0.3)
    top.yaxis.set_major_formatter(mticker.StrMethodFormatter("{x:,.0f}"))
    top.set_title(_headline(report), fontsize=11, loc="left")
    fig.suptitle(title, fontsize=14, fontweight="bold", x=0.01, ha="left")

    bottom.fill_between(x, drawdown, 0, color=LOSS, alpha=0.35, linewidth=0)
    bottom.plot(x, drawdown, color=LOSS, linewidth=0.9)
    worst = int(np.argmin(drawdown))
    if drawdown[worst] < 0:
        bottom.annotate(
            f"{drawdown[worst]:.2f}%",
            (x[worst], drawdown[worst]),
            xytext=(6, -2),
            textcoords="offset points",
            fontsize=9,
            color=LOSS,
            va="top",
        )
        bottom.set_ylim(drawdown[worst] * 1.35, 0)
    else:
        bottom.set_ylim(-1, 0)
    bottom.set_ylabel("drawdown %")
    bottom.grid(True, alpha=0.3)
    utc_date_axis(bottom)
    bottom.set_xlabel("time (UTC)")
    return fig


def _mark_trades(
    ax: object, trades: Sequence[ClosedTrade], ts: np.ndarray, values: np.ndarray
) -> None:
    """Each trade's exit sits on the curve where it was realised: triangles up for wins."""
    groups = {WIN: [], LOSS: [], FLAT: []}  # type: dict[str, list[tuple[float, float]]]
    for t in trades:
        i = int(np.searchsorted(ts, t.ts_exit, side="right")) - 1
        y = values[max(i, 0)]
        colour = WIN if t.pnl > 0 else LOSS if t.pnl < 0 else FLAT
        groups[colour].append((to_datenum([t.ts_exit])[0], y))
    markers = {WIN: "^", LOSS: "v", FLAT: "o"}
    names = {WIN: "winning trade", LOSS: "losing trade", FLAT: "flat trade"}
    handles = [
        Line2D([], [], color=EQUITY, linewidth=1.6, label="equity"),
        Line2D([], [], color=PEAK, linewidth=0.9, linestyle="--", label="running peak"),
    ]
    for colour, points in groups.items():
        if not points:
            continue
        xs, ys = zip(*points)
        ax.scatter(  # type: ignore[attr-defined]
            xs,
            ys,
            marker=markers[colour],
            s=46,
            color=colour,
            edgecolors="white",
            linewidths=0.6,
            zorder=4,
        )
        handles.append(
            Line2D(
                [],
                [],
                marker=markers[colour],
                color=colour,
                linestyle="",
                markersize=7,
                label=f"{names[colour]} ({len(points)})",
            )
        )
    ax.legend(handles=handles, loc="upper left", fontsize=9, framealpha=0.85)  # type: ignore[attr-defined]
