"""The whole configuration: one attribute per TOML table, each a frozen section class."""

from __future__ import annotations

import os
from pathlib import Path

import attrs

from fractald.config.operation_sections import (
    AlertsConfig,
    ControlConfig,
    DaemonConfig,
    LogConfig,
    MetricsConfig,
    TelegramConfig,
)
from fractald.config.trading_sections import RiskConfig, SessionConfig, StrategiesConfig
from fractald.config.venue_sections import BrokerConfig, FeedConfig


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
