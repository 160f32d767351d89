"""K1-K5 templates: each finds its planted setup on a synthetic session, respects the session window,
and trades the bundled candles (a 24 h market: one session per UTC day)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pytest

from fractald.backtest import StrategySettings, new_runner
from fractald.core.models import Bar, Side, Signal
from fractald.core.pipeline import SetupSkipped, SignalEmitted
from fractald.core.strategies import STRATEGIES, MarketState, Strategy
from fractald.core.strategies.k2_failed_break import efficiency_ratio
from test_strategies import WARM, LEG, run

M5 = 5 * 60_000
DAY0 = 1_700_006_400_000  # 2023-11-15 00:00 UTC, a session start for start minute 0


def series(rows: Sequence[tuple[float, float, float, float, float]], tf: str = "5m", step: int = M5,
           t0: int = DAY0) -> list[Bar]:
    return [Bar("ES", tf, t0 + k * step, o, h, lo, c, v) for k, (o, h, lo, c, v) in enumerate(rows)]


def make(name: str, tf: str = "5m", **params: object) -> Strategy:
    cls = STRATEGIES[name]
    return cls("ES", tf, cls.params_type.for_timeframe(tf, **params))


def wiggle(n: int, base: float = 100.0, amp: float = 0.5, vol: float = 10.0) -> list[tuple[float, ...]]:
    rows, prev = [], base
    for k in range(n):
        c = base + amp * math.sin(k * 1.3)
        rows.append((prev, max(prev, c) + 0.1, min(prev, c) - 0.1, c, vol))
        prev = c
    return rows


def test_k1_buys_a_close_back_from_below_the_lower_band() -> None:
    rows = wiggle(40)
    rows.append((98.0, 98.7, 97.5, 98.6, 10.0))  # opens under the band, pokes lower, closes up, below VWAP
    got = run(make("k1_vwap_reversion", min_session_bars=20, band_k=2.0), series(rows))
    assert len(got) == 1
    k, setup, signal = got[0]
    assert k == 40 and isinstance(signal, Signal) and signal.side is Side.BUY
    assert signal.stop < 97.5 and setup.reasons[0]["structure"] == "SessionVWAP"
    vwap = setup.reasons[0]["vwap"]
    assert 99.5 < vwap < 100.5 and 97.5 < setup.reasons[0]["band"] < vwap
    bearish = rows[:-1] + [(98.6, 98.7, 97.5, 98.0, 10.0)]  # same poke, closes down: no turn, no trade
    assert run(make("k1_vwap_reversion", min_session_bars=20, band_k=2.0), series(bearish)) == []


def test_k1_starts_a_fresh_vwap_each_session_and_waits_for_enough_bars() -> None:
    rows = wiggle(10)
    rows.append((98.0, 98.7, 97.5, 98.6, 10.0))
    assert run(make("k1_vwap_reversion", min_session_bars=20), series(rows)) == []  # too early in the session
    # the same poke 21 bars into the *next* session after a long day is also too early: the VWAP reset
    day = wiggle(288)
    rows2 = day + wiggle(10) + [rows[-1]]
    assert [k for k, _, _ in run(make("k1_vwap_reversion", min_session_bars=20), series(rows2))
            if k >= 288] == []


def test_k2_sells_a_failed_break_of_a_tight_range() -> None:
    rows = wiggle(40, amp=1.0)
    hi = max(r[1] for r in rows[-30:])
    rows.append((100.5, hi + 1.5, 100.0, 100.8, 10.0))  # poke above the range, close back inside
    got = run(make("k2_failed_break", range_bars=30, max_range_atr=10.0, max_efficiency=0.5), series(rows))
    assert len(got) == 1
    k, setup, signal = got[0]
    assert k == 40 and isinstance(signal, Signal) and signal.side is Side.SELL
    assert signal.stop > hi + 1.5 and setup.reasons[0]["range_high"] == pytest.approx(hi)


def test_k2_ignores_the_same_poke_in_a_trend() -> None:
    rows = [(100 + k, 101.2 + k, 99.8 + k, 101 + k, 10.0) for k in range(40)]  # a straight climb
    rows.append((140, 143.0, 139.0, 140.5, 10.0))
    assert run(make("k2_failed_break", range_bars=30, max_range_atr=100.0, max_efficiency=0.5), series(rows)) == []
    assert efficiency_ratio([1.0, 2.0, 3.0]) == 1.0 and efficiency_ratio([1.0, 2.0, 1.0]) == 0.0


def test_k3_trades_the_sweep_of_equal_highs_inside_its_window_only() -> None:
    from test_strategies import bars_from

    sweep = (106, 112, 105, 106.5)
    bars = bars_from(WARM + LEG + [sweep] + [(106, 107, 105, 106)] * 3)
    common = {"swing_length": 2, "reclaim_bars": 0, "use_previous_levels": False}
    got = run(make("k3_sweep_reversal", "15m", **common), bars)
    assert len(got) == 1 and got[0][2].side is Side.SELL and got[0][0] == len(WARM) + len(LEG)
    # a session that closes before the sweep's bar: the hunt is seen, nothing is entered
    sweep_close = bars[len(WARM) + len(LEG)].ts_event
    minute = (sweep_close // 60_000) % 1440
    closed = run(make("k3_sweep_reversal", "15m", session_start_minute=(minute + 60) % 1440,
                      session_minutes=120, **common), bars)
    assert closed == []
    ticks = run(make("k3_sweep_reversal", "15m", stop_ticks=12, tick_size=0.25, **common), bars)
    assert ticks[0][2].stop == pytest.approx(106.5 + 12 * 0.25)


def test_k4_joins_a_displacement_bar_with_the_trend() -> None:
    rows = [(100 + 0.3 * k, 100.6 + 0.3 * k, 99.7 + 0.3 * k, 100.3 + 0.3 * k, 10.0) for k in range(30)]
    rows += wiggle(15, base=109.0, amp=0.4)  # pause: swings form, the trend is up
    rows += [(109.0, 109.3, 108.8, 109.1, 10.0), (109.1, 109.3, 108.9, 109.2, 10.0)]
    rows.append((109.2, 113.1, 109.1, 113.0, 40.0))  # range >> ATR, full body, 4x volume
    strat = make("k4_momentum_extension", swing_length=2, require_trend=False)
    got = run(strat, series(rows))
    assert [k for k, _, _ in got] == [len(rows) - 1]
    signal = got[0][2]
    mid = (113.1 + 109.1) / 2  # the stop: the bar's midpoint less the ATR buffer
    assert isinstance(signal, Signal) and signal.side is Side.BUY and mid - 0.5 < signal.stop < mid
    quiet = rows[:-1] + [(109.2, 113.1, 109.1, 113.0, 10.0)]  # same bar on ordinary volume
    assert run(make("k4_momentum_extension", swing_length=2, require_trend=False), series(quiet)) == []


def _pipeline_events(names: list[str], bars: list[Bar], params: dict[str, dict[str, object]]) -> list[object]:
    st = StrategySettings(tuple(names), "5m", ("5m",), params, StrategySettings.of([]).config)
    runner = new_runner("ES", "5m", st, 10_000.0)
    events: list[object] = []
    for bar in bars:
        events += runner.step(bar)
    return events


def test_k5_vetoes_the_others_in_chop_and_not_in_a_trend() -> None:
    chop = wiggle(40, amp=1.0)
    hi = max(r[1] for r in chop[-30:])
    bars = series(chop + [(100.5, hi + 1.5, 100.0, 100.8, 10.0)])
    k2 = {"range_bars": 30, "max_range_atr": 10.0, "max_efficiency": 0.5}
    alone = _pipeline_events(["k2_failed_break"], bars, {"k2_failed_break": k2})
    assert any(isinstance(e, SignalEmitted) for e in alone)
    vetoed = _pipeline_events(["k2_failed_break", "k5_noise_filter"], bars,
                              {"k2_failed_break": k2, "k5_noise_filter": {"window": 20, "max_noise": 0.5}})
    assert not any(isinstance(e, SignalEmitted) for e in vetoed)
    skip = [e for e in vetoed if isinstance(e, SetupSkipped)]
    assert skip and skip[0].code == "NOISE_VETO" and skip[0].strategy == "k2_failed_break"
    assert "k5_noise_filter: noise" in skip[0].detail
    # a filter that tolerates this much noise lets the same signal through
    loose = _pipeline_events(["k5_noise_filter", "k2_failed_break"], bars,
                             {"k2_failed_break": k2, "k5_noise_filter": {"window": 20, "max_noise": 1.0,
                                                                          "max_atr_ratio": 100.0}})
    assert any(isinstance(e, SignalEmitted) for e in loose)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["k1_vwap_reversion", "k2_failed_break", "k3_sweep_reversal",
                                  "k4_momentum_extension"])
def test_each_template_trades_the_bundled_candles_as_a_24h_market(name: str) -> None:
    from fractald.venues.replay import bundled_candles

    st = StrategySettings.of([name, "k5_noise_filter"], "15m", ("15m", "1h", "4h"))
    runner = new_runner("BTC-PERP", "1m", st, 10_000.0)
    runner.feed(bundled_candles())
    assert runner.trades and {t.strategy for t in runner.trades} == {name}
    assert all(t.ts_exit >= t.ts_entry for t in runner.trades)


def test_session_window_arithmetic() -> None:
    s = make("k1_vwap_reversion", session_start_minute=13 * 60 + 30, session_minutes=390, skip_first_minutes=5,
             no_entry_last_minutes=15)
    open_ms = DAY0 + (13 * 60 + 30) * 60_000
    assert not s.entry_window_open(open_ms + 5 * 60_000)  # bar closing 5 min in: still the opening minutes
    assert s.entry_window_open(open_ms + 10 * 60_000)
    assert s.entry_window_open(open_ms + 375 * 60_000)  # 15:45 ET in winter: the last allowed close
    assert not s.entry_window_open(open_ms + 380 * 60_000)
    assert not s.entry_window_open(open_ms - 60_000)  # before the open
    assert MarketState  # the templates run on the same market state as every strategy
