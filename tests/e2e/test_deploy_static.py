"""Fast checks of the deployment files that need no container: lint, syntax, units, config.

The real proof is the e2e test on a booted systemd; these catch mistakes in
seconds on any machine (ansible checks skip when ansible-core is absent).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import deploy_helpers as dh
import pytest

SYSTEMD_DIR = dh.REPO / "deploy" / "systemd"
RUNBOOKS = dh.REPO / "runbooks"
sys.path.insert(0, str(dh.ANSIBLE_DIR / "roles" / "fractald" / "filter_plugins"))
from fractald_toml import TomlRenderError, to_fractald_toml


def read_unit(name: str) -> dict[str, dict[str, list[str]]]:
    """A unit file as section -> key -> every value (systemd keys may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for raw in (SYSTEMD_DIR / name).read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key, []).append(value)
    return sections


REQUIRED_SERVICE = {
    "Type": "notify", "NotifyAccess": "main", "Restart": "on-failure", "User": "fractald",
    "StateDirectory": "fractald", "RuntimeDirectory": "fractald",
    "ConfigurationDirectory": "fractald", "NoNewPrivileges": "yes", "ProtectSystem": "strict",
    "ProtectHome": "yes", "PrivateTmp": "yes", "PrivateDevices": "yes",
    "ProtectKernelTunables": "yes", "ProtectKernelModules": "yes", "ProtectKernelLogs": "yes",
    "ProtectControlGroups": "yes", "CapabilityBoundingSet": "",
    "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
}


@pytest.mark.parametrize("unit", ["fractald.service", "fractald@.service"])
def test_unit_has_the_required_settings(unit: str) -> None:
    sections = read_unit(unit)
    service = sections["Service"]
    for key, value in REQUIRED_SERVICE.items():
        if key.endswith("Directory") and unit.startswith("fractald@") and key != "ConfigurationDirectory":
            value = f"{value}-%i"  # beside the main bot's directories, never inside them
        assert service.get(key) == [value], f"{unit}: {key}={service.get(key)}"
    assert "78" in service["RestartPreventExitStatus"][0].split()
    for key in ("WatchdogSec", "RestartSec", "TimeoutStopSec", "MemoryMax"):
        assert service.get(key), f"{unit}: {key} missing"
    assert "@system-service" in service["SystemCallFilter"]
    assert service["LoadCredential"][0].startswith("venue:/etc/fractald/credentials")
    unit_section = sections["Unit"]
    assert unit_section.get("StartLimitBurst") and unit_section.get("StartLimitIntervalSec")
    # No secret may travel through the environment.
    for env in service.get("Environment", []):
        assert not any(word in env.lower() for word in ("key", "secret", "token"))


def test_template_differs_only_by_instance() -> None:
    """fractald@.service is fractald.service with per-instance paths; nothing else may drift."""
    single, template = read_unit("fractald.service"), read_unit("fractald@.service")
    instance_keys = {"StateDirectory", "RuntimeDirectory", "WorkingDirectory", "ExecStart",
                     "ExecReload", "LoadCredential", "SyslogIdentifier", "Description"}
    for section in single:
        for key, values in single[section].items():
            if key == "Environment":  # FRACTALD_BOT=main / FRACTALD_BOT=%i, the rest equal
                assert [v.replace("=main", "=%i") for v in values] == template[section][key]
            elif key not in instance_keys:
                assert template[section].get(key) == values, f"[{section}] {key} drifted"
            else:
                assert all("%i" in v for v in template[section][key]), f"{key} lacks %i"


@pytest.mark.parametrize(("unit", "socket"), [("fractald.service", "%t/fractald/control.sock"),
                                              ("fractald@.service", "%t/fractald-%i/control.sock")])
def test_reload_is_synchronous_through_the_control_socket(unit: str, socket: str) -> None:
    service = read_unit(unit)["Service"]
    (reload,) = service["ExecReload"]
    assert reload.split()[0].endswith("/fractalctl") and reload.split()[-1] == "reload"
    assert f"--socket {socket}" in reload
    assert service["RuntimeDirectory"][0] in socket  # the socket the daemon makes


def test_instances_share_no_directory_with_the_main_bot() -> None:
    """Stopping the main bot removes its RuntimeDirectory; LoadCredential= of a directory
    loads it recursively: an instance's directories must not sit inside the main bot's."""
    single, template = read_unit("fractald.service")["Service"], read_unit("fractald@.service")[
        "Service"]
    for key in ("StateDirectory", "RuntimeDirectory"):
        assert not template[key][0].startswith(single[key][0] + "/"), key
    main_creds = single["LoadCredential"][0].split(":", 1)[1]
    instance_creds = template["LoadCredential"][0].split(":", 1)[1]
    assert not instance_creds.startswith(main_creds + "/")
    assert "FRACTALD_BOT=%i" in template["Environment"]


def test_failure_alert_unit_and_metrics_directory() -> None:
    for unit in ("fractald.service", "fractald@.service"):
        assert read_unit(unit)["Unit"]["OnFailure"] == ["fractald-failure@%n.service"]
        assert read_unit(unit)["Service"]["ReadWritePaths"] == ["-/var/lib/fractald-metrics"]
    failure = read_unit("fractald-failure@.service")["Service"]
    assert failure["Type"] == ["oneshot"] and failure["User"] == ["fractald"]
    assert failure["ExecStart"][0].endswith("fractald notify-failure %i")
    tmpfiles = (SYSTEMD_DIR / "fractald.tmpfiles").read_text()
    assert "d /var/lib/fractald-metrics    0755 fractald fractald -" in tmpfiles


def test_example_config_is_valid() -> None:
    from fractald.config import config_from_dict

    with (SYSTEMD_DIR / "fractald.toml.example").open("rb") as fh:
        config = config_from_dict(tomllib.load(fh))
    assert config.daemon.test_hooks is False and config.risk.mode == "paper"


def test_toml_filter_round_trips_what_the_role_renders() -> None:
    data = {"daemon": {"test_hooks": True, "snapshot_interval_s": 2.0},
            "feed": {"venue": "replay", "symbols": ["BTC-PERP", "ETH-PERP"],
                     "ws_url": 'wss://x/"quoted"\\path'},
            "strategies": {"enabled": ["fvg_fill"], "params": {"fvg_fill": {"min_gap": 3}}},
            "control": {"allowed_uids": []}}
    assert tomllib.loads(to_fractald_toml(data)) == data
    with pytest.raises(TomlRenderError, match="feed.bad"):
        to_fractald_toml({"feed": {"bad": float("nan")}})
    with pytest.raises(TomlRenderError, match="NoneType"):
        to_fractald_toml({"feed": {"x": None}})


def test_group_vars_example_renders_to_a_valid_config() -> None:
    yaml = pytest.importorskip("yaml", reason="PyYAML comes with ansible-core")
    from fractald.config import config_from_dict

    group_vars = yaml.safe_load((dh.ANSIBLE_DIR / "inventory/example/group_vars/fractald.yml")
                                .read_text())
    defaults = yaml.safe_load((dh.ANSIBLE_DIR / "roles/fractald/defaults/main.yml").read_text())
    merged = {**defaults["fractald_config_defaults"], **group_vars["fractald_config"]}
    config = config_from_dict(tomllib.loads(to_fractald_toml(merged)))
    assert config.broker.api_key_credential == "venue_api_key"
    # Each credential the config names has a file the role writes (venue_ + file name).
    files = {f"venue_{name}" for name in group_vars["fractald_credentials"]}
    assert {config.broker.api_key_credential, config.broker.api_secret_credential} <= files


def test_runbooks_cover_the_issue_and_link_correctly() -> None:
    pages = {p.name for p in RUNBOOKS.glob("*.md")}
    for name in ("install.md", "upgrade-and-rollback.md", "reading-logs.md",
                 "daemon-will-not-start.md", "watchdog-restarts.md", "circuit-breaker-tripped.md",
                 "feed-stale-or-flapping.md", "state-database-corrupt.md",
                 "emergency-flatten-and-kill-switch.md", "rotating-api-keys.md",
                 "moving-to-a-new-vps.md"):
        assert name in pages
    index = (RUNBOOKS / "README.md").read_text()
    assert all(f"({p})" in index for p in pages - {"README.md"})
    will_not_start = (RUNBOOKS / "daemon-will-not-start.md").read_text()
    from fractald.errors import ExitStatus

    for status in ExitStatus:
        if status not in (ExitStatus.OK, ExitStatus.USAGE):
            assert f"## {int(status)}:" in will_not_start, f"exit status {int(status)} undocumented"


def _ansible_tool(tool: str, args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    path = dh.venv_tool(tool)
    if path is None:
        pytest.skip(f"{tool} not installed (pip install ansible-core ansible-lint)")
    env = {**os.environ, "ANSIBLE_CONFIG": str(dh.ANSIBLE_DIR / "ansible.cfg"),
           "ANSIBLE_HOME": str(tmp_path / "ansible-home"), "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-tmp")}
    return subprocess.run([path, *args], cwd=dh.ANSIBLE_DIR, env=env, capture_output=True,
                          text=True, timeout=300, check=False)


def test_playbook_syntax(tmp_path: Path) -> None:
    proc = _ansible_tool("ansible-playbook", ["--syntax-check", "site.yml"], tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.slow  # ansible-lint takes ~20 s
def test_ansible_lint_is_clean_at_the_production_profile(tmp_path: Path) -> None:
    proc = _ansible_tool("ansible-lint", ["--offline", "--nocolor", "--profile", "production"],
                         tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_build_release_script_is_posix_sh() -> None:
    proc = subprocess.run(["sh", "-n", str(dh.BUILD_SCRIPT)], capture_output=True, text=True,
                          timeout=30, check=False)
    assert proc.returncode == 0, proc.stderr
