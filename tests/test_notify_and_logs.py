"""sd_notify sender against real datagram sockets, and the JSON log format with redaction."""

from __future__ import annotations

import io
import json
import os
import socket
import uuid
from pathlib import Path

import pytest
import structlog

from fractald.logs import REDACTED, configure_logging, get_logger, redactor
from fractald.notify import Notifier


def _receiver(address: str | bytes) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(2)
    return sock


def test_path_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "notify.sock")
    with _receiver(path) as sock:
        notifier = Notifier({"NOTIFY_SOCKET": path})
        assert notifier.ready(status="ready to trade")
        assert sock.recv(4096) == b"READY=1\nSTATUS=ready to trade"
        assert notifier.watchdog()
        assert sock.recv(4096) == b"WATCHDOG=1"
        notifier.close()


def test_abstract_socket() -> None:
    name = f"fractald-test-{uuid.uuid4().hex}"
    with _receiver(b"\0" + name.encode()) as sock:
        notifier = Notifier({"NOTIFY_SOCKET": "@" + name})
        assert notifier.stopping()
        assert sock.recv(4096) == b"STOPPING=1"
        assert notifier.reloading()
        msg = sock.recv(4096).decode()
        assert msg.startswith("RELOADING=1\nMONOTONIC_USEC=") and int(msg.split("=")[-1]) > 0
        notifier.close()


def test_no_socket_is_a_silent_noop() -> None:
    notifier = Notifier({})
    assert not notifier.enabled
    assert notifier.ready() is False and notifier.watchdog() is False


def test_full_receiver_drops_instead_of_blocking(tmp_path: Path) -> None:
    path = str(tmp_path / "n.sock")
    with _receiver(path):
        notifier = Notifier({"NOTIFY_SOCKET": path})
        results = [notifier.status("x" * 150) for _ in range(5000)]  # nobody reads
        assert not all(results) and notifier.dropped > 0
        notifier.close()


def test_gone_receiver_counts_a_drop(tmp_path: Path) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "absent.sock")})
    assert notifier.ready() is False and notifier.dropped == 1


def test_watchdog_interval_is_half_and_respects_pid() -> None:
    assert Notifier({"WATCHDOG_USEC": "10000000"}).watchdog_interval_s == 5.0
    mine = Notifier({"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": str(os.getpid())})
    assert mine.watchdog_interval_s == 5.0
    other = Notifier({"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": "1"})
    assert other.watchdog_interval_s is None
    assert Notifier({"WATCHDOG_USEC": "junk"}).watchdog_interval_s is None


@pytest.fixture
def json_log() -> io.StringIO:
    stream = io.StringIO()
    configure_logging("json", "info", stream=stream)
    yield stream
    redactor.clear()
    structlog.reset_defaults()


def test_json_lines_with_actor_and_traceback(json_log: io.StringIO) -> None:
    log = get_logger("market_data", symbol="BTC-PERP")
    log.info("bar_closed", close=46377.0)
    try:
        raise ValueError("boom")
    except ValueError:
        log.error("actor_failed", exc_info=True)
    get_logger("x").debug("hidden")
    lines = [json.loads(line) for line in json_log.getvalue().splitlines()]
    assert len(lines) == 2
    first = lines[0]
    assert first["event"] == "bar_closed" and first["actor"] == "market_data"
    assert first["level"] == "info" and first["symbol"] == "BTC-PERP"
    assert first["ts"].endswith("Z") and "T" in first["ts"]
    exc = lines[1]["exception"]
    assert isinstance(exc, list) and exc[0]["exc_type"] == "ValueError"
    assert exc[0]["exc_value"] == "boom"


def test_secrets_are_redacted_everywhere(json_log: io.StringIO) -> None:
    secret = "sk_live_ABCDEF0123456789"
    redactor.register([secret])
    log = get_logger("router")
    log.info("request", url=f"https://x/?key={secret}", nested={"deep": [secret, "fine"]},
             api_key="plain-key-value", headers={"X-MBX-APIKEY": "abc123456"})
    log.info(f"message mentioning {secret}")
    out = json_log.getvalue()
    assert secret not in out and "plain-key-value" not in out and "abc123456" not in out
    first, second = (json.loads(line) for line in out.splitlines())
    assert first["url"] == f"https://x/?key={REDACTED}"
    assert first["nested"] == {"deep": [REDACTED, "fine"]}
    assert first["api_key"] == REDACTED and first["headers"]["X-MBX-APIKEY"] == REDACTED
    assert second["event"] == f"message mentioning {REDACTED}"
