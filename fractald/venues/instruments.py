"""Which symbols a venue lists, and the form its names take.

`form_problem` is pure and runs in `check-config`: Binance symbols are
upper case, base then quote (`BTCUSDT`); Hyperliquid perpetuals are named
by their coin (`BTC`, `kPEPE`), never `BTC-PERP` or `BTCUSDT`.
`listed_symbols` asks the venue (Binance `exchangeInfo`, Hyperliquid
`meta`) so that the feed, at start, and preflight refuse a symbol the venue
does not trade, naming the close ones it does.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from typing import Any

BINANCE_SYMBOL = re.compile(r"[A-Z0-9]{2,30}(_[0-9]{6})?")  # BTCUSDT, quarterly BTCUSDT_250328
HYPERLIQUID_COIN = re.compile(r"[A-Za-z0-9]{1,20}")
QUOTES = ("USDT", "USDC", "USD", "PERP")

# (path, request weight): Binance spot charges 20 for exchangeInfo, USD-M futures 1.
BINANCE_EXCHANGE_INFO = {
    "binance": ("/api/v3/exchangeInfo", 20),
    "binance-futures": ("/fapi/v1/exchangeInfo", 1),
}
HYPERLIQUID_META = {"type": "meta"}
HYPERLIQUID_META_WEIGHT = 20


def form_problem(venue: str, symbol: str) -> str | None:
    """Why `symbol` cannot be a name on `venue`, or None (replay takes any name)."""
    if not symbol or any(c.isspace() for c in symbol):
        return None  # blank or spaced names are refused by the config's own check
    if venue.startswith("binance"):
        if symbol != symbol.upper() and BINANCE_SYMBOL.fullmatch(symbol.upper()):
            return f"{symbol!r} is not a Binance symbol: Binance writes them upper case, e.g. {symbol.upper()!r}"
        if not BINANCE_SYMBOL.fullmatch(symbol):
            plain = re.sub(r"[^A-Za-z0-9]", "", symbol).upper().removesuffix("PERP")
            return (
                f"{symbol!r} is not a Binance symbol: base then quote in capitals and digits, "
                f"no separator, e.g. {plain or 'BTCUSDT'!r}"
            )
        return None
    if venue.startswith("hyperliquid"):
        coin = re.split(r"[-/_]", symbol)[0]
        if not HYPERLIQUID_COIN.fullmatch(symbol) or (
            symbol.endswith(QUOTES) and symbol not in QUOTES
        ):
            base = coin.upper()
            for quote in QUOTES:
                if base.endswith(quote) and base != quote:
                    base = base.removesuffix(quote)
            return (
                f"{symbol!r} is not a Hyperliquid perpetual: they are named by their coin alone, "
                f"e.g. {base or 'BTC'!r}"
            )
        if symbol.islower():
            return f"{symbol!r} is not a Hyperliquid coin: their names are upper case, e.g. {symbol.upper()!r}"
    return None


def parse_binance_exchange_info(payload: Any) -> set[str]:
    """Symbols that trade now (status TRADING); ValueError names what is unreadable."""
    try:
        return {s["symbol"] for s in payload["symbols"] if s.get("status", "TRADING") == "TRADING"}
    except (KeyError, TypeError) as exc:
        raise ValueError(f"exchangeInfo unreadable: {exc!r}") from exc


def parse_hyperliquid_meta(payload: Any) -> set[str]:
    """Perpetual coin names that are not delisted; ValueError names what is unreadable."""
    try:
        return {a["name"] for a in payload["universe"] if not a.get("isDelisted", False)}
    except (KeyError, TypeError) as exc:
        raise ValueError(f"meta unreadable: {exc!r}") from exc


def unknown_problems(venue: str, wanted: Iterable[str], listed: set[str]) -> list[str]:
    """One problem per symbol the venue does not list, with the closest names it does."""
    problems = []
    for symbol in wanted:
        if symbol in listed:
            continue
        close = difflib.get_close_matches(symbol.upper(), sorted(listed), n=3, cutoff=0.6)
        hint = f"; close ones it lists: {', '.join(close)}" if close else ""
        problems.append(f"config.feed.symbols: {symbol!r} is not listed by {venue}{hint}")
    return problems


async def listed_symbols(client: Any, venue: str) -> set[str]:
    """The venue's tradeable symbols through a RestClient (TransientError when it cannot say)."""
    from fractald.errors import BadMessage

    try:
        if venue.startswith("hyperliquid"):
            from fractald.venues.hyperliquid import INFO_PATH

            payload = await client.post_json(
                INFO_PATH, HYPERLIQUID_META, weight=HYPERLIQUID_META_WEIGHT
            )
            return parse_hyperliquid_meta(payload)
        path, weight = BINANCE_EXCHANGE_INFO[venue]
        return parse_binance_exchange_info(await client.get_json(path, {}, weight=weight))
    except ValueError as exc:
        raise BadMessage(f"{venue} instrument list: {exc}") from exc
