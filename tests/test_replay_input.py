"""A daemon replay of a candle file with rows out of order or repeated is never silently changed.

Before, the replay sorted the file and dropped repeated times without a word,
so a daemon replay and a backtest of the same file could trade different bars.
Now `check-config`, `preflight` and `fractald run` refuse such a file, naming
the counts and the first bad rows by their line in the file; `[feed]
replay_repair = true` is the explicit choice to repair it, and the daemon logs
what it did (issue 14).
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from daemon_harness import REPO, DaemonProcess, wait_log, write_candles_csv, write_config

from fractald.venues.replay import ReplayError, load_candles, load_checked_candles


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fractald.cli", *args], capture_output=True,
                          text=True, timeout=120, cwd=str(REPO), check=False)


def shuffled_csv(path: Path) -> Path:
    """40 real candles; data rows 11 and 12 swapped, row 21 a conflicting copy of row 20's time.

    The header is line 1 and a blank line sits before the data, so data row N is line N + 2.
    """
    write_candles_csv(path, count=40)
    header, *rows = path.read_text().splitlines()
    rows[10], rows[11] = rows[11], rows[10]
    stamp, *values = rows[19].split(",")
    values[3] = str(float(values[3]) + 1.0)  # close: the copy disagrees with the original
    rows.insert(20, ",".join([stamp, *values]))
    path.write_text("\n".join([header, "", *rows]) + "\n")
    return path


class Log:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def warning(self, event: str, **fields: Any) -> None:
        self.events.append((event, fields))


def test_a_shuffled_file_is_refused_with_counts_and_lines(tmp_path: Path) -> None:
    path = shuffled_csv(tmp_path / "c.csv")
    with pytest.raises(ReplayError) as caught:
        load_checked_candles(path, "BTC-PERP", repair=False, log=Log())
    message = str(caught.value)
    assert "2 bad candle row(s): 1 out of order, 1 repeated times" in message
    assert "row 12 (line 14): time" in message and "is out of order" in message
    assert "row 21 (line 23): time" in message and "with different values" in message
    assert "replay_repair = true" in message


def test_repair_is_explicit_and_logged(tmp_path: Path) -> None:
    path = shuffled_csv(tmp_path / "c.csv")
    log = Log()
    bars = list(load_checked_candles(path, "BTC-PERP", repair=True, log=log))
    times = [b.ts_open for b in bars]
    assert times == sorted(set(times)) and len(bars) == 40
    [(event, fields)] = log.events
    assert event == "replay_repaired"
    assert fields["dropped_conflicting_duplicates"] == 1 and fields["moved_into_order"] == 1
    assert fields["kept"] == 40 and fields["rows"] == 41
    # The first row of a repeated time is the one kept: the original, not the copy.
    assert bars == load_candles(write_candles_csv(tmp_path / "clean.csv", count=40), "BTC-PERP")


def test_a_clean_file_loads_unchanged_without_a_log_line(tmp_path: Path) -> None:
    path = write_candles_csv(tmp_path / "c.csv", count=40)
    log = Log()
    assert list(load_checked_candles(path, "BTC-PERP", repair=False, log=log)) == \
        load_candles(path, "BTC-PERP")
    assert log.events == []


@pytest.mark.slow  # over a second: out of the fast suite (issue 16)
def test_check_config_preflight_and_run_name_the_bad_rows(tmp_path: Path) -> None:
    config = write_config(tmp_path, candles=shuffled_csv(tmp_path / "c.csv"))
    check = cli("check-config", str(config))
    assert check.returncode == 78, check.stdout + check.stderr
    assert "config.feed.replay_path" in check.stderr and "row 12 (line 14)" in check.stderr
    assert "Traceback" not in check.stderr
    preflight = cli("preflight", "--config", str(config))
    assert preflight.returncode == 78 and "row 12 (line 14)" in preflight.stdout + preflight.stderr
    run = subprocess.run([sys.executable, "-m", "fractald.cli", "run", "--config", str(config)],
                         capture_output=True, text=True, timeout=60, cwd=str(REPO), check=False)
    assert run.returncode == 78, run.stdout[-2000:]
    assert "row 21 (line 23)" in run.stdout


@pytest.mark.slow  # over a second: out of the fast suite (issue 16)
def test_the_daemon_replays_a_repaired_file_and_says_so(tmp_path: Path) -> None:
    config = write_config(tmp_path, "", candles=shuffled_csv(tmp_path / "c.csv"))
    text = config.read_text().replace("[feed]\n", "[feed]\nreplay_repair = true\n", 1)
    config.write_text(text)
    assert cli("check-config", str(config)).returncode == 0
    daemon = DaemonProcess(config)
    try:
        wait_log(daemon, "replay_repaired", timeout=60)
        [line] = [x for x in daemon.log_lines() if x.get("event") == "replay_repaired"]
        assert line["moved_into_order"] == 1 and line["dropped_conflicting_duplicates"] == 1
    finally:
        daemon.proc.send_signal(signal.SIGTERM)
        daemon.proc.wait(60)
