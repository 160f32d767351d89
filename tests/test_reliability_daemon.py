"""The real daemon under hostile load and broken resources (issue 14).

The kill switch gets through a control socket full of idle and `tail`
clients; a full disk or a locked database stops the daemon with 69 naming
the path; a failed backup leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from daemon_harness import (
    DaemonProcess,
    ctl_json,
    fractalctl,
    wait_ready,
    write_candles_csv,
    write_config,
)

pytestmark = pytest.mark.slow


def _hold(sock: Path, idle: int, tails: int) -> list[socket.socket]:
    held = []
    for i in range(idle + tails):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(str(sock))
        if i >= idle:
            s.sendall(b'{"id":1,"cmd":"tail","args":{}}\n')
        held.append(s)
    return held


def test_halt_gets_through_a_socket_full_of_idle_and_tail_clients(tmp_path: Path) -> None:
    config = write_config(tmp_path, replay_speed=0)
    daemon = DaemonProcess(config)
    sock = tmp_path / "state" / "control.sock"
    held: list[socket.socket] = []
    try:
        wait_ready(sock, timeout=60)
        held = _hold(sock, idle=70, tails=40)  # past max_clients (64) and max_streams (16)
        status = fractalctl(sock, "--json", "status")
        assert status.returncode == 0, status.stderr
        halt = fractalctl(sock, "--json", "halt", "--yes")
        assert halt.returncode == 0, halt.stderr
        after = json.loads(fractalctl(sock, "--json", "status").stdout)
        assert after["trading"]["accepting"] is False
        assert daemon.stop() == 0
    finally:
        for s in held:
            s.close()
        daemon.kill()
    assert any(line.get("event") == "control_idle_client_evicted" for line in daemon.log_lines())


# --------------------------------------------------------------------------- item 6


@contextlib.contextmanager
def small_tmpfs(path: Path, size: str = "16m") -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                             capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _fill(directory: Path) -> None:
    with (directory / "filler").open("wb") as fh, contextlib.suppress(OSError):
        while True:
            fh.write(b"\0" * 65536)
            fh.flush()


def _exit_status(daemon: DaemonProcess, timeout: float = 60) -> int:
    try:
        return daemon.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        daemon.kill()
        raise AssertionError(f"daemon still running; log: {daemon.log_lines()[-5:]}") from None


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to mount a small tmpfs")
def test_a_full_disk_stops_the_daemon_with_69_naming_the_path(tmp_path: Path) -> None:
    config = write_config(tmp_path, replay_speed=0, extra="")
    config.write_text(config.read_text().replace("stall_limit_s = 5.0",
                                                 "stall_limit_s = 5.0\nsnapshot_interval_s = 1"))
    with small_tmpfs(tmp_path / "state") as state:
        daemon = DaemonProcess(config)
        sock = state / "control.sock"
        try:
            wait_ready(sock, timeout=60)
            _fill(state)
            backup = fractalctl(sock, "--json", "backup")
            assert backup.returncode != 0  # the backup fails...
            leftovers = [p.name for p in (state / "backups").glob("*.tmp*")]
            assert leftovers == []  # ...and leaves no half-written copy or -journal behind
            status = _exit_status(daemon)
        finally:
            daemon.kill()
    assert status == 69, daemon.stdout_path.read_text()[-3000:]
    fatal = next(line for line in daemon.log_lines() if line.get("event") == "daemon_fatal")
    assert str(state) in json.dumps(fatal)
    assert "Traceback" not in daemon.stdout_path.read_text()


def test_a_locked_database_stops_the_daemon_with_69_naming_the_path(tmp_path: Path) -> None:
    config = write_config(tmp_path, replay_speed=0, extra="")
    config.write_text(config.read_text().replace("stall_limit_s = 5.0",
                                                 "stall_limit_s = 5.0\nsnapshot_interval_s = 1"))
    daemon = DaemonProcess(config)
    db = tmp_path / "state" / "fractald.db"
    try:
        wait_ready(tmp_path / "state" / "control.sock", timeout=60)
        other = sqlite3.connect(db, timeout=1)  # an operator's write transaction, left open
        other.execute("BEGIN EXCLUSIVE")
        try:
            status = _exit_status(daemon)
        finally:
            other.rollback()
            other.close()
    finally:
        daemon.kill()
    assert status == 69, daemon.stdout_path.read_text()[-3000:]
    fatal = next(line for line in daemon.log_lines() if line.get("event") == "daemon_fatal")
    assert str(db) in json.dumps(fatal) and "locked" in json.dumps(fatal)


# --------------------------------------------------------------------------- item 7


def _settled_status(sock: Path, bars: int, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = ctl_json(sock, "status")
        if status["trading"].get("bars_processed", 0) >= bars:
            return status
        time.sleep(0.5)
    raise AssertionError(f"the replay did not reach {bars} bars")


def test_resume_keeps_the_drawdown_peak_and_accepting_survives_restarts(tmp_path: Path) -> None:
    config = write_config(tmp_path, replay_speed=0,
                          candles=write_candles_csv(tmp_path / "c.csv", count=6000))
    sock = tmp_path / "state" / "control.sock"
    daemon = DaemonProcess(config)
    try:
        wait_ready(sock, timeout=90)
        before = _settled_status(sock, 6000)["account"]
        assert before["drawdown"] > 0.005 and before["trips"] == []  # below its peak, no trip
        ctl_json(sock, "pause")
        resumed = ctl_json(sock, "resume")
        assert resumed["cleared"] == []
        after = ctl_json(sock, "status")["account"]
        # Pause + resume must not disarm max_drawdown by moving its peak to today's equity.
        assert after["peak_equity"] == pytest.approx(before["peak_equity"])
        assert after["drawdown"] == pytest.approx(before["drawdown"])
        ctl_json(sock, "pause")
        assert daemon.stop() == 0
    finally:
        daemon.kill()
    for step in ("paused", "halted"):
        daemon = DaemonProcess(config)
        try:
            wait_ready(sock, timeout=90)
            status = ctl_json(sock, "status")
            assert status["account"]["accepting"] is False, (step, status["account"])
            assert status["trading"]["accepting"] is False
            assert ctl_json(sock, "breakers")["accepting"] is False
            if step == "paused":
                assert status["account"]["paused"] is True
                ctl_json(sock, "resume")
                assert ctl_json(sock, "status")["account"]["accepting"] is True
                ctl_json(sock, "halt", "--yes")
            else:
                assert status["account"]["trading_state"] == "HALTED"
            assert daemon.stop() == 0
        finally:
            daemon.kill()
