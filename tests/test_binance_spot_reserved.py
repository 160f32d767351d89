"""Coins the bot did not buy ([broker] spot_reserved): not its position, not its equity.

A Binance spot account may hold coins from before the bot started (or the operator's own):
the balance alone would read them as the bot's position, a mismatch the reconciler would
flag on every pass. `spot_reserved` keeps them apart; check-config names bad entries.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio
from fakevenue.binance_spot_server import FakeBinanceSpot
from test_binance_spot_venue import next_report, order

from fractald.config import config_from_dict
from fractald.core.execution.orders import OrderEvent, OrderType
from fractald.core.execution.reports import VenueReport
from fractald.errors import ConfigError
from fractald.venues.binance import Market
from fractald.venues.binance_rest import BinanceRest
from fractald.venues.binance_venue import BinanceVenue
from fractald.venues.ws import Backoff

KEY, SECRET = "reservedKey00001", "reservedSecret00001"


def spot_doc(**broker: Any) -> dict[str, Any]:
    b: dict[str, Any] = {"kind": "binance-spot", "api_key_credential": "k",
                         "api_secret_credential": "s"}
    b.update(broker)
    return {"feed": {"venue": "binance", "symbols": ["BTCUSDT"]}, "risk": {"mode": "live"},
            "broker": b}


def test_check_config_takes_reserved_coins_of_traded_assets_only() -> None:
    config = config_from_dict(spot_doc(spot_reserved={"BTC": 0.5, "USDT": 100}))
    assert config.broker.spot_reserved == {"BTC": 0.5, "USDT": 100.0}
    with pytest.raises(ConfigError) as err:
        config_from_dict(spot_doc(spot_reserved={"btc": 0.5, "ETH": 1.0, "BTC": -1.0}))
    problems = "\n".join(err.value.problems)
    assert "spot_reserved.btc: not an asset of feed.symbols" in problems
    assert "spot_reserved.ETH: not an asset" in problems
    assert "spot_reserved.BTC: -1.0 must be a number of coins, at least 0" in problems
    futures = spot_doc(kind="binance-futures", spot_reserved={"BTC": 0.5})
    futures["feed"]["venue"] = "binance-futures"
    with pytest.raises(ConfigError, match="only for kind = \"binance-spot\""):
        config_from_dict(futures)


async def test_coins_held_before_the_bot_are_not_its_position_nor_its_equity() -> None:
    fake = FakeBinanceSpot()
    acct = fake.add_account(KEY, SECRET, wallet=10_000.0)
    acct.free["BTC"] = 0.5  # bought by hand before the bot started
    async with trio.open_nursery() as nursery:
        await nursery.start(fake.run)

        def venue(reserved: dict[str, float] | None) -> BinanceVenue:
            rest = BinanceRest(Market.SPOT, fake.rest_url, KEY, SECRET,
                               backoff=Backoff(0.01, 0.05), timeout_s=2.0)
            return BinanceVenue(Market.SPOT, rest, fake.ws_api_url, ["BTCUSDT"],
                                backoff=Backoff(0.01, 0.05), reserved=reserved)

        unaware, aware = venue(None), venue({"BTC": 0.5})
        await unaware.start()
        await aware.start()
        assert await unaware.positions() == {"BTCUSDT": pytest.approx(0.5)}  # the old mismatch
        assert await aware.positions() == {}
        assert (await aware.account()).equity == pytest.approx(10_000.0)
        send, receive = trio.open_memory_channel[VenueReport](100)
        nursery.start_soon(aware.stream_reports, send)
        with trio.fail_after(5):
            while fake.subscriptions < 1:
                await trio.sleep(0.01)
        await aware.submit(order("entry", OrderType.MARKET))
        fill = await next_report(receive, (OrderEvent.FILL,))
        bought = fill.quantity - fill.fee_qty
        assert await aware.positions() == {"BTCUSDT": pytest.approx(bought)}
        account = await aware.account()
        assert account.equity == pytest.approx(10_000.0 - fill.fee)
        # Reserved coins sold by hand: the bot holds none of them, and is not short.
        acct.free["BTC"] = 0.2
        assert await aware.positions() == {}
        nursery.cancel_scope.cancel()
