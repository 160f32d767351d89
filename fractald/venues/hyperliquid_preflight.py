"""Preflight for a Hyperliquid account: the key works, the account has margin, clocks agree, symbols exist.

Red lines block the start (`fractald preflight` exits 1): an agent key the
venue does not know for this account and network, no free margin, a clock
more than `MAX_SKEW_MS` off the venue's (nonces outside the venue's window
and signatures refused), or a configured symbol that is not a perp there.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

import trio

from fractald.config.root import Config
from fractald.errors import AuthError, FractalError
from fractald.preflight_checks import Check, fail, ok, skip
from fractald.venues import hyperliquid_orders as hl
from fractald.venues.hyperliquid_signing import AgentSigner, NonceClock, read_agent_key
from fractald.venues.hyperliquid_venue import HyperliquidSettings, HyperliquidVenue, wall_clock_ms

MAX_SKEW_MS = 2_000


async def check_account(
    venue: HyperliquidVenue, symbols: list[str], clock_ms: Callable[[], int] = wall_clock_ms
) -> list[Check]:
    checks = []
    network = venue.settings.network
    try:
        await venue.check_key()
        checks.append(
            ok("hl_key", f"agent {venue.signer.address} signs for {venue.user} on {network}")
        )
    except AuthError as exc:
        checks.append(
            fail(
                "hl_key",
                str(exc),
                f"approve the API wallet {venue.signer.address} for "
                f"{venue.user} on {network} (app: More > API), or fix account_address",
            )
        )
    try:
        account = await venue.account()
        if account.available > 0:
            checks.append(
                ok("hl_margin", f"equity {account.equity:.2f} USDC, {account.available:.2f} free")
            )
        else:
            checks.append(
                fail(
                    "hl_margin",
                    f"no free margin (equity {account.equity:.2f} USDC)",
                    "deposit USDC to the perp account before trading",
                )
            )
        skew = await venue.server_time_ms() - clock_ms()
        checks.append(
            ok("hl_clock", f"{skew:+d} ms from the venue")
            if abs(skew) <= MAX_SKEW_MS
            else fail(
                "hl_clock",
                f"{skew:+d} ms from the venue's clock",
                "enable time sync (systemd-timesyncd or chrony)",
            )
        )
        problems = hl.check_symbols(symbols, await venue.load_assets())
        checks.append(
            fail("hl_symbols", "; ".join(problems), "use the venue's coin names in feed.symbols")
            if problems
            else ok("hl_symbols", f"{', '.join(symbols)} tradable")
        )
    except FractalError as exc:
        checks.append(
            fail("hl_account", f"{exc.code}: {exc.message}", "check the network and rest_url")
        )
    return checks


def venue_from_config(config: Config, env: Mapping[str, str]) -> HyperliquidVenue:
    b = config.broker
    if env.get("CREDENTIALS_DIRECTORY"):
        key = read_agent_key(env["CREDENTIALS_DIRECTORY"], b.private_key_credential)
    else:  # outside systemd: the root-only files LoadCredential= reads
        key = read_agent_key(
            env.get("FRACTALD_CREDENTIALS_SOURCE", "/etc/fractald/credentials"),
            b.private_key_credential.removeprefix("venue:"),
        )
    settings = HyperliquidSettings(
        b.account_address, b.network, rest_url=b.rest_url, ws_url=b.ws_url
    )
    state = config.daemon.state_dir or env.get("STATE_DIRECTORY", "").split(":")[0] or "./state"
    os.makedirs(state, exist_ok=True)
    nonces = NonceClock(os.path.join(state, "hyperliquid-nonce"))
    return HyperliquidVenue(settings, AgentSigner(key, mainnet=b.network == "mainnet"), nonces)


def preflight_checks(
    config: Config, env: Mapping[str, str], online: Callable[[], bool] = lambda: True
) -> list[Check]:
    """For `fractald preflight` (synchronous): runs the checks on a trio loop of their own."""
    rest_url = HyperliquidSettings(
        config.broker.account_address or "0x" + "0" * 40,
        config.broker.network,
        rest_url=config.broker.rest_url,
    ).urls[0]
    if not rest_url.split("://", 1)[-1].startswith(("127.", "localhost", "[::1]")) and not online():
        return [skip("hl_account", f"host is offline: {rest_url} not asked")]
    try:
        venue = venue_from_config(config, env)
    except AuthError as exc:
        return [
            fail(
                "hl_key",
                exc.message,
                "put the API-wallet key in the credential file named by "
                "broker.private_key_credential",
            )
        ]

    async def run() -> list[Check]:
        try:
            return await check_account(venue, list(config.feed.symbols))
        finally:
            await venue.aclose()

    return trio.run(run)
