"""A bar that went out wrong is corrected downstream, never only counted (issue 13, left items).

Trades lost in a short blackout (shorter than the silence timeout, so the
connection stays up) just before a bar's close: the bar goes out short of
them, the next trade's id shows the loss, and the feed fetches that bar at
once and sends the venue's true bar as a BarCorrection after it. A bar that
differs from the venue's own closed candle is corrected the same way, and
the higher timeframes still open are built from the true bar.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
import trio.testing
from fakevenue.harness import Collected, RecordingLog
from fakevenue.server import MIN, Event, FakeBinance, Trade, Trouble, minute_bars

from fractald.bar_corrections import apply_correction
from fractald.core.bars import BarCorrection, SymbolBars
from fractald.core.models import Bar
from fractald.session_state import candle_row
from fractald.store.writer import AsyncLedger
from fractald.venues.feed import FeedSettings, FeedState, run_feed

T0 = 1_700_006_400_000
SYMBOL = "BTCUSDT"


def _truth(minutes: int) -> list[Trade]:
    return [Trade(T0 + 500 + i * 1_500, 37_000.0 + (i * 7) % 23, 0.1 + (i % 5) / 10, i % 2 == 0)
            for i in range(minutes * 40)]


def _truth_bar(trades: list[Trade], minute: int) -> Bar:
    r = minute_bars(trades, SYMBOL)[T0 + minute * MIN]
    return Bar(SYMBOL, "1m", r[0], r[1], r[2], r[3], r[4], r[5])


@pytest.mark.slow  # over a second: out of the fast suite (issue 16)
async def test_a_blackout_before_a_close_is_refetched_and_the_true_bar_sent(
        mock_clock: trio.testing.MockClock) -> None:
    mock_clock.autojump_threshold = 0.001
    truth = _truth(8)
    # 2:52 to 3:01.5: the last trades of minute 2 and minute 2's closing candle never arrive.
    venue = FakeBinance(truth, t0_ms=T0, trouble=[Event(T0 + 2 * MIN + 52_000, Trouble.BLACKOUT, 9.5)])
    got, log = Collected(), RecordingLog()
    send, receive = trio.open_memory_channel[object](64)
    async with trio.open_nursery() as nursery:
        await nursery.start(venue.run)
        settings = FeedSettings(venue="binance-futures", symbols=(SYMBOL,), timeframes=("1m", "5m"),
                                ws_url=venue.ws_url, rest_url=venue.rest_url, silence_timeout_s=20.0,
                                grace_s=1.0, backoff_base_s=0.2, backoff_cap_s=2.0)
        nursery.start_soon(got.consume, receive)
        nursery.start_soon(run_feed, settings, send, got.beat, log, FeedState())
        with trio.move_on_after(6 * 60):
            while not [i for i in got.items if isinstance(i, BarCorrection)]:
                await trio.sleep(1.0)
        await trio.sleep(3 * 60)  # past minute 5: the 5m bar is out
        nursery.cancel_scope.cancel()
    true_bar = _truth_bar(truth, 2)
    sent = [b for b in got.bars_of("1m") if b.ts_open == true_bar.ts_open]
    assert len(sent) == 1 and sent[0] != true_bar  # it went out short of the lost trades
    corrections = [i for i in got.items if isinstance(i, BarCorrection)]
    assert [(c.bar, c.was, c.reason) for c in corrections] == [(true_bar, sent[0], "refetched")]
    # after the bar it corrects, in the stream
    assert got.items.index(corrections[0]) > got.items.index(sent[0])
    assert venue.connections == 1  # the connection never dropped: a short stall, repaired
    assert log.events("bar_corrected")[0]["reason"] == "refetched"
    # The 5m bar holding minute 2 was built from the true bar.
    five = [b for b in got.bars_of("5m") if b.ts_open == T0]
    want = [_truth_bar(truth, m) for m in range(5)]
    assert five and five[0].volume == pytest.approx(sum(b.volume for b in want))
    assert five[0].high == max(b.high for b in want) and five[0].low == min(b.low for b in want)


def test_a_bar_that_differs_from_the_venue_candle_after_it_went_out_is_corrected() -> None:
    bars = SymbolBars(SYMBOL, ["1m", "5m"], grace_ms=0)
    bars.add_trade(100.0, 1.0, T0 + 30_000)  # joined mid-minute 0: that bar is fetched (here: none)
    bars.resolve_gap([]) if bars.advance(T0 + MIN).gap else None
    for i in range(3):
        bars.add_trade(100.0 + i, 1.0, T0 + MIN + i * 1_000)  # minute 1: three trades
    [ours] = [b for b in bars.advance(T0 + 2 * MIN).bars if b.timeframe == "1m"]
    assert ours.ts_open == T0 + MIN and ours.complete
    venue = Bar(SYMBOL, "1m", T0 + MIN, 100.0, 105.0, 99.0, 104.0, 7.0)  # it saw trades we missed
    assert bars.venue_bar(venue) is False
    assert bars.take_corrections() == [BarCorrection(venue, ours, "venue_candle")]
    assert bars.take_corrections() == []
    for minute in range(2, 5):
        bars.add_trade(101.0, 1.0, T0 + minute * MIN + 1)
    five = [b for b in bars.advance(T0 + 5 * MIN).bars if b.timeframe == "5m"]
    assert five[0].high == 105.0 and five[0].low == 99.0 and five[0].volume == 11.0  # 1 + 7 (true) + 3
    assert bars.bars_corrected == 1
    # The same candle again changes nothing: what went out is the venue's now.
    assert bars.venue_bar(venue) is True and bars.take_corrections() == []


class _Bus:
    def __init__(self) -> None:
        self.published: list[tuple[str, dict[str, object]]] = []

    def publish(self, kind: str, payload: dict[str, object]) -> None:
        self.published.append((kind, payload))


async def test_the_ledgers_candle_is_replaced_and_the_operator_told(tmp_path: Path) -> None:
    ledger = await AsyncLedger.open(tmp_path / "fractald.db")
    try:
        wrong = Bar(SYMBOL, "1m", T0, 100.0, 101.0, 99.5, 100.5, 3.0)
        other = Bar(SYMBOL, "1m", T0 + MIN, 100.5, 101.0, 100.0, 100.8, 2.0)
        await ledger.run(lambda led: led.commit_batch([], candles=[candle_row(wrong),
                                                                  candle_row(other)]))
        true = Bar(SYMBOL, "1m", T0, 100.0, 103.0, 99.0, 102.0, 5.5)
        bus, log = _Bus(), RecordingLog()
        changed = await apply_correction(BarCorrection(true, wrong, "refetched"), ledger, bus, log)
        rows = await ledger.run(lambda led: led.candles_page(0))
    finally:
        await ledger.aclose()
    assert changed == 1
    assert [row for _, row in rows] == [candle_row(true), candle_row(other)]  # in place, in order
    [(kind, detail)] = bus.published
    assert kind == "bar_corrected" and detail["close"] == 102.0 and detail["was"]["close"] == 100.5
    assert log.events("bar_correction_applied")[0]["reason"] == "refetched"


def test_a_closed_5m_bar_holding_a_corrected_minute_is_corrected_too() -> None:
    bars = SymbolBars(SYMBOL, ["1m", "5m"], grace_ms=0)
    bars.add_trade(100.0, 1.0, T0 + 30_000)  # joined mid-minute 0
    bars.resolve_gap([Bar(SYMBOL, "1m", T0, 100.0, 100.0, 100.0, 100.0, 1.0)]) \
        if bars.advance(T0 + MIN).gap else None
    for minute in range(1, 5):
        bars.add_trade(101.0, 1.0, T0 + minute * MIN + 1)
    five = [b for b in bars.advance(T0 + 5 * MIN).bars if b.timeframe == "5m"]
    assert five and five[0].high == 101.0  # the 5m bar went out with the short minute 3
    true3 = Bar(SYMBOL, "1m", T0 + 3 * MIN, 101.0, 108.0, 100.5, 101.0, 4.0)
    assert bars.correct([true3], T0, T0 + 5 * MIN) == 1
    corrected = bars.take_corrections()
    assert [c.bar.timeframe for c in corrected] == ["1m", "5m"]
    assert corrected[1].bar.ts_open == T0 and corrected[1].bar.high == 108.0
    assert corrected[1].bar.volume == 1.0 + 1.0 + 1.0 + 4.0 + 1.0
