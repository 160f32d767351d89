"""Candles as columns: one NumPy array per field instead of one `Bar` object per candle.

A month of 1-minute candles as `Bar` objects costs about half a KiB of
Python objects per candle (2 million candles: over a gigabyte); as columns
it is 48 bytes. `Candles` behaves as a read-only sequence of `Bar`s: indexing
and iterating make each `Bar` when it is asked for (the backtest loop holds
one at a time), slicing and `between` give views that share the arrays.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import overload

import numpy as np

from fractald.core.models import TIMEFRAME_MS, Bar

FIELDS = ("open", "high", "low", "close", "volume")


class Candles(Sequence[Bar]):
    """Complete base candles of one symbol and timeframe, in time order, as columns."""

    __slots__ = ("close", "high", "low", "open", "symbol", "timeframe", "ts_open", "volume")

    def __init__(
        self,
        symbol: str,
        timeframe: str,
        ts_open: np.ndarray,
        open: np.ndarray,
        high: np.ndarray,
        low: np.ndarray,
        close: np.ndarray,
        volume: np.ndarray,
    ) -> None:
        if timeframe not in TIMEFRAME_MS:
            raise ValueError(f"unknown timeframe {timeframe!r}; allowed: {', '.join(TIMEFRAME_MS)}")
        self.symbol = symbol
        self.timeframe = timeframe
        self.ts_open = np.asarray(ts_open, dtype=np.int64)
        columns = [np.asarray(c, dtype=np.float64) for c in (open, high, low, close, volume)]
        for name, column in zip(FIELDS, columns, strict=True):
            if column.shape != self.ts_open.shape:
                raise ValueError(
                    f"column {name} has {column.shape[0]} candles, ts_open has {self.ts_open.shape[0]}"
                )
        self.open, self.high, self.low, self.close, self.volume = columns

    @classmethod
    def from_bars(cls, bars: Sequence[Bar]) -> Candles:
        """Columns of a list of complete bars of one symbol and timeframe (empty: ValueError)."""
        if not bars:
            raise ValueError("no candles")
        first = bars[0]
        others = {(b.symbol, b.timeframe) for b in bars} - {(first.symbol, first.timeframe)}
        if others:
            raise ValueError(
                f"candles of {first.symbol} {first.timeframe} mixed with {min(others)}"
            )
        return cls(
            first.symbol,
            first.timeframe,
            np.array([b.ts_open for b in bars], dtype=np.int64),
            *(np.array([getattr(b, f) for b in bars], dtype=np.float64) for f in FIELDS),
        )

    def __len__(self) -> int:
        return len(self.ts_open)

    @overload
    def __getitem__(self, index: int) -> Bar: ...

    @overload
    def __getitem__(self, index: slice) -> Candles: ...

    def __getitem__(self, index: int | slice) -> Bar | Candles:
        if isinstance(index, slice):
            if index.step not in (None, 1):
                raise ValueError("candles slice only with step 1")
            return Candles(
                self.symbol,
                self.timeframe,
                self.ts_open[index],
                self.open[index],
                self.high[index],
                self.low[index],
                self.close[index],
                self.volume[index],
            )
        i = range(len(self))[index]  # IndexError when out of range, negative indices as lists
        return Bar(
            self.symbol,
            self.timeframe,
            int(self.ts_open[i]),
            float(self.open[i]),
            float(self.high[i]),
            float(self.low[i]),
            float(self.close[i]),
            float(self.volume[i]),
        )

    def __iter__(self) -> Iterator[Bar]:
        """Each candle as a `Bar`, made as it is reached (converted in chunks: fast, little memory)."""
        symbol, timeframe, chunk = self.symbol, self.timeframe, 4096
        for lo in range(0, len(self), chunk):
            hi = lo + chunk
            ts = self.ts_open[lo:hi].tolist()
            o, h, low, c, v = (
                col[lo:hi].tolist()
                for col in (self.open, self.high, self.low, self.close, self.volume)
            )
            for i, t in enumerate(ts):
                yield Bar(symbol, timeframe, t, o[i], h[i], low[i], c[i], v[i])

    def between(self, start_ms: int | None, end_ms: int | None) -> Candles:
        """The candles opening at or after `start_ms` and before `end_ms` (None: unbounded), a view."""
        lo = 0 if start_ms is None else int(np.searchsorted(self.ts_open, start_ms, side="left"))
        hi = (
            len(self) if end_ms is None else int(np.searchsorted(self.ts_open, end_ms, side="left"))
        )
        return self[lo : max(lo, hi)]

    @property
    def nbytes(self) -> int:
        return sum(
            c.nbytes
            for c in (self.ts_open, self.open, self.high, self.low, self.close, self.volume)
        )

    def __repr__(self) -> str:
        return f"Candles({self.symbol} {self.timeframe}, {len(self)} candles)"
