"""`fractald preflight`: the deployment checklist an operator runs before trading.

Ansible runs it before every start and fails the play on a red line. Each
check returns one line: green (ok), red (fail, with what to do) or skipped
(with why, e.g. the venue probe when the host is offline). The exit status is
0 when nothing is red, 1 otherwise (78 when the config itself is invalid).

Run outside systemd (by root, from Ansible), the checks find the service's
directories through the same environment systemd gives the daemon:
$STATE_DIRECTORY (the role sets /var/lib/fractald) and, for the credential
files, $CREDENTIALS_DIRECTORY under systemd or $FRACTALD_CREDENTIALS_SOURCE
(the root-only /etc/fractald/credentials that LoadCredential= reads).
$FRACTALD_PREFLIGHT_SKIP takes a comma-separated list of check names to skip.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import attrs

from fractald.config import Config, load_config
from fractald.errors import ConfigError, ExitStatus
from fractald.preflight_checks import Check, Status, fail, ok, skip, venue_url

DB_NAME = "fractald.db"
# Prefix the unit's LoadCredential=venue:/etc/fractald/credentials puts before each file name.
CREDENTIAL_PREFIX = "venue_"
MIN_FREE_BYTES = 1 << 30
PROBE_TIMEOUT_S = 5.0


@attrs.frozen
class Limits:
    """Hard bounds on the risk settings: a config outside them is red, whatever it validates to."""

    risk_per_trade: float
    heat_cap: float
    daily_loss_limit: float
    max_drawdown: float
    max_trades_per_day: int
    max_open_positions: int


PAPER_LIMITS = Limits(
    risk_per_trade=0.02,
    heat_cap=0.20,
    daily_loss_limit=0.10,
    max_drawdown=0.30,
    max_trades_per_day=200,
    max_open_positions=20,
)
# Real money: stricter.
LIVE_LIMITS = Limits(
    risk_per_trade=0.01,
    heat_cap=0.10,
    daily_loss_limit=0.05,
    max_drawdown=0.20,
    max_trades_per_day=50,
    max_open_positions=5,
)


# --------------------------------------------------------------------------- checks


def check_limits(config: Config) -> Check:
    risk = config.risk
    limits = LIVE_LIMITS if risk.mode == "live" else PAPER_LIMITS
    over = [
        f"risk.{name} = {getattr(risk, name)} > {bound}"
        for name, bound in attrs.asdict(limits).items()
        if getattr(risk, name) > bound
    ]
    if risk.daily_loss_limit >= risk.max_drawdown:
        over.append(
            f"risk.daily_loss_limit ({risk.daily_loss_limit}) must be below "
            f"risk.max_drawdown ({risk.max_drawdown})"
        )
    if risk.mode == "live" and config.daemon.test_hooks:
        over.append("daemon.test_hooks = true in live mode")
    if over:
        return fail(
            "limits",
            f"{risk.mode} limits exceeded: " + "; ".join(over),
            f"lower these in the config; {risk.mode} bounds: {attrs.asdict(limits)}",
        )
    return ok(
        "limits",
        f"{risk.mode} limits within bounds (risk/trade {risk.risk_per_trade}, "
        f"daily loss {risk.daily_loss_limit}, drawdown {risk.max_drawdown}, "
        f"{risk.max_trades_per_day} trades/day)",
    )


_INTEGRITY_SCRIPT = """
import sqlite3, sys
try:
    conn = sqlite3.connect("file:" + sys.argv[1] + "?mode=ro", uri=True, timeout=5)
    row = conn.execute("PRAGMA integrity_check").fetchone()
    print(row[0] if row else "no answer")
except sqlite3.Error as exc:
    print(type(exc).__name__ + ": " + str(exc))
"""


def _integrity(path: Path) -> str:
    """'ok' or SQLite's complaint, read-only so a running daemon is not disturbed.

    Run by root, the check runs as the file's owner: SQLite may create the
    -shm file of a WAL database, and one owned by root would lock the daemon out.
    """
    owner = path.stat()
    as_owner = os.geteuid() == 0 and owner.st_uid != 0
    proc = subprocess.run(
        [sys.executable, "-c", _INTEGRITY_SCRIPT, str(path)],
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
        user=owner.st_uid if as_owner else None,
        group=owner.st_gid if as_owner else None,
        extra_groups=[] if as_owner else None,
    )
    return proc.stdout.strip() or proc.stderr.strip()[-300:] or f"exit {proc.returncode}"


def check_state(state_dir: Path, live: bool) -> list[Check]:
    db = state_dir / DB_NAME
    if not state_dir.is_dir():
        return [
            ok("state", f"{state_dir} does not exist yet: a fresh start (systemd creates it)"),
            skip("backup", "no state database yet, nothing to back up"),
        ]
    if not db.is_file():
        return [
            ok("state", f"no {db} yet: a fresh start"),
            skip("backup", "no state database yet, nothing to back up"),
        ]
    verdict = _integrity(db)
    state = (
        ok("state", f"{db} passes integrity_check")
        if verdict == "ok"
        else fail(
            "state",
            f"{db} fails integrity_check: {verdict}",
            "stop the daemon and follow runbooks/state-database-corrupt.md (restore the newest "
            "good backup)",
        )
    )
    backups = sorted((state_dir / "backups").glob(f"{db.stem}-*{db.suffix}"), reverse=True)
    if not backups:
        where = f"no backup in {state_dir / 'backups'}"
        remedy = (
            "take one now: fractalctl backup (the daemon also writes one every "
            "daemon.backup_interval_s)"
        )
        # Real money is not traded without a verified backup; paper may start without one.
        if live:
            return [state, fail("backup", where, remedy)]
        return [state, skip("backup", f"{where} yet (required in live mode): {remedy}")]
    newest = backups[0]
    verdict = _integrity(newest)
    backup = (
        ok("backup", f"newest backup {newest.name} verified ({len(backups)} kept)")
        if verdict == "ok"
        else fail(
            "backup",
            f"newest backup {newest} fails integrity_check: {verdict}",
            "take a fresh one: fractalctl backup",
        )
    )
    return [state, backup]


def _credential_names(config: Config) -> list[str]:
    names = [
        config.broker.api_key_credential,
        config.broker.api_secret_credential,
        config.alerts.telegram_token_credential,
        config.broker.private_key_credential,
    ]
    return [n for n in names if n]


def check_credentials(config: Config, env: Mapping[str, str]) -> Check:
    names = _credential_names(config)
    if not names:
        if config.risk.mode == "live":
            return fail(
                "credentials",
                "live mode but no broker credentials configured",
                "set broker.api_key_credential and broker.api_secret_credential",
            )
        return ok("credentials", "none configured (paper trading needs none)")
    if env.get("CREDENTIALS_DIRECTORY"):  # under systemd: what the daemon will see
        where = Path(env["CREDENTIALS_DIRECTORY"])
        paths = {n: where / n for n in names}
        private_to_root = False
    else:
        where = Path(env.get("FRACTALD_CREDENTIALS_SOURCE", "/etc/fractald/credentials"))
        paths = {n: where / n.removeprefix(CREDENTIAL_PREFIX) for n in names}
        private_to_root = True
    problems = []
    for name, path in paths.items():
        try:
            info = path.stat()
            empty = path.read_bytes().strip() == b""
        except OSError as exc:
            problems.append(f"{name}: {path} cannot be read ({exc.strerror})")
            continue
        if empty:
            problems.append(f"{name}: {path} is empty")
        if private_to_root and (info.st_uid != 0 or stat.S_IMODE(info.st_mode) & 0o077):
            problems.append(
                f"{name}: {path} must be owned by root with mode 0600, is uid "
                f"{info.st_uid} mode {stat.S_IMODE(info.st_mode):04o}"
            )
    if problems:
        return fail(
            "credentials",
            "; ".join(problems),
            f"write each secret to {where}/<name> as root, chmod 0600 "
            "(runbooks/rotating-api-keys.md)",
        )
    return ok("credentials", f"{len(names)} present and private in {where}")


def check_strategies(config: Config) -> Check:
    from fractald.core.strategies import registry

    loaded, problems = [], []
    for name in config.strategies.enabled:
        try:
            registry.create(
                name,
                config.feed.symbols[0],
                config.strategies.timeframe,
                config.strategies.params.get(name),
            )
        except Exception as exc:  # noqa: BLE001 - a bad parameter is as red as an unknown name
            problems.append(f"{name}: {exc}")
        else:
            loaded.append(name)
    if problems:
        return fail(
            "strategies",
            "; ".join(problems),
            f"fix strategies.enabled / strategies.params; known: "
            f"{', '.join(sorted(registry.STRATEGIES))}",
        )
    if not loaded:
        return fail("strategies", "no strategy enabled", "list at least one in strategies.enabled")
    return ok("strategies", f"{len(loaded)} load: {', '.join(loaded)}")


class _Timex(ctypes.Structure):
    # struct timex from <sys/timex.h>; only `status` is read, the rest is room.
    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("padding", ctypes.c_byte * 256),
    ]


STA_UNSYNC = 0x0040


def kernel_clock_synchronised() -> bool | None:
    """The kernel's NTP state via adjtimex(2) (read-only); None when it cannot be asked."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        timex = _Timex()
        state = libc.adjtimex(ctypes.byref(timex))
    except (OSError, AttributeError):
        return None
    if state < 0:
        return None
    return state != 5 and not timex.status & STA_UNSYNC  # 5 = TIME_ERROR


def check_clock(config: Config, synchronised: Callable[[], bool | None]) -> Check:
    if config.feed.venue == "replay":
        return skip("clock", "replay feed: event times come from the data, not the clock")
    state = synchronised()
    if state is None:
        return skip("clock", "cannot read the kernel's NTP state on this host")
    if not state:
        return fail(
            "clock",
            "the system clock is not NTP-synchronised",
            "apt-get install systemd-timesyncd (or chrony); timedatectl set-ntp true; "
            "check: timedatectl show -p NTPSynchronized",
        )
    return ok("clock", "NTP-synchronised")


def check_disk(state_dir: Path, minimum: int = MIN_FREE_BYTES) -> Check:
    probe = state_dir
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    usage = shutil.disk_usage(probe)
    free_gib = usage.free / (1 << 30)
    if usage.free < minimum:
        return fail(
            "disk",
            f"{free_gib:.2f} GiB free on the filesystem of {state_dir}",
            f"free at least {minimum / (1 << 30):.1f} GiB (journalctl --vacuum-size, "
            "old releases under /opt/fractald/releases, old backups)",
        )
    return ok("disk", f"{free_gib:.1f} GiB free on the filesystem of {state_dir}")


def _writable_by(directory: Path, user: str) -> bool:
    """Whether `user` (by name) may create files in `directory`, by its owner, group and mode."""
    import grp
    import pwd

    entry = pwd.getpwnam(user)
    gids = {entry.pw_gid} | {g.gr_gid for g in grp.getgrall() if user in g.gr_mem}
    st = directory.stat()
    if st.st_uid == entry.pw_uid:
        return bool(st.st_mode & stat.S_IWUSR)
    if st.st_gid in gids:
        return bool(st.st_mode & stat.S_IWGRP)
    return bool(st.st_mode & stat.S_IWOTH)


def check_metrics(config: Config, env: Mapping[str, str]) -> Check:
    """The textfile for node_exporter: a *.prom file in a directory the service user can
    write, node_exporter can read, and the unit's sandbox lets the daemon write
    ($FRACTALD_WRITABLE_PATHS, colon-separated, as the role sets it from the unit).
    Run by root for the service (Ansible), $FRACTALD_SERVICE_USER names whose access counts."""
    if not config.metrics.textfile_path:
        return skip("metrics", "no [metrics] textfile_path: no metrics file for node_exporter")
    path = Path(config.metrics.textfile_path)
    if path.suffix != ".prom":
        return fail(
            "metrics",
            f"{path}: node_exporter's textfile collector reads only *.prom",
            "name the file NAME.prom",
        )
    directory = path.parent
    if not directory.is_dir():
        return fail(
            "metrics",
            f"{directory} does not exist",
            "create it (the Ansible role makes /var/lib/fractald-metrics, 0755 "
            "fractald) or point [metrics] textfile_path at an existing directory",
        )
    writable = [Path(p) for p in env.get("FRACTALD_WRITABLE_PATHS", "").split(":") if p]
    if writable and not any(directory == w or w in directory.parents for w in writable):
        return fail(
            "metrics",
            f"{directory} is read-only for the daemon under its unit "
            f"(ProtectSystem=strict; writable: {', '.join(map(str, writable))})",
            "use /var/lib/fractald-metrics/NAME.prom (the role links it into "
            "node_exporter's directory) or add a ReadWritePaths= drop-in",
        )
    user = env.get("FRACTALD_SERVICE_USER", "")
    try:
        can_write = _writable_by(directory, user) if user else os.access(directory, os.W_OK)
    except KeyError:
        return fail(
            "metrics",
            f"no user {user!r} on this host",
            "create the service user (the role does) or set FRACTALD_SERVICE_USER",
        )
    if not can_write:
        return fail(
            "metrics",
            f"{user or 'this user'} cannot write in {directory}",
            f"chown {user or 'the service user'} {directory} (mode 0755)",
        )
    if directory.stat().st_mode & (stat.S_IROTH | stat.S_IXOTH) != stat.S_IROTH | stat.S_IXOTH:
        return fail(
            "metrics",
            f"node_exporter (another user) cannot read {directory}",
            f"chmod o+rx {directory}",
        )
    return ok(
        "metrics", f"{path} is writable by {user or 'this user'} and readable by node_exporter"
    )


def host_online() -> bool:
    """True when the host has a default route (IPv4 or IPv6): otherwise a probe is pointless."""
    try:
        for line in Path("/proc/net/route").read_text().splitlines()[1:]:
            fields = line.split()
            if len(fields) > 2 and fields[1] == "00000000" and fields[0] != "lo":
                return True
        for line in Path("/proc/net/ipv6_route").read_text().splitlines():
            fields = line.split()
            if fields and fields[0] == "0" * 32 and fields[1] == "00" and fields[-1] != "lo":
                return True
    except OSError:
        return True  # cannot tell: probe and let the probe decide
    return False


def probe(url: str, timeout_s: float = PROBE_TIMEOUT_S) -> str | None:
    """None when `url` answers HTTP at all (any status), else why not."""
    import httpx

    try:
        httpx.get(url, timeout=timeout_s, follow_redirects=False)
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def check_venue(
    config: Config, online: Callable[[], bool], probe_url: Callable[[str], str | None] = probe
) -> Check:
    if config.feed.venue == "replay":
        return skip("venue", "replay feed: no venue to reach")
    url = venue_url(config)
    if not url:
        return fail(
            "venue", f"no REST URL known for venue {config.feed.venue!r}", "set feed.rest_url"
        )
    is_loopback = url.split("://", 1)[-1].startswith(("127.", "localhost", "[::1]"))
    if not is_loopback and not online():
        return skip(
            "venue",
            f"host is offline (no default route): {url} not probed; "
            "run preflight again once the network is up",
        )
    problem = probe_url(url)
    if problem:
        return fail(
            "venue",
            f"{url} unreachable: {problem}",
            "check DNS and the firewall (outbound 443), and the venue's status page; "
            "runbooks/feed-stale-or-flapping.md",
        )
    return ok("venue", f"{url} answers")


def check_broker(config: Config, host: Environment) -> Check:
    """A venue broker's account as the venue sees it: key, symbols, margin, leverage, margin type."""
    import trio

    from fractald.errors import FractalError
    from fractald.venues import binance_config

    if binance_config.market_of(config) is None:
        return skip("broker", f"broker {config.broker.kind!r}: no venue account to check")
    url = binance_config.urls(config).rest_url
    if not url.split("://", 1)[-1].startswith(("127.", "localhost", "[::1]")) and not host.online():
        return skip("broker", f"host is offline: {url} not asked")
    env, broker = dict(host.env), config.broker
    if not env.get("CREDENTIALS_DIRECTORY"):  # outside systemd: the files LoadCredential= reads
        env["CREDENTIALS_DIRECTORY"] = env.get(
            "FRACTALD_CREDENTIALS_SOURCE", "/etc/fractald/credentials"
        )
        broker = attrs.evolve(
            broker,
            api_key_credential=broker.api_key_credential.removeprefix(CREDENTIAL_PREFIX),
            api_secret_credential=broker.api_secret_credential.removeprefix(CREDENTIAL_PREFIX),
        )
    try:
        venue = binance_config.build_venue(attrs.evolve(config, broker=broker), env)
    except FractalError as exc:
        return fail("broker", exc.message, "runbooks/binance-auth-refused.md")
    findings = trio.run(binance_config.preflight_findings, venue)
    if findings:
        return fail(
            "broker",
            "; ".join(findings),
            "see runbooks/binance-auth-refused.md for key errors; leverage and margin "
            "type are set by the daemon at start",
        )
    return ok(
        "broker",
        f"{config.broker.kind} {config.broker.network} at {url}: key works, symbols "
        "trade, margin available, leverage and margin type as configured",
    )


# --------------------------------------------------------------------------- running


@attrs.frozen
class Environment:
    """What the checks read from the host; tests build their own."""

    env: Mapping[str, str]
    clock: Callable[[], bool | None] = kernel_clock_synchronised
    online: Callable[[], bool] = host_online
    probe_url: Callable[[str], str | None] = probe


def state_dir_for(config: Config, env: Mapping[str, str]) -> Path:
    return Path(
        config.daemon.state_dir or env.get("STATE_DIRECTORY", "").split(":")[0] or "./state"
    )


def run_checks(config_path: str | None, host: Environment) -> list[Check]:
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        return [
            fail(
                "config",
                "; ".join(exc.problems),
                f"fix the file, then: fractald check-config {config_path or ''}".rstrip(),
            )
        ]
    source = config_path or "(embedded default)"
    checks = [ok("config", f"{source} is valid ({config.risk.mode}, venue {config.feed.venue})")]
    state_dir = state_dir_for(config, host.env)
    checks.append(check_limits(config))
    checks.extend(check_state(state_dir, config.risk.mode == "live"))
    checks.append(check_credentials(config, host.env))
    checks.append(check_strategies(config))
    checks.append(check_clock(config, host.clock))
    checks.append(check_disk(state_dir))
    checks.append(check_metrics(config, host.env))
    if config.feed.venue == "ibkr":
        from fractald.venues.ibkr_feed_preflight import preflight_checks as ibkr_feed_checks

        checks.extend(ibkr_feed_checks(config, host.online))
    else:
        checks.append(check_venue(config, host.online, host.probe_url))
        from fractald.venue_preflight import check_clock_skew, check_symbols

        checks.append(check_symbols(config, host.online))
        checks.append(check_clock_skew(config, host.online))
    if config.broker.kind == "hyperliquid":
        from fractald.venues.hyperliquid_preflight import preflight_checks

        checks.extend(preflight_checks(config, host.env, host.online))
    elif config.broker.kind == "ibkr":
        from fractald.venues.ibkr_config import preflight_check

        checks.append(preflight_check(config, host.online))
    elif config.broker.kind != "paper":
        checks.append(check_broker(config, host))
    wanted_skips = {s.strip() for s in host.env.get("FRACTALD_PREFLIGHT_SKIP", "").split(",")}
    return [
        skip(c.name, f"skipped by FRACTALD_PREFLIGHT_SKIP (was: {c.status.value}: {c.detail})")
        if c.name in wanted_skips
        else c
        for c in checks
    ]


def exit_status(checks: Sequence[Check]) -> int:
    if any(c.name == "config" and c.status is Status.FAIL for c in checks):
        return int(ExitStatus.CONFIG)
    return 1 if any(c.status is Status.FAIL for c in checks) else 0


_MARK = {Status.OK: "[ ok ]", Status.FAIL: "[FAIL]", Status.SKIP: "[skip]"}
_COLOUR = {Status.OK: "\x1b[32m", Status.FAIL: "\x1b[31m", Status.SKIP: "\x1b[33m"}


def render_text(checks: Sequence[Check], colour: bool) -> str:
    lines = []
    for c in checks:
        mark = f"{_COLOUR[c.status]}{_MARK[c.status]}\x1b[0m" if colour else _MARK[c.status]
        lines.append(f"{mark} {c.name:<12} {c.detail}")
        if c.status is Status.FAIL:
            lines.append(f"{'':7}{'':12} -> {c.remedy}")
    red = sum(c.status is Status.FAIL for c in checks)
    lines.append(f"preflight: {'FAILED, ' + str(red) + ' red' if red else 'all clear'}")
    return "\n".join(lines)


def _masked(check: Check) -> Check:
    """A check safe to print: URL passwords and query values masked, registered secrets too."""
    from fractald.logs import redact_url, redactor

    return attrs.evolve(
        check,
        detail=redactor.redact(redact_url(check.detail)),
        remedy=redactor.redact(redact_url(check.remedy)),
    )


def run_preflight(config_path: str | None, as_json: bool) -> int:
    """Run every check, print them (text or JSON), return the exit status."""
    checks = [_masked(c) for c in run_checks(config_path, Environment(env=os.environ))]
    status = exit_status(checks)
    if as_json:
        print(
            json.dumps(
                {"ok": status == 0, "exit_status": status, "checks": [c.as_dict() for c in checks]},
                indent=2,
            )
        )
    else:
        from fractald.logs import colors_wanted

        print(render_text(checks, colour=colors_wanted(sys.stdout)))
    return status


def add_preflight_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="TOML config file (default: the embedded one)")
    parser.add_argument("--json", action="store_true", help="print the checks as JSON")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="fractald preflight", description="the deployment checklist before trading"
    )
    add_preflight_arguments(parser)
    args = parser.parse_args(argv)
    return run_preflight(args.config, args.json)


if __name__ == "__main__":
    sys.exit(main())


__all__ = [
    "Check",
    "Environment",
    "Status",
    "add_preflight_arguments",
    "run_checks",
    "run_preflight",
]
