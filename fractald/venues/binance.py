"""Binance spot and USD-M futures Sans-I/O codec. No sockets here.

WebSocket: one combined-stream connection (`/stream`), subscribed with
`{"method": "SUBSCRIBE", "params": ["btcusdt@aggTrade", ...], "id": n}`;
pushes are `{"stream": ..., "data": {...}}`. The server pings every few
minutes and the WebSocket layer answers; it cuts every connection at 24 h,
so the transport reconnects on its own before that.

Order book: `<s>@depth@100ms` deltas are synchronised against the REST
snapshot (`GET /api/v3/depth` or `/fapi/v1/depth`) by
`fractald.core.book.BinanceBookSync`. Backfill: `GET .../klines`.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Sequence
from typing import Any

import attrs
import orjson

from fractald.core.book import BookDelta, BookSnapshot
from fractald.core.models import Bar, Quote, Side, TradeTick, timeframe_ms
from fractald.venues.events import (
    CandleUpdate,
    SubscriptionAck,
    UnknownChannel,
    VenueErrorMsg,
    VenueEvent,
    decode_object,
    guarded,
)


class Market(enum.Enum):
    SPOT = "spot"
    FUTURES = "futures"  # USD-M


@attrs.frozen(slots=True)
class Endpoints:
    ws_url: str
    rest_url: str
    depth_path: str
    klines_path: str
    klines_limit: int
    weight_per_minute: int


ENDPOINTS = {
    Market.SPOT: Endpoints(
        "wss://stream.binance.com:9443/stream",
        "https://api.binance.com",
        "/api/v3/depth",
        "/api/v3/klines",
        1000,
        6000,
    ),
    Market.FUTURES: Endpoints(
        "wss://fstream.binance.com/stream",
        "https://fapi.binance.com",
        "/fapi/v1/depth",
        "/fapi/v1/klines",
        1000,
        2400,
    ),
}

# Binance cuts every connection at 24 h; reconnect on our terms well before.
MAX_CONNECTION_S = 23 * 3600.0
INTERVALS = (
    "1m",
    "3m",
    "5m",
    "15m",
    "30m",
    "1h",
    "2h",
    "4h",
    "6h",
    "8h",
    "12h",
    "1d",
    "3d",
    "1w",
    "1M",
)


class Stream(enum.Enum):
    TRADE = "trade"
    AGG_TRADE = "aggTrade"
    KLINE = "kline"
    BOOK_TICKER = "bookTicker"
    DEPTH = "depth@100ms"


def stream_name(symbol: str, stream: Stream, interval: str = "1m") -> str:
    if stream is Stream.KLINE:
        if interval not in INTERVALS:
            raise ValueError(f"binance kline interval {interval!r} not in {', '.join(INTERVALS)}")
        return f"{symbol.lower()}@kline_{interval}"
    return f"{symbol.lower()}@{stream.value}"


def subscribe_message(streams: Sequence[str], request_id: int) -> str:
    return json.dumps({"method": "SUBSCRIBE", "params": list(streams), "id": request_id})


def unsubscribe_message(streams: Sequence[str], request_id: int) -> str:
    return json.dumps({"method": "UNSUBSCRIBE", "params": list(streams), "id": request_id})


def market_streams(
    symbols: Sequence[str], *, book: bool = False, candles: bool = False
) -> list[str]:
    """Streams a market data feed needs: aggregated trades and best bid/ask, depth if asked, and
    the venue's own 1m klines if asked (the cross-check of the bars built from trades)."""
    names = []
    for symbol in symbols:
        names.append(stream_name(symbol, Stream.AGG_TRADE))
        names.append(stream_name(symbol, Stream.BOOK_TICKER))
        if book:
            names.append(stream_name(symbol, Stream.DEPTH))
        if candles:
            names.append(stream_name(symbol, Stream.KLINE, "1m"))
    return names


def subscribe_messages(streams: Sequence[str], *, per_message: int = 100) -> list[str]:
    """SUBSCRIBE requests in chunks (Binance allows 1024 streams, 5 messages/s per connection)."""
    return [
        subscribe_message(streams[i : i + per_message], i // per_message + 1)
        for i in range(0, len(streams), per_message)
    ]


# -- parsing --------------------------------------------------------------------


def _aggressor(buyer_is_maker: bool) -> Side:
    # The maker's opposite took liquidity: a maker buyer means the taker sold.
    return Side.SELL if buyer_is_maker else Side.BUY


def parse_agg_trade(d: dict[str, Any]) -> TradeTick:
    return TradeTick(
        d["s"], float(d["p"]), float(d["q"]), _aggressor(d["m"]), str(d["a"]), int(d["T"])
    )


def parse_trade(d: dict[str, Any]) -> TradeTick:
    return TradeTick(
        d["s"], float(d["p"]), float(d["q"]), _aggressor(d["m"]), str(d["t"]), int(d["T"])
    )


def parse_kline(d: dict[str, Any]) -> CandleUpdate:
    k = d["k"]
    bar = Bar(
        symbol=k["s"],
        timeframe=k["i"],
        ts_open=int(k["t"]),
        open=float(k["o"]),
        high=float(k["h"]),
        low=float(k["l"]),
        close=float(k["c"]),
        volume=float(k["v"]),
    )
    return CandleUpdate(bar, closed=bool(k["x"]))


def parse_book_ticker(d: dict[str, Any]) -> Quote:
    # Spot bookTicker carries no time; 0 tells the feed to stamp it with its venue clock.
    ts = d.get("T") or d.get("E") or 0
    return Quote(d["s"], float(d["b"]), float(d["B"]), float(d["a"]), float(d["A"]), int(ts))


def parse_depth_update(d: dict[str, Any]) -> BookDelta:
    pu = d.get("pu")
    return BookDelta(
        symbol=d["s"],
        bids=d["b"],
        asks=d["a"],
        ts_event=int(d.get("T") or d["E"]),
        first_update_id=int(d["U"]),
        final_update_id=int(d["u"]),
        prev_final_update_id=None if pu is None else int(pu),
    )


_BY_EVENT: dict[str, Callable[[dict[str, Any]], VenueEvent]] = {
    "aggTrade": parse_agg_trade,
    "trade": parse_trade,
    "kline": parse_kline,
    "depthUpdate": parse_depth_update,
    "bookTicker": parse_book_ticker,
}


def _parse_data(msg: dict[str, Any]) -> list[VenueEvent]:
    data = msg.get("data", msg)
    event = data.get("e")
    parse = _BY_EVENT.get(event) if event is not None else None
    if parse is not None:
        return [parse(data)]
    if event is None and "u" in data and "b" in data and "a" in data:
        return [parse_book_ticker(data)]  # spot bookTicker has no "e"
    if "result" in msg and "id" in msg:
        return [SubscriptionAck(channel=f"id={msg['id']}", detail=json.dumps(msg["result"]))]
    if "code" in msg and "msg" in msg:
        return [VenueErrorMsg(message=str(msg["msg"]), code=int(msg["code"]))]
    if isinstance(msg.get("error"), dict):
        err = msg["error"]
        return [VenueErrorMsg(message=str(err.get("msg")), code=err.get("code"))]
    raise UnknownChannel(repr(msg.get("stream", event)))


_PARSE_ERRORS = (KeyError, TypeError, ValueError, AttributeError, IndexError)


def parse_message(raw: str | bytes) -> list[VenueEvent]:
    """Every pushed message as typed events; anything unreadable becomes one `Unparsed`."""
    # Hot path: a well-formed market data push (tens of thousands a second). orjson decodes it
    # in a third of json's time; its errors are ValueErrors, so garbage takes the careful path.
    try:
        msg = orjson.loads(raw)
        data = msg["data"]
        return [_BY_EVENT[data["e"]](data)]
    except _PARSE_ERRORS:
        return _parse_slowly(raw)


def _parse_slowly(raw: str | bytes) -> list[VenueEvent]:
    """Everything else: acks, errors, spot bookTicker, and garbage, told apart with care."""
    text, msg = decode_object(raw)
    if not isinstance(msg, dict):
        return [msg]
    return guarded(lambda: _parse_data(msg), str(msg.get("stream", "message")), text)


# -- REST -----------------------------------------------------------------------


def depth_params(symbol: str, limit: int = 1000) -> dict[str, Any]:
    return {"symbol": symbol.upper(), "limit": limit}


def parse_depth_snapshot(symbol: str, payload: Any) -> BookSnapshot:
    """REST depth snapshot; raises ValueError naming the problem."""
    try:
        return BookSnapshot(
            symbol=symbol.upper(),
            bids=payload["bids"],
            asks=payload["asks"],
            ts_event=int(payload.get("T") or payload.get("E") or 0),
            last_update_id=int(payload["lastUpdateId"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"depth snapshot for {symbol} unreadable: {exc!r}") from exc


def klines_params(
    symbol: str, interval: str, start_ms: int, end_ms: int, limit: int = 1000
) -> dict[str, Any]:
    if interval not in INTERVALS:
        raise ValueError(f"binance kline interval {interval!r} not in {', '.join(INTERVALS)}")
    return {
        "symbol": symbol.upper(),
        "interval": interval,
        "startTime": start_ms,
        "endTime": end_ms,
        "limit": limit,
    }


def kline_pages(
    start_ms: int, end_ms: int, interval: str, per_page: int = 1000
) -> list[tuple[int, int]]:
    """Split [start_ms, end_ms) into request windows of at most `per_page` klines."""
    step = timeframe_ms(interval) * per_page
    return [(s, min(s + step, end_ms) - 1) for s in range(start_ms, end_ms, step)]


def klines_weight(market: Market, limit: int) -> int:
    """Request weight of one klines call (futures charge by limit)."""
    if market is Market.SPOT:
        return 2
    return 1 if limit < 100 else 2 if limit < 500 else 5 if limit <= 1000 else 10


def depth_weight(market: Market, limit: int) -> int:
    if market is Market.SPOT:
        return 5 if limit <= 100 else 25 if limit <= 500 else 50 if limit <= 1000 else 250
    return 2 if limit <= 50 else 5 if limit <= 100 else 10 if limit <= 500 else 20


def parse_klines(symbol: str, interval: str, payload: Any) -> list[Bar]:
    """REST klines rows [open time, o, h, l, c, v, close time, ...] as Bars."""
    if not isinstance(payload, list):
        raise ValueError(f"klines: expected a list, got {type(payload).__name__}")  # noqa: TRY004
    try:
        return [
            Bar(
                symbol=symbol.upper(),
                timeframe=interval,
                ts_open=int(row[0]),
                open=float(row[1]),
                high=float(row[2]),
                low=float(row[3]),
                close=float(row[4]),
                volume=float(row[5]),
            )
            for row in payload
        ]
    except (IndexError, TypeError, ValueError) as exc:
        raise ValueError(f"klines row unreadable: {exc!r}") from exc
