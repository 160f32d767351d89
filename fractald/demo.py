"""`fractald demo`: one trading day, narrated. The first thing to run after installing.

It replays one session of the bundled real BTC candles (2022-01-11, a 24 h market,
so the session is the UTC day; the day before warms the detectors without
trading) through the same pipeline the daemon runs: the K1 VWAP-reversion and
K2 failed-break templates on 5-minute bars, the K5 noise filter over both, the
v1 bot's money limits ($15 risk per trade, 2 trades a day, $30 daily loss),
sizing, the risk gates and breakers, the paper venue's fills, trade
management, and each strategy learning from its closed trades. It prints
what happened, in order, and why; offline, in a few seconds.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import attrs

from fractald.core.models import ClosedTrade

DAY = "2022-01-11"
STRATEGIES = ("k5_noise_filter", "k1_vwap_reversion", "k2_failed_break")
V1_LIMITS = {"max_risk_money": 15.0, "max_trades_per_day": 2, "daily_loss_money": 30.0}


def _hm(ts: int) -> str:
    return datetime.fromtimestamp(ts / 1000, UTC).strftime("%H:%M")


def _money(x: float) -> str:
    return f"{'-' if x < 0 else '+'}${abs(x):,.2f}"


def _why(signal: Any) -> str:
    r = signal.reasons[0] if signal.reasons else {}
    kind = r.get("structure")
    if kind == "SessionVWAP":
        band = "under the lower" if signal.side.value == "BUY" else "over the upper"
        return (
            f"price went {band} band ({r['band']:,.1f}) of the session VWAP {r['vwap']:,.1f} "
            f"and the bar turned back"
        )
    if kind == "Range":
        way = "up" if signal.side.value == "SELL" else "down"
        return (
            f"a break {way} out of the {r['range_low']:,.1f}-{r['range_high']:,.1f} range "
            f"failed and closed back inside"
        )
    return kind or "setup"


class Narrator:
    """Turns the pipeline's events into sentences, keeping what later sentences need."""

    def __init__(self, pipeline: Any) -> None:
        self.pipeline = pipeline
        self.lines: list[str] = []
        self.open: dict[str, Any] = {}
        self.skips = 0
        self._pending: tuple[int, str] | None = (
            None  # a signal's line, until we know whether it was taken
        )
        self.repeats: dict[str, int] = {}  # denials told once, then only counted

    def say(self, ts: int, text: str) -> None:
        self.lines.append(f"{_hm(ts)}  {text}")

    def on(self, e: Any) -> None:
        kind = getattr(e, "kind", "")
        if self._pending is not None and kind != "signal_denied":
            self.say(*self._pending)
            self._pending = None
        handler = getattr(self, f"_{kind}", None)
        if handler is not None:
            handler(e)

    def finish(self) -> None:
        if self._pending is not None:
            self.say(*self._pending)
        for code, n in self.repeats.items():
            self.lines.append(f"       ... and {n} more signal(s) denied for {code}")

    def _signal(self, e: Any) -> None:
        s = e.signal
        self._pending = (
            e.ts,
            (
                f"{s.strategy}: {_why(s)}; signal {s.side.value} at {s.entry:,.1f}, "
                f"stop {s.stop:,.1f}, confidence {s.confidence:.0f}"
            ),
        )

    def _setup_skipped(self, e: Any) -> None:
        self.skips += 1
        if e.code == "NOISE_VETO":
            self.say(
                e.ts,
                f"{e.strategy}: setup vetoed by the noise filter ({e.detail.split(': ', 1)[-1]})",
            )

    def _signal_denied(self, e: Any) -> None:
        code = e.code.value
        if code in self.repeats:
            self.repeats[code] += 1
            self._pending = None
            return
        self.repeats[code] = 0
        if self._pending is not None:
            self.say(*self._pending)
            self._pending = None
        self.say(e.ts, f"{e.strategy}: denied by risk, {code}: {e.message}")

    def _bracket_opened(self, e: Any) -> None:
        self.open[e.signal_id] = e
        self.say(
            e.ts,
            f"{e.strategy}: sized {e.quantity:g} BTC risking ${e.risk_amount:,.2f}; entry order sent",
        )

    def _order_filled(self, e: Any) -> None:
        if e.role == "entry":
            self.say(
                e.ts,
                f"{e.strategy}: filled {e.side.value} {e.quantity:g} at {e.price:,.1f} "
                f"(fee ${e.fee:,.2f}); stop and targets working",
            )

    def _stop_moved(self, e: Any) -> None:
        what = "to break-even" if e.reason == "break_even" else "trailing"
        self.say(e.ts, f"stop moved {what}: {e.old:,.1f} -> {e.new:,.1f}")

    def _trade_closed(self, e: Any) -> None:
        t: ClosedTrade = e.trade
        strategy = next((s for s in self.pipeline.strategies if s.name == t.strategy), None)
        learned = ""
        if strategy is not None:
            learned = (
                f"; {t.strategy} has learned from {strategy.trades_learned} trade(s), mean R "
                f"{strategy.ewma_r:+.2f}, confidence multiplier {strategy.reliability_multiplier:.2f}"
            )
        self.say(
            e.ts,
            f"{t.strategy}: closed at {t.exit_price:,.1f} ({t.exit_reason}), {_money(t.pnl)}, "
            f"{t.r_multiple:+.2f}R{learned}",
        )

    def _strategy_state(self, e: Any) -> None:
        self.say(e.ts, f"{e.strategy}: throttle level {e.old.value} -> {e.new.value} ({e.reason})")

    def _breaker_tripped(self, e: Any) -> None:
        self.say(e.ts, f"breaker {e.breaker.value} tripped: {e.reason}; trading {e.state.value}")

    def _breakers_cleared(self, e: Any) -> None:
        self.say(e.ts, f"breakers cleared ({e.reason}): {', '.join(b.value for b in e.breakers)}")


def run_demo(day: str = DAY) -> dict[str, Any]:
    from fractald.backtest import StrategySettings, new_runner, parse_when
    from fractald.config import Config, RiskConfig
    from fractald.venues.replay import bundled_candles

    start = parse_when(day, "day")
    assert start is not None
    bars = bundled_candles()
    warm = [b for b in bars if start - 86_400_000 <= b.ts_open < start]
    today = [b for b in bars if start <= b.ts_open < start + 86_400_000]
    if not today:
        raise ValueError(f"the bundled candles have no {day}")
    config = Config(risk=attrs.evolve(RiskConfig(), **V1_LIMITS))  # type: ignore[arg-type]
    st = StrategySettings(STRATEGIES, "5m", ("5m", "1h"), {}, config)
    runner = new_runner("BTC-PERP", "1m", st, config.broker.starting_equity)
    runner.feed(warm, accepting=False)
    runner.trades.clear()
    narrator = Narrator(runner.pipeline)
    for bar in today:
        for e in runner.step(bar):
            narrator.on(e)
            if getattr(e, "kind", "") == "trade_closed":
                runner.trades.append(e.trade)
    narrator.finish()
    pnl = sum(t.pnl for t in runner.trades)
    throttles = {}
    reliability = getattr(runner.pipeline.engine, "reliability", None)
    for name in STRATEGIES[1:]:
        record = reliability.record_of(name) if reliability is not None else None
        throttles[name] = (
            getattr(getattr(record, "state", None), "value", "ACTIVE"),
            reliability.scale(name) if reliability is not None else 1.0,
        )
    return {
        "day": day,
        "bars": len(today),
        "lines": narrator.lines,
        "trades": len(runner.trades),
        "pnl": pnl,
        "skips": narrator.skips,
        "throttles": throttles,
        "by_strategy": {
            s: sum(1 for t in runner.trades if t.strategy == s) for s in STRATEGIES[1:]
        },
    }


def format_demo(d: dict[str, Any]) -> str:
    head = [
        f"fractald demo: {d['day']} (UTC day = session), bundled BTC 1m candles, paper venue",
        (
            f"strategies: K1 vwap reversion and K2 failed break on 5m, K5 noise filter over both; "
            f"limits: ${V1_LIMITS['max_risk_money']:.0f} risk a trade, {V1_LIMITS['max_trades_per_day']} trades "
            f"a day, ${V1_LIMITS['daily_loss_money']:.0f} daily loss"
        ),
        "",
    ]
    tail = [
        "",
        (
            f"{d['trades']} trade(s) ({', '.join(f'{k} {v}' for k, v in d['by_strategy'].items())}), "
            f"net {_money(d['pnl'])}; {d['skips']} setup(s) skipped"
        ),
        "throttle levels after the day: "
        + ", ".join(
            f"{k} {state} (size x{scale:.2f})" for k, (state, scale) in d["throttles"].items()
        ),
        (
            "next: `fractald backtest --strategy k1_vwap_reversion --timeframe 5m` for the whole month, "
            "`fractald run` for the daemon"
        ),
    ]
    return "\n".join(head + d["lines"] + tail)


def demo_command(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fractald demo", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--day", default=DAY, help=f"UTC day of the bundled candles (default {DAY})"
    )
    args = parser.parse_args(argv)
    try:
        print(format_demo(run_demo(args.day)))
    except ValueError as exc:
        print(f"fractald demo: error: {exc}", file=sys.stderr)
        return 2
    return 0
