"""A small sd_notify(3) sender that never blocks the trio loop.

Why not the sdnotify package: it sends with a blocking `sendto`, which can
stall the event loop when systemd's receive queue is full, and it hides
every error. This sender uses a non-blocking datagram socket, supports
abstract (`@`) and path addresses, drops a message rather than wait, and
is a silent no-op without NOTIFY_SOCKET.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping


class Notifier:
    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.address = self._parse_address(env.get("NOTIFY_SOCKET", ""))
        self.watchdog_usec = self._watchdog_usec(env)
        self.dropped = 0
        self._sock: socket.socket | None = None
        if self.address is not None:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.setblocking(False)

    @staticmethod
    def _parse_address(raw: str) -> str | bytes | None:
        if not raw:
            return None
        if raw.startswith("@"):
            return b"\0" + raw[1:].encode()
        if raw.startswith("/"):
            return raw
        return None  # vsock and other forms are not used by our units

    @staticmethod
    def _watchdog_usec(env: Mapping[str, str]) -> int | None:
        try:
            usec = int(env.get("WATCHDOG_USEC", ""))
        except ValueError:
            return None
        pid = env.get("WATCHDOG_PID", "")
        if pid and pid != str(os.getpid()):
            return None  # the watchdog is meant for another process
        return usec if usec > 0 else None

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    @property
    def watchdog_interval_s(self) -> float | None:
        """How often to ping: half of WATCHDOG_USEC, as sd_watchdog_enabled(3) advises."""
        return None if self.watchdog_usec is None else self.watchdog_usec / 2_000_000

    def send(self, **fields: str | int) -> bool:
        """Send KEY=VALUE lines; True when sent, False when disabled or dropped."""
        if self._sock is None or self.address is None:
            return False
        payload = "\n".join(f"{k.upper()}={v}" for k, v in fields.items()).encode()
        try:
            self._sock.sendto(payload, self.address)
        except (BlockingIOError, ConnectionRefusedError, FileNotFoundError, OSError):
            self.dropped += 1
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        return self.send(READY=1, **({"STATUS": status} if status else {}))

    def status(self, text: str) -> bool:
        return self.send(STATUS=text.replace("\n", " ")[:200])

    def watchdog(self) -> bool:
        return self.send(WATCHDOG=1)

    def extend_timeout(self, seconds: float) -> bool:
        """EXTEND_TIMEOUT_USEC: tell systemd the start (or stop) needs `seconds` more from now."""
        return self.send(EXTEND_TIMEOUT_USEC=int(seconds * 1_000_000))

    def stopping(self, status: str | None = None) -> bool:
        return self.send(STOPPING=1, **({"STATUS": status} if status else {}))

    def reloading(self) -> bool:
        # systemd needs MONOTONIC_USEC with RELOADING=1 for Type=notify-reload semantics.
        return self.send(
            RELOADING=1, MONOTONIC_USEC=time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        )

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
