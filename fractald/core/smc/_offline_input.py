"""Input checking and output building shared by the offline SMC detectors."""

from __future__ import annotations

import numpy as np
import pandas as pd

try:  # public since pandas 3.0, for libraries that build frames block by block
    from pandas.api.internals import create_dataframe_from_blocks as _from_blocks
except ImportError:  # pragma: no cover - older pandas
    _from_blocks = None


class SmcInputError(ValueError):
    """An input to an SMC detector is unusable; the message names the problem."""


class MissingColumnError(SmcInputError, LookupError):
    """A required column is missing (also a LookupError, like the reference library raises)."""


def columns(ohlc: pd.DataFrame, *names: str) -> tuple[np.ndarray, ...]:
    """The named columns as float64 arrays, matching column names case-insensitively.

    A column named exactly (lower case) is taken first; otherwise the first column whose
    lower-cased name matches. The arrays may be read-only views into `ohlc`.
    """
    if not isinstance(ohlc, pd.DataFrame):
        raise SmcInputError(f"ohlc must be a pandas DataFrame, got {type(ohlc).__name__}")
    header = ohlc.columns
    found: list[object] = [name for name in names if name in header]
    if len(found) < len(names):
        by_lower: dict[str, object] = {}
        for label in header:
            by_lower.setdefault(str(label).lower(), label)
        missing = [name for name in names if name not in by_lower]
        if missing:
            raise MissingColumnError(
                f"ohlc has no column {', '.join(map(repr, missing))} (columns: {list(header)})"
            )
        found = [name if name in header else by_lower[name] for name in names]
    return _read(ohlc, found)


def _read(data: pd.DataFrame, names: list) -> tuple[np.ndarray, ...]:
    """Columns as float64 arrays, without a pandas Series per column when that is possible.

    Building a Series per column costs tens of microseconds (more with cold caches), more
    than the detectors' own work on some inputs. When pandas holds the whole frame in one
    2-D NumPy block, to_numpy() is a view of it and its columns are free. Whether that is
    so is only known to a private pandas property, probed defensively: without it (other
    pandas versions) every frame takes the public per-column path, with the same result.
    """
    header = data.columns
    if getattr(data, "_can_fast_transpose", False) is True and header.is_unique:
        values = data.to_numpy(copy=False)
        if values.dtype == np.float64:
            return tuple(values[:, header.get_loc(name)] for name in names)
    return tuple(data[name].to_numpy(dtype=np.float64) for name in names)


def swings(swing_highs_lows: pd.DataFrame, n: int) -> tuple[np.ndarray, np.ndarray]:
    """HighLow and Level of a swing_highs_lows() result, checked against the candle count."""
    if not isinstance(swing_highs_lows, pd.DataFrame):
        raise SmcInputError(
            "swing_highs_lows must be the DataFrame returned by swing_highs_lows(), "
            f"got {type(swing_highs_lows).__name__}"
        )
    missing = [c for c in ("HighLow", "Level") if c not in swing_highs_lows.columns]
    if missing:
        raise MissingColumnError(
            f"swing_highs_lows has no column {', '.join(map(repr, missing))}; "
            "pass the result of swing_highs_lows()"
        )
    if len(swing_highs_lows) != n:
        raise SmcInputError(
            f"swing_highs_lows has {len(swing_highs_lows)} rows but ohlc has {n}; "
            "compute it from the same candles"
        )
    highlow, level = _read(swing_highs_lows, ["HighLow", "Level"])
    return highlow, level


# Column labels of each output shape, built once: building a string Index per call costs
# several times more than the frame around it (pandas 3 infers an Arrow-backed dtype).
_LABELS: dict[tuple[str, ...], pd.Index] = {}


def labels(*names: str) -> pd.Index:
    """The (shared, immutable) column Index for these names."""
    index = _LABELS.get(names)
    if index is None:
        index = _LABELS[names] = pd.Index(names)
    return index


def frame(data: dict[str, np.ndarray]) -> pd.DataFrame:
    """A result frame with a 0..n-1 RangeIndex, like the reference library returns.

    One 2-D block when all columns share a dtype; otherwise each array becomes its own
    block as is (no copy, no inference) through pandas' low-level constructor, which
    costs a fraction of the dict constructor. Older pandas without it take the dict path.
    """
    arrays = list(data.values())
    if len({arr.dtype for arr in arrays}) == 1:
        return block_frame(np.stack(arrays), *data)
    n = len(arrays[0])
    if _from_blocks is None:
        out = pd.DataFrame(dict(enumerate(arrays)), index=pd.RangeIndex(n), copy=False)
        out.columns = labels(*data)
        return out
    blocks = [(arr.reshape(1, n), np.array([i])) for i, arr in enumerate(arrays)]
    return _from_blocks(blocks, index=pd.RangeIndex(n), columns=labels(*data))


def block_frame(rows: np.ndarray, *names: str) -> pd.DataFrame:
    """A result frame over one 2-D array holding one column per ROW, in `names` order.

    Rows, not columns: pandas keeps a block as (columns, candles), so each output column
    is then contiguous, which makes reading it back (the swings frame is read by most
    detectors) several times faster than a strided column. The array becomes the frame's
    only block as is.
    """
    if _from_blocks is None:
        return pd.DataFrame(rows.T, columns=labels(*names), copy=False)
    return _from_blocks(
        [(rows, _placement(len(names)))], index=pd.RangeIndex(rows.shape[1]), columns=labels(*names)
    )


def _placement(count: int) -> np.ndarray:
    """Column positions 0..count-1 (shared, read-only)."""
    found = _PLACEMENT.get(count)
    if found is None:
        found = _PLACEMENT[count] = np.arange(count)
        found.flags.writeable = False
    return found


_PLACEMENT: dict[int, np.ndarray] = {}
