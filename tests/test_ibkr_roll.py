"""A futures roll on a live feed: the session back-adjusts what detection read (issue 19).

The bundled candles stand in for two contract months: up to 2022-01-03 00:00
UTC the old month, from there the new one trading GAP higher. A session told
of the roll (`ContractRolled`, what the IBKR feed sends) must then detect
exactly what a session fed the back-adjusted continuous series from the start
detects (no swing, FVG, order block or liquidity pool left at the old month's
prices), unlike one that sees the raw step; and a restart must rebuild the
same detection state from the adjusted candles it stored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import structlog
from test_session_recovery import feed

from fractald.actors.events import EventBus
from fractald.config import Config
from fractald.core.continuous import ContractRolled, shifted
from fractald.core.models import Bar
from fractald.core.pipeline import SetupSkipped, SignalEmitted
from fractald.session import TradingSession
from fractald.store.writer import AsyncLedger
from fractald.venues.replay import bundled_candles

GAP = 1500.0  # the new month trades this much over the old one (about 3 % of BTC in 2022)
ROLL_AT = 2939  # the first candle of 2022-01-03, UTC: a roll happens when the venue day turns
CANDLES = 4000


def _months() -> tuple[list[Bar], list[Bar], int]:
    candles = bundled_candles()[:CANDLES]
    roll_ts = candles[ROLL_AT].ts_open
    assert roll_ts % 86_400_000 == 0
    old = candles[:ROLL_AT]
    new = [shifted(b, GAP) for b in candles[ROLL_AT:]]
    return old, new, roll_ts


def _detection(session: TradingSession) -> dict[str, Any]:
    """Everything detection holds for the symbol, as comparable data."""
    [pipeline] = session.pipeline.pipelines.values()
    out: dict[str, Any] = {}
    for (tf, params), ms in sorted(pipeline._states.items(), key=lambda kv: (kv[0][0], repr(kv[0][1]))):
        smc = ms.smc
        out[f"{tf}/{params.swing_length}"] = (
            smc.bars_seen, smc.trend, smc.atr, ms.atr_slow, ms.volume_mean,
            smc.active_fvgs, smc.active_order_blocks, smc.liquidity_pools,
            smc.last_swing_high, smc.last_swing_low, smc.previous_high, smc.previous_low,
        )
    return out


def _setups(events: list[Any]) -> list[tuple[Any, ...]]:
    """What the strategies found (signals and skipped setups), without the engine's answers."""
    out: list[tuple[Any, ...]] = []
    for e in events:
        if isinstance(e, SignalEmitted):
            s = e.signal
            out.append(("signal", e.ts, s.strategy, s.side, s.entry, s.stop))
        elif isinstance(e, SetupSkipped):
            out.append(("skip", e.ts, e.strategy, e.code))
    return out


class _Recording(EventBus):
    def __init__(self) -> None:
        super().__init__()
        self.published: list[tuple[str, Any]] = []

    def publish(self, kind: str, data: Any = None, /) -> Any:
        self.published.append((kind, data))
        return super().publish(kind, data)


async def _run(
    db: Path, config: Config, before: list[Bar], after: list[Bar], roll: ContractRolled | None,
    bus: EventBus | None = None,
) -> tuple[TradingSession, AsyncLedger, list[tuple[Any, ...]], dict[str, Any]]:
    """Feed `before`, the roll (if any), then `after`; the setups found after the roll, and the
    detection state right after it."""
    ledger = await AsyncLedger.open(db)
    session = await TradingSession.recover(config, ledger, structlog.get_logger("test"), bus or EventBus())
    for bar in before:
        await session.on_bar(bar)
    if roll is not None:
        await session.on_contract_roll(roll)
    at_roll = _detection(session)
    found: list[tuple[Any, ...]] = []
    for bar in after:
        session_events = await _bar_events(session, bar)
        found += _setups(session_events)
    return session, ledger, found, at_roll


async def _bar_events(session: TradingSession, bar: Bar) -> list[Any]:
    made: list[Any] = []
    announce = session._announce

    def keep(events: list[Any]) -> None:
        made.extend(events)
        announce(events)

    session._announce = keep  # type: ignore[method-assign]
    try:
        await session.on_bar(bar)
    finally:
        session._announce = announce  # type: ignore[method-assign]
    return made


@pytest.mark.slow  # about 2 s: three sessions over 4,000 candles
async def test_a_roll_back_adjusts_detection_as_the_continuous_series_would(tmp_path: Path) -> None:
    config = Config()
    old, new, roll_ts = _months()
    before, after = list(feed(old, config)), list(feed(new, config))
    roll = ContractRolled("BTC-PERP", roll_ts, "MESZ1", "MESH2", GAP)
    bus = _Recording()
    rolled, ledger, found, at_roll = await _run(tmp_path / "rolled.db", config, before, after, roll, bus)

    # The same candles, back-adjusted before anything saw them (what a backtest trades).
    adjusted = list(feed([shifted(b, GAP) for b in old], config))
    cont, cont_ledger, cont_found, cont_at_roll = await _run(tmp_path / "cont.db", config, adjusted, after, None)
    assert at_roll == cont_at_roll  # every level detection holds sits at the new month's prices
    assert found == cont_found and found  # and it finds the very same setups from there on
    assert _detection(rolled) == _detection(cont)

    # Without the roll the step is a move of the market: detection holds other levels and
    # finds other setups on the new month's bars.
    raw, raw_ledger, raw_found, raw_at_roll = await _run(tmp_path / "raw.db", config, before, after, None)
    assert raw_found != found
    assert _detection(raw) != _detection(rolled)

    [(kind, detail)] = [p for p in bus.published if p[0] == "contract_rolled"]
    assert detail["offset"] == GAP and detail["candles_adjusted"] > 0 and detail["candles_replayed"] > 0

    # A restart rebuilds the same detection state from the adjusted candles the ledger holds.
    await rolled.write_snapshot("shutdown")
    await ledger.aclose()
    again = await TradingSession.recover(config, await AsyncLedger.open(tmp_path / "rolled.db"),
                                         structlog.get_logger("test"), EventBus())
    assert _detection(again) == _detection(rolled)
    await again.ledger.aclose()
    for led in (cont_ledger, raw_ledger):
        await led.aclose()


async def test_candles_not_yet_committed_at_the_roll_are_adjusted_too(tmp_path: Path) -> None:
    config = Config()
    old, new, roll_ts = _months()
    before = list(feed(old, config))
    ledger = await AsyncLedger.open(tmp_path / "s.db")
    session = await TradingSession.recover(config, ledger, structlog.get_logger("test"), EventBus())
    for bar in before:
        await session.on_bar(bar)
    pending = [row for row in session._candles if row[0] == "BTC-PERP"]
    await session.on_contract_roll(ContractRolled("BTC-PERP", roll_ts, "MESZ1", "MESH2", GAP))
    assert not session._candles  # committed with the roll's snapshot
    stored = await ledger.run(lambda led: led.candles_page(0, 100_000))
    by_key = {(r[1], r[2]): r for _, r in stored}
    originals = {(b.timeframe, b.ts_open): b for b in before}
    for (tf, ts), row in by_key.items():
        assert row[3:7] == tuple(getattr(originals[(tf, ts)], f) + GAP for f in ("open", "high", "low", "close"))
    assert pending and all((r[1], r[2]) in by_key for r in pending)
    await ledger.aclose()


def test_a_roll_refuses_a_step_that_is_no_price() -> None:
    import math

    with pytest.raises(ValueError, match="finite price step"):
        ContractRolled("MES", 0, "MESZ6", "MESH7", math.nan)


async def test_an_unmeasured_roll_is_estimated_from_the_new_months_first_bar_and_held_bars_move() -> None:
    """History has no minute of the new month to compare (or cannot be asked): the step is the new
    month's first open minus the old month's last close, sent before that bar; the old month's
    minutes of a 5m bar still open move with it, so the 5m bar is one series."""
    import types

    import trio
    from fakevenue.harness import RecordingLog

    from fractald.errors import NetworkError
    from fractald.venues.feed import FeedSettings, FeedState
    from fractald.venues.feed_core import FeedCore
    from fractald.venues.feed_ibkr import IBKRFeed
    from fractald.venues.feed_output import FeedOutput
    from fractald.venues.ibkr_feed_link import Instrument

    class Link:
        async def history(self, *args: object) -> list[Bar]:
            raise NetworkError("IBKR feed: not connected")

    old = Instrument("MES", "MESZ5", "20251219", 0.25, (), (), types.SimpleNamespace(conId=1))
    new = Instrument("MES", "MESH6", "20260320", 0.25, (), (), types.SimpleNamespace(conId=2))
    settings = FeedSettings(venue="ibkr", symbols=("MES",), timeframes=("1m", "5m"))
    send, receive = trio.open_memory_channel[object](100)
    log = RecordingLog()
    core = FeedCore(settings, ["MES"], FeedOutput(send), log, state=FeedState())
    feed = IBKRFeed(settings, core, Link(), log)  # type: ignore[arg-type]
    feed.instruments = {"MES": old}
    sym, t0 = core.symbols["MES"], 1_764_000_000_000 // 300_000 * 300_000
    for k in range(3):  # 10:00-10:02 of the old month
        await feed._minute(sym, Bar("MES", "1m", t0 + k * 60_000, 100.0, 101.0, 99.0, 100.5, 1.0))
    await feed._announce_roll(sym, old, new)
    feed.instruments = {"MES": new}
    for k in (3, 4):  # 10:03-10:04 of the new month, 20 over
        await feed._minute(sym, Bar("MES", "1m", t0 + k * 60_000, 120.5, 121.0, 119.5, 120.0, 2.0))
    out = []
    while True:
        try:
            out.append(receive.receive_nowait())
        except trio.WouldBlock:
            break
    kinds = [type(i).__name__ if not isinstance(i, Bar) else i.timeframe for i in out]
    assert kinds == ["1m", "1m", "1m", "ContractRolled", "1m", "1m", "5m"]
    roll = out[3]
    assert roll == ContractRolled("MES", t0 + 180_000, "MESZ5", "MESH6", 20.0, measured=False)
    five = out[-1]
    assert (five.open, five.high, five.low, five.close) == (120.0, 121.0, 119.0, 120.0)  # one series
    assert log.events("front_month_roll_gap")[0]["measured"] is False


async def test_a_roll_told_again_is_applied_once_even_after_a_restart(tmp_path: Path) -> None:
    config = Config()
    old, _new, roll_ts = _months()
    ledger = await AsyncLedger.open(tmp_path / "s.db")
    session = await TradingSession.recover(config, ledger, structlog.get_logger("test"), EventBus())
    for bar in feed(old[:600], config):
        await session.on_bar(bar)
    roll = ContractRolled("BTC-PERP", old[600].ts_open, "MESZ1", "MESH2", GAP)
    await session.on_contract_roll(roll)

    async def stored() -> list[Any]:
        return [r for _, r in await session.ledger.run(lambda led: led.candles_page(0, 100_000))]

    once = await stored()
    await session.on_contract_roll(roll)  # the feed restarted before a new-month bar was committed
    assert await stored() == once
    await ledger.aclose()
    again = await TradingSession.recover(config, await AsyncLedger.open(tmp_path / "s.db"),
                                         structlog.get_logger("test"), EventBus())
    await again.on_contract_roll(roll)  # and after a restart: the snapshot holds the roll's mark
    assert [r for _, r in await again.ledger.run(lambda led: led.candles_page(0, 100_000))] == once
    await again.ledger.aclose()


async def test_a_restart_after_a_roll_while_down_sends_the_step_before_any_bar() -> None:
    """The daemon was down over the roll: the consumer's cursor lies in the old month's days. The
    feed finds the month then, and sends the step over the cursor's minute before anything else."""
    import types
    from datetime import UTC, datetime

    import trio
    from fakevenue.harness import RecordingLog

    from fractald.venues.feed import FeedSettings, FeedState
    from fractald.venues.feed_core import FeedCore
    from fractald.venues.feed_ibkr import IBKRFeed
    from fractald.venues.feed_output import FeedOutput
    from fractald.venues.ibkr_feed_link import Instrument

    cursor = 1_764_000_000_000 // 60_000 * 60_000
    then = datetime.fromtimestamp(cursor / 1000, UTC).strftime("%Y%m%d")
    old = Instrument("MES", "MESZ5", "20251219", 0.25, (), (), types.SimpleNamespace(conId=1))
    new = Instrument("MES", "MESH6", "20260320", 0.25, (), (), types.SimpleNamespace(conId=2))
    closes = {1: 6000.0, 2: 6052.25}

    class Link:
        subscribed: list[Instrument] = []

        async def connect(self, push: object) -> None: ...

        async def resolve(self, roots: list[str], day: str, include_expired: bool = False) -> dict[str, Instrument]:
            assert include_expired == (day == then)  # the month then may have expired since
            return {"MES": old if day == then else new}

        async def history(self, inst: Instrument, start: int, end: int, timeout: float) -> list[Bar]:
            c = closes[inst.con_id]
            return [Bar("MES", "1m", start, c, c, c, c, 1.0)]

        async def subscribe(self, instruments: list[Instrument]) -> None:
            self.subscribed += instruments

    async def opened(resume: tuple[tuple[str, int], ...]) -> list[object]:
        settings = FeedSettings(venue="ibkr", symbols=("MES",), resume_after_ms=resume)
        send, receive = trio.open_memory_channel[object](100)
        core = FeedCore(settings, ["MES"], FeedOutput(send), RecordingLog(), state=FeedState())
        feed = IBKRFeed(settings, core, Link(), RecordingLog())  # type: ignore[arg-type]
        await feed._open(send)  # type: ignore[arg-type]
        out = []
        while True:
            try:
                out.append(receive.receive_nowait())
            except trio.WouldBlock:
                return out

    assert await opened((("MES", cursor),)) == [
        ContractRolled("MES", cursor + 60_000, "MESZ5", "MESH6", 52.25, measured=True)]
    assert await opened(()) == []  # a fresh start: nothing stored, nothing to adjust


async def test_the_trading_actor_hands_a_roll_to_its_session() -> None:
    import types

    from fractald.actors.trading import TradingActor

    got: list[ContractRolled] = []

    class Session:
        async def on_contract_roll(self, roll: ContractRolled) -> None:
            got.append(roll)

    roll = ContractRolled("MES", 60_000, "MESZ5", "MESH6", 12.5)
    await TradingActor.on_market(types.SimpleNamespace(session=Session()), roll)  # type: ignore[arg-type]
    assert got == [roll]


def test_the_candles_move_with_the_batch_or_not_at_all(tmp_path: Path) -> None:
    from fractald.errors import InvariantViolation
    from fractald.store.ledger import Ledger

    led = Ledger.open(tmp_path / "l.db")
    try:
        row = ("MES", "15m", 900_000, 100.0, 101.0, 99.0, 100.5, 3.0, True)
        led.commit_batch([], candles=[row])
        with pytest.raises(InvariantViolation):  # a claim of an order never recorded: all rolled back
            led.commit_batch([], {}, {"x": 1}, submissions=[("ghost", 1)], candle_shift=("MES", 10**7, 20.0))
        assert [r for _, r in led.candles_page(0)] == [row]
        led.commit_batch([], candles=[("MES", "15m", 1_800_000, 120.0, 121.0, 119.0, 120.5, 1.0, True)],
                         candle_shift=("MES", 1_800_000, 20.0))  # the new candle goes in after the move
        assert [r[3] for _, r in led.candles_page(0)] == [120.0, 120.0]
        assert led.candles_before("MES", 1_800_000) == 1
    finally:
        led.close()
