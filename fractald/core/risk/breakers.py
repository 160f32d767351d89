"""Circuit breakers and the trading state ACTIVE / REDUCING / HALTED.

REDUCING allows only orders that reduce risk; HALTED allows nothing new
from strategies (protective exits of what is held still run, because a
halt must never leave a position without its stop). A trip stays until an
explicit `resume`, except the daily breakers, which a new UTC day clears
when listed in `daily_reset_breakers`.

Counters are updated by `record_*` (the engine calls them when it applies
ledger events), trips are found by `check_*` (pure reads) and made real
by `trip`, so a rebuild from the ledger replays the same state.

What the ledger's events determine (the trips, the day's trade count, the
losses in a row, the recent errors) is one frozen value, `BreakerCounts`,
that each of those methods replaces (they are called only
from `evolve`, and `start_day` when a price starts a new UTC day). What
prices move at every tick (the drawdown peak, the day and its opening
equity, the check memo) stays plain fields of `CircuitBreakers`: copying a
value at every price would cost the hot path (see `_engine_market`).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

import attrs

from fractald.core.figures import drawdown_fraction
from fractald.core.risk.params import BreakerAction, BreakerParams

MS_PER_DAY = 86_400_000


class TradingState(enum.Enum):
    ACTIVE = "ACTIVE"
    REDUCING = "REDUCING"
    HALTED = "HALTED"


_SEVERITY = {TradingState.ACTIVE: 0, TradingState.REDUCING: 1, TradingState.HALTED: 2}


class Breaker(enum.Enum):
    MAX_DRAWDOWN = "max_drawdown"
    DAILY_LOSS = "daily_loss"
    TRADES_PER_DAY = "trades_per_day"
    CONSECUTIVE_LOSSES = "consecutive_losses"
    ERROR_BURST = "error_burst"
    KILL_SWITCH = "kill_switch"
    OPERATOR = "operator"  # an operator's halt or reduce command
    RECONCILIATION = "reconciliation"


@attrs.frozen(slots=True)
class Trip:
    breaker: Breaker
    state: TradingState
    reason: str
    ts: int
    figures: dict[str, Any] = attrs.field(factory=dict, hash=False)


def _state_of(action: BreakerAction) -> TradingState:
    return TradingState(action.value)


def _last(errors: tuple[int, ...], n: int) -> tuple[int, ...]:
    """The latest `n` of `errors` (the error-burst breaker looks at no more)."""
    return errors[len(errors) - n :] if len(errors) > n else errors


@attrs.frozen(slots=True)
class BreakerCounts:
    """The breakers' event-sourced state, a value: each change makes the next one.

    `trips` is never changed in place (a change builds a new dict); `errors` holds
    the times of the latest errors, as many as the error-burst limit counts.
    """

    trips: Mapping[Breaker, Trip] = attrs.field(factory=dict)
    trades_today: int = 0
    consecutive_losses: int = 0
    errors: tuple[int, ...] = ()

    def tripped(self, t: Trip) -> BreakerCounts:
        return attrs.evolve(self, trips={**self.trips, t.breaker: t})

    def cleared(self, breakers: list[Breaker] | tuple[Breaker, ...]) -> BreakerCounts:
        """These trips lifted, and their counts started afresh so they do not trip again at once."""
        trips, losses, errors = dict(self.trips), self.consecutive_losses, self.errors
        for b in breakers:
            trips.pop(b, None)
            if b is Breaker.CONSECUTIVE_LOSSES:
                losses = 0
            elif b is Breaker.ERROR_BURST:
                errors = ()
        return attrs.evolve(self, trips=trips, consecutive_losses=losses, errors=errors)

    def with_error(self, ts: int, keep: int) -> BreakerCounts:
        """These counts with an error at `ts` (the latest `keep` errors kept)."""
        return attrs.evolve(self, errors=_last((*self.errors, ts), keep))


class CircuitBreakers:
    def __init__(self, params: BreakerParams, equity: float = 0.0) -> None:
        # The limits (replaced whole by `set_params`); a plain field: every price reads it.
        self.params = params
        self.counts = BreakerCounts()
        self.peak_equity = equity
        self.day = -1
        self.day_start_equity = equity
        # (UTC day, equity, limits) of the last equity check, while nothing it reads changed
        # since: a check then would find nothing new (the engine skips it; a price point's
        # hot path). Every change of the trips, the day, the peak or the limits drops it.
        self.checked: tuple[int, float, BreakerParams] | None = None

    # -- the event-sourced counts, read-only here (`counts` is replaced whole) ---------
    @property
    def trips(self) -> Mapping[Breaker, Trip]:
        return self.counts.trips

    @property
    def trades_today(self) -> int:
        return self.counts.trades_today

    @property
    def consecutive_losses(self) -> int:
        return self.counts.consecutive_losses

    @property
    def errors(self) -> tuple[int, ...]:
        return self.counts.errors

    # -- state -------------------------------------------------------------
    @property
    def state(self) -> TradingState:
        state = TradingState.ACTIVE
        for t in self.counts.trips.values():
            if _SEVERITY[t.state] > _SEVERITY[state]:
                state = t.state
        return state

    def trip(self, t: Trip) -> None:
        self.counts = self.counts.tripped(t)
        self.checked = None

    def set_params(self, params: BreakerParams) -> None:
        """New limits; the counts and trips stay (a lowered limit trips at the next check)."""
        self.params = params
        c = self.counts
        self.counts = attrs.evolve(c, errors=_last(c.errors, params.error_burst_count))
        self.checked = None

    def trades_left(self, ts: int) -> int:
        """How many more trades the day of `ts` allows (a day not started yet has none counted)."""
        done = 0 if self.starts_day(ts) else self.trades_today
        return self.params.max_trades_per_day - done

    def resume(self, equity: float) -> None:
        """Operator resume: clear every trip and start the drawdown and loss counts afresh."""
        self.counts = attrs.evolve(self.counts, trips={}, consecutive_losses=0, errors=())
        self.peak_equity = equity
        self.checked = None

    # -- counters (applied from events) -------------------------------------
    def starts_day(self, ts: int) -> bool:
        """Whether `ts` is in another UTC day than the current one (then `roll_day` starts it)."""
        return ts // MS_PER_DAY != self.day

    def roll_day(self, ts: int, equity: float) -> list[Breaker]:
        """Start a new UTC day if `ts` is in one; returns the daily trips this cleared."""
        if not self.starts_day(ts):
            return []
        cleared = self.daily_resets()
        self.start_day(ts, equity)
        self.clear(cleared)
        return cleared

    def daily_resets(self) -> list[Breaker]:
        """The tripped breakers a new UTC day lifts (a pure read)."""
        return [b for b in self.trips if b.value in self.params.daily_reset_breakers]

    def start_day(self, ts: int, equity: float) -> None:
        """The day of `ts` starts at `equity`, no trade counted yet; its trips stay (see `roll_day`)."""
        self.day = ts // MS_PER_DAY
        self.day_start_equity = equity
        if self.counts.trades_today:
            self.counts = attrs.evolve(self.counts, trades_today=0)
        self.checked = None

    def clear(self, breakers: list[Breaker] | tuple[Breaker, ...]) -> None:
        """Lift these trips, and start their counts afresh so they do not trip again at once."""
        self.checked = None
        if breakers:
            self.counts = self.counts.cleared(breakers)

    def mark_equity(self, ts: int, equity: float) -> None:
        if self.day < 0:
            self.roll_day(ts, equity)
        self.peak_equity = max(self.peak_equity, equity)

    def record_trade_opened(self) -> None:
        c = self.counts
        self.counts = attrs.evolve(c, trades_today=c.trades_today + 1)

    def record_trade_closed(self, pnl: float) -> None:
        c = self.counts
        self.counts = attrs.evolve(c, consecutive_losses=c.consecutive_losses + 1 if pnl < 0 else 0)

    def record_error(self, ts: int) -> None:
        self.counts = self.counts.with_error(ts, self.params.error_burst_count)

    # -- checks (pure reads) --------------------------------------------------
    def _new(
        self, breaker: Breaker, action: BreakerAction, ts: int, reason: str, **figures: Any
    ) -> list[Trip]:
        if breaker in self.trips:
            return []
        return [Trip(breaker, _state_of(action), reason, ts, figures)]

    def check_equity(self, ts: int, equity: float) -> list[Trip]:
        p = self.params
        out: list[Trip] = []
        if self.peak_equity > 0:
            dd = drawdown_fraction(self.peak_equity, equity)
            if dd >= p.max_drawdown_fraction:
                out += self._new(
                    Breaker.MAX_DRAWDOWN,
                    p.drawdown_action,
                    ts,
                    f"drawdown {dd:.2%} from peak {self.peak_equity:.2f} reached the "
                    f"limit {p.max_drawdown_fraction:.2%}",
                    value=dd,
                    limit=p.max_drawdown_fraction,
                    peak=self.peak_equity,
                    equity=equity,
                )
        if self.day_start_equity > 0:
            out += self._daily_loss_trip(ts, equity)
        return out

    def _daily_loss_trip(self, ts: int, equity: float) -> list[Trip]:
        """The day's loss against its money limit (when set) first, else its fraction limit."""
        p = self.params
        money = self.day_start_equity - equity
        loss = money / self.day_start_equity
        if p.daily_loss_money and money >= p.daily_loss_money:
            value, limit = money, p.daily_loss_money
            reason = f"daily loss {money:.2f} reached the money limit {limit:.2f}"
        elif loss >= p.daily_loss_fraction:
            value, limit = loss, p.daily_loss_fraction
            reason = f"daily loss {loss:.2%} reached the limit {limit:.2%}"
        else:
            return []
        return self._new(
            Breaker.DAILY_LOSS,
            p.daily_loss_action,
            ts,
            reason,
            value=value,
            limit=limit,
            day_start=self.day_start_equity,
            equity=equity,
        )

    def untripped(self, peak: float, low: float) -> bool:
        """Whether `check_equity` finds nothing at any equity of at least `low` while the
        peak (after `mark_equity`) is at most `peak` (a pure read; False when in doubt).

        The daily loss grows as the equity falls, each rounded step monotone, so
        `low` bounds it exactly; the drawdown from a lower peak can round a few
        ulps above the bound's, hence the margin.
        """
        p, trips = self.params, self.counts.trips
        if (not trips or Breaker.MAX_DRAWDOWN not in trips) and (
            low < 0 or drawdown_fraction(peak, low) >= p.max_drawdown_fraction - 1e-9
        ):
            return False
        if self.day_start_equity > 0 and (not trips or Breaker.DAILY_LOSS not in trips):
            money = self.day_start_equity - low
            if (p.daily_loss_money and money >= p.daily_loss_money) or (
                money / self.day_start_equity >= p.daily_loss_fraction
            ):
                return False
        return True

    def check_counters(self, ts: int) -> list[Trip]:
        p = self.params
        out: list[Trip] = []
        if self.trades_today >= p.max_trades_per_day:
            out += self._new(
                Breaker.TRADES_PER_DAY,
                p.trades_per_day_action,
                ts,
                f"{self.trades_today} trades today reached the limit {p.max_trades_per_day}",
                value=self.trades_today,
                limit=p.max_trades_per_day,
            )
        if self.consecutive_losses >= p.max_consecutive_losses:
            out += self._new(
                Breaker.CONSECUTIVE_LOSSES,
                p.consecutive_losses_action,
                ts,
                f"{self.consecutive_losses} losses in a row reached the limit "
                f"{p.max_consecutive_losses}",
                value=self.consecutive_losses,
                limit=p.max_consecutive_losses,
            )
        recent = sum(1 for t in self.errors if t > ts - p.error_burst_window_ms)
        if recent >= p.error_burst_count:
            out += self._new(
                Breaker.ERROR_BURST,
                p.error_burst_action,
                ts,
                f"{recent} errors within {p.error_burst_window_ms} ms reached the limit "
                f"{p.error_burst_count}",
                value=recent,
                limit=p.error_burst_count,
                window_ms=p.error_burst_window_ms,
            )
        return out

    # -- persistence ------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        return {
            "peak_equity": self.peak_equity,
            "day": self.day,
            "day_start_equity": self.day_start_equity,
            "trades_today": self.trades_today,
            "consecutive_losses": self.consecutive_losses,
            "errors": list(self.errors),
        }

    def restore(self, data: dict[str, Any], trips: Mapping[Breaker, Trip] | None = None) -> None:
        """Back to `snapshot()`'s `data`, with `trips` (kept beside it in an engine snapshot)."""
        self.checked = None
        self.peak_equity = float(data["peak_equity"])
        self.day = int(data["day"])
        self.day_start_equity = float(data["day_start_equity"])
        self.counts = BreakerCounts(
            dict(self.counts.trips if trips is None else trips),
            int(data["trades_today"]),
            int(data["consecutive_losses"]),
            _last(tuple(int(t) for t in data["errors"]), self.params.error_burst_count),
        )
