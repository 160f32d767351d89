"""Binance order codec (Sans-I/O): requests, signing, replies, errors, user stream, instruments.

Replies and events are Binance's documented examples
(tests/data/binance_futures_documented.json), so the parsers are checked
against the venue's shapes rather than our own.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import parse_qsl

import pytest

from fractald.core.execution.events import OrderIntent
from fractald.core.execution.orders import (
    Liquidity,
    OrderEvent,
    OrderType,
    TimeInForce,
    client_order_id,
)
from fractald.core.models import Side
from fractald.errors import AuthError, RateLimited, VenueUnavailable
from fractald.venues import binance_orders as bo
from fractald.venues import binance_replies as br
from fractald.venues import binance_userstream as bu
from fractald.venues.binance import Market
from fractald.venues.interface import InstrumentSpec

DOCS = json.loads((Path(__file__).parent / "data" / "binance_futures_documented.json").read_text())
BTC = InstrumentSpec("BTCUSDT", tick_size=0.1, lot_size=0.001, min_qty=0.001, min_notional=100.0)


def intent(order_type: OrderType = OrderType.LIMIT, **kw: object) -> OrderIntent:
    base: dict[str, object] = {"ts": 1, "client_order_id": client_order_id("sig-1", "entry"),
                                   "symbol": "BTCUSDT", "side": Side.BUY, "order_type": order_type,
                                   "quantity": 0.0123456, "price": 50_000.04}
    base.update(kw)
    return OrderIntent(**base)  # type: ignore[arg-type]


def params(unsigned: bo.Unsigned) -> dict[str, str]:
    return dict(unsigned.params)


# -- signing ------------------------------------------------------------------------

def test_signature_matches_binance_documented_example() -> None:
    ex = DOCS["signature_example"]
    assert bo.signature(ex["secret"], ex["query"]) == ex["signature"]


def test_sign_appends_timestamp_recv_window_and_a_verifiable_signature() -> None:
    req = bo.sign(bo.new_order(intent(), BTC, Market.FUTURES), "s3cret", 1_700_000_000_123, 5000)
    payload, _, sig = req.query.rpartition("&signature=")
    assert bo.signature("s3cret", payload) == sig
    q = dict(parse_qsl(payload))
    assert q["timestamp"] == "1700000000123" and q["recvWindow"] == "5000"
    assert req.signed and req.api_key and req.orders == 1
    assert "signature=<redacted>" in req.redacted() and sig not in req.redacted()


def test_recv_window_beyond_binance_limit_is_refused() -> None:
    with pytest.raises(ValueError, match="recvWindow"):
        bo.sign(bo.account(Market.FUTURES), "s", 1, 70_000)


def test_clock_offset_takes_the_middle_of_the_round_trip() -> None:
    off = bo.ClockOffset.measure(sent_ms=1000, server_ms=5000, received_ms=1100)
    assert off.offset_ms == 3950 and off.round_trip_ms == 100
    assert off.venue_time(2000) == 5950


# -- orders -------------------------------------------------------------------------

def test_futures_limit_order_rounds_to_tick_and_step_and_carries_our_client_id() -> None:
    p = params(bo.new_order(intent(tif=TimeInForce.IOC), BTC, Market.FUTURES))
    assert p["symbol"] == "BTCUSDT" and p["side"] == "BUY" and p["type"] == "LIMIT"
    assert p["timeInForce"] == "IOC" and p["price"] == "50000" and p["quantity"] == "0.012"
    assert p["newClientOrderId"] == client_order_id("sig-1", "entry")
    assert len(p["newClientOrderId"]) <= 36


def test_futures_post_only_is_gtx_and_market_has_no_price() -> None:
    assert params(bo.new_order(intent(), BTC, Market.FUTURES, post_only=True))["timeInForce"] == "GTX"
    p = params(bo.new_order(intent(OrderType.MARKET, price=None, reduce_only=True), BTC,
                            Market.FUTURES, reference_price=50_000))
    assert p["type"] == "MARKET" and "price" not in p and p["reduceOnly"] == "true"


def test_futures_gtd_rests_as_gtc_for_the_router_to_cancel_at_expiry() -> None:
    p = params(bo.new_order(intent(tif=TimeInForce.GTD, expire_ts=1_700_000_000_000), BTC, Market.FUTURES))
    assert p["timeInForce"] == "GTC" and "goodTillDate" not in p


def test_futures_stop_goes_to_the_algo_service_reduce_only_or_close_position() -> None:
    stop = intent(OrderType.STOP_MARKET, side=Side.SELL, price=None, trigger_price=48_000.06,
                  reduce_only=True, role="stop")
    u = bo.new_order(stop, BTC, Market.FUTURES)
    p = params(u)
    assert u.path == "/fapi/v1/algoOrder"
    assert p["algoType"] == "CONDITIONAL" and p["type"] == "STOP_MARKET"
    assert p["triggerPrice"] == "48000.1" and p["reduceOnly"] == "true"
    assert p["clientAlgoId"] == stop.client_order_id and "newClientOrderId" not in p
    whole = params(bo.new_order(stop, BTC, Market.FUTURES, close_position=True))
    assert whole["closePosition"] == "true" and "quantity" not in whole
    tp = params(bo.new_order(intent(OrderType.STOP_MARKET, side=Side.SELL, price=None,
                                    trigger_price=60_000, reduce_only=True, role="tp1"),
                             BTC, Market.FUTURES))
    assert tp["type"] == "TAKE_PROFIT_MARKET"


def test_spot_orders_use_spot_types() -> None:
    assert params(bo.new_order(intent(), BTC, Market.SPOT, post_only=True))["type"] == "LIMIT_MAKER"
    stop = params(bo.new_order(intent(OrderType.STOP_MARKET, side=Side.SELL, price=None,
                                      trigger_price=48_000, reduce_only=True), BTC, Market.SPOT))
    assert stop["type"] == "STOP_LOSS_LIMIT" and stop["stopPrice"] == "48000" and "reduceOnly" not in stop
    assert stop["price"] == "47040" and stop["timeInForce"] == "GTC"  # 2 % past the trigger
    gtd = params(bo.new_order(intent(tif=TimeInForce.GTD, expire_ts=5), BTC, Market.SPOT))
    assert gtd["type"] == "LIMIT" and gtd["timeInForce"] == "GTC"  # spot has no GTD


def test_orders_below_binance_minimums_are_not_sendable() -> None:
    with pytest.raises(bo.OrderNotSendable, match="below the minimum 0.001") as e1:
        bo.new_order(intent(quantity=0.0004), BTC, Market.FUTURES)
    assert e1.value.code == "below_min_qty"
    with pytest.raises(bo.OrderNotSendable, match="notional") as e2:
        bo.new_order(intent(quantity=0.001), BTC, Market.FUTURES)
    assert e2.value.code == "below_min_notional"


def test_client_ids_outside_binance_rules_are_refused_by_name() -> None:
    with pytest.raises(bo.OrderNotSendable, match="newClientOrderId"):
        bo.new_order(intent(client_order_id="x" * 37), BTC, Market.FUTURES)
    with pytest.raises(bo.OrderNotSendable):
        bo.check_client_id("has space")


def test_cancel_and_query_by_orig_client_order_id() -> None:
    cancel = bo.cancel_order(Market.FUTURES, "BTCUSDT", "abc")
    assert cancel.method == "DELETE" and params(cancel) == {"symbol": "BTCUSDT",
                                                             "origClientOrderId": "abc"}
    algo = bo.query_order(Market.FUTURES, "BTCUSDT", "abc", conditional=True)
    assert algo.path == "/fapi/v1/algoOrder" and params(algo) == {"clientAlgoId": "abc"}
    assert bo.query_order(Market.SPOT, "BTCUSDT", "abc").path == "/api/v3/order"
    trades = params(bo.user_trades(Market.FUTURES, "BTCUSDT", 123))
    assert trades["startTime"] == "123" and trades["symbol"] == "BTCUSDT"


def test_leverage_and_margin_type_requests() -> None:
    assert params(bo.set_leverage("BTCUSDT", 5)) == {"symbol": "BTCUSDT", "leverage": "5"}
    assert params(bo.set_margin_type("BTCUSDT", "cross"))["marginType"] == "CROSSED"
    with pytest.raises(ValueError, match="isolated, cross"):
        bo.set_margin_type("BTCUSDT", "portfolio")


# -- replies --------------------------------------------------------------------------

def test_documented_order_reply_parses() -> None:
    order = br.parse_order(DOCS["new_order_response"])
    assert order.client_order_id == "testOrder" and order.status == "open"
    assert order.venue_order_id == "22542179" and order.quantity == 10.0
    assert order.trigger_price == 9300.0 and order.price is None
    assert [r.kind for r in br.ack_report(order, 5)] == [OrderEvent.ACCEPT]


def test_documented_algo_order_reply_parses() -> None:
    order = br.parse_algo_order(DOCS["query_algo_order_response"])
    assert order.client_order_id == "6B2I9XVcJpCjqPAJ4YoFX7" and order.status == "canceled"
    assert order.trigger_price == 750.0 and order.terminal


def test_documented_account_positions_and_trades_parse() -> None:
    acct = br.parse_futures_account(DOCS["account_response_excerpt"])
    assert acct.equity == pytest.approx(126.72469206) and acct.currency == "USDT"
    positions = br.parse_position_risk(DOCS["position_risk_response"])
    assert [(p.symbol, p.quantity) for p in positions] == [("ETHUSDT", 20.0)]
    fills = [br.parse_user_trade(r, {"25851813": "ours"}) for r in DOCS["user_trades_response"]]
    assert fills[0] is not None and fills[0].client_order_id == "ours"
    assert fills[0].trade_id == "698759" and fills[0].quantity == 0.002 and fills[0].side == "SELL"
    assert br.parse_user_trade(DOCS["user_trades_response"][0], {}) is None
    assert br.parse_server_time(DOCS["server_time_response"]) == 1499827319559


def test_error_codes_map_to_categories() -> None:
    def judge(name: str, status: int = 400, headers: dict[str, str] | None = None) -> object:
        return br.judge_error(status, json.dumps(DOCS[name]), headers or {}, "POST /fapi/v1/order")

    margin = judge("error_insufficient_margin")
    assert isinstance(margin, br.Refusal) and margin.margin and margin.reason.startswith("binance:-2019")
    assert isinstance(judge("error_timestamp"), br.ClockSkew)
    auth = judge("error_api_key", 401)
    assert isinstance(auth, AuthError) and br.AUTH_RUNBOOK in auth.message
    assert (Path(__file__).parent.parent / br.AUTH_RUNBOOK).is_file()
    unknown = judge("error_unknown_order")
    assert isinstance(unknown, br.Refusal) and unknown.unknown_order
    limited = judge("error_too_many_requests", 429, {"retry-after": "7"})
    assert isinstance(limited, RateLimited) and limited.retry_after_s == 7.0
    banned = br.judge_error(418, b"", {"Retry-After": "120"}, "x")
    assert isinstance(banned, RateLimited) and banned.context["banned"]
    assert isinstance(br.judge_error(503, b"<html>", {}, "x"), VenueUnavailable)
    assert isinstance(judge("error_algo_required"), br.Refusal)


def test_usage_headers_and_pause() -> None:
    usage = br.UsageHeaders.parse({"X-MBX-USED-WEIGHT-1M": "2200", "x-mbx-order-count-10s": "3",
                                   "X-MBX-ORDER-COUNT-1m": "50", "Content-Type": "json"})
    assert usage.weight_1m() == 2200 and usage.orders_in(10) == 3 and usage.orders_in(60) == 50
    limits = {("used-weight", 60): 2400, ("order-count", 10): 300}
    assert br.pause_needed(usage, limits, now_s=1_000_000_035.0) == pytest.approx(45.0)
    assert br.pause_needed(br.UsageHeaders.parse({"X-MBX-USED-WEIGHT-1M": "10"}), limits, 5.0) == 0


def test_exchange_info_gives_instruments_and_symbol_problems_name_the_valid_form() -> None:
    specs = br.parse_exchange_info(DOCS["exchange_info_excerpt"], Market.FUTURES)
    blz = specs["BLZUSDT"]
    assert (blz.tick_size, blz.lot_size, blz.min_qty, blz.min_notional) == (0.0001, 1.0, 1.0, 5.0)
    problems = br.symbol_problems(["BLZUSDT", "blzusdt", "BLZ-PERP", "BTCUSD_PERP"], specs,
                                  Market.FUTURES)
    assert len(problems) == 3
    assert "did you mean 'BLZUSDT'" in problems[0] and "'BTCUSDT'" in problems[0]
    assert "did you mean 'BLZUSDT'" in problems[1]
    assert "COIN-M" in problems[2]


# -- user data stream -----------------------------------------------------------------

def test_documented_order_trade_update_new_is_an_accept() -> None:
    ev = bu.parse_user_event(json.dumps(DOCS["order_trade_update"]))
    assert isinstance(ev, bu.OrderUpdate) and ev.report is not None
    assert ev.report.kind is OrderEvent.ACCEPT and ev.report.client_order_id == "TEST"
    assert ev.venue_order_id == "8886774" and ev.report.trigger_price == 7103.04


def test_order_trade_update_trade_is_a_fill_with_trade_id_fee_and_liquidity() -> None:
    msg = json.loads(json.dumps(DOCS["order_trade_update"]))
    msg["o"].update({"x": "TRADE", "X": "PARTIALLY_FILLED", "l": "0.0005", "L": "7100.5",
                     "n": "0.0142", "t": 991, "m": True})
    ev = bu.parse_user_event(json.dumps(msg))
    assert isinstance(ev, bu.OrderUpdate) and ev.report is not None
    r = ev.report
    assert (r.kind, r.trade_id, r.quantity, r.price, r.fee, r.liquidity) == (
        OrderEvent.PARTIAL_FILL, "991", 0.0005, 7100.5, 0.0142, Liquidity.MAKER)
    msg["o"].update({"X": "FILLED"})
    done = bu.parse_user_event(json.dumps(msg))
    assert isinstance(done, bu.OrderUpdate) and done.report is not None
    assert done.report.kind is OrderEvent.FILL


def test_documented_algo_update_and_trigger() -> None:
    ev = bu.parse_user_event(json.dumps(DOCS["algo_update"]))
    assert isinstance(ev, bu.AlgoUpdate) and ev.report is not None
    assert ev.report.kind is OrderEvent.CANCEL and ev.client_order_id == "Q5xaq5EGKgXXa0fD7fs0Ip"
    msg = json.loads(json.dumps(DOCS["algo_update"]))
    msg["o"].update({"X": "TRIGGERED", "ai": "777"})
    trig = bu.parse_user_event(json.dumps(msg))
    assert isinstance(trig, bu.AlgoUpdate) and trig.report is not None
    assert trig.report.kind is OrderEvent.TRIGGER and trig.actual_order_id == "777"
    msg["o"]["X"] = "REJECTED"
    rej = bu.parse_user_event(json.dumps(msg))
    assert isinstance(rej, bu.AlgoUpdate) and rej.report is not None
    assert rej.report.reason == "Reduce Only reject"


def test_documented_account_update_listen_key_expired_and_spot_cancel() -> None:
    acct = bu.parse_user_event(json.dumps(DOCS["account_update"]))
    assert isinstance(acct, bu.AccountUpdate)
    assert acct.balances["USDT"] == pytest.approx(122624.12345678)
    assert acct.positions == {"BTCUSDT": 0.0}  # hedge-mode legs are not one-way positions
    exp = bu.parse_user_event(json.dumps(DOCS["listen_key_expired"]))
    assert isinstance(exp, bu.ListenKeyExpired) and exp.ts == 1736996475556
    spot = bu.parse_user_event(json.dumps(DOCS["spot_execution_report_cancel"]))
    assert isinstance(spot, bu.OrderUpdate) and spot.report is not None
    assert spot.client_order_id == "mUvoqJxFIILMdfAW5iGSOW" and spot.report.kind is OrderEvent.CANCEL


def test_garbage_on_the_user_stream_is_unrecognised_not_raised() -> None:
    assert isinstance(bu.parse_user_event(b"\xff{"), bu.Unrecognised)
    assert isinstance(bu.parse_user_event('{"e": "ORDER_TRADE_UPDATE"}'), bu.Unrecognised)
    assert isinstance(bu.parse_user_event('{"e": "MARGIN_CALL"}'), bu.Unrecognised)


def test_listen_key_schedule() -> None:
    s = bu.ListenKeySchedule().created("k1", now=100.0)
    assert not s.needs_key and s.next_keepalive() == 100.0 + 1800.0
    assert s.kept_alive(1900.0).next_keepalive() == 3700.0
    assert s.expired().needs_key
    assert bo.listen_key_keepalive(Market.SPOT, "k1").query == "listenKey=k1"
    assert bo.user_stream_url("wss://x/", "k1") == "wss://x/ws/k1"
