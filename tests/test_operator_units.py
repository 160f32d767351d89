"""The operator pieces on their own: risk overrides, the alert mapping, the bar tap, time arguments."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import structlog
import trio
import trio.lowlevel
import trio.testing
from test_operator_support import HookServer

from fractald import alerts as al
from fractald.actors.alerts import FEED_CHECK_S, AlertsActor, alert_for
from fractald.actors.events import EventBus
from fractald.config import Config, config_from_dict
from fractald.control.protocol import CommandError
from fractald.control.report_commands import BarHistory, current_curve, parse_when
from fractald.core.execution.engine import TradingEngine
from fractald.core.models import Bar
from fractald.errors import ConfigError, StateCorrupt
from fractald.pipeline_factory import engine_params
from fractald.risk_overrides import RISK_KEYS, RiskOverrides, parse_value, with_risk
from fractald.session import apply_risk_config as apply_to_engine
from fractald.shell_deps import LiveConfig
from fractald.store.writer import AsyncLedger

T0 = 1_641_000_000_000


def bar(i: int, timeframe: str = "1m", complete: bool = True, symbol: str = "BTC-PERP") -> Bar:
    ts = T0 + i * 60_000
    return Bar(symbol=symbol, timeframe=timeframe, ts_open=ts, open=100.0,
               high=101.0, low=99.0, close=100.5, volume=1.0, complete=complete)


# --------------------------------------------------------------------------- risk overrides


def test_parse_value_uses_the_type_of_the_risk_key() -> None:
    assert parse_value("heat_cap", " 0.04 ") == 0.04
    assert parse_value("max_open_positions", "5") == 5
    assert parse_value("mode", "live") == "live"
    with pytest.raises(ValueError, match="not an integer"):
        parse_value("max_open_positions", "5.5")
    with pytest.raises(ValueError, match="not a number"):
        parse_value("heat_cap", "lots")
    with pytest.raises(ValueError, match="valid keys: mode, risk_per_trade"):
        parse_value("max_heat", "0.1")
    assert set(RISK_KEYS) >= {"heat_cap", "risk_per_trade", "max_drawdown", "daily_loss_limit"}


def test_with_risk_validates_exactly_like_the_config_file() -> None:
    base = Config()
    assert with_risk(base, {"heat_cap": 0.1}).risk.heat_cap == 0.1
    assert with_risk(base, {"heat_cap": 0.1}).feed == base.feed
    for key, value in [("heat_cap", 0.9), ("mode", "yolo"), ("max_trades_per_day", 0)]:
        with pytest.raises(ConfigError) as from_override:
            with_risk(base, {key: value})
        with pytest.raises(ConfigError) as from_file:
            config_from_dict({"risk": {key: value}})
        assert from_override.value.problems == from_file.value.problems


def test_apply_to_engine_replaces_sizing_gates_and_breakers_only() -> None:
    config = Config()
    engine = TradingEngine(engine_params(config))
    reliability = engine.params.risk.reliability
    changed = with_risk(config, {"heat_cap": 0.03, "risk_per_trade": 0.01,
                                 "max_consecutive_losses": 2})
    apply_to_engine(engine, changed)
    assert engine.params.risk.gates.max_heat_fraction == 0.03
    assert engine.params.risk.sizing.risk_fraction == 0.01
    assert engine.breakers.params.max_consecutive_losses == 2
    assert engine.params.risk.breakers is engine.breakers.params
    assert engine.params.risk.reliability is reliability
    apply_to_engine(None, changed)  # no engine (no strategies): nothing to do


async def test_stored_overrides_go_over_the_config_and_bad_ones_are_skipped(tmp_path: Path) -> None:
    ledger = await AsyncLedger.open(tmp_path / "state.db")
    try:
        await ledger.set_setting("risk.heat_cap", 0.03)
        await ledger.set_setting("risk.max_open_positions", 0)  # no longer valid
        await ledger.set_setting("unrelated", "x")
        live = LiveConfig(Config())
        overrides = RiskOverrides(live, SimpleNamespace(ledger=ledger), EventBus(),
                                  apply_live=lambda new: None, log=structlog.get_logger("test"))
        await overrides.load(ledger, structlog.get_logger("test"))
        assert live.current.risk.heat_cap == 0.03
        assert live.current.risk.max_open_positions == Config().risk.max_open_positions
        assert overrides.active == {"heat_cap": 0.03}
    finally:
        await ledger.aclose()


# --------------------------------------------------------------------------- alerts


def test_bus_events_map_to_alerts() -> None:
    trip = alert_for("breaker_tripped", {"ts": T0, "breaker": "daily_loss", "state": "REDUCING",
                                         "reason": "daily loss 5.1% reached the limit 5.0%",
                                         "figures": {"value": 0.051, "limit": 0.05,
                                                     "detail": {"nested": 1}}}, T0 + 5)
    assert trip is not None and trip.kind is al.AlertKind.BREAKER_TRIP
    assert trip.ts_ms == T0 and dict(trip.fields)["limit"] == 0.05
    assert "detail" not in dict(trip.fields)  # only scalars go into an alert
    kill = alert_for("kill_switch", {"by_uid": 1000}, T0)
    assert kill is not None and kill.severity is al.Severity.CRITICAL
    assert dict(kill.fields)["by"] == "uid 1000"
    # The operator's own kill trips the kill_switch breaker too: announced once, by the command.
    assert alert_for("breaker_tripped", {"breaker": "kill_switch", "reason": "kill switch"}, T0) is None
    assert alert_for("breaker_tripped", {"breaker": "operator", "reason": "operator halt"}, T0) is None
    automatic = alert_for("breaker_tripped", {"breaker": "kill_switch", "reason": "venue lost",
                                              "ts": T0}, T0 + 9)
    assert automatic is not None and automatic.kind is al.AlertKind.KILL_SWITCH
    assert dict(automatic.fields)["by"] == "daemon" and automatic.ts_ms == T0
    assert alert_for("order_filled", {}, T0) is None


async def test_a_fatal_stop_delivers_its_alert() -> None:
    receiver = HookServer()
    try:
        config = config_from_dict({"alerts": {"webhook_urls": [receiver.url]}})
        actor = AlertsActor(LiveConfig(config), EventBus())
        left = await actor.notify_fatal(StateCorrupt("snapshot 7 cannot be read"))
        assert left == 0
        assert [b["kind"] for b in receiver.bodies] == ["fatal_error"]
        assert "snapshot 7" in receiver.bodies[0]["text"]
        assert actor.counters().sent == 1
    finally:
        receiver.close()


async def test_no_webhook_configured_means_no_alerts_and_no_error() -> None:
    actor = AlertsActor(LiveConfig(Config()), EventBus())
    assert await actor.notify_fatal(RuntimeError("boom")) == 0
    assert actor.counters().sent == 0


# --------------------------------------------------------------------------- bar history


async def test_the_tap_records_closed_1m_bars_and_forwards_everything_in_order() -> None:
    history = BarHistory(cap=3)
    send, receive = trio.open_memory_channel[Any](100)
    tap = history.tap(send)
    sent = [bar(0), bar(0, "15m"), bar(1, complete=False), "health", bar(1), bar(2), bar(3),
            bar(4), bar(3), bar(0, symbol="ETH-PERP")]
    for event in sent:
        await tap.send(event)
    received = [receive.receive_nowait() for _ in sent]
    assert received == sent
    assert [b.ts_open for b in history.of("BTC-PERP")] == [bar(i).ts_open for i in (2, 3, 4)]
    assert len(history.of("ETH-PERP")) == 1 and history.of("SOL-PERP") == []
    tap.close()  # anything else goes to the channel itself
    with pytest.raises(trio.ClosedResourceError):
        await tap.send(bar(9))
    with pytest.raises(ValueError):
        BarHistory(cap=0)


# --------------------------------------------------------------------------- time and equity


def test_parse_when_takes_iso_times_and_spans_back() -> None:
    now = T0
    assert parse_when("12h", now, "since") == now - 12 * 3_600_000
    assert parse_when("2w", now, "since") == now - 14 * 86_400_000
    assert parse_when("2022-01-01", now, "from") == 1_640_995_200_000
    assert parse_when("2022-01-01T01:00:00+01:00", now, "from") == 1_640_995_200_000
    with pytest.raises(CommandError) as info:
        parse_when("last tuesday", now, "from")
    assert info.value.code == "bad_args" and info.value.details["argument"] == "from"


def test_the_report_curve_ends_at_the_equity_of_now() -> None:
    engine = TradingEngine(engine_params(Config()))
    assert current_curve(engine) == []  # no bar yet: nothing to show
    engine.on_bar(bar(0))
    engine.on_bar(bar(1))
    curve = current_curve(engine)
    assert [ts for ts, _ in curve] == [bar(0).ts_event, bar(1).ts_event]
    last_ts = curve[-1][0]
    engine.accounting.equity_curve.record(last_ts, 1.0)  # as if equity had moved since that bar
    assert current_curve(engine)[-1] == (last_ts, engine.equity)
    assert len(current_curve(engine)) == 2


async def test_a_feed_silent_beyond_the_limit_is_alerted_once(mock_clock: trio.testing.MockClock
                                                              ) -> None:
    receiver = HookServer()
    health = {"BTC-PERP": {"last_message_age_s": 5.0}}
    config = config_from_dict({"alerts": {"webhook_urls": [receiver.url],
                                          "feed_stale_alert_s": 60}})
    actor = AlertsActor(LiveConfig(config), EventBus(), feed_health=lambda: health,
                        log=structlog.get_logger("test"))
    actor.sender = al.AlertSender(al.targets_from_config([receiver.url]))

    async def checks(n: int) -> None:
        for _ in range(n):
            await trio.testing.wait_all_tasks_blocked()
            mock_clock.jump(FEED_CHECK_S)
        await trio.testing.wait_all_tasks_blocked()

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(actor._watch_feeds)
            await checks(3)
            assert actor.sender.lane_counters()["webhook1"]["queued"] == 0
            health["BTC-PERP"]["last_message_age_s"] = 61.0
            await checks(3)  # three checks while stale: one alert
            assert actor.sender.lane_counters()["webhook1"]["queued"] == 1
            nursery.cancel_scope.cancel()
        # The mock clock stands still, so the flush's deadline cannot pass before the POST lands.
        assert await actor.sender.flush(5) == 0
    finally:
        receiver.close()
    assert [b["kind"] for b in receiver.bodies] == ["feed_stale"]
    assert receiver.bodies[0]["fields"]["symbol"] == "BTC-PERP"


async def test_the_daily_summary_goes_out_at_midnight_utc(tmp_path: Path,
                                                          mock_clock: trio.testing.MockClock) -> None:
    from fractald.core.models import ClosedTrade, Side

    receiver = HookServer()
    ledger = await AsyncLedger.open(tmp_path / "state.db")
    engine = TradingEngine(engine_params(Config()))
    engine.on_bar(bar(0))
    trade = ClosedTrade(trade_id="t1", symbol="BTC-PERP", strategy="fvg_fill", side=Side.BUY,
                        quantity=0.1, entry_price=100.0, exit_price=110.0, ts_entry=T0,
                        ts_exit=T0 + 60_000, pnl=0.9, fees=0.1)
    from fractald.core.execution.events import TradeClosed
    from fractald.session import event_kind, event_payload

    event = TradeClosed(T0 + 60_000, trade)
    await ledger.append(event_kind(event), event_payload(event), event.ts)
    config = config_from_dict({"alerts": {"webhook_urls": [receiver.url]}})
    actor = AlertsActor(LiveConfig(config), EventBus(), engine=lambda: engine,
                        ledgers=SimpleNamespace(ledger=ledger), log=structlog.get_logger("test"))
    actor.sender = al.AlertSender(al.targets_from_config([receiver.url]))
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(actor._daily_summaries)
            await trio.testing.wait_all_tasks_blocked()
            assert actor.sender.lane_counters()["webhook1"]["queued"] == 0
            mock_clock.jump(86_400)  # whatever the time of day, midnight UTC has come
            deadline = time.monotonic() + 10  # real time: the ledger read runs on a worker thread
            while actor.sender.lane_counters()["webhook1"]["queued"] == 0:
                assert time.monotonic() < deadline, "no daily summary queued"
                await trio.lowlevel.checkpoint()
                await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()
        assert await actor.sender.flush(5) == 0
    finally:
        receiver.close()
        await ledger.aclose()
    (summary,) = receiver.bodies
    assert summary["kind"] == "daily_summary" and summary["fields"]["trades"] == 1
    # Trades come from the ledger, equity from the engine (which, here, never held the trade).
    assert summary["fields"]["equity"] == pytest.approx(engine.equity)
