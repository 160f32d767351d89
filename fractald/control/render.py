"""Readable tables for fractalctl: any JSON result, shown the way an operator reads it.

- a dict of scalars is a key/value table;
- a list of dicts is a column table (columns in first-seen order);
- a dict holding dicts or lists becomes titled sections, indented, after its
  scalar fields (``status``: daemon, actors, gates...);
- epoch-millisecond timestamps in fields named like ``ts``/``*_ts``/``*_ms``
  are shown as UTC times; ``--json`` always shows the raw values.

Pure functions over plain data: no I/O here.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

INDENT = "  "
MAX_CELL = 60
# Timestamps are int ms since the epoch (the project's convention); only values in a
# plausible range (2001..5138) are converted, so counts named *_ms stay numbers.
_TS_KEY = re.compile(r"(^ts$|^ts_|_ts$|_at_ms$|^time_ms$|_time_ms$|^last_.*_ms$)")
_TS_RANGE = (1_000_000_000_000, 100_000_000_000_000)


def is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def format_scalar(value: Any, key: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        if _TS_KEY.search(key) and _TS_RANGE[0] <= value < _TS_RANGE[1]:
            return format_ms(value)
        return str(value)
    if isinstance(value, float):
        return format_float(value)
    if isinstance(value, str):
        return value or '""'  # an empty setting, shown as such rather than as a blank
    text = json.dumps(value, separators=(",", ":"), default=str)
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 3] + "..."


def format_float(value: float) -> str:
    """Plain decimals, never exponents: 0.00007718, 2.61, 46412, 10123.46."""
    if not math.isfinite(value):
        return str(value)
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    if abs(value) < 1:
        text = f"{value:.8f}".rstrip("0").rstrip(".")
        return "0" if text in ("", "-0") else text
    return f"{value:.2f}" if abs(value) >= 100 else f"{value:.4g}"


def format_ms(ms: int) -> str:
    when = dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)
    text = when.strftime("%Y-%m-%d %H:%M:%S")
    if ms % 1000:
        text += f".{ms % 1000:03d}"
    return text + "Z"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def kv_table(items: Mapping[str, Any], indent: str = "") -> list[str]:
    if not items:
        return []
    width = max(len(str(k)) for k in items)
    return [
        f"{indent}{k!s:<{width}}  {format_scalar(v, str(k))}".rstrip() for k, v in items.items()
    ]


def column_table(rows: Sequence[Mapping[str, Any]], indent: str = "") -> list[str]:
    columns: list[str] = []
    for row in rows:
        columns.extend(str(k) for k in row if str(k) not in columns)
    if not columns:
        return [f"{indent}(empty)"]
    cells = [[format_scalar(row.get(c), c) for c in columns] for row in rows]
    numeric = [all(_is_number(row.get(c)) or row.get(c) is None for row in rows) for c in columns]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]

    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)]
        return (indent + "  ".join(parts)).rstrip()

    return [line(columns), line(["-" * w for w in widths])] + [line(r) for r in cells]


def _is_row_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def render_lines(value: Any, indent: str = "") -> list[str]:
    if is_scalar(value):
        return [indent + format_scalar(value)]
    if isinstance(value, list):
        if not value:
            return [f"{indent}(none)"]
        if _is_row_list(value):
            return column_table(value, indent)
        if all(is_scalar(v) for v in value):
            return [indent + format_scalar(v) for v in value]
        out: list[str] = []
        for item in value:
            out.extend(render_lines(item, indent))
        return out
    if isinstance(value, dict):
        scalars = {k: v for k, v in value.items() if is_scalar(v) or _is_short_scalar_list(v)}
        nested = {k: v for k, v in value.items() if k not in scalars}
        out = kv_table({k: _join(v) for k, v in scalars.items()}, indent)
        for key, sub in nested.items():
            if out:
                out.append("")
            out.append(f"{indent}{key}")
            out.extend(render_lines(sub, indent + INDENT))
        return out or [f"{indent}(empty)"]
    return [indent + format_scalar(value)]


def _is_short_scalar_list(value: Any) -> bool:
    return isinstance(value, list) and all(is_scalar(v) for v in value) and len(value) <= 12


def _join(value: Any) -> Any:
    if isinstance(value, list):
        return ", ".join(format_scalar(v) for v in value) if value else "-"
    return value


def render(value: Any) -> str:
    """The table fractalctl prints for a result."""
    return "\n".join(render_lines(value))


# --------------------------------------------------------------------------- CSV


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted keys to scalars: {"a": {"b": 1}, "c": [{"d": 2}]} -> {"a.b": 1, "c.0.d": 2}."""
    if is_scalar(value):
        return {prefix or "value": value}
    items = value.items() if isinstance(value, dict) else enumerate(value)
    out: dict[str, Any] = {}
    for key, sub in items:
        out.update(flatten(sub, f"{prefix}.{key}" if prefix else str(key)))
    return out


def to_csv(value: Any) -> str:
    """A list of dicts as a CSV table; anything else as key,value rows of flattened fields.

    Rows without any field (``[{}]``) give just the header line.
    """
    buf = io.StringIO(newline="")
    # RFC 4180 line ends: the writer then quotes any field holding \r or \n.
    writer = csv.writer(buf, lineterminator="\r\n")
    if _is_row_list(value):
        rows = [flatten(row) for row in value]
        columns: list[str] = []
        for row in rows:
            columns.extend(k for k in row if k not in columns)
        writer.writerow(columns)
        for row in rows:
            if columns:
                writer.writerow(["" if row.get(c) is None else row.get(c) for c in columns])
    else:
        writer.writerow(["key", "value"])
        for key, sub in flatten(value).items():
            writer.writerow([key, "" if sub is None else sub])
    return buf.getvalue()
