"""`fractald notify-failure UNIT`: the OnFailure= alert for hosts without Prometheus.

systemd runs it (fractald-failure@UNIT.service) when a bot's unit enters the
failed state. A dead daemon cannot announce its own death, so this small
process does: it reads the failed bot's config for its webhooks, asks systemd
how the unit ended, and posts one critical alert to each generic webhook.

The config may be the very reason the unit failed (exit 78), so when it does
not validate, the webhook URLs are still taken from its `[alerts]` table.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import trio

from fractald.alerts import Alert, AlertKind, AlertSender, Severity, targets_from_config
from fractald.config import load_config
from fractald.errors import ConfigError

UNIT_NAME = re.compile(r"^fractald(@(?P<bot>[A-Za-z0-9_.-]+))?\.service$")
SHOWN = ("ActiveState", "Result", "ExecMainCode", "ExecMainStatus", "NRestarts")
DELIVERY_TIMEOUT_S = 30.0


def config_path_for(unit: str, config_dir: Path) -> Path:
    """fractald.service -> fractald.toml; fractald@NAME.service -> NAME.toml."""
    match = UNIT_NAME.match(unit)
    if match is None:
        raise ValueError(
            f"not a fractald unit: {unit!r} (want fractald.service or fractald@NAME.service)"
        )
    return config_dir / f"{match.group('bot') or 'fractald'}.toml"


def webhook_urls(path: Path) -> list[str]:
    """The config's [alerts] webhook_urls, also from a config that does not validate."""
    try:
        return list(load_config(str(path)).alerts.webhook_urls)
    except ConfigError:
        pass
    try:
        with path.open("rb") as fh:
            urls = tomllib.load(fh).get("alerts", {}).get("webhook_urls", [])
    except (OSError, tomllib.TOMLDecodeError, AttributeError):
        return []
    return [u for u in urls if isinstance(u, str)] if isinstance(urls, list) else []


def systemctl_show(unit: str) -> dict[str, str]:
    """How the unit ended, from systemd; empty when systemctl is not there or fails."""
    try:
        proc = subprocess.run(
            ["systemctl", "show", unit, *(f"--property={p}" for p in SHOWN)],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return {}
    return dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)


def failure_alert(unit: str, shown: Mapping[str, str], host: str, ts_ms: int) -> Alert:
    status = shown.get("ExecMainStatus", "?")
    result = shown.get("Result", "unknown")
    text = (
        f"{unit} on {host} has failed (result {result}, exit status {status}) and "
        "systemd will not restart it. See runbooks/daemon-will-not-start.md; "
        f"journalctl -u {unit} -n 50 says why."
    )
    fields = (
        ("unit", unit),
        ("host", host),
        ("result", result),
        ("exit_status", status),
        ("restarts", shown.get("NRestarts", "?")),
    )
    return Alert(AlertKind.FATAL_ERROR, Severity.CRITICAL, f"{unit} failed", text, ts_ms, fields)


def notify_failure(
    unit: str,
    config_dir: Path,
    *,
    show: Callable[[str], Mapping[str, str]] = systemctl_show,
    host: str = "",
    now_ms: int | None = None,
    trust_env: bool = True,
) -> int:
    """Post the alert; the exit status: 0 delivered (or nowhere to send), 1 not delivered."""
    path = config_path_for(unit, config_dir)
    urls = webhook_urls(path)
    if not urls:
        print(
            f"fractald notify-failure: {path} has no [alerts] webhook_urls; nothing sent",
            file=sys.stderr,
        )
        return 0
    alert = failure_alert(
        unit,
        show(unit),
        host or os.uname().nodename,
        int(time.time() * 1000) if now_ms is None else now_ms,
    )
    sender = AlertSender(targets_from_config(urls), instance=_bot(unit), trust_env=trust_env)
    sender.notify(alert)
    left = trio.run(sender.flush, DELIVERY_TIMEOUT_S)
    delivered = sender.counters().sent
    print(
        f"fractald notify-failure: {unit}: alert sent to {delivered} of {len(urls)} webhook(s)",
        file=sys.stderr,
    )
    return 0 if left == 0 and delivered == len(urls) else 1


def _bot(unit: str) -> str:
    match = UNIT_NAME.match(unit)
    return (match.group("bot") if match else None) or "main"


def main(argv: Sequence[str], env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    if len(argv) != 1:
        print("usage: fractald notify-failure UNIT", file=sys.stderr)
        return 2
    config_dir = Path(env.get("CONFIGURATION_DIRECTORY") or "/etc/fractald")
    try:
        return notify_failure(argv[0], config_dir)
    except ValueError as exc:
        print(f"fractald notify-failure: {exc}", file=sys.stderr)
        return 2
