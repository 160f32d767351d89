"""Bad config input, failed reloads and planted secrets, through the real commands (issue 14).

Every bad value is a config error (exit 78) naming its key, at `check-config`
and at `run`; a reload of a broken file keeps the daemon running on its old
config; no output channel shows a planted secret.
"""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from daemon_harness import (
    REPO,
    DaemonProcess,
    NotifyListener,
    fractalctl,
    wait_log,
    wait_ready,
    write_config,
)

PASSWORD = "hunter2-Passw0rd-xyz"
TOKEN = "tok3n-a1b2c3d4e5f6a7b8"
SLACK_PATH = "T0000/B0000/XXXXsl4cks3cr3tXXXX"
PASTED_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"


def cli(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fractald.cli", *args], capture_output=True,
                          text=True, timeout=120, cwd=str(cwd))


def secret_webhooks() -> str:
    return (f'[alerts]\nwebhook_urls = ["https://ops:{PASSWORD}@hooks.example.com/alert?token={TOKEN}",'
            f' "https://hooks.slack.com/services/{SLACK_PATH}"]\n')


def assert_no_secret(text: str, where: str) -> None:
    for secret in (PASSWORD, TOKEN, SLACK_PATH, PASTED_KEY):
        assert secret not in text, f"{where} shows a planted secret: {text[:2000]}"


# --------------------------------------------------------------------------- item 4


@pytest.mark.parametrize(("toml", "key"), [
    ('[feed]\nvenue = "binance-futures"\nsymbols = ["BTCUSDT"]\nws_url = "ftp://x.example"\n',
     "config.feed.ws_url"),
    ('[feed]\nvenue = "binance-futures"\nsymbols = ["BTCUSDT"]\nrest_url = "http//nohost"\n',
     "config.feed.rest_url"),
    ('[feed]\nvenue = "binance-futures"\nsymbols = ["BTCUSDT"]\nrest_url = "https://x:port/"\n',
     "config.feed.rest_url"),
    ('[feed]\nvenue = "binance-futures"\nsymbols = [""]\n', "config.feed.symbols[0]"),
    ('[feed]\nvenue = "binance-futures"\nsymbols = ["BTC USDT"]\n', "config.feed.symbols[0]"),
    ('[feed]\nreplay_path = "no/such/candles.csv"\n', "config.feed.replay_path"),
    ('[alerts]\nwebhook_urls = ["htp:/hooks.example.com/x"]\n', "config.alerts.webhook_urls[0]"),
    ('[alerts]\nwebhook_urls = ["https:///nohost"]\n', "config.alerts.webhook_urls[0]"),
    ('[alerts]\ntelegram_api_url = "api.telegram.org"\n', "config.alerts.telegram_api_url"),
], ids=["ws-scheme", "rest-no-scheme", "rest-bad-port", "empty-symbol", "symbol-space",
        "missing-replay", "webhook-scheme", "webhook-no-host", "telegram-url"])
@pytest.mark.slow  # over a second: out of the fast suite (issue 16)
def test_values_only_used_at_run_time_are_config_errors_naming_the_key(
        tmp_path: Path, toml: str, key: str) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(toml)
    check = cli("check-config", str(config))
    assert check.returncode == 78, check.stdout + check.stderr
    assert key in check.stderr and "Traceback" not in check.stderr


def test_the_daemon_refuses_a_bad_webhook_at_start_with_78(tmp_path: Path) -> None:
    """Before: it ran with alerts silently off, so no kill-switch or fatal alert got out."""
    config = write_config(tmp_path, extra='[alerts]\nwebhook_urls = ["htp:/hooks.example.com/x"]\n')
    run = subprocess.run([sys.executable, "-m", "fractald.cli", "run", "--config", str(config)],
                         capture_output=True, text=True, timeout=60, cwd=str(REPO))
    assert run.returncode == 78, run.stdout[-2000:]
    assert "config.alerts.webhook_urls[0]" in run.stdout


# --------------------------------------------------------------------------- item 1


def test_a_non_utf8_config_is_a_config_error_at_check_and_at_start(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_bytes(b'[risk]\nheat_cap = 0.05\n# caf\xe9 ' + PASSWORD.encode() + b'\n')
    check = cli("check-config", str(config))
    assert check.returncode == 78
    assert "not UTF-8" in check.stderr and "line 3, column 6" in check.stderr
    assert "Traceback" not in check.stderr and PASSWORD not in check.stderr
    run = subprocess.run([sys.executable, "-m", "fractald.cli", "run", "--config", str(config)],
                         capture_output=True, text=True, timeout=60, cwd=str(REPO))
    assert run.returncode == 78  # not 1: systemd's RestartPreventExitStatus=78 stops the loop
    assert "not UTF-8" in run.stdout and PASSWORD not in run.stdout + run.stderr


@pytest.mark.slow
def test_a_broken_reload_keeps_the_daemon_and_its_config_and_leaks_nothing(tmp_path: Path) -> None:
    listener = NotifyListener(tmp_path)
    config = write_config(tmp_path, replay_speed=0, extra=secret_webhooks())
    good = config.read_bytes()
    daemon = DaemonProcess(config, env={"NOTIFY_SOCKET": listener.address})
    sock = tmp_path / "state" / "control.sock"
    try:
        wait_ready(sock, timeout=60)
        # One non-UTF-8 byte, by SIGHUP and then by fractalctl reload.
        config.write_bytes(good + b"[risk]\nheat_cap = 0.05 # \xff " + PASSWORD.encode() + b"\n")
        daemon.proc.send_signal(signal.SIGHUP)
        wait_log(daemon, "reload_refused_invalid_config", timeout=20)
        # fractalctl reload is the unit's ExecReload=: a refused reload fails it, naming why.
        reload = fractalctl(sock, "--json", "reload")
        assert reload.returncode == 1, reload.stdout + reload.stderr
        assert "reload_refused" in reload.stderr and "not UTF-8" in reload.stderr
        assert_no_secret(reload.stdout + reload.stderr, "fractalctl reload")
        listener.poll(1.0)
        states = [k for _, f in listener.messages for k in ("RELOADING", "READY") if k in f]
        assert states[-4:] == ["RELOADING", "READY", "RELOADING", "READY"], listener.messages[-12:]
        shown = fractalctl(sock, "--json", "config")
        assert json.loads(shown.stdout)["risk"]["heat_cap"] == 0.06  # the running config stays
        assert_no_secret(shown.stdout, "fractalctl config")
        assert "hooks.example.com" in shown.stdout
        assert daemon.proc.poll() is None
        assert daemon.stop() == 0  # and it still stops cleanly, with its final snapshot
    finally:
        daemon.kill()
        listener.close()
    log = daemon.stdout_path.read_text()
    assert "snapshot_written" in log and "Traceback" not in log
    assert_no_secret(log, "the daemon's log")


# --------------------------------------------------------------------------- item 3


def test_check_config_json_masks_webhook_secrets(tmp_path: Path) -> None:
    config = tmp_path / "ok.toml"
    config.write_text(secret_webhooks())
    shown = cli("check-config", "--json", str(config))
    assert shown.returncode == 0, shown.stderr
    assert_no_secret(shown.stdout + shown.stderr, "check-config --json")
    urls = json.loads(shown.stdout)["alerts"]["webhook_urls"]
    assert urls == ["https://***@hooks.example.com/***?token=***", "https://hooks.slack.com/***"]


def test_a_key_pasted_as_a_credential_name_is_refused_and_never_echoed(tmp_path: Path) -> None:
    config = tmp_path / "pasted.toml"
    config.write_text(f'[broker]\napi_key_credential = "{PASTED_KEY}"\n'
                      f'api_secret_credential = "binance-secret"\n')
    check = cli("check-config", "--json", str(config))
    assert check.returncode == 78
    assert "config.broker.api_key_credential: this looks like a secret" in check.stderr
    preflight_json = cli("preflight", "--json", "--config", str(config))
    preflight_text = cli("preflight", "--config", str(config))
    assert preflight_json.returncode == 78 and preflight_text.returncode == 78
    for name, out in (("check-config", check), ("preflight --json", preflight_json),
                      ("preflight", preflight_text)):
        assert_no_secret(out.stdout + out.stderr, name)


def test_a_bad_value_holding_a_password_is_named_but_masked(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(f'[alerts]\nwebhook_urls = "https://ops:{PASSWORD}@hooks.example.com/x"\n'
                      f'[feed]\nvenue = "binance-futures"\nsymbols = ["BTCUSDT"]\n'
                      f'rest_url = "ftp://u:{PASSWORD}@x.example/?token={TOKEN}"\n')
    check = cli("check-config", str(config))
    assert check.returncode == 78
    assert "config.alerts.webhook_urls" in check.stderr
    assert_no_secret(check.stdout + check.stderr, "check-config")


def test_logged_tracebacks_carry_no_frame_locals() -> None:
    from fractald.logs import configure_logging, get_logger

    stream = io.StringIO()
    configure_logging("json", "info", stream=stream)
    try:
        def handler() -> None:
            text = f"[broker]\nkey = {PASTED_KEY}"  # noqa: F841 - a file's text, in a local
            raise RuntimeError("boom")

        try:
            handler()
        except RuntimeError:
            get_logger("control").exception("control_command_failed")
    finally:
        configure_logging("json", "info")
    line = json.loads(stream.getvalue().splitlines()[-1])
    assert line["exception"][0]["exc_type"] == "RuntimeError"
    assert all("locals" not in frame for frame in line["exception"][0]["frames"])
    assert_no_secret(stream.getvalue(), "a logged traceback")


# --------------------------------------------------------------------------- item 6 (CLI part)


def test_check_config_json_into_a_closed_pipe_is_quiet(tmp_path: Path) -> None:
    pipeline = subprocess.run(
        f"{sys.executable} -m fractald.cli check-config --json | head -c 1; "
        "echo; echo status=${PIPESTATUS[0]}", shell=True, executable="/bin/bash",
        capture_output=True, text=True, timeout=60, cwd=str(REPO))
    assert "status=0" in pipeline.stdout
    assert "BrokenPipe" not in pipeline.stderr and "Traceback" not in pipeline.stderr


_INTERRUPT_DURING_IMPORT = """
import sys
class Interrupt:
    def find_spec(self, name, path=None, target=None):
        if name == "fractald.daemon":
            raise KeyboardInterrupt  # Ctrl-C while the heavy modules load
        return None
sys.meta_path.insert(0, Interrupt())
from fractald.cli import fractald_main
sys.exit(fractald_main(["run"]))
"""


def test_ctrl_c_during_start_up_imports_exits_cleanly(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, "-c", _INTERRUPT_DURING_IMPORT], capture_output=True,
                         text=True, timeout=60, cwd=str(tmp_path),
                         env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr and "interrupted" in run.stderr
