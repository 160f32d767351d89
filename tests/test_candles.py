"""Candles as columns: the same bars as the list of Bar objects, in a fraction of the memory."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fractald.core.candles import Candles
from fractald.core.models import Bar
from fractald.venues.replay import bundled_candle_columns, bundled_candles


def test_columns_give_the_same_bars_as_the_list() -> None:
    columns = bundled_candle_columns()
    bars = bundled_candles()
    assert len(columns) == len(bars) == 45_031
    assert list(columns) == bars
    assert columns[0] == bars[0] and columns[-1] == bars[-1] and columns[12_345] == bars[12_345]
    assert list(columns[100:200]) == bars[100:200]
    with pytest.raises(IndexError):
        columns[len(bars)]
    # 48 bytes a candle, against hundreds for a Bar each
    assert columns.nbytes == 48 * len(bars)


def test_between_is_a_half_open_time_range() -> None:
    columns = bundled_candle_columns()
    bars = bundled_candles()
    start, end = bars[1000].ts_open, bars[2000].ts_open
    chosen = columns.between(start, end)
    assert list(chosen) == [b for b in bars if start <= b.ts_open < end]
    assert len(columns.between(None, None)) == len(bars)
    assert len(columns.between(end, start)) == 0
    assert columns.between(start + 1, None)[0] == bars[1001]  # a start between candles


def test_from_bars_round_trips_and_refuses_mixed_series() -> None:
    bars = bundled_candles()[:50]
    assert list(Candles.from_bars(bars)) == bars
    other = Bar("ETH-PERP", "1m", bars[-1].ts_open + 60_000, 1.0, 1.0, 1.0, 1.0, 0.0)
    with pytest.raises(ValueError, match="BTC-PERP 1m mixed with .*ETH-PERP"):
        Candles.from_bars([*bars, other])
    with pytest.raises(ValueError, match="no candles"):
        Candles.from_bars([])


def test_bad_columns_are_named() -> None:
    ts = np.arange(3, dtype=np.int64) * 60_000
    ones = np.ones(3)
    with pytest.raises(ValueError, match="column close has 2 candles, ts_open has 3"):
        Candles("X", "1m", ts, ones, ones, ones, ones[:2], ones)
    with pytest.raises(ValueError, match="unknown timeframe '7m'"):
        Candles("X", "7m", ts, ones, ones, ones, ones, ones)


def test_columns_pickle_as_columns() -> None:
    columns = bundled_candle_columns()[:1000]
    again = pickle.loads(pickle.dumps(columns))
    assert list(again) == list(columns)


def test_a_backtest_imports_no_scipy_pandas_or_trio(tmp_path: Path) -> None:
    # Half of a backtest's CPU was imports (empyrical's SciPy, pandas): they stay out of its path.
    code = ("import sys; sys.argv = ['fractald', 'backtest', '--from', '2022-01-10', '--to', '2022-01-11', '--json']\n"
            "from fractald.cli import fractald_main\n"
            "rc = fractald_main()\n"
            "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'scipy', 'pandas', 'empyrical', 'trio', 'matplotlib'})\n"
            "print('HEAVY', heavy, file=sys.stderr)\n"
            "sys.exit(rc)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["summary"]["bars"] == 1440
    assert "HEAVY []" in done.stderr, done.stderr
