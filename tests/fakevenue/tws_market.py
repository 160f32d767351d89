"""A market for the fake TWS to stream: venue time, a price path, 5 s bars pushed as IB sends them.

IB sends a real-time bar when its 5 seconds have passed, so bars go out at
real time. The venue clock may run at an offset from this host's (`VenueTime`),
which lets a test start a few seconds before a minute boundary instead of
waiting for one; bars already due (their 5 s over) go out at once.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import trio

from fakevenue.fake_tws import FakeContract, FakeTWS

Price = Callable[[int], float]  # 5 s bar start (epoch s) -> its close


class VenueTime:
    """The venue's clock: this host's wall clock plus a fixed offset."""

    def __init__(self, offset_s: float = 0.0) -> None:
        self.offset_s = offset_s

    @classmethod
    def before_minute(cls, minute_s: int, seconds_before: float) -> VenueTime:
        """A clock that reads `seconds_before` short of the minute `minute_s` now."""
        return cls(minute_s - seconds_before - time.time())

    def now(self) -> float:
        return time.time() + self.offset_s


def wave(base: float = 5000.0, amp: float = 2.0, tick: float = 0.25) -> Price:
    """A gentle price path on the tick grid."""
    return lambda ts: round((base + amp * math.sin(ts / 47.0)) / tick) * tick


def bar_of(price: Price, ts: int, tick: float = 0.25) -> tuple[float, float, float, float, float]:
    o, c = price(ts - 5), price(ts)
    return o, max(o, c) + tick, min(o, c) - tick, c, 3.0 + ts % 7


def record(fake: FakeTWS, price: Price, start_s: int, end_s: int) -> None:
    """5 s bars [start_s, end_s) straight onto the tape (history nobody was subscribed to)."""
    for ts in range(start_s, end_s, 5):
        fake.push_bar(ts, *bar_of(price, ts))


async def stream(fake: FakeTWS, venue: VenueTime, price: Price, start_s: int, end_s: int) -> None:
    """5 s bars [start_s, end_s), each pushed once its 5 seconds have passed on the venue clock."""
    for ts in range(start_s, end_s, 5):
        due = ts + 5 - venue.now()
        if due > 0:
            await trio.sleep(due)
        fake.push_bar(ts, *bar_of(price, ts))


def contract_around(now_s: float, liquid: bool = True) -> FakeContract:
    """A front month three months out, trading all day around `now_s` (UTC hours); its regular
    hours cover now too, or (liquid=False) were one hour a day ago."""
    day = datetime.fromtimestamp(now_s, UTC)
    start, end = day - timedelta(days=1), day + timedelta(days=1)
    hours = f"{start:%Y%m%d}:{start:%H%M}-{end:%Y%m%d}:{end:%H%M}"
    hour = start + timedelta(hours=1)
    liquid_hours = hours if liquid else f"{start:%Y%m%d}:{start:%H%M}-{hour:%Y%m%d}:{hour:%H%M}"
    expiry = (day + timedelta(days=90)).strftime("%Y%m%d")
    return FakeContract(expiry=expiry, local_symbol="MESZ6", trading_hours=hours, liquid_hours=liquid_hours,
                        time_zone="UTC")


def minute_start(ts_s: float) -> int:
    return int(ts_s) - int(ts_s) % 60


__all__ = ["VenueTime", "bar_of", "contract_around", "minute_start", "record", "stream", "wave"]
