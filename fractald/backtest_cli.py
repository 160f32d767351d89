"""`fractald backtest`: the command around the backtest loop (`fractald.backtest`).

Reads the candles the flags name, runs them through a `Runner` (or, with
`--symbols`, through one portfolio: `fractald.backtest_portfolio`), adds the
walk-forward folds, and prints the report as a table or JSON. Kept apart
from the loop so that the loop and the portfolio runner, which builds on
it, import in one direction only.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from fractald.backtest import (
    BacktestError,
    Runner,
    StrategySettings,
    _select,
    _trade_row,
    add_backtest_arguments,
    equity_curve,
    load_bar_columns,
    load_checked_bars,
    new_runner,
    parse_when,
    run_report,
    settings_from,
    summarise,
)
from fractald.core.figures import format_pct
from fractald.core.models import Bar
from fractald.reporting.report import Report


def run_backtest(args: argparse.Namespace) -> dict[str, Any]:
    """Run the backtest `args` describe (see add_backtest_arguments) and return the report."""
    if args.walk_forward < 0 or args.walk_forward == 1:
        raise BacktestError(
            f"--walk-forward must be 0 (off) or at least 2 folds, got {args.walk_forward}"
        )
    st = settings_from(args)
    if args.equity is None:
        args.equity = st.config.broker.starting_equity
    if not (math.isfinite(args.equity) and args.equity > 0):
        raise BacktestError(f"--equity must be a positive number, got {args.equity}")
    if getattr(args, "symbols", None):
        from fractald.backtest_portfolio import run_portfolio_args

        return run_portfolio_args(args, st)
    loaded = (
        load_checked_bars(args.data, args.symbol, getattr(args, "repair", False))
        if args.data is not None and getattr(args, "catalog", None) is None
        else load_bar_columns(
            args.data,
            args.symbol,
            getattr(args, "catalog", None),
            getattr(args, "venue", "binance-futures"),
            args.start,
            args.end,
        )
    )
    bars = _select(loaded, parse_when(args.start, "from"), parse_when(args.end, "to"))
    if not bars:
        raise BacktestError("no candles in the chosen range")
    base = bars[0].timeframe
    report: dict[str, Any] = {
        "data": args.data or "bundled",
        "symbol": args.symbol,
        "base_timeframe": base,
        "timeframe": st.timeframe,
        "trend_timeframes": list(st.trend),
        "strategies": list(st.names),
        "params": st.params,
        "equity": args.equity,
    }
    folds = args.walk_forward or 0
    # the run, then each fold and its warm-up (the fold before it)
    work = len(bars) + (2 * len(bars) - len(bars) // folds if folds else 0)
    progress = _progress(args, work)
    runner = new_runner(args.symbol, base, st, args.equity)
    _feed(runner, bars, progress)
    report["summary"] = summarise(runner, bars, args.equity)
    report["trade_list"] = [_trade_row(t) for t in runner.trades]
    if getattr(args, "plot", None):
        report["plot"] = str(_plot(runner, args.equity, args.plot))
    if args.walk_forward:
        report["folds"] = walk_forward(
            bars, args.walk_forward, st, args.equity, args.symbol, progress
        )
    if progress is not None:
        progress.finish()
    return report


PROGRESS_CHUNK = 2_000  # bars between progress updates (feeding in chunks changes nothing)


def _progress(args: argparse.Namespace, total: int) -> Any:
    """A progress display on stderr when the command line asked for one (`backtest_command` does)."""
    if not getattr(args, "progress", False):
        return None
    from fractald.reporting.progress import Progress

    return Progress(total, "backtest", sys.stderr)


def _feed(runner: Runner, bars: Sequence[Bar], progress: Any, accepting: bool = True) -> None:
    if progress is None:
        runner.feed(bars, accepting)
        return
    for lo in range(0, len(bars), PROGRESS_CHUNK):
        chunk = bars[lo : lo + PROGRESS_CHUNK]
        runner.feed(chunk, accepting)
        progress.advance(len(chunk))


def _plot(runner: Runner, equity: float, path: str) -> Any:
    """The run's equity curve, drawn with the report's own figures in its headline."""
    from fractald.reporting.plots import plot_equity

    return plot_equity(
        equity_curve(runner),
        runner.trades,
        path,
        starting_equity=equity,
        report=run_report(runner, equity),
        title="fractald backtest equity",
    )


def walk_forward(
    bars: Sequence[Bar],
    k: int,
    st: StrategySettings,
    equity: float,
    symbol: str,
    progress: Any = None,
) -> list[dict[str, Any]]:
    size = len(bars) // k
    if size < 2:
        raise BacktestError(f"{len(bars)} candles are too few for {k} folds")
    folds = []
    for i in range(k):
        lo, hi = i * size, (len(bars) if i == k - 1 else (i + 1) * size)
        runner = new_runner(symbol, bars[0].timeframe, st, equity)
        warm = bars[max(0, lo - size) : lo]
        _feed(runner, warm, progress, accepting=False)
        runner.trades.clear()  # a trade opened during warm-up cannot exist: nothing was sent
        _feed(runner, bars[lo:hi], progress)
        folds.append(
            {"fold": i + 1, "warmup_bars": len(warm), **summarise(runner, bars[lo:hi], equity)}
        )
    return folds


def _when(ms: int | None) -> str:
    return "-" if ms is None else datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M")


def _counts(counter: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counter.items()) or "none"


def format_report(report: dict[str, Any]) -> str:
    """The backtest for people: what ran, then the same table `fractalctl report` prints."""
    from fractald.reporting.export import to_table

    s = report["summary"]
    lines = [
        (
            f"backtest {report['symbol']} ({report['data']} {report['base_timeframe']} candles) "
            f"{_when(s['from_ms'])} .. {_when(s['to_ms'])}, {s['bars']:,} bars"
        ),
        (
            f"strategies {', '.join(report['strategies'])} on {report['timeframe']}; trend "
            f"{','.join(report['trend_timeframes'])}; starting equity {report['equity']:,.2f}"
        ),
        (
            f"signals {s['signals']}; skipped: {_counts(s['skipped'])}; denied: {_counts(s['denied'])}"
            f"; brackets still open at the end {s['open_brackets']}"
        ),
        "equity marked at every base-bar close (breakers also watch intrabar prices)",
        "",
    ]
    lines.append(to_table(Report.from_dict(s["report"])).rstrip("\n"))
    folds = report.get("folds", [])
    if folds:
        lines += [
            "",
            "Walk-forward folds (same parameters in every fold; nothing fitted in-sample)",
        ]
        rows = [
            [
                str(f["fold"]),
                f"{_when(f['from_ms'])} .. {_when(f['to_ms'])}",
                str(f["trades"]),
                format_pct(f["pnl_pct"], sign=True),
                format_pct(f["win_rate"], 1),
                _ratio(f["profit_factor"]),
                _ratio(f["sharpe"]),
                format_pct(f["max_drawdown_pct"]),
            ]
            for f in folds
        ]
        lines += _grid(
            ["fold", "window (UTC)", "trades", "return", "win rate", "PF", "Sharpe", "max DD"], rows
        )
    if report.get("plot"):
        lines += ["", f"wrote {report['plot']}"]
    return "\n".join(lines)


def _ratio(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def _grid(headers: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    fmt = "  ".join(f"{{:<{w}}}" if i < 2 else f"{{:>{w}}}" for i, w in enumerate(widths))
    return [fmt.format(*headers)] + [fmt.format(*r) for r in rows]


def backtest_command(args: argparse.Namespace) -> int:
    """`fractald backtest`: run, print the report (table or --json); exit status 2 on a bad request."""
    from fractald.errors import ConfigError

    if not hasattr(args, "progress"):
        args.progress = True  # people running the command see the work move (stderr)
    try:
        report = run_backtest(args)
    except (
        ValueError,
        ConfigError,
    ) as exc:  # bad flags, file, params or config: all name the problem
        print(f"fractald backtest: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    if args.json and report.get("plot"):
        print(f"wrote {report['plot']}", file=sys.stderr)  # stdout stays one JSON document
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fractald backtest", description=__doc__.splitlines()[0])
    add_backtest_arguments(parser)
    return backtest_command(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
