"""The example configuration, generated from the real defaults so it cannot drift.

    python -m fractald.config_example > deploy/systemd/fractald.toml.example

Every key of every section is written with its default value (what the
daemon uses when the key is left out), with a comment where a default needs
one. `tests/test_config_example.py` fails when the checked-in file differs
from this output, so a new or changed default shows up in review.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from fractald.config import Config, unstructure

HEADER = """\
# fractald configuration: /etc/fractald/fractald.toml (root:fractald 0640); a second bot
# on the host (fractald@NAME) reads /etc/fractald/NAME.toml.
# Check it before a restart:  fractald check-config /etc/fractald/fractald.toml
# Every key is optional; leaving a key out keeps the default shown here.
# Secrets never go here: put them in /etc/fractald/credentials/ (see the unit).
# Generated from the defaults by `python -m fractald.config_example`; do not edit by hand.
"""

COMMENTS = {
    "daemon.state_dir": '"" = systemd\'s $STATE_DIRECTORY, else ./state',
    "daemon.runtime_dir": '"" = systemd\'s $RUNTIME_DIRECTORY, else the state directory',
    "daemon.test_hooks": "never true in production",
    "daemon.reconcile_equity_tolerance": "venue equity this fraction below the books: `account`",
    "daemon.reconcile_margin_tolerance": "margin used this fraction over the leverage's: `margin`",
    "feed.venue": "replay | hyperliquid | hyperliquid-testnet | binance | binance-futures | ibkr",
    "feed.replay_path": '"" = the bundled month of BTC 1-minute candles',
    "feed.replay_catalog": '"" = none; else a `fractald download` catalog: feed.symbols[0] from replay_from',
    "feed.replay_catalog_venue": "binance-futures | binance-spot | hyperliquid",
    "feed.replay_from": 'UTC date/time, e.g. "2024-01-01" (needed with replay_catalog)',
    "feed.replay_to": '"" = up to the last candle stored',
    "feed.ib_client_id": "venue ibkr: the feed's own TWS client id (not broker.ib_client_id)",
    "feed.ib_calendar": "hours past IB's few days: holidays (exchange_calendars)",
    "feed.quality_spread_factor": "quality x this per tick of spread beyond one (ibkr)",
    "feed.quality_outside_rth_factor": "quality x this outside regular hours (ibkr)",
    "feed.roll_open_trades": "close (on the old month, reason contract_roll) | keep",
    "broker.api_key_credential": 'a file under $CREDENTIALS_DIRECTORY, e.g. "venue_api_key"',
    "broker.api_secret_credential": 'e.g. "venue_api_secret"',
    "risk.mode": "paper | live",
    "strategies.params": "[strategies.params.NAME] tables override a strategy's parameters",
    "control.socket_path": '"" = $RUNTIME_DIRECTORY/control.sock (/run/fractald/control.sock)',
    "control.allowed_uids": "besides root and the daemon's own user",
    "control.allowed_gids": "the role adds the fractald group for fractald_operators",
    "log.format": "auto (JSON unless a terminal) | json | console",
    "metrics.textfile_path": '"" = none; the role sets /var/lib/fractald-metrics/NAME.prom',
    "alerts.webhook_urls": "generic JSON POSTs; a webhook URL is a secret, keep the file 0640",
}


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    raise TypeError(f"no TOML form for {value!r} in the example")


def render_example() -> str:
    lines = [HEADER]
    for section, keys in unstructure(Config()).items():
        lines.append(f"[{section}]")
        for key, value in keys.items():
            comment = COMMENTS.get(f"{section}.{key}")
            if isinstance(value, dict):  # tables of their own: shown only as a comment
                lines.append(f"# {key}: {comment}" if comment else f"# [{section}.{key}.NAME]")
                continue
            line = f"{key} = {_value(value)}"
            lines.append(f"{line:<29} # {comment}" if comment else line)
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    sys.stdout.write(render_example())
    return 0


if __name__ == "__main__":
    sys.exit(main())
