"""Trades to base bars, base bars to every configured timeframe, with gap handling.

Pure: event time comes in with the data (`now_ms` is the venue-time
watermark the shell estimates). Rules a trader relies on:

* Bars are aligned to UTC boundaries (epoch multiples of the timeframe).
* A base bar closes when the watermark passes its end plus the grace
  window; trades that arrive late but before then amend it. Trades for a
  bar that has already closed are counted (`late_trades`) and dropped.
* Every base bar is emitted exactly once and in order, with no hole. A
  minute we have no trustworthy data for (no trades, or it overlapped a
  disconnect) is not guessed: the pipeline stops and asks for it
  (`GapRequest`); the shell fetches it from REST and calls `resolve_gap`.
  What REST cannot supply goes out with `complete=False` (our partial bar
  if we have one, else a flat bar at the last close with zero volume).
* A higher-timeframe bar goes out when its last base bar does; it is
  complete only if every base bar in it is present and complete.
* The venue's own closed candle (`venue_bar`) is the cross-check: a base
  bar of ours that differs from it goes out as the venue's (trades were
  missed while the connection stayed up); one that already went out
  cannot be repaired and is counted (`bars_mismatched`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import reduce
from operator import add, attrgetter

import attrs

from fractald.core.models import Bar, TradeTick, timeframe_ms


@attrs.frozen(slots=True)
class GapRequest:
    """Base bars [start_ms, end_ms) (ts_open values) must be fetched before anything else goes out."""

    symbol: str
    timeframe: str
    start_ms: int
    end_ms: int

    @property
    def bars(self) -> int:
        return (self.end_ms - self.start_ms) // timeframe_ms(self.timeframe)


@attrs.frozen(slots=True)
class Step:
    """The result of one input: closed bars in emission order, and maybe a gap to fill first."""

    bars: tuple[Bar, ...] = ()
    gap: GapRequest | None = None


EMPTY_STEP = Step()


@attrs.frozen(slots=True)
class BarCorrection:
    """A base bar that went out wrong (trades lost, a placeholder) and the venue's true one.

    ``was`` is what went out, when still known. Sent downstream after the bars
    it follows, so consumers can put the true bar where the wrong one was.
    """

    bar: Bar
    was: Bar | None
    reason: str  # "venue_candle" (the venue's own candle differed) or "refetched" (REST)

    @property
    def symbol(self) -> str:
        return self.bar.symbol


class _OpenBar:
    """A bar still taking trades; mutable because it changes on every trade."""

    __slots__ = ("close", "high", "low", "open", "ts_open", "volume")

    def __init__(self, ts_open: int, price: float, size: float) -> None:
        self.ts_open = ts_open
        self.open = self.high = self.low = self.close = price
        self.volume = size

    def add(self, price: float, size: float) -> None:
        if price > self.high:
            self.high = price
        elif price < self.low:
            self.low = price
        self.close = price
        self.volume += size

    def freeze(self, symbol: str, timeframe: str, complete: bool = True) -> Bar:
        return Bar(
            symbol,
            timeframe,
            self.ts_open,
            self.open,
            self.high,
            self.low,
            self.close,
            self.volume,
            complete,
        )


RECENT_BARS = 16  # emitted base bars kept to compare with a venue candle that comes late
VENUE_BARS_CAP = 64  # venue candles held for bars not out yet (a bound, not a working size)


def same_bar(ours: Bar, venue: Bar) -> bool:
    """Our bar says what the venue's candle says (volume up to float summing)."""
    return (
        ours.open == venue.open
        and ours.high == venue.high
        and ours.low == venue.low
        and ours.close == venue.close
        and abs(ours.volume - venue.volume) <= 1e-9 * max(1.0, abs(venue.volume))
    )


_NEVER = (
    1 << 62
)  # an idle period's start: no ts_open reaches it, so the next bar opens a new period
_HIGH, _LOW, _VOLUME, _COMPLETE = (attrgetter(f) for f in ("high", "low", "volume", "complete"))


class _Period:
    """One timeframe's current period in a Rollups; its base bars are the shared buffer from `first` on."""

    __slots__ = ("end", "first", "last", "per_bar", "start", "tf_ms", "timeframe")

    def __init__(self, timeframe: str, tf_ms: int, per_bar: int) -> None:
        self.timeframe = timeframe
        self.tf_ms = tf_ms
        self.per_bar = per_bar
        self.idle()

    def idle(self) -> None:
        self.start, self.end, self.last, self.first = _NEVER, -_NEVER, -_NEVER, 0


class Rollups:
    """Rolls consecutive base bars into several higher timeframes, aligned to UTC, shortest first.

    The base bars of every open period are kept (one shared buffer) and a
    higher bar is built when its last base bar arrives, so a base bar that
    closes nothing costs one range check and one append whatever the number
    of timeframes. Rules for each timeframe: a bar goes out with its
    period's last base bar; it holds the prices of the complete (or traded)
    base bars in it, and is complete only if all `per_bar` base bars came
    and were complete; a period of placeholders only gives one flat
    placeholder at the closing bar's close. A base bar from another period
    than the open one starts that period afresh (only after a skipped stretch).
    """

    def __init__(self, symbol: str, timeframes: Iterable[str], base_timeframe: str) -> None:
        self.symbol = symbol
        self.base_ms = base_ms = timeframe_ms(base_timeframe)
        periods = []
        for tf in sorted(set(timeframes), key=timeframe_ms):
            tf_ms = timeframe_ms(tf)
            if tf_ms <= base_ms or tf_ms % base_ms:
                raise ValueError(
                    f"timeframe {tf} is not a multiple of the base timeframe {base_timeframe}"
                )
            periods.append(_Period(tf, tf_ms, tf_ms // base_ms))
        self.periods: tuple[_Period, ...] = tuple(periods)
        self.timeframes = tuple(p.timeframe for p in periods)
        self._buf: list[Bar] = []
        # Every period holds [_lo, _hi) without closing there: a bar in it only joins the buffer.
        self._lo, self._hi = _NEVER, -_NEVER

    def on_base(self, bar: Bar) -> Sequence[Bar]:
        """The next base bar; the higher bars it closes, shortest timeframe first."""
        self._buf.append(bar)
        if self._lo <= bar.ts_open < self._hi:
            return ()
        return self._turn(bar)

    def absorbs(self, bar: Bar) -> bool:
        """`on_base(bar)` when it closes nothing (the bar only joins the open periods); else False,
        having changed nothing (then `on_base` it)."""
        if self._lo <= bar.ts_open < self._hi:
            self._buf.append(bar)
            return True
        return False

    def back_adjust(self, before_ms: int, offset: float) -> int:
        """A futures roll: the held base bars opening before `before_ms` move by `offset`, so a
        higher bar spanning the roll is built of one series; how many moved."""
        moved = 0
        for i, held in enumerate(self._buf):
            if held.ts_open < before_ms:
                self._buf[i] = _moved(held, offset)
                moved += 1
        return moved

    def replace(self, bar: Bar) -> bool:
        """A corrected base bar of a period still open: its higher bars will carry it."""
        for i, held in enumerate(self._buf):
            if held.ts_open == bar.ts_open:
                self._buf[i] = bar
                return True
        return False

    def _turn(self, bar: Bar) -> list[Bar]:
        ts, buf, out = bar.ts_open, self._buf, []
        for p in self.periods:
            if not p.start <= ts < p.end:
                p.start = ts - ts % p.tf_ms
                p.end = p.start + p.tf_ms
                p.last = p.end - self.base_ms
                p.first = len(buf) - 1
            if ts >= p.last:
                out.append(self._roll(p, buf[p.first :]))
                # the next period opens with the next bar (a bar from anywhere else restarts it anyway)
                p.start, p.end, p.last, p.first = p.end, p.end + p.tf_ms, p.last + p.tf_ms, len(buf)
        # with no timeframe at all no bar is kept: lo stays past every bar so each one comes here
        keep, lo, hi = len(buf), (-_NEVER if self.periods else _NEVER), _NEVER
        for p in self.periods:
            if p.start != _NEVER and p.first < keep:
                keep = p.first
            lo = max(lo, p.start)
            hi = min(hi, p.last)
        if keep:
            del buf[:keep]
            for p in self.periods:
                if p.start != _NEVER:
                    p.first -= keep
        self._lo, self._hi = lo, hi
        return out

    def _roll(self, p: _Period, bars: list[Bar]) -> Bar:
        complete = all(map(_COMPLETE, bars))
        # Flat placeholders for missing bars carry no prices of their own period.
        priced = bars if complete else [b for b in bars if b.complete or b.volume > 0]
        if not priced:  # nothing but placeholders: one flat placeholder
            c = bars[-1].close
            return Bar(self.symbol, p.timeframe, p.start, c, c, c, c, 0.0, False)
        # max/min over the bars in order, and the volume summed from 0.0 in order, as a running total would
        return Bar(
            self.symbol,
            p.timeframe,
            p.start,
            priced[0].open,
            max(map(_HIGH, priced)),
            min(map(_LOW, priced)),
            priced[-1].close,
            reduce(add, map(_VOLUME, priced), 0.0),
            complete and len(bars) == p.per_bar,
        )


class TimeframeRollup:
    """Rolls consecutive base bars into one higher timeframe, aligned to UTC (see Rollups)."""

    def __init__(self, symbol: str, timeframe: str, base_timeframe: str) -> None:
        self._rollups = Rollups(symbol, [timeframe], base_timeframe)
        self.symbol = symbol
        self.timeframe = timeframe
        self.tf_ms = timeframe_ms(timeframe)
        self.base_ms = timeframe_ms(base_timeframe)
        self.per_bar = self.tf_ms // self.base_ms

    def on_base(self, bar: Bar) -> Bar | None:
        out = self._rollups.on_base(bar)
        return out[0] if out else None


def _moved(bar: Bar, offset: float) -> Bar:
    return attrs.evolve(
        bar,
        open=bar.open + offset,
        high=bar.high + offset,
        low=bar.low + offset,
        close=bar.close + offset,
    )


def _floor(ts: int, step: int) -> int:
    return ts - ts % step


class SymbolBars:
    """The bar pipeline for one symbol: base bars from trades or candles, gaps, rollups.

    Feed it with `on_trade` (live) or `on_base_bar` (candle replay, REST
    candles), tell it the venue time with `advance`, report outages with
    `note_outage`, and answer every `GapRequest` with `resolve_gap`.
    """

    def __init__(
        self,
        symbol: str,
        timeframes: Sequence[str],
        *,
        base_timeframe: str = "1m",
        grace_ms: int = 2_000,
        max_gap_bars: int = 5_000,
        history_bars: int = 0,
        start_at_ms: int | None = None,
    ) -> None:
        if grace_ms < 0:
            raise ValueError(f"grace_ms must be >= 0, got {grace_ms}")
        if not 0 <= history_bars <= max_gap_bars:
            raise ValueError(f"history_bars must be within 0..{max_gap_bars}, got {history_bars}")
        self.history_bars = history_bars
        # Live, after a restart: the first base bar to emit (the consumer's cursor, on a boundary
        # of the widest timeframe); the stretch up to the first trade is fetched as one gap.
        self.start_at_ms = start_at_ms
        self.symbol = symbol
        self.base_timeframe = base_timeframe
        self.step_ms = timeframe_ms(base_timeframe)
        if grace_ms >= self.step_ms:
            raise ValueError(f"grace_ms {grace_ms} must be shorter than the base bar")
        self.grace_ms = grace_ms
        self.max_gap_bars = max_gap_bars
        self.rollups = Rollups(
            symbol, [tf for tf in timeframes if tf != base_timeframe], base_timeframe
        )
        self._open: dict[int, _OpenBar] = {}
        self._closed: dict[int, Bar] = {}
        self._venue: dict[int, Bar] = {}  # the venue's closed candles for bars not out yet
        self._recent: dict[int, Bar] = {}  # the last base bars out, by ts_open
        self._suspect: list[tuple[int, int]] = []  # [start, end) ranges of base ts_open
        self._outage_from: int | None = None  # an outage still going on since this bar
        self.next_ts: int | None = None  # ts_open of the next base bar to emit
        self.frontier: int | None = None  # every base bar opening before this is closed
        self.pending_gap: GapRequest | None = None
        self.last_close: float | None = None
        # Counters for feed health and logs.
        self.late_trades = 0
        self.duplicate_bars = 0
        self.gaps_found = 0
        self.bars_filled = 0
        self.bars_unfilled = 0
        self.bars_skipped = 0
        self.bars_repaired = 0  # ours differed from the venue's candle before it went out
        self.bars_mismatched = 0  # ours differed, but had gone out already
        self.bars_unrepairable = 0  # suspect (missing trades) only once out
        self.bars_corrected = 0  # went out wrong, the true bar sent after it (BarCorrection)
        self.corrections: list[BarCorrection] = []  # to send; the feed takes them

    # -- inputs -------------------------------------------------------------
    def on_trade(self, tick: TradeTick) -> Step:
        return self.add_trade(tick.price, tick.size, tick.ts_event)

    def add_trade(self, price: float, size: float, ts: int) -> Step:
        minute = ts - ts % self.step_ms
        if self.next_ts is None:
            self.next_ts = self._history_start(minute)
            self.frontier = minute
            # We joined mid-bar: the first bar lacks the trades before we came.
            self._suspect.append((minute, minute + self.step_ms))
        frontier: int = self.frontier  # type: ignore[assignment]
        if minute < frontier:
            self.late_trades += 1
            return self.advance(ts)
        bar = self._open.get(minute)
        if bar is None:
            self._open[minute] = _OpenBar(minute, price, size)
        else:
            bar.add(price, size)
        if ts < frontier + self.step_ms + self.grace_ms:
            if self.next_ts < frontier:  # type: ignore[operator]
                return self._drain()  # history to fetch before the first live bar
            return EMPTY_STEP  # the hot path: nothing can close yet
        return self.advance(ts)

    def _history_start(self, minute: int) -> int:
        """Where a live pipeline starts: `history_bars` back, on a boundary of the longest timeframe.

        The history is fetched as a gap before anything goes out, so the
        first bars of every timeframe are whole (and complete) ones.
        """
        if self.start_at_ms is not None and self.start_at_ms < minute:
            return _floor(self.start_at_ms, self.step_ms)
        if not self.history_bars:
            return minute
        start = minute - self.history_bars * self.step_ms
        if self.rollups.periods:
            longest = self.rollups.periods[-1].tf_ms
            aligned = start - start % longest
            if (minute - aligned) // self.step_ms <= self.max_gap_bars:
                start = aligned
        return start

    def start_live(self, minute: int) -> None:
        """A live pipeline fed with base bars (IBKR's real-time bars rolled into minutes) starts
        where a trade-fed one would: `history_bars` back, or the consumer's cursor after a restart."""
        if self.next_ts is None:
            self.next_ts = self.frontier = self._history_start(_floor(minute, self.step_ms))

    def on_base_bar(self, bar: Bar) -> Step:
        """A finished base bar from a candle source (replay file, venue candle stream)."""
        if bar.timeframe != self.base_timeframe or bar.symbol != self.symbol:
            raise ValueError(
                f"expected a {self.symbol} {self.base_timeframe} bar, got {bar.symbol} {bar.timeframe}"
            )
        if self.next_ts is None:
            self.next_ts = bar.ts_open
            self.frontier = bar.ts_open
        if bar.ts_open < self.next_ts or bar.ts_open in self._closed:
            self.duplicate_bars += 1
            return EMPTY_STEP
        self._closed[bar.ts_open] = bar
        self.frontier = max(self.frontier, bar.ts_open + self.step_ms)  # type: ignore[type-var]
        return self._drain()

    def advance(self, now_ms: int) -> Step:
        """The venue clock reached `now_ms`: close every bar whose end + grace has passed."""
        if self.frontier is None:
            return EMPTY_STEP
        frontier = _floor(now_ms - self.grace_ms, self.step_ms)
        if frontier <= self.frontier:
            return EMPTY_STEP
        self.frontier = frontier
        for ts in [ts for ts in self._open if ts < frontier]:
            self._closed[ts] = self._open.pop(ts).freeze(self.symbol, self.base_timeframe)
        return self._drain()

    def note_outage(self, start_ms: int, end_ms: int) -> int:
        """Data between these venue times may be missing (disconnect, stall, lost trades): refetch
        those bars. Returns how many of them had gone out already (they cannot be repaired)."""
        if end_ms < start_ms:
            start_ms, end_ms = end_ms, start_ms
        start, end = _floor(start_ms, self.step_ms), _floor(end_ms, self.step_ms) + self.step_ms
        gone = 0
        if self.next_ts is not None and start < self.next_ts:
            gone = (min(end, self.next_ts) - start) // self.step_ms
            self.bars_unrepairable += gone
            start = self.next_ts
        if start < end:
            self._suspect.append((start, end))
        return gone

    def venue_bar(self, bar: Bar) -> bool:
        """The venue's closed candle for a base bar; False when ours went out and differed."""
        if bar.timeframe != self.base_timeframe or not bar.complete:
            return True
        ts = bar.ts_open
        if self.next_ts is not None and ts < self.next_ts:
            ours = self._recent.get(ts)
            if ours is None or not ours.complete or same_bar(ours, bar):
                return True
            self.bars_mismatched += 1
            self._correct(attrs.evolve(bar, symbol=self.symbol), ours, "venue_candle")
            return False
        if len(self._venue) >= VENUE_BARS_CAP:
            del self._venue[min(self._venue)]
        self._venue[ts] = bar
        return True

    def correct(self, candles: Iterable[Bar], start_ms: int, end_ms: int) -> int:
        """Venue candles for base bars in [start_ms, end_ms) that went out already: each one that
        differs from what went out (or went out unknown by now) becomes a BarCorrection."""
        count = 0
        for bar in candles:
            ts = bar.ts_open
            if (
                bar.timeframe != self.base_timeframe
                or not bar.complete
                or not start_ms <= ts < end_ms
                or self.next_ts is None
                or ts >= self.next_ts
            ):
                continue
            ours = self._recent.get(ts)
            if ours is not None and ours.complete and same_bar(ours, bar):
                continue
            self._correct(attrs.evolve(bar, symbol=self.symbol), ours, "refetched")
            count += 1
        return count

    def _correct(self, bar: Bar, was: Bar | None, reason: str) -> None:
        if bar.ts_open in self._recent:
            self._recent[bar.ts_open] = bar
        self.rollups.replace(bar)
        self.bars_corrected += 1
        self.corrections.append(BarCorrection(bar, was, reason))
        self._correct_closed_rollups(bar, reason)

    def _correct_closed_rollups(self, bar: Bar, reason: str) -> None:
        """Higher bars holding `bar` that went out already, rebuilt when every base bar of their
        period is still held (RECENT_BARS: the 5m and 15m bars, not the hour's)."""
        assert self.next_ts is not None
        for period in self.rollups.periods:
            start = bar.ts_open - bar.ts_open % period.tf_ms
            if start + period.tf_ms > self.next_ts:
                continue  # still open: replace() already put the true bar in its buffer
            held = [self._recent.get(ts) for ts in range(start, start + period.tf_ms, self.step_ms)]
            if any(b is None for b in held):
                continue
            one = Rollups(self.symbol, [period.timeframe], self.base_timeframe)
            rolled = [r for b in held if b is not None for r in one.on_base(b)]
            if rolled:
                self.corrections.append(BarCorrection(rolled[-1], None, reason))

    def back_adjust(self, before_ms: int, offset: float) -> int:
        """A futures roll (`core/continuous.py`): what this symbol still holds from before
        `before_ms` (base bars of higher bars not out yet, the last close a placeholder
        repeats, the recent bars corrections compare with) moves by `offset`."""
        if self.last_close is not None:
            self.last_close += offset
        for ts, bar in list(self._recent.items()):
            if ts < before_ms:
                self._recent[ts] = _moved(bar, offset)
        return self.rollups.back_adjust(before_ms, offset)

    def take_corrections(self) -> list[BarCorrection]:
        out, self.corrections = self.corrections, []
        return out

    def begin_outage(self, start_ms: int) -> None:
        """Connection lost after venue time `start_ms`: bars from then on are suspect until it is back."""
        if self._outage_from is None:
            self._outage_from = _floor(start_ms, self.step_ms)

    def end_outage(self, end_ms: int) -> None:
        """Connection back at venue time `end_ms`: bars up to and including that one stay suspect."""
        if self._outage_from is not None:
            self._suspect.append((self._outage_from, _floor(end_ms, self.step_ms) + self.step_ms))
            self._outage_from = None

    def resolve_gap(self, candles: Iterable[Bar] | None) -> Step:
        """Answer the pending GapRequest with what REST returned (None or [] when it failed)."""
        gap = self.pending_gap
        if gap is None:
            raise ValueError("resolve_gap called with no gap pending")
        fetched = {
            c.ts_open: c
            for c in (candles or ())
            if c.symbol == self.symbol
            and c.timeframe == self.base_timeframe
            and gap.start_ms <= c.ts_open < gap.end_ms
            and c.complete
        }
        self.pending_gap = None
        out: list[Bar] = []
        for ts in range(gap.start_ms, gap.end_ms, self.step_ms):
            ours = self._closed.pop(ts, None)
            bar = fetched.get(ts)
            if bar is not None:
                self.bars_filled += 1
            else:
                self.bars_unfilled += 1
                bar = self._placeholder(ts, ours)
            self._emit(bar, out)
        self._suspect = [(s, e) for s, e in self._suspect if e > gap.end_ms]
        rest = self._drain()
        return Step(tuple(out) + rest.bars, rest.gap)

    # -- internals ----------------------------------------------------------
    def _placeholder(self, ts: int, ours: Bar | None) -> Bar:
        if ours is not None:
            return attrs.evolve(ours, complete=False)
        price = self.last_close
        if price is None:
            # Nothing before it: repeat the first price we hold after it (flat, volume 0, marked).
            held = {t: b.open for t, b in self._closed.items() if t > ts}
            held.update((t, b.open) for t, b in self._open.items() if t > ts)
            price = held[min(held)] if held else 0.0
        return Bar(self.symbol, self.base_timeframe, ts, price, price, price, price, 0.0, False)

    def _is_suspect(self, ts: int) -> bool:
        if self._outage_from is not None and ts >= self._outage_from:
            return True
        return any(s <= ts < e for s, e in self._suspect)

    def _emit(self, bar: Bar, out: list[Bar]) -> None:
        recent = self._recent
        recent[bar.ts_open] = bar
        if len(recent) > RECENT_BARS:
            del recent[next(iter(recent))]
        out.append(bar)
        self.last_close = bar.close
        self.next_ts = bar.ts_open + self.step_ms
        out.extend(self.rollups.on_base(bar))

    def _drain(self) -> Step:
        """Emit what can go out in order; a new gap is reported once, in the Step that finds it."""
        out: list[Bar] = []
        assert self.next_ts is not None and self.frontier is not None
        new_gap: GapRequest | None = None
        while self.pending_gap is None and self.next_ts < self.frontier:
            ts = self.next_ts
            bar = self._closed.get(ts)
            if bar is not None and not self._is_suspect(ts):
                del self._closed[ts]
                if self._venue:
                    bar = self._checked(bar)
                self._emit(bar, out)
                continue
            new_gap = self.pending_gap = self._gap_from(ts)
            self.gaps_found += 1
        if not out and new_gap is None:
            return EMPTY_STEP
        return Step(tuple(out), new_gap)

    def _checked(self, bar: Bar) -> Bar:
        """Our bar, or the venue's candle for it when they differ (trades went missing)."""
        for ts in [t for t in self._venue if t < bar.ts_open]:
            del self._venue[ts]  # for bars that went out another way (filled from REST)
        venue = self._venue.pop(bar.ts_open, None)
        if venue is None or same_bar(bar, venue):
            return bar
        self.bars_repaired += 1
        return attrs.evolve(venue, symbol=self.symbol)

    def _gap_from(self, start: int) -> GapRequest:
        assert self.frontier is not None
        end = start + self.step_ms
        while end < self.frontier and (end not in self._closed or self._is_suspect(end)):
            end += self.step_ms
        if (end - start) // self.step_ms > self.max_gap_bars:
            # Too long to fill bar by bar (days offline): skip to the recent part, say so.
            skipped_to = end - self.max_gap_bars * self.step_ms
            self.bars_skipped += (skipped_to - start) // self.step_ms
            for ts in [t for t in self._closed if t < skipped_to]:
                del self._closed[ts]
            start = skipped_to
            self.next_ts = start
        return GapRequest(self.symbol, self.base_timeframe, start, end)
