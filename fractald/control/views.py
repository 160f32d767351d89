"""Command-specific tables for fractalctl: what a trader reads at a glance, in 100 columns.

`render.py` shows any result generically; here the few results people read
most (report, trades, positions, signals, orders) get chosen columns, human times
(`2022-01-07 14:15`) and durations (`3h12m`), a SHORT as side and size, prices on
the instrument's tick (the daemon sends `tick_size` with each row), and
the report as the same table `fractald backtest` prints. `--wide` falls back
to every field; `--json` never comes here.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from fractald.control.render import format_float
from fractald.price_format import price_text
from fractald.term import GREEN, RED, YELLOW, paint, sign_colour

NARROW_CELL = 22  # longest text cell in a narrow table ("stop_loss", "denied: heat_cap"...)


def when(ms: Any) -> str:
    if not isinstance(ms, int) or ms <= 0:
        return "-"
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).strftime("%Y-%m-%d %H:%M")


def duration(ms: Any) -> str:
    """3h12m, 2d 5h, 45m."""
    if not isinstance(ms, (int, float)) or ms < 0:
        return "-"
    minutes = int(ms) // 60_000
    days, rem = divmod(minutes, 1440)
    if days:
        return f"{days}d {rem // 60}h"
    return f"{rem // 60}h{rem % 60:02d}m" if rem >= 60 else f"{rem}m"


def _num(value: Any) -> str:
    return "-" if value is None else format_float(float(value))


def _text(value: Any) -> str:
    text = "-" if value in (None, "") else str(value)
    return text if len(text) <= NARROW_CELL else text[: NARROW_CELL - 1] + "~"


def _side(value: Any, quantity: Any = None) -> str:
    side = str(value or "").upper()
    if side in ("BUY", "LONG") or (quantity is not None and float(quantity) > 0 and not side):
        return "LONG"
    if side in ("SELL", "SHORT"):
        return "SHORT"
    return side or "-"


def _size(value: Any) -> str:
    return "-" if value is None else f"{abs(float(value)):.4g}"


def price_cell(value: Any, row: Mapping[str, Any]) -> str:
    """A price on the row's instrument tick (`tick_size`, sent by the daemon); else plain."""
    if value is None:
        return "-"
    tick = row.get("tick_size")
    if isinstance(tick, (int, float)) and not isinstance(tick, bool) and tick > 0:
        return price_text(float(value), float(tick))
    return format_float(float(value))


def _money(value: Any) -> str:
    return "-" if value is None else f"{float(value):.2f}"


Cell = Callable[[Mapping[str, Any]], str]


def _field(show: Callable[[Any], str], key: str) -> Cell:
    """A cell showing the row's `key` with `show`."""
    return lambda row: show(row.get(key))


def _price(key: str) -> Cell:
    """A cell showing the row's price `key` on the row's tick."""
    return lambda row: price_cell(row.get(key), row)


def _table(
    columns: Mapping[str, Cell],
) -> Callable[[Sequence[Mapping[str, Any]]], list[dict[str, str]]]:
    """A table builder: one line a row, one cell a column (header: how the cell is shown)."""

    def build(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
        return [{head: cell(r) for head, cell in columns.items()} for r in rows]

    return build


# After the close time, whose header names the year when every row shares it.
_TRADE_COLUMNS: dict[str, Cell] = {
    "symbol": _field(_text, "symbol"),
    "strategy": _field(_text, "strategy"),
    "side": _field(_side, "side"),
    "size": _field(_size, "quantity"),
    "entry": _price("entry_price"),
    "P&L": _field(_money, "pnl"),
    "R": _field(_money, "r_multiple"),
    "held": _field(duration, "hold_ms"),
    "why": _field(_text, "exit_reason"),
}


def _trades(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """One line a trade; the exit price and ids are in --wide (100 columns hold the rest)."""
    closes = [when(r.get("ts_exit")) for r in rows]
    years = {c[:4] for c in closes if c != "-"}
    one_year = len(years) == 1
    head = f"closed {years.pop()}" if one_year else "closed (UTC)"
    cells = _table(_TRADE_COLUMNS)(rows)
    return [
        {head: close[5:] if one_year and close != "-" else close, **line}
        for close, line in zip(closes, cells, strict=True)
    ]


_positions = _table(
    {
        "symbol": _field(_text, "symbol"),
        "strategy": _field(_text, "strategy"),
        "side": lambda r: _side(r.get("side"), r.get("quantity")),
        "size": _field(_size, "quantity"),
        "avg": _price("avg_price"),
        "mark": _price("mark_price"),
        "uP&L": _field(_money, "unrealized_pnl"),
        "stop": _price("stop"),
        "at risk": _field(_money, "open_risk"),
        "opened (UTC)": _field(when, "opened_ts"),
    }
)

# One line an order; ids, the average fill and every other field are in --wide.
_orders = _table(
    {
        "time (UTC)": _field(when, "created_ts"),
        "symbol": _field(_text, "symbol"),
        "side": _field(_side, "side"),
        "type": _field(_text, "type"),
        "role": _field(_text, "role"),
        "status": _field(_text, "status"),
        "size": _field(_size, "quantity"),
        "filled": _field(_size, "filled_qty"),
        "price": _price("price"),
        "trigger": _price("trigger_price"),
    }
)

_signals = _table(
    {
        "time (UTC)": _field(when, "ts"),
        "symbol": _field(_text, "symbol"),
        "strategy": _field(_text, "strategy"),
        "tf": _field(_text, "timeframe"),
        "side": _field(_side, "side"),
        "entry": _price("entry"),
        "stop": _price("stop"),
        "conf": _field(_num, "confidence"),
        "outcome": _field(_text, "outcome"),
    }
)


def _report(result: Mapping[str, Any]) -> str:
    from fractald.reporting.export import to_table
    from fractald.reporting.report import Report

    text = to_table(Report.from_dict({k: v for k, v in result.items() if k != "open"}))
    held = result.get("open") or {}
    if held.get("open_positions"):
        text += (
            f"\nOpen now: {held['open_positions']} position(s), unrealized "
            f"{held.get('unrealized_pnl', 0.0):,.2f}; equity {held.get('equity', 0.0):,.2f}\n"
        )
    return text.rstrip("\n")


_ROWS: dict[str, Callable[[Sequence[Mapping[str, Any]]], list[dict[str, str]]]] = {
    "trades": _trades,
    "positions": _positions,
    "signals": _signals,
    "orders": _orders,
}
_EMPTY = {
    "trades": "no closed trades",
    "positions": "flat: no open positions",
    "signals": "no signals yet",
    "orders": "no working orders",
}


def table_for(command: str, result: Any, wide: bool = False, colour: bool = False) -> str | None:
    """The readable table for `command`'s result, or None when the generic render fits.
    With `colour` (a terminal that wants it), gains green, losses red, sides and outcomes too."""
    if wide:
        return None
    if command == "report" and isinstance(result, dict) and "stats" in result:
        return _report(result)
    rows = _ROWS.get(command)
    if rows is None or not isinstance(result, list):
        return None
    if not result:
        return _EMPTY[command]
    return "\n".join(grid(rows(result), colour))


_LEFT = {
    "symbol",
    "strategy",
    "side",
    "tf",
    "why",
    "outcome",
    "opened (UTC)",
    "time (UTC)",
    "type",
    "role",
    "status",
}


_SIGNED = {"P&L", "uP&L", "R"}
# status lines ("  key  value") whose value says all is well (green) or not (red)
_STATUS_GOOD = {
    ("phase", "ready"),
    ("ready", "yes"),
    ("trading_state", "ACTIVE"),
    ("accepting", "yes"),
    ("stale", "no"),
}
_STATUS_BAD = {
    ("ready", "no"),
    ("trading_state", "HALTED"),
    ("trading_state", "REDUCING"),
    ("accepting", "no"),
    ("stale", "yes"),
    ("paused", "yes"),
    ("state", "TRIPPED"),
}
_STATUS_LINE = re.compile(r"^(\s*)(\S+)(\s+)(\S+)$")


def colour_status(text: str) -> str:
    """`fractalctl status` on a terminal: the values that say healthy green, trouble red, and
    any TRIPPED breaker red; only colour is added (strip it and the text is unchanged)."""
    out = []
    for line in text.splitlines():
        m = _STATUS_LINE.match(line)
        if m and (m[2], m[4]) in _STATUS_GOOD | _STATUS_BAD:
            code = GREEN if (m[2], m[4]) in _STATUS_GOOD else RED
            line = f"{m[1]}{m[2]}{m[3]}{paint(m[4], code)}"
        elif " TRIPPED " in f" {line} ":
            line = line.replace("TRIPPED", paint("TRIPPED", RED))
        out.append(line)
    return "\n".join(out)


def cell_colour(column: str, text: str) -> str | None:
    """The colour of one cell: gains green and losses red, LONG green and SHORT red, a denied
    signal yellow; None for the rest."""
    if column in _SIGNED:
        return sign_colour(text)
    if column == "side":
        return {"LONG": GREEN, "SHORT": RED}.get(text.strip())
    if column == "outcome":
        return YELLOW if text.strip().startswith("denied") else None
    return None


def grid(rows: Sequence[Mapping[str, str]], colour: bool = False) -> list[str]:
    """Rows of text as columns: names and times to the left, figures to the right. Colour
    (ANSI) goes round the padded cell, so the columns stay aligned."""
    columns = list(rows[0])
    widths = [max(len(c), *(len(r[c]) for r in rows)) for c in columns]

    def line(cells: Sequence[str], body: bool = False) -> str:
        out = []
        for c, v, w in zip(columns, cells, widths):
            text = v.ljust(w) if c in _LEFT or c.startswith("closed") else v.rjust(w)
            out.append(paint(text, cell_colour(c, v)) if colour and body else text)
        return "  ".join(out).rstrip()

    return [line(columns), line(["-" * w for w in widths])] + [
        line([r[c] for c in columns], body=True) for r in rows
    ]
