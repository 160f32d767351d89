"""The IBKR market-data feed against the fake TWS on 127.0.0.1, through ib_async: how fast history
comes in, and how soon a live minute goes out after IB's closing 5 s bar.

    python bench/bench_ibkr_feed.py [--history 5000] [--minutes 2]

History: `--history` 1m bars of 5 s TRADES bars on the fake's tape, asked for by the feed's start
(history_bars) with one reqHistoricalData, decoded by ib_async, rolled up and emitted by the shared
FeedCore (1m and 5m): wall time and bars/s. Live: for each of `--minutes` minutes, the time from
the fake sending the next minute's first 5 s bar (the one that closes a minute) to the feed's 1m
bar leaving it (real time: a minute of bars takes a minute).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from fakevenue.fake_tws import FakeTWS
from fakevenue.harness import RecordingLog
from fakevenue.tws_market import VenueTime, bar_of, contract_around, minute_start, record, wave

from fractald.core.models import Bar
from fractald.venues.feed import FeedSettings, FeedState, run_feed


async def main(history: int, minutes: int) -> None:
    price = wave()
    fake = FakeTWS(contract=contract_around(time.time())).start()
    live = minute_start(time.time()) - 600
    record(fake, price, live - (history + 10) * 60, live)
    settings = FeedSettings(venue="ibkr", symbols=("MES",), timeframes=("1m", "5m"), ib_port=fake.port,
                            history_bars=history, backfill_timeout_s=120.0, health_interval_s=1.0)
    send, receive = trio.open_memory_channel[object](1024)
    out: list[tuple[float, Bar]] = []
    sent_at: dict[int, float] = {}

    async def collect() -> None:
        async for item in receive:
            if isinstance(item, Bar) and item.timeframe == "1m":
                out.append((time.perf_counter(), item))

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(collect)
            nursery.start_soon(run_feed, settings, send, lambda: None, RecordingLog(), FeedState())
            while not fake.bar_subscriptions:
                await trio.sleep(0.01)
            venue = VenueTime.before_minute(live + 65, 0.5)
            for ts in range(live, live + 60 * minutes + 5, 5):
                due = ts + 5 - venue.now()
                if due > 0:
                    await trio.sleep(due)
                if ts % 60 == 0 and ts > live:
                    sent_at[ts - 60] = time.perf_counter()
                if ts == live + 60:
                    history_started = time.perf_counter()
                fake.push_bar(ts, *bar_of(price, ts))
            last = live + 60 * (minutes - 1)
            with trio.fail_after(180):
                while not any(b.ts_open == last * 1000 for _, b in out):
                    await trio.sleep(0.005)
            nursery.cancel_scope.cancel()
    finally:
        fake.stop()
    got = {b.ts_open // 1000: t for t, b in out}
    hist = [t for t, b in out if b.ts_open // 1000 < live]
    span = max(hist) - history_started
    lat = [(got[m] - sent_at[m]) * 1000 for m in sent_at if m in got and m != live]
    first = (got[live] - sent_at[live]) * 1000
    print(f"history: {len(hist)} 1m bars (and their 5m) in {span:.2f} s = {len(hist) / span:,.0f} bars/s "
          "(one reqHistoricalData, ib_async decode, FeedCore)")
    print(f"first live minute out {first:.0f} ms after its closing 5 s bar (the history fetched first)")
    if lat:
        print(f"live minutes after it: {len(lat)}, close-to-out median {statistics.median(lat):.1f} ms, "
              f"max {max(lat):.1f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--history", type=int, default=5000)
    parser.add_argument("--minutes", type=int, default=2)
    a = parser.parse_args()
    trio.run(main, a.history, a.minutes)
