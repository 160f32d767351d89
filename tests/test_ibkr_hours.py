"""A future's trading hours: IB's for the few days they cover, the exchange calendar beyond (issue 19)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from fractald.core.bars import GapRequest
from fractald.venues.feed_ibkr import with_shut_minutes
from fractald.venues.ibkr_hours import calendar_sessions, open_at

pytest.importorskip("exchange_calendars")


def _ms(text: str) -> int:
    return int(datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=UTC).timestamp() * 1000)


# What IB's contract details gave on Monday 2025-11-24: Globex hours for that week only
# (17:00-16:00 Chicago = 23:00-22:00 UTC, with the daily hour's break).
IB_WEEK = tuple((_ms(f"2025-11-{d - 1:02d} 23:00"), _ms(f"2025-11-{d:02d} 22:00")) for d in (24, 25, 26))


def test_a_holiday_a_month_out_is_shut_though_ib_hours_do_not_reach_it() -> None:
    cmes = calendar_sessions("CMES")
    christmas, eve_late, eve_morning = _ms("2025-12-25 16:00"), _ms("2025-12-24 19:00"), _ms("2025-12-24 15:00")
    assert open_at(IB_WEEK, None, christmas) is None  # IB's hours alone: unknown a month out
    assert open_at(IB_WEEK, cmes, christmas) is False  # the calendar: Christmas, no session
    assert open_at(IB_WEEK, cmes, eve_morning) is True  # Christmas Eve trades in the morning ...
    assert open_at(IB_WEEK, cmes, eve_late) is False  # ... and closes early (12:00 Chicago)
    assert open_at(IB_WEEK, cmes, _ms("2025-12-23 16:00")) is True  # an ordinary day a month out


def test_ib_hours_win_where_they_reach() -> None:
    cmes = calendar_sessions("CMES")
    brk = _ms("2025-11-25 22:30")  # the daily maintenance break: IB says shut, CMES runs through it
    assert cmes.open_at(brk) is True and open_at(IB_WEEK, cmes, brk) is False
    assert open_at(IB_WEEK, cmes, _ms("2025-11-25 14:00")) is True
    assert cmes.open_at(_ms("2040-01-02 14:00")) is None  # past what the calendar knows: unknown


def test_a_backfill_across_a_past_holiday_fills_it_with_flat_bars() -> None:
    """The feed was away over Thanksgiving 2024; today's IB hours say nothing of it, CMES does."""
    cmes = calendar_sessions("CMES")
    start, end = _ms("2024-11-28 17:50"), _ms("2024-11-28 18:10")  # CME's early close: 12:00 CT
    gap = GapRequest("MES", "1m", start, end)

    def trading_at(ts: int) -> bool | None:
        return open_at(IB_WEEK, cmes, ts)

    from fractald.core.models import Bar

    fetched = [Bar("MES", "1m", t, 6000.0, 6001.0, 5999.0, 6000.5, 3.0)
               for t in range(start, _ms("2024-11-28 18:00"), 60_000)]
    bars = with_shut_minutes(fetched, gap, trading_at, 5990.0)
    assert [b.ts_open for b in bars] == list(range(start, end, 60_000))  # whole: nothing missing
    shut = bars[len(fetched):]
    assert len(shut) == 10 and all(b.volume == 0 and b.open == b.close == 6000.5 for b in shut)
    assert len(with_shut_minutes(fetched, gap, lambda ts: open_at(IB_WEEK, None, ts), 5990.0)) == len(fetched)


def test_an_unknown_calendar_is_named_by_check_config() -> None:
    from fractald.config import config_from_dict
    from fractald.errors import ConfigError

    with pytest.raises(ConfigError) as bad:
        config_from_dict({"feed": {"venue": "ibkr", "symbols": ["MES"], "ib_calendar": "CME_GLOBEX"}})
    [problem] = bad.value.problems
    assert problem.startswith("config.feed.ib_calendar: unknown exchange calendar 'CME_GLOBEX'")
    config_from_dict({"feed": {"venue": "ibkr", "symbols": ["MES"], "ib_calendar": ""}})  # none: fine


async def test_the_feed_takes_todays_hours_each_venue_day_without_a_roll() -> None:
    import types

    import trio
    from fakevenue.harness import RecordingLog

    from fractald.venues.feed import FeedSettings, FeedState
    from fractald.venues.feed_core import FeedCore
    from fractald.venues.feed_ibkr import IBKRFeed
    from fractald.venues.feed_output import FeedOutput
    from fractald.venues.ibkr_feed_link import Instrument

    contract = types.SimpleNamespace(conId=5)
    monday = Instrument("MES", "MESZ5", "20251219", 0.25, IB_WEEK, IB_WEEK, contract)
    later = tuple((s + 7 * 86_400_000, e + 7 * 86_400_000) for s, e in IB_WEEK)
    next_week = Instrument("MES", "MESZ5", "20251219", 0.25, later, later, contract)

    class Link:
        async def resolve(self, roots: list[str], today: str) -> dict[str, Instrument]:
            return {"MES": next_week}

    settings = FeedSettings(venue="ibkr", symbols=("MES",))
    send, _receive = trio.open_memory_channel[object](10)
    core = FeedCore(settings, ["MES"], FeedOutput(send), RecordingLog(), state=FeedState())
    feed = IBKRFeed(settings, core, Link(), RecordingLog())  # type: ignore[arg-type]
    feed.instruments, feed.day = {"MES": monday}, "20251124"
    core.venue_now_ms = lambda: _ms("2025-12-01 00:00")  # type: ignore[method-assign]
    await feed._roll_if_due()
    assert feed.instruments["MES"] is next_week and feed.day == "20251201"
    assert feed.instruments["MES"].trading_at(_ms("2025-12-02 14:00")) is True  # IB's, not unknown
