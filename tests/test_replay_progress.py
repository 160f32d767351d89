"""Replay progress: counted by the replay feed, shown by `fractalctl status` and systemd's STATUS
line, ending with "replay finished: run `fractalctl report`"."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import trio
from daemon_harness import DaemonProcess, NotifyListener, fractalctl, write_candles_csv, write_config

from fractald.venues.feed import FeedSettings, run_feed
from fractald.venues.replay_progress import FINISHED_HINT, ReplayProgress

MINUTE = 60_000
JAN_1 = 1_640_995_200_000  # 2022-01-01 00:00 UTC


def test_progress_line_fraction_and_eta() -> None:
    p = ReplayProgress()
    assert not p.active and p.fraction == 0.0
    p.start("bundled", 400, JAN_1, JAN_1 + 400 * MINUTE, now_s=100.0)
    p.advance(JAN_1 + MINUTE, now_s=100.0)
    assert p.eta_s() is None  # one item says nothing about the pace
    assert p.line() == "replay 0% (1 of 400 candles, at 2022-01-01 00:01)"
    for i in range(2, 101):
        p.advance(JAN_1 + i * MINUTE, now_s=100.0 + i * 0.1)
    # 100 candles in 10 s: 300 left take 30 s
    assert p.fraction == 0.25 and p.eta_s() == pytest.approx(30.0)
    assert p.line() == "replay 25% (100 of 400 candles, at 2022-01-01 01:40), ETA 30s"
    view = p.view()
    assert view["fraction"] == 0.25 and view["done"] == 100 and view["eta_s"] == 30.0
    assert view["data_at_ts"] == JAN_1 + 100 * MINUTE and view["finished"] is False
    p.finish(now_s=140.0)
    assert p.fraction == 1.0 and p.eta_s() == 0.0
    assert p.line() == f"{FINISHED_HINT} (100 candles replayed)"
    assert FINISHED_HINT == "replay finished: run `fractalctl report`"
    p.start("again", 0, None, None, now_s=150.0)  # a restarted replay counts afresh
    assert p.done == 0 and not p.finished and p.line() == "replay 0% (0 of 0 candles)"


def test_replay_feed_counts_every_candle(tmp_path: Path) -> None:
    candles = write_candles_csv(tmp_path / "c.csv", count=120)
    progress = ReplayProgress()
    seen: list[Any] = []

    async def main() -> None:
        send, receive = trio.open_memory_channel[Any](10_000)
        settings = FeedSettings(venue="replay", symbols=("BTC-PERP",), replay_path=str(candles),
                                replay_speed=0.0)
        async with send:
            await run_feed(settings, send, lambda: None, _NullLog(), progress=progress)
        async with receive:
            seen.extend([e async for e in receive])

    trio.run(main)
    assert seen and progress.finished and (progress.done, progress.total) == (120, 120)
    assert progress.first_ms == progress.ts_ms - 119 * MINUTE


class _NullLog:
    def __getattr__(self, name: str) -> Any:
        return lambda *a, **k: None


@pytest.mark.slow  # a daemon subprocess replaying 3,000 candles
def test_status_and_systemd_status_show_replay_progress_then_finished(tmp_path: Path) -> None:
    listener = NotifyListener(tmp_path)
    # 3,000 1m candles at 20,000x: 9 s of replay, long enough to be seen under way
    config = write_config(tmp_path, replay_speed=20_000)
    daemon = DaemonProcess(config, env={"NOTIFY_SOCKET": listener.address,
                                        "WATCHDOG_USEC": "2000000"})
    sock = tmp_path / "state" / "control.sock"
    try:
        under_way = _status_until(sock, lambda s: 0 < s.get("replay", {}).get("fraction", 0) < 1)
        replay = under_way["replay"]
        assert replay["total"] == 3000 and not replay["finished"]
        assert replay["progress"].startswith("replay ") and "of 3,000 candles" in replay["progress"]
        done = _status_until(sock, lambda s: s.get("replay", {}).get("finished"), timeout=120)
        assert done["replay"]["done"] == 3000 and done["replay"]["fraction"] == 1.0
        table = fractalctl(sock, "status")
        assert table.returncode == 0 and FINISHED_HINT in table.stdout
        listener.poll(2.5)  # a heartbeat or two after the end
        statuses = listener.values("STATUS")
        assert any("| replay " in s and "% (" in s for s in statuses), statuses
        assert FINISHED_HINT in statuses[-1]
    finally:
        daemon.kill()
        listener.close()


def _status_until(sock: Path, ok: Any, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        if sock.exists():
            result = fractalctl(sock, "--json", "status")
            if result.returncode == 0:
                status = json.loads(result.stdout)
                if ok(status):
                    return status
        time.sleep(0.1)
    raise AssertionError(f"status never matched within {timeout}s: {status.get('replay')}")
