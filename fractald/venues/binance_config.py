"""The Binance parts of `[broker]`: checks for check-config, the venue factory, the preflight lines.

```toml
[broker]
kind = "binance-futures"            # or "binance-spot"
network = "testnet"                 # the default; "mainnet" trades real money
rest_url = ""                       # "" = the network's default; tests point it at loopback
ws_url = ""
api_key_credential = "venue_binance_api_key"      # file names under $CREDENTIALS_DIRECTORY
api_secret_credential = "venue_binance_api_secret"
leverage = { BTCUSDT = 5 }          # set at start, checked by preflight (futures)
margin_type = { BTCUSDT = "isolated" }   # or "cross"
```

COIN-M (`/dapi`, inverse contracts such as `BTCUSD_PERP` or quarterly
`BTCUSD_250328`) is refused: its contract sizes, inverse P&L and expiring
symbols are not modelled by the accounting.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fractald.errors import AuthError, FractalError
from fractald.venues import binance_orders as bo
from fractald.venues.binance import Market

if TYPE_CHECKING:
    from fractald.config.root import Config
    from fractald.venues.binance_venue import BinanceVenue

KINDS = {"binance-futures": Market.FUTURES, "binance-spot": Market.SPOT}
NETWORKS = ("testnet", "mainnet")
COIN_M_SYMBOL = re.compile(r"^[A-Z0-9]+USD_(PERP|\d{6})$", re.IGNORECASE)
BINANCE_SYMBOL = re.compile(r"^[A-Z0-9]{5,20}$")
COIN_M_REFUSAL = (
    "Binance COIN-M (/dapi, inverse contracts) is not supported: fractald trades "
    "USD-M perpetuals (kind = \"binance-futures\", symbols like 'BTCUSDT') and spot "
    '(kind = "binance-spot") only'
)


def market_of(config: Config) -> Market | None:
    return KINDS.get(config.broker.kind)


def urls(config: Config) -> bo.Network:
    market = market_of(config)
    assert market is not None
    default = bo.NETWORKS[(market, config.broker.network)]
    return bo.Network(
        config.broker.rest_url or default.rest_url, config.broker.ws_url or default.ws_url
    )


def coin_m_problems(config: Config) -> list[str]:
    """COIN-M refused wherever it shows: a /dapi URL or an inverse contract's symbol."""
    problems = []
    for key, url in (
        ("feed.rest_url", config.feed.rest_url),
        ("feed.ws_url", config.feed.ws_url),
        ("broker.rest_url", config.broker.rest_url),
        ("broker.ws_url", config.broker.ws_url),
    ):
        if "dapi" in url or "dstream" in url:
            problems.append(f"config.{key}: {url!r}: {COIN_M_REFUSAL}")
    if config.feed.venue.startswith("binance") or config.broker.kind in KINDS:
        coin_m = [s for s in config.feed.symbols if COIN_M_SYMBOL.match(s)]
        if coin_m:
            problems.append(f"config.feed.symbols: {coin_m}: {COIN_M_REFUSAL}")
    return problems


def broker_problems(config: Config) -> list[str]:
    """Everything check-config can tell about a Binance broker without asking Binance."""
    problems = coin_m_problems(config)
    market = market_of(config)
    if market is None:
        return problems
    b = config.broker
    if config.risk.mode != "live":
        problems.append(
            f"config.risk.mode: {config.risk.mode!r} with broker.kind = {b.kind!r}: "
            "a venue broker places real orders (testnet or mainnet); set "
            'risk.mode = "live", or kind = "paper" to paper-trade'
        )
    from fractald.config.input_checks import venue_url_problems  # the same URL rules as [feed]

    problems += venue_url_problems("broker", {"rest_url": b.rest_url, "ws_url": b.ws_url})
    if b.network not in NETWORKS:
        problems.append(
            f"config.broker.network: {b.network!r} must be one of {', '.join(map(repr, NETWORKS))}"
        )
    for key in ("api_key_credential", "api_secret_credential"):
        if not getattr(b, key):
            problems.append(
                f"config.broker.{key}: {b.kind} needs the name of a credential file "
                "(under $CREDENTIALS_DIRECTORY) holding the API key / secret"
            )
    bad = [
        s for s in config.feed.symbols if not BINANCE_SYMBOL.match(s) and not COIN_M_SYMBOL.match(s)
    ]
    if bad:
        problems.append(
            f"config.feed.symbols: {bad} are not Binance symbols: Binance names them "
            "upper case, base then quote, e.g. 'BTCUSDT' (checked against exchangeInfo "
            "at start and by preflight)"
        )
    problems += _symbol_settings_problems(config, market)
    problems += _reserved_problems(config, market)
    return problems


def _reserved_problems(config: Config, market: Market) -> list[str]:
    """[broker] spot_reserved: coins of a traded asset (or the quote) kept apart, never negative."""
    reserved = config.broker.spot_reserved
    if reserved and market is not Market.SPOT:
        only_spot = (
            'config.broker.spot_reserved: only for kind = "binance-spot" '
            "(futures hold positions, not coins)"
        )
        return [only_spot]
    from fractald.venues.binance_replies import spot_base_asset

    assets = {spot_base_asset(s) for s in config.feed.symbols}
    assets |= {s[len(spot_base_asset(s)) :] for s in config.feed.symbols}
    problems = [
        f"config.broker.spot_reserved.{asset}: not an asset of feed.symbols (one of "
        f"{sorted(assets)}; assets are upper case, e.g. BTC)"
        for asset in reserved
        if asset not in assets
    ]
    problems += [
        f"config.broker.spot_reserved.{asset}: {qty!r} must be a number of coins, at least 0"
        for asset, qty in reserved.items()
        if not isinstance(qty, int | float) or not qty >= 0
    ]
    return problems


def _symbol_settings_problems(config: Config, market: Market) -> list[str]:
    b, problems = config.broker, []
    if market is Market.SPOT and (b.leverage or b.margin_type):
        problems.append(
            "config.broker.leverage / margin_type: spot has no leverage or margin "
            'type; remove them or use kind = "binance-futures"'
        )
    for key, table in (("leverage", b.leverage), ("margin_type", b.margin_type)):
        for symbol in table:
            if symbol not in config.feed.symbols:
                problems.append(
                    f"config.broker.{key}.{symbol}: not one of feed.symbols {config.feed.symbols}"
                )
    for symbol, lev in b.leverage.items():
        if not 1 <= lev <= 125:
            problems.append(f"config.broker.leverage.{symbol}: {lev} must be within [1, 125]")
    for symbol, margin in b.margin_type.items():
        if margin not in bo.MARGIN_TYPES:
            problems.append(
                f"config.broker.margin_type.{symbol}: {margin!r} must be one of "
                f"{', '.join(map(repr, bo.MARGIN_TYPES))}"
            )
    return problems


# -- the venue ---------------------------------------------------------------------


def read_credential(name: str, env: Mapping[str, str] = os.environ) -> str:
    """A secret from $CREDENTIALS_DIRECTORY/<name>; AuthError naming the file (never the value)."""
    directory = env.get("CREDENTIALS_DIRECTORY", "")
    if not directory:
        raise AuthError(
            f"credential {name!r}: $CREDENTIALS_DIRECTORY is not set (systemd LoadCredential=)"
        )
    path = Path(directory) / name
    try:
        value = path.read_text().strip()
    except OSError as exc:
        raise AuthError(f"credential {name!r}: {path} cannot be read ({exc.strerror})") from None
    if not value:
        raise AuthError(f"credential {name!r}: {path} is empty")
    return value


def build_venue(
    config: Config, env: Mapping[str, str] = os.environ, log: Any = None
) -> BinanceVenue:
    from fractald.venues.binance_rest import BinanceRest
    from fractald.venues.binance_venue import BinanceVenue

    market = market_of(config)
    if market is None:
        raise ValueError(f"broker.kind {config.broker.kind!r} is not a Binance broker")
    net = urls(config)
    rest = BinanceRest(
        market,
        net.rest_url,
        read_credential(config.broker.api_key_credential, env),
        read_credential(config.broker.api_secret_credential, env),
        recv_window_ms=config.broker.recv_window_ms,
        log=log,
    )
    return BinanceVenue(
        market,
        rest,
        net.ws_url,
        config.feed.symbols,
        leverage=dict(config.broker.leverage),
        margin_type=dict(config.broker.margin_type),
        reserved=dict(config.broker.spot_reserved),
        log=log,
    )


async def preflight_findings(venue: BinanceVenue) -> list[str]:
    """What would stop trading, read from Binance: the key, the symbols, leverage, margin type.
    Nothing is changed: leverage and margin type are only set by the daemon at start."""
    from fractald.venues import binance_replies as br

    findings: list[str] = []
    try:
        clock = await venue.rest.sync_clock()
        if abs(clock.offset_ms) > venue.rest.recv_window_ms // 2:
            findings.append(
                f"clock is {clock.offset_ms} ms off Binance's (recvWindow "
                f"{venue.rest.recv_window_ms} ms): fix NTP"
            )
        await venue.instruments()
        findings += br.symbol_problems(venue.symbols, venue.specs, venue.market)
        account = await venue.account()
        if account.available <= 0:
            findings.append(f"no margin available ({account.available:g} {account.currency})")
        if venue.market is Market.FUTURES and (venue.leverage or venue.margin_type):
            now = await venue.symbol_settings()
            for symbol, lev in venue.leverage.items():
                if now.get(symbol, (0, ""))[0] != lev:
                    findings.append(
                        f"{symbol}: leverage is {now.get(symbol, (0, ''))[0]}, config "
                        f"says {lev} (the daemon sets it at start)"
                    )
            for symbol, margin in venue.margin_type.items():
                have = now.get(symbol, (0, ""))[1]
                if have != margin:
                    findings.append(
                        f"{symbol}: margin type is {have or 'unknown'}, config says "
                        f"{margin} (the daemon sets it at start)"
                    )
    except FractalError as exc:
        findings.append(f"{exc.code}: {exc.message}")
    finally:
        await venue.rest.aclose()
    return findings
