"""`fractald demo`: one narrated day through the real pipeline, as a newcomer runs it."""

from __future__ import annotations

import re
import subprocess
import sys


def test_demo_narrates_a_day_of_k1_and_k2_trades() -> None:
    done = subprocess.run([sys.executable, "-W", "ignore", "-m", "fractald.cli", "demo"], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for strategy in ("k1_vwap_reversion", "k2_failed_break"):
        assert re.search(rf"{strategy}: .*signal (BUY|SELL) at", out)
        assert re.search(rf"{strategy}: filled (BUY|SELL) ", out)
        assert re.search(rf"{strategy}: closed at [\d,.]+ \(\w+\), [+-]\$[\d.,]+, [+-][\d.]+R; {strategy} has learned", out)
    assert "risking $14." in out  # the $15 money limit sized both trades
    assert "vetoed by the noise filter" in out
    assert "trades_per_day" in out and "throttle levels after the day:" in out
    times = re.findall(r"^(\d\d:\d\d)  ", out, flags=re.M)
    assert times[:-1] == sorted(times[:-1])  # told in order (the last line is the next midnight)


def test_demo_refuses_a_day_it_has_no_candles_for() -> None:
    done = subprocess.run([sys.executable, "-W", "ignore", "-m", "fractald.cli", "demo", "--day", "1999-01-01"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "no 1999-01-01" in done.stderr and "Traceback" not in done.stderr
