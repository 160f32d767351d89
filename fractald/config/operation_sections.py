"""The sections that run the daemon itself: [daemon], [control], [log], [metrics], [alerts], [telegram]."""

from __future__ import annotations

import attrs

from fractald.config.field_checks import between, one_of

LOG_FORMATS = ("auto", "json", "console")
LOG_LEVELS = ("debug", "info", "warning", "error")


@attrs.frozen
class DaemonConfig:
    state_dir: str = ""  # "" = $STATE_DIRECTORY, else ./state
    runtime_dir: str = ""  # "" = $RUNTIME_DIRECTORY, else the state directory
    shutdown_timeout_s: float = attrs.field(default=8.0, validator=between(0.5, 60))
    gate_timeout_s: float = attrs.field(default=30.0, validator=between(0.1, 600))
    stall_limit_s: float = attrs.field(default=20.0, validator=between(0.5, 600))
    snapshot_interval_s: float = attrs.field(default=60.0, validator=between(1, 86400))
    backup_interval_s: float = attrs.field(default=3600.0, validator=between(10, 7 * 86400))
    backups_keep: int = attrs.field(default=5, validator=between(1, 100))
    reconcile_interval_s: float = attrs.field(default=300.0, validator=between(5, 86400))
    # How far the venue's account may stray from the books before reconciliation codes it.
    reconcile_equity_tolerance: float = attrs.field(default=0.05, validator=between(0, 1))
    reconcile_margin_tolerance: float = attrs.field(default=0.5, validator=between(0, 10))
    restart_budget: int = attrs.field(default=5, validator=between(1, 1000))
    restart_window_s: float = attrs.field(default=300.0, validator=between(1, 86400))
    backoff_base_s: float = attrs.field(default=0.5, validator=between(0.01, 60))
    backoff_cap_s: float = attrs.field(default=30.0, validator=between(0.1, 3600))
    # Enables control commands that exist only for tests (e.g. blocking the event loop).
    test_hooks: bool = False


@attrs.frozen
class ControlConfig:
    socket_path: str = ""  # "" = <runtime dir>/control.sock
    allowed_uids: list[int] = attrs.field(factory=list)
    allowed_gids: list[int] = attrs.field(factory=list)
    idle_timeout_s: float = attrs.field(default=600.0, validator=between(1, 86400))
    max_line_bytes: int = attrs.field(default=65536, validator=between(256, 16 * 1024 * 1024))
    max_clients: int = attrs.field(default=64, validator=between(1, 10_000))
    # `tail` streams have their own slots, so watchers can never lock out `halt`.
    max_streams: int = attrs.field(default=16, validator=between(1, 10_000))
    send_timeout_s: float = attrs.field(default=10.0, validator=between(0.1, 3600))


@attrs.frozen
class LogConfig:
    format: str = attrs.field(default="auto", validator=one_of(*LOG_FORMATS))
    level: str = attrs.field(default="info", validator=one_of(*LOG_LEVELS))


@attrs.frozen
class MetricsConfig:
    textfile_path: str = ""  # "" = no textfile; node_exporter's collector dir otherwise
    interval_s: float = attrs.field(default=15.0, validator=between(1, 3600))


@attrs.frozen
class AlertsConfig:
    webhook_urls: list[str] = attrs.field(factory=list)
    telegram_chat_id: str = ""
    telegram_token_credential: str = ""  # credential file name; the token is a secret
    telegram_api_url: str = "https://api.telegram.org"
    feed_stale_alert_s: float = attrs.field(default=120.0, validator=between(1, 86400))


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
    poll_timeout_s: float = attrs.field(default=25.0, validator=between(1, 50))
    confirm_timeout_s: float = attrs.field(default=120.0, validator=between(5, 3600))
