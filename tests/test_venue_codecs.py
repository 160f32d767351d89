"""Venue codecs against real recorded exchange messages (tests/data, see SOURCES.md)."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from fakevenue.data import (
    FUTURES_HTTP,
    FUTURES_WS,
    HL_CANDLES,
    HL_L2,
    SPOT_WS,
    capture_messages,
    cassette_bodies,
)

from fractald.core.book import BookDelta, BookSnapshot
from fractald.core.models import Bar, Quote, Side, TradeTick
from fractald.venues import binance, hyperliquid
from fractald.venues.events import (
    RAW_KEEP,
    CandleUpdate,
    Mids,
    Pong,
    SubscriptionAck,
    Unparsed,
    UnparsedReason,
    VenueErrorMsg,
)
from fractald.venues.replay import read_rest_capture


def _parse_all(messages: list[str]) -> list[object]:
    return [e for m in messages for e in binance.parse_message(m)]


def test_binance_futures_capture_parses_every_message_into_typed_events() -> None:
    messages = capture_messages(FUTURES_WS)
    events = _parse_all(messages)
    assert len(events) == len(messages)  # one event per message, none lost
    kinds = Counter(type(e).__name__ for e in events)
    # Counts as stated for the capture in tests/data/SOURCES.md's source.
    assert kinds == {"BookDelta": 764, "Quote": 613, "TradeTick": 91, "CandleUpdate": 67}
    closed = [e for e in events if isinstance(e, CandleUpdate) and e.closed]
    assert len(closed) == 4


def test_binance_futures_fields_match_the_raw_message() -> None:
    messages = capture_messages(FUTURES_WS)
    agg = next(m for m in messages if "@aggTrade" in m)
    raw = json.loads(agg)["data"]
    (tick,) = binance.parse_message(agg)
    assert isinstance(tick, TradeTick)
    assert tick.symbol == raw["s"] and tick.price == float(raw["p"]) and tick.size == float(raw["q"])
    assert tick.trade_id == str(raw["a"]) and tick.ts_event == raw["T"]
    assert tick.aggressor is (Side.SELL if raw["m"] else Side.BUY)

    depth = next(m for m in messages if "depthUpdate" in m)
    raw = json.loads(depth)["data"]
    (delta,) = binance.parse_message(depth)
    assert isinstance(delta, BookDelta)
    assert (delta.first_update_id, delta.final_update_id, delta.prev_final_update_id) == (
        raw["U"], raw["u"], raw["pu"])
    assert delta.bids == tuple((float(p), float(q)) for p, q in raw["b"])

    ticker = next(m for m in messages if "@bookTicker" in m)
    raw = json.loads(ticker)["data"]
    (quote,) = binance.parse_message(ticker)
    assert isinstance(quote, Quote)
    assert (quote.bid, quote.ask, quote.ts_event) == (float(raw["b"]), float(raw["a"]), raw["T"])
    assert not quote.crossed

    kline = next(m for m in messages if '"x":true' in m)
    raw = json.loads(kline)["data"]["k"]
    (candle,) = binance.parse_message(kline)
    assert isinstance(candle, CandleUpdate) and candle.closed
    assert candle.bar.ts_open == raw["t"] and candle.bar.ts_event == raw["T"] + 1
    assert (candle.bar.open, candle.bar.close, candle.bar.volume) == (
        float(raw["o"]), float(raw["c"]), float(raw["v"]))


def test_binance_spot_capture_parses_without_unparsed() -> None:
    events = _parse_all(capture_messages(SPOT_WS))
    assert events and not [e for e in events if isinstance(e, Unparsed)]
    spot_quotes = [e for e in events if isinstance(e, Quote)]
    assert spot_quotes and all(q.ts_event == 0 for q in spot_quotes)  # spot bookTicker has no time


def test_binance_depth_snapshot_from_rest_capture() -> None:
    first = read_rest_capture(FUTURES_HTTP)[0]
    snap = binance.parse_depth_snapshot("sushiusdt", json.loads(first.body))
    assert isinstance(snap, BookSnapshot)
    assert snap.symbol == "SUSHIUSDT" and snap.last_update_id == 600859605926
    assert snap.bids[0] == (7.611, 6.0) and len(snap.bids) == len(json.loads(first.body)["bids"])
    with pytest.raises(ValueError, match="depth snapshot for X unreadable"):
        binance.parse_depth_snapshot("X", {"bids": []})


@pytest.mark.parametrize("raw, reason", [
    ("not json at all", UnparsedReason.NOT_JSON),
    ("[1, 2]", UnparsedReason.NOT_AN_OBJECT),
    ('{"stream":"x@mystery","data":{"e":"mystery"}}', UnparsedReason.UNKNOWN_CHANNEL),
    ('{"stream":"x@aggTrade","data":{"e":"aggTrade","s":"X"}}', UnparsedReason.MISSING_FIELD),
    ('{"stream":"x@aggTrade","data":{"e":"aggTrade","s":"X","p":"abc","q":"1","m":true,"a":1,"T":1}}',
     UnparsedReason.BAD_VALUE),
    ('{"stream":"x@aggTrade","data":{"e":"aggTrade","s":"X","p":"-1","q":"1","m":true,"a":1,"T":1}}',
     UnparsedReason.BAD_VALUE),
    (b"\xff\xfe binary", UnparsedReason.NOT_JSON),
])
def test_binance_garbage_becomes_unparsed_never_an_exception(raw: str | bytes,
                                                              reason: UnparsedReason) -> None:
    (event,) = binance.parse_message(raw)
    assert isinstance(event, Unparsed) and event.reason is reason


def test_unparsed_keeps_only_a_clipped_copy_of_huge_frames() -> None:
    (event,) = binance.parse_message("x" * 1_000_000)
    assert isinstance(event, Unparsed) and len(event.raw) < RAW_KEEP + 40


def test_binance_acks_and_errors() -> None:
    (ack,) = binance.parse_message('{"result":null,"id":3}')
    assert isinstance(ack, SubscriptionAck) and ack.channel == "id=3"
    (err,) = binance.parse_message('{"code":2,"msg":"Invalid request: unknown stream","id":4}')
    assert isinstance(err, VenueErrorMsg) and err.code == 2 and "unknown stream" in err.message


def test_binance_requests() -> None:
    streams = binance.market_streams(["BTCUSDT"], book=True)
    assert streams == ["btcusdt@aggTrade", "btcusdt@bookTicker", "btcusdt@depth@100ms"]
    msgs = [json.loads(m) for m in binance.subscribe_messages(streams * 70, per_message=100)]
    assert [len(m["params"]) for m in msgs] == [100, 100, 10] and [m["id"] for m in msgs] == [1, 2, 3]
    assert json.loads(binance.unsubscribe_message(["a@trade"], 9))["method"] == "UNSUBSCRIBE"
    assert binance.stream_name("ETHUSDT", binance.Stream.KLINE, "5m") == "ethusdt@kline_5m"
    with pytest.raises(ValueError, match="interval '7m'"):
        binance.stream_name("ETHUSDT", binance.Stream.KLINE, "7m")
    params = binance.klines_params("btcusdt", "1m", 0, 59_999_999)
    assert params["symbol"] == "BTCUSDT" and params["limit"] == 1000
    pages = binance.kline_pages(0, 2500 * 60_000, "1m")
    assert [(e + 1 - s) // 60_000 for s, e in pages] == [1000, 1000, 500]
    assert binance.klines_weight(binance.Market.FUTURES, 1000) == 5


def test_binance_klines_rows() -> None:
    row = [1626992700000, "7.6080", "7.6180", "7.6070", "7.6170", "3005", 1626992759999, "1", 113,
           "1", "1", "0"]
    (bar,) = binance.parse_klines("sushiusdt", "1m", [row])
    assert bar == Bar("SUSHIUSDT", "1m", 1626992700000, 7.608, 7.618, 7.607, 7.617, 3005.0)
    with pytest.raises(ValueError, match="klines"):
        binance.parse_klines("x", "1m", {"code": -1121})


# -- Hyperliquid ------------------------------------------------------------------

def test_hyperliquid_candle_snapshot_cassette() -> None:
    payload = cassette_bodies(HL_CANDLES)[1]
    bars = hyperliquid.parse_candle_snapshot(payload)
    assert len(bars) == 24
    first = payload[0]
    assert bars[0] == Bar("kPEPE", "1h", first["t"], float(first["o"]), float(first["h"]),
                          float(first["l"]), float(first["c"]), float(first["v"]))
    assert all(b.ts_event == p["T"] + 1 for b, p in zip(bars, payload))
    assert [b.ts_open for b in bars] == sorted({b.ts_open for b in bars})


def test_hyperliquid_ws_candle_has_the_rest_shape() -> None:
    item = cassette_bodies(HL_CANDLES)[1][5]
    (update,) = hyperliquid.parse_message(json.dumps({"channel": "candle", "data": item}))
    assert isinstance(update, CandleUpdate) and not update.closed
    assert update.bar == hyperliquid.parse_candle(item)


def test_hyperliquid_l2_book_cassette_as_ws_push() -> None:
    data = cassette_bodies(HL_L2)[1]
    (snap,) = hyperliquid.parse_message(json.dumps({"channel": "l2Book", "data": data}))
    assert isinstance(snap, BookSnapshot)
    assert snap.symbol == "DYDX" and snap.ts_event == 1689630203930
    assert len(snap.bids) == len(snap.asks) == 20
    assert snap.bids[0] == (2.111, 134.4) and snap.asks[0] == (2.1124, 352.3)
    assert snap.bids[0][0] < snap.asks[0][0]


def test_hyperliquid_other_channels() -> None:
    trades = {"channel": "trades", "data": [
        {"coin": "BTC", "side": "B", "px": "65000.5", "sz": "0.01", "hash": "0x1", "time": 1, "tid": 7},
        {"coin": "BTC", "side": "A", "px": "64999", "sz": "0.2", "hash": "0x2", "time": 2, "tid": 8}]}
    a, b = hyperliquid.parse_message(json.dumps(trades))
    assert isinstance(a, TradeTick) and a.aggressor is Side.BUY and a.price == 65000.5 and a.trade_id == "7"
    assert isinstance(b, TradeTick) and b.aggressor is Side.SELL
    bbo = {"channel": "bbo", "data": {"coin": "BTC", "time": 5, "bbo": [
        {"px": "100", "sz": "1", "n": 1}, {"px": "101", "sz": "2", "n": 3}]}}
    (q,) = hyperliquid.parse_message(json.dumps(bbo))
    assert q == Quote("BTC", 100.0, 1.0, 101.0, 2.0, 5)
    (m,) = hyperliquid.parse_message('{"channel":"allMids","data":{"mids":{"BTC":"1.5"}}}')
    assert isinstance(m, Mids) and m.mids == (("BTC", 1.5),)
    assert isinstance(hyperliquid.parse_message('{"channel":"pong"}')[0], Pong)
    (ack,) = hyperliquid.parse_message(
        '{"channel":"subscriptionResponse","data":{"method":"subscribe","subscription":{"type":"trades","coin":"BTC"}}}')
    assert isinstance(ack, SubscriptionAck) and ack.channel == "trades"
    (err,) = hyperliquid.parse_message('{"channel":"error","data":"Invalid subscription"}')
    assert isinstance(err, VenueErrorMsg) and "Invalid" in err.message


@pytest.mark.parametrize("raw, reason", [
    ("{{{", UnparsedReason.NOT_JSON),
    ('"str"', UnparsedReason.NOT_AN_OBJECT),
    ('{"channel":"weird","data":{}}', UnparsedReason.UNKNOWN_CHANNEL),
    ('{"channel":"trades","data":[{"coin":"BTC"}]}', UnparsedReason.MISSING_FIELD),
    ('{"channel":"trades","data":[{"coin":"BTC","side":"B","px":"0","sz":"1","time":1,"tid":1}]}',
     UnparsedReason.BAD_VALUE),
    ('{"channel":"bbo","data":{"coin":"BTC","time":1,"bbo":[]}}', UnparsedReason.BAD_VALUE),
    ('{"channel":"candle","data":{"t":1,"T":2,"s":"BTC","i":"1m","o":"1","c":"1","h":"1","l":"1","v":"1"}}',
     UnparsedReason.BAD_VALUE),
])
def test_hyperliquid_garbage_becomes_unparsed(raw: str, reason: UnparsedReason) -> None:
    (event,) = hyperliquid.parse_message(raw)
    assert isinstance(event, Unparsed) and event.reason is reason


def test_hyperliquid_requests_and_paging_within_limits() -> None:
    subs = [json.loads(m) for m in hyperliquid.market_subscriptions(["BTC"], book=True,
                                                                     candle_interval="1m")]
    assert [s["subscription"]["type"] for s in subs] == ["trades", "bbo", "l2Book", "candle"]
    assert all(s["method"] == "subscribe" for s in subs)
    assert subs[3]["subscription"] == {"type": "candle", "coin": "BTC", "interval": "1m"}
    assert json.loads(hyperliquid.PING_MESSAGE) == {"method": "ping"}
    assert json.loads(hyperliquid.unsubscribe_message({"type": "allMids"}))["method"] == "unsubscribe"
    with pytest.raises(ValueError, match="needs a coin"):
        hyperliquid.subscription(hyperliquid.Channel.TRADES)
    body = hyperliquid.candle_snapshot_body("BTC", "1m", 0, 10)
    assert body == {"type": "candleSnapshot",
                    "req": {"coin": "BTC", "interval": "1m", "startTime": 0, "endTime": 10}}
    pages = hyperliquid.candle_pages(0, 12_000 * 60_000, "1m")
    assert [(e + 1 - s) // 60_000 for s, e in pages] == [5000, 5000, 2000]
    assert pages[1][0] == pages[0][1] + 1
    assert hyperliquid.candle_snapshot_weight(5000) == 20 + 84
    with pytest.raises(ValueError, match="expected a list"):
        hyperliquid.parse_candle_snapshot({"error": "x"})
