"""Make tests/data/state-0.1.0/: a state directory written by release 0.1.0, for the upgrade test.

Run it with a checkout of release 0.1.0 (main at 5f790ba) as the code that
writes the state:

    git worktree add --detach /tmp/fractald-0.1.0 5f790ba
    python tests/data/make_state_0_1_0.py /tmp/fractald-0.1.0

It replays CANDLES bundled BTC minutes through `fractald run` of that
checkout (speed 0), waits until trading has caught up, then over the
control socket pauses trading and sets a risk override, and stops the
daemon with SIGTERM (final snapshot). Older snapshots are then dropped and
the file vacuumed, so it stays small: release 0.1.0 reads only the newest
good snapshot, so what remains is still exactly what 0.1.0 would start from.
`expected.json` beside the database records what the operator saw
(positions, working orders, trades, equity, breakers, overrides) through
0.1.0's own `fractalctl`, so the test compares against 0.1.0's view.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "state-0.1.0"
CANDLES = 8_000  # a bit under six days: trades, and positions still open at the end
RISK_OVERRIDE = ("heat_cap", "0.04")


def main(old_repo: Path) -> None:
    sys.path.insert(0, str(HERE.parent))
    from daemon_harness import write_candles_csv

    python = str(old_repo / ".venv/bin/python") if (old_repo / ".venv").exists() else sys.executable
    env = {**os.environ, "PYTHONPATH": str(old_repo)}
    env.pop("STATE_DIRECTORY", None)
    env.pop("RUNTIME_DIRECTORY", None)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        candles = write_candles_csv(tmp / "candles.csv", start=0, count=CANDLES)
        state = tmp / "state"
        config = tmp / "fractald.toml"
        config.write_text(f'[daemon]\nstate_dir = "{state}"\n'
                          f'[feed]\nvenue = "replay"\nreplay_path = "{candles}"\nreplay_speed = 0\n'
                          '[log]\nformat = "json"\nlevel = "info"\n')
        log_path = tmp / "daemon.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen([python, "-m", "fractald.cli", "run", "--config", str(config)],
                                    stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(old_repo))
            try:
                _wait_for(log_path, "trading_caught_up", proc, 600)
                sock = state / "control.sock"

                def ctl(*args: str) -> object:
                    out = subprocess.run([python, "-m", "fractald.control.client", "--socket",
                                          str(sock), "--json", *args], env=env, cwd=str(old_repo),
                                         capture_output=True, text=True, timeout=30, check=True)
                    return json.loads(out.stdout)

                ctl("risk", "set", *RISK_OVERRIDE)
                ctl("pause")
                expected = {"made_by": "fractald 0.1.0 (5f790ba)", "candles": CANDLES,
                            "status": ctl("status"), "positions": ctl("positions"),
                            "orders": ctl("orders"), "trades": ctl("trades"),
                            "breakers": ctl("breakers"), "strategies": ctl("strategies")}
                proc.send_signal(signal.SIGTERM)
                assert proc.wait(60) == 0, log_path.read_text()[-3000:]
            finally:
                if proc.poll() is None:
                    proc.kill()
        OUT.mkdir(exist_ok=True)
        for old in OUT.iterdir():
            old.unlink()
        with sqlite3.connect(state / "fractald.db") as conn:
            conn.execute("DELETE FROM snapshots WHERE id < (SELECT max(id) FROM snapshots)")
            conn.commit()
            conn.execute(f"VACUUM INTO '{OUT / 'fractald.db'}'")
        (OUT / "expected.json").write_text(json.dumps(expected, indent=1, sort_keys=True) + "\n")


def _wait_for(log_path: Path, event: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for raw in log_path.read_text().splitlines():
            try:
                if json.loads(raw).get("event") == event:
                    return
            except json.JSONDecodeError:
                continue
        if proc.poll() is not None:
            raise SystemExit(f"daemon exited {proc.returncode}:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.5)
    raise SystemExit(f"no {event} within {timeout}s")


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve())
