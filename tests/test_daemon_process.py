"""`fractald run` as a real subprocess: sd_notify, control socket, signals, exit statuses."""

from __future__ import annotations

import signal
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
from daemon_harness import (
    REPO,
    DaemonProcess,
    NotifyListener,
    ctl_json,
    fractalctl,
    write_config,
)
from daemon_harness import wait_log as _wait_log
from daemon_harness import wait_ready as _wait_ready

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("abstract", [False, True], ids=["path-socket", "abstract-socket"])
def test_notify_lifecycle_and_clean_stop(tmp_path: Path, abstract: bool) -> None:
    listener = NotifyListener(tmp_path, abstract=abstract)
    config = write_config(tmp_path, replay_speed=0)
    daemon = DaemonProcess(config, env={"NOTIFY_SOCKET": listener.address,
                                        "WATCHDOG_USEC": "2000000"})
    try:
        ready_at = listener.wait_for("READY", timeout=30, value="1")
        listener.poll(4.5)
        pings = [t for t in listener.times("WATCHDOG") if t > ready_at]
        assert len(pings) >= 3, listener.messages
        gaps = [b - a for a, b in zip(pings, pings[1:])]
        assert 0.7 <= statistics.median(gaps) <= 1.4, gaps  # half of WATCHDOG_USEC
        statuses = listener.values("STATUS")
        assert statuses and any("ready" in s for s in statuses), statuses

        status = ctl_json(tmp_path / "state" / "control.sock", "status")
        assert status["daemon"]["ready"] is True
        assert all(status["gates"].values())
        assert {a["name"] for a in status["actors"]} >= {"store", "trading", "market_data",
                                                         "heartbeat", "control"}
        assert ctl_json(tmp_path / "state" / "control.sock", "ping") == "pong"

        assert daemon.stop(signal.SIGTERM, timeout=10) == 0
        listener.poll(0.5)
        assert "1" in listener.values("STOPPING")
    finally:
        daemon.kill()
        listener.close()
    events = [line.get("event") for line in daemon.log_lines()]
    assert "daemon_ready" in events and "daemon_stopped" in events
    assert "snapshot_written" in events  # the final snapshot on SIGTERM
    assert all(line["event"] != "<non-json>" for line in daemon.log_lines())


def test_sighup_reload_applies_live_keys_and_refuses_others(tmp_path: Path) -> None:
    config = write_config(tmp_path, replay_speed=0)
    daemon = DaemonProcess(config)
    sock = tmp_path / "state" / "control.sock"
    try:
        _wait_ready(sock)
        text = config.read_text().replace('level = "info"', 'level = "debug"')
        text += '\n[risk]\nheat_cap = 0.05\n[control]\nidle_timeout_s = 60.0\n'
        config.write_text(text)
        daemon.proc.send_signal(signal.SIGHUP)
        _wait_log(daemon, "reload_applied")
        assert ctl_json(sock, "config")["risk"]["heat_cap"] == 0.05
        assert ctl_json(sock, "config")["control"]["idle_timeout_s"] == 600.0
        assert daemon.stop() == 0
    finally:
        daemon.kill()
    lines = daemon.log_lines()
    applied = next(line for line in lines if line["event"] == "reload_applied")
    refused = next(line for line in lines if line["event"] == "reload_refused_keys")
    assert applied["keys"] == ["log.level", "risk.heat_cap"]
    assert refused["keys"] == ["control.idle_timeout_s"]


def test_config_with_three_mistakes_exits_78_naming_all(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[feed]\nvenue = "kraken"\n[risk]\nheat_cap = 2.0\n[daemon]\ncolour = "red"\n')
    run = subprocess.run([sys.executable, "-m", "fractald.cli", "run", "--config", str(bad)],
                         capture_output=True, text=True, timeout=30, cwd=str(REPO))
    assert run.returncode == 78
    for key in ("config.feed.venue", "config.risk.heat_cap", "config.daemon.colour"):
        assert key in run.stdout, run.stdout
    check = subprocess.run([sys.executable, "-m", "fractald.cli", "check-config", str(bad)],
                           capture_output=True, text=True, timeout=30, cwd=str(REPO))
    assert check.returncode == 78 and "3 problem(s)" in check.stderr


def test_unwritable_state_dir_is_a_clear_fatal_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file-not-dir"
    blocker.write_text("x")
    config = write_config(tmp_path, replay_speed=0)
    config.write_text(config.read_text().replace(str(tmp_path / "state"), str(blocker / "state")))
    daemon = DaemonProcess(config)
    try:
        status = daemon.proc.wait(30)
    finally:
        daemon.kill()
    assert status == 69
    text = daemon.stdout_path.read_text()
    assert str(blocker) in text


def test_fractalctl_without_daemon_says_so(tmp_path: Path) -> None:
    result = fractalctl(tmp_path / "nothing.sock", "status")
    assert result.returncode == 3
    assert "nothing.sock" in result.stderr


def test_daemon_record_holds_starts_ready_and_stops(tmp_path: Path) -> None:
    import sqlite3

    config = write_config(tmp_path, replay_speed=0)
    for _ in range(2):
        daemon = DaemonProcess(config)
        try:
            _wait_ready(tmp_path / "state" / "control.sock")
            assert daemon.stop() == 0
        finally:
            daemon.kill()
    with sqlite3.connect(tmp_path / "state" / "fractald.db") as conn:
        kinds = [k for (k,) in conn.execute("SELECT kind FROM daemon_events ORDER BY id")]
    assert kinds == ["start", "daemon_ready", "stop"] * 2
