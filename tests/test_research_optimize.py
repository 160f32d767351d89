"""Walk-forward optimisation and sweeps: the search finds a planted best parameter."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from fractald.research import optimize as opt
from fractald.research.evaluate import Request, objective_value, run_slice
from fractald.research.executors import InProcess
from fractald.research.space import SpaceError, load_grid, parse_space
from research_support import install_toy, jump_series, toy_on_path, write_csv
from test_research_plugins import GOOD, _fractald

KNOWN = ["offset", "period", "swing_length", "stop_buffer_atr"]
SPACE = {"params": {"offset": {"type": "int", "low": 0, "high": 19}}}
REQUEST = Request("TOY", "toy_cycle", "1m", ("1m",), 10_000.0)


@pytest.fixture
def toy(tmp_path: Path):  # type: ignore[no-untyped-def]
    site = install_toy(tmp_path / "site", GOOD)
    with toy_on_path(site):
        from fractald.strategy_plugins import load_plugins

        load_plugins(force=True)
        yield site


def _brute_force_best(bars: list, lo: int, hi: int, warm: int) -> int:  # type: ignore[type-arg]
    scores = {o: objective_value(run_slice(bars, lo, hi, warm, REQUEST, {"offset": o}), "expectancy")
              for o in range(20)}
    best = max(scores, key=lambda o: scores[o])
    assert sorted(scores.values())[-2] < scores[best]  # the planted best is unique
    return best


def test_space_errors_name_every_problem() -> None:
    bad = {"params": {"nope": {"type": "int", "low": 0, "high": 3},
                      "offset": {"type": "int", "low": 5, "high": 5},
                      "period": {"type": "weird"},
                      "swing_length": {"type": "float", "low": 0, "high": 1, "log": True}}}
    with pytest.raises(SpaceError) as err:
        parse_space(bad, KNOWN)
    text = str(err.value)
    for fragment in ("params.nope", "params.offset", "params.period.type", "params.swing_length.log"):
        assert fragment in text
    assert [p.name for p in parse_space(SPACE, KNOWN)] == ["offset"]


@pytest.mark.slow
def test_walk_forward_finds_the_planted_best_and_resumes(toy: Path, tmp_path: Path) -> None:
    bars = jump_series(1600)
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    space = parse_space(SPACE, KNOWN)
    results = opt.optimize(bars, REQUEST, space, "expectancy", 3, 30, InProcess(bars), storage, "toy", seed=1)
    assert len(results) == 3
    for r in results:
        f = r.fold
        assert r.best_params["offset"] == _brute_force_best(bars, f.is_lo, f.is_hi, f.warm_lo)
        assert r.out_of_sample > 0 and r.trials == 30
    verdict = opt.stability(results)
    assert verdict["verdict"] == "stable", verdict
    # Same storage, same request: every study is already complete, nothing runs again.
    study = opt._study("toy-fold1", storage, 2)
    assert opt.search(study, space, 30, lambda batch: pytest.fail("re-ran a trial"), 2) == 0
    curve = opt.stitched_equity(results, bars, 10_000.0)
    assert curve[0][1] == 10_000.0 and curve[-1][1] > 10_000.0
    assert [t for t, _ in curve] == sorted(t for t, _ in curve)


def test_sweep_grid_ranks_like_brute_force(toy: Path, tmp_path: Path) -> None:
    bars = jump_series(600)
    grid = tmp_path / "grid.toml"
    grid.write_text("[grid]\noffset = [0, 3, 6, 9, 12]\n")
    combos = load_grid(grid, KNOWN)
    summaries = InProcess(bars).run(REQUEST, [(0, len(bars), 0, c) for c in combos])
    values = [objective_value(s, "expectancy") for s in summaries]
    assert combos[values.index(max(values))] == {"offset": 6}


@pytest.mark.slow
def test_optimize_command_writes_report_plot_and_a_valid_config_snippet(tmp_path: Path) -> None:
    site = install_toy(tmp_path / "site", GOOD)
    data = write_csv(jump_series(900), tmp_path / "toy.csv")
    space = tmp_path / "space.toml"
    space.write_text('[params.offset]\ntype = "int"\nlow = 0\nhigh = 19\n')
    out = tmp_path / "out"
    run = _fractald(["optimize", "--strategy", "toy_cycle", "--data", str(data), "--symbol", "TOY",
                     "--timeframe", "1m", "--trend-timeframes", "1m", "--space", str(space), "--folds", "2",
                     "--trials", "25", "--objective", "expectancy", "--in-process", "--out", str(out)],
                    site, tmp_path)
    assert run.returncode == 0, run.stderr
    for name in ("study.db", "report.json", "oos_equity.png", "best_params.toml"):
        assert (out / name).stat().st_size > 0
        assert f"wrote {out / name}" in run.stdout
    report = json.loads((out / "report.json").read_text())
    assert [f["fold"] for f in report["folds"]] == [1, 2]
    snippet = tomllib.loads((out / "best_params.toml").read_text())
    assert snippet == {"strategies": {"params": {"toy_cycle": report["chosen_params"]}}}
    cfg = tmp_path / "cfg.toml"
    cfg.write_text('[feed]\ntimeframes = ["1m"]\n[strategies]\nenabled = ["toy_cycle"]\ntimeframe = "1m"\n'
                   'trend_timeframes = ["1m"]\n' + (out / "best_params.toml").read_text())
    assert _fractald(["check-config", str(cfg)], site, tmp_path).returncode == 0


def test_bad_requests_are_named(tmp_path: Path) -> None:
    space = tmp_path / "space.toml"
    space.write_text('[params.offsett]\ntype = "int"\nlow = 0\nhigh = 3\n')
    run = _fractald(["optimize", "--strategy", "fvg_fill", "--space", str(space), "--in-process"], None, tmp_path)
    assert run.returncode == 2 and "params.offsett" in run.stderr and "Traceback" not in run.stderr
    run = _fractald(["optimize", "--strategy", "nope", "--space", str(space)], None, tmp_path)
    assert run.returncode == 2 and "unknown strategy nope" in run.stderr


@pytest.mark.slow
def test_dask_local_cluster_gives_the_in_process_answer(toy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fractald.research.executors import OnDask

    monkeypatch.setenv("PYTHONPATH", str(toy) + ":" + ":".join(__import__("sys").path))
    bars = jump_series(900)
    jobs = [(0, len(bars), 0, {"offset": o}) for o in (0, 6, 11)]
    local = InProcess(bars).run(REQUEST, jobs)
    dask = OnDask(bars, n_workers=2)
    try:
        assert dask.workers == 2
        remote = dask.run(REQUEST, jobs)
        results = opt.optimize(bars, REQUEST, parse_space(SPACE, KNOWN), "expectancy", 1, 12, dask, None,
                               "toy-dask", seed=3)
    finally:
        dask.close()
    assert [s["trades"] for s in remote] == [s["trades"] for s in local]
    assert [s["net_pnl"] for s in remote] == [s["net_pnl"] for s in local]
    assert results[0].trials == 12


@pytest.mark.slow
def test_a_lost_worker_costs_time_not_trials(toy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    import signal
    import threading
    import time

    from fractald.research.executors import OnDask

    monkeypatch.setenv("PYTHONPATH", str(toy) + ":" + ":".join(__import__("sys").path))
    bars = jump_series(3000)
    jobs = [(0, len(bars), 0, {"offset": o % 20}) for o in range(24)]
    expected = [s["trades"] for s in InProcess(bars).run(REQUEST, jobs)]
    dask = OnDask(bars, n_workers=2)
    try:
        pids = dask.client.run(os.getpid)
        victim = sorted(pids.values())[0]

        def kill_soon() -> None:
            time.sleep(0.5)  # mid-run: trials queued on both workers
            os.kill(victim, signal.SIGKILL)

        killer = threading.Thread(target=kill_soon)
        killer.start()
        results = dask.run(REQUEST, jobs)
        killer.join()
        assert [s["trades"] for s in results] == expected  # every trial answered, as in-process
        alive = dask.client.run(os.getpid)
        assert victim not in alive.values()  # the worker really died (the nanny started another)
    finally:
        dask.close()
