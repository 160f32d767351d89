"""`fractald run` (a real subprocess) on [feed] venue = "ibkr" against the fake TWS, paper trading:
READY once market data came, the history behind the first live minute backfilled from IB, a K1 setup
planted in that history signalled, sized to the v1 money limit ($15) and filled on IB's top of book."""

from __future__ import annotations

import math
import signal
import time
from pathlib import Path
from typing import Any

import pytest
import trio

pytest.importorskip("ib_async")

from daemon_harness import DaemonProcess, NotifyListener, ctl_json  # noqa: E402
from fakevenue.fake_tws import FakeTWS  # noqa: E402
from fakevenue.tws_market import VenueTime, contract_around, minute_start  # noqa: E402

pytestmark = pytest.mark.slow

Row = tuple[float, float, float, float, float]


def planted_session() -> list[Row]:
    """Forty quiet 1m bars around 5000, then one that pokes under VWAP's lower band and closes back up
    (the K1 setup of tests/test_k_templates.py, on MES prices)."""
    rows, prev = [], 5000.0
    for k in range(40):
        c = 5000.0 + 0.5 * math.sin(k * 1.3)
        rows.append((prev, max(prev, c) + 0.1, min(prev, c) - 0.1, c, 10.0))
        prev = c
    rows.append((4998.0, 4998.7, 4997.5, 4998.6, 10.0))
    return rows


def push_minute(fake: FakeTWS, minute_s: int, row: Row) -> None:
    """One 1m bar as the twelve 5 s bars that make it (open, then the high, the low, the close)."""
    o, h, lo, c, v = row
    path = [o] * 3 + [h] * 3 + [lo] * 3 + [c] * 3
    prev = o
    for i, p in enumerate(path):
        fake.push_bar(minute_s + 5 * i, prev, max(prev, p), min(prev, p), p, v / 12)
        prev = p


def _config(tmp: Path, fake: FakeTWS, session_start_minute: int) -> Path:
    cfg = tmp / "fractald.toml"
    cfg.write_text(
        f'[daemon]\nstate_dir = "{tmp / "state"}"\ngate_timeout_s = 40.0\n'
        f'[feed]\nvenue = "ibkr"\nsymbols = ["MES"]\ntimeframes = ["1m", "5m"]\nib_port = {fake.port}\n'
        'history_bars = 60\nreconnect_backoff_base_s = 0.2\n'
        '[broker]\nkind = "paper"\ntick_size = 0.25\nlot_size = 1.0\nlatency_ms = 0\nstarting_equity = 100000.0\n'
        '[risk]\nmax_risk_money = 15.0\n'
        '[strategies]\nenabled = ["k1_vwap_reversion"]\ntimeframe = "1m"\ntrend_timeframes = ["5m"]\n'
        '[strategies.params.k1_vwap_reversion]\n'
        f'session_start_minute = {session_start_minute}\nmin_session_bars = 20\nband_k = 2.0\ntick_size = 0.25\n'
        '[log]\nformat = "json"\nlevel = "info"\n')
    return cfg


def _wait(what: Any, timeout: float, label: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = what()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {label}")


def test_the_daemon_trades_a_k1_setup_on_ibkr_data_on_paper(tmp_path: Path) -> None:
    live = minute_start(time.time()) - 600  # the venue's clock runs ten minutes behind ours
    planted = live - 45 * 60
    fake = FakeTWS(price=4998.5, contract=contract_around(time.time())).start()
    listener = NotifyListener(tmp_path)
    daemon = None
    try:
        for k in range(planted // 60 * 60 - 20 * 60, planted, 60):  # the session before: flat
            push_minute(fake, k, (5000.0, 5000.0, 5000.0, 5000.0, 12.0))
        rows = planted_session()
        for k, row in enumerate(rows):
            push_minute(fake, planted + 60 * k, row)
        for k in range(planted + 60 * len(rows), live, 60):  # quiet after the poke, up to the live minute
            push_minute(fake, k, (4998.5, 4998.75, 4998.5, 4998.75, 6.0))
        fake.set_quote(4998.5, 10, 4998.75, 8)
        daemon = DaemonProcess(_config(tmp_path, fake, (planted // 60) % 1440),
                               env={"NOTIFY_SOCKET": listener.address})
        sock = tmp_path / "state" / "control.sock"
        _wait(lambda: fake.bar_subscriptions and fake.quote_subscriptions, 60, "the feed's subscriptions")
        listener.wait_for("READY", timeout=30, value="1")  # the quote was market data: the feeds gate passed
        venue = VenueTime.before_minute(live + 65, 1.0)
        trio.run(_stream_flat, fake, venue, live, live + 65)
        signals = _wait(lambda: [s for s in ctl_json(sock, "signals") if s.get("strategy") == "k1_vwap_reversion"],
                        40, "the K1 signal")
        trades = _wait(lambda: ctl_json(sock, "trades"), 30, "the paper trade")
        status = ctl_json(sock, "status")
        assert daemon.stop(signal.SIGTERM, timeout=20) == 0
    finally:
        if daemon is not None:
            daemon.kill()
        listener.close()
        fake.stop()
    assert signals[0]["side"] == "BUY" and signals[0]["outcome"] == "taken", signals[0]
    assert trades[0]["strategy"] == "k1_vwap_reversion" and trades[0]["symbol"] == "MES"
    feed = status["feed"]["MES"]
    assert feed["quality"] >= 0.8 and not feed["stale"]
    assert feed["spread_ticks"] == 1.0 and feed["outside_rth"] is False  # IB's top of book, in ticks
    lines = daemon.log_lines()
    gaps = [line for line in lines if line.get("event") == "bar_gap"]
    assert gaps and gaps[0]["filled"]  # the hour before the first live minute, from reqHistoricalData
    assert any(r[2] == "1 min" and not r[3] for r in fake.history_requests)
    fills = [line for line in lines if line.get("event") == "order_filled" and line.get("role") == "entry"]
    assert fills and fills[0]["signal_id"] == signals[0]["signal_id"] and fills[0]["quantity"] == 12.0  # $15 risk


async def _stream_flat(fake: FakeTWS, venue: VenueTime, start: int, end: int) -> None:
    for ts in range(start, end, 5):
        due = ts + 5 - venue.now()
        if due > 0:
            await trio.sleep(due)
        fake.push_bar(ts, 4998.75, 4998.75, 4998.5, 4998.5, 1.0)


def test_after_kill_9_the_daemon_refetches_what_it_missed_from_ib_and_carries_on(tmp_path: Path) -> None:
    live = minute_start(time.time()) - 600
    fake = FakeTWS(price=4998.5, contract=contract_around(time.time())).start()
    for k in range(live - 70 * 60, live, 60):  # more than the hour of history_bars
        push_minute(fake, k, (4998.5, 4998.75, 4998.25, 4998.5, 6.0))
    fake.set_quote(4998.5, 10, 4998.75, 8)
    config = _config(tmp_path, fake, 0)
    sock = tmp_path / "state" / "control.sock"
    first = second = None
    try:
        first = DaemonProcess(config)
        _wait(lambda: fake.bar_subscriptions, 60, "the first run's subscriptions")
        venue = VenueTime.before_minute(live + 65, 1.0)
        trio.run(_stream_flat, fake, venue, live, live + 65)
        _wait(lambda: ctl_json(sock, "status")["trading"]["cursor"].get("MES/1m") == live * 1000, 30,
              "the live minute in the trading state")
        first.kill()  # kill -9: no final snapshot, the ledger is what survives
        first.proc.wait(10)
        trio.run(_stream_flat, fake, venue, live + 65, live + 95)  # IB trades on; nobody listens
        second = DaemonProcess(config)
        _wait(lambda: fake.bar_subscriptions, 60, "the second run's subscriptions")
        trio.run(_stream_flat, fake, venue, live + 95, live + 125)
        _wait(lambda: ctl_json(sock, "status")["trading"]["cursor"].get("MES/1m") == (live + 60) * 1000, 40,
              "the minute the first run missed")
        assert second.stop(signal.SIGTERM, timeout=20) == 0
    finally:
        for d in (first, second):
            if d is not None:
                d.kill()
        fake.stop()
    assert second is not None
    lines = second.log_lines()
    assert [line for line in lines if line.get("event") == "feed_started"]
    gap = [line for line in lines if line.get("event") == "bar_gap"][0]  # history up to the new live minute
    assert gap["filled"] and gap["start_ms"] <= live * 1000 and gap["end_ms"] >= (live + 60) * 1000
    assert not [line for line in lines if line.get("level") == "error"]
