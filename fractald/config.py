"""The daemon's configuration: one TOML file validated into frozen attrs classes.

No file means the embedded default (`Config()`): paper trading on the
bundled BTC candles. Validation reports every problem at once, each naming
the key path, the bad value and what is allowed; `load_config` raises one
`ConfigError` carrying them all.
"""

from __future__ import annotations

import os
import re
import tomllib
import types
import typing
import urllib.parse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs
import cattrs

from fractald.core.models import TIMEFRAME_MS
from fractald.errors import ConfigError

# fractald.research.catalog.VENUES (tests/test_replay_catalog.py keeps them equal; not imported: numpy)
CATALOG_VENUES = ("binance-futures", "binance-spot", "hyperliquid")
VENUES = ("replay", "hyperliquid", "hyperliquid-testnet", "binance", "binance-futures", "ibkr")
LOG_FORMATS = ("auto", "json", "console")
LOG_LEVELS = ("debug", "info", "warning", "error")
BROKERS = ("paper", "binance-futures", "binance-spot", "hyperliquid", "ibkr")
REAL_BROKERS = BROKERS[1:]

# Keys that a SIGHUP reload may change; anything else needs a restart.
# [strategies] and [broker] shape the trading pipeline, which is built from the config at
# start-up (then the stored state is restored into it): a reload refuses them by name.
LIVE_RELOADABLE_SECTIONS = ("log", "risk", "metrics", "alerts")


def _in(*allowed: Any) -> Any:
    def check(_inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value not in allowed:
            raise ValueError(f"must be one of {', '.join(map(repr, allowed))}")

    return check


def _between(lo: float, hi: float, *, lo_open: bool = False) -> Any:
    def check(_inst: Any, attribute: attrs.Attribute[Any], value: float) -> None:
        low_ok = value > lo if lo_open else value >= lo
        if not (low_ok and value <= hi):
            bracket = "(" if lo_open else "["
            raise ValueError(f"must be within {bracket}{lo}, {hi}]")

    return check


def _timeframes(_inst: Any, attribute: attrs.Attribute[Any], value: list[str]) -> None:
    bad = [tf for tf in value if tf not in TIMEFRAME_MS]
    if bad:
        raise ValueError(f"unknown timeframe(s) {bad}; allowed: {', '.join(TIMEFRAME_MS)}")
    if not value:
        raise ValueError("needs at least one timeframe")


def _non_empty(_inst: Any, attribute: attrs.Attribute[Any], value: list[Any]) -> None:
    if not value:
        raise ValueError("must not be empty")


@attrs.frozen
class DaemonConfig:
    state_dir: str = ""  # "" = $STATE_DIRECTORY, else ./state
    runtime_dir: str = ""  # "" = $RUNTIME_DIRECTORY, else the state directory
    shutdown_timeout_s: float = attrs.field(default=8.0, validator=_between(0.5, 60))
    gate_timeout_s: float = attrs.field(default=30.0, validator=_between(0.1, 600))
    stall_limit_s: float = attrs.field(default=20.0, validator=_between(0.5, 600))
    snapshot_interval_s: float = attrs.field(default=60.0, validator=_between(1, 86400))
    backup_interval_s: float = attrs.field(default=3600.0, validator=_between(10, 7 * 86400))
    backups_keep: int = attrs.field(default=5, validator=_between(1, 100))
    reconcile_interval_s: float = attrs.field(default=300.0, validator=_between(5, 86400))
    restart_budget: int = attrs.field(default=5, validator=_between(1, 1000))
    restart_window_s: float = attrs.field(default=300.0, validator=_between(1, 86400))
    backoff_base_s: float = attrs.field(default=0.5, validator=_between(0.01, 60))
    backoff_cap_s: float = attrs.field(default=30.0, validator=_between(0.1, 3600))
    # Enables control commands that exist only for tests (e.g. blocking the event loop).
    test_hooks: bool = False


@attrs.frozen
class FeedConfig:
    venue: str = attrs.field(default="replay", validator=_in(*VENUES))
    symbols: list[str] = attrs.field(factory=lambda: ["BTC-PERP"], validator=_non_empty)
    timeframes: list[str] = attrs.field(
        factory=lambda: ["1m", "15m", "1h", "4h"], validator=_timeframes
    )
    ws_url: str = ""  # "" = the venue's default
    rest_url: str = ""
    replay_path: str = ""  # "" = the bundled BTC 1m candles
    replay_speed: float = attrs.field(default=3000.0, validator=_between(0, 1_000_000))
    # Replay from a `fractald download` catalog instead: feed.symbols[0]'s 1m candles of
    # replay_catalog_venue from replay_from (UTC date/time) up to replay_to ("" = the last stored).
    replay_catalog: str = ""
    replay_catalog_venue: str = attrs.field(
        default="binance-futures", validator=_in(*CATALOG_VENUES)
    )
    replay_from: str = ""
    replay_to: str = ""
    # A replay candle file with bad rows (out of order, repeated times, bad prices) is refused;
    # true drops the bad rows, sorts the rest, keeps the first of each time, and logs it.
    replay_repair: bool = False
    stale_after_s: float = attrs.field(default=30.0, validator=_between(0.1, 86400))
    silence_timeout_s: float = attrs.field(default=20.0, validator=_between(0.1, 3600))
    late_grace_s: float = attrs.field(default=2.0, validator=_between(0, 59))
    # 1m candles fetched from the venue at start, so the first bars of every timeframe are whole.
    history_bars: int = attrs.field(default=0, validator=_between(0, 5000))
    # Live feeds only: an L2 book (Binance depth synced against REST snapshots, Hyperliquid l2Book).
    book: bool = False
    max_frame_bytes: int = attrs.field(
        default=4 * 1024 * 1024, validator=_between(1024, 64 * 1024 * 1024)
    )
    reconnect_backoff_base_s: float = attrs.field(default=0.5, validator=_between(0.01, 60))
    reconnect_backoff_cap_s: float = attrs.field(default=30.0, validator=_between(0.1, 3600))
    max_failures: int = attrs.field(default=8, validator=_between(1, 1000))  # connects in a row
    health_interval_s: float = attrs.field(default=1.0, validator=_between(0.1, 60))
    backfill_timeout_s: float = attrs.field(default=15.0, validator=_between(1, 600))
    # venue = "ibkr" (fractald/venues/feed_ibkr.py): TWS / IB Gateway, the feed's own client id
    # (TWS takes one connection per id: not [broker] ib_client_id), futures roots as symbols.
    ib_host: str = "127.0.0.1"
    ib_port: int = attrs.field(default=4002, validator=_between(1, 65535))
    ib_client_id: int = attrs.field(default=18, validator=_between(0, 2**31 - 1))
    ib_exchange: str = "CME"
    ib_roll_days: int = attrs.field(default=5, validator=_between(0, 60))


@attrs.frozen
class BrokerConfig:
    kind: str = attrs.field(default="paper", validator=_in(*BROKERS))
    starting_equity: float = attrs.field(
        default=10_000.0, validator=_between(0, 1e12, lo_open=True)
    )
    taker_fee_bps: float = attrs.field(default=4.5, validator=_between(0, 100))
    maker_fee_bps: float = attrs.field(default=1.5, validator=_between(-10, 100))
    slippage_bps: float = attrs.field(default=1.0, validator=_between(0, 500))
    latency_ms: int = attrs.field(default=50, validator=_between(0, 60_000))
    tick_size: float = attrs.field(default=0.5, validator=_between(0, 1e9, lo_open=True))
    lot_size: float = attrs.field(default=0.001, validator=_between(0, 1e9, lo_open=True))
    # Names of credential files under $CREDENTIALS_DIRECTORY (systemd LoadCredential=).
    api_key_credential: str = ""
    api_secret_credential: str = ""
    # Real venues (fractald/venues/binance_config.py): testnet unless told otherwise.
    network: str = attrs.field(default="testnet", validator=_in("testnet", "mainnet"))
    rest_url: str = ""  # "" = the network's default
    ws_url: str = ""
    recv_window_ms: int = attrs.field(default=5000, validator=_between(1, 60_000))
    leverage: dict[str, int] = attrs.field(factory=dict)  # per symbol, set at start (futures)
    margin_type: dict[str, str] = attrs.field(factory=dict)  # per symbol: isolated | cross
    # Hyperliquid: the account's address, and its API-wallet (agent) key in a credential file.
    account_address: str = ""
    private_key_credential: str = ""
    # IBKR (fractald/venues/ibkr_config.py): TWS / IB Gateway on this host; a CME future by its root.
    ib_host: str = "127.0.0.1"
    ib_port: int = attrs.field(
        default=4002, validator=_between(1, 65535)
    )  # Gateway paper; TWS paper 7497
    ib_client_id: int = attrs.field(default=17, validator=_between(0, 2**31 - 1))
    ib_account: str = ""
    ib_symbol: str = "MES"
    ib_exchange: str = "CME"
    ib_roll_days: int = attrs.field(default=5, validator=_between(0, 60))
    ib_entry_ttl_s: float = attrs.field(default=90.0, validator=_between(1, 86_400))


@attrs.frozen
class RiskConfig:
    mode: str = attrs.field(default="paper", validator=_in("paper", "live"))
    risk_per_trade: float = attrs.field(default=0.005, validator=_between(0, 0.05, lo_open=True))
    heat_cap: float = attrs.field(default=0.06, validator=_between(0, 0.5, lo_open=True))
    max_drawdown: float = attrs.field(default=0.20, validator=_between(0, 0.9, lo_open=True))
    daily_loss_limit: float = attrs.field(default=0.05, validator=_between(0, 0.9, lo_open=True))
    # Limits in money and ticks (0 = off); the v1 futures bot ran $15 per trade, 12 ticks, $30 a day.
    max_risk_money: float = attrs.field(default=0.0, validator=_between(0, 1e12))
    max_stop_ticks: int = attrs.field(default=0, validator=_between(0, 1_000_000))
    daily_loss_money: float = attrs.field(default=0.0, validator=_between(0, 1e12))
    max_trades_per_day: int = attrs.field(default=50, validator=_between(1, 10_000))
    max_consecutive_losses: int = attrs.field(default=8, validator=_between(1, 1000))
    max_open_positions: int = attrs.field(default=3, validator=_between(1, 1000))
    min_data_quality: float = attrs.field(default=0.80, validator=_between(0, 1))
    min_execution_quality: float = attrs.field(default=0.75, validator=_between(0, 1))


@attrs.frozen
class StrategiesConfig:
    enabled: list[str] = attrs.field(
        factory=lambda: ["liquidity_sweep", "fvg_fill", "bos_orderblock"]
    )
    timeframe: str = attrs.field(default="15m", validator=_in(*TIMEFRAME_MS))
    # Higher-timeframe structure the confidence model reads (H4, H1, M15 agreeing scores higher).
    trend_timeframes: list[str] = attrs.field(
        factory=lambda: ["15m", "1h", "4h"], validator=_timeframes
    )
    params: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    # Weights of the confidence factor model (fractald.core.strategies.confidence.ConfidenceWeights).
    confidence: dict[str, float] = attrs.field(factory=dict)


@attrs.frozen
class SessionConfig:
    # "" = a 24 h market (no gate); else an exchange_calendars name, e.g. "XNYS" for the
    # regular hours of US equity-index futures (holidays and early closes included).
    calendar: str = ""
    skip_first_minutes: int = attrs.field(default=0, validator=_between(0, 1440))
    no_entry_last_minutes: int = attrs.field(default=0, validator=_between(0, 1440))
    flatten_before_close_minutes: int = attrs.field(default=0, validator=_between(0, 1440))


@attrs.frozen
class ControlConfig:
    socket_path: str = ""  # "" = <runtime dir>/control.sock
    allowed_uids: list[int] = attrs.field(factory=list)
    allowed_gids: list[int] = attrs.field(factory=list)
    idle_timeout_s: float = attrs.field(default=600.0, validator=_between(1, 86400))
    max_line_bytes: int = attrs.field(default=65536, validator=_between(256, 16 * 1024 * 1024))
    max_clients: int = attrs.field(default=64, validator=_between(1, 10_000))
    # `tail` streams have their own slots, so watchers can never lock out `halt`.
    max_streams: int = attrs.field(default=16, validator=_between(1, 10_000))
    send_timeout_s: float = attrs.field(default=10.0, validator=_between(0.1, 3600))


@attrs.frozen
class LogConfig:
    format: str = attrs.field(default="auto", validator=_in(*LOG_FORMATS))
    level: str = attrs.field(default="info", validator=_in(*LOG_LEVELS))


@attrs.frozen
class MetricsConfig:
    textfile_path: str = ""  # "" = no textfile; node_exporter's collector dir otherwise
    interval_s: float = attrs.field(default=15.0, validator=_between(1, 3600))


@attrs.frozen
class AlertsConfig:
    webhook_urls: list[str] = attrs.field(factory=list)
    telegram_chat_id: str = ""
    telegram_token_credential: str = ""  # credential file name; the token is a secret
    telegram_api_url: str = "https://api.telegram.org"
    feed_stale_alert_s: float = attrs.field(default=120.0, validator=_between(1, 86400))


@attrs.frozen
class TelegramConfig:
    """Commands from a phone (fractald/control/telegram.py); answered only in `allowed_chat_ids`.

    The token is read from the credential `token_credential` (default: the
    alerts' `telegram_token_credential`); chats default to the alerts' chat.
    """

    enabled: bool = False
    allowed_chat_ids: list[str] = attrs.field(factory=list)
    token_credential: str = ""
    api_url: str = "https://api.telegram.org"
    poll_timeout_s: float = attrs.field(default=25.0, validator=_between(1, 50))
    confirm_timeout_s: float = attrs.field(default=120.0, validator=_between(5, 3600))


@attrs.frozen
class Config:
    daemon: DaemonConfig = attrs.Factory(DaemonConfig)
    feed: FeedConfig = attrs.Factory(FeedConfig)
    broker: BrokerConfig = attrs.Factory(BrokerConfig)
    risk: RiskConfig = attrs.Factory(RiskConfig)
    strategies: StrategiesConfig = attrs.Factory(StrategiesConfig)
    control: ControlConfig = attrs.Factory(ControlConfig)
    log: LogConfig = attrs.Factory(LogConfig)
    metrics: MetricsConfig = attrs.Factory(MetricsConfig)
    alerts: AlertsConfig = attrs.Factory(AlertsConfig)
    telegram: TelegramConfig = attrs.Factory(TelegramConfig)
    session: SessionConfig = attrs.Factory(SessionConfig)

    def state_path(self) -> Path:
        return Path(self.daemon.state_dir or os.environ.get("STATE_DIRECTORY", "") or "./state")

    def runtime_path(self) -> Path:
        return Path(
            self.daemon.runtime_dir or os.environ.get("RUNTIME_DIRECTORY", "") or self.state_path()
        )

    def socket_path(self) -> Path:
        return Path(self.control.socket_path or self.runtime_path() / "control.sock")


_converter = cattrs.Converter(forbid_extra_keys=True)


def _describe(value: Any) -> str:
    from fractald.logs import redact_url

    text = redact_url(repr(value), hide_path=True)  # a bad value may still hold a secret
    return text if len(text) <= 80 else text[:77] + "..."


_TYPE_NAMES = {
    bool: "a boolean (true or false)",
    int: "an integer",
    float: "a number",
    str: "a string",
}


def _type_name(tp: Any) -> str:
    if tp in _TYPE_NAMES:
        return _TYPE_NAMES[tp]
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is list:
        return f"a list of {_type_name(args[0])[2:].lstrip()} values"
    if origin is dict:
        return f"a table of {_type_name(args[1])[2:].lstrip()} values"
    return str(tp).replace("typing.", "")


def _check_type(value: Any, tp: Any) -> bool:
    origin = typing.get_origin(tp)
    if tp is Any:
        return True
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is str:
        return isinstance(value, str)
    if origin is list:
        (item,) = typing.get_args(tp)
        return isinstance(value, list) and all(_check_type(v, item) for v in value)
    if origin is dict:
        key_tp, val_tp = typing.get_args(tp)
        return isinstance(value, dict) and all(
            _check_type(k, key_tp) and _check_type(v, val_tp) for k, v in value.items()
        )
    if origin in (typing.Union, types.UnionType):
        return any(_check_type(value, arg) for arg in typing.get_args(tp))
    return True


def _validate_table(cls: type, data: Any, path: str, problems: list[str]) -> None:
    if not isinstance(data, dict):
        problems.append(f"{path}: expected a table, got {_describe(data)}")
        return
    attrs.resolve_types(cls)
    fields = {f.name: f for f in attrs.fields(cls)}
    for key in data:
        if key not in fields:
            problems.append(
                f"{path}.{key}: unknown key; allowed keys in [{path}]: {', '.join(fields)}"
            )
    for name, field in fields.items():
        if name not in data:
            continue
        value, where = data[name], f"{path}.{name}"
        if attrs.has(field.type):
            _validate_table(field.type, value, where, problems)
            continue
        if not _check_type(value, field.type):
            problems.append(
                f"{where}: {_describe(value)} is not a valid value: expected {_type_name(field.type)}"
            )
            continue
        if field.validator is not None:
            try:
                field.validator(None, field, _converter.structure(value, field.type))
            except (ValueError, TypeError) as exc:
                problems.append(f"{where}: {_describe(value)} {exc}")


def config_from_dict(data: dict[str, Any], source: str = "config") -> Config:
    """Validate a parsed TOML document; raise ConfigError listing every problem."""
    problems: list[str] = []
    _validate_table(Config, data, "config", problems)
    if not problems:
        try:
            config = _converter.structure(data, Config)
        except Exception as exc:  # noqa: BLE001 - a cross-field check the per-key pass cannot see
            problems.extend(
                cattrs.transform_error(exc, path="config")
                if isinstance(exc, cattrs.BaseValidationError)
                else [str(exc)]
            )
        else:
            problems.extend(_cross_checks(config))
            if not problems:
                return config
    raise ConfigError(
        f"{source}: {len(problems)} problem(s): " + "; ".join(problems), problems=problems
    )


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


def _cross_checks(config: Config) -> list[str]:
    problems = _input_problems(config)
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
    return typing.cast(dict[str, Any], _converter.unstructure(config))


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

_WS_SCHEMES = ("ws", "wss")
_HTTP_SCHEMES = ("http", "https")
# A credential is named by a file under $CREDENTIALS_DIRECTORY ("venue:" prefix allowed).
_CREDENTIAL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
_CREDENTIAL_FIELDS = (
    ("broker", "api_key_credential"),
    ("broker", "api_secret_credential"),
    ("alerts", "telegram_token_credential"),
    ("broker", "private_key_credential"),
)


def _url_problem(
    where: str, url: str, schemes: tuple[str, ...], *, secret_path: bool
) -> str | None:
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


def _secret_shape(name: str) -> str | None:
    """A key pasted where a credential file name belongs: its kind (fractald/credential_names.py)."""
    from fractald.credential_names import secret_shape

    return secret_shape(name)


def _input_problems(config: Config) -> list[str]:
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
    for key, url, schemes in (
        ("ws_url", f.ws_url, _WS_SCHEMES),
        ("rest_url", f.rest_url, _HTTP_SCHEMES),
    ):
        if url:
            problems.append(
                _url_problem(f"config.feed.{key}", url, schemes, secret_path=False) or ""
            )
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
            _url_problem(f"config.alerts.webhook_urls[{i}]", url, _HTTP_SCHEMES, secret_path=True)
            or ""
        )
    problems.append(
        _url_problem(
            "config.alerts.telegram_api_url",
            config.alerts.telegram_api_url,
            _HTTP_SCHEMES,
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
    problems.extend(_broker_problems(config))
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
    for key, url, schemes in (
        ("rest_url", b.rest_url, _HTTP_SCHEMES),
        ("ws_url", b.ws_url, _WS_SCHEMES),
    ):
        if url:
            problems.append(
                _url_problem(f"config.broker.{key}", url, schemes, secret_path=False) or ""
            )
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
