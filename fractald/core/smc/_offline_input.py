"""Input checking and output building shared by the offline SMC detectors."""

from __future__ import annotations

import numpy as np
import pandas as pd


class SmcInputError(ValueError):
    """An input to an SMC detector is unusable; the message names the problem."""


class MissingColumnError(SmcInputError, LookupError):
    """A required column is missing (also a LookupError, like the reference library raises)."""


def columns(ohlc: pd.DataFrame, *names: str) -> tuple[np.ndarray, ...]:
    """The named columns as float64 arrays, matching column names case-insensitively."""
    if not isinstance(ohlc, pd.DataFrame):
        raise SmcInputError(f"ohlc must be a pandas DataFrame, got {type(ohlc).__name__}")
    by_lower: dict[str, object] = {}
    for name in ohlc.columns:
        by_lower.setdefault(str(name).lower(), name)
    missing = [name for name in names if name not in by_lower]
    if missing:
        raise MissingColumnError(
            f"ohlc has no column {', '.join(map(repr, missing))} (columns: {list(ohlc.columns)})"
        )
    return tuple(ohlc[by_lower[name]].to_numpy(dtype=np.float64) for name in names)


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
    return (
        swing_highs_lows["HighLow"].to_numpy(dtype=np.float64),
        swing_highs_lows["Level"].to_numpy(dtype=np.float64),
    )


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
    """A result frame with a 0..n-1 RangeIndex, like the reference library returns."""
    dtypes = {arr.dtype for arr in data.values()}
    if len(dtypes) == 1:
        # one dtype: a single 2-D block is the cheapest frame to build
        return block_frame(np.column_stack(list(data.values())), *data)
    return pd.DataFrame(data, copy=False)


def block_frame(block: np.ndarray, *names: str) -> pd.DataFrame:
    """A result frame over one 2-D array, one column per name."""
    return pd.DataFrame(block, columns=labels(*names), copy=False)
