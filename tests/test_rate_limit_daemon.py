"""A rate-limit spell longer than the start-up gate: the daemon backs off and recovers (issue 14).

The real daemon (a subprocess) against the fake Binance on 127.0.0.1, which
answers every REST request and WebSocket handshake with 429 and a
Retry-After for longer than `gate_timeout_s`. Before, the feeds gate ran out
and the daemon stopped with exit 1 (systemd then restarted it into the same
spell, asking again at once). A venue asking us to wait is transient: the
start waits as long as the venue keeps asking, honouring Retry-After, and is
READY once data comes. A venue that is silent without asking still fails the
start clearly (tests/test_feed_daemon.py).
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest
from daemon_harness import DaemonProcess, NotifyListener
from fakevenue.live import LiveFake, steady_trades
from fakevenue.server import MIN, FakeBinance

pytestmark = pytest.mark.slow

SPELL_S = 12.0
GATE_S = 3.0


def _events(daemon: DaemonProcess, name: str) -> list[dict[str, Any]]:
    return [line for line in daemon.log_lines() if line.get("event") == name]


def test_a_429_spell_longer_than_the_gate_is_waited_out(tmp_path: Path) -> None:
    def make(t0_ms: int, now_ms: int) -> FakeBinance:
        return FakeBinance(steady_trades(now_ms - 30 * MIN, now_ms + 30 * MIN), t0_ms=t0_ms,
                           limited_for_s=SPELL_S, retry_after_s=2.0)

    listener = NotifyListener(tmp_path)
    with LiveFake(make) as venue:
        cfg = tmp_path / "fractald.toml"
        cfg.write_text(
            f'[daemon]\nstate_dir = "{tmp_path / "state"}"\ngate_timeout_s = {GATE_S}\n'
            f'[feed]\nvenue = "binance-futures"\nsymbols = ["BTCUSDT"]\n'
            f'ws_url = "{venue.ws_url}"\nrest_url = "{venue.rest_url}"\nhistory_bars = 5\n'
            f'[log]\nformat = "json"\nlevel = "info"\n')
        daemon = DaemonProcess(cfg, env={"NOTIFY_SOCKET": listener.address})
        try:
            listener.wait_for("READY", timeout=90, value="1")
            assert daemon.proc.poll() is None, "the daemon died"
            held = _events(daemon, "gate_held_by_venue")
            assert held and held[0]["gate"] == "feeds" and held[0]["retry_after_s"] > 0
            assert not _events(daemon, "daemon_fatal")
            assert venue.answered_429 >= 2  # it asked during the spell, and was told to wait
            assert daemon.stop(signal.SIGTERM, timeout=15) == 0
        finally:
            daemon.kill()
            listener.close()
