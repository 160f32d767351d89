"""IB's historical-data pacing: the fake TWS refuses what IB refuses, and the feed never asks for it.

IB's rules ("Historical Data Limitations"): no identical request within 15 s,
no six or more for one contract within 2 s, no more than 60 in ten minutes;
a request breaking one gets error 162 "Historical Market Data Service error
message:Historical data request pacing violation" instead of bars.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import trio

from fractald.errors import RateLimited
from fractald.venues.ibkr_pacing import HistoryLimits, HistoryPacing

ib_async = pytest.importorskip("ib_async")

from fakevenue.fake_tws import FakeTWS, PacingRules  # noqa: E402
from fakevenue.tws_market import contract_around, record, wave  # noqa: E402

PACING_TEXT = "Historical Market Data Service error message:Historical data request pacing violation"


# -- the budget, on its own clock -----------------------------------------------------------
def test_an_identical_request_waits_out_fifteen_seconds_another_goes_at_once() -> None:
    pacing = HistoryPacing(HistoryLimits(margin_s=0.0))
    pacing.sent(100.0, "a", "MES")
    assert pacing.wait_s(101.0, "a", "MES") == 14.0
    assert pacing.wait_s(101.0, "b", "MES") == 0.0
    assert pacing.wait_s(115.0, "a", "MES") == 0.0


def test_the_sixth_request_for_a_contract_in_two_seconds_waits() -> None:
    pacing = HistoryPacing(HistoryLimits(margin_s=0.0))
    for i in range(5):
        pacing.sent(10.0 + i * 0.1, f"r{i}", "MES")
    assert pacing.wait_s(10.5, "r5", "MES") == pytest.approx(1.5)  # until the first is 2 s old
    assert pacing.wait_s(10.5, "r5", "MNQ") == 0.0  # another contract has its own five


def test_the_sixty_first_request_in_ten_minutes_waits_for_the_first_to_age_out() -> None:
    pacing = HistoryPacing(HistoryLimits(margin_s=0.5))
    for i in range(60):
        pacing.sent(i * 5.0, f"r{i}", f"c{i % 7}")  # 60 in 295 s, spread over contracts
    assert pacing.wait_s(300.0, "r60", "c60") == pytest.approx(600.0 + 0.5 - 300.0)
    assert pacing.wait_s(600.5, "r60", "c60") == 0.0  # the first is out of the window: room for one
    pacing.sent(600.5, "r60", "c60")
    assert pacing.wait_s(600.5, "r61", "c61") == pytest.approx(605.5 - 600.5)


def test_a_violation_ib_reports_anyway_holds_every_request() -> None:
    pacing = HistoryPacing(HistoryLimits(margin_s=0.0))
    pacing.refused(50.0, 60.0)
    assert pacing.wait_s(55.0, "x", "MES") == 55.0


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="requests must be a positive number"):
        HistoryLimits(requests=0)
    with pytest.raises(ValueError, match="window_s must be a positive number"):
        HistoryLimits(window_s=float("nan"))


# -- against the fake TWS -------------------------------------------------------------------
@pytest.fixture
def fake() -> Iterator[FakeTWS]:
    tws = FakeTWS(price=5000.0, contract=contract_around(time.time())).start()
    try:
        yield tws
    finally:
        tws.stop()


def test_the_fake_refuses_what_ib_refuses_through_ib_asyncs_own_client(fake: FakeTWS) -> None:
    import datetime as dt

    now = int(time.time()) // 60 * 60
    record(fake, wave(), now - 1200, now)
    ib = ib_async.IB()
    errors: list[tuple[int, str]] = []
    ib.errorEvent += lambda req_id, code, message, *_: errors.append((code, message))
    ib.connect("127.0.0.1", fake.port, clientId=9, timeout=5)
    try:
        [cd] = ib.reqContractDetails(ib_async.Future("MES", exchange="CME"))

        def ask(minutes_back: int) -> list[object]:
            end = dt.datetime.fromtimestamp(now - 60 * minutes_back, dt.UTC)
            return list(ib.reqHistoricalData(cd.contract, end, "60 S", "1 min", "TRADES", False, formatDate=2))

        assert ask(1) and ask(2)
        assert ask(1) == [] and errors[-1] == (162, PACING_TEXT)  # identical within 15 s
        assert ask(3) and ask(4)  # five for the contract so far
        assert ask(5) == [] and errors[-1] == (162, PACING_TEXT)  # the sixth within two seconds
        assert fake.pacing_violations == 2
    finally:
        ib.disconnect()


async def _link_with(fake: FakeTWS, limits: HistoryLimits) -> object:
    from fractald.venues.ibkr_feed_link import IBFeedLink, IBFeedSettings

    link = IBFeedLink(IBFeedSettings(port=fake.port, client_id=21, history_limits=limits))
    send, _receive = trio.open_memory_channel[object](1000)
    await link.connect(send)  # type: ignore[arg-type]
    return link


@pytest.mark.slow  # paces real requests for a few seconds
async def test_the_feed_keeps_within_the_pacing_rules_and_defers_what_would_wait_long(fake: FakeTWS) -> None:
    now = int(time.time()) // 60 * 60
    record(fake, wave(), now - 1200, now)
    # IB's rules shrunk to seconds on both sides: four requests in any three seconds.
    fake.pacing = PacingRules(requests=4, window_s=3.0, identical_s=15.0, per_contract=6, per_contract_s=2.0)
    limits = HistoryLimits(requests=4, window_s=3.0, identical_s=15.0, per_contract=5, per_contract_s=2.0)
    link = await _link_with(fake, limits)
    try:
        [inst] = (await link.resolve(["MES"], time.strftime("%Y%m%d", time.gmtime()))).values()  # type: ignore[attr-defined]
        got, start = [], trio.current_time()
        for i in range(1, 9):  # eight different minutes, as fast as the budget lets them go
            end_ms = (now - 60 * i) * 1000
            got.append(await link.history(inst, end_ms - 60_000, end_ms, timeout_s=12.0))  # type: ignore[attr-defined]
        took = trio.current_time() - start
        assert all(len(bars) == 1 for bars in got)  # every one answered with its minute
        assert fake.pacing_violations == 0 and link.pacing.waited >= 1  # type: ignore[attr-defined]
        assert took >= 3.0  # the fifth waited for the first to leave the three-second window
        # The same request again within 15 s would wait longer than a backfill may: refused here,
        # never sent (the feed asks for the stretch again later).
        sent = len(fake.history_requests)
        with pytest.raises(RateLimited, match="pacing rules") as paced:
            await link.history(inst, (now - 120) * 1000, (now - 60) * 1000, timeout_s=12.0)  # type: ignore[attr-defined]
        assert paced.value.retry_after_s is not None and paced.value.retry_after_s > 2.0
        assert len(fake.history_requests) == sent
    finally:
        link.close()  # type: ignore[attr-defined]

    # Without the budget the same eight trip the fake's rule and come back empty.
    unguarded = await _link_with(fake, HistoryLimits(requests=10_000, identical_s=0.001, per_contract=10_000))
    try:
        [inst] = (await unguarded.resolve(["MES"], time.strftime("%Y%m%d", time.gmtime()))).values()  # type: ignore[attr-defined]
        await trio.sleep(3.1)  # the guarded run's requests leave the fake's window
        answers = []
        for i in range(1, 9):
            end_ms = (now - 60 * i) * 1000
            answers.append(await unguarded.history(inst, end_ms - 60_000, end_ms, timeout_s=12.0))  # type: ignore[attr-defined]
        assert [] in answers and fake.pacing_violations >= 4
    finally:
        unguarded.close()  # type: ignore[attr-defined]


async def test_a_pacing_violation_from_ib_holds_the_feeds_history_requests(fake: FakeTWS) -> None:
    from fakevenue.harness import RecordingLog

    from fractald.venues.feed import FeedSettings, FeedState
    from fractald.venues.feed_core import FeedCore
    from fractald.venues.feed_ibkr import PACING_HOLD_S, IBKRFeed, ib_settings
    from fractald.venues.feed_output import FeedOutput
    from fractald.venues.ibkr_feed_link import IBFeedLink, LinkNotice

    settings = FeedSettings(venue="ibkr", symbols=("MES",), ib_port=fake.port)
    send, _receive = trio.open_memory_channel[object](100)
    log = RecordingLog()
    core = FeedCore(settings, ["MES"], FeedOutput(send), log, state=FeedState())
    link = IBFeedLink(ib_settings(settings))
    feed = IBKRFeed(settings, core, link, log)
    await feed._notice(LinkNotice(162, PACING_TEXT, 7))
    [held] = log.events("ibkr_history_pacing_violation")
    assert held["hold_s"] == PACING_HOLD_S and held["req_id"] == 7
    assert link.pacing.wait_s(trio.current_time(), "any", "MES") >= PACING_HOLD_S - 1
    await feed._notice(LinkNotice(162, "Historical Market Data Service error message:HMDS query returned no data", 8))
    assert len(log.events("ibkr_history_pacing_violation")) == 1  # no data is no violation
