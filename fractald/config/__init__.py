"""The daemon's configuration: one TOML file validated into frozen attrs classes.

No file means the embedded default (`Config()`): paper trading on the
bundled BTC candles. Validation reports every problem at once, each naming
the key path, the bad value and what is allowed; `load_config` raises one
`ConfigError` carrying them all.

The package, one job a module: the section classes by group
(`operation_sections`, `venue_sections`, `trading_sections`, with the field
validators of `field_checks`), the root `Config` (`root`), the per-key checks
and their wording (`key_checks`), checks of run-time inputs (`input_checks`)
and of what spans sections (`cross_checks`), and loading (`loading`). Every
name is re-exported here: import from `fractald.config`.
"""

from fractald.config.cross_checks import replay_time_ms
from fractald.config.input_checks import url_problem, venue_url_problems
from fractald.config.loading import (
    LIVE_RELOADABLE_SECTIONS,
    config_from_dict,
    load_config,
    public_dict,
    reload_changes,
    secret_strings,
    unstructure,
)
from fractald.config.operation_sections import (
    LOG_FORMATS,
    LOG_LEVELS,
    AlertsConfig,
    ControlConfig,
    DaemonConfig,
    LogConfig,
    MetricsConfig,
    TelegramConfig,
)
from fractald.config.root import Config
from fractald.config.trading_sections import RiskConfig, SessionConfig, StrategiesConfig
from fractald.config.venue_sections import (
    BROKERS,
    CATALOG_VENUES,
    REAL_BROKERS,
    VENUES,
    BrokerConfig,
    FeedConfig,
)
from fractald.errors import ConfigError

_url_problem = url_problem  # the name fractald.venues.binance_config imports

__all__ = [
    "BROKERS",
    "CATALOG_VENUES",
    "LIVE_RELOADABLE_SECTIONS",
    "LOG_FORMATS",
    "LOG_LEVELS",
    "REAL_BROKERS",
    "VENUES",
    "AlertsConfig",
    "BrokerConfig",
    "Config",
    "ConfigError",
    "ControlConfig",
    "DaemonConfig",
    "FeedConfig",
    "LogConfig",
    "MetricsConfig",
    "RiskConfig",
    "SessionConfig",
    "StrategiesConfig",
    "TelegramConfig",
    "config_from_dict",
    "load_config",
    "public_dict",
    "reload_changes",
    "replay_time_ms",
    "secret_strings",
    "unstructure",
    "url_problem",
    "venue_url_problems",
]
