"""fractalctl's readable tables: 100 columns, human times and durations, a SHORT as side and size."""

from __future__ import annotations

from fractald.control.views import duration, table_for, when
from fractald.core.models import ClosedTrade, Side
from fractald.reporting.report import build_report

T0 = 1_641_564_900_000  # 2022-01-07 14:15 UTC


def trade_row(n: int, side: str, pnl: float) -> dict:
    return {"trade_id": f"liquidity_sweep:BTC-PERP:15m:{side}:{T0 + n}", "symbol": "BTC-PERP",
            "strategy": "liquidity_sweep", "side": side, "quantity": 0.123456, "entry_price": 41_234.5,
            "exit_price": 41_100.0, "ts_entry": T0, "ts_exit": T0 + 11_520_000, "pnl": pnl,
            "fees": 1.2, "confidence": 71.3, "r_multiple": -0.42, "exit_reason": "stop_loss",
            "hold_ms": 11_520_000}


def test_times_and_durations_read_at_a_glance() -> None:
    assert when(T0) == "2022-01-07 14:15" and when(None) == "-"
    assert [duration(ms) for ms in (45 * 60_000, 11_520_000, 2 * 86_400_000 + 5 * 3_600_000)] == [
        "45m", "3h12m", "2d 5h"]


def test_trades_fit_100_columns_with_human_fields() -> None:
    text = table_for("trades", [trade_row(1, "SELL", -16.6), trade_row(2, "BUY", 12.0)])
    assert text is not None
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 100, text
    assert lines[0].split()[:4] == ["closed", "2022", "symbol", "strategy"]  # the year said once
    assert lines[2].startswith("01-07 17:27") and "SHORT" in lines[2] and "3h12m" in lines[2]
    assert "0.1235" in lines[2] and "-16.60" in lines[2]
    assert "LONG" in lines[3] and "{" not in text
    assert table_for("trades", [trade_row(1, "SELL", 1.0)], wide=True) is None  # --wide: every field
    assert table_for("trades", []) == "no closed trades"


def test_positions_show_a_short_as_side_and_size() -> None:
    text = table_for("positions", [{"symbol": "BTC-PERP", "strategy": "fvg_fill", "side": "SHORT",
                                    "quantity": -0.25, "avg_price": 46_000.0, "mark_price": 45_900.0,
                                    "unrealized_pnl": 25.0, "stop": 46_400.0, "open_risk": 100.0,
                                    "opened_ts": T0}])
    assert text is not None
    row = text.splitlines()[2].split()
    assert row[:4] == ["BTC-PERP", "fvg_fill", "SHORT", "0.25"] and "-0.25" not in text


def test_report_is_the_backtests_table_with_breakdowns_as_tables() -> None:
    trades = [ClosedTrade(f"T{i}", "BTC-PERP", s, Side.BUY, 0.1, 100.0, 101.0, T0 + i, T0 + 3_600_000 * (i + 1),
                          pnl, 1.0) for i, (s, pnl) in enumerate([("a", 10.0), ("b", -5.0)])]
    result = {**build_report(trades, [], 10_000.0).to_dict(),
              "open": {"equity": 10_010.0, "unrealized_pnl": 5.0, "open_positions": 1}}
    text = table_for("report", result)
    assert text is not None
    assert "By strategy" in text and "Max drawdown" in text and "{" not in text
    assert "Open now: 1 position(s), unrealized 5.00" in text
    assert max(len(line) for line in text.splitlines()) <= 100
