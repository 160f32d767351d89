"""Strategy plug-ins: found through entry points by check-config, backtest and the registry."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import attrs
import pytest

from fractald.core.strategies import registry
from fractald.core.strategies.fvg_fill import FVGFill
from research_support import install_toy, jump_series, toy_on_path, write_csv

GOOD = {"toy_cycle": "fractald_toy.cycle:CycleLong", "toy_repaint": "fractald_toy.repaint:Repaint"}

CONFIG = """
[feed]
timeframes = ["1m", "5m"]
[strategies]
enabled = ["toy_cycle"]
timeframe = "1m"
trend_timeframes = ["1m"]
[strategies.params.toy_cycle]
offset = {offset}
"""


def _fractald(args: list[str], site: Path | None, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    paths = [str(site)] if site else []
    paths += [p for p in sys.path if p.endswith("site-packages") or p == str(Path(__file__).parents[1])]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return subprocess.run([sys.executable, "-m", "fractald.cli", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=120)


def test_check_config_finds_an_installed_plugin(tmp_path: Path) -> None:
    site = install_toy(tmp_path / "site", GOOD)
    cfg = tmp_path / "toy.toml"
    cfg.write_text(CONFIG.format(offset=3))
    ok = _fractald(["check-config", str(cfg)], site, tmp_path)
    assert ok.returncode == 0, ok.stderr
    missing = _fractald(["check-config", str(cfg)], None, tmp_path)
    assert missing.returncode == 78
    assert "toy_cycle" in missing.stderr and "fractald.strategies" in missing.stderr


def test_a_plugin_parameter_is_validated_by_name(tmp_path: Path) -> None:
    site = install_toy(tmp_path / "site", GOOD)
    cfg = tmp_path / "toy.toml"
    cfg.write_text(CONFIG.format(offset=-1))
    bad = _fractald(["check-config", str(cfg)], site, tmp_path)
    assert bad.returncode == 78
    assert "offset" in bad.stderr


def test_a_broken_plugin_is_a_config_error_naming_it(tmp_path: Path) -> None:
    site = install_toy(tmp_path / "site", {**GOOD, "toy_broken": "fractald_toy.broken:Nothing"})
    cfg = tmp_path / "toy.toml"
    cfg.write_text(CONFIG.format(offset=3))
    bad = _fractald(["check-config", str(cfg)], site, tmp_path)
    assert bad.returncode == 78
    assert "toy_broken" in bad.stderr and "failed to import" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_backtest_runs_a_plugin_strategy(tmp_path: Path) -> None:
    site = install_toy(tmp_path / "site", GOOD)
    data = write_csv(jump_series(600), tmp_path / "toy.csv")
    run = _fractald(["backtest", "--data", str(data), "--symbol", "TOY", "--strategy", "toy_cycle",
                     "--timeframe", "1m", "--trend-timeframes", "1m", "--json"], site, tmp_path)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["strategies"] == ["toy_cycle"]
    assert report["summary"]["trades"] > 0
    assert {t["strategy"] for t in report["trade_list"]} == {"toy_cycle"}


def test_entry_point_name_must_match_the_class_name(tmp_path: Path) -> None:
    from fractald.strategy_plugins import PluginError, load_plugins

    site = install_toy(tmp_path / "site", {"other_name": "fractald_toy.cycle:CycleLong"})
    with toy_on_path(site):
        with pytest.raises(PluginError, match="other_name.*toy_cycle|toy_cycle.*other_name"):
            load_plugins(force=True)
        assert "other_name" not in registry.STRATEGIES


def test_register_refuses_a_taken_name_and_non_strategies() -> None:
    @attrs.define
    class NotAStrategy:
        name = "x"

    class Impostor(FVGFill):
        pass  # inherits name "fvg_fill": a second class under a taken name

    with pytest.raises(TypeError, match="not a fractald Strategy"):
        registry.register(NotAStrategy)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'fvg_fill' is taken"):
        registry.register(Impostor)
    assert registry.STRATEGIES["fvg_fill"] is FVGFill


def test_plugins_register_in_process(tmp_path: Path) -> None:
    from fractald.strategy_plugins import load_plugins

    site = install_toy(tmp_path / "site", GOOD)
    with toy_on_path(site):
        assert load_plugins(force=True) == ["toy_cycle", "toy_repaint"]
        strategy = registry.create("toy_cycle", "TOY", "1m", {"offset": 4})
        assert strategy.params.offset == 4
    assert "toy_cycle" not in registry.STRATEGIES
