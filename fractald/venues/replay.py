"""Replay sources: candle files (CSV, JSON, Parquet), recorded WS captures, and pacing.

Candle files become base candles, as columns (`Candles`, what the backtest
runs on) or as a list of Bars; the timeframe is read from the data (the
most common spacing), so 1-minute and 5-minute files both work. pandas and
trio are imported where they are used: a backtest on columns needs neither.
Captures use the cryptofeed layout: a first line `<url> <-> <epoch s>`,
then `<receive epoch s>: <raw message>` per line; REST captures are
`<url> -> <epoch s>: <raw JSON>`.

Pacing takes time from trio only, so a MockClock test runs a day of
candles in no time.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import attrs
import numpy as np

from fractald.core.candles import Candles
from fractald.core.models import TIMEFRAME_MS, Bar

if TYPE_CHECKING:
    import pandas as pd
from fractald.datasets import BUNDLED_SYMBOL, bundled_btc_1m_arrays

T = TypeVar("T")

CANDLE_SUFFIXES = (".csv", ".json", ".parquet", ".pq")
_TIME_COLUMNS = ("ts_open_ms", "timestamp", "date", "time", "open_time", "t")
_PRICE_COLUMNS = ("open", "high", "low", "close", "volume")


class ReplayError(ValueError):
    """A replay file that cannot be used; the message names the file and the problem."""


@attrs.frozen(slots=True)
class CaptureLine:
    """One recorded message: when it was received (epoch s) and the raw text."""

    received_s: float
    raw: str


@attrs.frozen(slots=True)
class RestCapture:
    url: str
    received_s: float
    body: str


# -- candles --------------------------------------------------------------------


def _timeframe_of(ts_ms: np.ndarray, path: object) -> str:
    if len(ts_ms) < 2:
        raise ReplayError(f"{path}: need at least 2 candles to tell the timeframe")
    diffs = np.diff(ts_ms)
    values, counts = np.unique(diffs[diffs > 0], return_counts=True)
    if not len(values):
        raise ReplayError(f"{path}: candle times do not increase")
    step = int(values[np.argmax(counts)])
    for name, ms in TIMEFRAME_MS.items():
        if ms == step:
            return name
    raise ReplayError(
        f"{path}: candle spacing {step} ms is not a known timeframe ({', '.join(TIMEFRAME_MS)})"
    )


def _times_ms(column: pd.Series, path: object) -> np.ndarray:
    import pandas as pd

    if pd.api.types.is_numeric_dtype(column):
        values = column.to_numpy(dtype="float64")
        # Seconds, milliseconds or microseconds since the epoch: pick by magnitude.
        scale = 1000.0 if values.max() < 1e11 else 1e-3 if values.max() > 1e14 else 1.0
        return (values * scale).astype("int64")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "could not infer format": we check below
        stamps = pd.to_datetime(column, utc=True, errors="coerce")
    if stamps.isna().any():
        raise ReplayError(
            f"{path}: unreadable time in row {int(stamps.isna().to_numpy().argmax())}"
        )
    return stamps.dt.as_unit("ms").astype("int64").to_numpy()


def frame_to_bars(frame: pd.DataFrame, symbol: str, path: object = "frame") -> list[Bar]:
    """An OHLCV DataFrame (time column or DatetimeIndex) as base Bars, sorted, duplicates dropped."""
    ts, arrays = frame_arrays(frame, path)
    return arrays_to_bars(ts, arrays, symbol, path)


def frame_arrays(
    frame: pd.DataFrame, path: object = "frame"
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The open times (ms) and OHLCV columns of a frame, in the file's order, unchecked."""
    import pandas as pd

    if frame.empty:
        raise ReplayError(f"{path}: no candles (the file has no rows, only a header?)")
    columns = {c.lower(): c for c in frame.columns}
    missing = [c for c in _PRICE_COLUMNS if c not in columns]
    if missing:
        raise ReplayError(
            f"{path}: missing column(s) {', '.join(missing)}; have {list(frame.columns)}"
        )
    time_col = next((columns[c] for c in _TIME_COLUMNS if c in columns), None)
    if time_col is not None:
        ts = _times_ms(frame[time_col], path)
    elif isinstance(frame.index, pd.DatetimeIndex):
        ts = _times_ms(frame.index.to_series(), path)
    else:
        raise ReplayError(f"{path}: no time column (one of {', '.join(_TIME_COLUMNS)})")
    try:
        arrays = {
            c: pd.to_numeric(frame[columns[c]], errors="coerce").to_numpy(dtype="float64")
            for c in _PRICE_COLUMNS
        }
    except (TypeError, ValueError) as exc:
        raise ReplayError(f"{path}: unreadable prices: {exc}") from None
    return ts, arrays


def arrays_to_bars(
    ts: np.ndarray, arrays: dict[str, np.ndarray], symbol: str, path: object = "arrays"
) -> list[Bar]:
    return list(arrays_to_candles(ts, arrays, symbol, path))


def arrays_to_candles(
    ts: np.ndarray, arrays: dict[str, np.ndarray], symbol: str, path: object = "arrays"
) -> Candles:
    """Sorted, a repeated time's first row kept, every price finite, times aligned; as columns."""
    if (np.diff(ts) > 0).all():  # in order, no time twice (the usual file): no copies
        cols = [np.asarray(arrays[c], dtype=np.float64) for c in _PRICE_COLUMNS]
    else:
        order = np.argsort(ts, kind="stable")
        ts = ts[order]
        keep = np.concatenate(([True], np.diff(ts) > 0))  # first of any duplicate time wins
        ts = ts[keep]
        cols = [arrays[c][order][keep] for c in _PRICE_COLUMNS]
    bad = np.zeros(len(ts), dtype=bool)
    for col in cols:  # column by column: no stacked copy of every price
        bad |= ~np.isfinite(col)
    if bad.any():
        raise ReplayError(f"{path}: non-finite price or volume at candle {int(np.argmax(bad))}")
    timeframe = _timeframe_of(ts, path)
    step = TIMEFRAME_MS[timeframe]
    if (ts % step).any():
        raise ReplayError(f"{path}: candle times are not aligned to {timeframe}")
    return Candles(symbol, timeframe, ts, *cols)


def load_candles(path: str | Path, symbol: str) -> list[Bar]:
    """Candles from CSV, JSON (pandas "columns" layout, as freqtrade writes) or Parquet."""
    return frame_to_bars(read_candle_frame(path), symbol, path)


def load_candle_columns(path: str | Path, symbol: str) -> Candles:
    """`load_candles` as columns."""
    ts, arrays = read_candle_arrays(path)
    return arrays_to_candles(ts, arrays, symbol, path)


def read_candle_arrays(path: str | Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """`frame_arrays(read_candle_frame(path))`; a Parquet file with a numeric time column is read a
    column at a time with pyarrow, never as a whole table and a DataFrame (2M candles: 240 MB, not 520)."""
    if Path(path).suffix.lower() in (".parquet", ".pq") and Path(path).is_file():
        arrays = _parquet_columns(path)
        if arrays is not None:
            return arrays
    return frame_arrays(read_candle_frame(path), path)


def _parquet_columns(path: str | Path) -> tuple[np.ndarray, dict[str, np.ndarray]] | None:
    """Time and OHLCV columns, or None when the file needs the DataFrame path (timestamps, an index)."""
    try:
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq
        import pyarrow.types as pat

        file = pq.ParquetFile(path)
    except (ImportError, OSError, ValueError):
        return None  # read_candle_frame names the problem
    schema = file.schema_arrow
    columns = {name.lower(): name for name in schema.names}
    time_col = next((columns[c] for c in _TIME_COLUMNS if c in columns), None)
    if (
        time_col is None
        or file.metadata.num_rows == 0
        or any(c not in columns for c in _PRICE_COLUMNS)
        or not all(
            pat.is_integer(t) or pat.is_floating(t)
            for t in (
                schema.field(n).type for n in (time_col, *(columns[c] for c in _PRICE_COLUMNS))
            )
        )
    ):
        return None

    def column(name: str) -> np.ndarray | None:
        # The Arrow buffers as float64 views (Arrow's own to_numpy would import pandas); a null
        # has no value in the buffer, so a column with one takes the DataFrame path (NaN, named).
        chunks = [
            pc.cast(c, pa.float64())
            for c in file.reader.read_column(schema.names.index(name)).chunks
            if len(c)
        ]
        if any(c.null_count for c in chunks):
            return None
        parts = [
            np.frombuffer(c.buffers()[1], dtype=np.float64, count=len(c), offset=c.offset * 8)
            for c in chunks
        ]
        pa.default_memory_pool().release_unused()  # the pool would keep each column's decoding space
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    values = column(time_col)
    prices = {c: column(columns[c]) for c in _PRICE_COLUMNS}
    if values is None or any(p is None for p in prices.values()):
        return None
    # Seconds, milliseconds or microseconds since the epoch: pick by magnitude (as _times_ms).
    scale = 1000.0 if values.max() < 1e11 else 1e-3 if values.max() > 1e14 else 1.0
    return (values * scale).astype("int64"), {c: p for c, p in prices.items() if p is not None}


REPLAY_REPAIR_HINT = (
    "set [feed] replay_repair = true to drop the bad rows, sort the rest and "
    "keep the first of each repeated time (the daemon logs what it did), or "
    "fix the file"
)


def candle_file_problems(path: str | Path) -> str | None:
    """What is wrong with a replay candle file (counts, then the first rows by line), or None."""
    from fractald.datasets import candle_problems, csv_row_lines, describe_candle_problems

    ts, arrays = frame_arrays(read_candle_frame(path), path)
    problems = candle_problems(ts, arrays)
    if not problems:
        return None
    lines = csv_row_lines(path) if Path(path).suffix.lower() == ".csv" else None
    return describe_candle_problems(path, problems, remedy=REPLAY_REPAIR_HINT, lines=lines)


def load_checked_candles(path: str | Path, symbol: str, repair: bool, log: Any) -> Candles:
    """A replay candle file, never silently changed: bad rows refuse it, or (asked) are repaired.

    Refused: a ReplayError with every problem named. Repaired: the summary is logged
    (``replay_repaired``) before the first candle goes out.
    """
    from fractald.datasets import candle_problems, describe_repair, repair_candles

    ts, arrays = frame_arrays(read_candle_frame(path), path)
    if candle_problems(ts, arrays):
        if not repair:
            raise ReplayError(candle_file_problems(path) or f"{path}: bad candle rows")
        ts, arrays, summary = repair_candles(ts, arrays)
        log.warning(
            "replay_repaired", path=str(path), message=describe_repair(path, summary), **summary
        )
    return arrays_to_candles(ts, arrays, symbol, path)


def read_candle_frame(path: str | Path) -> pd.DataFrame:
    """A candle file as it is, one row per line of the file (CSV, JSON or Parquet)."""
    import pandas as pd

    path = Path(path)
    suffix = path.suffix.lower()
    if not path.is_file():
        raise ReplayError(f"replay file {path} does not exist")
    try:
        if suffix == ".csv":
            frame = pd.read_csv(path)
        elif suffix == ".json":
            frame = pd.read_json(path)
        elif suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
        else:
            raise ReplayError(
                f"{path}: unknown candle format {suffix!r}; use {', '.join(CANDLE_SUFFIXES)}"
            )
    except ReplayError:
        raise
    except (ValueError, OSError, ImportError) as exc:
        raise ReplayError(f"{path}: cannot read: {exc}") from exc
    return frame


def bundled_candles(symbol: str = BUNDLED_SYMBOL) -> list[Bar]:
    """The embedded default: real BTC 1-minute candles shipped inside the package."""
    return list(bundled_candle_columns(symbol))


def bundled_candle_columns(symbol: str = BUNDLED_SYMBOL) -> Candles:
    """`bundled_candles` as columns."""
    arrays = bundled_btc_1m_arrays()
    return arrays_to_candles(arrays["ts_open_ms"].astype("int64"), arrays, symbol, "bundled")


# -- captures -------------------------------------------------------------------


def is_capture(path: str | Path) -> bool:
    """cryptofeed captures are named like BINANCE_FUTURES.ws.1.0."""
    return ".ws." in Path(path).name


def read_capture(path: str | Path) -> tuple[str, list[CaptureLine]]:
    """The stream URL and every recorded message of a cryptofeed WS capture."""
    lines = Path(path).read_text().splitlines()
    if not lines or " <-> " not in lines[0]:
        raise ReplayError(f"{path}: first line should be '<url> <-> <epoch s>'")
    url = lines[0].split(" <-> ", 1)[0]
    out = []
    for n, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        stamp, sep, raw = line.partition(": ")
        try:
            received = float(stamp)
        except ValueError:
            received = math.nan
        if not sep or math.isnan(received):
            raise ReplayError(f"{path}:{n}: expected '<epoch s>: <message>'")
        out.append(CaptureLine(received, raw))
    return url, out


def read_rest_capture(path: str | Path) -> list[RestCapture]:
    """REST responses of a cryptofeed capture (`<url> -> <epoch s>: <body>`)."""
    out = []
    for n, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if not line.strip():
            continue
        url, sep, rest = line.partition(" -> ")
        stamp, sep2, body = rest.partition(": ")
        if not sep or not sep2:
            raise ReplayError(f"{path}:{n}: expected '<url> -> <epoch s>: <body>'")
        out.append(RestCapture(url, float(stamp), body))
    return out


# -- pacing ---------------------------------------------------------------------


async def paced(
    items: Iterable[T], time_ms: Callable[[T], int], speed: float, *, checkpoint_every: int = 256
) -> AsyncIterator[T]:
    """Yield items at `speed` times the pace of their own timestamps (0: as fast as possible).

    The schedule is anchored at the first item, so a slow consumer does not
    make the replay drift further and further behind.
    """
    import trio
    import trio.lowlevel

    if speed < 0 or not math.isfinite(speed):
        raise ValueError(f"replay speed must be >= 0 and finite, got {speed!r}")
    start_clock: float | None = None
    start_ms = 0
    for n, item in enumerate(items):
        if speed > 0:
            if start_clock is None:
                start_clock, start_ms = trio.current_time(), time_ms(item)
            due = start_clock + (time_ms(item) - start_ms) / 1000.0 / speed
            await trio.sleep_until(due)
        elif n % checkpoint_every == 0:
            await trio.lowlevel.checkpoint()  # let the rest of the daemon run
        yield item
