"""The Hyperliquid order codec and signing, checked against the official SDK's own functions and shapes.

The SDK (hyperliquid-python-sdk, test extra) is the reference: the same
order must give the same wire dict, the same action hash and the same
signature bytes; its recovery must find our agent's address.
"""

from __future__ import annotations

import json

import pytest
from eth_account import Account

from fractald.core.execution.events import OrderIntent
from fractald.core.execution.orders import OrderEvent, OrderType, TimeInForce
from fractald.core.models import Side
from fractald.errors import AuthError, InvariantViolation
from fractald.venues import hyperliquid_orders as hl
from fractald.venues.hyperliquid_signing import (
    AgentSigner,
    NonceClock,
    action_hash,
    read_agent_key,
    recover_l1_signer,
)

signing = pytest.importorskip("hyperliquid.utils.signing")
sdk_types = pytest.importorskip("hyperliquid.utils.types")

KEY = "0x" + "4f" * 32
BTC = hl.Asset("BTC", 0, 5, 50)
ETH = hl.Asset("ETH", 1, 4, 50)
COID = "0123456789abcdef0123456789abcdef"


def intent(order_type: OrderType = OrderType.LIMIT, **kw: object) -> OrderIntent:
    base: dict[str, object] = {"ts": 1, "client_order_id": COID, "symbol": "BTC", "side": Side.BUY,
                                   "order_type": order_type, "quantity": 0.0123456, "price": 50_123.4}
    base.update(kw)
    return OrderIntent(**base)  # type: ignore[arg-type]


def sdk_wire(coin_asset: int, is_buy: bool, sz: float, px: float, order_type: dict, reduce_only: bool = False,
             cl: str = "0x" + COID) -> dict:
    return signing.order_request_to_order_wire(
        {"coin": "X", "is_buy": is_buy, "sz": sz, "limit_px": px, "order_type": order_type,
         "reduce_only": reduce_only, "cloid": sdk_types.Cloid(cl)}, coin_asset)


def test_limit_order_wire_equals_the_sdks() -> None:
    ours = hl.order_wire(intent(), BTC)
    # The SDK takes numbers already on the grid; ours rounds: size down to 5 decimals, price to 5 sig figs.
    assert ours == sdk_wire(0, True, 0.01234, 50123.0, {"limit": {"tif": "Gtc"}})
    assert json.dumps(ours) == json.dumps(sdk_wire(0, True, 0.01234, 50123.0, {"limit": {"tif": "Gtc"}}))


def test_stop_market_is_a_reduce_only_sl_trigger_with_a_slippage_limit() -> None:
    stop = intent(OrderType.STOP_MARKET, side=Side.SELL, price=None, trigger_price=48_000.0, reduce_only=True,
                  quantity=0.5)
    ours = hl.order_wire(stop, BTC, slippage=0.05)
    assert ours["t"] == {"trigger": {"isMarket": True, "triggerPx": "48000", "tpsl": "sl"}}
    assert ours["r"] is True and ours["b"] is False and ours["p"] == "45600"
    assert ours == sdk_wire(0, False, 0.5, 45600.0, {"trigger": {"isMarket": True, "triggerPx": 48000.0,
                                                                 "tpsl": "sl"}}, reduce_only=True)


def test_market_is_an_aggressive_ioc_through_the_reference() -> None:
    ours = hl.order_wire(intent(OrderType.MARKET, price=None, intended_price=3_000.0, symbol="ETH"), ETH)
    assert ours["t"] == {"limit": {"tif": "Ioc"}} and ours["p"] == "3150"
    with pytest.raises(ValueError, match="reference price"):
        hl.order_wire(intent(OrderType.MARKET, price=None), ETH)


def test_price_and_size_rounding_rules() -> None:
    assert hl.round_price(BTC, 50_123.46) == "50123"  # 5 significant figures
    assert hl.round_price(BTC, 123_456.0) == "123456"  # integers always allowed
    assert hl.round_price(ETH, 1.234567) == "1.23"  # 6 - 4 = 2 decimals
    assert hl.round_price(hl.Asset("PEPE", 2, 0), 0.0000123456) == "0.000012"
    assert hl.round_size(BTC, 0.0123459) == "0.01234"  # never rounds up past the sized risk
    with pytest.raises(ValueError, match="below the lot"):
        hl.round_size(BTC, 0.000001)
    with pytest.raises(ValueError, match="fill-or-kill"):
        hl.order_wire(intent(tif=TimeInForce.FOK), BTC)
    with pytest.raises(ValueError, match="32 lower-case hex"):
        hl.cloid("entry-1")


def test_cancel_and_modify_actions_match_the_sdks_shapes() -> None:
    assert hl.cancel_by_cloid_action([(ETH, COID)]) == {
        "type": "cancelByCloid", "cancels": [{"asset": 1, "cloid": "0x" + COID}]}
    assert hl.cancel_action([(ETH, 77)]) == {"type": "cancel", "cancels": [{"a": 1, "o": 77}]}
    wire = hl.order_wire(intent(), BTC)
    assert hl.modify_action(COID, wire) == {"type": "batchModify",
                                            "modifies": [{"oid": "0x" + COID, "order": wire}]}


@pytest.mark.parametrize("mainnet", [False, True])
def test_signature_equals_the_sdks_byte_for_byte(mainnet: bool) -> None:
    action = hl.order_action([hl.order_wire(intent(), BTC)])
    nonce = 1_760_000_000_123
    ours = AgentSigner(KEY, mainnet=mainnet).sign_l1(action, nonce)
    theirs = signing.sign_l1_action(Account.from_key(KEY), action, None, nonce, None, mainnet)
    assert ours == theirs
    assert action_hash(action, nonce) == signing.action_hash(action, None, nonce, None)
    vault = "0x" + "12" * 20
    assert action_hash(action, nonce, vault, 5) == signing.action_hash(action, vault, nonce, 5)
    recovered = signing.recover_agent_or_user_from_l1_action(action, ours, None, nonce, None, mainnet)
    assert recovered == Account.from_key(KEY).address
    # The other network's source recovers some other address: the venue would not know it.
    assert recover_l1_signer(action, nonce, ours, mainnet=not mainnet) != Account.from_key(KEY).address


def test_signer_never_shows_the_key(tmp_path) -> None:  # type: ignore[no-untyped-def]
    signer = AgentSigner(KEY, mainnet=False)
    assert "4f4f" not in repr(signer) and signer.address in repr(signer)
    with pytest.raises(AuthError) as err:
        AgentSigner("0x1234", mainnet=False)
    assert "1234" not in str(err.value)
    (tmp_path / "hl-agent").write_text(KEY + "\n")
    assert read_agent_key(tmp_path, "hl-agent") == KEY
    with pytest.raises(AuthError, match="CREDENTIALS_DIRECTORY"):
        read_agent_key(None, "hl-agent")
    (tmp_path / "bad").write_text("not a key")
    with pytest.raises(AuthError, match="64 hex") as err2:
        read_agent_key(tmp_path, "bad")
    assert "not a key" not in str(err2.value)


def test_nonces_increase_across_restarts_and_refuse_to_go_back(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "nonce"
    clock = NonceClock(path, lease_ms=10_000)
    assert [clock.next(1000), clock.next(1000), clock.next(999)] == [1000, 1001, 1002]
    assert int(path.read_text()) >= 1002
    restarted = NonceClock(path)  # as after kill -9: the clock has not moved
    assert restarted.next(1000) > 1002
    with pytest.raises(InvariantViolation, match="clock went back"):
        NonceClock(path).next(-90_000_000)


def test_exchange_replies_become_reports() -> None:
    reply = {"status": "ok", "response": {"type": "order", "data": {"statuses": [
        {"resting": {"oid": 77738308}}, {"filled": {"totalSz": "0.02", "avgPx": "1891.4", "oid": 77747314}},
        {"error": "Order must have minimum value of $10."}]}}}
    entries = hl.parse_exchange_reply(reply)
    reports = [hl.submit_report(COID, e, 5) for e in entries]
    assert [r.kind for r in reports] == [OrderEvent.ACCEPT, OrderEvent.ACCEPT, OrderEvent.REJECT]
    assert reports[0].venue_order_id == "77738308"
    assert reports[2].reason.startswith("min_notional:")
    cancel = hl.parse_exchange_reply({"status": "ok", "response": {"type": "cancel", "data": {"statuses": [
        "success", {"error": "Order was never placed, already canceled, or filled."}]}}})
    assert [hl.cancel_report(COID, e, 1).kind for e in cancel] == [OrderEvent.CANCEL, OrderEvent.CANCEL_REJECT]
    with pytest.raises(AuthError):
        hl.parse_exchange_reply({"status": "err", "response": "User or API Wallet 0xab does not exist."})
    with pytest.raises(hl.NonceRefused):
        hl.parse_exchange_reply({"status": "err", "response": "Invalid nonce: duplicate nonce 1741107452532"})


def test_info_answers_parse() -> None:
    meta = hl.parse_meta({"universe": [{"name": "BTC", "szDecimals": 5, "maxLeverage": 50},
                                       {"name": "ETH", "szDecimals": 4, "maxLeverage": 25, "isDelisted": True}]})
    assert meta["BTC"].index == 0 and meta["BTC"].spec().lot_size == 1e-5 and meta["ETH"].delisted
    problems = hl.check_symbols(["BTC", "BTC-PERP", "ETH"], meta)
    assert len(problems) == 2 and "valid: BTC" in problems[0] and "delisted" in problems[1]
    status = hl.parse_order_status({"status": "order", "order": {"status": "open", "statusTimestamp": 1, "order": {
        "coin": "BTC", "side": "A", "limitPx": "45600", "sz": "0.3", "origSz": "0.5", "oid": 9, "timestamp": 1,
        "isTrigger": True, "triggerPx": "48000", "reduceOnly": True, "cloid": "0x" + COID}}})
    assert status is not None and status.client_order_id == COID and status.status == "partially_filled"
    assert status.filled_qty == pytest.approx(0.2) and status.trigger_price == 48000.0 and status.reduce_only
    assert hl.parse_order_status({"status": "unknownOid"}) is None
    positions, account = hl.parse_clearinghouse({
        "assetPositions": [{"type": "oneWay", "position": {"coin": "BTC", "szi": "-0.5", "entryPx": "50000",
                                                           "unrealizedPnl": "12.5"}}],
        "marginSummary": {"accountValue": "10012.5", "totalMarginUsed": "2500"}, "withdrawable": "7500"})
    assert positions[0].quantity == -0.5 and account.equity == 10012.5 and account.available == 7500


def test_user_channels_parse() -> None:
    fill = {"coin": "BTC", "px": "50000", "sz": "0.1", "side": "B", "time": 7, "startPosition": "0",
            "dir": "Open Long", "closedPnl": "0", "hash": "0x0", "oid": 9, "crossed": True, "fee": "2.25",
            "tid": 123, "cloid": "0x" + COID, "feeToken": "USDC"}
    snap = hl.parse_user_message(json.dumps({"channel": "userFills", "data": {"isSnapshot": True, "user": "0x1",
                                                                                "fills": [fill]}}))
    assert snap.snapshot and snap.reports[0].trade_id == "123" and snap.reports[0].client_order_id == COID
    upd = hl.parse_user_message(json.dumps({"channel": "orderUpdates", "data": [
        {"order": {"coin": "BTC", "side": "A", "limitPx": "1", "sz": "0.1", "oid": 9, "timestamp": 1,
                   "origSz": "0.1", "cloid": "0x" + COID}, "status": "marginCanceled", "statusTimestamp": 8}]}))
    assert upd.reports[0].kind is OrderEvent.CANCEL and upd.reports[0].reason == "marginCanceled"
    assert hl.parse_user_message('{"channel": "pong"}').other == "pong"
