"""Loading a TOML file into a validated Config, and the config's edges: unstructure, reload, public view."""

from __future__ import annotations

import tomllib
import typing
from pathlib import Path
from typing import Any

import cattrs

from fractald.config.cross_checks import cross_section_problems
from fractald.config.key_checks import converter, validate_table
from fractald.config.root import Config
from fractald.errors import ConfigError

# Keys that a SIGHUP reload may change; anything else needs a restart.
# [strategies] and [broker] shape the trading pipeline, which is built from the config at
# start-up (then the stored state is restored into it): a reload refuses them by name.
LIVE_RELOADABLE_SECTIONS = ("log", "risk", "metrics", "alerts")


def config_from_dict(data: dict[str, Any], source: str = "config") -> Config:
    """Validate a parsed TOML document; raise ConfigError listing every problem."""
    problems: list[str] = []
    validate_table(Config, data, "config", problems)
    if not problems:
        try:
            config = converter.structure(data, Config)
        except Exception as exc:  # noqa: BLE001 - a cross-field check the per-key pass cannot see
            problems.extend(
                cattrs.transform_error(exc, path="config")
                if isinstance(exc, cattrs.BaseValidationError)
                else [str(exc)]
            )
        else:
            problems.extend(cross_section_problems(config))
            if not problems:
                return config
    raise ConfigError(
        f"{source}: {len(problems)} problem(s): " + "; ".join(problems), problems=problems
    )


def load_config(path: str | Path | None) -> Config:
    """Load and validate a TOML file; `None` gives the embedded default."""
    if path is None:
        return Config()
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror or exc}") from None
    text = _decode(raw, path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    config = config_from_dict(data, source=str(path))
    _register_secrets(config)
    return config


def _decode(raw: bytes, path: Path) -> str:
    """UTF-8 text, or a ConfigError naming the line and column (never the bytes: they may be a key)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ConfigError(
            f"{path}: not UTF-8 text: an invalid byte at line {line}, column "
            f"{column} (byte offset {exc.start}); save the file as UTF-8"
        ) from None


def unstructure(config: Config) -> dict[str, Any]:
    return typing.cast(dict[str, Any], converter.unstructure(config))


def reload_changes(old: Config, new: Config) -> tuple[list[str], list[str]]:
    """Split the differences between two configs into (applied live, refused: need a restart)."""
    old_d, new_d = unstructure(old), unstructure(new)
    live: list[str] = []
    refused: list[str] = []
    for section in old_d:
        if old_d[section] == new_d[section]:
            continue
        changed = sorted(k for k in new_d[section] if old_d[section].get(k) != new_d[section][k])
        target = live if section in LIVE_RELOADABLE_SECTIONS else refused
        target.extend(f"{section}.{key}" for key in changed)
    return sorted(live), sorted(refused)


# -- input checks: every value that is only used at run time is checked here ---------------


def secret_strings(config: Config) -> list[str]:
    """Every string in a config that may be or hold a secret (for the log redactor)."""
    from fractald.logs import url_secrets

    found: list[str] = []
    for url in config.alerts.webhook_urls:
        found += url_secrets(url, with_path=True)
    for url in (config.feed.ws_url, config.feed.rest_url):
        if url:
            found += url_secrets(url)[1:]  # the password and query values, not the whole URL
    return found


def _register_secrets(config: Config) -> None:
    from fractald.logs import redactor

    redactor.register(secret_strings(config))


def public_dict(config: Config) -> dict[str, Any]:
    """The effective config with every secret-capable value masked (check-config --json, fractalctl)."""
    from fractald.logs import redact_url

    data = unstructure(config)
    feed, alerts = data["feed"], data["alerts"]
    for key in ("ws_url", "rest_url"):
        feed[key] = redact_url(feed[key])
    alerts["webhook_urls"] = [redact_url(u, hide_path=True) for u in alerts["webhook_urls"]]
    alerts["telegram_api_url"] = redact_url(alerts["telegram_api_url"], hide_path=True)
    return data
