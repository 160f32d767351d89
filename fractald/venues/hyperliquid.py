"""Hyperliquid Sans-I/O codec: requests to build, pushed messages to parse. No sockets here.

WebSocket: `{"method": "subscribe", "subscription": {"type": ..., "coin": ...}}`;
pushes are `{"channel": <type>, "data": ...}`. The server closes a
connection idle for 60 s, so the client sends `{"method": "ping"}` every
30 s and gets `{"channel": "pong"}`.

REST: `POST /info {"type": "candleSnapshot", "req": {...}}` returns at most
5000 candles; every /info request costs 20 weight (l2Book and allMids 2)
out of 1200 a minute per IP, and candleSnapshot one more per 60 candles
returned.
"""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Sequence
from typing import Any

import orjson

from fractald.core.book import BookSnapshot
from fractald.core.models import Bar, Quote, Side, TradeTick, timeframe_ms
from fractald.venues.events import (
    CandleUpdate,
    Mids,
    Pong,
    SubscriptionAck,
    UnknownChannel,
    VenueErrorMsg,
    VenueEvent,
    decode_object,
    guarded,
)

MAINNET_WS_URL = "wss://api.hyperliquid.xyz/ws"
TESTNET_WS_URL = "wss://api.hyperliquid-testnet.xyz/ws"
MAINNET_REST_URL = "https://api.hyperliquid.xyz"
TESTNET_REST_URL = "https://api.hyperliquid-testnet.xyz"
INFO_PATH = "/info"

PING_INTERVAL_S = 30.0
MAX_CANDLES_PER_REQUEST = 5000
WEIGHT_LIMIT_PER_MINUTE = 1200
CANDLE_SNAPSHOT_WEIGHT = 20
CANDLE_ITEMS_PER_EXTRA_WEIGHT = 60
INTERVALS = ("1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "8h", "12h", "1d", "3d", "1w", "1M")


class Channel(enum.Enum):
    TRADES = "trades"
    L2_BOOK = "l2Book"
    BBO = "bbo"
    CANDLE = "candle"
    ALL_MIDS = "allMids"


def subscription(
    channel: Channel, coin: str | None = None, interval: str | None = None
) -> dict[str, str]:
    """The `subscription` object for one channel; ValueError names what is missing."""
    sub: dict[str, str] = {"type": channel.value}
    if channel is Channel.ALL_MIDS:
        return sub
    if not coin:
        raise ValueError(f"hyperliquid {channel.value} subscription needs a coin")
    sub["coin"] = coin
    if channel is Channel.CANDLE:
        if interval not in INTERVALS:
            raise ValueError(
                f"hyperliquid candle interval {interval!r} not in {', '.join(INTERVALS)}"
            )
        sub["interval"] = interval
    return sub


def subscribe_message(sub: dict[str, str]) -> str:
    return json.dumps({"method": "subscribe", "subscription": sub})


def unsubscribe_message(sub: dict[str, str]) -> str:
    return json.dumps({"method": "unsubscribe", "subscription": sub})


PING_MESSAGE = json.dumps({"method": "ping"})
# The first frame of every connection: plain text, not JSON, and not garbage either.
GREETING = "Websocket connection established."


def market_subscriptions(
    coins: Sequence[str], *, book: bool = False, candle_interval: str | None = None
) -> list[str]:
    """Everything a market data feed needs for these coins, as ready-to-send messages."""
    subs = []
    for coin in coins:
        subs.append(subscription(Channel.TRADES, coin))
        subs.append(subscription(Channel.BBO, coin))
        if book:
            subs.append(subscription(Channel.L2_BOOK, coin))
        if candle_interval:
            subs.append(subscription(Channel.CANDLE, coin, candle_interval))
    return [subscribe_message(s) for s in subs]


# -- parsing --------------------------------------------------------------------

_SIDES = {"B": Side.BUY, "A": Side.SELL}  # the taker's side: B bought (hit the ask), A sold


def parse_trade(d: dict[str, Any]) -> TradeTick:
    return TradeTick(
        symbol=d["coin"],
        price=float(d["px"]),
        size=float(d["sz"]),
        aggressor=_SIDES[d["side"]],
        trade_id=str(d["tid"]),
        ts_event=int(d["time"]),
    )


def parse_candle(d: dict[str, Any]) -> Bar:
    """A candle dict (WS `candle` data or one candleSnapshot item) as a Bar."""
    interval = d["i"]
    ts_open = int(d["t"])
    if ts_open % timeframe_ms(interval):
        raise ValueError(f"candle open {ts_open} not aligned to {interval}")
    return Bar(
        symbol=d["s"],
        timeframe=interval,
        ts_open=ts_open,
        open=float(d["o"]),
        high=float(d["h"]),
        low=float(d["l"]),
        close=float(d["c"]),
        volume=float(d["v"]),
    )


def parse_l2_book(d: dict[str, Any]) -> BookSnapshot:
    bids, asks = d["levels"]
    return BookSnapshot(
        symbol=d["coin"],
        bids=[(lv["px"], lv["sz"]) for lv in bids],
        asks=[(lv["px"], lv["sz"]) for lv in asks],
        ts_event=int(d["time"]),
    )


def parse_bbo(d: dict[str, Any]) -> Quote:
    bid, ask = d["bbo"]
    return Quote(
        symbol=d["coin"],
        bid=float(bid["px"]) if bid else 0.0,
        bid_size=float(bid["sz"]) if bid else 0.0,
        ask=float(ask["px"]) if ask else 0.0,
        ask_size=float(ask["sz"]) if ask else 0.0,
        ts_event=int(d["time"]),
    )


def _parse_channel(channel: str, data: Any) -> list[VenueEvent]:
    if channel == "trades":
        return [parse_trade(t) for t in data]
    if channel == "bbo":
        return [parse_bbo(data)]
    if channel == "l2Book":
        return [parse_l2_book(data)]
    if channel == "candle":
        # Hyperliquid pushes the candle in progress; it is final only once a later one starts.
        return [CandleUpdate(parse_candle(data), closed=False)]
    if channel == "allMids":
        return [Mids(tuple((k, float(v)) for k, v in data["mids"].items()))]
    if channel == "pong":
        return [Pong()]
    if channel == "subscriptionResponse":
        sub = data.get("subscription", {}) if isinstance(data, dict) else {}
        return [SubscriptionAck(channel=str(sub.get("type", "")), detail=json.dumps(data))]
    if channel == "error":
        return [VenueErrorMsg(message=str(data))]
    raise UnknownChannel(repr(channel))


def parse_message(raw: str | bytes) -> list[VenueEvent]:
    """Every pushed message as typed events; anything unreadable becomes one `Unparsed`."""
    # Hot path: trades (orjson decodes in a third of json's time); the rest with care below.
    try:
        msg = orjson.loads(raw)
        if msg["channel"] == "trades":
            return [parse_trade(t) for t in msg["data"]]
    except (KeyError, TypeError, ValueError, AttributeError, IndexError):
        pass
    text, msg = decode_object(raw)
    if not isinstance(msg, dict) and text.strip() == GREETING:
        return [SubscriptionAck(channel="connection", detail=GREETING)]
    if not isinstance(msg, dict):
        return [msg]
    channel = str(msg.get("channel"))
    return guarded(lambda: _parse_channel(channel, msg.get("data")), channel, text)


# -- REST backfill -------------------------------------------------------------


def candle_snapshot_body(coin: str, interval: str, start_ms: int, end_ms: int) -> dict[str, Any]:
    if interval not in INTERVALS:
        raise ValueError(f"hyperliquid candle interval {interval!r} not in {', '.join(INTERVALS)}")
    return {
        "type": "candleSnapshot",
        "req": {"coin": coin, "interval": interval, "startTime": start_ms, "endTime": end_ms},
    }


def candle_pages(
    start_ms: int, end_ms: int, interval: str, per_page: int = MAX_CANDLES_PER_REQUEST
) -> list[tuple[int, int]]:
    """Split [start_ms, end_ms) into request windows of at most `per_page` candles each."""
    step = timeframe_ms(interval) * per_page
    return [(s, min(s + step, end_ms) - 1) for s in range(start_ms, end_ms, step)]


def candle_snapshot_weight(candles: int) -> int:
    """Rate-limit weight of one candleSnapshot that returned this many candles."""
    return CANDLE_SNAPSHOT_WEIGHT + math.ceil(candles / CANDLE_ITEMS_PER_EXTRA_WEIGHT)


def parse_candle_snapshot(payload: Any) -> list[Bar]:
    """The candleSnapshot response; raises ValueError naming the problem (REST is not a stream)."""
    if not isinstance(payload, list):
        raise ValueError(f"candleSnapshot: expected a list, got {type(payload).__name__}")  # noqa: TRY004
    try:
        return [parse_candle(item) for item in payload]
    except (KeyError, TypeError) as exc:
        raise ValueError(f"candleSnapshot item unreadable: {exc!r}") from exc
