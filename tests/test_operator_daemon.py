"""Every operator command through the real socket, against one real daemon on the bundled replay.

One daemon for the module: it replays the first 5540 bundled BTC 1m
candles at full speed (trades close, one stays open at the end, and with
`max_trades_per_day = 4` a circuit breaker trips on 2 January), writes
its metrics textfile and sends alerts to a webhook server on 127.0.0.1
that fails its first request. Read-only commands run first, then the
mutating ones, then a restart on the same state directory.
"""

from __future__ import annotations

import json
import re
import signal
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
from daemon_harness import DaemonProcess, ctl_json, fractalctl, write_candles_csv, write_config
from prometheus_client.parser import text_string_to_metric_families
from test_operator_support import HookServer

from fractald.control.client import ControlClient, ReplyError
from fractald.core.risk.breakers import Breaker

pytestmark = pytest.mark.slow

CANDLES = 5540
DASHBOARD = Path(__file__).resolve().parent.parent / "deploy" / "grafana" / "fractald-dashboard.json"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@attrs.define
class Env:
    tmp: Path
    sock: Path
    config: Path
    daemon: DaemonProcess
    hook: HookServer

    def ctl(self, *args: str) -> Any:
        return ctl_json(self.sock, *args)

    def raw(self, cmd: str, args: dict[str, Any] | None = None) -> Any:
        """One request through a plain socket client (no fractalctl argument checks)."""
        with ControlClient(self.sock, timeout_s=60) as client:
            return client.request(cmd, args or {})

    def raw_error(self, cmd: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
        with pytest.raises(ReplyError) as info:
            self.raw(cmd, args)
        return info.value.error


def _wait_replayed(sock: Path, bars: int, timeout: float = 90.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        result = fractalctl(sock, "--json", "status")
        if result.returncode == 0:
            status = json.loads(result.stdout)
            if status["daemon"]["ready"] and status["trading"].get("bars_processed") == bars:
                return status
        time.sleep(0.3)
    raise AssertionError(f"replay of {bars} bars not done within {timeout}s: {status.get('trading')}")


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp("operator")
    hook = HookServer(fail_first=1)
    candles = write_candles_csv(tmp / "candles.csv", 0, CANDLES)
    extra = (f'[risk]\nmax_trades_per_day = 4\n'
             f'[metrics]\ntextfile_path = "{tmp / "fractald.prom"}"\ninterval_s = 1\n'
             f'[alerts]\nwebhook_urls = ["{hook.url}"]\n')
    config = write_config(tmp, extra, candles=candles)
    sock = tmp / "state" / "control.sock"
    env = Env(tmp, sock, config, DaemonProcess(config), hook)
    try:
        _wait_replayed(sock, CANDLES)
        yield env
    finally:
        env.daemon.kill()  # the one running now: a test may have restarted it
        hook.close()


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_MAGIC
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


# --------------------------------------------------------------------------- reading


def test_the_replay_makes_trades_and_trades_filters_them(env: Env) -> None:
    trades = env.ctl("trades")
    assert len(trades) >= 5, "the bundled replay should close several trades"
    assert [t["ts_exit"] for t in trades] == sorted(t["ts_exit"] for t in trades)
    assert all(t["tick_size"] > 0 for t in trades)  # the tables round prices to it
    table = fractalctl(env.sock, "trades")
    assert table.returncode == 0 and "\033[" not in table.stdout  # no colour into a pipe
    strategies = {t["strategy"] for t in trades}
    assert len(strategies) >= 2
    by_strategy = {s: env.ctl("trades", "--strategy", s) for s in strategies}
    assert sum(len(v) for v in by_strategy.values()) == len(trades)
    assert all(t["strategy"] == s for s, rows in by_strategy.items() for t in rows)
    assert env.ctl("trades", "--symbol", "BTC-PERP") == trades
    assert env.ctl("trades", "--symbol", "ETH-PERP") == []
    # --since counts back from the newest bar (event time), or takes an ISO time.
    last_exit = trades[-1]["ts_exit"]
    recent = env.ctl("trades", "--since", "1d")
    assert recent and all(t["ts_exit"] >= trades[-1]["ts_exit"] - 2 * 86_400_000 for t in recent)
    assert len(recent) < len(trades)
    iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(last_exit // 1000))
    assert env.ctl("trades", "--since", iso)[-1]["trade_id"] == trades[-1]["trade_id"]
    bad = fractalctl(env.sock, "trades", "--since", "yesterday-ish")
    assert bad.returncode == 1 and "[bad_args]" in bad.stderr and "ISO-8601" in bad.stderr


def test_positions_and_orders(env: Env) -> None:
    positions = env.ctl("positions")
    assert len(positions) == 1, "the replay slice ends inside a trade"
    p = positions[0]
    assert p["symbol"] == "BTC-PERP" and p["side"] in ("LONG", "SHORT")
    assert p["quantity"] != 0 and p["avg_price"] > 0 and p["stop"] > 0 and p["targets"]
    sign = 1 if p["side"] == "LONG" else -1
    assert p["unrealized_pnl"] == pytest.approx((p["mark_price"] - p["avg_price"]) * p["quantity"])
    assert sign * p["quantity"] > 0
    working = env.ctl("orders")
    everything = env.ctl("orders", "--all")
    assert {o["client_order_id"] for o in working} <= {o["client_order_id"] for o in everything}
    assert all(o["status"] not in ("FILLED", "CANCELED", "REJECTED", "EXPIRED") for o in working)
    assert any(o["status"] == "FILLED" and o["role"] == "entry" for o in everything)
    error = env.raw_error("orders", {"all": "yes"})
    assert error["code"] == "bad_args" and error["argument"] == "all"


def test_reconcile_on_demand_is_clean_after_a_replay(env: Env) -> None:
    result = env.ctl("reconcile")
    assert result["clean"] is True and result["mismatches"] == []
    assert env.ctl("status")["trading"]["reconcile"]["why"] == "operator"


def test_signals_show_what_became_of_each(env: Env) -> None:
    last3 = env.ctl("signals", "--last", "3")
    assert len(last3) == 3 and [s["ts"] for s in last3] == sorted(s["ts"] for s in last3)
    every = env.ctl("signals", "--last", "1000")
    assert every[-3:] == last3
    taken = {s["signal_id"] for s in every if s["outcome"] == "taken"}
    # A closed trade is a signal the engine took; the trade keeps the signal's id.
    assert {t["trade_id"] for t in env.ctl("trades")} <= taken
    assert any(s["outcome"].startswith("denied: ") for s in every)
    assert all(0 <= s["confidence"] <= 100 and s["side"] in ("BUY", "SELL") for s in every)
    assert env.raw_error("signals", {"last": 0})["code"] == "bad_args"


def test_breaker_trip_during_replay_was_alerted_after_a_webhook_failure(env: Env) -> None:
    alerts = env.hook.wait_for("breaker_trip")
    assert env.hook.refused == 1  # the first delivery got a 503 and was retried
    trip = alerts[0]
    assert trip["fields"]["breaker"] == "trades_per_day" and trip["fields"]["limit"] == 4
    assert trip["severity"] == "warning" and trip["source"] == "fractald"
    view = env.ctl("breakers")
    assert {b["breaker"] for b in view["breakers"]} == {b.value for b in Breaker}
    row = next(b for b in view["breakers"] if b["breaker"] == "trades_per_day")
    assert row["limit"] == 4 and row["daily_reset"] is True
    # The trade that reached the limit is kept (it used to be withdrawn on the spot, held 0 s);
    # a later signal that day is refused with the limit's own code.
    assert not [t for t in env.ctl("trades") if t["exit_reason"] == "trading_state"]
    outcomes = {s["outcome"] for s in env.ctl("signals", "--last", "1000")}
    assert "denied: trades_per_day" in outcomes
    assert view["trading_state"] in ("ACTIVE", "REDUCING")


def test_strategies_agree_with_the_trades(env: Env) -> None:
    rows = env.ctl("strategies")
    trades = env.ctl("trades")
    assert {r["strategy"] for r in rows} == {"liquidity_sweep", "fvg_fill", "bos_orderblock"}
    for r in rows:
        mine = [t for t in trades if t["strategy"] == r["strategy"]]
        assert r["trades"] == len(mine)
        assert r["cum_pnl"] == pytest.approx(sum(t["pnl"] for t in mine))
        assert r["state"] in ("ACTIVE", "THROTTLED", "QUARANTINED")
        assert r["size_scale"] == {"ACTIVE": 1.0, "QUARANTINED": 0.0}.get(r["state"], r["size_scale"])


def test_status_carries_equity_risk_and_the_last_signal(env: Env) -> None:
    status = env.ctl("status")
    account = status["account"]
    assert account["positions"] == len(env.ctl("positions"))
    assert account["working_orders"] == len(env.ctl("orders"))
    assert account["equity"] > 0 and 0 <= account["drawdown"] < 1
    assert account["heat_cap"] == 0.06
    assert account["heat"] == pytest.approx(account["open_risk"] / account["equity"])
    last = env.ctl("signals", "--last", "1")[0]
    assert account["last_signal"]["ts"] == last["ts"]
    assert account["last_signal"]["strategy"] == last["strategy"]
    assert {a["name"] for a in status["actors"]} >= {"metrics", "alerts"}
    assert 0 <= status["daemon"]["loop_lag_s"] <= status["daemon"]["loop_lag_max_s"] < 5


def _samples(text: str) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append(sample)
    return out


def test_metrics_file_and_command_hold_the_dashboard_metrics(env: Env) -> None:
    path = env.tmp / "fractald.prom"
    deadline = time.monotonic() + 10
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    from_file = _samples(path.read_text())
    result = fractalctl(env.sock, "metrics")
    assert result.returncode == 0, result.stderr
    from_command = _samples(result.stdout)
    board = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    queried = {m for e in exprs for m in re.findall(r"\bfractald_[a-z_]+\b", e)}
    assert len(queried) >= 15
    assert queried - set(from_file) == set()
    assert set(from_file) == set(from_command)
    equity = env.ctl("status")["account"]["equity"]
    assert from_command["fractald_equity"][0].value == pytest.approx(equity)
    assert from_command["fractald_positions_open"][0].value == 1
    assert from_command["fractald_fills_total"][0].value >= 2 * len(env.ctl("trades"))
    lag = from_command["fractald_loop_lag_seconds"][0].value
    assert 0 <= lag < 5
    states = {s.labels["state"]: s.value for s in from_command["fractald_trading_state"]}
    assert sum(states.values()) == 1


def test_report_figures_match_the_trades(env: Env) -> None:
    report = env.ctl("report")
    trades = env.ctl("trades")
    stats = report["stats"]
    pnls = [t["pnl"] for t in trades]
    assert stats["trades"] == len(trades)
    assert stats["wins"] == sum(p > 0 for p in pnls) and stats["losses"] == sum(p < 0 for p in pnls)
    assert stats["net_pnl"] == pytest.approx(sum(pnls))
    assert stats["fees"] == pytest.approx(sum(t["fees"] for t in trades))
    assert report["best_trade"]["pnl"] == pytest.approx(max(pnls))
    assert report["worst_trade"]["pnl"] == pytest.approx(min(pnls))
    assert sum(g["stats"]["trades"] for g in report["by_strategy"]) == len(trades)
    assert report["starting_equity"] == 10_000
    # The report ends at the account's equity now: closed P&L plus the open trade's.
    assert report["ending_equity"] == pytest.approx(env.ctl("status")["account"]["equity"])
    assert report["pnl_abs"] == pytest.approx(report["ending_equity"] - 10_000)
    assert report["open"]["open_positions"] == 1
    day = env.ctl("report", "--period", "day")
    assert day["period"]["label"] == "day" and day["stats"]["trades"] <= len(trades)
    assert day["stats"]["trades"] == sum(t["ts_exit"] >= day["period"]["start_ms"] for t in trades)
    first_exit = trades[0]["ts_exit"]
    window = env.ctl("report", "--from", time.strftime("%Y-%m-%d", time.gmtime(first_exit / 1000)),
                     "--to", time.strftime("%Y-%m-%dT23:59:59", time.gmtime(first_exit / 1000)))
    assert window["period"]["label"] == "custom" and window["stats"]["trades"] >= 1
    assert env.raw_error("report", {"period": "year"})["code"] == "bad_args"
    backwards = env.raw_error("report", {"from": "2022-01-03", "to": "2022-01-02"})
    assert backwards["code"] == "bad_args" and backwards["argument"] == "to"


def test_report_and_chart_plots_are_pngs(env: Env) -> None:
    equity_png = env.tmp / "equity.png"
    result = fractalctl(env.sock, "report", "--plot", str(equity_png), timeout=120)
    assert result.returncode == 0, result.stderr
    data = equity_png.read_bytes()
    width, height = _png_size(data)
    assert 800 <= width <= 3000 and 500 <= height <= 2000 and len(data) > 20_000
    chart_png = env.tmp / "chart.png"
    result = fractalctl(env.sock, "chart", "BTC-PERP", "--timeframes", "4h,1h,15m",
                        "--plot", str(chart_png), timeout=120)
    assert result.returncode == 0, result.stderr
    data = chart_png.read_bytes()
    width, height = _png_size(data)
    assert width >= 1000 and height >= 800 and len(data) > 50_000
    summary = env.raw("chart", {"symbol": "BTC-PERP"})
    assert summary["bars_1m"] == CANDLES and "plot_png" not in summary
    # the live detectors with the strategies' own swing lengths, or the operator's over them
    assert summary["detectors"] == "live" and summary["swing_lengths"]["15m"] == 6
    tuned = env.raw("chart", {"symbol": "BTC-PERP", "swing_lengths": "15m=4"})
    assert tuned["swing_lengths"]["15m"] == 4
    bad_len = env.raw_error("chart", {"symbol": "BTC-PERP", "swing_lengths": "15m=zero"})
    assert bad_len["code"] == "bad_args" and bad_len["argument"] == "swing_lengths"
    unknown = fractalctl(env.sock, "chart", "DOGE", "--plot", str(env.tmp / "x.png"))
    assert unknown.returncode == 1 and "[bad_args]" in unknown.stderr and "BTC-PERP" in unknown.stderr
    bad_tf = env.raw_error("chart", {"symbol": "BTC-PERP", "timeframes": ["3x"]})
    assert bad_tf["code"] == "bad_args" and "4h" in bad_tf["allowed"]


def test_unknown_command_lists_the_valid_ones(env: Env) -> None:
    error = env.raw_error("positons")
    assert error["code"] == "unknown_command"
    assert set(error["valid"]) >= {"positions", "orders", "trades", "signals", "pause", "resume",
                                   "flatten", "halt", "breakers", "strategies", "risk_set",
                                   "metrics", "report", "chart"}


# --------------------------------------------------------------------------- steering


def test_risk_set_is_validated_applied_and_listed(env: Env) -> None:
    result = env.ctl("risk", "set", "heat_cap", "0.04")
    assert result["old"] == 0.06 and result["new"] == 0.04 and result["persisted"] is True
    assert env.ctl("config")["risk"]["heat_cap"] == 0.04
    assert env.ctl("status")["account"]["heat_cap"] == 0.04  # the engine's own parameter
    out_of_range = fractalctl(env.sock, "risk", "set", "heat_cap", "0.9")
    assert out_of_range.returncode == 1
    assert "[bad_value]" in out_of_range.stderr and "(0, 0.5]" in out_of_range.stderr
    not_a_number = fractalctl(env.sock, "risk", "set", "max_open_positions", "two")
    assert not_a_number.returncode == 1 and "not an integer" in not_a_number.stderr
    unknown = env.raw_error("risk_set", {"key": "max_heat", "value": "0.1"})
    assert unknown["code"] == "bad_args" and "heat_cap" in unknown["allowed"]
    assert "risk_per_trade" in unknown["allowed"]
    assert env.ctl("config")["risk"]["heat_cap"] == 0.04  # refused changes changed nothing
    logged = [line for line in env.daemon.log_lines() if line.get("event") == "risk_override_set"]
    assert logged and logged[-1]["key"] == "heat_cap" and "by_uid" in logged[-1]


def test_pause_and_resume(env: Env) -> None:
    paused = env.ctl("pause")
    assert paused["accepting"] is False
    account = env.ctl("status")["account"]
    assert account["paused"] is True and account["accepting"] is False
    resumed = env.ctl("resume")
    assert resumed["accepting"] is True and resumed["trading_state"] == "ACTIVE"
    account = env.ctl("status")["account"]
    assert account["paused"] is False and account["trading_state"] == "ACTIVE"


def test_halt_without_yes_is_refused(env: Env) -> None:
    refused = fractalctl(env.sock, "halt")
    assert refused.returncode == 2 and "--yes" in refused.stderr
    error = env.raw_error("halt")
    assert error["code"] == "confirmation_required"
    assert env.ctl("status")["account"]["trading_state"] == "ACTIVE"
    assert env.ctl("positions"), "a refused halt flattens nothing"


def test_flatten_closes_the_position_and_books_the_trade(env: Env) -> None:
    before = env.ctl("trades")
    assert fractalctl(env.sock, "flatten", "ETH-PERP").returncode == 1
    result = env.ctl("flatten", "BTC-PERP")
    assert result["positions"] == [] and result["events"].get("trade_closed") == 1
    trades = env.ctl("trades")
    assert len(trades) == len(before) + 1 and trades[-1]["exit_reason"] == "flatten"
    assert env.ctl("positions") == [] and env.ctl("orders") == []
    report = env.ctl("report")
    # Flat: the account is the starting equity plus every closed trade's net P&L.
    assert report["ending_equity"] == pytest.approx(10_000 + sum(t["pnl"] for t in trades))
    assert report["open"]["unrealized_pnl"] == 0


def test_halt_is_the_kill_switch_alerted_and_audited(env: Env) -> None:
    result = env.ctl("halt", "--yes")
    assert result["trading_state"] == "HALTED" and result["positions"] == []
    alert = env.hook.wait_for("kill_switch")[0]
    assert alert["severity"] == "critical" and alert["fields"]["by"].startswith("uid ")
    view = env.ctl("breakers")
    assert view["trading_state"] == "HALTED"
    tripped = {b["breaker"] for b in view["breakers"] if b["tripped"]}
    assert tripped == {"kill_switch"}  # the kill switch's own row, not an anonymous halt
    audit = [line for line in env.daemon.log_lines()
             if line.get("event") == "control_command" and line.get("cmd") == "halt"]
    assert audit and "peer_uid" in audit[-1]


def test_restart_keeps_the_risk_override_and_the_halt(env: Env) -> None:
    trades = env.ctl("trades")
    assert env.daemon.stop() == 0
    env.daemon = DaemonProcess(env.config)
    _wait_replayed(env.sock, CANDLES)
    assert env.ctl("config")["risk"]["heat_cap"] == 0.04
    account = env.ctl("status")["account"]
    assert account["heat_cap"] == 0.04  # the restored engine got the override too
    assert account["trading_state"] == "HALTED"
    assert env.ctl("trades") == trades
    restored = [line for line in env.daemon.log_lines()
                if line.get("event") == "risk_overrides_applied"]
    assert restored and restored[0]["overrides"] == {"heat_cap": 0.04}
    # A reload re-reads the file (heat_cap 0.06 there); the override wins again, so the
    # effective config does not change at all.
    env.daemon.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while not any(line.get("event") == "reload_done" for line in env.daemon.log_lines()):
        assert time.monotonic() < deadline, "no reload_done line"
        time.sleep(0.1)
    time.sleep(0.5)
    assert env.ctl("config")["risk"]["heat_cap"] == 0.04
    assert env.ctl("status")["account"]["heat_cap"] == 0.04
    back = env.ctl("risk", "set", "heat_cap", "default")
    assert back["new"] == 0.06 and back["persisted"] is False
    assert env.ctl("status")["account"]["heat_cap"] == 0.06


# --------------------------------------------------------------------------- a fatal stop


def test_a_fatal_stop_is_alerted_before_the_daemon_exits(tmp_path: Path) -> None:
    hook = HookServer()
    blocker = tmp_path / "file-not-dir"
    blocker.write_text("x")
    config = write_config(tmp_path, f'[alerts]\nwebhook_urls = ["{hook.url}"]\n')
    config.write_text(config.read_text().replace(str(tmp_path / "state"), str(blocker / "state")))
    daemon = DaemonProcess(config)
    try:
        status = daemon.proc.wait(30)
        assert status == 69  # EX_UNAVAILABLE: the state directory cannot be used
        alert = hook.wait_for("fatal_error", timeout=1)[0]  # delivered before the exit
        assert alert["severity"] == "critical" and str(blocker) in alert["text"]
        assert alert["fields"]["category"] == "fatal"
    finally:
        daemon.kill()
        hook.close()


def test_a_reload_that_adds_a_webhook_starts_alerting(tmp_path: Path) -> None:
    hook = HookServer()
    config = write_config(tmp_path, replay_speed=0)
    sock = tmp_path / "state" / "control.sock"
    daemon = DaemonProcess(config)
    try:
        _wait_replayed(sock, 3000)  # write_config replays 3,000 candles
        config.write_text(config.read_text() + f'\n[alerts]\nwebhook_urls = ["{hook.url}"]\n')
        daemon.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 15
        while not any(line.get("event") == "alerts_reconfigured" for line in daemon.log_lines()):
            assert time.monotonic() < deadline, "alerts were not rebuilt on reload"
            time.sleep(0.1)
        result = fractalctl(sock, "--json", "halt", "--yes")
        assert result.returncode == 0, result.stderr
        assert hook.wait_for("kill_switch")[0]["severity"] == "critical"
        assert daemon.stop() == 0
    finally:
        daemon.kill()
        hook.close()
