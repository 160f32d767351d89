"""`[feed] venue = "ibkr"`: what check-config can tell without TWS, and preflight's questions to it."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fractald.config.root import Config
    from fractald.config.venue_sections import FeedConfig

ROOT = re.compile(r"[A-Z0-9]{1,10}")
MAX_SKEW_MS = 2_000  # as the other venues' clock check
RUNBOOK = "runbooks/ibkr-gateway.md"


def feed_config_problems(feed: FeedConfig) -> list[str]:
    problems = []
    for i, symbol in enumerate(feed.symbols):
        if symbol.strip() and not ROOT.fullmatch(symbol):
            problems.append(
                f"config.feed.symbols[{i}]: {symbol!r} is not a future's root symbol at IBKR "
                "(upper case, like MES or MNQ; the front month is chosen from IB's contract list)"
            )
    if not feed.ib_host.strip():
        problems.append(
            "config.feed.ib_host: empty; the host TWS / IB Gateway listens on (usually 127.0.0.1)"
        )
    if not re.fullmatch(r"[A-Z]{2,10}", feed.ib_exchange):
        problems.append(
            f"config.feed.ib_exchange: {feed.ib_exchange!r} is not an exchange code (like CME)"
        )
    if feed.ib_calendar:
        from fractald.session_calendar import CalendarError, calendar_windows

        try:
            calendar_windows(feed.ib_calendar)
        except CalendarError as exc:
            problems.append(
                f"config.feed.ib_calendar: {exc}; the feed's trading hours past IB's few days "
                "(CMES for CME equity futures, '' for none)"
            )
    if "1m" not in feed.timeframes:
        problems.append(
            'config.feed.timeframes: the IBKR feed builds 1m bars from 5 s bars: list "1m"'
        )
    return problems


def month_problems(config: Config) -> list[str]:
    """The IBKR feed and the IBKR orders must follow the same contract month of the same root."""
    f, b = config.feed, config.broker
    if f.venue != "ibkr" or b.kind != "ibkr":
        return []
    problems = []
    if b.ib_symbol not in f.symbols:
        problems.append(
            f"config.feed.symbols: {f.symbols} lacks broker.ib_symbol {b.ib_symbol!r}: "
            "the orders' future would trade on no market data"
        )
    if f.ib_roll_days != b.ib_roll_days or f.ib_exchange != b.ib_exchange:
        problems.append(
            f"config.feed.ib_roll_days/ib_exchange: {f.ib_roll_days}/{f.ib_exchange} differ from "
            f"broker.ib_roll_days/ib_exchange {b.ib_roll_days}/{b.ib_exchange}: the bars and the "
            "orders would follow different contract months"
        )
    return problems


def client_id_problem(config: Config) -> str | None:
    """The feed and the order venue on one TWS with one client id: TWS refuses the second (326)."""
    f, b = config.feed, config.broker
    if (
        f.venue == "ibkr"
        and b.kind == "ibkr"
        and (f.ib_host, f.ib_port) == (b.ib_host, b.ib_port)
        and f.ib_client_id == b.ib_client_id
    ):
        return (
            f"config.feed.ib_client_id: {f.ib_client_id} is also broker.ib_client_id; TWS takes one "
            "connection per client id (error 326): give the feed its own"
        )
    return None


def preflight_checks(config: Config, online: Callable[[], bool]) -> list[Any]:
    """venue (TWS answers), symbols (each root has a front month), venue_clock (TWS's time)."""
    import trio

    from fractald.preflight_checks import fail, ok, skip
    from fractald.venues.feed_ibkr import ib_settings
    from fractald.venues.feed_settings import FeedSettings
    from fractald.venues.ibkr_feed_link import IBFeedLink, today_utc

    f = config.feed
    where = f"TWS / IB Gateway at {f.ib_host}:{f.ib_port} (client {f.ib_client_id})"
    if not f.ib_host.startswith(("127.", "localhost", "::1")) and not online():
        return [
            skip(name, f"{where} not asked: this host is offline")
            for name in ("venue", "symbols", "venue_clock")
        ]
    settings = FeedSettings(
        venue="ibkr",
        symbols=tuple(f.symbols),
        ib_host=f.ib_host,
        ib_port=f.ib_port,
        ib_client_id=f.ib_client_id,
        ib_exchange=f.ib_exchange,
        ib_roll_days=f.ib_roll_days,
    )

    async def probe() -> tuple[dict[str, Any], int, int, int]:
        link = IBFeedLink(ib_settings(settings))
        push, _items = trio.open_memory_channel[Any](1_000)  # notices: nobody needs them here
        try:
            await link.connect(push)
            found = await link.resolve(list(f.symbols), today_utc())
            before = int(time.time() * 1000)
            server = await link.server_time_ms()
            return found, before, server, int(time.time() * 1000)
        finally:
            await trio.to_thread.run_sync(link.close)

    from fractald.errors import ConfigError

    try:
        found, before, server, after = trio.run(probe)
    except ConfigError as exc:
        return [
            ok("venue", f"{where} answers"),
            fail(
                "symbols",
                "; ".join(exc.problems),
                "fix [feed] symbols (future roots), then: fractald check-config",
            ),
            skip("venue_clock", "not asked: the symbols failed"),
        ]
    except Exception as exc:  # noqa: BLE001 - whatever stops the connection is the answer to show
        remedy = f"start TWS / IB Gateway with the API enabled on that port; see {RUNBOOK}"
        return [
            fail("venue", f"{where}: {type(exc).__name__}: {exc}", remedy),
            skip("symbols", "not asked: TWS did not answer"),
            skip("venue_clock", "not asked: TWS did not answer"),
        ]
    contracts = ", ".join(
        f"{s} trades as {i.local_symbol} (tick {i.tick_size:g})" for s, i in found.items()
    )
    # TWS gives whole seconds: the host's time is compared with the second it names.
    skew = (before + after) // 2 - server
    limit = MAX_SKEW_MS + 1_000
    clock = (
        ok(
            "venue_clock",
            f"within {abs(skew)} ms of TWS's clock (limit {limit} ms, TWS gives seconds)",
        )
        if abs(skew) <= limit
        else fail(
            "venue_clock",
            f"this host's clock is {abs(skew)} ms {'ahead of' if skew > 0 else 'behind'} TWS's",
            "apt-get install systemd-timesyncd (or chrony); timedatectl set-ntp true",
        )
    )
    return [ok("venue", f"{where} answers"), ok("symbols", contracts), clock]
