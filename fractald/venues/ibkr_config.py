"""`[broker] kind = "ibkr"`: the settings the IBKR venue takes, their checks, and the preflight line."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from fractald.config.root import Config
from fractald.venues.ibkr import IBSettings

RUNBOOK = "runbooks/ibkr-gateway.md"


def settings_of(config: Config) -> IBSettings:
    b = config.broker
    return IBSettings(
        host=b.ib_host,
        port=b.ib_port,
        client_id=b.ib_client_id,
        account=b.ib_account,
        symbol=b.ib_symbol,
        exchange=b.ib_exchange,
        roll_days=b.ib_roll_days,
        entry_ttl_s=b.ib_entry_ttl_s,
    )


def config_problems(config: Config) -> list[str]:
    b = config.broker
    problems = []
    if config.risk.mode != "live":
        problems.append(
            "config.risk.mode: 'paper' refuses the real broker 'ibkr' (an IB paper account is "
            'traded with [risk] mode = "live" on the Gateway\'s paper port 4002); or use '
            '[broker] kind = "paper"'
        )
    if not b.ib_host.strip():
        problems.append(
            "config.broker.ib_host: empty; the host TWS / IB Gateway listens on (usually 127.0.0.1)"
        )
    if not re.fullmatch(r"[A-Z0-9]{1,10}", b.ib_symbol):
        problems.append(
            f"config.broker.ib_symbol: {b.ib_symbol!r} is not a future's root symbol "
            "(upper-case, like MES or MNQ)"
        )
    from fractald.venues.ibkr_feed_preflight import client_id_problem, month_problems

    clash = client_id_problem(config)
    if clash:
        problems.append(clash)
    problems.extend(month_problems(config))
    if b.ib_account and not re.fullmatch(r"[A-Z]{1,3}\d{3,12}", b.ib_account):
        problems.append(
            f"config.broker.ib_account: {b.ib_account!r} is not an IBKR account id "
            "(like U1234567, or DU1234567 for paper)"
        )
    return problems


def preflight_check(config: Config, online: Callable[[], bool]) -> Any:
    """Connect, read the account and the front-month contract; a red line names the runbook."""
    import trio

    from fractald.preflight_checks import fail, ok, skip
    from fractald.venues.ibkr import IBKRVenue

    s = settings_of(config)
    if not s.host.startswith(("127.", "localhost", "::1")) and not online():
        return skip("broker", f"IBKR at {s.host}:{s.port} not probed: this host is offline")

    async def probe() -> str:
        async with IBKRVenue(s) as venue:
            account = await venue.account()
            spec = (await venue.instruments())[s.symbol]
            if not account.equity > 0:
                raise ValueError(f"the account reports net liquidation {account.equity}")
            contract = venue.contract
            return (
                f"IBKR {s.host}:{s.port} client {s.client_id}: net liquidation {account.equity:,.2f} "
                f"{account.currency}, available {account.available:,.2f}; {s.symbol} trades as "
                f"{contract.localSymbol} (tick {spec.tick_size:g}, multiplier {spec.multiplier:g})"
            )

    try:
        return ok("broker", trio.run(probe))
    except Exception as exc:  # noqa: BLE001 - whatever stops the connection is the answer to show
        return fail(
            "broker",
            f"IBKR at {s.host}:{s.port} as client {s.client_id}: {type(exc).__name__}: {exc}",
            f"start TWS / IB Gateway with the API enabled on that port; see {RUNBOOK}",
        )
