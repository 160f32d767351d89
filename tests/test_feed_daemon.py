"""The real daemon (a subprocess) on a live feed from a fake Binance USD-M venue on 127.0.0.1.

The fake runs in a thread on the real clock (venue time is the wall clock)
and misbehaves as a real venue does: firewall 403s on the public
handshake and REST, a symbol it does not list, silence before any data.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import pytest
from daemon_harness import DaemonProcess, NotifyListener, ctl_json
from fakevenue.live import LiveFake, steady_trades
from fakevenue.server import MIN, FakeBinance

pytestmark = pytest.mark.slow


def _config(tmp: Path, venue: FakeBinance, extra: str = "", feed: str = "", history: int = 5) -> Path:
    cfg = tmp / "fractald.toml"
    cfg.write_text(
        f'[daemon]\nstate_dir = "{tmp / "state"}"\ngate_timeout_s = 20.0\n'
        f'[feed]\nvenue = "binance-futures"\nsymbols = ["BTCUSDT"]\n'
        f'ws_url = "{venue.ws_url}"\nrest_url = "{venue.rest_url}"\nhistory_bars = {history}\n{feed}'
        f'[log]\nformat = "json"\nlevel = "info"\n{extra}')
    return cfg


def _market(**kw: Any) -> LiveFake:
    def make(t0_ms: int, now_ms: int) -> FakeBinance:
        return FakeBinance(steady_trades(now_ms - 30 * MIN, now_ms + 30 * MIN), t0_ms=t0_ms, **kw)
    return LiveFake(make)


def _events(daemon: DaemonProcess, name: str) -> list[dict[str, Any]]:
    return [line for line in daemon.log_lines() if line.get("event") == name]


def _wait_for(what: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = what()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s")


def test_public_403s_on_handshake_and_rest_are_retried_not_fatal(tmp_path: Path) -> None:
    listener = NotifyListener(tmp_path)
    with _market(ws_refuse=[403, 403], rest_refuse=[403, 400]) as venue:
        daemon = DaemonProcess(_config(tmp_path, venue), env={"NOTIFY_SOCKET": listener.address})
        try:
            listener.wait_for("READY", timeout=40, value="1")
            assert daemon.proc.poll() is None, "the daemon died"
            assert venue.handshakes_refused == 2 and venue.connections >= 1  # READY came after data
            refused = _wait_for(lambda: [line for line in _events(daemon, "backfill_failed")
                                         if line["error"] == "venue_refused"], timeout=20)
            assert "HTTP 400" in refused[0]["message"]  # the 400 on klines: the venue refusing, no crash
            assert daemon.proc.poll() is None
            assert daemon.stop(signal.SIGTERM, timeout=15) == 0
        finally:
            daemon.kill()
            listener.close()
    statuses = [s for _, path, s in venue.rest_log if path.endswith("/klines")]
    assert statuses[:2] == [403, 400]


def test_ready_waits_for_market_data_and_fails_the_start_clearly_without_it(tmp_path: Path) -> None:
    listener = NotifyListener(tmp_path)
    with LiveFake(lambda t0_ms, now_ms: FakeBinance([], t0_ms=t0_ms)) as venue:
        config = _config(tmp_path, venue, feed="").read_text().replace(
            "gate_timeout_s = 20.0", "gate_timeout_s = 4.0")
        (tmp_path / "fractald.toml").write_text(config)
        daemon = DaemonProcess(tmp_path / "fractald.toml", env={"NOTIFY_SOCKET": listener.address})
        try:
            status = daemon.proc.wait(30)
            listener.poll(0.2)
        finally:
            daemon.kill()
            listener.close()
    assert venue.connections >= 1  # it connected, subscribed, and the venue said nothing
    assert "1" not in listener.values("READY")
    assert status == 1
    assert all(line["event"] != "<non-json>" for line in daemon.log_lines())  # no traceback
    fatal = _events(daemon, "daemon_fatal")[0]["error"]
    assert fatal["code"] == "startup_gate_failed" and "'feeds' not passed" in fatal["message"]
    assert _events(daemon, "feed_no_data_yet")[0]["waiting_for"] == ["BTCUSDT"]


def test_a_quote_stamped_hours_ahead_moves_no_bar_and_the_host_clock_is_reported(tmp_path: Path) -> None:
    from fakevenue.server import Event, Trouble

    def make(t0_ms: int, now_ms: int) -> FakeBinance:
        trouble = [Event(now_ms + 15_000, Trouble.FUTURE_QUOTE, 7_200.0)]  # after the start, however slow
        return FakeBinance(steady_trades(now_ms - 30 * MIN, now_ms + 30 * MIN), t0_ms=t0_ms, trouble=trouble)

    with LiveFake(make) as venue:
        daemon = DaemonProcess(_config(tmp_path, venue, history=0))
        sock = tmp_path / "state" / "control.sock"
        try:
            _wait_for(lambda: _events(daemon, "timestamp_from_the_future"), timeout=60)
            time.sleep(2.5)  # the ticker runs every 0.25 s: the old clock would have closed 2 h of bars
            feed = ctl_json(sock, "status")["feed"]["BTCUSDT"]
            assert abs(feed["local_clock_ahead_ms"]) < 2_000 and not feed["stale"]
            assert daemon.stop(signal.SIGTERM, timeout=15) == 0
        finally:
            daemon.kill()
    assert all(g["end_ms"] <= time.time() * 1000 + 5 * MIN for g in _events(daemon, "bar_gap"))
    assert not _events(daemon, "late_trade")
    assert _events(daemon, "timestamp_from_the_future")[0]["kind"] == "quote"


def test_a_symbol_the_venue_does_not_list_stops_the_daemon_with_exit_78_naming_it(tmp_path: Path) -> None:
    with _market() as venue:
        config = _config(tmp_path, venue).read_text().replace('symbols = ["BTCUSDT"]', 'symbols = ["BTCUSDX"]')
        (tmp_path / "fractald.toml").write_text(config)
        daemon = DaemonProcess(tmp_path / "fractald.toml")
        try:
            status = daemon.proc.wait(40)
        finally:
            daemon.kill()
    assert status == 78
    assert venue.connections == 0  # never subscribed to a stream that would stay silent forever
    problem = _events(daemon, "unknown_symbol")[0]["problem"]
    assert "'BTCUSDX' is not listed by binance-futures" in problem and "BTCUSDT" in problem


def test_book_sync_runs_in_the_daemon_when_configured(tmp_path: Path) -> None:
    with _market() as venue:
        daemon = DaemonProcess(_config(tmp_path, venue, feed="book = true\n"))
        try:
            _wait_for(lambda: _events(daemon, "book_synced"), timeout=40)
            assert daemon.stop(signal.SIGTERM, timeout=15) == 0
        finally:
            daemon.kill()
    assert any(path == "/fapi/v1/depth" for _, path, _ in venue.rest_log)
