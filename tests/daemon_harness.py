"""Run `fractald run` as a real subprocess with a real NOTIFY_SOCKET, for end-to-end tests."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from fractald.datasets import bundled_btc_1m

REPO = Path(__file__).resolve().parent.parent


def write_candles_csv(path: Path, start: int = 0, count: int = 3000) -> Path:
    """A slice of the bundled real BTC candles, in the CSV layout of the shared data."""
    frame = bundled_btc_1m().iloc[start:start + count]
    out = frame.copy()
    out.insert(0, "timestamp", out.index.strftime("%Y-%m-%d %H:%M:%S.%f"))
    out.to_csv(path, index=False)
    assert np.isfinite(frame.to_numpy()).all()
    return path


def write_config(tmp: Path, extra: str = "", *, replay_speed: float = 0.0,
                 candles: Path | None = None) -> Path:
    candles = candles or write_candles_csv(tmp / "candles.csv")
    cfg = tmp / "fractald.toml"
    cfg.write_text(
        f'[daemon]\nstate_dir = "{tmp / "state"}"\nstall_limit_s = 5.0\n'
        f'[feed]\nvenue = "replay"\nreplay_path = "{candles}"\nreplay_speed = {replay_speed}\n'
        f'[log]\nformat = "json"\nlevel = "info"\n{extra}'
    )
    return cfg


class NotifyListener:
    """The systemd side of sd_notify: a datagram socket we own, path or abstract.

    Like systemd, it reads continuously (a thread): a Unix datagram queue holds only
    net.unix.max_dgram_qlen (10) messages, and the daemon's non-blocking sender drops
    what does not fit, so a listener that reads only when asked would lose messages.
    """

    def __init__(self, tmp: Path, abstract: bool = False) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = f"fractald-test-{uuid.uuid4().hex}"
            self.sock.bind(b"\0" + name.encode())
            self.address = "@" + name
        else:
            path = tmp / "notify.sock"
            self.sock.bind(str(path))
            self.address = str(path)
        self.sock.settimeout(0.05)
        self.messages: list[tuple[float, dict[str, str]]] = []
        self._closing = threading.Event()
        self._reader = threading.Thread(target=self._read, name="notify-listener", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while not self._closing.is_set():
            try:
                data = self.sock.recv(4096).decode()
            except (TimeoutError, BlockingIOError):
                continue
            except OSError:
                return
            fields = dict(line.split("=", 1) for line in data.splitlines() if "=" in line)
            self.messages.append((time.monotonic(), fields))

    def poll(self, timeout: float) -> None:
        """Let `timeout` seconds of datagrams arrive."""
        time.sleep(timeout)

    def wait_for(self, key: str, timeout: float, value: str | None = None) -> float:
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            for t, fields in self.messages[seen:]:
                if key in fields and (value is None or fields[key] == value):
                    return t
                seen += 1
            time.sleep(0.05)
        raise AssertionError(f"no {key} within {timeout}s; got {self.messages[-10:]}")

    def times(self, key: str) -> list[float]:
        return [t for t, f in self.messages if key in f]

    def values(self, key: str) -> list[str]:
        return [f[key] for _, f in self.messages if key in f]

    def close(self) -> None:
        self._closing.set()
        self._reader.join(timeout=5)
        self.sock.close()


class DaemonProcess:
    def __init__(self, config: Path, env: dict[str, str] | None = None) -> None:
        self.config = config
        full_env = {**os.environ, **(env or {})}
        full_env.pop("RUNTIME_DIRECTORY", None)
        full_env.pop("STATE_DIRECTORY", None)
        self.stdout_path = config.parent / f"daemon-{uuid.uuid4().hex[:6]}.log"
        self._stdout = self.stdout_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fractald.cli", "run", "--config", str(config)],
            stdout=self._stdout, stderr=subprocess.STDOUT, env=full_env, cwd=str(REPO))

    def log_lines(self) -> list[dict[str, Any]]:
        lines = []
        for raw in self.stdout_path.read_text().splitlines():
            try:
                lines.append(json.loads(raw))
            except json.JSONDecodeError:
                lines.append({"event": "<non-json>", "raw": raw})
        return lines

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        finally:
            self._stdout.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._stdout.close()


def fractalctl(socket_path: Path, *args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fractald.control.client", "--socket", str(socket_path), *args],
        capture_output=True, text=True, timeout=timeout, cwd=str(REPO))


def ctl_json(socket_path: Path, *args: str) -> Any:
    result = fractalctl(socket_path, "--json", *args)
    assert result.returncode == 0, result.stderr + result.stdout
    return json.loads(result.stdout)


def wait_ready(sock: Path, timeout: float = 30) -> None:
    """Until `fractalctl status` says ready."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sock.exists():
            result = fractalctl(sock, "--json", "status")
            if result.returncode == 0 and '"ready": true' in result.stdout:
                return
        time.sleep(0.2)
    raise AssertionError("daemon not ready in time")


def wait_log(daemon: DaemonProcess, event: str, timeout: float = 15, count: int = 1) -> None:
    """Until the daemon has logged `event` (`count` times)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sum(line.get("event") == event for line in daemon.log_lines()) >= count:
            return
        time.sleep(0.1)
    raise AssertionError(f"no {event} log line; got {daemon.log_lines()[-5:]}")
