"""The fake Binance futures venue, checked by a client that is not ours.

binance-futures-connector (Binance's own Python connector for USD-M
futures, on PyPI) signs and sends its requests the way it does at Binance;
if the fake accepted only what our codec produces, these tests would say so.
It is synchronous (requests), so it runs in a worker thread while the fake
serves on the trio loop.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio
from fakevenue.binance_exchange import Symbol
from fakevenue.binance_exchange_server import Failure, FakeBinanceFutures

binance_um = pytest.importorskip("binance.um_futures")
binance_error = pytest.importorskip("binance.error")

KEY = "fractaldTestKey01"
SECRET = "fractaldTestSecret01"


def connector(venue: FakeBinanceFutures, secret: str = SECRET) -> Any:
    client = binance_um.UMFutures(key=KEY, secret=secret, base_url=venue.rest_url, timeout=5)
    client.session.trust_env = False  # loopback only, whatever proxy the environment names
    return client


async def in_thread(fn: Any, *args: Any, **kw: Any) -> Any:
    return await trio.to_thread.run_sync(lambda: fn(*args, **kw))


async def started_venue(nursery: trio.Nursery) -> FakeBinanceFutures:
    venue = FakeBinanceFutures([Symbol("BTCUSDT")], {"BTCUSDT": 50_000.0})
    venue.add_account(KEY, SECRET, wallet=10_000.0)
    await nursery.start(venue.run)
    return venue


async def test_official_connector_trades_against_the_fake() -> None:
    async with trio.open_nursery() as nursery:
        venue = await started_venue(nursery)
        client = connector(venue)
        assert "serverTime" in await in_thread(client.time)
        info = await in_thread(client.exchange_info)
        assert info["symbols"][0]["symbol"] == "BTCUSDT"
        assert (await in_thread(client.change_leverage, "BTCUSDT", 5))["leverage"] == 5

        filled = await in_thread(client.new_order, symbol="BTCUSDT", side="BUY", type="MARKET",
                                 quantity=0.01, newClientOrderId="conn-entry-1")
        assert filled["status"] == "FILLED" and filled["clientOrderId"] == "conn-entry-1"
        positions = await in_thread(client.get_position_risk, symbol="BTCUSDT")
        assert [p["positionAmt"] for p in positions if p["symbol"] == "BTCUSDT"] == ["0.01"]
        trades = await in_thread(client.get_account_trades, symbol="BTCUSDT")
        assert len(trades) == 1 and trades[0]["orderId"] == filled["orderId"]

        resting = await in_thread(client.new_order, symbol="BTCUSDT", side="SELL", type="LIMIT",
                                  timeInForce="GTC", quantity=0.01, price=55_000,
                                  newClientOrderId="conn-tp-1", reduceOnly="true")
        assert resting["status"] == "NEW"
        with pytest.raises(binance_error.ClientError) as dup:
            await in_thread(client.new_order, symbol="BTCUSDT", side="SELL", type="LIMIT",
                            timeInForce="GTC", quantity=0.01, price=56_000,
                            newClientOrderId="conn-tp-1", reduceOnly="true")
        assert dup.value.error_code == -4116
        got = await in_thread(client.query_order, symbol="BTCUSDT", origClientOrderId="conn-tp-1")
        assert got["status"] == "NEW" and got["price"] == "55000"
        gone = await in_thread(client.cancel_order, symbol="BTCUSDT", origClientOrderId="conn-tp-1")
        assert gone["status"] == "CANCELED"
        with pytest.raises(binance_error.ClientError) as again:
            await in_thread(client.cancel_order, symbol="BTCUSDT", origClientOrderId="conn-tp-1")
        assert again.value.error_code == -2011

        with pytest.raises(binance_error.ClientError) as broke:
            await in_thread(client.new_order, symbol="BTCUSDT", side="BUY", type="MARKET",
                            quantity=100, newClientOrderId="too-big")
        assert broke.value.error_code == -2019
        acct = await in_thread(client.account)
        assert float(acct["totalWalletBalance"]) < 10_000.0  # the taker fee was charged
        assert (await in_thread(client.new_listen_key))["listenKey"]
        nursery.cancel_scope.cancel()


async def test_fake_refuses_bad_signatures_stale_timestamps_and_unknown_keys() -> None:
    async with trio.open_nursery() as nursery:
        venue = await started_venue(nursery)
        with pytest.raises(binance_error.ClientError) as bad_sig:
            await in_thread(connector(venue, secret="not-the-secret").account)
        assert bad_sig.value.error_code == -1022
        venue.skew_ms = 30_000  # the venue's clock is 30 s ahead of ours
        with pytest.raises(binance_error.ClientError) as stale:
            await in_thread(connector(venue).account)
        assert stale.value.error_code == -1021
        venue.skew_ms = 0
        stranger = binance_um.UMFutures(key="unknownKey123", secret=SECRET, base_url=venue.rest_url)
        stranger.session.trust_env = False
        with pytest.raises(binance_error.ClientError) as unknown:
            await in_thread(stranger.account)
        assert unknown.value.error_code == -2015 and unknown.value.status_code == 401
        venue.fail_next = [Failure(429, -1003, "Too many requests.", retry_after_s=3)]
        with pytest.raises(binance_error.ClientError) as limited:
            await in_thread(connector(venue).account)
        assert limited.value.status_code == 429 and limited.value.header["Retry-After"] == "3"
        nursery.cancel_scope.cancel()


async def test_stops_live_in_the_algo_service_and_fire_on_a_price_jump() -> None:
    async with trio.open_nursery() as nursery:
        venue = await started_venue(nursery)
        client = connector(venue)
        with pytest.raises(binance_error.ClientError) as old_way:
            await in_thread(client.new_order, symbol="BTCUSDT", side="SELL", type="STOP_MARKET",
                            stopPrice=49_000, quantity=0.01, reduceOnly="true")
        assert old_way.value.error_code == -4120
        await in_thread(client.new_order, symbol="BTCUSDT", side="BUY", type="MARKET",
                        quantity=0.01, newClientOrderId="entry-2")
        # The connector predates the algo endpoint; its generic signed call reaches it.
        algo = await in_thread(client.sign_request, "POST", "/fapi/v1/algoOrder",
                               {"algoType": "CONDITIONAL", "symbol": "BTCUSDT", "side": "SELL",
                                "type": "STOP_MARKET", "triggerPrice": 49_000, "quantity": 0.01,
                                "reduceOnly": "true", "clientAlgoId": "stop-2"})
        assert algo["algoStatus"] == "NEW" and algo["clientAlgoId"] == "stop-2"
        venue.set_price("BTCUSDT", 48_000.0)  # jump through the stop
        done = await in_thread(client.sign_request, "GET", "/fapi/v1/algoOrder",
                               {"clientAlgoId": "stop-2"})
        assert done["algoStatus"] == "FINISHED" and done["actualOrderId"]
        positions = await in_thread(client.get_position_risk, symbol="BTCUSDT")
        assert [p["positionAmt"] for p in positions if p["symbol"] == "BTCUSDT"] == ["0"]
        acct = venue.exchange.accounts[KEY]
        assert acct.submissions["stop-2"] == 1 and acct.submissions["entry-2"] == 1
        nursery.cancel_scope.cancel()
