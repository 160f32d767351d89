"""The fake Binance spot venue driven by Binance's own spot SDK (binance-sdk-spot), not our codec.

If the fake accepted only what our codec produces, these tests would say so: the SDK signs
its REST calls itself and subscribes to the user data stream on the WebSocket API by
signature, as it would at Binance.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio
from fakevenue.binance_spot_server import FakeBinanceSpot

binance_common = pytest.importorskip("binance_common")
spot_sdk = pytest.importorskip("binance_sdk_spot.spot")

from binance_common.configuration import ConfigurationRestAPI  # noqa: E402
from binance_common.errors import BadRequestError  # noqa: E402
from binance_sdk_spot.rest_api.models import (  # noqa: E402
    NewOrderSideEnum,
    NewOrderTimeInForceEnum,
    NewOrderTypeEnum,
)

KEY, SECRET = "sdkSpotKey000001", "sdkSpotSecret000001"


def client(fake: FakeBinanceSpot, secret: str = SECRET) -> Any:
    config = ConfigurationRestAPI(api_key=KEY, api_secret=secret, base_path=fake.rest_url,
                                  retries=0, timeout=3000)
    return spot_sdk.Spot(config_rest_api=config).rest_api


async def call(fn: Any, *args: Any, **kw: Any) -> Any:
    return await trio.to_thread.run_sync(lambda: fn(*args, **kw))


async def test_the_sdk_trades_against_the_fake_and_sees_binance_error_shapes() -> None:
    fake = FakeBinanceSpot()
    fake.add_account(KEY, SECRET, wallet=10_000.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(fake.run)
        rest = client(fake)
        info = (await call(rest.exchange_info)).data()
        assert info.symbols[0].symbol == "BTCUSDT"
        placed = (await call(rest.new_order, symbol="BTCUSDT", side=NewOrderSideEnum.BUY,
                             type=NewOrderTypeEnum.MARKET, quantity=0.01,
                             new_client_order_id="sdk-entry-1")).data()
        assert placed.status == "FILLED" and placed.client_order_id == "sdk-entry-1"
        account = (await call(rest.get_account)).data()
        btc = next(b for b in account.balances if b.asset == "BTC")
        # Binance's default: the BUY's 0.1 % commission comes out of the coins bought.
        assert float(btc.free) == pytest.approx(0.00999)
        assert placed.fills[0].commission_asset == "BTC"
        stop = (await call(rest.new_order, symbol="BTCUSDT", side=NewOrderSideEnum.SELL,
                           type=NewOrderTypeEnum.STOP_LOSS_LIMIT,
                           time_in_force=NewOrderTimeInForceEnum.GTC, quantity=0.00999,
                           price=48_000.0, stop_price=49_000.0,
                           new_client_order_id="sdk-stop-1")).data()
        assert stop.status == "NEW"
        queried = (await call(rest.get_order, symbol="BTCUSDT",
                              orig_client_order_id="sdk-stop-1")).data()
        assert queried.type == "STOP_LOSS_LIMIT" and float(queried.stop_price) == 49_000.0
        # The coins are locked by the stop: selling them again is refused with -2010.
        with pytest.raises(BadRequestError, match="insufficient balance"):
            await call(rest.new_order, symbol="BTCUSDT", side=NewOrderSideEnum.SELL,
                       type=NewOrderTypeEnum.MARKET, quantity=0.00999, new_client_order_id="sdk-x")
        with pytest.raises(BadRequestError, match="Duplicate order sent"):
            await call(rest.new_order, symbol="BTCUSDT", side=NewOrderSideEnum.BUY,
                       type=NewOrderTypeEnum.LIMIT, time_in_force=NewOrderTimeInForceEnum.GTC,
                       quantity=0.001, price=40_000.0, new_client_order_id="sdk-stop-1")
        fake.set_price("BTCUSDT", 48_900.0)
        trades = (await call(rest.my_trades, symbol="BTCUSDT")).data()
        assert len(trades) == 2
        assert [float(t.qty) for t in trades] == [0.01, 0.00999]
        assert [t.commission_asset for t in trades] == ["BTC", "USDT"]  # a SELL's fee: quote
        assert trades[1].price == "48900.00000000"
        with pytest.raises(BadRequestError, match="-2011"):  # filled: nothing left to cancel
            await call(rest.delete_order, symbol="BTCUSDT", orig_client_order_id="sdk-stop-1")
        nursery.cancel_scope.cancel()


async def test_a_wrong_secret_is_refused_with_binance_signature_error() -> None:
    fake = FakeBinanceSpot()
    fake.add_account(KEY, SECRET)
    async with trio.open_nursery() as nursery:
        await nursery.start(fake.run)
        with pytest.raises(BadRequestError, match="Signature for this request is not valid"):
            await call(client(fake, secret="wrong-secret").get_account)
        nursery.cancel_scope.cancel()


@pytest.mark.filterwarnings("ignore:parameter 'timeout':DeprecationWarning")  # the SDK's own aiohttp call
async def test_the_sdk_subscribes_to_the_user_data_stream_by_signature_and_reads_the_events() -> None:
    """The SDK's WebSocket API client (asyncio, in a thread of its own) against the fake."""
    import asyncio

    from binance_common.configuration import ConfigurationWebSocketAPI

    fake = FakeBinanceSpot()
    acct = fake.add_account(KEY, SECRET)
    got: list[Any] = []

    async def subscribe_and_listen() -> None:
        config = ConfigurationWebSocketAPI(api_key=KEY, api_secret=SECRET,
                                           stream_url=fake.ws_api_url, reconnect_attempts=1)
        conn = await spot_sdk.Spot(config_ws_api=config).websocket_api.create_connection()
        subscribed = await conn.user_data_stream_subscribe_signature()
        subscribed.stream.on("message", got.append)
        for _ in range(100):
            if len(got) >= 3:
                break
            await asyncio.sleep(0.05)
        await conn.close_connection()

    async with trio.open_nursery() as nursery:
        await nursery.start(fake.run)

        async def trade_once_subscribed() -> None:
            with trio.fail_after(10):
                while fake.subscriptions == 0:
                    await trio.sleep(0.02)
            fake.exchange.new_order(acct, {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET",
                                           "quantity": "0.01", "newClientOrderId": "sdk-ws-1"})

        nursery.start_soon(trade_once_subscribed)
        await trio.to_thread.run_sync(lambda: asyncio.run(subscribe_and_listen()))
        nursery.cancel_scope.cancel()
    kinds = [type(m.actual_instance).__name__ for m in got]
    assert kinds[:3] == ["ExecutionReport", "OutboundAccountPosition", "ExecutionReport"]
    fill = got[2].actual_instance
    assert (fill.c, fill.x, fill.X, fill.l, fill.N) == ("sdk-ws-1", "TRADE", "FILLED", "0.01000000",
                                                        "BTC")  # a BUY's fee: in the coins bought
    assert fill.n == "0.00001000"
