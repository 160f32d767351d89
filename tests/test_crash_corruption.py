"""A corrupted state database met by the real daemon: restore from backup, or stop with status 65.

The daemon trades a replay, takes an online backup (`fractalctl backup`),
stops; bytes in the middle of its database are overwritten. The next
start restores the newest good backup with a loud (critical) log line and
carries on with the same trades and orders. With every backup corrupted
too, it refuses to trade: exit status 65 and a message naming the runbook.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from daemon_harness import REPO, DaemonProcess, ctl_json, write_candles_csv, write_config
from test_crash_daemon import (
    assert_ledger_sound,
    ledger_rows,
    run_to_end,
    trading_record,
    wait_for_log,
)

from fractald.errors import ExitStatus
from fractald.store.backup import list_backups

pytestmark = pytest.mark.slow

RUNBOOK = "runbooks/state-database-corrupt.md"


def overwrite_middle(path: Path, seed: int) -> None:
    """Overwrite four whole pages in the middle of the file with random bytes."""
    page = 4096
    pages = path.stat().st_size // page
    assert pages > 8, f"{path} is too small to damage its middle"
    with open(path, "r+b") as f:
        f.seek((pages // 2) * page)
        f.write(random.Random(seed).randbytes(4 * page))


def test_corrupt_database_is_restored_then_refused_without_good_backups(tmp_path: Path) -> None:
    config = write_config(tmp_path, replay_speed=0.0,
                          candles=write_candles_csv(tmp_path / "candles.csv", 0, 6000))
    db_path = tmp_path / "state" / "fractald.db"
    daemon = DaemonProcess(config)
    try:
        wait_for_log(daemon, {"trading_caught_up"}, timeout=120)
        backup = Path(ctl_json(tmp_path / "state" / "control.sock", "backup")["path"])
        assert daemon.stop(signal.SIGTERM, timeout=30) == 0
    finally:
        daemon.kill()
    assert backup in list_backups(db_path)
    before = ledger_rows(db_path)
    assert before["pipeline"].engine.accounting.positions or trading_record(before)["trades"]

    # 1. the main database damaged: restored from the backup, loudly, state intact
    overwrite_middle(db_path, seed=1)
    lines = run_to_end(config).log_lines()
    restored = [line for line in lines if line.get("event") == "state_restored_from_backup"]
    assert len(restored) == 1 and restored[0]["level"] == "critical"
    assert restored[0]["backup"] == str(backup)
    assert list(db_path.parent.glob("fractald.db.corrupt-*")), "the damaged file is kept aside"
    after = ledger_rows(db_path)
    assert_ledger_sound(after)
    want, got = trading_record(before), trading_record(after)
    for key in want:
        assert len(got[key]) == len(want[key]), key
        for i, (a, b) in enumerate(zip(got[key], want[key])):
            assert a == b, (key, i)
    assert not any(line.get("event") == "reconcile_mismatch" for line in lines)

    # 2. the database and every backup damaged: exit 65, naming the runbook
    overwrite_middle(db_path, seed=2)
    backups = list_backups(db_path)
    assert backups
    for i, path in enumerate(backups):
        overwrite_middle(path, seed=10 + i)
    result = subprocess.run([sys.executable, "-m", "fractald.cli", "run", "--config", str(config)],
                            capture_output=True, text=True, timeout=60, cwd=str(REPO), check=False)
    assert result.returncode == ExitStatus.STATE_CORRUPT == 65, result.stdout[-2000:]
    output = result.stdout + result.stderr
    assert RUNBOOK in output
    assert output.count("state_backup_bad") == len(backups)
