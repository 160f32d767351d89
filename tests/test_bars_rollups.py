"""Rollups (buffered, built at the period's last bar) against a running-total reference, bar for bar."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from fractald.backtest import Runner, StrategySettings, new_runner
from fractald.core.bars import Rollups, TimeframeRollup
from fractald.core.models import Bar, timeframe_ms
from fractald.core.strategies.registry import SMC_STRATEGIES
from fractald.venues.replay import bundled_candles

T0 = 1_700_000_000_000 - 1_700_000_000_000 % 86_400_000  # a UTC midnight
MIN = 60_000


class _RunningRollup:
    """The rules written the plain way: one running bar per timeframe, updated on every base bar."""

    def __init__(self, timeframe: str, base_timeframe: str) -> None:
        self.timeframe, self.tf_ms, self.base_ms = timeframe, timeframe_ms(timeframe), timeframe_ms(base_timeframe)
        self.period: int | None = None
        self.acc: list[float] | None = None  # open, high, low, close, volume
        self.count, self.complete = 0, True

    def on_base(self, bar: Bar) -> Bar | None:
        period = bar.ts_open - bar.ts_open % self.tf_ms
        if self.period != period:
            self.period, self.acc, self.count, self.complete = period, None, 0, True
        self.count += 1
        self.complete = self.complete and bar.complete
        if bar.complete or bar.volume > 0:
            if self.acc is None:
                self.acc = [bar.open, bar.high, bar.low, bar.close, 0.0]
            self.acc[1] = max(self.acc[1], bar.high)
            self.acc[2] = min(self.acc[2], bar.low)
            self.acc[3] = bar.close
            self.acc[4] += bar.volume
        if bar.ts_open + self.base_ms < period + self.tf_ms:
            return None
        acc, self.acc, self.period = self.acc, None, None
        if acc is None:
            c = bar.close
            return Bar(bar.symbol, self.timeframe, period, c, c, c, c, 0.0, False)
        return Bar(bar.symbol, self.timeframe, period, *acc,
                   self.complete and self.count == self.tf_ms // self.base_ms)


# Each base bar: how many bars on from the last one (0 repeats it, negative goes back), its kind, its prices.
_moves = st.lists(st.tuples(st.sampled_from([1] * 12 + [2, 3, 7, 16, 61, 0, -1, -20]),
                            st.sampled_from(["ok"] * 6 + ["placeholder", "partial"]),
                            st.floats(1.0, 2.0), st.floats(0.0, 1.0), st.floats(0.0, 3.0)),
                  max_size=400)


def _bars(moves: list[tuple[int, str, float, float, float]], base: str = "1m") -> list[Bar]:
    out, ts, step = [], T0 - 3 * MIN, timeframe_ms(base)
    for skip, kind, price, spread, volume in moves:
        ts += skip * step
        if kind == "placeholder":
            out.append(Bar("X", base, ts, price, price, price, price, 0.0, False))
        else:
            out.append(Bar("X", base, ts, price, price + spread, price - spread / 2, price + spread / 3,
                           volume, kind == "ok"))
    return out


@settings(max_examples=300, deadline=None)
@given(_moves, st.sampled_from([("5m", "15m", "1h"), ("3m", "5m"), ("15m",), ("1h", "15m", "4h")]))
def test_rollups_give_what_running_totals_give(moves, timeframes) -> None:
    bars = _bars(moves)
    rollups = Rollups("X", timeframes, "1m")
    refs = [_RunningRollup(tf, "1m") for tf in sorted(timeframes, key=timeframe_ms)]
    singles = [TimeframeRollup("X", tf, "1m") for tf in sorted(timeframes, key=timeframe_ms)]
    for bar in bars:
        want = [b for b in (r.on_base(bar) for r in refs) if b is not None]
        assert list(rollups.on_base(bar)) == want
        assert [b for b in (r.on_base(bar) for r in singles) if b is not None] == want


def test_rollups_keep_only_the_open_periods_bars() -> None:
    bars = _bars([(1, "ok", 1.5, 0.5, 1.0)] * 2000)
    rollups, nothing = Rollups("X", ["15m", "1h"], "1m"), Rollups("X", [], "1m")
    for bar in bars:
        rollups.on_base(bar)
        assert nothing.on_base(bar) == []
        assert len(rollups._buf) <= 60 and not nothing._buf


def test_runner_feed_counts_what_step_gives() -> None:
    bars = bundled_candles()[:6000]
    settings_ = StrategySettings.of(list(SMC_STRATEGIES))
    fed, stepped = (new_runner("BTC-PERP", "1m", settings_, 10_000.0) for _ in range(2))
    fed.feed(bars)
    events = [e for bar in bars for e in stepped.step(bar)]
    Runner._tally(stepped, events, True)
    assert fed.signals == stepped.signals > 0
    assert (fed.skips, fed.denials, fed.trades) == (stepped.skips, stepped.denials, stepped.trades)
