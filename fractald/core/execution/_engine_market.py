"""Market data in: bars (walked through the paper venue), ticks, quotes, feed health.

The paper venue is the caller's (the session's, the backtest loop's): it
comes with each input and the engine keeps no reference to it. With
candles driving it, a bar's intrabar path is traded through the venue one
price at a time (`_walk`), the venue's reports handled as they come and
the trades' local stops checked at each price, or only at the points that
can matter when nothing on the symbol can act (`_walk_quiet`, `_inert`).
Higher-timeframe bars feed the ATR and time exits; funding is charged as
it falls due.

Relies on (see `EngineCore`): `_begin`/`_run`/`_drain`/`_finish`
(EngineApply), `_on_price`/`_mark` (EngineBrackets), `_check_equity`
(EngineBreakers); time exits are `decide_brackets`'.
"""

from __future__ import annotations

from typing import Any

from fractald.core.execution import decide_brackets
from fractald.core.execution import events as ev
from fractald.core.execution._engine_apply import Step
from fractald.core.execution._engine_core import EngineCore, FillSource, _Atr
from fractald.core.execution.brackets import BracketState, TrailMode
from fractald.core.execution.paper import bar_path_ends, bar_path_points, path_trade
from fractald.core.execution.paper_venue import PaperVenue
from fractald.core.models import TIMEFRAME_MS, Bar, FeedHealth, Quote, Side, TradeTick
from fractald.core.risk.breakers import MS_PER_DAY
from fractald.core.risk.reliability import StrategyState

# Brackets whose local stop `_on_price` watches.
_GUARDED = (BracketState.PENDING, BracketState.OPEN)  # a tuple: `in` by identity, no enum hashing
_QUARANTINED = StrategyState.QUARANTINED


def _day_starts(points: list[tuple[float, int]]) -> list[tuple[float, int]]:
    """The first point, and each point in another UTC day than the one before it."""
    out: list[tuple[float, int]] = []
    day = -1
    for price, ts in points:
        if ts // MS_PER_DAY != day:
            day = ts // MS_PER_DAY
            out.append((price, ts))
    return out


class EngineMarket(EngineCore):
    """Bars, ticks, quotes, feed health; the paper fills they drive; ATR and funding."""

    def on_bar(self, bar: Bar, venue: PaperVenue | None = None) -> list[Any]:
        """A base-timeframe bar; with the paper venue `venue` and fills from bars, walked through it."""
        # `_begin` and `_finish` inlined, and the quiet walk called directly: the backtest's hot path.
        ts = bar.ts_event
        self.last_ts = max(self.last_ts, ts)
        step = Step(venue)
        symbol = bar.symbol
        if venue is None or self.params.fills_from is not FillSource.BARS:
            self._on_price(step, symbol, bar.close, ts)
        elif self._quiet(symbol, venue):
            self._walk_quiet(step, bar, venue, ts)
        else:
            self._walk(step, bar, venue, ts)
        if bar.complete:
            self.correlation.add_close(symbol, bar.ts_open, bar.close)
            self._update_atr(bar)
        if self.brackets:
            self._run(step, decide_brackets.time_exits(self, symbol, bar.timeframe, ts, bar.close))
        if venue is not None:
            if venue.params.funding_rate == 0:  # `_funding` with nothing due
                self.last_funding_ts = ts
            else:
                self._funding(step, symbol, ts)
        self.accounting.record_equity(ts)
        reliability = self.reliability
        if _QUARANTINED in [rec.state for rec in reliability.records.values()]:
            for strategy in reliability.quarantined():
                change = reliability.evaluate(strategy, ts)
                if change is not None:
                    self._run(
                        step,
                        (
                            ev.StrategyStateChanged(
                                ts,
                                strategy,
                                change.old,
                                change.new,
                                change.reason,
                                dict(change.figures),
                            ),
                        ),
                    )
        if step.reports:
            self._drain(step)
        return step.events

    def _walk(self, step: Step, bar: Bar, venue: PaperVenue, ts_close: int) -> None:
        """Trade the bar's intrabar path through the paper venue one price at a time, then its close.

        While no order or local stop of the symbol is within the path's reach
        (`_inert`) and the walk has caused nothing yet, a point can only note the
        trade, move the marks and check the breakers: there only the trade is
        noted and the breakers checked at the equity its price gives, and the
        marks move at the close (or at the first point that does more).
        """
        if self._walk_untripped(step, bar, venue, ts_close):
            return
        symbol = bar.symbol
        path = bar_path_points(bar, self._levels(symbol, venue))
        prices = [p for p, _ in path]
        inert = self._inert(symbol, venue, min(prices), max(prices), path[-1][1])
        out, reports = step.events, step.reports
        emitted = len(out)
        for i, (price, ts) in enumerate(path):
            if inert and len(out) == emitted and not reports:
                # Nothing a breaker trip does here reads this symbol's marks.
                venue.record_trade(symbol, price, ts)
                self._check_equity(step, ts, self.accounting.equity_at(symbol, price))
                if len(out) != emitted:
                    self._mark(symbol, price)
                continue
            inert = False
            size, aggressor = path_trade(bar, path, i)
            reports.extend(venue.trade(symbol, price, size, aggressor, ts))
            self._drain(step)
            self._on_price(step, symbol, price, ts)
        reports.extend(venue.advance(symbol, ts_close))
        # Inert to its end, the path's last point was checked at the close's price.
        settled = inert and len(out) == emitted
        self._close_bar(
            step, symbol, bar.close, ts_close, path[-1][1] // MS_PER_DAY if settled else None
        )

    def _walk_untripped(self, step: Step, bar: Bar, venue: PaperVenue, ts_close: int) -> bool:
        """`_walk` of a bar inert from end to end on which no breaker can trip, without its points.

        There each point of the path only notes the trade (the last one stays)
        and checks the breakers at the equity its price gives: with nothing
        tripping and no day starting, all that leaves is the peak (the highest
        of those equities) and the check memo (the last point's, at the close).
        The equity is monotone in the price when every book of the symbol
        leans the same way (each rounded step is), so the bar's low and high
        give the lowest and highest equity, and `CircuitBreakers.untripped`
        tells whether any point could trip. Returns False, having changed
        nothing, when it cannot take this way.
        """
        symbol = bar.symbol
        first, last = bar_path_ends(bar)
        day = last[1] // MS_PER_DAY
        breakers = self.breakers
        if breakers.day != day or first[1] // MS_PER_DAY != day:
            return False
        o, h, lo, c = bar.open, bar.high, bar.low, bar.close
        bottom, top = min(o, lo, h, c), max(o, lo, h, c)  # the path's lowest and highest prices
        if not self._inert(symbol, venue, bottom, top, last[1]):
            return False
        accounting = self.accounting
        lean = 0.0
        for p in accounting.positions.values():
            if p.symbol == symbol and p.quantity != 0:
                if lean * p.quantity < 0:
                    return False
                lean = p.quantity
        at_bottom, at_top = accounting.equity_at(symbol, bottom), accounting.equity_at(symbol, top)
        peak = max(breakers.peak_equity, at_bottom, at_top)
        if not breakers.untripped(peak, min(at_bottom, at_top)):
            return False
        breakers.peak_equity = peak
        breakers.checked = (day, accounting.equity_at(symbol, last[0]), breakers.params)
        venue.record_trade(symbol, *last)
        step.reports.extend(venue.advance(symbol, ts_close))
        self._close_bar(step, symbol, c, ts_close, day)
        return True

    def _close_bar(
        self, step: Step, symbol: str, close: float, ts: int, settled_day: int | None
    ) -> None:
        """The bar's close, at `ts`.

        `settled_day`: the walk changed nothing since a breaker check at the
        close's equity on that day, and no bracket of the symbol can act at the
        close's price. Then the close only moves the marks, unless it starts a day
        or reports wait; otherwise it is a full price point.
        """
        if settled_day is None or ts // MS_PER_DAY != settled_day or step.reports:
            self._on_price(step, symbol, close, ts)
        else:
            self._mark(symbol, close)

    def _inert(self, symbol: str, venue: PaperVenue, lo: float, hi: float, until_ts: int) -> bool:
        """No paper order or local stop of `symbol` can act on prices within [lo, hi] until `until_ts`.

        A stop hit is monotone in the price, so both ends of the range cover it;
        a trailing stop may move at any price, so an open trade that trails is never inert.
        """
        if not venue.idle_within(symbol, lo, hi, until_ts):
            return False
        trailing = self.params.brackets.trail_mode is not TrailMode.NONE
        for b in self.brackets.values():
            if b.symbol != symbol or b.state not in _GUARDED:
                continue
            if (trailing and b.state is BracketState.OPEN) or b.stop_hit(lo) or b.stop_hit(hi):
                return False
        return True

    def _quiet(self, symbol: str, venue: PaperVenue) -> bool:
        """Nothing on `symbol` can fill or move the equity: no bracket, no paper order, no position."""
        for b in self.brackets.values():
            if b.symbol == symbol:
                return False
        return not (venue.has_orders(symbol) or self.accounting.holds(symbol))

    def _walk_quiet(self, step: Step, bar: Bar, venue: PaperVenue, ts_close: int) -> None:
        """`_walk` for a quiet symbol, stopping only at the path's points that can matter.

        With nothing to fill and the equity flat along the path, a point of it
        changes the symbol's marks and the venue's last trade, which the bar's
        close overwrites and which nothing reads before then (there are no orders,
        brackets or held books of the symbol: all a breaker trip or a drained report
        touches is other symbols'), and runs the breaker check. A check at the same
        equity on the same UTC day as the one before finds nothing new (the peak and
        the trips already hold it), so only the first point and the first of each
        new day need it; reports queued by a trip there are drained at the next
        stop, as the next point would have. The close is the last stop, a full one
        only when it starts a day or reports wait (`advance` has nothing to do).
        """
        first, last = bar_path_ends(bar)
        day = last[1] // MS_PER_DAY
        if first[1] // MS_PER_DAY == day:
            if step.reports:
                self._drain(step)
            self._check_equity(step, first[1])
        else:
            for _, ts in _day_starts(bar_path_points(bar)):
                self._drain(step)
                self._check_equity(step, ts)
        symbol = bar.symbol
        venue.record_trade(symbol, *last)
        if ts_close // MS_PER_DAY != day or step.reports:  # `_close_bar`, inlined
            self._on_price(step, symbol, bar.close, ts_close)
        else:
            self._mark(symbol, bar.close)

    # ---- runs of quiet bars, taken together (the backtest loop's fast path)
    def quiet_window(self, symbol: str, venue: PaperVenue | None) -> tuple[int, int] | None:
        """The event-time span [start, end) in which base bars of `symbol` are quiet, or None.

        Quiet: nothing on the symbol can fill or move the equity (`_quiet`: no
        paper order, no position; and no trade open anywhere, so no time exit
        or plan looks at a bar), no funding, no quarantine served before the
        span ends (a bar before then re-judges it to no change), and the
        breakers checked at today's equity already (their memo), so that
        `on_bar` of a bar wholly inside that UTC day only notes its trade and
        close and records the ATR, correlation and equity: what
        `on_quiet_bars` does for a run of them at once. Nothing a quiet bar
        does changes this answer, so it holds until the next input that is
        not one.
        """
        if venue is None or self.params.fills_from is not FillSource.BARS or self.brackets:
            return None
        if venue.params.funding_rate != 0 or not self._quiet(symbol, venue):
            return None
        breakers = self.breakers
        memo = breakers.checked
        if memo is None or memo[1] != self.accounting.equity or memo[2] is not breakers.params:
            return None
        end = (memo[0] + 1) * MS_PER_DAY
        reliability = self.reliability
        for rec in reliability.records.values():
            if rec.state is _QUARANTINED:  # re-judged at each bar, but only once its time is served
                end = min(end, rec.since_ts + reliability.params.quarantine_ms)
        return memo[0] * MS_PER_DAY, end

    def on_quiet_bars(self, bars: list[Bar], venue: PaperVenue) -> None:
        """`on_bar` of each of `bars`, base bars of one symbol inside its `quiet_window`, at once.

        They make no event. Each one's close, ATR, correlation return and
        equity point are recorded as `on_bar` records them; the marks, the
        venue's last trade and the funding clock are those of the last one
        (nothing reads them in between).
        """
        last = bars[-1]
        symbol, timeframe = last.symbol, last.timeframe
        tf_ms = TIMEFRAME_MS[timeframe]
        accounting = self.accounting
        equity = accounting.equity  # flat on this symbol: its prices do not move the equity
        record, add_close = accounting.equity_curve.record, self.correlation.add_close
        # `_update_atr` of each complete bar, its one ATR held in locals meanwhile
        key = f"{symbol}|{timeframe}"
        atr = self.atr.get(key)
        n, value, prev = (0, 0.0, 0.0) if atr is None else (atr.n, atr.value, atr.prev_close)
        seen, period = n, self.params.brackets.atr_period
        for bar in bars:
            ts_open = bar.ts_open
            if bar.complete:
                close, high, low = bar.close, bar.high, bar.low
                add_close(symbol, ts_open, close)
                n += 1
                if n == 1:
                    value = high - low
                else:
                    value += (max(high, prev) - min(low, prev) - value) / min(n, period)
                prev = close
            record(ts_open + tf_ms, equity)
        if n != seen:
            if atr is None:
                atr = self.atr[key] = _Atr()
            atr.n, atr.value, atr.prev_close = n, value, prev
        ts = last.ts_open + tf_ms
        self.last_ts = max(self.last_ts, ts)
        venue.record_trade(symbol, *bar_path_ends(last)[1])
        self._mark(symbol, last.close)
        self.last_funding_ts = ts

    def on_higher_timeframe_bar(self, bar: Bar, venue: PaperVenue | None = None) -> list[Any]:
        """A bar of a longer timeframe that the base bars already traded through.

        No fills and no price marks (its prices were already seen); it feeds the
        ATR of its timeframe and the time exits of trades on that timeframe.
        Correlation stays on the base bars, so every symbol is compared on the same clock.
        """
        ts = bar.ts_event
        step = self._begin(ts, venue)
        self._timeframe_close(step, bar, ts)
        return self._finish(step)

    def _timeframe_close(self, step: Step, bar: Bar, ts: int) -> None:
        if bar.complete:
            self._update_atr(bar)
        if self.brackets:
            self._run(
                step, decide_brackets.time_exits(self, bar.symbol, bar.timeframe, ts, bar.close)
            )

    def _levels(self, symbol: str, venue: PaperVenue) -> list[float]:
        """Prices the path must pass through: the trades' stops and the venue's order levels."""
        levels = [b.stop for b in self.brackets.values() if b.symbol == symbol]
        levels += venue.levels(symbol)
        return levels

    def _update_atr(self, bar: Bar) -> None:
        key = f"{bar.symbol}|{bar.timeframe}"
        a = self.atr.get(key)
        if a is None:
            a = self.atr[key] = _Atr()
        high, low, prev = bar.high, bar.low, a.prev_close
        n = a.n = a.n + 1
        if n == 1:
            a.value = high - low
        else:
            tr = max(high, prev) - min(low, prev)
            a.value += (tr - a.value) / min(n, self.params.brackets.atr_period)  # Wilder smoothing
        a.prev_close = bar.close

    def _funding(self, step: Step, symbol: str, ts: int) -> None:
        """Funding on paper positions, charged as its instants pass (a real venue books its own)."""
        if step.venue is None:
            return
        due = step.venue.funding_due(self.last_funding_ts, ts)
        self.last_funding_ts = ts
        if not due:
            return
        rate = self.params.paper.funding_rate
        mark = self.last_price.get(symbol, 0.0)
        for _ in range(due):
            amount = sum(
                p.quantity * mark * rate
                for p in self.accounting.positions.values()
                if p.symbol == symbol
            )
            if amount:
                self._run(step, (ev.FundingPaid(ts, symbol, rate, amount, mark),))

    def on_trade(self, tick: TradeTick, venue: PaperVenue | None = None) -> list[Any]:
        step = self._begin(tick.ts_event, venue)
        if step.venue is not None and self.params.fills_from is FillSource.TICKS:
            step.reports.extend(step.venue.on_trade(tick))
            self._drain(step)
        self._on_price(step, tick.symbol, tick.price, tick.ts_event)
        return self._finish(step)

    def on_quote(self, q: Quote, venue: PaperVenue | None = None) -> list[Any]:
        step = self._begin(q.ts_event, venue)
        if step.venue is not None and self.params.fills_from is FillSource.TICKS:
            step.reports.extend(step.venue.on_quote(q))
            self._drain(step)
        if q.bid > 0 and q.ask > 0 and not q.crossed:
            # Stops of longs are hit by the bid, of shorts by the ask: check the worse side.
            held = {b.side for b in self.brackets.values() if b.symbol == q.symbol}
            if Side.BUY in held:
                self._on_price(step, q.symbol, q.bid, q.ts_event)
            if Side.SELL in held:
                self._on_price(step, q.symbol, q.ask, q.ts_event)
            if not held:
                self.last_price[q.symbol] = q.mid
                self.accounting.mark(q.symbol, q.mid)
        return self._finish(step)

    def on_feed_health(self, h: FeedHealth) -> list[Any]:
        step = self._begin(h.ts_event)
        self.feed[h.symbol] = h
        return self._finish(step)
