"""The ledger's equity history: the closed points of the account's equity curve, kept apart.

The equity history (`fractald.core.equity_history`) was most of every
snapshot (77 % of 473 KB after 12,000 bars), rewritten whole at each one.
Its closed points never change once made at a bucket level (they only grow,
until the buckets widen and the level goes up), so they are appended here,
keyed by (level, index), in the same transaction as the snapshot that first
covers them; the snapshot keeps the few open points and how many closed
points it covers (`fractald.session_state.split_equity`). An older snapshot
(the newest one damaged) still finds its points: a level's rows are only
ever appended, and a widening writes the new level beside the old.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterable
from typing import Any

import attrs

from fractald.store.order_store import join_orders
from fractald.store.values import check_int

EquityRow = tuple[int, int, int, float]  # level, index, ts_ms, equity


def equity_rows(rows: Iterable[EquityRow]) -> list[EquityRow]:
    """Validate the rows before any write, so a bad one writes nothing."""
    out = []
    for level, index, ts, equity in rows:
        check_int(level, "equity level", 0)
        check_int(index, "equity index", 0)
        check_int(ts, "equity ts", 0)
        if not math.isfinite(equity):
            raise ValueError(f"equity at ts {ts} must be a finite number, got {equity!r}")
        out.append((level, index, ts, float(equity)))
    return out


def insert_equity(conn: sqlite3.Connection, rows: list[EquityRow]) -> None:
    """Store closed points inside the caller's transaction (a point written again replaces it)."""
    conn.executemany(
        "INSERT OR REPLACE INTO equity_points (level, idx, ts, equity) VALUES (?, ?, ?, ?)", rows
    )


@attrs.frozen
class EquityMark:
    """The equity history's closed points the ledger holds for a snapshot: `count` at `level`."""

    level: int
    count: int


def _curve(state: dict[str, Any]) -> dict[str, Any] | None:
    curve = ((state.get("engine") or {}).get("accounting") or {}).get("equity_curve")
    return curve if isinstance(curve, dict) else None


def _with_curve(state: dict[str, Any], curve: dict[str, Any]) -> dict[str, Any]:
    """`state` with a new equity curve (copies along the path only: the rest is shared)."""
    engine = state["engine"]
    return {
        **state,
        "engine": {**engine, "accounting": {**engine["accounting"], "equity_curve": curve}},
    }


def split_equity(
    state: dict[str, Any], stored: EquityMark | None
) -> tuple[dict[str, Any], list[EquityRow], EquityMark | None]:
    """The snapshot without the equity history's closed points, the rows the ledger lacks, the mark.

    `stored` is what the ledger already holds (from the last snapshot written
    or restored): only the closed points after it are new. Closed points at a
    level only ever grow, so the rows are appended; after the buckets widen
    (a new level) the new level is written whole, once.
    """
    curve = _curve(state)
    if curve is None or not isinstance(curve.get("closed"), (list, tuple)):
        return state, [], stored
    level, closed = int(curve["level"]), curve["closed"]
    start = 0
    if stored is not None and stored.level == level and stored.count <= len(closed):
        start = stored.count
    rows = [(level, i, int(ts), float(eq)) for i, (ts, eq) in enumerate(closed[start:], start)]
    hot = {k: v for k, v in curve.items() if k != "closed"}
    hot["closed_in_ledger"] = len(closed)
    return _with_curve(state, hot), rows, EquityMark(level, len(closed))


def equity_in_ledger(state: dict[str, Any]) -> EquityMark | None:
    """The closed equity points a snapshot left in the ledger (None: it holds them itself)."""
    curve = _curve(state)
    if curve is None or "closed_in_ledger" not in curve:
        return None
    return EquityMark(int(curve["level"]), int(curve["closed_in_ledger"]))


def join_equity(state: dict[str, Any], closed: list[tuple[int, float]]) -> dict[str, Any]:
    """The snapshot with its closed equity points back in it (what `split_equity` took out)."""
    curve = _curve(state)
    if curve is None:
        return state
    whole = {k: v for k, v in curve.items() if k != "closed_in_ledger"}
    whole["closed"] = closed
    return _with_curve(state, whole)


def read_equity(conn: sqlite3.Connection, mark: EquityMark) -> list[tuple[int, float]]:
    """The first `mark.count` closed points of `mark.level`, in order; ValueError if any is missing."""
    check_int(mark.level, "equity level", 0)
    check_int(mark.count, "equity count", 0)
    rows = conn.execute(
        "SELECT idx, ts, equity FROM equity_points WHERE level = ? AND idx < ? ORDER BY idx",
        (mark.level, mark.count),
    ).fetchall()
    if len(rows) != mark.count:
        raise ValueError(
            f"the ledger holds {len(rows)} of the {mark.count} equity points at level "
            f"{mark.level} this snapshot covers"
        )
    return [(int(ts), float(equity)) for _, ts, equity in rows]


def whole_state(conn: sqlite3.Connection, state: dict[str, Any]) -> dict[str, Any]:
    """A stored snapshot with its closed equity points (and its ended orders,
    `fractald.store.order_store`) read back in (for any reader of the file)."""
    mark = equity_in_ledger(state)
    state = state if mark is None else join_equity(state, read_equity(conn, mark))
    return join_orders(conn, state)


class EquityStore:
    """Reading the stored equity points; part of `Ledger`, which owns `_conn`."""

    _conn: sqlite3.Connection

    def whole_state(self, state: dict[str, Any]) -> dict[str, Any]:
        """A snapshot's state with its closed equity points back in (`whole_state`)."""
        return whole_state(self._conn, state)
