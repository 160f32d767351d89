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


@pytest.mark.parametrize("seed", range(40))
def test_the_bulk_clean_check_agrees_with_the_row_by_row_one(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # candle_problems answers a clean file in bulk; with the bulk check off, the rows give the same answer.
    from fractald import datasets

    rng = np.random.default_rng(seed)
    n = 30
    ts = np.arange(n, dtype=np.int64) * 60_000
    close = 100 + np.cumsum(rng.normal(0, 1, n))
    arrays = {"open": close + rng.normal(0, 0.1, n), "close": close, "volume": rng.uniform(0, 5, n)}
    arrays["high"] = np.maximum(arrays["open"], close) + 0.5
    arrays["low"] = np.minimum(arrays["open"], close) - 0.5
    if seed % 2:  # half the cases carry one fault of some kind
        i = int(rng.integers(1, n))
        fault = seed % 10
        if fault == 1:
            arrays["high"][i] = arrays["low"][i] - 1
        elif fault == 3:
            arrays["open"][i] = arrays["high"][i] + 1
        elif fault == 5:
            arrays["volume"][i] = -1.0
        elif fault == 7:
            ts[i] = ts[i - 1]
        else:
            arrays["close"][i] = np.nan
    fast = datasets.candle_problems(ts, arrays)
    monkeypatch.setattr(datasets, "_clean", lambda *_: False)
    assert fast == datasets.candle_problems(ts, arrays)
    assert (fast == []) == (seed % 2 == 0)


@pytest.mark.parametrize("layout", ["ms_int", "seconds_float", "with_null", "timestamps", "two_row_groups"])
def test_parquet_read_by_column_equals_the_dataframe_path(layout: str, tmp_path: Path) -> None:
    # A Parquet candle file is read a column at a time (2M candles in 240 MB, not 520); whatever the
    # layout, the arrays are the DataFrame path's, and a layout it cannot read goes that path.
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    from fractald.venues.replay import frame_arrays, read_candle_arrays, read_candle_frame

    n = 500
    ts = 1_640_995_200_000 + np.arange(n, dtype=np.int64) * 60_000
    rng = np.random.default_rng(3)
    close = 100 + np.cumsum(rng.normal(0, 1, n))
    frame = pd.DataFrame({"ts_open_ms": ts, "open": close, "high": close + 1, "low": close - 1, "close": close,
                          "volume": rng.uniform(0, 5, n)})
    if layout == "seconds_float":
        frame = frame.rename(columns={"ts_open_ms": "timestamp"}).assign(timestamp=ts / 1000.0)
    elif layout == "with_null":
        frame["close"] = frame["close"].astype("Float64")
        frame.loc[7, "close"] = None
    elif layout == "timestamps":
        frame = frame.rename(columns={"ts_open_ms": "date"}).assign(date=pd.to_datetime(ts, unit="ms", utc=True))
    path = tmp_path / "candles.parquet"
    frame.to_parquet(path, index=False, row_group_size=200 if layout == "two_row_groups" else None)
    ts_a, arrays_a = read_candle_arrays(path)
    ts_b, arrays_b = frame_arrays(read_candle_frame(path), path)
    assert ts_a.tolist() == ts_b.tolist()
    for name, column in arrays_b.items():
        assert np.array_equal(arrays_a[name], column, equal_nan=True), name
    assert np.isnan(arrays_a["close"][7]) == (layout == "with_null")
