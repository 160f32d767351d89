"""`fractalctl risk set KEY VALUE`: live risk changes, validated like the config, kept across restarts.

An override is validated by building the whole config with it
(`config_from_dict`), so it obeys exactly the rules of the [risk] table
and the cross-checks. It is stored in the ledger's settings as
``risk.<key>``, applied at once (`Daemon.apply_live`, which reaches the
engine through `TradingSession.apply_config` and `TradingEngine.set_risk`),
and re-applied over the config file at every start-up and after every
reload. ``risk set KEY default`` drops the override.
"""

from __future__ import annotations

import typing
from typing import TYPE_CHECKING, Any

import attrs

from fractald.config import Config, RiskConfig, config_from_dict, unstructure
from fractald.control.protocol import Arg, CommandError, PeerCred
from fractald.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Callable

    from fractald.actors.events import EventBus
    from fractald.control.server import CommandRegistry
    from fractald.shell_deps import LedgerSource, LiveConfig
    from fractald.store.writer import AsyncLedger

SETTING_PREFIX = "risk."
RESET_WORD = "default"
RISK_KEYS: tuple[str, ...] = tuple(f.name for f in attrs.fields(RiskConfig))
_TYPES = typing.get_type_hints(RiskConfig)


def parse_value(key: str, text: str) -> Any:
    """The text an operator typed, as the type the [risk] key holds (validation comes after)."""
    if key not in RISK_KEYS:
        raise ValueError(f"unknown risk key {key!r}; valid keys: {', '.join(RISK_KEYS)}")
    kind = _TYPES[key]
    text = text.strip()
    try:
        if kind is int:
            return int(text)
        if kind is float:
            return float(text)
    except ValueError:
        raise ValueError(
            f"risk.{key}: {text!r} is not {'an integer' if kind is int else 'a number'}"
        ) from None
    return text


def with_risk(config: Config, overrides: dict[str, Any]) -> Config:
    """`config` with [risk] keys replaced; raises ConfigError naming each bad key and value."""
    data = unstructure(config)
    data["risk"].update(overrides)
    return config_from_dict(data, source="risk override")


class RiskOverrides:
    """The persisted overrides and their life cycle in the daemon."""

    def __init__(
        self,
        config: LiveConfig,
        ledgers: LedgerSource,
        bus: EventBus,
        apply_live: Callable[[Config], None],
        log: Any,
    ) -> None:
        self.config = config
        self.ledgers = ledgers
        self.bus = bus
        self.apply_live = apply_live  # the daemon's: takes the new config everywhere it applies
        self.log = log
        self.active: dict[str, Any] = {}

    async def load(self, ledger: AsyncLedger, log: Any) -> None:
        """At start-up, before the trading session is built: stored overrides over the config file.

        One that no longer validates (the config file changed under it) is
        skipped with an error line rather than stopping the daemon.
        """
        stored = {
            k[len(SETTING_PREFIX) :]: v
            for k, v in (await ledger.get_settings()).items()
            if k.startswith(SETTING_PREFIX)
        }
        good: dict[str, Any] = {}
        for key, value in sorted(stored.items()):
            try:
                with_risk(self.config.current, {**good, key: value})
            except ConfigError as exc:
                log.error("risk_override_invalid", key=key, value=value, problems=exc.problems)
                continue
            good[key] = value
        if good:
            self.config.current = with_risk(self.config.current, good)
            log.info("risk_overrides_applied", overrides=good)
        self.active = good

    def overlay(self, config: Config) -> Config:
        """`config` with the active overrides on top (ConfigError if they no longer fit)."""
        return with_risk(config, self.active) if self.active else config

    async def set(self, key: str, text: str, uid: int) -> dict[str, Any]:
        ledger = self.ledgers.ledger
        if ledger is None:
            raise CommandError("not_ready", "the state database is not open yet; try again")
        old = getattr(self.config.current.risk, key)
        if text.strip().lower() == RESET_WORD:
            overrides = {k: v for k, v in self.active.items() if k != key}
            from fractald.config import load_config

            try:
                base = load_config(self.config.path)
            except ConfigError as exc:
                raise CommandError(
                    "config_invalid", f"cannot read the configured default: {exc}"
                ) from None
            new_config = with_risk(attrs.evolve(self.config.current, risk=base.risk), overrides)
            await ledger.clear_setting(SETTING_PREFIX + key)
        else:
            try:
                value = parse_value(key, text)
                new_config = with_risk(self.config.current, {key: value})
            except ValueError as exc:
                raise CommandError("bad_value", str(exc), argument="value") from None
            except ConfigError as exc:
                raise CommandError(
                    "bad_value", "; ".join(exc.problems), argument="value", problems=exc.problems
                ) from None
            overrides = {**self.active, key: value}
            await ledger.set_setting(SETTING_PREFIX + key, value)
        self.active = overrides
        self.apply_live(new_config)  # reaches the engine (TradingSession.apply_config)
        new = getattr(self.config.current.risk, key)
        self.log.warning(
            "risk_override_set", key=key, old=old, new=new, by_uid=uid, persisted=key in overrides
        )
        self.bus.publish("risk_set", {"key": key, "old": old, "new": new, "by_uid": uid})
        return {
            "key": key,
            "old": old,
            "new": new,
            "persisted": key in overrides,
            "overrides": dict(overrides),
        }


def register_risk_commands(registry: CommandRegistry, overrides: RiskOverrides) -> None:

    async def risk_set(args: dict[str, Any], peer: PeerCred) -> dict[str, Any]:
        return await overrides.set(args["key"], args["value"], peer.uid)

    registry.register(
        "risk_set",
        risk_set,
        mutating=True,
        help=f"change a [risk] setting live, validated and persisted ('{RESET_WORD}' drops it)",
        args=[
            Arg("key", str, required=True, choices=RISK_KEYS, help="a [risk] key"),
            Arg("value", str, required=True, help=f"new value, or '{RESET_WORD}'"),
        ],
    )
