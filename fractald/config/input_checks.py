"""Checks of values only used at run time: symbols, URLs, credential names, the replay file."""

from __future__ import annotations

import os
import re
import urllib.parse
from pathlib import Path

from fractald.config.root import Config

WS_SCHEMES = ("ws", "wss")
HTTP_SCHEMES = ("http", "https")
# A credential is named by a file under $CREDENTIALS_DIRECTORY ("venue:" prefix allowed).
_CREDENTIAL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
_CREDENTIAL_FIELDS = (
    ("broker", "api_key_credential"),
    ("broker", "api_secret_credential"),
    ("alerts", "telegram_token_credential"),
    ("broker", "private_key_credential"),
)


def url_problem(where: str, url: str, schemes: tuple[str, ...], *, secret_path: bool) -> str | None:
    from fractald.logs import redact_url

    shown = redact_url(url, hide_path=secret_path)
    parts = urllib.parse.urlsplit(url)
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        return f"{where}: {shown!r} has an invalid port"
    if parts.scheme not in schemes:
        return (
            f"{where}: {shown!r} is not a valid URL: the scheme must be "
            f"{' or '.join(s + '://' for s in schemes)}"
        )
    if not parts.hostname or any(c.isspace() for c in url):
        return f"{where}: {shown!r} is not a valid URL: it needs a host and no spaces"
    return None


def venue_url_problems(section: str, urls: dict[str, str]) -> list[str]:
    """A section's own venue URLs by key ("" = the default, not checked); their paths are not secret."""
    found = [
        url_problem(
            f"config.{section}.{key}",
            url,
            WS_SCHEMES if key.startswith("ws") else HTTP_SCHEMES,
            secret_path=False,
        )
        for key, url in urls.items()
        if url
    ]
    return [p for p in found if p]


def _secret_shape(name: str) -> str | None:
    """A key pasted where a credential file name belongs: its kind (fractald/credential_names.py)."""
    from fractald.credential_names import secret_shape

    return secret_shape(name)


def input_problems(config: Config) -> list[str]:
    problems: list[str] = []
    f = config.feed
    for i, symbol in enumerate(f.symbols):
        if not symbol.strip() or symbol != symbol.strip() or any(c.isspace() for c in symbol):
            problems.append(
                f"config.feed.symbols[{i}]: {symbol!r} is not a symbol name "
                '(empty or with spaces); e.g. "BTC-PERP" or "BTCUSDT"'
            )
    if len(set(f.symbols)) != len(f.symbols):
        problems.append(f"config.feed.symbols: {f.symbols} lists a symbol twice")
    problems += venue_url_problems("feed", {"ws_url": f.ws_url, "rest_url": f.rest_url})
    if f.replay_path:
        replay = Path(f.replay_path)
        if not replay.is_file():
            problems.append(
                f"config.feed.replay_path: {f.replay_path!r} "
                f"{'is not a file' if replay.exists() else 'does not exist'} "
                f"(relative paths are from {Path.cwd()})"
            )
        elif not os.access(replay, os.R_OK):
            problems.append(f"config.feed.replay_path: {f.replay_path!r} is not readable")
        elif not f.replay_repair:
            problems.append(_replay_file_problem(f.replay_path))
    for i, url in enumerate(config.alerts.webhook_urls):
        problems.append(
            url_problem(f"config.alerts.webhook_urls[{i}]", url, HTTP_SCHEMES, secret_path=True)
            or ""
        )
    problems.append(
        url_problem(
            "config.alerts.telegram_api_url",
            config.alerts.telegram_api_url,
            HTTP_SCHEMES,
            secret_path=True,
        )
        or ""
    )
    for section, key in _CREDENTIAL_FIELDS:
        name = getattr(getattr(config, section), key)
        if not name:
            continue
        where = f"config.{section}.{key}"
        # Never echo the value: a pasted key is exactly what we must not print.
        shape = _secret_shape(name)
        if shape is not None:
            problems.append(
                f"{where}: this looks like a secret itself ({shape}, {len(name)} "
                "characters), "
                "not the name of a credential file; put the secret in a file under "
                "the credentials directory and give its file name here"
            )
        elif not _CREDENTIAL_NAME.match(name):
            problems.append(
                f"{where}: not a credential file name ({len(name)} characters); "
                "use letters, digits, '.', '_', '-' (e.g. \"binance-api-key\")"
            )
    return [p for p in problems if p]


def _replay_file_problem(path: str) -> str:
    """Bad rows of a replay candle file, named by line (a capture is checked when replayed)."""
    from fractald.venues.replay import (
        CANDLE_SUFFIXES,
        ReplayError,
        candle_file_problems,
        is_capture,
    )

    if is_capture(path) or not path.lower().endswith(CANDLE_SUFFIXES):
        return ""
    try:
        found = candle_file_problems(path)
    except ReplayError as exc:
        return f"config.feed.replay_path: {exc}"
    return f"config.feed.replay_path: {found}" if found else ""
