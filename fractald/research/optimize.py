"""Walk-forward optimisation: per fold, search the space in sample, judge the best out of sample.

The candles are cut into K+1 equal stretches; fold i searches stretch i (in
sample) and evaluates its best parameters on stretch i+1 (out of sample), each
backtest warmed on the stretch before it without trading. Every fold has its
own Optuna study (TPE, seeded), persisted in SQLite: running the same command
again resumes where it stopped. The folds are searched together, with
no barrier between trials or folds: as each trial finishes it is told to
its study and a new one is asked from the least advanced fold (or the
fold's out-of-sample run is started once its search is complete), so a
worker never waits for the slowest trial of a batch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs

from fractald.core.models import Bar
from fractald.research.evaluate import NO_SCORE, Request, objective_value
from fractald.research.executors import Executor
from fractald.research.space import ParamSpec


@attrs.frozen(slots=True)
class Fold:
    number: int
    warm_lo: int
    is_lo: int
    is_hi: int
    oos_hi: int


def make_folds(n_bars: int, k: int) -> list[Fold]:
    """K folds over K+1 equal stretches; each stretch is warmed on the one before."""
    if k < 1:
        raise ValueError(f"--folds must be at least 1, got {k}")
    size = n_bars // (k + 1)
    if size < 10:
        raise ValueError(
            f"{n_bars} candles are too few for {k} folds (each stretch needs at least 10)"
        )
    return [
        Fold(
            i + 1,
            max(0, (i - 1) * size),
            i * size,
            (i + 1) * size,
            n_bars if i == k - 1 else (i + 2) * size,
        )
        for i in range(k)
    ]


@attrs.frozen(slots=True)
class FoldResult:
    fold: Fold
    best_params: dict[str, Any]
    in_sample: float
    out_of_sample: float
    oos_summary: dict[str, Any]
    trials: int
    importance: dict[str, float]


def _study(name: str, storage: str | None, seed: int) -> Any:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(
        study_name=name,
        storage=storage,
        direction="maximize",
        load_if_exists=True,
        sampler=optuna.samplers.TPESampler(seed=seed),
    )


def search(study: Any, space: Sequence[ParamSpec], trials: int, run_batch: Any, width: int) -> int:
    """Ask/tell until the study holds `trials` finished trials; returns how many ran now."""
    import optuna

    dists = {p.name: p.distribution() for p in space}
    done = sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    ran = 0
    while done < trials:
        batch = [study.ask(dists) for _ in range(min(width, trials - done))]
        for trial, value in zip(batch, run_batch([t.params for t in batch]), strict=True):
            study.tell(trial, value)
        done += len(batch)
        ran += len(batch)
    return ran


def _importance(study: Any) -> dict[str, float]:
    import optuna

    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if len(complete) < 4 or len({t.value for t in complete}) < 2:
        return {}
    try:
        return {k: float(v) for k, v in optuna.importance.get_param_importances(study).items()}
    except (RuntimeError, ValueError):  # a space optuna cannot assess (one value, all equal)
        return {}


@attrs.define
class _FoldSearch:
    fold: Fold
    study: Any
    done: int
    running: int = 0
    judging: bool = False
    result: FoldResult | None = None


def optimize(
    bars: Sequence[Bar],
    request: Request,
    space: Sequence[ParamSpec],
    objective: str,
    k: int,
    trials: int,
    executor: Executor,
    storage: str | None,
    study_prefix: str,
    seed: int = 0,
    progress: Any = None,
) -> list[FoldResult]:
    import optuna

    dists = {p.name: p.distribution() for p in space}
    searches = []
    for fold in make_folds(len(bars), k):
        study = _study(f"{study_prefix}-fold{fold.number}", storage, seed + fold.number)
        done = sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
        searches.append(_FoldSearch(fold, study, done))
    pending: list[
        tuple[Any, _FoldSearch, Any]
    ] = []  # (handle, fold, trial or None for the OOS run)
    while any(s.result is None for s in searches):
        _keep_busy(searches, pending, dists, trials, request, executor)
        handle = executor.first_done([h for h, _, _ in pending])
        i = next(i for i, (h, _, _) in enumerate(pending) if h is handle)
        _, search, trial = pending.pop(i)
        summary = executor.result(handle)
        if trial is not None:
            search.study.tell(trial, objective_value(summary, objective))
            search.done += 1
            search.running -= 1
            continue
        study = search.study
        search.result = FoldResult(
            search.fold,
            dict(study.best_params),
            float(study.best_value),
            objective_value(summary, objective),
            summary,
            len(study.trials),
            _importance(study),
        )
        if progress is not None:
            progress(sum(s.result is not None for s in searches), k)
    return [s.result for s in searches if s.result is not None]


def _keep_busy(
    searches: list[_FoldSearch],
    pending: list[tuple[Any, _FoldSearch, Any]],
    dists: dict[str, Any],
    trials: int,
    request: Request,
    executor: Executor,
) -> None:
    """Submit until `in_flight` runs are out: a finished fold's OOS run first, else a new trial."""
    while len(pending) < executor.in_flight:
        open_folds = [s for s in searches if s.result is None and not s.judging]
        searched = next((s for s in open_folds if s.done >= trials and s.running == 0), None)
        if searched is not None:
            fold = searched.fold
            job = (fold.is_hi, fold.oos_hi, fold.is_lo, dict(searched.study.best_params))
            pending.append((executor.submit(request, job), searched, None))
            searched.judging = True
            continue
        askable = [s for s in open_folds if s.done + s.running < trials]
        if not askable:
            return
        search = min(askable, key=lambda s: (s.done + s.running, s.fold.number))
        trial = search.study.ask(dists)
        fold = search.fold
        pending.append(
            (
                executor.submit(
                    request, (fold.is_lo, fold.is_hi, fold.warm_lo, dict(trial.params))
                ),
                search,
                trial,
            )
        )
        search.running += 1


def stability(results: Sequence[FoldResult]) -> dict[str, Any]:
    """How far in-sample promise carries out of sample, and how much the best parameters wander."""
    scored = [r for r in results if r.out_of_sample > NO_SCORE and r.in_sample > NO_SCORE]
    positive = sum(r.out_of_sample > 0 for r in scored)
    mean_is = sum(r.in_sample for r in scored) / len(scored) if scored else math.nan
    mean_oos = sum(r.out_of_sample for r in scored) / len(scored) if scored else math.nan
    efficiency = mean_oos / mean_is if scored and mean_is > 0 else math.nan
    spread: dict[str, float] = {}
    for name in results[0].best_params if results else ():
        values = [r.best_params[name] for r in results]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            mean = sum(values) / len(values)
            sd = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
            spread[name] = sd / abs(mean) if mean else sd
    reasons = []
    if len(scored) < len(results):
        reasons.append(f"{len(results) - len(scored)} fold(s) had no trades to score")
    if not scored or positive * 3 < 2 * len(scored):
        reasons.append(f"out of sample positive in {positive} of {len(scored)} folds (want 2/3)")
    if not (efficiency >= 0.5):
        reasons.append(f"walk-forward efficiency {efficiency:.2f} (out/in sample; want >= 0.5)")
    wander = sorted(n for n, s in spread.items() if s > 0.25)
    if wander:
        reasons.append(
            f"best values wander across folds: {', '.join(wander)} (relative spread > 0.25)"
        )
    return {
        "verdict": "stable" if not reasons else "unstable",
        "reasons": reasons,
        "oos_positive_folds": positive,
        "folds": len(results),
        "efficiency": efficiency,
        "mean_in_sample": mean_is,
        "mean_out_of_sample": mean_oos,
        "param_spread": spread,
    }


def stitched_equity(
    results: Sequence[FoldResult], bars: Sequence[Bar], equity: float
) -> list[tuple[int, float]]:
    """The out-of-sample stretches laid end to end: equity after each trade, from the starting equity."""
    if not results:
        return []
    curve = [(bars[results[0].fold.is_hi].ts_open, equity)]
    for r in results:
        for ts, pnl in sorted(r.oos_summary.get("trade_points", [])):
            curve.append((ts, curve[-1][1] + pnl))
        curve.append((bars[r.fold.oos_hi - 1].ts_event, curve[-1][1]))
    return curve


def mean_importance(results: Sequence[FoldResult]) -> dict[str, float]:
    names = sorted({n for r in results for n in r.importance})
    with_imp = [r for r in results if r.importance]
    if not with_imp:
        return {}
    return dict(
        sorted(
            ((n, sum(r.importance.get(n, 0.0) for r in with_imp) / len(with_imp)) for n in names),
            key=lambda kv: -kv[1],
        )
    )


def config_snippet(strategy: str, params: dict[str, Any]) -> str:
    """The chosen parameters as the TOML the daemon's config takes."""
    lines = [f"[strategies.params.{strategy}]"]
    for k, v in params.items():
        if isinstance(v, bool):
            text = "true" if v else "false"
        elif isinstance(v, float):
            text = repr(round(v, 6))
        elif isinstance(v, str):
            text = '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        else:
            text = str(v)
        lines.append(f"{k} = {text}")
    return "\n".join(lines) + "\n"


def plot_stitched(
    curve: Sequence[tuple[int, float]],
    results: Sequence[FoldResult],
    bars: Sequence[Bar],
    path: str | Path,
) -> Path:
    from datetime import UTC, datetime

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    def when(ms: int) -> float:
        return float(mdates.date2num(datetime.fromtimestamp(ms / 1000, UTC)))

    fig, ax = plt.subplots(figsize=(10, 4.5), dpi=100)
    ax.step(
        [when(t) for t, _ in curve],
        [e for _, e in curve],
        where="post",
        color="#1f77b4",
        label="out-of-sample equity (stitched)",
    )
    for r in results:
        lo, hi = when(bars[r.fold.is_hi].ts_open), when(bars[r.fold.oos_hi - 1].ts_event)
        ax.axvspan(lo, hi, color="#2ca02c" if r.out_of_sample > 0 else "#d62728", alpha=0.08)
        ax.text(lo, ax.get_ylim()[1], f" fold {r.fold.number}", va="top", fontsize=8)
    ax.set_title("Walk-forward: out-of-sample equity (green: fold positive, red: negative)")
    ax.set_ylabel("equity")
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m-%d"))
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left")
    fig.autofmt_xdate()
    out = Path(path)
    fig.savefig(out, bbox_inches="tight")
    plt.close(fig)
    return out
