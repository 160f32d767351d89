"""One backtest of one parameter set on one stretch of candles: the unit of work a trial runs.

It is a plain function of plain data, so it runs the same in this process or on a
Dask worker: the candles are sent to each worker once (scattered), and only the
slice bounds and the parameters travel with each trial.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from fractald.core.models import Bar

OBJECTIVES = ("sharpe", "sortino", "calmar", "profit_factor", "expectancy")
# What an objective is worth when it cannot be computed (no trades, too few days): below any real
# value, so the search moves away from it, but finite, so Optuna keeps the trial.
NO_SCORE = -1e6


@attrs.frozen(slots=True)
class Request:
    """What to backtest: one strategy with fixed settings; `params` vary per trial."""

    symbol: str
    strategy: str
    timeframe: str
    trend: tuple[str, ...]
    equity: float
    base_params: Mapping[str, Any] = attrs.field(factory=dict)
    config_path: str | None = None


def objective_value(summary: Mapping[str, Any], objective: str) -> float:
    """The summary's figure for `objective`, or NO_SCORE when it has none."""
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}; allowed: {', '.join(OBJECTIVES)}")
    if not summary.get("trades"):
        return NO_SCORE
    if objective == "calmar":
        ret, dd = summary.get("pnl_pct"), summary.get("max_drawdown_pct")  # both fractions
        if ret is None or dd is None:
            return NO_SCORE
        return float(ret) / max(float(dd), 1e-6)
    v = summary.get(objective)
    if v is None or not math.isfinite(float(v)):
        return NO_SCORE
    return float(v)


def run_slice(
    bars: Sequence[Bar], lo: int, hi: int, warm_lo: int, request: Request, params: Mapping[str, Any]
) -> dict[str, Any]:
    """Backtest bars[lo:hi] after warming the detectors on bars[warm_lo:lo] without trading."""
    from fractald.backtest import StrategySettings, new_runner, summarise
    from fractald.config import Config, load_config
    from fractald.strategy_plugins import load_plugins

    load_plugins()  # a worker is a fresh process: it must know plug-in strategies too
    config = load_config(request.config_path) if request.config_path else Config()
    merged = {**request.base_params, **params}
    st = StrategySettings(
        (request.strategy,),
        request.timeframe,
        request.trend,
        {request.strategy: merged} if merged else {},
        config,
    )
    runner = new_runner(request.symbol, bars[0].timeframe, st, request.equity)
    if warm_lo < lo:
        runner.feed(bars[warm_lo:lo], accepting=False)
        runner.trades.clear()
    window = bars[lo:hi]
    runner.feed(window)
    # A fold is days long: its Sharpe is a score to rank trials, not a figure to show (hence 2).
    summary = summarise(runner, window, request.equity, min_ratio_returns=2)
    summary["trade_points"] = [(t.ts_exit, t.pnl) for t in runner.trades]
    return summary
