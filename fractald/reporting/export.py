"""Render a Report as a terminal table, JSON or CSV; JSON and CSV read back to the same Report.

CSV is "long" (one figure per row: section, key, field, value) so that the
nested report fits one sheet and reads back without loss: floats are
written with repr(), None as an empty cell, booleans as true/false.
"""

from __future__ import annotations

import csv
import datetime as dt
import enum
import io
import json
import types
import typing
from collections.abc import Callable
from typing import Any

import attrs

from fractald.reporting import report as rp
from fractald.reporting.report import Report

CSV_HEADER = ("section", "key", "field", "value")


class Format(enum.Enum):
    TABLE = "table"
    JSON = "json"
    CSV = "csv"


def render(report: Report, fmt: Format | str) -> str:
    """The report as text in `fmt` ("table", "json" or "csv")."""
    try:
        fmt = Format(fmt)
    except ValueError:
        raise ValueError(
            f"unknown report format {fmt!r}; allowed: {', '.join(f.value for f in Format)}"
        ) from None
    return {Format.TABLE: to_table, Format.JSON: to_json, Format.CSV: to_csv}[fmt](report)


# --- JSON -------------------------------------------------------------------------------------


def to_json(report: Report) -> str:
    return json.dumps(report.to_dict(), indent=2, allow_nan=False) + "\n"


def from_json(text: str) -> Report:
    return Report.from_dict(json.loads(text))


# --- CSV --------------------------------------------------------------------------------------

# section name -> (class of its rows, path in Report.to_dict(), keyed by)
_SINGLE_SECTIONS: dict[str, tuple[type, str]] = {
    "period": (rp.Period, "period"),
    "stats": (rp.TradeStats, "stats"),
    "drawdown": (rp.Drawdown, "drawdown"),
    "best_trade": (rp.TradeRef, "best_trade"),
    "worst_trade": (rp.TradeRef, "worst_trade"),
}
_GROUP_SECTIONS = {"strategy": "by_strategy", "symbol": "by_symbol"}
_NESTED = (
    {path for _, path in _SINGLE_SECTIONS.values()} | set(_GROUP_SECTIONS.values()) | {"confidence"}
)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def to_csv(report: Report) -> str:
    data = report.to_dict()
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)

    def rows(section: str, key: str, values: dict[str, Any]) -> None:
        for name, value in values.items():
            writer.writerow((section, key, name, _cell(value)))

    rows("summary", "", {k: v for k, v in data.items() if k not in _NESTED})
    for section, (_, path) in _SINGLE_SECTIONS.items():
        if data[path] is not None:
            rows(section, "", data[path])
    for bucket in data["confidence"]:
        rows("confidence", f"{bucket['low']:g}-{bucket['high']:g}", bucket)
    for section, path in _GROUP_SECTIONS.items():
        for group in data[path]:
            rows(section, group["key"], group["stats"])
    return out.getvalue()


def _decoder(cls: type, field: str) -> Callable[[str], Any]:
    attrs.resolve_types(cls, globalns=vars(rp))
    try:
        tp = attrs.fields_dict(cls)[field].type
    except KeyError:
        raise ValueError(f"CSV names an unknown field {field!r} of {cls.__name__}") from None
    args = typing.get_args(tp) if isinstance(tp, types.UnionType) else (tp,)
    optional = type(None) in args
    base: Any = next(a for a in args if a is not type(None))

    def decode(text: str) -> Any:
        if text == "" and optional:
            return None
        if base is bool:
            if text not in ("true", "false"):
                raise ValueError(f"{cls.__name__}.{field}: expected true/false, got {text!r}")
            return text == "true"
        return base(text)

    return decode


def _decode_row(cls: type, field: str, text: str) -> Any:
    try:
        return _decoder(cls, field)(text)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"bad CSV value for {cls.__name__}.{field}: {text!r} ({exc})") from None


def from_csv(text: str) -> Report:
    """Read back what `to_csv` wrote; a malformed row raises ValueError naming it."""
    reader = csv.reader(io.StringIO(text))
    header = tuple(next(reader, ()))
    if header != CSV_HEADER:
        raise ValueError(f"not a report CSV: header is {header!r}, expected {CSV_HEADER!r}")
    data: dict[str, Any] = {path: None for _, path in _SINGLE_SECTIONS.values()}
    confidence: dict[str, dict[str, Any]] = {}
    groups: dict[str, dict[str, dict[str, Any]]] = {s: {} for s in _GROUP_SECTIONS}
    for line, row in enumerate(reader, start=2):
        if len(row) != 4:
            raise ValueError(f"CSV line {line}: expected 4 cells, got {len(row)}")
        section, key, field, value = row
        if section == "summary":
            data[field] = _decode_row(Report, field, value)
        elif section in _SINGLE_SECTIONS:
            cls, path = _SINGLE_SECTIONS[section]
            data[path] = data[path] or {}
            data[path][field] = _decode_row(cls, field, value)
        elif section == "confidence":
            confidence.setdefault(key, {})[field] = _decode_row(rp.ConfidenceBucket, field, value)
        elif section in groups:
            groups[section].setdefault(key, {})[field] = _decode_row(rp.TradeStats, field, value)
        else:
            raise ValueError(f"CSV line {line}: unknown section {section!r}")
    data["confidence"] = list(confidence.values())
    for section, path in _GROUP_SECTIONS.items():
        data[path] = [{"key": k, "stats": v} for k, v in groups[section].items()]
    return Report.from_dict(data)


# --- table ------------------------------------------------------------------------------------


def _money(value: float | None) -> str:
    return "-" if value is None else f"{value:,.2f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.2f}%"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _when(ts_ms: int | None) -> str:
    if ts_ms is None:
        return "-"
    return dt.datetime.fromtimestamp(ts_ms / 1000, tz=dt.UTC).strftime("%Y-%m-%d %H:%M")


def _duration(ms: int) -> str:
    """3h12m, 2d 5h00m, 45m: what a trader reads at a glance."""
    minutes = ms // 60_000
    days, rem = divmod(minutes, 1440)
    if days:
        return f"{days}d {rem // 60}h{rem % 60:02d}m"
    return f"{rem // 60}h{rem % 60:02d}m" if rem >= 60 else f"{rem}m"


def _grid(headers: list[str], rows: list[list[str]]) -> list[str]:
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]
    fmt = "  ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
    return [fmt.format(*headers), fmt.format(*("-" * w for w in widths))] + [
        fmt.format(*r) for r in rows
    ]


def _first(*values: int | None) -> int | None:
    return next((v for v in values if v is not None), None)


def _stats_row(key: str, s: rp.TradeStats) -> list[str]:
    return [
        key,
        str(s.trades),
        _pct(s.win_rate),
        _money(s.net_pnl),
        _num(s.profit_factor),
        _money(s.expectancy),
        _num(s.avg_r),
    ]


def _trade(ref: rp.TradeRef | None) -> str:
    if ref is None:
        return "-"
    return f"{_money(ref.pnl)}  ({ref.symbol} {ref.strategy} {ref.trade_id}, {_when(ref.ts_exit)})"


def to_table(report: Report) -> str:
    """A plain-text report for a terminal: summary first, then the breakdowns."""
    s, d, p = report.stats, report.drawdown, report.period
    recovery = f"recovered {_when(d.recovery_ms)}" if d.recovered else "not recovered"
    summary = [
        (
            "Period",
            (
                f"{p.label}: {_when(_first(p.start_ms, report.from_ms))} .. "
                f"{_when(_first(report.to_ms, p.end_ms))} UTC"
            ),
        ),
        ("Equity", f"{_money(report.starting_equity)} -> {_money(report.ending_equity)}"),
        ("P&L", f"{_money(report.pnl_abs)}  ({_pct(report.pnl_pct)})"),
        ("Trades", f"{s.trades}  (won {s.wins}, lost {s.losses}, flat {s.breakeven})"),
        ("Win rate", _pct(s.win_rate)),
        ("Avg win / loss", f"{_money(s.avg_win)} / {_money(s.avg_loss)}"),
        ("Profit factor", _num(s.profit_factor)),
        ("Expectancy", f"{_money(s.expectancy)} per trade, {_num(s.avg_r)} R"),
        ("Fees", _money(s.fees)),
        (
            "Sharpe / Sortino / Calmar",
            (
                f"{_num(report.sharpe)} / {_num(report.sortino)} / {_num(report.calmar)}"
                f"  ({report.ratios_note or f'{report.daily_returns} daily returns'})"
            ),
        ),
        ("Max drawdown", f"{_pct(d.max_pct)}  ({_money(d.max_abs)})"),
        (
            "Drawdown time",
            (
                f"{_duration(d.duration_ms)}  peak {_when(d.peak_ms)}, "
                f"trough {_when(d.trough_ms)}, {recovery}"
            ),
        ),
        ("Best trade", _trade(report.best_trade)),
        ("Worst trade", _trade(report.worst_trade)),
    ]
    width = max(len(k) for k, _ in summary)
    lines = [f"{k:<{width}}  {v}" for k, v in summary]
    stat_headers = ["trades", "win rate", "net P&L", "PF", "expectancy", "avg R"]
    for title, groups in (("strategy", report.by_strategy), ("symbol", report.by_symbol)):
        lines += ["", f"By {title}"]
        lines += _grid([title] + stat_headers, [_stats_row(g.key, g.stats) for g in groups])
    lines += ["", "By signal confidence"]
    lines += _grid(
        ["confidence", "trades", "win rate", "net P&L"],
        [
            [f"{b.low:g}-{b.high:g}", str(b.trades), _pct(b.win_rate), _money(b.net_pnl)]
            for b in report.confidence
        ],
    )
    return "\n".join(lines) + "\n"
