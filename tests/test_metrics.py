"""Prometheus text rendering, the atomic textfile, the Grafana dashboard's queries, loop lag."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

import attrs
import pytest
import trio
import trio.testing
from prometheus_client.parser import text_string_to_metric_families

from fractald.core.models import FeedHealth
from fractald.metrics import (
    ActorStatus,
    AlertCounters,
    LoopLagProbe,
    MetricsSnapshot,
    render_metrics,
    write_textfile,
)

DASHBOARD = Path(__file__).resolve().parent.parent / "deploy" / "grafana" / "fractald-dashboard.json"
NASTY = 'BTC"-PERP\\x\nnew'  # a label value that needs escaping


def snapshot() -> MetricsSnapshot:
    return MetricsSnapshot(
        ts_ms=1_704_067_200_000,
        equity=10_250.5,
        drawdown=0.0125,
        open_risk=150.0,
        heat_cap=600.0,
        trading_state="REDUCING",
        positions={"BTC-PERP": 0.25, "ETH-PERP": -1.5, "SOL-PERP": 0.0},
        orders_by_state={"OPEN": 3, "FILLED": 10, "CANCELLED": 2},
        fills_total=17,
        feeds=(
            FeedHealth("BTC-PERP", 1, last_message_age_s=0.4, reconnects=2, gaps_found=1, quality=0.98),
            FeedHealth(NASTY, 1, last_message_age_s=95.0, quality=0.5, stale=True),
        ),
        actors=(ActorStatus("market_data", True, 2), ActorStatus("risk", False, 0)),
        breakers={"daily_loss": True, "feed_stale": False},
        loop_lag_s=0.003,
        loop_lag_max_s=0.31,
        alerts=AlertCounters(sent=4, failed=1, dropped=0, suppressed=6),
    )


def samples(text: str, bot: str = "main") -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample by name and labels; each must carry the bot label, left out of the key."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = dict(s.labels)
            assert labels.pop("bot") == bot, s
            out[(s.name, tuple(sorted(labels.items())))] = s.value
    return out


def test_output_parses_with_values_and_labels() -> None:
    text = render_metrics(snapshot())
    got = samples(text)
    assert got[("fractald_equity", ())] == 10_250.5
    assert got[("fractald_drawdown_ratio", ())] == 0.0125
    assert got[("fractald_open_risk", ())] == 150.0
    assert got[("fractald_heat_cap", ())] == 600.0
    assert got[("fractald_positions_open", ())] == 2
    assert got[("fractald_position_quantity", (("symbol", "ETH-PERP"),))] == -1.5
    assert got[("fractald_orders", (("state", "OPEN"),))] == 3
    assert got[("fractald_fills_total", ())] == 17
    assert got[("fractald_feed_reconnects_total", (("symbol", "BTC-PERP"),))] == 2
    assert got[("fractald_feed_message_age_seconds", (("symbol", NASTY),))] == 95.0
    assert got[("fractald_feed_quality", (("symbol", NASTY),))] == 0.5
    assert got[("fractald_feed_stale", (("symbol", NASTY),))] == 1
    assert got[("fractald_actor_restarts_total", (("actor", "market_data"),))] == 2
    assert got[("fractald_actor_up", (("actor", "risk"),))] == 0
    assert got[("fractald_breaker_tripped", (("breaker", "daily_loss"),))] == 1
    assert got[("fractald_loop_lag_max_seconds", ())] == 0.31
    assert got[("fractald_alerts_total", (("outcome", "failed"),))] == 1
    assert got[("fractald_alerts_total", (("outcome", "suppressed"),))] == 6
    assert got[("fractald_snapshot_timestamp_seconds", ())] == 1_704_067_200.0
    states = {dict(k[1])["state"]: v for k, v in got.items() if k[0] == "fractald_trading_state"}
    assert states == {"ACTIVE": 0, "REDUCING": 1, "HALTED": 0}


def test_text_format_has_help_type_and_escaped_labels() -> None:
    text = render_metrics(snapshot())
    assert "# HELP fractald_equity " in text
    assert "# TYPE fractald_equity gauge" in text
    assert "# TYPE fractald_fills_total counter" in text
    assert 'symbol="BTC\\"-PERP\\\\x\\nnew"' in text  # quote, backslash and newline escaped
    assert all(line.startswith(("#", "fractald_")) for line in text.splitlines())


def test_build_info_and_up_name_the_bot_and_version() -> None:
    snap = attrs.evolve(snapshot(), bot="alpha-2", version="1.2.3")
    got = samples(render_metrics(snap), bot="alpha-2")
    assert got[("fractald_build_info", (("version", "1.2.3"),))] == 1
    assert got[("fractald_up", ())] == 1
    assert got[("fractald_actor_up", (("actor", "market_data"),))] == 1


def test_a_stopped_daemon_says_so_and_no_actor_looks_alive() -> None:
    got = samples(render_metrics(attrs.evolve(snapshot(), up=False)))
    assert got[("fractald_up", ())] == 0
    assert [v for (name, _), v in got.items() if name == "fractald_actor_up"] == [0, 0]


def test_two_bots_never_write_the_same_series() -> None:
    one = set(samples(render_metrics(attrs.evolve(snapshot(), bot="a")), bot="a"))
    two = set(samples(render_metrics(attrs.evolve(snapshot(), bot="b")), bot="b"))
    assert one == two  # the same series apart from the bot label, which samples() checked


@pytest.mark.parametrize("bad", ["", "a b", "x" * 65, 'q"uote'])
def test_bot_name_is_checked(bad: str) -> None:
    with pytest.raises(ValueError, match="bot must be"):
        attrs.evolve(snapshot(), bot=bad)


def dashboard_exprs(board: dict) -> list[str]:
    exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    exprs += [v.get("definition", "") for v in board["templating"]["list"]]
    return exprs


def test_every_metric_the_dashboard_queries_exists() -> None:
    board = json.loads(DASHBOARD.read_text())
    exported = {name for name, _ in samples(render_metrics(snapshot()))}
    queried = {m for e in dashboard_exprs(board) for m in re.findall(r"\bfractald_[a-z_]+\b", e)}
    assert len(queried) >= 15
    assert queried - exported == set()


def test_dashboard_is_provisionable_shape() -> None:
    board = json.loads(DASHBOARD.read_text())
    # Provisioned from a file, Grafana resolves no import inputs: the data source is a variable.
    assert "__inputs" not in board and "${DS_" not in DASHBOARD.read_text()
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert {"instance", "bot"} <= set(variables)
    assert isinstance(board["schemaVersion"], int) and board["id"] is None and board["uid"]
    required_panels = {r["id"] for r in board["__requires"] if r["type"] == "panel"}
    ids, cells = set(), set()
    for p in board["panels"]:
        assert p["id"] not in ids, f"duplicate panel id {p['id']}"
        ids.add(p["id"])
        assert p["type"] in required_panels
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert all(t["datasource"]["uid"] == "${datasource}" for t in p["targets"])
        assert all('bot=~"$bot"' in t["expr"] for t in p["targets"]), p["title"]
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24, p["title"]
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not mine & cells, f"panel {p['title']!r} overlaps another"
        cells |= mine
    titles = " ".join(p["title"].lower() for p in board["panels"])
    state = next(p for p in board["panels"] if p["title"] == "Trading state")
    colours = {o["text"]: o["color"]
               for m in state["fieldConfig"]["defaults"]["mappings"] for o in m["options"].values()}
    assert colours == {"ACTIVE": "green", "REDUCING": "orange", "HALTED": "red"}
    for needed in ("equity", "drawdown", "heat cap", "positions", "fills", "feed message age",
                   "feed quality", "actor restarts", "breaker", "loop lag"):
        assert needed in titles


def test_write_textfile_replaces_atomically(tmp_path: Path) -> None:
    target = tmp_path / "fractald.prom"
    write_textfile(target, "first 1\n")
    write_textfile(target, render_metrics(snapshot()))
    assert target.read_text() == render_metrics(snapshot())
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert sorted(os.listdir(tmp_path)) == ["fractald.prom"]  # no temporary left behind
    with pytest.raises(TypeError):
        write_textfile(target, b"not text")  # type: ignore[arg-type]
    assert target.read_text() == render_metrics(snapshot())  # a failed write leaves the old file
    assert sorted(os.listdir(tmp_path)) == ["fractald.prom"]


def test_snapshot_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="open_risk"):
        MetricsSnapshot(ts_ms=0, equity=1.0, drawdown=0.0, open_risk=-1.0, heat_cap=1.0)
    with pytest.raises(ValueError, match="interval_s"):
        LoopLagProbe(interval_s=0)


async def test_loop_lag_probe_sees_a_blocked_loop(autojump_clock: trio.testing.MockClock) -> None:
    clock = autojump_clock
    probe = LoopLagProbe(interval_s=1.0, window=10)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(probe.run)
        await trio.sleep(3.5)
        assert (probe.samples, probe.last_s, probe.max_s) == (3, 0.0, 0.0)
        # Block the loop for 0.3 s of (virtual) time without yielding: the probe's
        # wake-up at t=4.0 comes late by however far the blockage overran it.
        await trio.sleep_until(3.9)
        clock.jump(0.4)
        await trio.sleep(0.001)
        assert probe.samples == 4
        assert probe.last_s == pytest.approx(0.3, abs=1e-6)
        await trio.sleep(2.0)
        assert probe.last_s == 0.0 and probe.max_s == pytest.approx(0.3, abs=1e-6)
        nursery.cancel_scope.cancel()

