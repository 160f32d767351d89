"""A running daemon with a venue (the fake Hyperliquid), in one process: the supervisor restarts
the trading actor after a transient fault, and periodic reconciliation repairs what the user
stream missed.

The fake runs on the daemon's own trio loop, so the test can mute its user stream (a WS gap)
and change things at the venue "by hand". Afterwards, from both sides: no client order id
went out twice, every venue fill is in the ledger once, positions agree, and a reduce-only
stop rests at the venue for the whole position.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trio
from daemon_harness import ctl_json
from test_daemon_hyperliquid import (
    USER,
    credentials,
    hl_config,
    make_fake,
    sent_cloids,
    venue_stops,
)
from venue_daemon_support import candles_ending_now, ledger_view

from fractald.config import load_config
from fractald.daemon import Daemon
from fractald.errors import NetworkError
from fractald.notify import Notifier

pytestmark = pytest.mark.slow


async def until(what: Callable[[], Any], why: str, timeout: float = 30.0) -> Any:
    with trio.fail_after(timeout):
        while not (got := what()):
            await trio.sleep(0.05)
    return got


async def ctl(sock: Path, *args: str) -> Any:
    return await trio.to_thread.run_sync(lambda: ctl_json(sock, *args))


async def reconciled(daemon: Daemon) -> Any:
    """A reconciliation, once nothing is in flight between trading and the venue (else None)."""
    with trio.fail_after(30):
        while (report := await daemon.trading.reconcile_now("test")) is None:
            await trio.sleep(0.1)
    return report


def position(fake: Any) -> float:
    return float(fake.exchange.users[USER.address.lower()].positions.get("BTC", (0.0, 0.0))[0])


def restarts(daemon: Daemon) -> dict[str, int]:
    return {a["name"]: a["restarts"] for a in daemon.supervisor.snapshot()}


async def test_trading_restarts_inside_a_daemon_with_a_venue_and_reconciliation_repairs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    candles, close = candles_ending_now(tmp_path / "candles.csv")
    fake = make_fake(close)
    for key, value in credentials(tmp_path).items():
        monkeypatch.setenv(key, value)
    sock = tmp_path / "state" / "control.sock"
    async with trio.open_nursery() as nursery:
        await nursery.start(fake.run)
        config = hl_config(tmp_path, fake, candles)
        daemon = Daemon(load_config(str(config)), str(config), Notifier())
        # One transient fault in the trading actor, armed below: on the venue's first report.
        armed = {"on": False, "fired": 0}
        apply_report = daemon.trading._apply_report

        async def flaky(report: Any) -> None:
            if armed["on"]:
                armed["on"] = False
                armed["fired"] += 1
                raise NetworkError("injected transient failure while applying a venue report")
            await apply_report(report)

        daemon.trading._apply_report = flaky  # type: ignore[method-assign]
        status: list[int] = []

        async def run() -> None:
            status.append(await daemon.run())

        with daemon.bus.subscribe({"trading_caught_up"}) as events:
            nursery.start_soon(run)
            with trio.fail_after(90):
                while (await events.receive()).kind != "trading_caught_up":
                    pass

        # 1. The entry's first report kills trading; the supervisor restarts it, it recovers from
        # the ledger, the router asks the venue by client order id, and the stop goes out once.
        armed["on"] = True
        stop = round(close * 0.98, 1)
        entered = await ctl(sock, "enter", "BTC", "long", "--stop", str(stop),
                            "--target", str(round(close * 1.004, 1)))
        assert not entered["denied"], entered
        held = await until(lambda: position(fake), "the entry to fill at the venue")
        await until(lambda: armed["fired"] == 1 and daemon.trading.generation == 2, "the restart")
        await until(lambda: abs(sum(float(o.sz) for o in venue_stops(fake)) - held) < 1e-9,
                    "the stop to rest after the restart")
        assert restarts(daemon)["trading"] == 1
        books = await ctl(sock, "positions")
        assert sum(p["quantity"] for p in books) == pytest.approx(held)

        # 2. The user stream goes quiet (a WS gap) while things change at the venue; nothing reaches
        # the engine until reconciliation asks. First someone cancels the stop by hand: it is
        # ended in the books, and the bracket places a new one at once.
        router = daemon.router.router if daemon.router is not None else None
        await until(lambda: router is not None and not router.unresolved, "the router to settle")
        emit, fake.exchange.emit = fake.exchange.emit, lambda user, channel, data: None
        user = fake.exchange.users[USER.address.lower()]
        [resting] = venue_stops(fake)
        fake.exchange._cancel(user, resting)
        assert venue_stops(fake) == []
        report = await reconciled(daemon)
        assert [(r.outcome, r.reason) for r in report.repairs] == [("CANCEL", "venue_canceled")], report
        [replaced] = await until(lambda: venue_stops(fake), "a new stop at the venue")
        assert float(replaced.sz) == pytest.approx(held) and replaced.cloid != resting.cloid
        assert float(replaced.trigger_px) == pytest.approx(float(resting.trigger_px))

        # Then the target fills at the venue, still unheard: the fill is recorded once, with the
        # venue's trade id, and closes the trade (reason: its target).
        fake.set_price("BTC", close * 1.006)
        assert position(fake) == 0.0
        report = await reconciled(daemon)
        assert [r.outcome for r in report.repairs] == ["FILL"], report  # checked against the ledger below
        fake.exchange.emit = emit
        await until(lambda: venue_stops(fake) == [], "the stop cancelled with the trade")
        again = await reconciled(daemon)
        assert again.clean, again
        trades = await ctl(sock, "trades")
        assert len(trades) == 1 and trades[0]["exit_reason"] == "target", trades
        assert "reconciliation" not in {b["breaker"] for b in (await ctl(sock, "breakers"))["breakers"]
                                        if b["tripped"]}

        # 3. What is not definitive: someone places an order of their own on the account. Seen once
        # it is a warning; seen again, REDUCING with the code, and the alert goes out.
        fake.exchange._place(user, {"a": 0, "b": True, "p": str(round(close * 0.9)), "s": "0.01",
                                    "r": False, "t": {"limit": {"tif": "Gtc"}}})
        with daemon.bus.subscribe({"reconcile_mismatch"}) as alerts:
            first = await reconciled(daemon)
            assert [m.code.value for m in first.mismatches] == ["unknown_order"]
            assert not [b for b in (await ctl(sock, "breakers"))["breakers"] if b["tripped"]]
            await reconciled(daemon)
            with trio.fail_after(5):
                alert = await alerts.receive()
        assert alert.data["mismatches"][0]["code"] == "unknown_order"
        [tripped] = [b for b in (await ctl(sock, "breakers"))["breakers"] if b["tripped"]]
        assert (tripped["breaker"], tripped["state"]) == ("reconciliation", "REDUCING")
        assert "unknown_order" in tripped["reason"]
        assert (await ctl(sock, "status"))["trading"]["reconcile"]["codes"] == ["unknown_order"]
        await daemon.shutdown()
        nursery.cancel_scope.cancel()
    assert status in ([0], [])
    cloids = sent_cloids(fake)
    assert len(cloids) == len(set(cloids)), "a client order id went out twice"
    fills, rows, positions = ledger_view(tmp_path / "state" / "fractald.db")
    venue_fills = {str(f["tid"]): (f["cloid"][2:], float(f["sz"])) for f in user.fills}
    assert rows == len(fills) and fills == venue_fills
    assert positions.get("BTC", 0.0) == pytest.approx(position(fake))


async def test_start_up_reconciles_with_the_venue_before_any_feed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An order nobody here placed, found at start: said at once (a warning, the code in status)."""
    candles, close = candles_ending_now(tmp_path / "candles.csv")
    fake = make_fake(close)
    for key, value in credentials(tmp_path).items():
        monkeypatch.setenv(key, value)
    user = fake.exchange.users[USER.address.lower()]
    async with trio.open_nursery() as nursery:
        await nursery.start(fake.run)
        fake.exchange._place(user, {"a": 0, "b": True, "p": str(round(close * 0.9)), "s": "0.01",
                                    "r": False, "t": {"limit": {"tif": "Gtc"}}})
        config = hl_config(tmp_path, fake, candles)
        daemon = Daemon(load_config(str(config)), str(config), Notifier())
        with daemon.bus.subscribe({"trading_recovered", "trading_caught_up"}) as events:
            nursery.start_soon(daemon.run)
            with trio.fail_after(90):
                while (await events.receive()).kind != "trading_caught_up":
                    pass
        status = await ctl(tmp_path / "state" / "control.sock", "status")
        assert status["trading"]["reconcile"]["why"] == "start"
        assert status["trading"]["reconcile"]["codes"] == ["unknown_order"]
        await daemon.shutdown()
        nursery.cancel_scope.cancel()
