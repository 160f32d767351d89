"""Replay: candle files (CSV, JSON, Parquet), the bundled default, captures, pacing on MockClock."""

from __future__ import annotations

import itertools
from pathlib import Path

import pandas as pd
import pytest
import trio
import trio.testing
from fakevenue.data import CANDLES_CSV, CANDLES_JSON, FUTURES_WS, SPOT_WS
from fakevenue.harness import Collected, RecordingLog

from fractald.core.models import Bar, timeframe_ms
from fractald.datasets import bundled_btc_1m
from fractald.venues import replay
from fractald.venues.feed import FeedSettings, run_feed


def _check_no_hole_no_duplicate(bars: list[Bar]) -> None:
    opens = [b.ts_open for b in bars]
    step = timeframe_ms(bars[0].timeframe)
    assert opens == list(range(opens[0], opens[-1] + step, step))


def test_csv_json_parquet_load_the_same_candles(tmp_path: Path) -> None:
    csv_bars = replay.load_candles(CANDLES_CSV, "BTC-PERP")
    raw = pd.read_csv(CANDLES_CSV)
    assert len(csv_bars) == len(raw) == 3000
    assert csv_bars[0].ts_open == int(pd.Timestamp(raw["timestamp"][0], tz="UTC").value // 1_000_000)
    assert (csv_bars[0].open, csv_bars[0].close) == (raw["open"][0], raw["close"][0])
    _check_no_hole_no_duplicate(csv_bars)

    frame = pd.DataFrame({"date": [b.ts_open for b in csv_bars], "open": [b.open for b in csv_bars],
                          "high": [b.high for b in csv_bars], "low": [b.low for b in csv_bars],
                          "close": [b.close for b in csv_bars], "volume": [b.volume for b in csv_bars]})
    frame.to_parquet(tmp_path / "c.parquet")
    assert replay.load_candles(tmp_path / "c.parquet", "BTC-PERP") == csv_bars
    frame.to_json(tmp_path / "c.json", double_precision=15)  # pandas "columns" layout, like freqtrade's files
    assert replay.load_candles(tmp_path / "c.json", "BTC-PERP") == csv_bars


def test_freqtrade_json_is_five_minute_candles() -> None:
    bars = replay.load_candles(CANDLES_JSON, "BTCUSDT")
    assert len(bars) == 10_999 and bars[0].timeframe == "5m"
    assert bars[0].ts_open == 1672677900000
    _check_no_hole_no_duplicate(bars)


def test_bundled_default_matches_the_packaged_frame() -> None:
    bars = replay.bundled_candles()
    frame = bundled_btc_1m()
    assert len(bars) == len(frame) and bars[-1].close == frame["close"].iloc[-1]
    assert bars[0].symbol == "BTC-PERP"


@pytest.mark.parametrize("content, match", [
    ("a,b\n1,2\n", "missing column"),
    ("timestamp,open,high,low,close,volume\nnope,1,1,1,1,1\nx,1,1,1,1,1\n", "unreadable time"),
    ("timestamp,open,high,low,close,volume\n2021-01-01 00:00,1,1,1,1,1\n2021-01-01 00:07,1,1,1,1,1\n",
     "not a known timeframe"),
])
def test_bad_candle_files_name_the_problem(tmp_path: Path, content: str, match: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(replay.ReplayError, match=match):
        replay.load_candles(path, "X")
    with pytest.raises(replay.ReplayError, match="does not exist"):
        replay.load_candles(tmp_path / "none.csv", "X")
    with pytest.raises(replay.ReplayError, match="unknown candle format"):
        (tmp_path / "x.txt").write_text("")
        replay.load_candles(tmp_path / "x.txt", "X")


def test_capture_reader() -> None:
    url, lines = replay.read_capture(FUTURES_WS)
    assert url.startswith("wss://fstream.binance.com/stream?streams=")
    assert len(lines) == 764 + 613 + 91 + 67
    assert all(a.received_s <= b.received_s for a, b in itertools.pairwise(lines))


async def _run(settings: FeedSettings, capacity: int = 64) -> tuple[Collected, RecordingLog]:
    got, log = Collected(), RecordingLog()
    send, receive = trio.open_memory_channel[object](capacity)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(got.consume, receive)
        async with send:
            await run_feed(settings, send, got.beat, log)
    return got, log


@pytest.mark.slow  # over a second: out of the fast suite (issue 16)
async def test_embedded_default_replays_every_bundled_candle_and_rolls_up() -> None:
    got, log = await _run(FeedSettings(timeframes=("1m", "15m", "1h", "4h", "1d")), capacity=8)
    ones = got.bars_of("1m")
    assert ones == replay.bundled_candles()  # every candle, once, in order, untouched
    for tf in ("15m", "1h", "4h", "1d"):
        bars = got.bars_of(tf)
        _check_no_hole_no_duplicate(bars)
        assert all(b.complete for b in bars[1:])  # only the first, partial period is incomplete
    assert got.bars_of("1d")[0].ts_open % 86_400_000 == 0
    assert log.events("replay finished") and got.beats > 0
    last_health = got.health[-1]
    assert last_health.symbol == "BTC-PERP" and not last_health.stale and last_health.quality == 1.0


async def test_replay_speed_is_paced_on_the_trio_clock(autojump_clock: trio.testing.MockClock) -> None:
    start = trio.current_time()
    got, _ = await _run(FeedSettings(replay_path=str(CANDLES_CSV), replay_speed=60.0,
                                     timeframes=("1m", "5m")))
    elapsed = trio.current_time() - start
    # 3000 one-minute candles at 60x real time: 2999 minutes of data take 2999 seconds.
    assert elapsed == pytest.approx(2999.0, abs=1.0)
    assert len(got.bars_of("1m")) == 3000


async def test_replay_of_a_five_minute_file_skips_smaller_timeframes() -> None:
    got, log = await _run(FeedSettings(replay_path=str(CANDLES_JSON), symbols=("BTCUSDT",),
                                       timeframes=("1m", "5m", "1h")))
    assert not got.bars_of("1m") and len(got.bars_of("5m")) == 10_999
    assert log.events("replay_timeframes_below_data")[0]["skipped"] == ["1m"]
    _check_no_hole_no_duplicate(got.bars_of("1h"))


async def test_capture_replay_builds_bars_and_trades_from_real_messages() -> None:
    got, log = await _run(FeedSettings(replay_path=str(FUTURES_WS), timeframes=("1m",)))
    assert len(got.trades) == 91
    assert {q.symbol for q in got.quotes} == {"SUSHIUSDT", "AKROUSDT", "KEEPUSDT", "CTKUSDT"}
    sushi = [b for b in got.bars_of("1m") if b.symbol == "SUSHIUSDT"]
    _check_no_hole_no_duplicate(sushi)
    trades = [t for t in got.trades if t.symbol == "SUSHIUSDT"]
    minute = sushi[0].ts_open
    in_first = [t for t in trades if minute <= t.ts_event < minute + 60_000]
    assert sushi[0].volume == pytest.approx(sum(t.size for t in in_first))
    # The capture covers part of two minutes: neither is a whole bar, and both say so.
    assert not any(b.complete for b in sushi)
    assert log.events("replay finished")


async def test_spot_capture_replay_stamps_quotes_with_the_venue_clock() -> None:
    got, log = await _run(FeedSettings(replay_path=str(SPOT_WS), timeframes=("1m",)))
    assert got.quotes and all(q.ts_event > 1_633_998_000_000 for q in got.quotes)
    assert not log.events("unparsed_message")


async def test_resume_restarts_at_the_widest_bucket_and_rebuilds_whole_bars() -> None:
    """After a restart the replay re-sends just enough for every higher bar to be whole."""
    tfs = ("1m", "15m", "1h", "4h")
    full, _ = await _run(FeedSettings(replay_path=str(CANDLES_CSV), timeframes=tfs,
                                      symbols=("BTC-PERP",)))
    covered = full.bars_of("1m")[1000].ts_open  # state covers the 1001st minute
    resumed, log = await _run(FeedSettings(replay_path=str(CANDLES_CSV), timeframes=tfs,
                                           symbols=("BTC-PERP",),
                                           resume_after_ms={"BTC-PERP": covered}))
    start = covered // 14_400_000 * 14_400_000
    ones = resumed.bars_of("1m")
    assert ones[0].ts_open == start and ones[0].ts_open <= covered
    assert ones == [b for b in full.bars_of("1m") if b.ts_open >= start]
    for tf in ("15m", "1h", "4h"):
        assert resumed.bars_of(tf) == [b for b in full.bars_of(tf) if b.ts_open >= start]
    [line] = log.events("replay_resumed")
    assert line["candles_skipped"] == len(full.bars_of("1m")) - len(ones)
