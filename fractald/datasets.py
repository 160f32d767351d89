"""Candle data shipped inside the package (see fractald/data/SOURCES.md)."""

from __future__ import annotations

from importlib import resources

import numpy as np
import pandas as pd

BUNDLED_SYMBOL = "BTC-PERP"


def bundled_btc_1m_arrays() -> dict[str, np.ndarray]:
    """The bundled BTC 1-minute candles as plain arrays (ts_open_ms, open, high, low, close, volume)."""
    with (resources.files("fractald.data").joinpath("btc_perp_1m.npz").open("rb") as fh,
          np.load(fh) as npz):
        return {name: npz[name] for name in npz.files}


def bundled_btc_1m() -> pd.DataFrame:
    """The bundled candles as an OHLCV DataFrame indexed by UTC open time."""
    arrays = bundled_btc_1m_arrays()
    index = pd.to_datetime(arrays.pop("ts_open_ms"), unit="ms", utc=True)
    return pd.DataFrame(arrays, index=index)[["open", "high", "low", "close", "volume"]]
