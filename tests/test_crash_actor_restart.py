"""Crash-only inside one process: a trading actor restarted after a transient error recovers
from the ledger (the same path as a cold start), and the feed restarts after its cursor.

The daemon runs in-process on a replay; a transient error is injected
into the trading actor once, mid-replay, after bars it had processed but
not yet committed. The supervisor restarts the actor; its state then
comes from the ledger, not from memory. The orders, fills and trades must
equal those of a run without the error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio
from daemon_harness import write_candles_csv, write_config
from test_crash_daemon import assert_ledger_sound, ledger_rows, trading_record

from fractald.config import load_config
from fractald.core.models import Bar
from fractald.daemon import Daemon
from fractald.errors import NetworkError
from fractald.notify import Notifier
from fractald.session import TradingSession

pytestmark = pytest.mark.slow

CANDLES = 4000
FAIL_AT_BAR = 2345


async def run_daemon(
    tmp: Path, candles: Path, fail_at_bar: int | None, monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    tmp.mkdir()
    config_path = write_config(tmp, replay_speed=0.0, candles=candles)
    daemon = Daemon(load_config(str(config_path)), str(config_path), Notifier())
    seen = {"bars": 0, "injected": 0}
    original = TradingSession.on_bars

    async def flaky(session: TradingSession, bars: list[Bar], accepting: Any) -> None:
        # The feed's bars reach the session a batch at a time: those before the failing
        # one are processed (and, making no event, not committed), then the error.
        for i, event in enumerate(bars):
            if event.timeframe == "1m":
                seen["bars"] += 1
                if seen["bars"] == fail_at_bar:
                    seen["injected"] += 1
                    await original(session, bars[:i], accepting)
                    raise NetworkError("injected transient failure in the trading actor")
        await original(session, bars, accepting)

    monkeypatch.setattr(TradingSession, "on_bars", flaky)
    status: list[int] = []
    with daemon.bus.subscribe({"trading_caught_up", "trading_recovered"}) as events:
        async with trio.open_nursery() as nursery:
            async def run() -> None:
                status.append(await daemon.run())
            nursery.start_soon(run)
            with trio.fail_after(120):
                while (await events.receive()).kind != "trading_caught_up":
                    pass
            recoveries_before_stop = daemon.trading.generation
            await daemon.shutdown()
    assert status == [0]
    rows = ledger_rows(tmp / "state" / "fractald.db")
    return {"rows": rows, "generation": recoveries_before_stop, "injected": seen["injected"],
            "restarts": {a["name"]: a["restarts"] for a in daemon.supervisor.snapshot()}}


async def test_trading_actor_restart_recovers_from_the_ledger(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    candles = write_candles_csv(tmp_path / "candles.csv", 0, CANDLES)
    clean = await run_daemon(tmp_path / "clean", candles, None, monkeypatch)
    failed = await run_daemon(tmp_path / "failed", candles, FAIL_AT_BAR, monkeypatch)

    assert clean["generation"] == 1 and clean["restarts"]["trading"] == 0
    assert failed["injected"] == 1
    assert failed["restarts"]["trading"] == 1
    assert failed["generation"] == 2  # recovered twice: at start and after the error
    assert failed["restarts"]["market_data"] == 0  # the feed restarted in place, not by failing
    expected = trading_record(clean["rows"])
    assert expected["fills"], "the replay must trade for this test to mean anything"
    # the failure came after bars processed but not committed: a restart that kept its
    # memory, or a feed that carried on where it was, would not give the same record
    assert trading_record(failed["rows"]) == expected
    assert_ledger_sound(failed["rows"])
