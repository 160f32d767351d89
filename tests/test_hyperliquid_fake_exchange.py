"""The fake Hyperliquid venue, driven by the official SDK (hyperliquid-python-sdk) as a client.

The SDK builds, signs and posts its requests the way it does at the venue;
the fake checks the signature with the SDK's recovery and the account's
approved agents. If the fake accepted only what our codec produces, these
tests would say so. The SDK is synchronous (requests), so it runs in a
worker thread while the fake serves on the trio loop.
"""

from __future__ import annotations

import os
from typing import Any

import httpx
import pytest
import trio
from eth_account import Account
from fakevenue.hyperliquid_exchange import Coin
from fakevenue.hyperliquid_exchange_server import FakeHyperliquid

exchange_mod = pytest.importorskip("hyperliquid.exchange")
info_mod = pytest.importorskip("hyperliquid.info")
signing = pytest.importorskip("hyperliquid.utils.signing")
Cloid = pytest.importorskip("hyperliquid.utils.types").Cloid

USER = Account.from_key("0x" + "01" * 32)  # the account (main wallet): never signs here
AGENT = Account.from_key("0x" + "02" * 32)  # its approved API wallet
STRANGER = Account.from_key("0x" + "03" * 32)


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)


async def in_thread(fn: Any, *args: Any, **kw: Any) -> Any:
    return await trio.to_thread.run_sync(lambda: fn(*args, **kw))


async def started(nursery: trio.Nursery) -> FakeHyperliquid:
    venue = FakeHyperliquid([Coin("BTC", 5), Coin("ETH", 4)], {"BTC": 50_000.0, "ETH": 3_000.0})
    venue.exchange.add_user(USER.address, usdc=10_000.0, agents=(AGENT.address,))
    await nursery.start(venue.run)
    return venue


def sdk_exchange(venue: FakeHyperliquid, wallet: Any = AGENT) -> Any:
    return exchange_mod.Exchange(wallet, base_url=venue.rest_url, account_address=USER.address, timeout=5)


async def test_official_sdk_trades_against_the_fake() -> None:
    async with trio.open_nursery() as nursery:
        venue = await started(nursery)
        ex = await in_thread(sdk_exchange, venue)
        info = ex.info
        cl = Cloid.from_int(1)
        rest = await in_thread(ex.order, "BTC", True, 0.01, 45_000.0, {"limit": {"tif": "Gtc"}}, cloid=cl)
        oid = rest["response"]["data"]["statuses"][0]["resting"]["oid"]
        status = await in_thread(info.query_order_by_cloid, USER.address, cl)
        assert status["status"] == "order" and status["order"]["order"]["oid"] == oid
        assert status["order"]["status"] == "open"

        dup = await in_thread(ex.order, "BTC", True, 0.01, 48_000.0, {"limit": {"tif": "Gtc"}}, cloid=cl)
        assert "error" in dup["response"]["data"]["statuses"][0]

        bought = await in_thread(ex.market_open, "BTC", True, 0.02, None, 0.01, Cloid.from_int(2))
        filled = bought["response"]["data"]["statuses"][0]["filled"]
        assert filled["totalSz"] == "0.02" and filled["avgPx"] == "50000"

        stop = await in_thread(ex.order, "BTC", False, 0.02, 47_000.0,
                               {"trigger": {"triggerPx": 48_000.0, "isMarket": True, "tpsl": "sl"}},
                               reduce_only=True, cloid=Cloid.from_int(3))
        assert "resting" in stop["response"]["data"]["statuses"][0]
        opens = await in_thread(info.frontend_open_orders, USER.address)
        assert sorted(o["orderType"] for o in opens) == ["Limit", "Stop Market"]

        venue.set_price("BTC", 47_900.0)  # through the stop: it fires and closes the position
        state = await in_thread(info.user_state, USER.address)
        assert state["assetPositions"] == []
        fills = await in_thread(info.user_fills_by_time, USER.address, 0)
        assert [(f["side"], f["sz"], f.get("cloid")) for f in fills] == [
            ("B", "0.02", str(Cloid.from_int(2))), ("A", "0.02", str(Cloid.from_int(3)))]

        cancelled = await in_thread(ex.cancel_by_cloid, "BTC", cl)
        assert cancelled["response"]["data"]["statuses"] == ["success"]
        again = await in_thread(ex.cancel, "BTC", oid)
        assert again["response"]["data"]["statuses"] == [
            {"error": "Order was never placed, already canceled, or filled. asset=0"}]

        refused = await in_thread(ex.order, "BTC", True, 0.00001, 49_000.0, {"limit": {"tif": "Gtc"}})
        assert refused["response"]["data"]["statuses"][0]["error"].startswith("Order must have minimum value")
        nursery.cancel_scope.cancel()


async def test_fake_refuses_unknown_signers_wrong_network_and_reused_nonces() -> None:
    async with trio.open_nursery() as nursery:
        venue = await started(nursery)
        stranger = await in_thread(sdk_exchange, venue, STRANGER)
        answer = await in_thread(stranger.order, "BTC", True, 0.01, 49_000.0, {"limit": {"tif": "Gtc"}})
        assert answer == {"status": "err",
                          "response": f"User or API Wallet {STRANGER.address.lower()} does not exist."}

        action = {"type": "order", "orders": [signing.order_request_to_order_wire(
            {"coin": "BTC", "is_buy": True, "sz": 0.01, "limit_px": 49_000.0,
             "order_type": {"limit": {"tif": "Gtc"}}, "reduce_only": False}, 0)], "grouping": "na"}
        nonce = venue.now_ms()

        async def post(mainnet: bool) -> Any:
            sig = signing.sign_l1_action(AGENT, action, None, nonce, None, mainnet)
            async with httpx.AsyncClient(trust_env=False) as client:
                r = await client.post(venue.rest_url + "/exchange", json={
                    "action": action, "nonce": nonce, "signature": sig, "vaultAddress": None})
            return r.json()

        mainnet_signed = await post(True)  # signed for mainnet, sent to a testnet venue
        assert mainnet_signed["status"] == "err" and "does not exist" in mainnet_signed["response"]
        first = await post(False)
        assert first["status"] == "ok"
        second = await post(False)
        assert second == {"status": "err", "response": f"Invalid nonce: duplicate nonce {nonce}"}
        async with httpx.AsyncClient(trust_env=False) as client:
            bad = await client.post(venue.rest_url + "/exchange", content=b"{not json")
        assert bad.status_code == 422
        nursery.cancel_scope.cancel()


async def test_fake_answers_in_the_venues_words() -> None:
    """Texts as the venue's error table and live answers quoted in public SDK issues give them."""
    async with trio.open_nursery() as nursery:
        venue = await started(nursery)
        ex = await in_thread(sdk_exchange, venue)
        too_big = await in_thread(ex.order, "BTC", True, 5.0, 50_000.0, {"limit": {"tif": "Gtc"}})
        odd_size = await in_thread(ex.order, "ETH", True, 0.00001, 3_000.0, {"limit": {"tif": "Gtc"}})
        assert [a["response"]["data"]["statuses"][0] for a in (too_big, odd_size)] == [
            {"error": "Insufficient margin to place order. asset=0"}, {"error": "Order has invalid size."}]

        action = {"type": "noop"}
        stale = venue.now_ms() - 3 * 86_400_000
        sig = signing.sign_l1_action(AGENT, action, None, stale, None, False)
        async with httpx.AsyncClient(trust_env=False) as client:
            r = await client.post(venue.rest_url + "/exchange", json={
                "action": action, "nonce": stale, "signature": sig, "vaultAddress": None})
            unknown = await client.post(venue.rest_url + "/info", json={"type": "noSuchInfo"})
        assert r.json()["status"] == "err"
        assert r.json()["response"].startswith(f"Invalid nonce: nonce too low {stale} < ")
        assert (unknown.status_code, unknown.text.strip('"')) == (
            422, "Failed to deserialize the JSON body into the target type")
        nursery.cancel_scope.cancel()


def test_no_proxy_variables_leak_into_the_sdk() -> None:
    assert os.environ.get("NO_PROXY") == "127.0.0.1"
