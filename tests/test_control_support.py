"""Shared by the control tests: a real ControlServer in its own thread, and a blocking client.

Blocking clients (fractalctl subprocesses, hypothesis examples) need a server
that outlives any one trio run; this runs it in a thread with its own loop.
(No tests here.)
"""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path
from typing import Any, Self

import trio

from fractald.control.server import CommandRegistry, ControlServer


class ThreadServer:
    """``with ThreadServer(path, registry) as server:`` serves until the block ends."""

    def __init__(self, path: Path, registry: CommandRegistry, **options: Any) -> None:
        self.server = ControlServer(path, [], [], registry, **options)
        self.path = path
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._scope: trio.CancelScope | None = None
        self._thread = threading.Thread(target=self._run, name="control-server", daemon=True)

    def _run(self) -> None:
        try:
            trio.run(self._main)
        except BaseException as exc:  # noqa: BLE001 - reported to the test thread
            self._error = exc
        finally:
            self._ready.set()

    async def _main(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        with trio.CancelScope() as scope:
            self._scope = scope
            async with trio.open_nursery() as nursery:
                await nursery.start(self.server.serve)
                self._ready.set()

    def __enter__(self) -> Self:
        self._thread.start()
        if not self._ready.wait(10):
            raise TimeoutError("control server did not start")
        if self._error is not None:
            raise self._error
        return self

    def __exit__(self, *exc: object) -> None:
        if self._token is not None and self._scope is not None and self._thread.is_alive():
            trio.from_thread.run_sync(self._scope.cancel, trio_token=self._token)
        self._thread.join(10)
        assert not self._thread.is_alive(), "control server did not stop"
        if self._error is not None:
            raise self._error


def blocking_exchange(path: Path, data: bytes, half_close: bool = True,
                      timeout_s: float = 5.0) -> list[dict[str, Any]]:
    """Send raw bytes, read every reply line until the server closes (or the timeout)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout_s)
        sock.connect(str(path))
        try:
            sock.sendall(data)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except BrokenPipeError:
            pass  # closed first (line too long): its reply is still readable
        buf = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            buf += chunk
    assert buf == b"" or buf.endswith(b"\n"), f"partial reply line: {buf[-100:]!r}"
    return [json.loads(line) for line in buf.splitlines()]


def blocking_ping(path: Path) -> None:
    replies = blocking_exchange(path, b'{"id": "p", "cmd": "ping"}\n')
    assert replies == [{"id": "p", "ok": True, "result": "pong"}]


# --------------------------------------------------------------------------- benchmark
# Run: .venv/bin/python tests/test_control_support.py   (prints figures; asserts nothing)


def _serve_forever(path: str) -> None:
    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(ControlServer(Path(path), [], [], CommandRegistry(),
                                              max_clients=256).serve)

    trio.run(main)


def _ping_loop(path: Path, count: int, latencies: list[float]) -> None:
    import time

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(str(path))
        reader = sock.makefile("rb")
        for i in range(count):
            start = time.perf_counter()
            sock.sendall(b'{"id":%d,"cmd":"ping"}\n' % i)
            reader.readline()
            latencies.append(time.perf_counter() - start)


def benchmark() -> None:
    import statistics
    import subprocess
    import sys
    import tempfile
    import time

    def pct(values: list[float], q: float) -> float:
        return sorted(values)[min(len(values) - 1, int(q * len(values)))] * 1e6

    with tempfile.TemporaryDirectory(prefix="fcb") as tmp:
        path = Path(tmp) / "c.sock"
        server = subprocess.Popen([sys.executable, __file__, "--serve", str(path)])
        try:
            deadline = time.monotonic() + 10
            while not path.exists() and time.monotonic() < deadline:
                time.sleep(0.01)
            one: list[float] = []
            _ping_loop(path, 5000, one)
            print(f"ping, 1 client, 5000 sequential: p50 {pct(one, .5):.0f} us, "
                  f"p99 {pct(one, .99):.0f} us, {len(one) / sum(one):.0f} req/s")
            clients, each = 64, 200
            lats: list[float] = []
            threads = [threading.Thread(target=_ping_loop, args=(path, each, lats))
                       for _ in range(clients)]
            start = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            took = time.perf_counter() - start
            print(f"ping, {clients} concurrent clients x {each}: {clients * each / took:.0f} "
                  f"req/s total, p50 {pct(lats, .5):.0f} us, p99 {pct(lats, .99):.0f} us")
            connects: list[float] = []
            for _ in range(500):
                t0 = time.perf_counter()
                blocking_ping(path)
                connects.append(time.perf_counter() - t0)
            print(f"connect + ping + close, 500 times: p50 {pct(connects, .5):.0f} us")
            runs = []
            for _ in range(10):
                t0 = time.perf_counter()
                subprocess.run([sys.executable, "-m", "fractald.control.client", "--socket",
                                str(path), "ping"], check=True, capture_output=True)
                runs.append(time.perf_counter() - t0)
            print(f"fractalctl ping as a process: median {statistics.median(runs) * 1e3:.0f} ms")
        finally:
            server.terminate()
            server.wait()


if __name__ == "__main__":
    import sys

    if sys.argv[1:2] == ["--serve"]:
        _serve_forever(sys.argv[2])
    else:
        benchmark()
