"""The session's crash-only path in-process (fast): drop the session at random bars, recover.

A TradingSession with the real pipeline and paper broker trades real
candles into a real SQLite ledger; at seeded random points the session
is thrown away with whatever it had not committed (what SIGKILL does to
memory), the ledger closed, reopened, and a new session recovered from
it, fed the candles again from the first one. The ledger must then hold
exactly what one uninterrupted session writes, and be sound (positions
equal the fills, one submission per client order id, every intent ended
or still working). The subprocess version is tests/test_crash_daemon.py.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import structlog
from test_crash_daemon import assert_ledger_sound, ledger_rows, trading_record

from fractald.actors.events import EventBus
from fractald.config import Config
from fractald.core.bars import TimeframeRollup
from fractald.core.models import Bar
from fractald.session import TradingSession
from fractald.store.writer import AsyncLedger
from fractald.venues.replay import bundled_candles

CANDLES = 3000
CRASHES = 6


def feed(candles: list[Bar], config: Config) -> Iterator[Bar]:
    """What the replay feed sends: each 1m candle, then the higher bars it closes."""
    rollups = [TimeframeRollup(c.symbol, tf, "1m") for c in candles[:1]
               for tf in config.feed.timeframes if tf != "1m"]
    for candle in candles:
        yield candle
        for rollup in rollups:
            higher = rollup.on_base(candle)
            if higher is not None:
                yield higher


async def run(db_path: Path, bars: list[Bar], stops: list[int], config: Config) -> None:
    """Feed `bars` from the start after each recovery; at each stop index, drop everything."""
    log = structlog.get_logger("test")
    for stop in [*stops, len(bars)]:
        ledger = await AsyncLedger.open(db_path)
        session = await TradingSession.recover(config, ledger, log, EventBus())
        report = await session.reconcile("start")  # None while catching up: done after it
        assert report is None or report.clean, report
        for bar in bars[:stop]:
            await session.on_bar(bar)
        assert not session.catching_up
        assert session.last_reconcile.get("clean", True), session.last_reconcile
        if stop == len(bars):
            await session.write_snapshot("shutdown")
        await ledger.aclose()  # what was not committed is gone with `session`


async def test_dropped_sessions_recover_to_the_uninterrupted_record(tmp_path: Path) -> None:
    config = Config()
    bars = list(feed(bundled_candles()[:CANDLES], config))
    await run(tmp_path / "clean.db", bars, [], config)
    rng = random.Random(7)
    stops = sorted(rng.sample(range(len(bars) // 10, len(bars)), CRASHES))
    await run(tmp_path / "crashed.db", bars, stops, config)

    expected = ledger_rows(tmp_path / "clean.db")
    got = ledger_rows(tmp_path / "crashed.db")
    assert trading_record(expected)["fills"], "the candles must trade for this to mean anything"
    assert trading_record(got) == trading_record(expected)
    assert_ledger_sound(got)
