"""`fractald optimize`, `fractald sweep` and `fractald lookahead-check`: research on the backtest."""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import math
import sys
from pathlib import Path
from typing import Any

RESEARCH_COMMANDS = ("download", "optimize", "sweep", "lookahead-check")


def add_research_commands(sub: Any, command: str | None) -> None:
    """Register the research sub-commands; their arguments only when one of them is run."""
    dl = sub.add_parser(
        "download", help="historical candles (and funding) into the local Parquet catalog"
    )
    if command == "download":
        from fractald.research.download import add_download_arguments

        add_download_arguments(dl)
    dl.set_defaults(func=_download)
    helps = {
        "optimize": "walk-forward optimisation with Optuna (on Dask: all cores by default)",
        "sweep": "backtest every combination of a parameter grid (on Dask)",
        "lookahead-check": "report signals that change once later bars arrive",
    }
    for name, text in helps.items():
        p = sub.add_parser(name, help=text)
        if command == name:
            _ARGUMENTS[name](p)
        p.set_defaults(func=_run)


def _download(args: argparse.Namespace) -> int:
    from fractald.research.download import download_command

    return download_command(args)


def _data_arguments(p: argparse.ArgumentParser) -> None:
    from fractald.datasets import BUNDLED_SYMBOL

    p.add_argument(
        "--strategy", required=True, metavar="NAME", help="the strategy (built-in or plug-in)"
    )
    p.add_argument(
        "--data",
        metavar="PATH",
        default=None,
        help="candles: CSV, JSON or Parquet (default: bundled)",
    )
    p.add_argument(
        "--symbol", default=BUNDLED_SYMBOL, help=f"symbol of the candles (default {BUNDLED_SYMBOL})"
    )
    p.add_argument(
        "--config",
        metavar="PATH",
        default=None,
        help="TOML config: [strategies] params are the base the search varies, [risk]/[broker] apply",
    )
    p.add_argument(
        "--timeframe", default=None, help="timeframe the strategy trades on (default: the config's)"
    )
    p.add_argument(
        "--trend-timeframes",
        default=None,
        help="timeframes feeding the confidence (default: config's)",
    )
    p.add_argument(
        "--from",
        dest="start",
        default=None,
        metavar="WHEN",
        help="first candle (UTC date or epoch ms)",
    )
    p.add_argument("--to", dest="end", default=None, metavar="WHEN", help="stop before this time")
    p.add_argument(
        "--equity", type=float, default=None, help="starting equity (default: the config's)"
    )
    p.add_argument(
        "--catalog",
        metavar="DIR",
        default=None,
        help="read candles from this catalog (fractald download) by --venue/--symbol/--from/--to",
    )
    p.add_argument(
        "--venue", default="binance-futures", help="the catalog's venue (default binance-futures)"
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def _cluster_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--objective",
        default="sharpe",
        choices=("sharpe", "sortino", "calmar", "profit_factor", "expectancy"),
    )
    p.add_argument(
        "--scheduler",
        metavar="tcp://HOST:8786",
        default=None,
        help="run on this Dask cluster (default: a local cluster, one worker per core)",
    )
    p.add_argument(
        "--workers", type=int, default=None, help="local cluster size (default: every core)"
    )
    p.add_argument("--in-process", action="store_true", help="no Dask: run trials one by one here")


def _optimize_arguments(p: argparse.ArgumentParser) -> None:
    _data_arguments(p)
    _cluster_arguments(p)
    p.add_argument(
        "--space", required=True, metavar="FILE.toml", help="the parameter space (see README)"
    )
    p.add_argument("--folds", type=int, default=3, help="walk-forward folds (default 3)")
    p.add_argument("--trials", type=int, default=40, help="trials per fold (default 40)")
    p.add_argument("--seed", type=int, default=0, help="sampler seed (default 0)")
    p.add_argument(
        "--out",
        metavar="DIR",
        default=None,
        help="where the study, report, plot and config snippet go (default optimize-STRATEGY/); "
        "running again with the same DIR resumes the studies",
    )


def _sweep_arguments(p: argparse.ArgumentParser) -> None:
    _data_arguments(p)
    _cluster_arguments(p)
    p.add_argument(
        "--grid", required=True, metavar="FILE.toml", help="[grid] NAME = [values] (see README)"
    )
    p.add_argument("--csv", metavar="FILE", default=None, help="also write every result as CSV")


def _lookahead_arguments(p: argparse.ArgumentParser) -> None:
    _data_arguments(p)
    p.add_argument(
        "--cuts", type=int, default=8, help="how many growing prefixes to compare (default 8)"
    )


_ARGUMENTS = {
    "optimize": _optimize_arguments,
    "sweep": _sweep_arguments,
    "lookahead-check": _lookahead_arguments,
}


class _Setup:
    """Candles, the strategy's settings and the base request, from the common flags."""

    def __init__(self, args: argparse.Namespace) -> None:
        from fractald.backtest import _select, load_bar_columns, parse_when, settings_from
        from fractald.core.strategies.registry import STRATEGIES
        from fractald.research.evaluate import Request

        ns = argparse.Namespace(
            config=args.config,
            strategy=[args.strategy],
            timeframe=args.timeframe,
            trend_timeframes=args.trend_timeframes,
        )
        self.settings = st = settings_from(ns)
        self.cls = STRATEGIES[args.strategy]
        self.bars = _select(
            load_bar_columns(
                args.data, args.symbol, args.catalog, args.venue, args.start, args.end
            ),
            parse_when(args.start, "from"),
            parse_when(args.end, "to"),
        )
        if not self.bars:
            raise ValueError("no candles in the chosen range")
        equity = st.config.broker.starting_equity if args.equity is None else args.equity
        if not (math.isfinite(equity) and equity > 0):
            raise ValueError(f"--equity must be a positive number, got {equity}")
        self.request = Request(
            args.symbol,
            args.strategy,
            st.timeframe,
            st.trend,
            equity,
            dict(st.params.get(args.strategy, {})),
            args.config,
        )

    def known_params(self) -> list[str]:
        import attrs

        return [f.name for f in attrs.fields(self.cls.params_type)]

    def executor(self, args: argparse.Namespace) -> Any:
        from fractald.research.executors import InProcess, OnDask

        if args.in_process:
            return InProcess(self.bars)
        return OnDask(self.bars, scheduler=args.scheduler, n_workers=args.workers)


def _run(args: argparse.Namespace) -> int:
    from fractald.errors import ConfigError
    from fractald.research.space import SpaceError

    if args.command != "lookahead-check":
        missing = [
            m
            for m in ("optuna", "dask.distributed")
            if importlib.util.find_spec(m.split(".")[0]) is None
        ]
        if missing:
            print(
                f"fractald {args.command}: error: needs {', '.join(missing)}: "
                "pip install 'fractald[research]'",
                file=sys.stderr,
            )
            return 2
    try:
        setup = _Setup(args)
        if args.command == "lookahead-check":
            return _lookahead(args, setup)
        if args.command == "sweep":
            return _sweep(args, setup)
        return _optimize(args, setup)
    except (ValueError, ConfigError, SpaceError) as exc:
        print(f"fractald {args.command}: error: {exc}", file=sys.stderr)
        return 2


def _progress(done: int, total: int) -> None:
    print(f"  fold {done}/{total} done", file=sys.stderr, flush=True)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "-" if not math.isfinite(v) else f"{v:,.4f}".rstrip("0").rstrip(".")
    return str(v)


def _optimize(args: argparse.Namespace, setup: _Setup) -> int:
    from fractald.research import optimize as opt
    from fractald.research.space import load_space

    space = load_space(args.space, setup.known_params())
    if args.trials < 1:
        raise ValueError(f"--trials must be at least 1, got {args.trials}")
    opt.make_folds(len(setup.bars), args.folds)  # a bad fold count fails before a cluster starts
    out = Path(args.out or f"optimize-{args.strategy}")
    out.mkdir(parents=True, exist_ok=True)
    storage = f"sqlite:///{(out / 'study.db').resolve()}"
    executor = setup.executor(args)
    try:
        print(
            f"optimize {args.strategy}: {args.folds} folds x {args.trials} trials on {executor.workers} "
            f"worker(s), objective {args.objective}",
            file=sys.stderr,
            flush=True,
        )
        results = opt.optimize(
            setup.bars,
            setup.request,
            space,
            args.objective,
            args.folds,
            args.trials,
            executor,
            storage,
            args.strategy,
            args.seed,
            progress=_progress,
        )
    finally:
        executor.close()
    verdict = opt.stability(results)
    importance = opt.mean_importance(results)
    curve = opt.stitched_equity(results, setup.bars, setup.request.equity)
    chosen = results[-1].best_params  # the most recent fold's: fitted on the data nearest to now
    files = {
        "study": out / "study.db",
        "report": out / "report.json",
        "plot": out / "oos_equity.png",
        "config": out / "best_params.toml",
    }
    opt.plot_stitched(curve, results, setup.bars, files["plot"])
    files["config"].write_text(opt.config_snippet(args.strategy, chosen))
    report = {
        "strategy": args.strategy,
        "objective": args.objective,
        "folds": [
            {
                "fold": r.fold.number,
                "in_sample_from_ms": setup.bars[r.fold.is_lo].ts_open,
                "out_of_sample_from_ms": setup.bars[r.fold.is_hi].ts_open,
                "out_of_sample_to_ms": setup.bars[r.fold.oos_hi - 1].ts_event,
                "trials": r.trials,
                "best_params": r.best_params,
                "in_sample": r.in_sample,
                "out_of_sample": r.out_of_sample,
                "oos_trades": r.oos_summary.get("trades"),
                "oos_net_pnl": r.oos_summary.get("net_pnl"),
            }
            for r in results
        ],
        "stability": verdict,
        "importance": importance,
        "chosen_params": chosen,
        "oos_final_equity": curve[-1][1] if curve else setup.request.equity,
        "files": {k: str(v) for k, v in files.items()},
    }
    files["report"].write_text(json.dumps(report, indent=2, default=str))
    if args.json:
        print(json.dumps(report, indent=2, default=str))
        return 0
    print(
        f"walk-forward optimisation of {args.strategy} ({args.objective}; in sample -> out of sample)"
    )
    print(f"  {'fold':<5}{'in sample':>12}{'out of sample':>15}{'oos trades':>12}  best parameters")
    for f in report["folds"]:
        params = ", ".join(f"{k}={_fmt(v)}" for k, v in f["best_params"].items())
        print(
            f"  {f['fold']:<5}{_fmt(f['in_sample']):>12}{_fmt(f['out_of_sample']):>15}"
            f"{_fmt(f['oos_trades']):>12}  {params}"
        )
    print(
        f"verdict: {verdict['verdict']}"
        + (f" ({'; '.join(verdict['reasons'])})" if verdict["reasons"] else "")
    )
    if importance:
        print("parameter importance: " + ", ".join(f"{k} {v:.2f}" for k, v in importance.items()))
    for v in files.values():
        print(f"wrote {v}")
    return 0


def _sweep(args: argparse.Namespace, setup: _Setup) -> int:
    from fractald.research.evaluate import objective_value
    from fractald.research.space import load_grid

    combos = load_grid(args.grid, setup.known_params())
    executor = setup.executor(args)
    try:
        n = len(setup.bars)
        summaries = executor.run(setup.request, [(0, n, 0, c) for c in combos])
    finally:
        executor.close()
    rows = []
    for params, s in zip(combos, summaries, strict=True):
        rows.append(
            {
                **params,
                "objective": objective_value(s, args.objective),
                "trades": s.get("trades"),
                "net_pnl": s.get("net_pnl"),
                "sharpe": s.get("sharpe"),
                "profit_factor": s.get("profit_factor"),
                "max_drawdown_pct": s.get("max_drawdown_pct"),
            }
        )
    rows.sort(key=lambda r: -r["objective"])
    if args.csv:
        with open(args.csv, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    if args.json:
        print(
            json.dumps(
                {"strategy": args.strategy, "objective": args.objective, "results": rows}, indent=2
            )
        )
    else:
        names = list(combos[0])
        print(f"sweep {args.strategy}: {len(rows)} combinations, sorted by {args.objective}")
        print("  " + "".join(f"{h:>16}" for h in [*names, args.objective, "trades", "net_pnl"]))
        for r in rows:
            print(
                "  "
                + "".join(f"{_fmt(r[h]):>16}" for h in [*names, "objective", "trades", "net_pnl"])
            )
    if args.csv:
        print(f"wrote {args.csv}")
    return 0


def _lookahead(args: argparse.Namespace, setup: _Setup) -> int:
    from fractald.backtest import new_runner
    from fractald.research.lookahead import check

    def make_runner() -> Any:
        return new_runner(
            args.symbol, setup.bars[0].timeframe, setup.settings, setup.request.equity
        )

    if args.cuts < 1:
        raise ValueError(f"--cuts must be at least 1, got {args.cuts}")
    findings, signals = check(setup.bars, make_runner, args.cuts)
    if args.json:
        print(
            json.dumps(
                {
                    "strategy": args.strategy,
                    "signals": signals,
                    "lookahead": bool(findings),
                    "findings": [
                        {"cut_ms": f.cut_ms, "kind": f.kind, "signal": list(f.signal)}
                        for f in findings
                    ],
                },
                indent=2,
            )
        )
    elif findings:
        print(
            f"{args.strategy}: LOOK-AHEAD: {len(findings)} signal(s) changed once later bars arrived:"
        )
        for f in findings[:50]:
            print(f"  at cut {f.cut_ms}: {f.kind}: {f.signal}")
    else:
        print(
            f"{args.strategy}: no look-ahead seen ({signals} signals, {args.cuts} prefixes compared)"
        )
    return 1 if findings else 0
