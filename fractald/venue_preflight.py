"""Preflight's questions to the market-data venue: are the configured symbols listed, is our clock right.

Both ask the venue over REST (Binance `exchangeInfo` and server time,
Hyperliquid `meta` and the HTTP `Date` of its answer), so they run only when
the host is online or the venue URL is on loopback, as the `venue` check does.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from typing import Any

from fractald.config.root import Config

MAX_SKEW_MS = 2_000  # the feed warns (local_clock_skew) past the same figure
TIME_PATHS = {"binance": "/api/v3/time", "binance-futures": "/fapi/v1/time"}


def _reachable(url: str, online: Callable[[], bool]) -> bool:
    return url.split("://", 1)[-1].startswith(("127.", "localhost", "[::1]")) or online()


async def _listed(config: Config, url: str) -> set[str]:
    from fractald.venues.instruments import listed_symbols
    from fractald.venues.rest import RestClient

    rest = RestClient(url, weight_per_minute=1200, max_attempts=2, max_wait_s=5.0, timeout_s=5.0)
    try:
        return await listed_symbols(rest, config.feed.venue)
    finally:
        await rest.aclose()


def check_symbols(config: Config, online: Callable[[], bool]) -> Any:
    """Every [feed] symbol is one the venue lists (closest names offered when not)."""
    import trio

    from fractald.errors import FractalError
    from fractald.preflight_checks import fail, ok, skip, venue_url
    from fractald.venues.instruments import unknown_problems

    if config.feed.venue == "replay":
        return skip("symbols", "replay feed: any name goes")
    url = venue_url(config)
    if not _reachable(url, online):
        return skip("symbols", f"host is offline: {url} not asked for its instrument list")
    try:
        listed = trio.run(_listed, config, url)
    except FractalError as exc:
        return fail(
            "symbols",
            f"{config.feed.venue} instrument list unavailable: {exc}",
            "run preflight again; runbooks/feed-stale-or-flapping.md",
        )
    problems = unknown_problems(config.feed.venue, config.feed.symbols, listed)
    if problems:
        return fail(
            "symbols", "; ".join(problems), "fix [feed] symbols, then: fractald check-config"
        )
    return ok(
        "symbols",
        f"{', '.join(config.feed.symbols)} listed by {config.feed.venue} "
        f"({len(listed)} instruments)",
    )


def venue_time_ms(config: Config, url: str, timeout_s: float = 5.0) -> int:
    """The venue's clock: Binance's server time in ms, else the HTTP Date of an answer (1 s steps)."""
    import httpx

    with httpx.Client(timeout=timeout_s, trust_env=False) as client:
        path = TIME_PATHS.get(config.feed.venue)
        if path is not None:
            answer = client.get(url.rstrip("/") + path)
            answer.raise_for_status()
            return int(answer.json()["serverTime"])
        answer = client.post(url.rstrip("/") + "/info", json={"type": "meta"})
        date = answer.headers.get("date")
        if not date:
            raise ValueError("the venue's answer has no Date header")
        return int(parsedate_to_datetime(date).timestamp() * 1000)


def check_clock_skew(
    config: Config,
    online: Callable[[], bool],
    now_ms: Callable[[], int] = lambda: int(time.time() * 1000),
) -> Any:
    """This host's clock against the venue's: more than 2 s apart is a red line (orders and bars
    are stamped by it, and Binance refuses signed requests outside recvWindow)."""
    import httpx

    from fractald.preflight_checks import fail, ok, skip, venue_url

    if config.feed.venue == "replay":
        return skip("venue_clock", "replay feed: no venue clock")
    url = venue_url(config)
    if not _reachable(url, online):
        return skip("venue_clock", f"host is offline: {url} not asked for its time")
    try:
        before = now_ms()
        venue = venue_time_ms(config, url)
        after = now_ms()
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        return fail(
            "venue_clock",
            f"{url}: cannot read the venue's time: {type(exc).__name__}: {exc}",
            "run preflight again once the venue answers",
        )
    coarse = config.feed.venue not in TIME_PATHS  # an HTTP Date has whole seconds
    skew = (before + after) // 2 - venue
    limit = MAX_SKEW_MS + (1_000 if coarse else 0)
    ahead = "ahead of" if skew > 0 else "behind"
    if abs(skew) > limit:
        return fail(
            "venue_clock",
            f"this host's clock is {abs(skew)} ms {ahead} {config.feed.venue}'s (limit {limit} ms)",
            "sync the clock: timedatectl set-ntp true (systemd-timesyncd) or chrony; "
            "then check `timedatectl` shows 'System clock synchronized: yes'",
        )
    return ok(
        "venue_clock", f"within {abs(skew)} ms of {config.feed.venue}'s clock (limit {limit} ms)"
    )
