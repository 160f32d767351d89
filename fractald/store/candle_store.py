"""The ledger's candles: the closed bars detection ran on, for rebuilding its state at start-up.

`insert_candles` runs inside the ledger's batch transaction (a bar commits
its events and candles together); `CandleStore` is the part of `Ledger`
that reads and corrects them over the ledger's connection.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterable

from fractald.store import db
from fractald.store.values import check_int, check_text

# Closed candles kept per (symbol, timeframe) for rebuilding detection state at start-up
# (~208 days of 15m bars). Older ones are dropped: detection state is windowed, so what a
# rebuild from this many differs in is long forgotten by the detectors' rolling windows.
CANDLES_KEPT = 20_000
CANDLES_PAGE_SIZE = 5_000  # candles read per query by `candles_page`
CandleRow = tuple[str, str, int, float, float, float, float, float, bool]


def candle_rows(candles: Iterable[CandleRow]) -> list[CandleRow]:
    """Validate and normalise candles before any write, so a bad one writes nothing."""
    rows = []
    for row in candles:
        symbol, timeframe, ts_open, *prices, complete = row
        check_text(symbol, "candle symbol")
        check_text(timeframe, "candle timeframe")
        check_int(ts_open, "candle ts_open", 0)
        rows.append((symbol, timeframe, ts_open, *(float(p) for p in prices), bool(complete)))
    return rows  # type: ignore[return-value]


def insert_candles(conn: sqlite3.Connection, rows: list[CandleRow]) -> None:
    """Append candles inside the caller's transaction, keeping CANDLES_KEPT per series."""
    conn.executemany(
        "INSERT INTO candles (symbol, timeframe, ts_open, open, high, low, close, "
        "volume, complete) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    for symbol, timeframe in {(r[0], r[1]) for r in rows}:
        conn.execute(
            "DELETE FROM candles WHERE symbol = ? AND timeframe = ? AND id <= ("
            "SELECT id FROM candles WHERE symbol = ? AND timeframe = ? "
            "ORDER BY id DESC LIMIT 1 OFFSET ?)",
            (symbol, timeframe, symbol, timeframe, CANDLES_KEPT),
        )


CandleShift = tuple[str, int, float]  # a futures roll: symbol, before this open time, price step


def shift_candles_in(conn: sqlite3.Connection, shift: CandleShift) -> int:
    """Inside a transaction: add the step to `symbol`'s stored candles opening before the time."""
    symbol, before_ms, offset = shift
    check_text(symbol, "candle symbol")
    check_int(before_ms, "before_ms", 0)
    if not math.isfinite(offset):
        raise ValueError(f"offset must be a finite price step, got {offset!r}")
    return conn.execute(
        "UPDATE candles SET open = open + ?, high = high + ?, low = low + ?, "
        "close = close + ? WHERE symbol = ? AND ts_open < ?",
        (offset, offset, offset, offset, symbol, before_ms),
    ).rowcount


class CandleStore:
    """Reading and correcting stored candles; part of `Ledger`, which owns `_conn`."""

    _conn: sqlite3.Connection

    def candles_page(self, after_id: int, limit: int | None = None) -> list[tuple[int, CandleRow]]:
        """Up to `limit` stored candles with ids above `after_id`, in the order detection saw them."""
        check_int(after_id, "after_id", 0)
        limit = CANDLES_PAGE_SIZE if limit is None else check_int(limit, "limit", 1)
        rows = self._conn.execute(
            "SELECT id, symbol, timeframe, ts_open, open, high, low, close, volume, complete "
            "FROM candles WHERE id > ? ORDER BY id LIMIT ?",
            (after_id, limit),
        ).fetchall()
        return [(r[0], (r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], bool(r[9]))) for r in rows]

    def correct_candle(self, row: CandleRow) -> int:
        """Put the venue's true bar over a stored one that went out wrong; the rows changed.

        A feed sends a BarCorrection when a bar it emitted lacked trades (or was a
        placeholder); the next start's detection then runs over the true bar.
        """
        [(symbol, timeframe, ts_open, o, h, lo, c, v, complete)] = candle_rows([row])
        with db.transaction(self._conn) as conn:
            return conn.execute(
                "UPDATE candles SET open = ?, high = ?, low = ?, close = ?, volume = ?, complete = ? "
                "WHERE symbol = ? AND timeframe = ? AND ts_open = ?",
                (o, h, lo, c, v, complete, symbol, timeframe, ts_open),
            ).rowcount

    def shift_candles(self, symbol: str, before_ms: int, offset: float) -> int:
        """Back-adjust a futures roll: add `offset` to the prices of `symbol`'s stored candles
        opening before `before_ms` (every timeframe); the rows changed. Detection rebuilt from
        them then sees one continuous series (`core/continuous.py`), not the step between months.
        """
        with db.transaction(self._conn) as conn:
            return shift_candles_in(conn, (symbol, before_ms, offset))

    def candles_before(self, symbol: str, before_ms: int) -> int:
        """How many candles of `symbol` opening before `before_ms` are stored."""
        row = self._conn.execute(
            "SELECT count(*) FROM candles WHERE symbol = ? AND ts_open < ?", (symbol, before_ms)
        ).fetchone()
        return int(row[0])

    def newest_candles(self) -> dict[str, int]:
        """Per "symbol/timeframe", the open time of the newest stored candle."""
        rows = self._conn.execute(
            "SELECT symbol, timeframe, max(ts_open) FROM candles GROUP BY symbol, timeframe"
        )
        return {f"{symbol}/{timeframe}": int(ts) for symbol, timeframe, ts in rows}
