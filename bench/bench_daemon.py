"""Daemon start-up and idle cost, measured on a real `fractald run` subprocess.

Prints: time from exec to READY=1 (whole process, imports included), time
from the daemon's first log line (imports done) to READY=1, and the CPU
the daemon uses while idle (replay finished, watchdog pinging), as a share
of one core. Goals (issue 3): start-up under 1 s after imports; idle CPU
under 1% of one core.

    .venv/bin/python bench/bench_daemon.py [--idle-seconds 20] [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from daemon_harness import DaemonProcess, NotifyListener, write_candles_csv, write_config


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime + stime


def one_start(tmp: Path) -> tuple[float, float]:
    listener = NotifyListener(tmp)
    config = write_config(tmp, replay_speed=0, candles=write_candles_csv(tmp / "c.csv", count=500))
    started = time.monotonic()
    daemon = DaemonProcess(config, env={"NOTIFY_SOCKET": listener.address,
                                        "WATCHDOG_USEC": "10000000"})
    try:
        ready = listener.wait_for("READY", timeout=60, value="1")
        lines = daemon.log_lines()
        after_imports = next(line["after_s"] for line in lines if line.get("event") == "daemon_ready")
        return ready - started, float(after_imports)
    finally:
        daemon.stop()
        listener.close()


def idle_cpu(tmp: Path, seconds: float) -> float:
    listener = NotifyListener(tmp)
    config = write_config(tmp, replay_speed=0, candles=write_candles_csv(tmp / "c.csv", count=200))
    daemon = DaemonProcess(config, env={"NOTIFY_SOCKET": listener.address,
                                        "WATCHDOG_USEC": "10000000"})
    try:
        listener.wait_for("READY", timeout=60, value="1")
        time.sleep(3)  # let the short replay finish
        cpu0, wall0 = cpu_seconds(daemon.proc.pid), time.monotonic()
        time.sleep(seconds)
        cpu1, wall1 = cpu_seconds(daemon.proc.pid), time.monotonic()
        return (cpu1 - cpu0) / (wall1 - wall0)
    finally:
        daemon.stop()
        listener.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--idle-seconds", type=float, default=20.0)
    args = parser.parse_args()
    totals, after = [], []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            total, post_import = one_start(Path(tmp))
            totals.append(total)
            after.append(post_import)
    with tempfile.TemporaryDirectory() as tmp:
        idle = idle_cpu(Path(tmp), args.idle_seconds)
    result = {
        "exec_to_ready_s_median": round(statistics.median(totals), 3),
        "after_imports_to_ready_s_median": round(statistics.median(after), 3),
        "after_imports_to_ready_s_max": round(max(after), 3),
        "idle_cpu_share_of_one_core": round(idle, 4),
        "goals": {"after_imports_to_ready_s": "< 1.0", "idle_cpu_share": "< 0.01"},
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
