"""The fake TWS checked by ib_async's own client (not our codec): handshake, account, contract details,
a bracket with its stop resting at the fake, fills with commissions, executions after a reconnect,
error codes and a dropped connection."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

ib_async = pytest.importorskip("ib_async")

from fakevenue.fake_tws import ACCOUNT, FakeTWS  # noqa: E402


@pytest.fixture
def fake() -> Iterator[FakeTWS]:
    tws = FakeTWS(price=5000.0).start()
    try:
        yield tws
    finally:
        tws.stop()


def _connect(fake: FakeTWS, client_id: int) -> object:
    ib = ib_async.IB()
    ib.connect("127.0.0.1", fake.port, clientId=client_id, timeout=5)
    return ib


def test_ib_async_connects_reads_the_account_and_the_contract(fake: FakeTWS) -> None:
    ib = _connect(fake, 7)
    try:
        assert ib.managedAccounts() == [ACCOUNT]
        values = {v.tag: v.value for v in ib.accountValues()}
        assert values["NetLiquidation"] == "25000.00" and values["AvailableFunds"] == "23000.00"
        [cd] = ib.reqContractDetails(ib_async.Future("MES", exchange="CME"))
        assert (cd.contract.localSymbol, cd.minTick, cd.contract.multiplier) == ("MESH5", 0.25, "5")
        assert ib.reqContractDetails(ib_async.Future("ZZZ", exchange="CME")) == []  # code 200 from the fake
    finally:
        ib.disconnect()


@pytest.mark.slow  # over a second: out of the fast suite (issue 16)
def test_a_bracket_rests_its_stop_then_the_stop_fills_and_cancels_the_target(fake: FakeTWS) -> None:
    ib = _connect(fake, 7)
    try:
        [cd] = ib.reqContractDetails(ib_async.Future("MES", exchange="CME"))
        legs = ib.bracketOrder("BUY", 2, 4999.0, 5010.0, 4990.0)
        for leg in legs:
            leg.orderRef = "0123abcd"
        trades = [ib.placeOrder(cd.contract, leg) for leg in legs]
        ib.sleep(0.3)
        assert [t.orderStatus.status for t in trades] == ["Submitted", "PreSubmitted", "PreSubmitted"]
        fake.set_price(4998.0)
        ib.sleep(0.3)
        assert trades[0].orderStatus.status == "Filled" and trades[0].orderStatus.avgFillPrice == 4998.0
        assert [t.orderStatus.status for t in trades[1:]] == ["Submitted", "Submitted"]  # the stop rests
        fake.set_price(4989.0)
        ib.sleep(0.3)
        assert [t.orderStatus.status for t in trades[1:]] == ["Cancelled", "Filled"]
        fills = ib.fills()
        assert [(f.execution.side, f.execution.shares, f.execution.orderRef) for f in fills] == [
            ("BOT", 2.0, "0123abcd"), ("SLD", 2.0, "0123abcd")]
        assert all(f.commissionReport.commission == pytest.approx(1.24) for f in fills)
    finally:
        ib.disconnect()
    again = _connect(fake, 8)  # a new session finds the day's executions by orderRef
    try:
        assert [(f.execution.orderRef, f.execution.side) for f in again.reqExecutions()] == [
            ("0123abcd", "BOT"), ("0123abcd", "SLD")]
        assert again.reqAllOpenOrders() == []
    finally:
        again.disconnect()


@pytest.mark.slow  # over a second: out of the fast suite (issue 16)
def test_open_orders_survive_a_reconnect_and_errors_reach_the_client(fake: FakeTWS) -> None:
    ib = _connect(fake, 7)
    errors: list[tuple[int, str]] = []
    try:
        [cd] = ib.reqContractDetails(ib_async.Future("MES", exchange="CME"))
        order = ib_async.StopOrder("SELL", 1, 4900.0, orderRef="feedface", tif="GTC")
        ib.placeOrder(cd.contract, order)
        ib.sleep(0.2)
        ib.errorEvent += lambda req_id, code, msg, contract: errors.append((code, msg))
        fake.send_error(1100, "Connectivity between IB and Trader Workstation has been lost.")
        ib.sleep(0.2)
        assert errors and errors[0][0] == 1100
        lost: list[bool] = []
        ib.disconnectedEvent += lambda: lost.append(True)
        fake.drop_all()
        with pytest.raises(ConnectionError):  # ib_async raises the disconnect out of its wait
            ib.sleep(0.5)
        assert lost and not ib.isConnected()
    finally:
        ib.disconnect()
    again = _connect(fake, 9)
    try:
        [trade] = again.reqAllOpenOrders()
        assert (trade.order.orderRef, trade.order.orderType, trade.order.auxPrice) == ("feedface", "STP", 4900.0)
    finally:
        again.disconnect()


def test_history_and_top_of_book_as_ib_async_reads_them(fake: FakeTWS) -> None:
    import datetime as dt

    for ts in range(1_700_000_000, 1_700_000_180, 5):  # three minutes of 5 s bars on the tape
        fake.push_bar(ts, 5000.0, 5001.0 + (ts % 60 == 25), 4999.0, 5000.5, 2.0)
    ib = _connect(fake, 7)
    try:
        [cd] = ib.reqContractDetails(ib_async.Future("MES", exchange="CME"))
        end = dt.datetime.fromtimestamp(1_700_000_160, dt.UTC)
        bars = ib.reqHistoricalData(cd.contract, end, "120 S", "1 min", "TRADES", False, formatDate=2)
        assert [(int(b.date.timestamp()), b.high, b.volume, b.barCount) for b in bars] == [
            (1_700_000_040, 5002.0, 24.0, 12), (1_700_000_100, 5002.0, 24.0, 12)]  # the window's two minutes
        assert ib.reqHistoricalData(cd.contract, end, "1 W", "1 min", "TRADES", False, formatDate=2)
        assert not ib.reqHistoricalData(cd.contract, "20231114 00:00:00 UTC", "60 S", "1 min", "TRADES", False)  # 162
        ticker = ib.reqMktData(cd.contract)
        fake.set_quote(4999.75, 3, 5000.0, 4)
        ib.sleep(0.3)
        assert (ticker.bid, ticker.bidSize, ticker.ask, ticker.askSize) == (4999.75, 3, 5000.0, 4)
    finally:
        ib.disconnect()


@pytest.mark.slow  # over a second: out of the fast suite (issue 16)
def test_order_ids_are_per_client_id_as_tws_keeps_them(fake: FakeTWS) -> None:
    one, two = _connect(fake, 7), _connect(fake, 8)
    errors: list[tuple[int, int]] = []
    two.errorEvent += lambda req_id, code, *_: errors.append((req_id, code))
    try:
        [cd] = one.reqContractDetails(ib_async.Future("MES", exchange="CME"))
        assert one.client.getReqId() and fake.next_order_id(7) == fake.next_order_id(8) == 1
        a = one.placeOrder(cd.contract, ib_async.LimitOrder("BUY", 1, 4900.0, orderId=1, orderRef="mine"))
        b = two.placeOrder(cd.contract, ib_async.LimitOrder("BUY", 2, 4800.0, orderId=1, orderRef="theirs"))
        one.sleep(0.3)
        assert a.orderStatus.status == b.orderStatus.status == "Submitted"  # order id 1 twice: two clients
        assert {(o.client_id, o.order_id, o.order_ref) for o in fake.orders.values()} == {
            (7, 1, "mine"), (8, 1, "theirs")}
        assert fake.next_order_id(7) == fake.next_order_id(8) == 2 and fake.next_order_id(9) == 1
        two.cancelOrder(b.order)
        two.sleep(0.3)
        statuses = {o.order_ref: o.status for o in fake.orders.values()}
        assert statuses == {"mine": "Submitted", "theirs": "Cancelled"}  # client 8's order 1 only
        two.client.cancelOrder(1, "")  # again: client 8's order 1 is gone; client 7's is not its to cancel
        two.sleep(0.3)
        assert (1, 10147) in errors and statuses["mine"] == "Submitted"
        again = _connect(fake, 9)
        try:
            assert again.client.getReqId() >= 1 and fake.next_order_id(9) == 1  # a new client starts at 1
        finally:
            again.disconnect()
    finally:
        one.disconnect()
        two.disconnect()


@pytest.mark.slow  # over a second: out of the fast suite (issue 16)
def test_orders_fill_on_the_contract_they_name(fake: FakeTWS) -> None:
    from fakevenue.fake_tws import FakeContract

    mnq = FakeContract(con_id=5551, symbol="MNQ", expiry="20250321", multiplier="2", local_symbol="MNQH5",
                       trading_class="MNQ")
    fake.listed.append(mnq)
    fake.set_price(21_000.0, con_id=mnq.con_id)
    ib = _connect(fake, 7)
    try:
        [es] = ib.reqContractDetails(ib_async.Future("MES", exchange="CME"))
        [nq] = ib.reqContractDetails(ib_async.Future("MNQ", exchange="CME"))
        t_nq = ib.placeOrder(nq.contract, ib_async.MarketOrder("SELL", 3))
        t_es = ib.placeOrder(es.contract, ib_async.MarketOrder("BUY", 1))
        stop = ib.placeOrder(nq.contract, ib_async.StopOrder("BUY", 3, 21_050.0))
        ib.sleep(0.4)
        assert (t_nq.orderStatus.avgFillPrice, t_es.orderStatus.avgFillPrice) == (21_000.0, 5000.0)
        assert [f.contract.localSymbol for f in t_nq.fills] == ["MNQH5"]
        positions = {p.contract.localSymbol: (p.position, p.avgCost) for p in ib.reqPositions()}
        assert positions == {"MNQH5": (-3.0, 42_000.0), "MESH5": (1.0, 25_000.0)}  # avg cost x multiplier
        fake.set_price(21_060.0)  # MES's price: the MNQ stop does not see it
        ib.sleep(0.3)
        assert stop.orderStatus.status == "Submitted"
        fake.set_price(21_060.0, con_id=mnq.con_id)
        ib.sleep(0.3)
        assert stop.orderStatus.status == "Filled" and fake.positions[mnq.con_id][0] == 0.0
        unknown = ib_async.Future("ZZZ", "20250321", exchange="CME")
        bad = ib.placeOrder(unknown, ib_async.MarketOrder("BUY", 1))
        ib.sleep(0.3)
        assert bad.orderStatus.status in ("Cancelled", "PendingSubmit") and any(
            e.errorCode == 200 for e in bad.log)
    finally:
        ib.disconnect()


@pytest.mark.slow  # over a second: out of the fast suite (issue 16)
def test_fills_come_in_parts_when_asked(fake: FakeTWS) -> None:
    fake.fill_parts, fake.hold_remainder = 3, True
    ib = _connect(fake, 7)
    try:
        [cd] = ib.reqContractDetails(ib_async.Future("MES", exchange="CME"))
        trade = ib.placeOrder(cd.contract, ib_async.LimitOrder("BUY", 6, 5001.0))
        ib.sleep(0.3)
        assert (trade.orderStatus.status, trade.orderStatus.filled, trade.orderStatus.remaining) == (
            "Submitted", 2.0, 4.0)  # a partial fill: the rest works on
        fake.set_price(5000.5)
        ib.sleep(0.3)
        assert trade.orderStatus.filled == 4.0
        fake.set_price(5000.25)
        ib.sleep(0.3)
        assert trade.orderStatus.status == "Filled" and trade.orderStatus.filled == 6.0
        assert [(f.execution.shares, f.execution.price) for f in trade.fills] == [
            (2.0, 5000.0), (2.0, 5000.5), (2.0, 5000.25)]
        assert trade.orderStatus.avgFillPrice == pytest.approx((5000.0 + 5000.5 + 5000.25) / 3)
        assert [f.commissionReport.commission for f in trade.fills] == [1.24, 1.24, 1.24]
        assert fake.position == 6.0
    finally:
        ib.disconnect()
