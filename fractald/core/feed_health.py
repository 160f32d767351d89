"""Per-symbol feed health: how fresh, how complete and how believable the data is.

Pure. Two clocks are injected: `now_s` is the shell's monotonic time in
seconds (for message age and for how long ago a problem happened),
`ts_event` is venue time in ms (stamped on the published FeedHealth).

Quality is a product of factors, each 0..1, so any one bad sign pulls it
down and none can be hidden by the others:
  freshness  1 until half the stale limit, then falling to 0 at the limit;
  gaps       0.5 per unfilled gap in the last hour (a filled one costs 0.9);
  outliers   0.8 per outlier in the last 5 minutes;
  reconnects 0.9 per reconnect in the last 10 minutes;
  garbage    1 - share of unparsed messages among the last ones counted;
  spread     0.9 per tick of the latest bid/ask spread beyond one tick (venues that report
             top of book in ticks: IBKR futures; [feed] quality_spread_factor);
  session    0.9 while the latest bar lies outside the instrument's regular trading hours
             (thin overnight liquidity; IBKR futures; [feed] quality_outside_rth_factor).
"""

from __future__ import annotations

from collections import deque
from typing import Any

import attrs

from fractald.core.models import Bar, FeedHealth, Quote

GAP_WINDOW_S = 3600.0
OUTLIER_WINDOW_S = 300.0
RECONNECT_WINDOW_S = 600.0
MAX_EVENTS = 256  # memory cap per kind; older events have aged out of every window anyway
SPREAD_FACTOR = 0.9  # per tick of spread beyond the first ([feed] quality_spread_factor)
OUTSIDE_RTH_FACTOR = 0.9  # [feed] quality_outside_rth_factor


def _factor(instance: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if not (isinstance(value, (int, float)) and 0 < value <= 1):
        raise ValueError(f"{attribute.name} must be a factor in (0, 1], got {value!r}")


@attrs.frozen(slots=True)
class HealthParams:
    stale_after_s: float = attrs.field(default=30.0, validator=attrs.validators.gt(0))
    outlier_k: float = attrs.field(default=8.0, validator=attrs.validators.gt(0))
    true_range_bars: int = attrs.field(default=20, validator=attrs.validators.ge(2))
    spread_factor: float = attrs.field(default=SPREAD_FACTOR, validator=_factor)
    outside_rth_factor: float = attrs.field(default=OUTSIDE_RTH_FACTOR, validator=_factor)


class _Recent:
    """Times of recent events of one kind, capped."""

    __slots__ = ("times",)

    def __init__(self) -> None:
        self.times: deque[float] = deque(maxlen=MAX_EVENTS)

    def add(self, now_s: float) -> None:
        self.times.append(now_s)

    def within(self, now_s: float, window_s: float) -> int:
        return sum(1 for t in self.times if now_s - t <= window_s)


class HealthTracker:
    """Counts what happens to one symbol's feed and scores it."""

    def __init__(
        self, symbol: str, params: HealthParams | None = None, *, start_s: float = 0.0
    ) -> None:
        self.symbol = symbol
        self.params = params or HealthParams()
        self.last_message_s = start_s  # no message yet: age counts from start
        self.last_ts_event = 0
        self.reconnects = 0
        self.gaps_found = 0
        self.gaps_filled = 0
        self.unparsed = 0
        self.outliers = 0
        self._unfilled = _Recent()
        self._filled = _Recent()
        self._outliers = _Recent()
        self._reconnects = _Recent()
        self._recent_msgs = 0  # messages and unparsed since the last score, for the garbage share
        self._recent_bad = 0
        self._garbage_share = 0.0
        self._last_price: float | None = None
        self._true_ranges: deque[float] = deque(maxlen=self.params.true_range_bars)
        self._prev_close: float | None = None
        self._tr_sum = 0.0  # running sum of _true_ranges: checked on every trade
        self.spread_ticks: float | None = None  # latest top-of-book spread in ticks (IBKR)
        self.outside_rth = False  # the latest bar lies outside regular trading hours (IBKR)

    # -- what happened ------------------------------------------------------
    def on_message(self, now_s: float, ts_event: int | None = None) -> None:
        self.last_message_s = now_s
        self._recent_msgs += 1
        if ts_event is not None and ts_event > self.last_ts_event:
            self.last_ts_event = ts_event

    def on_unparsed(self, now_s: float) -> None:
        self.unparsed += 1
        self._recent_bad += 1
        self._recent_msgs += 1

    def on_reconnect(self, now_s: float) -> None:
        self.reconnects += 1
        self._reconnects.add(now_s)

    def on_gap(self, now_s: float, *, filled: bool) -> None:
        """One gap found; `filled` says whether REST gave back every bar of it."""
        self.gaps_found += 1
        if filled:
            self.gaps_filled += 1
            self._filled.add(now_s)
        else:
            self._unfilled.add(now_s)

    def on_gap_refilled(self, now_s: float) -> None:
        """An unfilled gap was fetched whole later: it costs what a filled one does from now on."""
        if self._unfilled.times:
            self._unfilled.times.popleft()
        self.gaps_filled += 1
        self._filled.add(now_s)

    def on_bar(self, bar: Bar) -> None:
        """Closed base bars feed the recent true range that outliers are measured against."""
        if not bar.complete:
            return
        prev = self._prev_close if self._prev_close is not None else bar.open
        if len(self._true_ranges) == self._true_ranges.maxlen:
            self._tr_sum -= self._true_ranges[0]
        tr = max(bar.high, prev) - min(bar.low, prev)
        self._true_ranges.append(tr)
        self._tr_sum += tr
        self._prev_close = bar.close

    def check_price(self, now_s: float, price: float) -> bool:
        """True (and counted) when `price` jumps more than k times the recent mean true range."""
        last, self._last_price = self._last_price, price
        if last is None or len(self._true_ranges) < 2:
            return False
        mean_tr = self._tr_sum / len(self._true_ranges)
        if mean_tr <= 0 or abs(price - last) <= self.params.outlier_k * mean_tr:
            return False
        self._flag_outlier(now_s)
        return True

    def check_quote(self, now_s: float, quote: Quote) -> bool:
        """True (and counted) for a crossed book: bid at or above ask."""
        if quote.crossed:
            self._flag_outlier(now_s)
            return True
        return False

    def on_spread(self, spread_ticks: float) -> None:
        """The latest bid/ask spread, in ticks of the instrument."""
        self.spread_ticks = max(0.0, spread_ticks)

    def on_session(self, *, outside_rth: bool) -> None:
        """Whether the latest bar lies outside the instrument's regular trading hours."""
        self.outside_rth = outside_rth

    def on_outlier(self, now_s: float) -> None:
        """A bad print found upstream (a 5 s bar whose range no real market makes)."""
        self._flag_outlier(now_s)

    def _flag_outlier(self, now_s: float) -> None:
        self.outliers += 1
        self._outliers.add(now_s)

    # -- the score ------------------------------------------------------------
    def age_s(self, now_s: float) -> float:
        return max(0.0, now_s - self.last_message_s)

    def quality(self, now_s: float) -> float:
        stale_after = self.params.stale_after_s
        age = self.age_s(now_s)
        freshness = (
            1.0 if age <= stale_after / 2 else max(0.0, (stale_after - age) / (stale_after / 2))
        )
        if self._recent_msgs >= 20:
            # Score the garbage share over windows of at least 20 messages, then start afresh.
            self._garbage_share = self._recent_bad / self._recent_msgs
            self._recent_msgs = self._recent_bad = 0
        q = (
            freshness
            * 0.5 ** self._unfilled.within(now_s, GAP_WINDOW_S)
            * 0.9 ** self._filled.within(now_s, GAP_WINDOW_S)
            * 0.8 ** self._outliers.within(now_s, OUTLIER_WINDOW_S)
            * 0.9 ** self._reconnects.within(now_s, RECONNECT_WINDOW_S)
            * (1.0 - self._garbage_share)
            * self.params.spread_factor ** max(0.0, (self.spread_ticks or 1.0) - 1.0)
            * (self.params.outside_rth_factor if self.outside_rth else 1.0)
        )
        return min(1.0, max(0.0, q))

    def snapshot(self, now_s: float, ts_event: int | None = None) -> FeedHealth:
        age = self.age_s(now_s)
        return FeedHealth(
            symbol=self.symbol,
            ts_event=self.last_ts_event if ts_event is None else ts_event,
            last_message_age_s=age,
            reconnects=self.reconnects,
            gaps_found=self.gaps_found,
            gaps_filled=self.gaps_filled,
            unparsed=self.unparsed,
            outliers=self.outliers,
            quality=self.quality(now_s),
            stale=age >= self.params.stale_after_s,
            spread_ticks=self.spread_ticks,
            outside_rth=self.outside_rth,
        )
