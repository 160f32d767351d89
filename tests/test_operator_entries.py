"""`fractalctl enter` / `exit`: an operator's trade through the engine's own sizing, gates and routing."""

from __future__ import annotations

from typing import Any

import pytest
from paper_engine import PaperEngine

from fractald.control.client import build_parser, request_args
from fractald.control.operator_entries import manual_signal
from fractald.control.protocol import CommandError
from fractald.core.execution import events as ev
from fractald.core.execution.engine import EngineParams, TradingEngine
from fractald.core.models import Bar

SYMBOL = "BTC-PERP"


def engine_at(price: float) -> TradingEngine:
    engine = PaperEngine(EngineParams())
    for i in range(3):
        engine.on_bar(Bar(symbol=SYMBOL, timeframe="1m", ts_open=i * 60_000, open=price, high=price + 5,
                          low=price - 5, close=price, volume=1.0))
    return engine


def of(events: list[Any], cls: type) -> list[Any]:
    return [e for e in events if isinstance(e, cls)]


def test_an_operator_entry_is_sized_and_routed_like_a_signal_then_exits() -> None:
    engine = engine_at(50_000.0)
    signal = manual_signal(engine, SYMBOL, "long", 49_000.0, [52_000.0, 51_000.0], "15m")
    assert signal.strategy == "manual" and signal.entry == 50_000.0 and signal.targets == (51_000.0, 52_000.0)
    events = engine.on_signal(signal, int(engine.last_ts))
    opened = of(events, ev.BracketOpened)
    assert opened and opened[0].strategy == "manual" and opened[0].stop == 49_000.0
    intents = of(events, ev.OrderIntent)
    assert intents and intents[0].role == "entry" and intents[0].quantity > 0  # sized by the engine's risk
    engine.on_bar(Bar(symbol=SYMBOL, timeframe="1m", ts_open=3 * 60_000, open=50_000.0, high=50_005.0,
                      low=49_995.0, close=50_000.0, volume=1.0))
    assert signal.signal_id in engine.brackets
    out = engine.invalidate(signal.signal_id, int(engine.last_ts), reason="operator_exit")
    assert any(i.role.startswith("exit") and i.reduce_only for i in of(out, ev.OrderIntent))


@pytest.mark.parametrize(("side", "stop", "targets", "word"), [
    ("long", 51_000.0, [], "below"), ("short", 49_000.0, [], "above"),
    ("long", 49_000.0, [48_000.0], "targets"), ("sideways", 49_000.0, [], "long or short")])
def test_a_bad_entry_is_refused_with_a_reason(side: str, stop: float, targets: list[float], word: str) -> None:
    with pytest.raises(CommandError, match=word):
        manual_signal(engine_at(50_000.0), SYMBOL, side, stop, targets, "15m")
    with pytest.raises(CommandError, match="no price"):
        manual_signal(TradingEngine(EngineParams()), SYMBOL, "long", 1.0, [], "15m")


def test_a_second_entry_without_market_data_between_is_no_duplicate_and_targets_are_required() -> None:
    engine = engine_at(50_000.0)
    first = manual_signal(engine, SYMBOL, "long", 49_000.0, [52_000.0], "15m")
    assert of(engine.on_signal(first, int(engine.last_ts)), ev.OrderIntent)
    second = manual_signal(engine, SYMBOL, "long", 49_000.0, [52_000.0], "15m")
    assert second.signal_id != first.signal_id
    denied = of(engine.on_signal(second, int(engine.last_ts)), ev.SignalDenied)
    # Judged on its own (one manual bracket per side and symbol), not as a duplicate of the first.
    assert [d.code.value for d in denied] == ["position_already_open"]
    with pytest.raises(CommandError, match="--target"):
        manual_signal(engine, SYMBOL, "long", 49_000.0, [], "15m")


def test_fractalctl_parses_enter_and_exit() -> None:
    ns = build_parser().parse_args(["enter", SYMBOL, "short", "--stop", "51000", "--target", "48000",
                                    "--target", "47000"])
    assert request_args(ns) == {"symbol": SYMBOL, "side": "short", "stop": 51_000.0,
                                "target": ["48000", "47000"]}
    assert request_args(build_parser().parse_args(["exit", "abc123"])) == {"trade_id": "abc123"}


def test_risk_sizes_this_entry_only_and_a_bad_risk_is_named() -> None:
    def entry_qty(risk: float | None) -> float:
        engine = engine_at(50_000.0)
        signal = manual_signal(engine, SYMBOL, "long", 49_000.0, [52_000.0], "15m", risk)
        [intent] = [i for i in of(engine.on_signal(signal, int(engine.last_ts)), ev.OrderIntent)
                    if i.role == "entry"]
        return float(intent.quantity)

    default, double = entry_qty(None), entry_qty(0.01)  # [risk] risk_fraction defaults to 0.005
    assert default > 0 and double == pytest.approx(2 * default, rel=0.02)
    for bad in (0.0, -0.01, 0.5):
        with pytest.raises(CommandError, match="--risk"):
            manual_signal(engine_at(50_000.0), SYMBOL, "long", 49_000.0, [52_000.0], "15m", bad)
    ns = build_parser().parse_args(["enter", SYMBOL, "long", "--stop", "49000", "--target", "52000",
                                    "--risk", "0.01"])
    assert request_args(ns)["risk"] == 0.01
