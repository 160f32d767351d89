"""The order venue `[broker]` names, built from the config and the credentials directory.

One place turns `[broker] kind` into a `fractald.venues.interface.Venue`
for the router actor: Hyperliquid (agent key from the credential file
`private_key_credential`, nonces persisted in the state directory),
Binance USD-M futures and spot (API key and secret from their credential files),
leverage and margin type per symbol set at start on both, IBKR (TWS / IB Gateway on this
host). Keys are read from `$CREDENTIALS_DIRECTORY` (systemd's
LoadCredential=) and never logged; a missing or refused one is an
`AuthError` (exit 77).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from fractald.config import Config
from fractald.venues.interface import Venue

# Broker kinds `fractald run` routes orders to (paper stays inside the engine).
ROUTED_KINDS = ("hyperliquid", "binance-futures", "binance-spot", "ibkr")


@asynccontextmanager
async def open_venue(
    config: Config, env: Mapping[str, str] = os.environ, log: Any = None
) -> AsyncIterator[Venue]:
    """The configured venue, ready to take orders; closed again on the way out."""
    kind = config.broker.kind
    if kind == "hyperliquid":
        from fractald.venues.hyperliquid_preflight import venue_from_config

        hl = venue_from_config(config, env)
        hl.log = log
        try:
            await hl.load_assets()  # now, not inside the first order's claim-to-send window
            margin = config.broker.margin_type
            for symbol, leverage in config.broker.leverage.items():
                await hl.set_leverage(
                    symbol, leverage, cross=margin.get(symbol, "cross") != "isolated"
                )
            yield hl
        finally:
            await hl.aclose()
    elif kind in ("binance-futures", "binance-spot"):
        from fractald.venues.binance_config import build_venue

        binance = build_venue(config, env, log)
        try:
            await binance.start()
            yield binance
        finally:
            await binance.rest.aclose()
    elif kind == "ibkr":
        from fractald.venues.ibkr import IBKRVenue
        from fractald.venues.ibkr_config import settings_of

        async with IBKRVenue(settings_of(config)) as ib:
            yield ib
    else:
        raise ValueError(
            f"broker.kind {kind!r} is not routed to a venue (routed: {', '.join(ROUTED_KINDS)})"
        )
