"""`fractald notify-failure UNIT` (the OnFailure= unit): a real webhook server on 127.0.0.1."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from test_operator_support import HookServer

from fractald.unit_failure import config_path_for, notify_failure, webhook_urls

REPO = Path(__file__).resolve().parent.parent
FAILED = {"ActiveState": "failed", "Result": "exit-code", "ExecMainCode": "1",
          "ExecMainStatus": "78", "NRestarts": "0"}


@pytest.mark.parametrize(("unit", "file"), [("fractald.service", "fractald.toml"),
                                            ("fractald@b-2.service", "b-2.toml")])
def test_each_unit_reads_its_own_bots_config(tmp_path: Path, unit: str, file: str) -> None:
    assert config_path_for(unit, tmp_path) == tmp_path / file


@pytest.mark.parametrize("unit", ["sshd.service", "fractald@.service", "fractald@../x.service"])
def test_other_units_are_refused(tmp_path: Path, unit: str) -> None:
    with pytest.raises(ValueError, match="not a fractald unit"):
        config_path_for(unit, tmp_path)


def test_webhooks_are_found_even_in_the_invalid_config_that_failed_the_unit(
        tmp_path: Path) -> None:
    path = tmp_path / "fractald.toml"
    path.write_text('[alerts]\nwebhook_urls = ["http://127.0.0.1:9/x"]\n[risk]\nrisk_per_trade = 7\n')
    assert webhook_urls(path) == ["http://127.0.0.1:9/x"]
    path.write_text("not toml [")
    assert webhook_urls(path) == []


@pytest.mark.slow  # over a second: out of the fast suite (issue 16)
def test_the_failure_is_posted_with_how_the_unit_ended(tmp_path: Path) -> None:
    hook = HookServer(fail_first=1)  # the first attempt gets a 503: retried
    try:
        (tmp_path / "b.toml").write_text(f'[alerts]\nwebhook_urls = ["{hook.url}"]\n')
        status = notify_failure("fractald@b.service", tmp_path, show=lambda unit: FAILED,
                                host="vps1", now_ms=1_700_000_000_000, trust_env=False)
        assert status == 0
        body = hook.wait_for("fatal_error")[0]
    finally:
        hook.close()
    assert body["severity"] == "critical" and body["instance"] == "b"
    assert body["title"] == "fractald@b.service failed"
    assert body["fields"] == {"unit": "fractald@b.service", "host": "vps1", "result": "exit-code",
                              "exit_status": "78", "restarts": "0"}


def test_the_command_without_systemd_or_webhooks(tmp_path: Path) -> None:
    (tmp_path / "fractald.toml").write_text("")
    env = {"CONFIGURATION_DIRECTORY": str(tmp_path), "PATH": "/nonexistent"}
    done = subprocess.run([sys.executable, "-m", "fractald.cli", "notify-failure",
                           "fractald.service"], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "no [alerts] webhook_urls; nothing sent" in done.stderr
    done = subprocess.run([sys.executable, "-m", "fractald.cli", "notify-failure", "cron.service"],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=60,
                          check=False)
    assert done.returncode == 2 and "not a fractald unit" in done.stderr


@pytest.mark.slow  # over a second: out of the fast suite (issue 16)
def test_an_unreachable_webhook_is_exit_1(tmp_path: Path) -> None:
    (tmp_path / "fractald.toml").write_text('[alerts]\nwebhook_urls = ["http://127.0.0.1:9/x"]\n')
    import fractald.unit_failure as uf

    old = uf.DELIVERY_TIMEOUT_S
    uf.DELIVERY_TIMEOUT_S = 3.0
    try:
        assert notify_failure("fractald.service", tmp_path, show=lambda unit: {},
                              trust_env=False) == 1
    finally:
        uf.DELIVERY_TIMEOUT_S = old
