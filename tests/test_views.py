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


def test_prices_on_the_instruments_tick_and_plain_without_one() -> None:
    from fractald.price_format import price_text, tick_decimals

    assert [tick_decimals(t) for t in (0.01, 0.5, 1.0, 5e-05, 10.0)] == [2, 1, 0, 5, 0]
    assert price_text(46412.4999, 0.5) == "46412.5" and price_text(3021.470000001, 0.01) == "3021.47"
    assert price_text(3021.47, 0.01, grouping=True) == "3,021.47" and price_text(None, 0.1) == "-"
    assert price_text(1.123456789, None) == "1.12345679"
    row = {**trade_row(1, "BUY", 5.0), "entry_price": 41_234.4999999, "tick_size": 0.5}
    assert "41234.5" in table_for("trades", [row]).splitlines()[2]
    eth = {"symbol": "ETH-PERP", "strategy": "fvg_fill", "side": "LONG", "quantity": 2.0,
           "avg_price": 3021.4700000001, "mark_price": 3030.1, "unrealized_pnl": 17.26,
           "stop": 2990.0, "open_risk": 62.94, "opened_ts": T0, "tick_size": 0.01}
    line = table_for("positions", [eth]).splitlines()[2]
    assert "3021.47" in line and "3030.10" in line and "2990.00" in line
    signal = {"ts": T0, "symbol": "BTC-PERP", "strategy": "fvg_fill", "timeframe": "15m",
              "side": "BUY", "entry": 41_000.27, "stop": 40_900.0, "confidence": 70.0,
              "outcome": "taken", "tick_size": 0.1}
    assert "41000.3" in table_for("signals", [signal]) and "40900.0" in table_for("signals", [signal])
    for bad in (0.0, -1.0, float("nan")):
        try:
            tick_decimals(bad)
        except ValueError as exc:
            assert "positive" in str(exc)
        else:
            raise AssertionError(f"tick {bad} accepted")


def test_colour_only_on_a_terminal_that_wants_it() -> None:
    import io

    from fractald.term import colors_wanted

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert colors_wanted(Tty(), {}) is True
    assert colors_wanted(Tty(), {"NO_COLOR": "1"}) is False
    assert colors_wanted(Tty(), {"TERM": "dumb"}) is False
    assert colors_wanted(io.StringIO(), {}) is False  # a pipe or a file
    rows = [trade_row(1, "SELL", -16.6), trade_row(2, "BUY", 12.0)]
    plain = table_for("trades", rows)
    coloured = table_for("trades", rows, colour=True)
    assert "\033[" not in plain
    assert "\033[31m" in coloured and "\033[32m" in coloured  # the loss red, the gain green
    strip = __import__("re").compile("\033\\[[0-9;]*m")
    assert strip.sub("", coloured) == plain  # the columns stay where they were
    assert "\033[31m SHORT" in coloured or "\033[31mSHORT" in coloured


def test_fractalctl_colours_nothing_into_a_pipe() -> None:
    import argparse
    import sys

    from fractald.control.client import format_result

    ns = argparse.Namespace(json=False, format="table", cmd="trades", wide=False, output=None)
    assert sys.stdout.isatty() or "\033[" not in format_result([trade_row(1, "SELL", -1.0)], ns)


def test_orders_table_prices_on_the_tick_in_100_columns() -> None:
    order = {"client_order_id": "fd-0123456789abcdef", "symbol": "BTC-PERP", "side": "SELL",
             "type": "STOP_MARKET", "role": "stop", "status": "WORKING", "quantity": 0.123456,
             "filled_qty": 0.0, "price": None, "trigger_price": 40_899.99999, "avg_fill_price": None,
             "strategy": "fvg_fill", "created_ts": T0, "last_ts": T0, "reason": "",
             "tick_size": 0.5}
    text = table_for("orders", [order])
    assert text is not None and max(len(line) for line in text.splitlines()) <= 100, text
    line = text.splitlines()[2]
    assert "40900.0" in line and "SHORT" in line and "stop" in line and "WORKING" in line
    assert table_for("orders", []) == "no working orders"


def test_status_coloured_on_a_terminal_only_by_what_the_values_say() -> None:
    import re

    from fractald.control.render import render
    from fractald.control.views import colour_status

    status = {"daemon": {"phase": "ready", "ready": True}, "feed": {"BTC-PERP": {"stale": True}},
              "account": {"trading_state": "HALTED", "paused": False,
                          "trips": [{"breaker": "max_drawdown", "state": "TRIPPED", "reason": "dd"}]}}
    plain = render(status)
    coloured = colour_status(plain)
    assert re.sub("\033\\[[0-9;]*m", "", coloured) == plain
    assert "phase  \033[32mready\033[0m" in coloured and "\033[31mHALTED\033[0m" in coloured
    assert "stale  \033[31myes\033[0m" in coloured and "\033[31mTRIPPED\033[0m" in coloured
    assert "paused         no" in coloured  # not paused: nothing to say
