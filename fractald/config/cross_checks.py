"""Checks that span fields or sections (and the venue modules' own checks), after the per-key pass."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from fractald.config.input_checks import input_problems, venue_url_problems
from fractald.config.root import Config
from fractald.config.venue_sections import REAL_BROKERS, FeedConfig
from fractald.core.models import TIMEFRAME_MS


def replay_time_ms(text: str) -> int | None:
    """A [feed] replay_from/replay_to: UTC ISO date/time or epoch ms ("" = None); ValueError if neither."""
    if not text:
        return None
    if text.isdigit():
        return int(text)
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _replay_catalog_problems(f: FeedConfig) -> list[str]:
    """A catalog replay: only with venue "replay", not with replay_path, a start, times that parse, a directory."""
    if not f.replay_catalog:
        return [
            f"config.feed.{key}: {getattr(f, key)!r} is only used with replay_catalog"
            for key in ("replay_from", "replay_to")
            if getattr(f, key)
        ]
    problems = []
    if f.venue != "replay":
        problems.append(
            f'config.feed.replay_catalog: only used with venue = "replay", not {f.venue!r}'
        )
    if f.replay_path:
        problems.append(
            "config.feed.replay_catalog: give either replay_path or replay_catalog, not both"
        )
    if not f.replay_from:
        problems.append(
            "config.feed.replay_from: a catalog replay needs its first day "
            '(UTC date/time like "2024-01-01", or epoch ms)'
        )
    for key in ("replay_from", "replay_to"):
        try:
            replay_time_ms(getattr(f, key))
        except ValueError:
            problems.append(
                f"config.feed.{key}: {getattr(f, key)!r} is neither a UTC date/time "
                "(2024-01-01, 2024-01-01T12:00) nor epoch ms"
            )
    if not Path(f.replay_catalog).is_dir():
        problems.append(
            f"config.feed.replay_catalog: {f.replay_catalog!r} is not a directory "
            f"(fill one with `fractald download --catalog DIR`; relative paths are from {Path.cwd()})"
        )
    return problems


def cross_section_problems(config: Config) -> list[str]:
    """Every problem of a config whose keys each passed alone (run-time inputs included)."""
    # url_problem gives "" for a good URL: only the real problems are kept
    problems = [p for p in (*input_problems(config), *_broker_problems(config)) if p]
    if config.daemon.backoff_cap_s < config.daemon.backoff_base_s:
        problems.append(
            f"config.daemon.backoff_cap_s: {config.daemon.backoff_cap_s} must be >= "
            f"backoff_base_s ({config.daemon.backoff_base_s})"
        )
    problems.extend(_replay_catalog_problems(config.feed))
    if config.feed.venue != "replay" and config.feed.replay_path:
        problems.append(
            f"config.feed.replay_path: {config.feed.replay_path!r} is only used with "
            f'venue = "replay", not {config.feed.venue!r}'
        )
    needed = {"1m", config.strategies.timeframe, *config.strategies.trend_timeframes}
    missing = sorted(needed - set(config.feed.timeframes), key=lambda tf: TIMEFRAME_MS[tf])
    if config.strategies.enabled and missing:
        problems.append(
            f"config.feed.timeframes: {config.feed.timeframes} lacks {missing}, which the "
            f"strategies need (1m, strategies.timeframe and strategies.trend_timeframes)"
        )
    problems.extend(_pipeline_problems(config))
    problems.extend(_session_problems(config))
    problems.extend(_venue_broker_problems(config))
    problems.extend(_feed_problems(config.feed))
    return problems


def _feed_problems(feed: FeedConfig) -> list[str]:
    """Symbols in the venue's form (the venue's own list is asked at start and by preflight)."""
    from fractald.venues.instruments import form_problem

    problems = [
        f"config.feed.symbols[{i}]: {p}"
        for i, p in enumerate(form_problem(feed.venue, s) for s in feed.symbols)
        if p is not None
    ]
    if feed.venue == "ibkr":
        from fractald.venues.ibkr_feed_preflight import feed_config_problems

        problems.extend(feed_config_problems(feed))
    if feed.reconnect_backoff_cap_s < feed.reconnect_backoff_base_s:
        problems.append(
            f"config.feed.reconnect_backoff_cap_s: {feed.reconnect_backoff_cap_s} must be >= "
            f"reconnect_backoff_base_s ({feed.reconnect_backoff_base_s})"
        )
    return problems


def _venue_broker_problems(config: Config) -> list[str]:
    from fractald.venues.binance_config import broker_problems

    return broker_problems(config)


def _session_problems(config: Config) -> list[str]:
    if not config.session.calendar:
        return []
    from fractald.session_calendar import CalendarError, session_gate

    try:
        session_gate(config.session.calendar)
    except CalendarError as exc:
        return [f"config.session.calendar: {exc}"]
    return []


def _pipeline_problems(config: Config) -> list[str]:
    """Strategy names and parameters are checked by building the strategies they describe."""
    from fractald.strategy_validation import strategy_problems

    s = config.strategies
    return strategy_problems(s.enabled, s.timeframe, s.trend_timeframes, s.params, s.confidence)


def _broker_problems(config: Config) -> list[str]:
    """A live run needs a real broker and a paper run refuses one: never a quiet paper run."""
    b, mode = config.broker, config.risk.mode
    problems = []
    if mode == "live" and b.kind not in REAL_BROKERS:
        problems.append(
            f"config.risk.mode: 'live' needs a real broker, but broker.kind is {b.kind!r}; "
            f"set [broker] kind to one of {', '.join(REAL_BROKERS)}"
        )
    if mode == "paper" and b.kind == "hyperliquid":  # (Binance says so in binance_config)
        problems.append(
            f"config.risk.mode: 'paper' refuses the real broker {b.kind!r}; set "
            '[risk] mode = "live" to trade on it, or [broker] kind = "paper"'
        )
    if b.kind == "ibkr":
        from fractald.venues.ibkr_config import config_problems

        return problems + config_problems(config)
    if b.kind != "hyperliquid":
        return problems
    if not re.fullmatch(r"0x[0-9a-fA-F]{40}", b.account_address):
        problems.append(
            f"config.broker.account_address: {b.account_address!r} is not a 0x-prefixed "
            "20-byte hex address (the account, not the API wallet)"
        )
    if not b.private_key_credential:
        problems.append(
            "config.broker.private_key_credential: hyperliquid needs the file name of "
            "its API-wallet key under $CREDENTIALS_DIRECTORY"
        )
    problems += venue_url_problems("broker", {"rest_url": b.rest_url, "ws_url": b.ws_url})
    return problems + _hyperliquid_leverage_problems(config)


def _hyperliquid_leverage_problems(config: Config) -> list[str]:
    """[broker] leverage / margin_type per coin (set at start; the perp's maximum is checked then)."""
    b, problems = config.broker, []
    for key, table in (("leverage", b.leverage), ("margin_type", b.margin_type)):
        problems += [
            f"config.broker.{key}.{symbol}: not one of feed.symbols {config.feed.symbols}"
            for symbol in table
            if symbol not in config.feed.symbols
        ]
    problems += [
        f"config.broker.leverage.{symbol}: {lev} must be at least 1"
        for symbol, lev in b.leverage.items()
        if lev < 1
    ]
    problems += [
        f"config.broker.margin_type.{symbol}: {margin!r} must be 'cross' or 'isolated'"
        for symbol, margin in b.margin_type.items()
        if margin not in ("cross", "isolated")
    ]
    return problems
