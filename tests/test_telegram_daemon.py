"""Telegram commands against a real daemon: the chat and the control socket see the same handlers.

The daemon replays bundled candles with `[telegram] enabled`, its token in
a credential file, and talks to a fake Bot API on 127.0.0.1. What a chat
command does is checked through `fractalctl` (the other front end).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from daemon_harness import DaemonProcess, ctl_json, fractalctl, write_candles_csv, write_config
from fake_telegram import FakeBotApi

from fractald.core.figures import format_pct

pytestmark = pytest.mark.slow

CANDLES = 3000
CHAT, USER = 4242, 77
STRANGER_CHAT = 5151


def _wait_replayed(sock: Path, bars: int, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = fractalctl(sock, "--json", "status")
        if result.returncode == 0:
            status = json.loads(result.stdout)
            if status["daemon"]["ready"] and status["trading"].get("bars_processed") == bars:
                return
        time.sleep(0.3)
    raise AssertionError(f"replay of {bars} bars not done within {timeout}s")


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FakeBotApi, DaemonProcess, Path]]:
    tmp = tmp_path_factory.mktemp("telegram")
    with FakeBotApi() as fake:
        creds = tmp / "creds"
        creds.mkdir()
        (creds / "telegram-token").write_text(fake.token + "\n")
        candles = write_candles_csv(tmp / "candles.csv", 0, CANDLES)
        extra = (f'[telegram]\nenabled = true\nallowed_chat_ids = ["{CHAT}"]\n'
                 f'token_credential = "telegram-token"\napi_url = "{fake.url}"\npoll_timeout_s = 2\n')
        config = write_config(tmp, extra, candles=candles)
        daemon = DaemonProcess(config, env={"CREDENTIALS_DIRECTORY": str(creds)})
        try:
            _wait_replayed(tmp / "state" / "control.sock", CANDLES)
            yield fake, daemon, tmp / "state" / "control.sock"
        finally:
            daemon.kill()


def test_chat_commands_run_the_sockets_handlers(running: Any) -> None:
    fake, daemon, sock = running
    fake.user_sends(CHAT, USER, "/status")
    (status,) = fake.wait_for("sendMessage", 1, CHAT)
    assert "phase      ready" in status["text"] and "trading    ACTIVE" in status["text"]

    fake.user_sends(STRANGER_CHAT, 1, "/pause")  # never answered, never run
    fake.user_sends(CHAT, USER, "/pause")
    fake.wait_for("sendMessage", 2, CHAT)
    assert fake.sent("sendMessage", STRANGER_CHAT) == []
    assert ctl_json(sock, "status")["account"]["paused"] is True  # the socket sees the chat's pause
    audit = [line for line in daemon.log_lines() if line.get("event") == "telegram_command"]
    assert audit[-1]["cmd"] == "pause" and audit[-1]["chat_id"] == str(CHAT)
    assert audit[-1]["user_id"] == str(USER)
    refused = [line for line in daemon.log_lines() if line.get("event") == "telegram_refused"]
    assert refused and refused[0]["chat_id"] == str(STRANGER_CHAT)
    assert fake.token not in daemon.stdout_path.read_text()  # the token is never logged


def test_report_matches_fractalctl_and_comes_with_the_plot(running: Any) -> None:
    fake, _, sock = running
    before = len(fake.sent("sendMessage", CHAT))
    fake.user_sends(CHAT, USER, "/report all")
    table = fake.wait_for("sendMessage", before + 1, CHAT)[-1]["text"]
    fake.wait_for("sendPhoto", 1, CHAT, timeout=60)
    report = ctl_json(sock, "report")
    assert f"Max drawdown               {format_pct(report['drawdown']['max_pct'])}" in table
    assert fake.photos[-1][1][:8] == b"\x89PNG\r\n\x1a\n" and len(fake.photos[-1][1]) > 20_000


def test_halt_needs_the_button_then_trips_the_kill_switch(running: Any) -> None:
    fake, _, sock = running
    before = len(fake.sent("sendMessage", CHAT))
    fake.user_sends(CHAT, USER, "/halt")
    ask = fake.wait_for("sendMessage", before + 1, CHAT)[-1]
    assert ctl_json(sock, "status")["account"]["trading_state"] == "ACTIVE"  # asked, not done
    confirm = ask["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
    fake.user_presses(CHAT, USER, 1, confirm)
    fake.wait_for("sendMessage", before + 2, CHAT, timeout=30)
    view = ctl_json(sock, "breakers")
    assert view["trading_state"] == "HALTED"
    assert {b["breaker"] for b in view["breakers"] if b["tripped"]} == {"kill_switch"}
