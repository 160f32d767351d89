"""End-to-end: the real playbook deploys fractald into a booted Debian 12 with a real systemd.

The tests run in file order against one container (module-scoped fixture):
deploy, idempotence, unit checks, then the failure drills (kill -9, a wedged
event loop, a clean stop, a broken config). Needs root; skips elsewhere.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import deploy_helpers as dh
import nspawn_machine as nm
import pytest

pytestmark = pytest.mark.e2e

UNIT = "fractald.service"
CONFIG = "/etc/fractald/fractald.toml"
SOCKET = "/run/fractald/control.sock"
FRACTALCTL = "/usr/local/bin/fractalctl"
SECURITY_LIMIT = 2.0
# The config the test deploys: the bundled replay (no network), frequent
# snapshots so a kill -9 has state to recover, and the test-only control hooks.
E2E_CONFIG: dict[str, Any] = {
    "daemon": {"test_hooks": True, "snapshot_interval_s": 2.0, "backup_interval_s": 10.0},
    "feed": {"venue": "replay", "replay_speed": 3000.0},
    "broker": {"api_key_credential": "venue_api_key"},
    "log": {"format": "json", "level": "info"},
}
E2E_CREDENTIALS = {"api_key": "e2e-not-a-real-key"}
# A second bot on the same host, deployed by the role (fractald_instances), and a login
# account the role makes an operator (fractald_operators); "bob" is a login that is not.
INSTANCE = "b"
INSTANCE_CREDENTIALS = {"api_key": "e2e-b-not-a-real-key"}
# Slower replay: the second bot only has to be alive, and the host has two cores.
INSTANCE_CONFIG = {**E2E_CONFIG, "feed": {"venue": "replay", "replay_speed": 300.0}}
OPERATOR, STRANGER = "alice", "bob"
NODE_EXPORTER_URL = "http://127.0.0.1:9100/metrics"


@attrs.define
class Deployment:
    machine: nm.Machine
    workdir: Path
    inventory: Path
    extra_vars: dict[str, Any]
    first_run: tuple[int, str, dict[str, int]]

    def require_deployed(self) -> None:
        """Fail at once (not after every timeout) when the first deployment already failed."""
        rc, output, _ = self.first_run
        if rc != 0:
            pytest.fail(f"the first playbook run failed ({rc}); its end:\n{output[-3000:]}")

    def sh(self, *cmd: str, check: bool = True, timeout: float = 120) -> str:
        return self.machine.run(list(cmd), check=check, timeout=timeout).stdout

    def show(self, *props: str) -> dict[str, str]:
        out = self.sh("systemctl", "show", UNIT, *(f"--property={p}" for p in props))
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def status(self) -> dict[str, Any]:
        return json.loads(self.sh(FRACTALCTL, "--json", "status"))  # type: ignore[no-any-return]

    def wait_for(self, what: str, predicate: Any, timeout: float = 90, every: float = 0.5) -> Any:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            try:
                last = predicate()
            except Exception as exc:  # noqa: BLE001 - the daemon may be between processes
                last = exc
            else:
                if last:
                    return last
            time.sleep(every)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}\n"
                             f"{self.journal_tail()}")

    def wait_ready(self, timeout: float = 120) -> dict[str, Any]:
        def ready() -> dict[str, Any] | None:
            status = self.status()
            return status if status["daemon"]["ready"] else None
        return self.wait_for("fractalctl status to report ready", ready, timeout)  # type: ignore[no-any-return]

    def journal(self, *extra: str) -> str:
        return self.sh("journalctl", "-u", UNIT, "--no-pager", *extra)

    def journal_tail(self) -> str:
        try:
            return self.journal("-n", "40")
        except Exception as exc:  # noqa: BLE001 - diagnostics only
            return f"(no journal: {exc})"

    def control(self, cmd: str, args: dict[str, Any], timeout: float = 5) -> str:
        """Send one raw JSON-lines request to the control socket (commands fractalctl lacks)."""
        request = json.dumps({"id": 1, "cmd": cmd, "args": args})
        script = (
            "import socket,sys\n"
            "s=socket.socket(socket.AF_UNIX)\n"
            f"s.settimeout({timeout})\n"
            f"s.connect({SOCKET!r})\n"
            f"s.sendall({request!r}.encode()+b'\\n')\n"
            "try:\n print(s.recv(65536).decode())\n"
            "except OSError as e:\n print('no reply:', e)\n"
        )
        return self.sh("python3", "-c", script, check=False, timeout=timeout + 30)


def _unavailable() -> str | None:
    reason = nm.unavailable_reason()
    if reason:
        return reason
    if dh.venv_tool("ansible-playbook") is None:
        return "ansible-playbook not installed (pip install ansible-core)"
    return None


def _preflight_available() -> bool:
    """Whether this tree has `fractald preflight` (the role runs it before every start)."""
    return (dh.REPO / "fractald" / "preflight.py").is_file()


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    reason = _unavailable()
    if reason:
        pytest.skip(f"e2e systemd test skipped: {reason}")
    try:
        nm.ensure_host_tools()
    except nm.MachineError as exc:
        pytest.skip(f"e2e systemd test skipped: cannot install debootstrap/systemd-container: {exc}")
    workdir = tmp_path_factory.mktemp("e2e")
    version = dh.build_release(nm.CACHE_DIR / "dist")
    key, public = dh.make_ssh_key(workdir)
    try:
        machine = nm.Machine.create()
    except nm.MachineError as exc:
        pytest.skip(f"e2e systemd test skipped: systemd-nspawn cannot boot a container here: {exc}")
    try:
        machine.authorize_ssh_key(public)
        for user in (OPERATOR, STRANGER):  # login accounts exist before the play
            machine.run(["useradd", "--create-home", "--shell", "/bin/bash", user])
        # Debian's node_exporter (in the image) reads /var/lib/prometheus/node-exporter.
        machine.run(["systemctl", "enable", "--now", "prometheus-node-exporter.service"])
        inventory = workdir / "inventory.json"
        dh.write_inventory(inventory, machine.guest_ip, key)
        extra_vars = {
            "fractald_version": version,
            "fractald_release_src": str(nm.CACHE_DIR / "dist" / version),
            "fractald_config": E2E_CONFIG,
            "fractald_credentials": E2E_CREDENTIALS,
            "fractald_preflight": _preflight_available(),
            "fractald_instances": [{"name": INSTANCE, "config": INSTANCE_CONFIG,
                                    "credentials": INSTANCE_CREDENTIALS}],
            "fractald_operators": [OPERATOR],
        }
        first = dh.run_playbook(inventory, extra_vars, workdir)
        yield Deployment(machine, workdir, inventory, extra_vars, first)
    finally:
        dh.close_ssh_masters(workdir)
        machine.destroy(report=workdir / "shutdown.log")


def test_playbook_deploys_onto_a_fresh_host(deployment: Deployment) -> None:
    rc, output, recap = deployment.first_run
    assert rc == 0, output[-6000:]
    assert recap["failed"] == 0 and recap["unreachable"] == 0
    assert recap["changed"] > 0  # a fresh host: something must have been done


def test_second_playbook_run_changes_nothing(deployment: Deployment) -> None:
    deployment.require_deployed()
    rc, output, recap = dh.run_playbook(deployment.inventory, deployment.extra_vars,
                                        deployment.workdir)
    assert rc == 0, output[-6000:]
    assert recap["changed"] == 0, f"changed tasks: {dh.changed_tasks(output)}"


def test_release_layout_and_offline_install(deployment: Deployment) -> None:
    deployment.require_deployed()
    version = deployment.extra_vars["fractald_version"]
    assert deployment.sh("readlink", "/opt/fractald/current").strip() == \
        f"/opt/fractald/releases/{version}"
    assert version in deployment.sh("/opt/fractald/current/venv/bin/fractald", "version")
    # The host has no route out (only the /30 to the controller), so the install that
    # just happened was offline, from the copied wheelhouse; pip needs no index for it.
    assert "default" not in deployment.sh("ip", "route")
    out = deployment.sh("/opt/fractald/current/venv/bin/pip", "install", "--no-index",
                        "--find-links", f"/opt/fractald/releases/{version}/wheels",
                        f"fractald=={version}")
    assert "already satisfied" in out


def test_files_are_owned_and_private(deployment: Deployment) -> None:
    deployment.require_deployed()
    stat = deployment.sh("stat", "-c", "%n %U %G %a", CONFIG, "/etc/fractald/credentials",
                         "/etc/fractald/credentials/api_key", "/var/lib/fractald")
    lines = dict(line.split(" ", 1) for line in stat.splitlines())
    assert lines[CONFIG] == "root fractald 640"
    assert lines["/etc/fractald/credentials"] == "root root 700"
    assert lines["/etc/fractald/credentials/api_key"] == "root root 600"
    assert lines["/var/lib/fractald"].startswith("fractald fractald")
    # The service user cannot read the originals; systemd hands the daemon its own copy.
    denied = deployment.machine.run(["runuser", "-u", "fractald", "--", "cat",
                                     "/etc/fractald/credentials/api_key"], check=False)
    assert denied.returncode != 0 and "Permission denied" in denied.stderr
    copy = deployment.sh("cat", "/run/credentials/fractald.service/venue_api_key")
    assert copy == E2E_CREDENTIALS["api_key"]


def test_preflight_on_the_host_is_green(deployment: Deployment) -> None:
    deployment.require_deployed()
    deployment.wait_for("a backup", lambda: deployment.sh(
        "ls", "/var/lib/fractald/backups").strip(), timeout=60)
    proc = deployment.machine.run(
        ["env", "STATE_DIRECTORY=/var/lib/fractald",
         "FRACTALD_CREDENTIALS_SOURCE=/etc/fractald/credentials",
         "FRACTALD_SERVICE_USER=fractald",
         "FRACTALD_WRITABLE_PATHS=/var/lib/fractald:/run/fractald:/var/lib/fractald-metrics",
         "/usr/local/bin/fractald", "preflight", "--config", CONFIG, "--json"], check=False)
    report = json.loads(proc.stdout)
    checks = {c["name"]: c for c in report["checks"]}
    assert proc.returncode == 0 and report["ok"], proc.stdout
    for name in ("config", "limits", "state", "backup", "credentials", "strategies", "disk",
                 "metrics"):
        assert checks[name]["status"] == "ok", checks[name]
    assert checks["venue"]["status"] == "skipped"  # replay: nothing to reach


def test_units_verify_clean(deployment: Deployment) -> None:
    # Units are installed before the start, so this holds even when the start failed.
    proc = deployment.machine.run(["systemd-analyze", "verify",
                                   "/etc/systemd/system/fractald.service",
                                   "/etc/systemd/system/fractald@.service"], check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == "" and proc.stderr.strip() == "", proc.stdout + proc.stderr


@pytest.mark.parametrize("unit", ["fractald.service", "fractald@e2e.service"])
def test_unit_security_exposure_is_ok(deployment: Deployment, unit: str) -> None:
    # Units are installed before the start, so this holds even when the start failed.
    out = deployment.sh("systemd-analyze", "security", "--no-pager", unit)
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+) (\w+)", out)
    assert match, out[-2000:]
    assert float(match.group(1)) <= SECURITY_LIMIT, out


def test_unit_is_active_and_ready(deployment: Deployment) -> None:
    deployment.require_deployed()
    props = deployment.show("ActiveState", "SubState", "Type", "NotifyAccess", "WatchdogUSec",
                            "StatusText", "UnitFileState")
    assert props["ActiveState"] == "active" and props["SubState"] == "running", props
    # Type=notify: "active (running)" is reached only after the daemon sent READY=1.
    assert props["Type"] == "notify" and props["NotifyAccess"] == "main"
    assert props["UnitFileState"] == "enabled"
    assert props["WatchdogUSec"] != "0"
    status = deployment.wait_ready()
    assert status["daemon"]["ready"] is True
    assert status["daemon"]["socket"] == SOCKET
    assert props["StatusText"] != ""  # the daemon reports STATUS= lines


def test_journal_holds_json_lines(deployment: Deployment) -> None:
    deployment.require_deployed()
    lines = [ln for ln in deployment.journal("-o", "cat", "_TRANSPORT=stdout").splitlines() if ln]
    assert lines, deployment.journal_tail()
    records = [json.loads(line) for line in lines]
    assert all("event" in r and "level" in r and "ts" in r for r in records)
    assert any(r["event"] == "daemon_starting" for r in records)
    assert not any(E2E_CREDENTIALS["api_key"] in line for line in lines)


def _scrape(deployment: Deployment) -> str:
    """node_exporter's page inside the container, as Prometheus would scrape it."""
    return deployment.sh("python3", "-c", "import urllib.request;print(urllib.request.urlopen("
                         f"{NODE_EXPORTER_URL!r}, timeout=10).read().decode())")


def _instance_status(deployment: Deployment) -> dict[str, Any]:
    return json.loads(deployment.sh(FRACTALCTL, "--socket", f"/run/fractald-{INSTANCE}/"  # type: ignore[no-any-return]
                                    "control.sock", "--json", "status"))


def test_node_exporter_scrapes_both_bots_without_a_collision(deployment: Deployment) -> None:
    deployment.require_deployed()
    deployment.wait_ready()

    def both() -> str | None:
        page = _scrape(deployment)
        return page if ('fractald_up{bot="main"} 1' in page
                        and f'fractald_up{{bot="{INSTANCE}"}} 1' in page) else None
    page = deployment.wait_for("both bots in node_exporter's page", both, timeout=60, every=2)
    assert "node_textfile_scrape_error 0" in page
    version = deployment.extra_vars["fractald_version"]
    assert f'fractald_build_info{{bot="main",version="{version}"}} 1' in page
    # Each bot has its own file, linked by the role into node_exporter's directory.
    links = deployment.sh("ls", "/var/lib/prometheus/node-exporter").split()
    assert {"fractald-main.prom", f"fractald-{INSTANCE}.prom"} <= set(links)


def test_operator_in_the_group_may_use_fractalctl_and_others_get_77(
        deployment: Deployment) -> None:
    deployment.require_deployed()
    deployment.wait_ready()
    # PrivateUsers=yes: the daemon sees alice as nobody, but her fractald group is mapped.
    ok = deployment.machine.run(["runuser", "-u", OPERATOR, "--", FRACTALCTL, "--json", "status"],
                                check=False)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert json.loads(ok.stdout)["daemon"]["ready"] is True
    refused = deployment.machine.run(["runuser", "-u", STRANGER, "--", FRACTALCTL, "status"],
                                     check=False)
    assert refused.returncode == 77, refused.stdout + refused.stderr


def test_a_refused_reload_fails_systemctl_reload(deployment: Deployment) -> None:
    deployment.require_deployed()
    deployment.wait_ready()
    good = deployment.sh("cat", CONFIG)
    pid = _main_pid(deployment)
    assert deployment.machine.run(["systemctl", "reload", UNIT], check=False,
                                  timeout=90).returncode == 0  # nothing changed: fine
    # A key that needs a restart: the daemon refuses it, so does `systemctl reload`.
    deployment.machine.write_file(CONFIG, good + "\n[control]\nidle_timeout_s = 601.0\n"
                                  if "[control]" not in good else good.replace(
                                      "[control]", "[control]\nidle_timeout_s = 601.0", 1), 0o640)
    try:
        refused = deployment.machine.run(["systemctl", "reload", UNIT], check=False, timeout=90)
        assert refused.returncode != 0, refused.stdout + refused.stderr
        props = deployment.show("ActiveState", "SubState")
        assert props == {"ActiveState": "active", "SubState": "running"}, props
        assert _main_pid(deployment) == pid  # refused, not restarted
        assert "idle_timeout_s" in deployment.journal("-o", "cat", "-n", "30")
    finally:
        deployment.machine.write_file(CONFIG, good, 0o640)
        deployment.sh("chown", "root:fractald", CONFIG)


def test_journald_files_each_line_at_its_priority(deployment: Deployment) -> None:
    deployment.require_deployed()
    # The refused reload above logged a warning; daemon_ready is info.
    warnings = deployment.journal("-o", "cat", "-p", "warning", "_TRANSPORT=stdout")
    events = [json.loads(line)["event"] for line in warnings.splitlines() if line.startswith("{")]
    assert events and "daemon_ready" not in events
    assert all(json.loads(line)["level"] in ("warning", "error", "critical")
               for line in warnings.splitlines() if line.startswith("{"))
    records = [json.loads(line) for line in deployment.journal(
        "-o", "json", "_TRANSPORT=stdout").splitlines()]
    by_event = {json.loads(r["MESSAGE"])["event"]: r["PRIORITY"] for r in records
                if str(r.get("MESSAGE", "")).startswith("{")}
    assert by_event.get("daemon_ready") == "6"
    assert any(p == "4" for p in by_event.values())


def _seconds(text: str) -> float:
    """A systemd time span as systemctl shows it ("30s", "1min 30s", "500ms") in seconds."""
    units = {"ms": 0.001, "s": 1.0, "min": 60.0, "h": 3600.0}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|min|h)", text)
    assert parts, f"not a time span: {text!r}"
    return sum(float(n) * units[u] for n, u in parts)


def _main_pid(deployment: Deployment) -> int:
    return int(deployment.show("MainPID")["MainPID"])


def _restarts(deployment: Deployment) -> int:
    return int(deployment.show("NRestarts")["NRestarts"])


def _events(deployment: Deployment, pid: int, event: str) -> list[dict[str, Any]]:
    out = deployment.journal("-o", "cat", f"_PID={pid}")
    records = [json.loads(ln) for ln in out.splitlines() if ln.startswith("{")]
    return [r for r in records if r.get("event") == event]


def test_kill_9_is_restarted_with_state_intact(deployment: Deployment) -> None:
    deployment.require_deployed()
    deployment.wait_ready()
    # The session snapshots at least every SNAPSHOT_EVERY_BARS (500) bars: get past one.
    deployment.wait_for("a snapshot's worth of bars", lambda: deployment.status()["trading"].get(
        "bars_processed", 0) > 600, timeout=90)
    old_pid, restarts = _main_pid(deployment), _restarts(deployment)
    deployment.sh("python3", "-c", f"import os; os.kill({old_pid}, 9)")
    new_pid = deployment.wait_for("a new main PID", lambda: (p := _main_pid(deployment)) not in (
        0, old_pid) and p, timeout=60)
    after = deployment.wait_ready()
    assert _restarts(deployment) == restarts + 1
    assert deployment.show("Result")["Result"] == "success"  # running again, not failed
    # Crash-only: the new process recovered from the ledger instead of starting fresh.
    recovered = deployment.wait_for("session_recovered in the journal",
                                    lambda: _events(deployment, new_pid, "session_recovered"),
                                    timeout=30)
    assert recovered[0]["last_seq"] > 0
    assert not _events(deployment, new_pid, "session_fresh_start")
    assert after["trading"]["cursor"] is not None
    # As the service user: a root-owned -shm file would lock the daemon out.
    integrity = deployment.sh("runuser", "-u", "fractald", "--", "python3", "-c",
                              "import sqlite3;print(sqlite3.connect("
                              "'file:/var/lib/fractald/fractald.db?mode=ro',uri=True)"
                              ".execute('pragma integrity_check').fetchone()[0])")
    assert integrity.strip() == "ok"


def test_watchdog_kills_and_restarts_a_wedged_daemon(deployment: Deployment) -> None:
    deployment.require_deployed()
    deployment.wait_ready()
    watchdog_s = _seconds(deployment.show("WatchdogUSec")["WatchdogUSec"])
    assert 0 < watchdog_s <= 120
    old_pid, restarts = _main_pid(deployment), _restarts(deployment)
    # Block the event loop for longer than WatchdogSec: the pings stop.
    deployment.control("debug-block-loop", {"seconds": 3 * watchdog_s + 30}, timeout=2)
    deployment.wait_for("the watchdog to restart the daemon",
                        lambda: _restarts(deployment) > restarts, timeout=watchdog_s + 60)
    assert _main_pid(deployment) != old_pid
    journal = deployment.journal("-o", "cat")
    assert "Watchdog timeout" in journal
    # WatchdogSignal=SIGABRT + PYTHONFAULTHANDLER: the journal shows where the loop was stuck.
    assert "Fatal Python error" in journal and "block_loop" in journal
    deployment.wait_ready()


def test_stop_is_a_clean_exit_0(deployment: Deployment) -> None:
    deployment.require_deployed()
    deployment.wait_ready()
    deployment.sh("systemctl", "stop", UNIT, timeout=60)
    props = deployment.show("ActiveState", "Result", "ExecMainCode", "ExecMainStatus")
    assert props["ActiveState"] == "inactive", props
    assert props["Result"] == "success", props
    assert props["ExecMainCode"] == "1" and props["ExecMainStatus"] == "0", props  # 1 = exited
    # The stopped bot's last metrics file says so; node_exporter still serves it.
    assert 'fractald_up{bot="main"} 0' in _scrape(deployment)
    from prometheus_client.parser import text_string_to_metric_families

    last = {(s.name, s.labels.get("actor")): s.value for f in text_string_to_metric_families(
        deployment.sh("cat", "/var/lib/fractald-metrics/main.prom")) for s in f.samples}
    actors = {actor: v for (name, actor), v in last.items() if name == "fractald_actor_up"}
    assert last[("fractald_up", None)] == 0 and actors.get("store") == 0
    assert set(actors.values()) == {0}, actors  # no actor of a stopped bot looks alive
    deployment.sh("systemctl", "start", UNIT, timeout=150)
    deployment.wait_ready()


def test_broken_config_exits_78_without_a_restart_loop(deployment: Deployment) -> None:
    deployment.require_deployed()
    good = deployment.sh("cat", CONFIG)
    deployment.machine.write_file(CONFIG, good + "\n[risk]\nrisk_per_trade = 7\n", 0o640)
    try:
        deployment.sh("systemctl", "restart", UNIT, check=False, timeout=150)
        deployment.wait_for("the unit to fail", lambda: deployment.show(
            "ActiveState")["ActiveState"] == "failed", timeout=60)
        props = deployment.show("ExecMainStatus", "Result", "NRestarts")
        assert props["ExecMainStatus"] == "78", props
        # (A manual restart resets NRestarts, so count from the failure on.)
        restarts = int(props["NRestarts"])
        # RestartPreventExitStatus=78: well past RestartSec=5s, still failed, not restarted.
        time.sleep(12)
        props = deployment.show("ActiveState", "NRestarts")
        assert props["ActiveState"] == "failed"
        assert int(props["NRestarts"]) == restarts
        problems = deployment.journal("-o", "cat", "-n", "50")
        assert "risk_per_trade" in problems
        # OnFailure=: the alert unit ran for it (this config names no webhook, so it says so).
        failure_unit = "fractald-failure@fractald.service.service"
        deployment.wait_for("the OnFailure unit to run", lambda: "nothing sent" in deployment.sh(
            "journalctl", "-u", failure_unit, "--no-pager", "-o", "cat"), timeout=60)
    finally:
        deployment.machine.write_file(CONFIG, good, 0o640)
        deployment.sh("chown", "root:fractald", CONFIG)
        deployment.sh("systemctl", "reset-failed", UNIT, check=False)
        deployment.sh("systemctl", "start", UNIT, check=False, timeout=150)
    deployment.wait_ready()


def test_upgrade_then_rollback_is_one_variable(deployment: Deployment,
                                               tmp_path: Path) -> None:
    deployment.require_deployed()
    old = deployment.extra_vars["fractald_version"]
    new = dh.build_release(tmp_path / "dist", dh.derive_source(tmp_path / "src", f"{old}.post1"))
    assert new == f"{old}.post1"
    upgrade = {**deployment.extra_vars, "fractald_version": new,
               "fractald_release_src": str(tmp_path / "dist" / new)}
    rc, output, recap = dh.run_playbook(deployment.inventory, upgrade, deployment.workdir)
    assert rc == 0 and recap["changed"] > 0, output[-4000:]
    assert deployment.sh("readlink", "/opt/fractald/current").strip().endswith(f"/{new}")
    status = deployment.wait_ready()
    assert status["daemon"]["version"] == new
    assert _events(deployment, status["daemon"]["pid"], "session_recovered")  # state kept

    # Rollback: only the version changes; the old release is still installed, so the
    # controller needs no wheels for it (the source path points nowhere on purpose).
    rollback = {**deployment.extra_vars, "fractald_release_src": str(tmp_path / "nowhere")}
    rc, output, recap = dh.run_playbook(deployment.inventory, rollback, deployment.workdir)
    assert rc == 0, output[-4000:]
    assert deployment.sh("readlink", "/opt/fractald/current").strip().endswith(f"/{old}")
    status = deployment.wait_ready()
    assert status["daemon"]["version"] == old
    assert _events(deployment, status["daemon"]["pid"], "session_recovered")
    releases = deployment.sh("ls", "/opt/fractald/releases").split()
    assert sorted(releases) == sorted([old, new])


def test_the_second_bot_runs_on_when_the_main_bot_stops(deployment: Deployment) -> None:
    deployment.require_deployed()
    unit_b = f"fractald@{INSTANCE}.service"
    status = deployment.wait_for(f"{unit_b} to report ready",
                                 lambda: (s := _instance_status(deployment))["daemon"]["ready"]
                                 and s, timeout=120)
    assert status["daemon"]["state_dir"] == f"/var/lib/fractald-{INSTANCE}"
    assert status["daemon"]["pid"] != deployment.wait_ready()["daemon"]["pid"]  # both run
    copy = deployment.sh("cat", f"/run/credentials/{unit_b}/venue_api_key")
    assert copy == INSTANCE_CREDENTIALS["api_key"]
    # The main bot's credentials directory does not hold b's (LoadCredential= is recursive).
    assert INSTANCE_CREDENTIALS["api_key"] not in deployment.sh(
        "sh", "-c", "cat /run/credentials/fractald.service/* 2>/dev/null; true")
    b_pid = status["daemon"]["pid"]
    deployment.sh("systemctl", "stop", UNIT, timeout=60)
    try:
        after = _instance_status(deployment)  # its socket survived the main bot's stop
        assert after["daemon"]["ready"] is True and after["daemon"]["pid"] == b_pid
        page = _scrape(deployment)
        assert f'fractald_up{{bot="{INSTANCE}"}} 1' in page and 'fractald_up{bot="main"} 0' in page
    finally:
        deployment.sh("systemctl", "start", UNIT, timeout=150)
    deployment.wait_ready()
    deployment.sh("systemctl", "stop", unit_b, timeout=60)
    props = deployment.sh("systemctl", "show", unit_b, "-p", "Result", "-p", "ExecMainStatus")
    assert "Result=success" in props and "ExecMainStatus=0" in props
