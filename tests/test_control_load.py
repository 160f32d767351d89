"""`status` answers under socket load: a burst of clients larger than the listen backlog.

The soak saw 12 of 275 `status` calls unanswered while 90 other connections
were opened at once: the daemon's listen backlog (64) was full for a moment,
a Unix-socket connect() then fails at once with EAGAIN, and fractalctl took
that for "fractald is not running" (exit 3). A full backlog means a live
daemon that is busy; the client waits for a place within its timeout.

Here the server's loop is held (a command blocking it, as a long commit
would), so the backlog fills for certain while a crowd of clients connect;
once it is released every client must get its answer.
"""

from __future__ import annotations

import socket
import threading
from pathlib import Path
from typing import Any

from test_control_support import ThreadServer

from fractald.control.client import ControlClient
from fractald.control.protocol import PeerCred
from fractald.control.server import CommandRegistry, ControlServer

CLIENTS = 120


def _registry(release: threading.Event) -> CommandRegistry:
    reg = CommandRegistry()

    async def hold(args: dict[str, Any], peer: PeerCred) -> str:
        release.wait(60)  # blocks the server's event loop: nothing is accepted meanwhile
        return "released"

    async def status(args: dict[str, Any], peer: PeerCred) -> dict[str, Any]:
        return {"phase": "ready"}

    reg.register("hold", hold)
    reg.register("status", status)
    return reg


def _backlog_full(path: Path) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.setblocking(False)
    try:
        probe.connect(str(path))
        return False
    except BlockingIOError:
        return True
    finally:
        probe.close()


def _ask_status(path: Path, answers: list[Any], failures: list[str]) -> None:
    try:
        with ControlClient(path, timeout_s=60) as client:
            answers.append(client.request("status"))
    except Exception as exc:  # noqa: BLE001 - every failure is reported by the test
        failures.append(f"{type(exc).__name__}: {exc}")


def test_every_status_is_answered_when_a_burst_overflows_the_backlog(tmp_path: Path) -> None:
    release = threading.Event()
    path = tmp_path / "c.sock"
    # A small backlog, so a modest crowd overflows it (the daemon's is larger, not unlimited).
    with ThreadServer(path, _registry(release), backlog=8, max_clients=16) as server:
        holder = ControlClient(path, timeout_s=60)
        holder.connect()
        holder.send("hold", {})
        answers: list[Any] = []
        failures: list[str] = []
        threads = [threading.Thread(target=_ask_status, args=(path, answers, failures))
                   for _ in range(CLIENTS)]
        for t in threads:
            t.start()
        full = False
        for _ in range(2000):  # until the queue overflows (the server accepts nothing now)
            if _backlog_full(path):
                full = True
                break
            threading.Event().wait(0.01)
        release.set()
        assert holder.read_message()["result"] == "released"
        holder.close()
        for t in threads:
            t.join(120)
        assert full, "the test did not overflow the listen backlog"
        assert failures == []
        assert answers == [{"phase": "ready"}] * CLIENTS
        assert server.server.evictions == 0  # a client that has a request waiting is not idle


def test_the_daemon_listens_with_a_deep_backlog(tmp_path: Path) -> None:
    server = ControlServer(tmp_path / "c.sock", [], [], CommandRegistry())
    assert server.backlog >= 512
