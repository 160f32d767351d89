"""Actors and commands built from narrow dependencies, with no daemon around them.

What the composition root (`fractald.daemon.Daemon`) hands each one is a
live config holder, the bus, the ledger's holder and a few functions; a
test (or the next front end) builds them the same way.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import trio

from fractald.actors.events import EventBus
from fractald.actors.metrics import MetricsActor
from fractald.actors.store import StoreActor
from fractald.config import Config, config_from_dict
from fractald.control.commands import ControlActor, ControlDeps
from fractald.control.protocol import PeerCred
from fractald.control.report_commands import BarHistory, ReportCommands
from fractald.metrics import AlertCounters
from fractald.risk_overrides import RiskOverrides
from fractald.shell_deps import LiveConfig

PEER = PeerCred(pid=1, uid=0, gid=0)


def test_metrics_read_what_they_are_given_and_the_config_of_now() -> None:
    live = LiveConfig(Config())
    actors = [{"name": "store", "status": "running", "restarts": 2}]
    metrics = MetricsActor(
        live,
        EventBus(),
        actors=lambda: actors,
        alert_counters=lambda: AlertCounters(sent=3),
    )
    snap = metrics.snapshot(now_ms=1)
    assert snap.equity == Config().broker.starting_equity  # no engine yet
    assert [(a.name, a.up, a.restarts) for a in snap.actors] == [("store", True, 2)]
    assert snap.alerts.sent == 3
    # A reload replaces the holder's config: the next snapshot reads the new one.
    live.current = config_from_dict({"risk": {"max_drawdown": 0.11}})
    assert metrics.snapshot(now_ms=2).drawdown_limit == 0.11


async def test_the_command_table_runs_on_what_it_is_handed(tmp_path: Path) -> None:
    live = LiveConfig(config_from_dict({"daemon": {"state_dir": str(tmp_path)}}))
    bus = EventBus()
    store = StoreActor(live, bus)
    reloads: list[str] = []

    async def reload() -> dict[str, list[str]]:
        reloads.append("reload")
        return {"applied": ["risk.heat_cap"], "refused": [], "errors": []}

    async def backup(log: Any) -> str:
        return str(tmp_path / "backup.db")

    trading: Any = SimpleNamespace(session=None, bus=bus, config=live)
    deps = ControlDeps(
        config=live,
        bus=bus,
        trading=trading,
        reports=ReportCommands(live, store, BarHistory(), lambda: "fractald_up 1\n", lambda: None),
        risk_overrides=RiskOverrides(live, store, bus, apply_live=lambda c: None, log=None),
        status=lambda: {"daemon": {"phase": "test"}},
        reload=reload,
        backup=backup,
        ready=trio.Event(),
        log=None,
    )
    registry = ControlActor(deps).registry
    for name in ("status", "reload", "backup", "positions", "trades", "metrics", "risk_set"):
        assert registry.get(name) is not None, name
    status = registry.get("status")
    assert status is not None and await status.handler({}, PEER) == {"daemon": {"phase": "test"}}
    reload_command = registry.get("reload")
    assert reload_command is not None
    assert (await reload_command.handler({}, PEER))["applied"] == ["risk.heat_cap"]
    assert reloads == ["reload"]
    metrics_command = registry.get("metrics")
    assert metrics_command is not None
    assert await metrics_command.handler({}, PEER) == "fractald_up 1\n"
