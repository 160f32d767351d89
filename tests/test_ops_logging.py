"""journald priorities on log lines, colours only where wanted, EXTEND_TIMEOUT_USEC."""

from __future__ import annotations

import io
import json
import os
import socket
from pathlib import Path

import pytest
import structlog

from fractald.logs import colors_wanted, configure_logging, get_logger, stream_is_journal
from fractald.notify import Notifier


def _journal_env(monkeypatch: pytest.MonkeyPatch, path: Path) -> None:
    st = os.stat(path)
    monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")


def test_lines_carry_their_syslog_priority_when_stdout_is_the_journal(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "stdout"
    with out.open("w") as stream:
        _journal_env(monkeypatch, out)
        configure_logging("json", "debug", stream=stream)
        log = get_logger("store")
        log.debug("d")
        log.info("i")
        log.warning("w")
        log.error("e")
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            log.exception("x")
    structlog.reset_defaults()
    lines = out.read_text().splitlines()
    prefixes = [line[:3] for line in lines]
    assert prefixes == ["<7>", "<6>", "<4>", "<3>", "<3>"]
    # journald strips the prefix: what is left is the same JSON line as without a journal.
    records = [json.loads(line[3:]) for line in lines]
    assert [r["event"] for r in records] == ["d", "i", "w", "e", "x"]
    assert records[4]["exception"]


def test_no_prefix_when_stdout_is_not_the_named_stream(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    other, out = tmp_path / "other", tmp_path / "stdout"
    other.write_text("")
    with out.open("w") as stream:
        _journal_env(monkeypatch, other)  # e.g. the daemon's stdout redirected to a file
        assert not stream_is_journal(stream)
        configure_logging("json", "info", stream=stream)
        get_logger().warning("w")
    structlog.reset_defaults()
    assert out.read_text().startswith("{")


@pytest.mark.parametrize("value", ["", "garbage", "1:", ":2", "x:y"])
def test_a_missing_or_malformed_journal_stream_means_no_prefix(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("JOURNAL_STREAM", value)
    with (tmp_path / "f").open("w") as stream:
        assert not stream_is_journal(stream)
    assert not stream_is_journal(io.StringIO())  # no file descriptor at all


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(("env", "tty", "wanted"), [
    ({}, True, True),
    ({}, False, False),
    ({"NO_COLOR": "1"}, True, False),
    ({"NO_COLOR": ""}, True, True),  # no-color.org: only a non-empty value counts
    ({"TERM": "dumb"}, True, False),
    ({"TERM": "xterm-256color"}, True, True),
])
def test_colours_only_on_a_terminal_that_wants_them(env: dict[str, str], tty: bool,
                                                     wanted: bool) -> None:
    stream = _Tty() if tty else io.StringIO()
    assert colors_wanted(stream, env) is wanted


def test_console_log_has_no_escape_codes_with_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    stream = _Tty()
    configure_logging("auto", "info", stream=stream)
    get_logger("trading").warning("plain please", symbol="BTC-PERP")
    structlog.reset_defaults()
    assert "plain please" in stream.getvalue() and "\x1b[" not in stream.getvalue()


def test_extend_timeout_is_sent_in_microseconds(tmp_path: Path) -> None:
    path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.settimeout(2)
        notifier = Notifier({"NOTIFY_SOCKET": path})
        assert notifier.extend_timeout(45.5)
        assert sock.recv(4096) == b"EXTEND_TIMEOUT_USEC=45500000"
        notifier.close()
