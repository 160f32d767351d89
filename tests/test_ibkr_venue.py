"""The IBKR Venue (ib_async on its own asyncio thread, bridged to trio) against the fake TWS."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import trio

pytest.importorskip("ib_async")

from fakevenue.fake_tws import FakeTWS  # noqa: E402
from fractald.core.execution.events import OrderIntent  # noqa: E402
from fractald.core.execution.orders import OrderEvent, OrderType  # noqa: E402
from fractald.core.execution.reports import VenueReport  # noqa: E402
from fractald.core.models import Side  # noqa: E402
from fractald.venues.ibkr import IBKRVenue, IBSettings, front_month  # noqa: E402
from fractald.venues.ibkr_codes import IBCategory, categorize  # noqa: E402


def intent(cid: str, side: Side, kind: OrderType, qty: float = 2.0, price: float | None = None,
           trigger: float | None = None, role: str = "entry") -> OrderIntent:
    return OrderIntent(0, cid, "MES", side, kind, qty, price=price, trigger_price=trigger, role=role)


@pytest.fixture
def fake() -> Iterator[FakeTWS]:
    tws = FakeTWS(price=5000.0).start()
    try:
        yield tws
    finally:
        tws.stop()


@pytest.fixture
async def venue(fake: FakeTWS) -> AsyncIterator[IBKRVenue]:
    v = IBKRVenue(IBSettings(port=fake.port, client_id=21, entry_ttl_s=1.5))
    await v.connect()
    try:
        yield v
    finally:
        await v.close()


async def _next(receive: trio.MemoryReceiveChannel[VenueReport], timeout: float = 5.0) -> VenueReport:
    with trio.fail_after(timeout):
        return await receive.receive()


async def test_instruments_and_account_come_from_ib(venue: IBKRVenue) -> None:
    spec = (await venue.instruments())["MES"]
    assert (spec.tick_size, spec.multiplier, spec.lot_size) == (0.25, 5.0, 1.0)
    account = await venue.account()
    assert (account.equity, account.available, account.currency) == (25000.0, 23000.0, "USD")
    assert await venue.positions() == {}


async def test_a_bracket_rests_its_stop_at_ib_and_fills_come_back_by_our_ids(
        venue: IBKRVenue, fake: FakeTWS, nursery: trio.Nursery) -> None:
    send, receive = trio.open_memory_channel[VenueReport](100)
    nursery.start_soon(venue.stream_reports, send)
    await trio.sleep(0.2)
    acks = await venue.submit_bracket(intent("e1", Side.BUY, OrderType.LIMIT, price=4999.0),
                                      intent("s1", Side.SELL, OrderType.STOP_MARKET, trigger=4990.0, role="stop"),
                                      [intent("t1", Side.SELL, OrderType.LIMIT, price=5010.0, role="target")])
    assert [a.kind for a in acks] == [OrderEvent.ACCEPT] * 3
    assert [a.client_order_id for a in acks] == ["e1", "s1", "t1"]
    await trio.to_thread.run_sync(fake.set_price, 4998.0)
    fill = await _next(receive)
    assert (fill.kind, fill.client_order_id, fill.quantity, fill.price) == (OrderEvent.FILL, "e1", 2.0, 4998.0)
    assert fill.fee == pytest.approx(1.24) and fill.trade_id
    resting = {o.client_order_id: o for o in await venue.open_orders()}
    assert set(resting) == {"s1", "t1"} and resting["s1"].trigger_price == 4990.0
    assert [o.status for o in fake.orders.values() if o.order_ref == "s1"] == ["Submitted"]
    assert await venue.positions() == {"MES": 2.0}
    await trio.to_thread.run_sync(fake.set_price, 4989.0)
    stop_fill = await _next(receive)
    assert (stop_fill.kind, stop_fill.client_order_id) == (OrderEvent.FILL, "s1")
    cancel = await _next(receive)
    assert (cancel.kind, cancel.client_order_id) == (OrderEvent.CANCEL, "t1")  # the other child went


async def test_after_a_restart_everything_is_found_by_our_client_order_ids(fake: FakeTWS) -> None:
    first = IBKRVenue(IBSettings(port=fake.port, client_id=31))
    await first.connect()
    await first.submit_bracket(intent("e2", Side.BUY, OrderType.MARKET),
                               intent("s2", Side.SELL, OrderType.STOP_MARKET, trigger=4980.0, role="stop"))
    await first.close()  # the daemon dies; the bracket's stop stays at IB
    # The restarted daemon connects with its configured client id again: TWS lets a client
    # cancel only the orders placed under its own id.
    second = IBKRVenue(IBSettings(port=fake.port, client_id=31))
    await second.connect()
    try:
        assert [o.client_order_id for o in await second.open_orders()] == ["s2"]
        assert (await second.order_status("e2", "MES")).status == "filled"  # type: ignore[union-attr]
        assert (await second.order_status("s2", "MES")).status == "open"  # type: ignore[union-attr]
        assert await second.order_status("never-sent", "MES") is None
        fills = await second.fills_since(0)
        assert [(f.client_order_id, f.quantity, f.side) for f in fills] == [("e2", 2.0, "BUY")]
        assert (await second.cancel("s2", "MES")).kind is OrderEvent.CANCEL
        assert await second.open_orders() == []
    finally:
        await second.close()


@pytest.mark.slow  # over a second: out of the fast suite (issue 16)
async def test_an_unfilled_entry_is_cancelled_at_its_time_to_live(
        venue: IBKRVenue, nursery: trio.Nursery) -> None:
    send, receive = trio.open_memory_channel[VenueReport](100)
    nursery.start_soon(venue.stream_reports, send)
    ack = await venue.submit(intent("e3", Side.BUY, OrderType.LIMIT, price=4900.0))
    assert ack.kind is OrderEvent.ACCEPT
    gone = await _next(receive, timeout=6.0)
    assert (gone.kind, gone.client_order_id) == (OrderEvent.CANCEL, "e3")


async def test_a_refused_order_is_a_reject_report_with_ibs_code(
        venue: IBKRVenue, nursery: trio.Nursery) -> None:
    send, receive = trio.open_memory_channel[VenueReport](100)
    nursery.start_soon(venue.stream_reports, send)
    await trio.sleep(0.2)
    await venue.submit(intent("e4", Side.BUY, OrderType.MARKET, qty=0.0))
    rejected = await _next(receive)
    assert rejected.kind is OrderEvent.REJECT and rejected.client_order_id == "e4"
    assert rejected.reason.startswith("ib_201")


async def test_a_modify_moves_the_resting_stop(venue: IBKRVenue, fake: FakeTWS) -> None:
    await venue.submit(intent("s5", Side.SELL, OrderType.STOP_MARKET, qty=1.0, trigger=4950.0, role="stop"))
    done = await venue.modify("s5", "MES", trigger_price=4975.0)
    assert done.kind is OrderEvent.UPDATE
    await trio.sleep(0.2)
    assert [o.aux_price for o in fake.orders.values() if o.order_ref == "s5"] == [4975.0]


def test_error_codes_have_one_category_each() -> None:
    assert categorize(1100) is IBCategory.TRANSIENT and categorize(504) is IBCategory.TRANSIENT
    assert categorize(1102) is IBCategory.RESTORED and categorize(2104) is IBCategory.INFO
    assert categorize(201) is IBCategory.REJECT and categorize(326) is IBCategory.FATAL
    assert categorize(10147) is IBCategory.CANCEL_REJECT and categorize(2999) is IBCategory.INFO


def test_front_month_rolls_ahead_of_expiry() -> None:
    expiries = ["20250321", "20250620", "20250919"]
    assert front_month(expiries, "20250301", 5) == "20250321"
    assert front_month(expiries, "20250317", 5) == "20250620"  # four days left: rolled
    with pytest.raises(ValueError, match="within 5 days"):
        front_month(["20250321"], "20250320", 5)


async def test_real_time_bars_become_one_minute_bars(venue: IBKRVenue, fake: FakeTWS,
                                                     nursery: trio.Nursery) -> None:
    from fractald.core.models import Bar

    send, receive = trio.open_memory_channel[Bar](100)
    nursery.start_soon(venue.stream_bars, send)
    with trio.fail_after(5):
        while not fake.bar_subscriptions:
            await trio.sleep(0.05)
    t0 = 1_735_689_600  # seconds, as IB stamps real-time bars
    for k in range(13):
        await trio.to_thread.run_sync(fake.push_bar, t0 + 5 * k, 5000.0, 5001.0, 4999.5, 5000.5 + 0.25 * (k == 11))
    with trio.fail_after(5):
        bar = await receive.receive()
    assert (bar.ts_open, bar.timeframe, bar.complete) == (t0 * 1000, "1m", True)
    assert (bar.open, bar.high, bar.low, bar.close, bar.volume) == (5000.0, 5001.0, 4999.5, 5000.75, 120.0)


def test_config_and_preflight_for_ibkr(fake: FakeTWS, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from fractald.config import load_config
    from fractald.errors import ConfigError
    from fractald.venues.ibkr_config import preflight_check

    cfg = tmp_path / "ib.toml"
    cfg.write_text(f'[risk]\nmode = "live"\n[broker]\nkind = "ibkr"\nib_port = {fake.port}\n'
                   'ib_client_id = 41\nib_symbol = "MES"\n')
    config = load_config(cfg)
    check = preflight_check(config, lambda: False)
    assert check.status.value == "ok", check
    assert "MESH5" in check.detail and "tick 0.25" in check.detail and "25,000.00" in check.detail
    fake.stop()  # the gateway goes away
    red = preflight_check(config, lambda: False)
    assert red.status.value == "fail" and "runbooks/ibkr-gateway.md" in red.remedy
    bad = tmp_path / "bad.toml"
    bad.write_text('[broker]\nkind = "ibkr"\nib_symbol = "mes"\nib_account = "nope"\n')
    with pytest.raises(ConfigError) as err:
        load_config(bad)
    text = " ".join(err.value.problems)
    assert "config.risk.mode" in text and "ib_symbol" in text and "ib_account" in text


async def test_a_fill_in_parts_is_one_report_per_execution(venue: IBKRVenue, fake: FakeTWS,
                                                           nursery: trio.Nursery) -> None:
    fake.fill_parts, fake.hold_remainder = 2, True
    send, receive = trio.open_memory_channel[VenueReport](100)
    nursery.start_soon(venue.stream_reports, send)
    await trio.sleep(0.2)
    ack = await venue.submit(intent("p1", Side.BUY, OrderType.LIMIT, qty=4.0, price=5001.0))
    assert ack.kind is OrderEvent.ACCEPT
    first = await _next(receive)
    assert (first.kind, first.client_order_id, first.quantity, first.price) == (
        OrderEvent.PARTIAL_FILL, "p1", 2.0, 5000.0)
    assert [o.client_order_id for o in await venue.open_orders()] == ["p1"]  # the rest still works
    await trio.to_thread.run_sync(fake.set_price, 4999.5)
    second = await _next(receive)
    assert (second.kind, second.quantity, second.price) == (OrderEvent.FILL, 2.0, 4999.5)
    assert second.trade_id != first.trade_id and await venue.positions() == {"MES": 4.0}


async def test_a_post_only_order_is_refused_before_it_reaches_ib(venue: IBKRVenue, fake: FakeTWS) -> None:
    import attrs

    maker_only = attrs.evolve(intent("p6", Side.BUY, OrderType.LIMIT, qty=1.0, price=4900.0),
                              post_only=True)
    refused = await venue.submit(maker_only)
    assert refused.kind is OrderEvent.REJECT and refused.reason.startswith("post_only_unsupported")
    assert not [o for o in fake.orders.values() if o.order_ref == "p6"]
