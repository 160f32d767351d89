"""Multi-symbol backtests: several symbols through one portfolio, as the daemon trades them.

One engine (one account: heat, exposure and correlation caps, breakers) and one
pipeline per symbol, exactly what `pipeline_factory` builds for a daemon with
several `[feed] symbols`. The symbols' base candles are merged in time order
(ties in symbol order), each goes to its own pipeline and rollups, and every
event is tallied once. The report is the usual one plus a breakdown per symbol.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from fractald.backtest import BacktestError, Runner, StrategySettings, _num, summarise_span
from fractald.core.execution.engine import FillSource, TradingEngine
from fractald.core.execution.paper_venue import paper_venue_for
from fractald.core.models import TIMEFRAME_MS, Bar, ClosedTrade
from fractald.core.pipeline import build_pipeline
from fractald.pipeline_factory import confidence_model, engine_params, session_gate_of
from fractald.reporting.report import build_report


class PortfolioRunner:
    """A Runner per symbol around one shared engine; `feed` takes every symbol's bars at once."""

    def __init__(
        self, symbols: Sequence[str], base_timeframe: str, st: StrategySettings, equity: float
    ) -> None:
        if len(set(symbols)) != len(symbols) or not symbols:
            raise BacktestError(f"--symbols needs distinct symbols, got {list(symbols)}")
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
        engine = TradingEngine(params)
        venue = paper_venue_for(engine)  # one account: one paper venue for every symbol
        gate = session_gate_of(st.config)
        self.runners = {
            s: Runner(
                build_pipeline(
                    s,
                    engine,
                    st.names,
                    st.timeframe,
                    params=st.params,
                    confidence=confidence_model(st.config),
                    base_timeframe=base_timeframe,
                    trend_timeframes=trend,
                    session_gate=gate,
                    venue=venue,
                ),
                [st.timeframe, *trend],
            )
            for s in symbols
        }
        self.symbols = tuple(symbols)
        first = self.runners[self.symbols[0]]
        self.pipeline = first.pipeline  # for what summarise reads: the shared engine
        self.trades: list[ClosedTrade] = []
        self.signals = 0
        self.skips: Counter[str] = Counter()
        self.denials: Counter[str] = Counter()

    def feed(self, series: Mapping[str, Sequence[Bar]], accepting: bool = True) -> None:
        order = {s: i for i, s in enumerate(self.symbols)}
        merged = heapq.merge(
            *(series[s] for s in self.symbols), key=lambda b: (b.ts_open, order[b.symbol])
        )
        tally = Runner._tally
        for bar in merged:
            events = self.runners[bar.symbol].step(bar, accepting)
            if events:
                tally(self, events, accepting)  # type: ignore[arg-type]


def per_symbol(trades: Sequence[ClosedTrade], equity: float) -> dict[str, dict[str, Any]]:
    out = {}
    for symbol in sorted({t.symbol for t in trades}):
        stats = build_report([t for t in trades if t.symbol == symbol], [], equity).stats
        out[symbol] = {
            "trades": stats.trades,
            "net_pnl": _num(stats.net_pnl),
            "win_rate": _num(stats.win_rate),
            "profit_factor": _num(stats.profit_factor),
        }
    return out


def run_portfolio(
    series: Mapping[str, Sequence[Bar]], st: StrategySettings, equity: float
) -> dict[str, Any]:
    """Backtest every symbol in `series` through one portfolio; the summary and the per-symbol breakdown."""
    empty = [s for s, bars in series.items() if not bars]
    if empty:
        raise BacktestError(f"no candles in the chosen range for {', '.join(empty)}")
    bases = {bars[0].timeframe for bars in series.values()}
    if len(bases) != 1:
        raise BacktestError(f"every symbol's candles must share one timeframe, got {sorted(bases)}")
    runner = PortfolioRunner(list(series), bases.pop(), st, equity)
    runner.feed(series)
    summary = summarise_span(
        runner,  # type: ignore[arg-type]
        sum(len(bars) for bars in series.values()),
        min(bars[0].ts_open for bars in series.values()),
        max(bars[-1].ts_event for bars in series.values()),
        equity,
    )
    summary["by_symbol"] = per_symbol(runner.trades, equity)
    summary["bars_by_symbol"] = {s: len(bars) for s, bars in series.items()}
    return {"summary": summary, "runner": runner}


def run_portfolio_args(args: Any, st: StrategySettings) -> dict[str, Any]:
    """`fractald backtest --symbols A,B --catalog DIR --from ...`: the report, per symbol too."""
    from fractald.backtest import _select, _trade_row, load_bar_columns, parse_when

    symbols = [s.strip() for s in str(args.symbols).split(",") if s.strip()]
    if not symbols or len(set(symbols)) != len(symbols):
        raise BacktestError(f"--symbols needs distinct symbols, got {symbols}")
    if args.catalog is None:
        raise BacktestError(
            "--symbols reads each symbol's candles from a catalog: add --catalog DIR "
            "(fill it with `fractald download`)"
        )
    if args.walk_forward:
        raise BacktestError("--walk-forward runs one symbol; drop --symbols or --walk-forward")
    lo, hi = parse_when(args.start, "from"), parse_when(args.end, "to")
    series = {
        s: _select(
            load_bar_columns(None, s, args.catalog, args.venue, args.start, args.end), lo, hi
        )
        for s in symbols
    }
    done = run_portfolio(series, st, args.equity)
    runner = done["runner"]
    return {
        "data": f"catalog {args.catalog}",
        "symbol": ",".join(symbols),
        "symbols": symbols,
        "base_timeframe": next(iter(series.values()))[0].timeframe,
        "timeframe": st.timeframe,
        "trend_timeframes": list(st.trend),
        "strategies": list(st.names),
        "params": st.params,
        "equity": args.equity,
        "summary": done["summary"],
        "trade_list": [{**_trade_row(t), "symbol": t.symbol} for t in runner.trades],
    }
