"""Candle data shipped inside the package (see fractald/data/SOURCES.md)."""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # imported where used: loading the arrays for a backtest needs no pandas
    import pandas as pd

BUNDLED_SYMBOL = "BTC-PERP"


def bundled_btc_1m_arrays() -> dict[str, np.ndarray]:
    """The bundled BTC 1-minute candles as plain arrays (ts_open_ms, open, high, low, close, volume)."""
    with (
        resources.files("fractald.data").joinpath("btc_perp_1m.npz").open("rb") as fh,
        np.load(fh) as npz,
    ):
        return {name: npz[name] for name in npz.files}


def bundled_btc_1m() -> pd.DataFrame:
    """The bundled candles as an OHLCV DataFrame indexed by UTC open time."""
    import pandas as pd

    arrays = bundled_btc_1m_arrays()
    index = pd.to_datetime(arrays.pop("ts_open_ms"), unit="ms", utc=True)
    return pd.DataFrame(arrays, index=index)[["open", "high", "low", "close", "volume"]]


# -- candle files for backtests: every bad row named, nothing dropped silently ---------------

CANDLE_FIELDS = ("open", "high", "low", "close", "volume")
MAX_LISTED_PROBLEMS = 20


def _clean(
    ts: np.ndarray, o: np.ndarray, h: np.ndarray, lo: np.ndarray, c: np.ndarray, v: np.ndarray
) -> bool:
    """Every row passes every check of `candle_problems`: finite, inside [low, high], volume >= 0, times rising."""
    with np.errstate(invalid="ignore"):
        return bool(
            all(np.isfinite(x).all() for x in (o, h, lo, c, v))
            and (h >= lo).all()
            and ((lo <= o) & (o <= h) & (lo <= c) & (c <= h)).all()
            and (v >= 0).all()
            and (np.diff(np.asarray(ts)) > 0).all()
        )


def candle_problems(ts: np.ndarray, arrays: dict[str, np.ndarray]) -> list[tuple[int, str]]:
    """Every bad row of a candle file, in file order: (row, what is wrong).

    Rows are numbered from 1 (the first candle; in a CSV with a header it is
    line 2). Checked: prices and volume finite, high >= low, open and close
    within [low, high], volume >= 0, times in order, and no time twice
    (an identical copy and a conflicting one are told apart).
    """
    o, h, lo, c, v = (np.asarray(arrays[k], dtype="float64") for k in CANDLE_FIELDS)
    if _clean(ts, o, h, lo, c, v):
        return []  # the usual case, checked in bulk: the row loop below (and its dict of times) is for bad files
    problems: list[tuple[int, str]] = []
    finite = np.isfinite(np.vstack([o, h, lo, c, v])).all(axis=0)
    first_row_of: dict[int, int] = {}
    latest = None
    for i, t in enumerate(ts.tolist()):
        row = i + 1
        if not finite[i]:
            problems.append((row, "a price or the volume is missing or not a number"))
        else:
            if h[i] < lo[i]:
                problems.append((row, f"high {h[i]:g} is below low {lo[i]:g}"))
            for name, value in (("open", o[i]), ("close", c[i])):
                if not lo[i] <= value <= h[i] and h[i] >= lo[i]:
                    problems.append(
                        (
                            row,
                            (f"{name} {value:g} is outside the bar [low {lo[i]:g}, high {h[i]:g}]"),
                        )
                    )
            if v[i] < 0:
                problems.append((row, f"volume {v[i]:g} is negative"))
        if t in first_row_of:
            j = first_row_of[t] - 1
            same = all(np.asarray(arrays[k])[j] == np.asarray(arrays[k])[i] for k in CANDLE_FIELDS)
            problems.append(
                (
                    row,
                    (
                        f"time {_stamp(t)} repeats row {j + 1} "
                        f"({'an identical copy' if same else 'with different values'})"
                    ),
                )
            )
            continue
        first_row_of[t] = row
        if latest is not None and t < latest[0]:
            problems.append(
                (
                    row,
                    (f"time {_stamp(t)} is out of order (row {latest[1]} was {_stamp(latest[0])})"),
                )
            )
        if latest is None or t > latest[0]:
            latest = (t, row)
    return problems


REPAIR_HINT = (
    "re-run with --repair to drop the bad rows, sort the rest and keep the first of "
    "each repeated time (a summary is printed)"
)


def describe_candle_problems(
    source: object,
    problems: list[tuple[int, str]],
    *,
    remedy: str = REPAIR_HINT,
    lines: Sequence[int] | None = None,
) -> str:
    """One message for an error: counts by kind, then the first rows, one per line.

    With ``lines`` (a CSV: the file line of each row, ``csv_row_lines``) each
    row is also named by its line in the file, so an editor goes straight to it.
    """
    kinds: dict[str, int] = {}
    for _, what in problems:
        kind = _kind(what)
        kinds[kind] = kinds.get(kind, 0) + 1
    rows = {row for row, _ in problems}
    head = f"{source}: {len(rows)} bad candle row(s): " + ", ".join(
        f"{n} {kind}" for kind, n in kinds.items()
    )
    listed = [
        f"  row {row}{_line(row, lines)}: {what}" for row, what in problems[:MAX_LISTED_PROBLEMS]
    ]
    if len(problems) > MAX_LISTED_PROBLEMS:
        listed.append(f"  ... and {len(problems) - MAX_LISTED_PROBLEMS} more")
    return "\n".join([head, *listed, remedy])


def _line(row: int, lines: Sequence[int] | None) -> str:
    return f" (line {lines[row - 1]})" if lines is not None and row <= len(lines) else ""


def csv_row_lines(path: str | Path) -> list[int]:
    """The file line (from 1) of each data row of a CSV as pandas reads it (blank lines skipped)."""
    with open(path, "rb") as fh:
        numbered = [n for n, raw in enumerate(fh, start=1) if raw.strip()]
    return numbered[1:]  # the first non-blank line is the header


def repair_candles(
    ts: np.ndarray, arrays: dict[str, np.ndarray]
) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, int]]:
    """The rows a backtest can trust, in time order, and what was done to get them.

    Rows with bad prices or volume are dropped (nothing is invented); the
    rest are sorted by time; of rows sharing a time the first in the file
    is kept.
    """
    o, h, lo, c, v = (np.asarray(arrays[k], dtype="float64") for k in CANDLE_FIELDS)
    with np.errstate(invalid="ignore"):
        sane = (
            np.isfinite(np.vstack([o, h, lo, c, v])).all(axis=0)
            & (h >= lo)
            & (lo <= o)
            & (o <= h)
            & (lo <= c)
            & (c <= h)
            & (v >= 0)
        )
    idx = np.flatnonzero(sane)
    order = idx[np.argsort(ts[idx], kind="stable")]
    keep = np.concatenate(([True], np.diff(ts[order]) > 0)) if len(order) else order.astype(bool)
    kept = order[keep]
    dropped_dupes = order[~keep]
    identical = sum(
        1
        for i in dropped_dupes
        if all(
            np.asarray(arrays[k])[i]
            == np.asarray(arrays[k])[kept[np.searchsorted(ts[kept], ts[i])]]
            for k in CANDLE_FIELDS
        )
    )
    summary = {
        "rows": len(ts),
        "kept": len(kept),
        "dropped_bad_values": int(len(ts) - len(idx)),
        "dropped_identical_duplicates": identical,
        "dropped_conflicting_duplicates": int(len(dropped_dupes) - identical),
        # Rows that came after a later time in the file: the ones the sort moved back.
        "moved_into_order": int(np.count_nonzero(kept[1:] < np.maximum.accumulate(kept)[:-1]))
        if len(kept)
        else 0,
    }
    return ts[kept], {k: np.asarray(arrays[k])[kept] for k in CANDLE_FIELDS}, summary


def describe_repair(source: object, summary: dict[str, int]) -> str:
    return (
        f"{source}: repaired: kept {summary['kept']} of {summary['rows']} rows; dropped "
        f"{summary['dropped_bad_values']} with bad prices or volume, "
        f"{summary['dropped_identical_duplicates']} identical duplicates, "
        f"{summary['dropped_conflicting_duplicates']} conflicting duplicates (the first row "
        f"of each time kept); {summary['moved_into_order']} rows moved into time order"
    )


def _kind(what: str) -> str:
    for key, kind in (
        ("repeats", "repeated times"),
        ("out of order", "out of order"),
        ("below low", "high below low"),
        ("outside the bar", "open/close outside the bar"),
        ("negative", "negative volume"),
        ("not a number", "missing values"),
    ):
        if key in what:
            return kind
    return "other"


def _stamp(ts_ms: int) -> str:
    import pandas as pd

    return pd.Timestamp(ts_ms, unit="ms", tz="UTC").strftime("%Y-%m-%d %H:%M")
