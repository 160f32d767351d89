"""`fractald preflight`: every check goes red on the problem it exists for, green otherwise.

Real files, real SQLite databases, a real HTTP server on 127.0.0.1 for the
venue probe; no real venue is ever contacted (non-loopback URLs are only used
with the host declared offline, where nothing is probed).
"""

from __future__ import annotations

import http.server
import json
import os
import socket
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fractald.config import Config, StrategiesConfig
from fractald.preflight import Environment, Status, check_strategies, exit_status, run_checks

REPO = Path(__file__).resolve().parent.parent
CLI = "import sys; from fractald.preflight import main; sys.exit(main(sys.argv[1:]))"


# live mode needs a real broker: the venue's address is loopback, and with no key file
# the Hyperliquid checks stop before any request
LIVE_BROKER = ("[broker]\nkind = 'hyperliquid'\naccount_address = '0x" + "11" * 20 + "'\n"
               "private_key_credential = 'hl-agent'\nrest_url = 'http://127.0.0.1:9'\n"
               "ws_url = 'ws://127.0.0.1:9/ws'\n")

def write_config(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def checks_by_name(config: str | None, env: dict[str, str], **host: Any) -> dict[str, Any]:
    checks = run_checks(config, Environment(env=env, **host))
    return {c.name: c for c in checks}


def make_db(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    conn.execute("create table t (x integer)")
    conn.executemany("insert into t values (?)", [(i,) for i in range(2000)])
    conn.commit()
    conn.close()


def corrupt(path: Path) -> None:
    data = bytearray(path.read_bytes())
    for offset in range(4096, len(data), 97):  # beyond the header: damage the b-tree pages
        data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.fixture
def state(tmp_path: Path) -> dict[str, str]:
    return {"STATE_DIRECTORY": str(tmp_path / "state")}


def test_default_config_on_a_fresh_host_is_all_clear(state: dict[str, str]) -> None:
    checks = run_checks(None, Environment(env=state))
    assert [c.name for c in checks] == ["config", "limits", "state", "backup", "credentials",
                                        "strategies", "clock", "disk", "metrics", "venue", "symbols", "venue_clock"]
    assert not [c for c in checks if c.status is Status.FAIL]
    assert exit_status(checks) == 0


def test_invalid_config_is_red_with_exit_78(tmp_path: Path, state: dict[str, str]) -> None:
    cfg = write_config(tmp_path / "bad.toml", "[risk]\nrisk_per_trade = 7\n")
    checks = run_checks(cfg, Environment(env=state))
    assert checks[0].name == "config" and checks[0].status is Status.FAIL
    assert "risk_per_trade" in checks[0].detail and "check-config" in checks[0].remedy
    assert exit_status(checks) == 78


@pytest.mark.parametrize(("text", "red"), [
    ("[risk]\nmode = 'paper'\nrisk_per_trade = 0.02\n", False),
    ("[risk]\nmode = 'live'\nrisk_per_trade = 0.02\n" + LIVE_BROKER, True),  # stricter for live
    ("[risk]\ndaily_loss_limit = 0.25\nmax_drawdown = 0.2\n", True),
    ("[risk]\nmode = 'live'\n[daemon]\ntest_hooks = true\n" + LIVE_BROKER, True),
    ("[risk]\nmax_trades_per_day = 500\n", True),
])
def test_safety_limits(tmp_path: Path, state: dict[str, str], text: str, red: bool) -> None:
    check = checks_by_name(write_config(tmp_path / "c.toml", text), state)["limits"]
    assert (check.status is Status.FAIL) is red, check
    if red:
        assert check.remedy


def test_state_database_and_backup(tmp_path: Path, state: dict[str, str]) -> None:
    state_dir = Path(state["STATE_DIRECTORY"])
    make_db(state_dir / "fractald.db")
    live = write_config(tmp_path / "live.toml", "[risk]\nmode = 'live'\n" + LIVE_BROKER)
    found = checks_by_name(None, state)
    assert found["state"].status is Status.OK
    assert found["backup"].status is Status.SKIP  # paper may start before its first backup
    assert checks_by_name(live, state)["backup"].status is Status.FAIL  # live may not

    make_db(state_dir / "backups" / "fractald-20261123T100000000000Z.db")
    assert checks_by_name(live, state)["backup"].status is Status.OK

    make_db(state_dir / "backups" / "fractald-20261123T110000000000Z.db")
    corrupt(state_dir / "backups" / "fractald-20261123T110000000000Z.db")  # the newest
    assert checks_by_name(live, state)["backup"].status is Status.FAIL

    corrupt(state_dir / "fractald.db")
    check = checks_by_name(None, state)["state"]
    assert check.status is Status.FAIL and "state-database-corrupt.md" in check.remedy


def _credentials_config(tmp_path: Path, mode: str = "paper") -> str:
    return write_config(tmp_path / "cred.toml", f"[risk]\nmode = '{mode}'\n[broker]\n"
                        "api_key_credential = 'venue_api_key'\n"
                        "api_secret_credential = 'venue_api_secret'\n")


def test_credentials_from_the_root_only_source(tmp_path: Path, state: dict[str, str]) -> None:
    source = tmp_path / "credentials"
    source.mkdir()
    env = {**state, "FRACTALD_CREDENTIALS_SOURCE": str(source)}
    cfg = _credentials_config(tmp_path)
    check = checks_by_name(cfg, env)["credentials"]
    assert check.status is Status.FAIL and "api_key" in check.detail  # missing

    for name in ("api_key", "api_secret"):
        (source / name).write_text("k3y-material-123\n")
        (source / name).chmod(0o600)
    expected = Status.OK if os.geteuid() == 0 else Status.FAIL  # must be root-owned
    assert checks_by_name(cfg, env)["credentials"].status is expected

    (source / "api_secret").chmod(0o644)
    check = checks_by_name(cfg, env)["credentials"]
    assert check.status is Status.FAIL and "0600" in check.detail

    (source / "api_secret").chmod(0o600)
    (source / "api_secret").write_text("  \n")
    check = checks_by_name(cfg, env)["credentials"]
    assert check.status is Status.FAIL and "empty" in check.detail


def test_credentials_under_systemd_and_live_without_any(tmp_path: Path,
                                                        state: dict[str, str]) -> None:
    creds = tmp_path / "run-credentials"
    creds.mkdir()
    (creds / "venue_api_key").write_text("k3y-material-123")
    env = {**state, "CREDENTIALS_DIRECTORY": str(creds)}
    check = checks_by_name(_credentials_config(tmp_path), env)["credentials"]
    assert check.status is Status.FAIL and "venue_api_secret" in check.detail
    (creds / "venue_api_secret").write_text("s3cret-material-456")
    assert checks_by_name(_credentials_config(tmp_path), env)["credentials"].status is Status.OK

    live = write_config(tmp_path / "live.toml", "[risk]\nmode = 'live'\n" + LIVE_BROKER)
    assert checks_by_name(live, state)["credentials"].status is Status.FAIL


def test_unknown_strategy_is_red(tmp_path: Path, state: dict[str, str]) -> None:
    cfg = write_config(tmp_path / "s.toml", "[strategies]\nenabled = ['fvg_fill', 'astrology']\n")
    checks = run_checks(cfg, Environment(env=state))
    red = [c for c in checks if c.status is Status.FAIL]
    assert red and "astrology" in red[0].detail and exit_status(checks) != 0
    # The check itself, on a config built without the loader's validation:
    config = Config(strategies=StrategiesConfig(enabled=["fvg_fill", "astrology"]))
    check = check_strategies(config)
    assert check.status is Status.FAIL and "astrology" in check.detail
    assert "fvg_fill" in check.remedy  # names the known ones
    assert check_strategies(Config()).status is Status.OK


@pytest.mark.parametrize(("synced", "expected"), [(True, Status.OK), (False, Status.FAIL),
                                                   (None, Status.SKIP)])
@pytest.mark.slow  # over a second: out of the fast suite (issue 16)
def test_clock_matters_for_a_live_feed(tmp_path: Path, state: dict[str, str],
                                       synced: bool | None, expected: Status) -> None:
    cfg = write_config(tmp_path / "c.toml", "[feed]\nvenue = 'hyperliquid'\nsymbols = ['BTC']\n"
                       "rest_url = 'http://127.0.0.1:9'\n")
    check = checks_by_name(cfg, state, clock=lambda: synced, online=lambda: False)["clock"]
    assert check.status is expected
    replay = checks_by_name(None, state, clock=lambda: False)["clock"]
    assert replay.status is Status.SKIP  # replay takes its times from the data


@pytest.fixture
def http_server() -> Iterator[str]:
    class Quiet(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(404)  # any HTTP answer means reachable
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow  # over a second: out of the fast suite (issue 16)
def test_venue_probe(tmp_path: Path, state: dict[str, str], http_server: str) -> None:
    reachable = write_config(tmp_path / "up.toml",
                             f"[feed]\nvenue = 'binance'\nsymbols = ['BTCUSDT']\nrest_url = '{http_server}'\n")
    assert checks_by_name(reachable, state)["venue"].status is Status.OK

    down = write_config(tmp_path / "down.toml", "[feed]\nvenue = 'binance'\nsymbols = ['BTCUSDT']\n"
                        f"rest_url = 'http://127.0.0.1:{_closed_port()}'\n")
    check = checks_by_name(down, state)["venue"]
    assert check.status is Status.FAIL and "unreachable" in check.detail


def test_venue_probe_is_skipped_offline(tmp_path: Path, state: dict[str, str]) -> None:
    probed: list[str] = []
    cfg = write_config(tmp_path / "v.toml", "[feed]\nvenue = 'hyperliquid-testnet'\nsymbols = ['BTC']\n")
    check = checks_by_name(cfg, state, online=lambda: False,
                           probe_url=lambda url: probed.append(url))["venue"]
    assert check.status is Status.SKIP and "offline" in check.detail
    assert probed == []  # nothing contacted
    assert "hyperliquid-testnet" in check.detail  # names the URL it would have probed


def test_disk_space_floor(tmp_path: Path) -> None:
    from fractald.preflight import check_disk

    assert check_disk(tmp_path, minimum=1).status is Status.OK
    check = check_disk(tmp_path / "not-yet", minimum=1 << 62)
    assert check.status is Status.FAIL and "GiB free" in check.detail


def test_skip_list_from_the_environment(tmp_path: Path, state: dict[str, str]) -> None:
    live = write_config(tmp_path / "live.toml", "[risk]\nmode = 'live'\n" + LIVE_BROKER)
    env = {**state, "FRACTALD_PREFLIGHT_SKIP": "credentials"}
    check = checks_by_name(live, env)["credentials"]
    assert check.status is Status.SKIP and "was: fail" in check.detail


@pytest.mark.slow  # over a second: out of the fast suite (issue 16)
def test_cli_json_and_exit_status(tmp_path: Path, state: dict[str, str]) -> None:
    bad = write_config(tmp_path / "live.toml", "[risk]\nmode = 'live'\n" + LIVE_BROKER)
    env = {**os.environ, **state}
    proc = subprocess.run([sys.executable, "-c", CLI, "--config", bad, "--json"], check=False,
                          capture_output=True, text=True, env=env, timeout=120, cwd=REPO)
    report = json.loads(proc.stdout)
    assert proc.returncode == 1 and report["ok"] is False and report["exit_status"] == 1
    red = {c["name"] for c in report["checks"] if c["status"] == "fail"}
    assert red == {"credentials", "hl_key"}  # the agent key file is missing too

    proc = subprocess.run([sys.executable, "-c", CLI], check=False,
                          capture_output=True, text=True, env=env, timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stdout
    assert proc.stdout.strip().endswith("preflight: all clear")


# --------------------------------------------------------------------------- metrics path


def test_metrics_path_is_skipped_when_off_and_green_when_usable(
        tmp_path: Path, state: dict[str, str]) -> None:
    assert checks_by_name(None, state)["metrics"].status is Status.SKIP
    directory = tmp_path / "metrics"
    directory.mkdir(mode=0o755)
    directory.chmod(0o755)
    config = write_config(tmp_path / "m.toml", f'[metrics]\ntextfile_path = "{directory}/a.prom"\n')
    env = {**state, "FRACTALD_WRITABLE_PATHS": f"/nowhere:{directory}"}
    check = checks_by_name(config, env)["metrics"]
    assert check.status is Status.OK, check


@pytest.mark.parametrize(("name", "mode", "writable", "problem"), [
    ("a.txt", 0o755, None, "reads only *.prom"),
    ("missing/a.prom", 0o755, None, "does not exist"),
    ("a.prom", 0o755, "/var/lib/fractald-metrics", "read-only for the daemon under its unit"),
    ("a.prom", 0o750, None, "node_exporter (another user) cannot read"),
])
def test_metrics_path_problems_are_red(tmp_path: Path, state: dict[str, str], name: str,
                                       mode: int, writable: str | None, problem: str) -> None:
    directory = tmp_path / "metrics"
    directory.mkdir()
    directory.chmod(mode)
    config = write_config(tmp_path / "m.toml",
                          f'[metrics]\ntextfile_path = "{directory}/{name}"\n')
    env = {**state, **({"FRACTALD_WRITABLE_PATHS": writable} if writable else {})}
    check = checks_by_name(config, env)["metrics"]
    assert check.status is Status.FAIL and problem in check.detail, check
    assert check.remedy


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to judge another user's access")
def test_metrics_directory_must_be_writable_by_the_service_user(
        tmp_path: Path, state: dict[str, str]) -> None:
    directory = tmp_path / "metrics"
    directory.mkdir()
    directory.chmod(0o755)  # root's: nobody else may write
    config = write_config(tmp_path / "m.toml", f'[metrics]\ntextfile_path = "{directory}/a.prom"\n')
    check = checks_by_name(config, {**state, "FRACTALD_SERVICE_USER": "nobody"})["metrics"]
    assert check.status is Status.FAIL and "nobody cannot write" in check.detail
    os.chown(directory, 65534, -1)
    check = checks_by_name(config, {**state, "FRACTALD_SERVICE_USER": "nobody"})["metrics"]
    assert check.status is Status.OK, check
    check = checks_by_name(config, {**state, "FRACTALD_SERVICE_USER": "no-such-user-x"})["metrics"]
    assert check.status is Status.FAIL and "no user" in check.detail
