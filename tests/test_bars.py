"""Bar aggregation: pandas equivalence, grace window, gaps, exactly-once, candle roll-up."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fractald.core.bars import GapRequest, Step, SymbolBars, TimeframeRollup
from fractald.core.models import Bar, timeframe_ms
from fractald.venues.replay import bundled_candles

T0 = 1_700_000_000_000 - 1_700_000_000_000 % 86_400_000  # a UTC midnight
MIN = 60_000
TFS = ["1m", "5m", "15m", "1h"]


def _run(pipeline: SymbolBars, steps: list[Step], rest=None) -> list[Bar]:
    """Collect bars, answering every gap with `rest(gap)` (None: REST unavailable)."""
    out: list[Bar] = []
    queue = list(steps)
    while queue:
        step = queue.pop(0)
        out.extend(step.bars)
        if step.gap is not None:
            queue.append(pipeline.resolve_gap(rest(step.gap) if rest else None))
    return out


def _check_sequence(bars: list[Bar]) -> dict[str, list[Bar]]:
    """Per timeframe: no duplicate, no hole, in order."""
    by_tf: dict[str, list[Bar]] = {}
    for b in bars:
        by_tf.setdefault(b.timeframe, []).append(b)
    for tf, seq in by_tf.items():
        opens = [b.ts_open for b in seq]
        step = timeframe_ms(tf)
        assert opens == list(range(opens[0], opens[-1] + step, step)), f"{tf} has a hole or duplicate"
    return by_tf


trade_lists = st.lists(
    st.tuples(st.integers(0, 3 * 3600 * 1000 - 1),  # ms offset within 3 hours
              st.integers(1, 10_000),  # price in cents
              st.integers(1, 1000)),  # size in thousandths
    min_size=1, max_size=400)


@settings(max_examples=80, deadline=None)
@given(raw=trade_lists)
def test_bars_from_random_trades_equal_pandas_resample(raw) -> None:
    trades = sorted(raw, key=lambda t: t[0])
    pipeline = SymbolBars("X", TFS, grace_ms=0)
    steps = [pipeline.add_trade(p / 100, s / 1000, T0 + t) for t, p, s in trades]
    steps.append(pipeline.advance(T0 + 4 * 3600 * 1000))  # past the end of every period
    by_tf = _check_sequence(_run(pipeline, steps))

    frame = pd.DataFrame({"price": [p / 100 for _, p, _ in trades],
                          "size": [s / 1000 for _, _, s in trades]},
                         index=pd.to_datetime([T0 + t for t, _, _ in trades], unit="ms", utc=True))
    for tf in TFS:
        rule = f"{timeframe_ms(tf) // MIN}min"
        expected = frame["price"].resample(rule, label="left", closed="left").ohlc()
        expected["volume"] = frame["size"].resample(rule, label="left", closed="left").sum()
        ours = {b.ts_open: b for b in by_tf[tf]}
        for ts, row in expected.iterrows():
            bar = ours[int(ts.value // 1_000_000)]
            if pd.isna(row["open"]):
                assert bar.volume == 0 and not bar.complete  # a hole is marked, never invented
                continue
            assert (bar.open, bar.high, bar.low, bar.close) == (
                row["open"], row["high"], row["low"], row["close"])
            assert bar.volume == pytest.approx(row["volume"])
        assert set(ours) >= {int(ts.value // 1_000_000) for ts in expected.index}


def test_late_trade_inside_grace_amends_and_after_grace_is_counted() -> None:
    p = SymbolBars("X", ["1m"], grace_ms=2_000)
    p.add_trade(100.0, 1.0, T0 + 10)
    p.resolve_gap(None) if p.pending_gap else None
    assert p.add_trade(101.0, 1.0, T0 + MIN + 500).bars == ()  # next minute, bar 0 still open
    assert p.add_trade(99.0, 2.0, T0 + 59_000).bars == ()  # late, within grace: amends bar 0
    step = p.advance(T0 + MIN + 2_000)  # grace over: bar 0 closes (first minute: suspect)
    assert step.gap == GapRequest("X", "1m", T0, T0 + MIN)
    (bar0,) = p.resolve_gap(None).bars
    assert (bar0.open, bar0.high, bar0.low, bar0.close, bar0.volume) == (100.0, 100.0, 99.0, 99.0, 3.0)
    assert not bar0.complete  # we joined mid-minute and REST had nothing
    p.add_trade(50.0, 1.0, T0 + 30_000)  # too late now
    assert p.late_trades == 1
    (bar1,) = p.advance(T0 + 2 * MIN + 2_000).bars
    assert (bar1.open, bar1.low, bar1.volume, bar1.complete) == (101.0, 101.0, 1.0, True)


def _rest_for(truth: dict[int, Bar]):
    return lambda gap: [truth[t] for t in range(gap.start_ms, gap.end_ms, MIN) if t in truth]


def test_outage_bars_are_refetched_from_rest_before_the_next_bar_goes_out() -> None:
    truth = {T0 + i * MIN: Bar("X", "1m", T0 + i * MIN, 10 + i, 11 + i, 9 + i, 10.5 + i, 5.0)
             for i in range(10)}
    p = SymbolBars("X", ["1m", "5m"], grace_ms=0)
    emitted: list[Bar] = []
    emitted += _run(p, [p.add_trade(10.0, 1.0, T0 + 5)], _rest_for(truth))
    emitted += _run(p, [p.add_trade(11.0, 1.0, T0 + MIN + 5)], _rest_for(truth))
    # Disconnected from minute 1 to minute 3; trades resume at minute 3.
    p.note_outage(T0 + MIN + 5, T0 + 3 * MIN + 100)
    steps = [p.add_trade(13.0, 1.0, T0 + 3 * MIN + 200), p.add_trade(14.0, 1.0, T0 + 4 * MIN + 1),
             p.advance(T0 + 5 * MIN)]
    gaps = [s.gap for s in steps if s.gap]
    # Minutes 1-2 are asked for as soon as they close; minute 3 once it closes too.
    assert gaps == [GapRequest("X", "1m", T0 + MIN, T0 + 3 * MIN)]
    emitted += _run(p, steps, _rest_for(truth))
    by_tf = _check_sequence(emitted)
    ones = by_tf["1m"]
    assert [b.ts_open for b in ones] == [T0 + i * MIN for i in range(5)]
    assert ones[1:4] == [truth[T0 + i * MIN] for i in (1, 2, 3)]  # REST's version, complete
    assert ones[4].close == 14.0 and ones[4].complete
    assert ones[0] == truth[T0]  # joined mid-minute: REST's full bar replaces our partial one
    assert (p.gaps_found, p.bars_filled, p.bars_unfilled) == (3, 4, 0)
    (five,) = by_tf["5m"]
    assert five.ts_open == T0 and five.complete == all(b.complete for b in ones)


def test_first_bar_is_taken_from_rest_when_available() -> None:
    truth = {T0: Bar("X", "1m", T0, 10, 12, 9, 11, 7.0)}
    p = SymbolBars("X", ["1m"], grace_ms=0)
    bars = _run(p, [p.add_trade(11.0, 1.0, T0 + 30_000), p.advance(T0 + MIN)], _rest_for(truth))
    assert bars == [truth[T0]]
    assert p.bars_filled == 1


def test_unfillable_gap_is_marked_not_invented() -> None:
    p = SymbolBars("X", ["1m", "5m"], grace_ms=0)
    steps = [p.on_base_bar(Bar("X", "1m", T0, 1, 2, 0.5, 1.5, 3.0)),
             p.on_base_bar(Bar("X", "1m", T0 + 4 * MIN, 2, 3, 1, 2.5, 4.0))]
    assert steps[1].gap == GapRequest("X", "1m", T0 + MIN, T0 + 4 * MIN)
    bars = _run(p, steps)
    ones = [b for b in bars if b.timeframe == "1m"]
    assert [(b.close, b.volume, b.complete) for b in ones[1:4]] == [(1.5, 0.0, False)] * 3
    (five,) = [b for b in bars if b.timeframe == "5m"]
    assert (five.open, five.high, five.low, five.close, five.volume, five.complete) == (
        1, 3, 0.5, 2.5, 7.0, False)


def test_duplicate_candles_are_dropped_and_counted() -> None:
    p = SymbolBars("X", ["1m"], grace_ms=0)
    bar = Bar("X", "1m", T0, 1, 1, 1, 1, 1.0)
    assert p.on_base_bar(bar).bars == (bar,)
    assert p.on_base_bar(bar) == Step()
    assert p.duplicate_bars == 1


def test_bundled_candles_roll_up_like_pandas() -> None:
    candles = bundled_candles()[:3000]
    p = SymbolBars(candles[0].symbol, ["1m", "5m", "1h", "4h", "1d"])
    bars = _run(p, [p.on_base_bar(c) for c in candles])
    by_tf = _check_sequence(bars)
    assert by_tf["1m"] == candles  # nothing lost, nothing added, order kept
    frame = pd.DataFrame([(c.open, c.high, c.low, c.close, c.volume) for c in candles],
                         columns=["open", "high", "low", "close", "volume"],
                         index=pd.to_datetime([c.ts_open for c in candles], unit="ms", utc=True))
    agg = {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}
    for tf in ("5m", "1h", "4h"):
        expected = frame.resample(f"{timeframe_ms(tf) // MIN}min").agg(agg)
        ours = by_tf[tf]
        # The data starts at 23:01, so the first period of each is partial: marked incomplete.
        assert not ours[0].complete and all(b.complete for b in ours[1:])
        for bar in ours:
            row = expected.loc[pd.Timestamp(bar.ts_open, unit="ms", tz="UTC")]
            assert (bar.open, bar.high, bar.low, bar.close) == tuple(row[["open", "high", "low", "close"]])
            assert bar.volume == pytest.approx(row["volume"])
            # Emitted exactly when the period's last minute closed, not before.
        assert len(ours) == (candles[-1].ts_event - (candles[0].ts_open - candles[0].ts_open % timeframe_ms(tf))) // timeframe_ms(tf)
    day = by_tf["1d"]
    assert [b.ts_open % 86_400_000 for b in day] == [0] * len(day)


def test_five_minute_candles_as_base() -> None:
    p = SymbolBars("X", ["5m", "15m"], base_timeframe="5m")
    bars = _run(p, [p.on_base_bar(Bar("X", "5m", T0 + i * 5 * MIN, i, i + 1, i - 0.5, i + 0.5, 1.0))
                    for i in range(1, 7)])
    fifteen = [b for b in bars if b.timeframe == "15m"]
    assert [(b.ts_open - T0) // MIN for b in fifteen] == [0, 15]
    assert fifteen[1] == Bar("X", "15m", T0 + 15 * MIN, 3, 6, 2.5, 5.5, 3.0, True)
    with pytest.raises(ValueError, match="not a multiple"):
        TimeframeRollup("X", "3m", "5m")
    with pytest.raises(ValueError, match="expected a X 5m bar"):
        p.on_base_bar(Bar("X", "1m", T0, 1, 1, 1, 1, 1))


def test_a_very_long_outage_skips_to_the_recent_part() -> None:
    p = SymbolBars("X", ["1m"], grace_ms=0, max_gap_bars=100)
    p.on_base_bar(Bar("X", "1m", T0, 1, 1, 1, 1, 1.0))
    step = p.on_base_bar(Bar("X", "1m", T0 + 1000 * MIN, 1, 1, 1, 1, 1.0))
    assert step.gap == GapRequest("X", "1m", T0 + 900 * MIN, T0 + 1000 * MIN)
    assert p.bars_skipped == 899


def test_history_at_start_makes_the_first_bar_of_every_timeframe_whole() -> None:
    truth = {T0 + i * MIN: Bar("X", "1m", T0 + i * MIN, 10, 11, 9, 10, 1.0) for i in range(200)}
    p = SymbolBars("X", ["1m", "5m", "1h"], grace_ms=0, history_bars=90)
    now = T0 + 130 * MIN + 20_000  # 02:10:20; 90 bars back is 00:40, aligned to the hour: 00:00
    first = p.add_trade(10.0, 1.0, now)
    assert first.gap == GapRequest("X", "1m", T0, T0 + 130 * MIN)
    bars = _run(p, [first, p.advance(T0 + 131 * MIN)], _rest_for(truth))
    by_tf = _check_sequence(bars)
    assert by_tf["1m"][0].ts_open == T0 and len(by_tf["1m"]) == 131
    assert [b.ts_open for b in by_tf["1h"]] == [T0, T0 + 60 * MIN] and all(b.complete for b in by_tf["1h"])
    with pytest.raises(ValueError, match="history_bars"):
        SymbolBars("X", ["1m"], history_bars=6000)


def test_history_that_rest_cannot_give_is_flat_at_the_first_known_price() -> None:
    p = SymbolBars("X", ["1m", "5m"], grace_ms=0, history_bars=3)
    first = p.add_trade(42.0, 1.0, T0 + 3 * MIN + 10)
    assert first.gap == GapRequest("X", "1m", T0, T0 + 3 * MIN)  # 3 back, on a 5m boundary
    bars = p.resolve_gap(None).bars
    assert len(bars) == 3 and all((b.timeframe, b.close, b.volume, b.complete) == ("1m", 42.0, 0.0, False)
                                  for b in bars)
