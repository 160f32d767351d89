"""The real daemon under hostile load and broken resources (issue 14).

The kill switch gets through a control socket full of idle and `tail`
clients; a full disk or a locked database stops the daemon with 69 naming
the path; a failed backup leaves nothing behind.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from daemon_harness import DaemonProcess, fractalctl, wait_ready, write_config

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
