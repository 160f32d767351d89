"""`fractald backtest`: drive the daemon's pipeline over candles in a plain loop and report.

The loop is what the daemon does bar by bar: each base candle goes to the
pipeline, then every higher-timeframe bar that closes with it (rolled up
from the base candles, UTC-aligned). Trades come out of the same engine
(risk, paper fills, accounting) the daemon runs, so the numbers here are
the numbers a paper replay of the same candles gives.

Walk-forward (`--walk-forward K`): the candles are cut into K equal folds
in time. Each fold is traded by a fresh pipeline and engine with the same
parameters, after warming the detectors on the fold before it without
trading (the first fold has no warm-up), so no fold's trades depend on
another's. Nothing is fitted on the earlier folds yet: this is a
stability check of fixed parameters across time, not an out-of-sample
evaluation of fitted ones.

Figures come from the run's equity curve (the engine's, marked at every
base-bar close, kept over the whole run) through `fractald.core.figures`,
the same module `fractalctl report`, the plot and the metrics use; the
JSON's "report" is the same schema as `fractalctl report --json`. The
command itself (flags in, report out) is `fractald.backtest_cli`.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import attrs

from fractald.config import Config, load_config
from fractald.core.bars import Rollups
from fractald.core.candles import Candles
from fractald.core.execution.engine import FillSource, TradingEngine
from fractald.core.execution.events import SignalDenied, TradeClosed
from fractald.core.figures import MIN_RATIO_RETURNS
from fractald.core.models import TIMEFRAME_MS, Bar, ClosedTrade
from fractald.core.pipeline import Pipeline, SetupSkipped, SignalEmitted, build_pipeline
from fractald.core.strategies.registry import SMC_STRATEGIES, STRATEGIES
from fractald.datasets import BUNDLED_SYMBOL
from fractald.pipeline_factory import confidence_model, engine_params, session_gate_of
from fractald.reporting.report import Period, Report, build_report


def add_backtest_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        metavar="PATH",
        default=None,
        help="candles: CSV, JSON or Parquet (default: the bundled BTC 1m candles)",
    )
    parser.add_argument(
        "--symbol",
        default=BUNDLED_SYMBOL,
        help=f"symbol name for the candles (default {BUNDLED_SYMBOL})",
    )
    parser.add_argument(
        "--config",
        metavar="PATH",
        default=None,
        help="TOML config: its [strategies], [risk] and [broker] are used, as the "
        "daemon uses them (default: the embedded config)",
    )
    parser.add_argument(
        "--strategy",
        action="append",
        metavar="NAME",
        default=None,
        help="strategy to run, repeatable (default: the config's enabled ones, else all of "
        f"{', '.join(sorted(STRATEGIES))})",
    )
    parser.add_argument(
        "--timeframe",
        default=None,
        help="timeframe the strategies trade on (default: the config's, else 15m)",
    )
    parser.add_argument(
        "--trend-timeframes",
        default=None,
        help="timeframes whose structure feeds the confidence (default: the "
        "config's, else 15m,1h,4h)",
    )
    parser.add_argument(
        "--from",
        dest="start",
        default=None,
        metavar="WHEN",
        help="first candle: UTC date/time (2022-01-05, 2022-01-05T12:00) or epoch ms",
    )
    parser.add_argument(
        "--to", dest="end", default=None, metavar="WHEN", help="stop before this time"
    )
    parser.add_argument(
        "--equity",
        type=float,
        default=None,
        help="starting equity (default: the config's broker.starting_equity, 10000)",
    )
    parser.add_argument(
        "--walk-forward",
        type=int,
        default=0,
        metavar="K",
        help="also trade K consecutive folds separately, same parameters (a stability "
        "check: nothing is fitted in-sample yet)",
    )
    parser.add_argument(
        "--symbols",
        default=None,
        metavar="A,B,...",
        help="several symbols from --catalog through one portfolio (shared risk and "
        "breakers); the report breaks down per symbol",
    )
    parser.add_argument(
        "--catalog",
        metavar="DIR",
        default=None,
        help="read candles from this catalog (fractald download) by --venue/--symbol/--from/--to",
    )
    parser.add_argument(
        "--venue", default="binance-futures", help="the catalog's venue (default binance-futures)"
    )
    parser.add_argument(
        "--repair",
        action="store_true",
        help="drop bad candle rows, sort the rest, keep the first of each repeated "
        "time, and print what was done (default: stop, naming each bad row)",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--plot",
        metavar="FILE.png",
        default=None,
        help="also draw the equity curve, drawdown beneath, trades marked",
    )


class BacktestError(ValueError):
    """A bad backtest request; the message says what and how to fix it."""


def parse_when(text: str | None, name: str) -> int | None:
    """UTC ISO date/time or epoch milliseconds, as epoch ms."""
    if text is None:
        return None
    if text.isdigit():
        return int(text)
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise BacktestError(f"--{name} {text!r} is neither an ISO date/time nor epoch ms") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000)


def load_bars(
    path: str | None,
    symbol: str,
    catalog: str | None = None,
    venue: str = "binance-futures",
    start: str | None = None,
    end: str | None = None,
) -> list[Bar]:
    return list(load_bar_columns(path, symbol, catalog, venue, start, end))


def load_bar_columns(
    path: str | None,
    symbol: str,
    catalog: str | None = None,
    venue: str = "binance-futures",
    start: str | None = None,
    end: str | None = None,
) -> Candles:
    """The candles a backtest asked for, as columns (bundled, a file, or the catalog's range)."""
    from fractald.venues.replay import bundled_candle_columns, load_candle_columns

    if catalog is not None:
        from fractald.research.catalog import Catalog

        if path is not None:
            raise BacktestError("give either --data or --catalog, not both")
        lo = parse_when(start, "from")
        if lo is None:
            raise BacktestError("--catalog needs --from (and optionally --to)")
        return Catalog(catalog).load_columns(venue, symbol, lo, parse_when(end, "to") or 2**62)
    return bundled_candle_columns(symbol) if path is None else load_candle_columns(path, symbol)


def load_checked_bars(path: str, symbol: str, repair: bool) -> Candles:
    """A candle file for a backtest: every bad row named; repaired (with a summary) only if asked."""
    from fractald.datasets import (
        candle_problems,
        describe_candle_problems,
        describe_repair,
        repair_candles,
    )
    from fractald.venues.replay import arrays_to_candles, read_candle_arrays

    ts, arrays = read_candle_arrays(path)
    problems = candle_problems(ts, arrays)
    if problems:
        if not repair:
            raise BacktestError(describe_candle_problems(path, problems))
        ts, arrays, summary = repair_candles(ts, arrays)
        print(f"fractald backtest: {describe_repair(path, summary)}", file=sys.stderr)
    return arrays_to_candles(ts, arrays, symbol, path)


def _select(bars: Sequence[Bar], start: int | None, end: int | None) -> Any:
    if isinstance(bars, Candles):
        return bars.between(start, end)
    return [
        b
        for b in bars
        if (start is None or b.ts_open >= start) and (end is None or b.ts_open < end)
    ]


class Runner:
    """The plain loop: base bars in, rollups out, both through one pipeline."""

    def __init__(self, pipeline: Pipeline, timeframes: Iterable[str]) -> None:
        base = pipeline.base_timeframe
        self.pipeline = pipeline
        higher = sorted(
            {tf for tf in timeframes if TIMEFRAME_MS[tf] > TIMEFRAME_MS[base]},
            key=lambda tf: TIMEFRAME_MS[tf],
        )
        self.rollups = Rollups(pipeline.symbol, higher, base)
        self.trades: list[ClosedTrade] = []
        self.signals = 0
        self.skips: Counter[str] = Counter()
        self.denials: Counter[str] = Counter()

    def step(self, bar: Bar, accepting: bool = True) -> list[Any]:
        """One base bar and the higher-timeframe bars it closes; the events, in order."""
        on_bar = self.pipeline.on_bar
        events = on_bar(bar, accepting)
        for higher in self.rollups.on_base(bar):
            events += on_bar(higher, accepting)
        return events

    def feed(self, bars: Sequence[Bar], accepting: bool = True) -> None:
        """`step` each bar, in order; quiet bars in runs.

        A base bar inside the pipeline's quiet window (nothing on the symbol
        can fill or move the equity, the breakers already checked that day)
        makes no event and changes nothing another bar's step reads before the
        next bar that is not such a one, or the higher bars it closes: those
        are gathered and handed over together (`Pipeline.on_quiet_bars`) just
        before that next bar (or those higher bars), which leaves every state
        as `step` would.
        """
        # step's body inlined, with the lookups hoisted: this loop is the backtest's hot path
        pipeline = self.pipeline
        on_bar, on_base, tally = pipeline.on_bar, self.rollups.on_base, self._tally
        absorbs, base = self.rollups.absorbs, pipeline.base_timeframe
        base_ms = TIMEFRAME_MS[base]
        window = getattr(pipeline, "quiet_window", None)
        quiet = None if window is None else window()
        run: list[Bar] = []
        for bar in bars:
            if (
                quiet is not None
                and bar.timeframe == base
                and quiet[0] <= bar.ts_open
                and bar.ts_open + base_ms < quiet[1]  # its close too
                and 0 < bar.low <= bar.high < _INF  # else stepped alone, where the venue names it
                and 0 < bar.open < _INF
                and 0 < bar.close < _INF
                and bar.volume < _INF
            ):
                run.append(bar)
                if absorbs(bar):
                    continue
                # it closes higher bars: the run (this bar its last) goes first, then those
                pipeline.on_quiet_bars(run)
                run = []
                events = []
            else:
                if run:
                    pipeline.on_quiet_bars(run)
                    run = []
                events = on_bar(bar, accepting)
            for higher in on_base(bar):
                events += on_bar(higher, accepting)
            if events:
                tally(events, accepting)
            if window is not None:
                quiet = window()
        if run:
            pipeline.on_quiet_bars(run)

    def _tally(self, events: list[Any], counting: bool) -> None:
        for e in events:
            if isinstance(e, TradeClosed):
                self.trades.append(e.trade)
            elif not counting:
                continue
            elif isinstance(e, SignalEmitted):
                self.signals += 1
            elif isinstance(e, SetupSkipped):
                self.skips[e.code] += 1
            elif isinstance(e, SignalDenied):
                self.denials[e.code.value] += 1


_INF = float("inf")


@attrs.frozen(slots=True)
class StrategySettings:
    """What the backtest trades: names, timeframe, per-strategy params (from flags, then config)."""

    names: tuple[str, ...]
    timeframe: str
    trend: tuple[str, ...]
    params: dict[str, dict[str, Any]]
    config: Config

    @classmethod
    def of(
        cls,
        names: Sequence[str],
        timeframe: str = "15m",
        trend: Sequence[str] = ("15m", "1h", "4h"),
        config: Config | None = None,
    ) -> StrategySettings:
        """Settings for code (tests, benchmarks) rather than flags; the embedded config by default."""
        return cls(tuple(names), timeframe, tuple(trend), {}, config or Config())


def settings_from(args: argparse.Namespace) -> StrategySettings:
    from fractald.strategy_plugins import load_plugins

    load_plugins()  # a broken plug-in is a ValueError naming it
    config = load_config(getattr(args, "config", None))
    cfg = config.strategies
    enabled, timeframe, params = (
        list(cfg.enabled) or list(SMC_STRATEGIES),
        cfg.timeframe,
        dict(cfg.params),
    )
    names = [n for item in (args.strategy or enabled) for n in item.split(",") if n]
    unknown = [n for n in names if n not in STRATEGIES]
    if unknown:
        raise BacktestError(
            f"unknown strategy {', '.join(unknown)}; known: {', '.join(sorted(STRATEGIES))}"
        )
    timeframe = args.timeframe or timeframe
    trend_text = args.trend_timeframes or ",".join(cfg.trend_timeframes)
    trend = [tf.strip() for tf in str(trend_text).split(",") if tf.strip()]
    for tf in [timeframe, *trend]:
        if tf not in TIMEFRAME_MS:
            raise BacktestError(f"unknown timeframe {tf!r}; allowed: {', '.join(TIMEFRAME_MS)}")
    chosen = {n: dict(params[n]) for n in names if n in params}
    return StrategySettings(tuple(names), timeframe, tuple(trend), chosen, config)


def new_runner(symbol: str, base_timeframe: str, st: StrategySettings, equity: float) -> Runner:
    """A pipeline and engine built as the daemon builds them (fractald.pipeline_factory)."""
    if TIMEFRAME_MS[st.timeframe] < TIMEFRAME_MS[base_timeframe]:
        raise BacktestError(
            f"--timeframe {st.timeframe} is shorter than the candles ({base_timeframe})"
        )
    trend = [tf for tf in st.trend if TIMEFRAME_MS[tf] >= TIMEFRAME_MS[base_timeframe]]
    params = attrs.evolve(
        engine_params(st.config),
        initial_equity=equity,
        fills_from=FillSource.BARS,
        require_feed_health=False,
    )
    pipeline = build_pipeline(
        symbol,
        TradingEngine(params),
        st.names,
        st.timeframe,
        params=st.params,
        confidence=confidence_model(st.config),
        base_timeframe=base_timeframe,
        trend_timeframes=trend,
        session_gate=session_gate_of(st.config),
    )
    return Runner(pipeline, [st.timeframe, *trend])


def _num(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), 6)


def equity_curve(runner: Runner) -> list[tuple[int, float]]:
    """The engine's equity over the run (every base-bar close, bounded: core.equity_history)."""
    engine: Any = runner.pipeline.engine  # the TradingEngine new_runner built
    return list(engine.accounting.equity_curve)


def run_report(
    runner: Runner,
    equity: float,
    start_ms: int | None = None,
    min_ratio_returns: int = MIN_RATIO_RETURNS,
) -> Report:
    """The run's performance report: the figures `fractalctl report` would give for it.

    `start_ms` leaves out a warm-up before it (its equity is flat: nothing was traded).
    """
    period = Period(start_ms, None, "run") if start_ms is not None else None
    return build_report(
        runner.trades, equity_curve(runner), equity, period, min_ratio_returns=min_ratio_returns
    )


def summarise(
    runner: Runner, bars: Sequence[Bar], equity: float, min_ratio_returns: int = MIN_RATIO_RETURNS
) -> dict[str, Any]:
    """Flat figures of the run over `bars` (fractions for every ratio: 0.05 = 5 %) plus the full report."""
    return summarise_span(
        runner,
        len(bars),
        bars[0].ts_open if bars else None,
        bars[-1].ts_event if bars else None,
        equity,
        min_ratio_returns,
    )


def summarise_span(
    runner: Runner,
    n_bars: int,
    from_ms: int | None,
    to_ms: int | None,
    equity: float,
    min_ratio_returns: int = MIN_RATIO_RETURNS,
) -> dict[str, Any]:
    """`summarise` for a run known by its bar count and time span (several symbols' series)."""
    rep = run_report(runner, equity, from_ms, min_ratio_returns)
    st = rep.stats
    engine = runner.pipeline.engine
    return {
        "bars": n_bars,
        "from_ms": from_ms,
        "to_ms": to_ms,
        "signals": runner.signals,
        "skipped": dict(sorted(runner.skips.items())),
        "denied": dict(sorted(runner.denials.items())),
        "trades": st.trades,
        "wins": st.wins,
        "losses": st.losses,
        "starting_equity": _num(rep.starting_equity),
        "ending_equity": _num(rep.ending_equity),
        "net_pnl": _num(st.net_pnl),
        "pnl_pct": _num(rep.pnl_pct),
        "fees": _num(st.fees),
        "win_rate": _num(st.win_rate),
        "profit_factor": _num(st.profit_factor),
        "expectancy": _num(st.expectancy),
        "avg_r": _num(st.avg_r),
        "sharpe": _num(rep.sharpe),
        "sortino": _num(rep.sortino),
        "calmar": _num(rep.calmar),
        "daily_returns": rep.daily_returns,
        "ratios_note": rep.ratios_note,
        "max_drawdown_pct": _num(rep.drawdown.max_pct),
        "max_drawdown_abs": _num(rep.drawdown.max_abs),
        "max_drawdown_duration_ms": rep.drawdown.duration_ms,
        "open_brackets": len(getattr(engine, "brackets", {})),
        "by_strategy": {
            g.key: {
                "trades": g.stats.trades,
                "net_pnl": _num(g.stats.net_pnl),
                "win_rate": _num(g.stats.win_rate),
                "profit_factor": _num(g.stats.profit_factor),
            }
            for g in rep.by_strategy
        },
        "report": rep.to_dict(),
    }


def _trade_row(t: ClosedTrade) -> dict[str, Any]:
    return {
        "id": t.trade_id,
        "strategy": t.strategy,
        "side": t.side.value,
        "qty": t.quantity,
        "entry": t.entry_price,
        "exit": t.exit_price,
        "ts_entry": t.ts_entry,
        "ts_exit": t.ts_exit,
        "pnl": round(t.pnl, 6),
        "r": round(t.r_multiple, 4),
        "confidence": round(t.confidence, 2),
        "exit_reason": t.exit_reason,
    }
