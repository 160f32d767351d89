"""Backtests over bad candle files: every bad row named, `--repair` only when asked (issue 14)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from daemon_harness import REPO, write_candles_csv


def backtest(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fractald.cli", "backtest", *args],
                          capture_output=True, text=True, timeout=300, cwd=str(REPO))


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_candles_csv(tmp_path_factory.mktemp("candles") / "good.csv", count=2000)


def test_each_kind_of_bad_row_is_named_with_its_row(good: Path, tmp_path: Path) -> None:
    frame = pd.read_csv(good)
    frame.loc[9, "high"] = frame.loc[9, "low"] - 5  # row 10
    frame.loc[19, "close"] = frame.loc[19, "high"] + 100  # row 20
    frame.loc[29, "volume"] = -1.0  # row 30
    conflicting = frame.iloc[[39]].assign(close=frame.loc[39, "low"])
    frame = pd.concat([frame.iloc[:40], conflicting, frame.iloc[40:]])  # row 41 repeats row 40
    frame = pd.concat([frame.iloc[:100], frame.iloc[150:160], frame.iloc[100:150],
                       frame.iloc[160:]])  # rows 111.. are 50 earlier minutes, after 10 later ones
    bad = tmp_path / "bad.csv"
    frame.to_csv(bad, index=False)
    run = backtest("--data", str(bad))
    assert run.returncode == 2 and "Traceback" not in run.stderr
    for text in ("row 10: high", "is below low", "row 20: close", "outside the bar",
                 "row 30: volume -1 is negative", "row 41: time", "repeats row 40 (with different",
                 "row 111: time", "out of order", "50 out of order", "--repair"):
        assert text in run.stderr, (text, run.stderr)


@pytest.mark.slow  # over a second: out of the fast suite (issue 16)
def test_repair_prints_what_it_did_and_gives_the_clean_file_s_result(good: Path,
                                                                      tmp_path: Path) -> None:
    """Shuffled blocks and identical copies repaired give exactly the clean file's trades."""
    frame = pd.read_csv(good)
    messy = pd.concat([frame.iloc[:500], frame.iloc[1000:1400], frame.iloc[500:1000],
                       frame.iloc[[700, 701, 702]], frame.iloc[1400:]])
    bad = tmp_path / "messy.csv"
    messy.to_csv(bad, index=False)
    refused = backtest("--data", str(bad), "--json")
    assert refused.returncode == 2 and "500 out of order" in refused.stderr
    repaired = backtest("--data", str(bad), "--json", "--repair")
    assert repaired.returncode == 0, repaired.stderr
    assert ("kept 2000 of 2003 rows; dropped 0 with bad prices or volume, 3 identical "
            "duplicates, 0 conflicting duplicates") in repaired.stderr
    assert "400 rows moved into time order" in repaired.stderr  # the 400 later ones, moved back
    clean = backtest("--data", str(good), "--json")
    assert clean.returncode == 0, clean.stderr
    assert json.loads(repaired.stdout)["trade_list"] == json.loads(clean.stdout)["trade_list"]
    assert json.loads(repaired.stdout)["summary"] == json.loads(clean.stdout)["summary"]


def test_a_header_only_file_is_an_error_not_a_traceback(good: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    pd.read_csv(good).iloc[:0].to_csv(empty, index=False)
    run = backtest("--data", str(empty))
    assert run.returncode == 2
    assert "no candles" in run.stderr and "Traceback" not in run.stderr
