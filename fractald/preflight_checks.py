"""A preflight check's record (`Check`, made by `ok`, `fail`, `skip`) and the venue URL it probes.

A leaf module: the venues' own preflight and config checks build their
records here, so they need not import `fractald.preflight` (which imports
them) nor the config package's loading (which calls them).
"""

from __future__ import annotations

import enum

import attrs

from fractald.config.root import Config


class Status(enum.Enum):
    OK = "ok"
    FAIL = "fail"
    SKIP = "skipped"


@attrs.frozen
class Check:
    name: str
    status: Status
    detail: str
    remedy: str = ""

    def as_dict(self) -> dict[str, str]:
        return {
            "name": self.name,
            "status": self.status.value,
            "detail": self.detail,
            "remedy": self.remedy,
        }


def ok(name: str, detail: str) -> Check:
    return Check(name, Status.OK, detail)


def fail(name: str, detail: str, remedy: str) -> Check:
    return Check(name, Status.FAIL, detail, remedy)


def skip(name: str, detail: str) -> Check:
    return Check(name, Status.SKIP, detail)


def venue_url(config: Config) -> str:
    """The REST base URL the daemon will use: the configured one, else the venue's default."""
    if config.feed.rest_url:
        return config.feed.rest_url
    venue = config.feed.venue
    if venue.startswith("hyperliquid"):
        from fractald.venues import hyperliquid

        return (
            hyperliquid.TESTNET_REST_URL
            if venue.endswith("testnet")
            else hyperliquid.MAINNET_REST_URL
        )
    if venue.startswith("binance"):
        from fractald.venues import binance

        market = binance.Market.FUTURES if venue.endswith("futures") else binance.Market.SPOT
        return binance.ENDPOINTS[market].rest_url
    return ""
