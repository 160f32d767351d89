"""`fractald run` as systemd runs it: journal priorities, EXTEND_TIMEOUT_USEC, a refused
reload that fails `fractalctl reload` (the unit's ExecReload=), and a metrics file that
names its bot and says so when the bot stops."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from daemon_harness import REPO, NotifyListener, ctl_json, fractalctl, write_config
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.slow


def _series(path: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(path.read_text()) for s in f.samples}


def test_the_daemon_under_a_journal_and_a_service_manager(tmp_path: Path) -> None:
    prom = tmp_path / "bot.prom"
    config = write_config(tmp_path, f'[metrics]\ntextfile_path = "{prom}"\ninterval_s = 1\n',
                          replay_speed=0)
    sock = tmp_path / "state" / "control.sock"
    listener = NotifyListener(tmp_path)
    stdout = tmp_path / "stdout"
    with stdout.open("wb") as out:
        st = os.fstat(out.fileno())
        env = {k: v for k, v in os.environ.items()
               if k not in ("RUNTIME_DIRECTORY", "STATE_DIRECTORY")}
        env.update(NOTIFY_SOCKET=listener.address, JOURNAL_STREAM=f"{st.st_dev}:{st.st_ino}",
                   FRACTALD_BOT="alpha")
        proc = subprocess.Popen([sys.executable, "-m", "fractald.cli", "run", "--config",
                                 str(config)], stdout=out, stderr=subprocess.STDOUT, env=env,
                                cwd=str(REPO))
    try:
        listener.wait_for("READY", timeout=60, value="1")
        # One EXTEND_TIMEOUT_USEC per start-up gate, each at least the gate's timeout (30 s).
        extends = [int(v) for v in listener.values("EXTEND_TIMEOUT_USEC")]
        assert len(extends) == 4 and min(extends) >= 30_000_000, listener.messages

        deadline = time.monotonic() + 15
        while not (prom.exists() and ("fractald_up", (("bot", "alpha"),)) in _series(prom)):
            assert time.monotonic() < deadline, "no metrics file"
            time.sleep(0.2)
        running = _series(prom)
        assert running[("fractald_up", (("bot", "alpha"),))] == 1
        from fractald import __version__
        assert running[("fractald_build_info", (("bot", "alpha"), ("version", __version__)))] == 1
        assert all(dict(k[1]).get("bot") == "alpha" for k in running)

        # A reload that changes a restart-only key is refused: fractalctl says so and fails.
        config.write_text(config.read_text().replace("stall_limit_s = 5.0", "stall_limit_s = 6.0"))
        refused = fractalctl(sock, "reload")
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert "reload_refused" in refused.stderr and "daemon.stall_limit_s" in refused.stderr
        # An invalid file: refused too, nothing applied, the daemon keeps running.
        config.write_text(config.read_text() + "\n[risk]\nrisk_per_trade = 7\n")
        invalid = fractalctl(sock, "--json", "reload")
        assert invalid.returncode == 1 and "risk_per_trade" in invalid.stderr
        assert ctl_json(sock, "status")["daemon"]["ready"] is True

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        listener.close()

    stopped = _series(prom)
    assert stopped[("fractald_up", (("bot", "alpha"),))] == 0
    actors = {k: v for k, v in stopped.items() if k[0] == "fractald_actor_up"}
    assert actors and set(actors.values()) == {0}

    lines = [ln for ln in stdout.read_text().splitlines() if ln]
    assert all(ln[:3] in ("<3>", "<4>", "<6>", "<7>") for ln in lines), lines[:5]
    records = {json.loads(ln[3:])["event"]: ln[:3] for ln in lines}
    assert records["daemon_ready"] == "<6>"
    assert records["reload_refused_keys"] == "<4>"
    assert records["reload_refused_invalid_config"] == "<3>"
