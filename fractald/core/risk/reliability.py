"""Strategy reliability loop: ACTIVE, THROTTLED (size scaled down), QUARANTINED (no entries).

A strategy is throttled after a loss streak or a negative expectancy
(mean R over the recent window) and quarantined after a longer streak or
a clearly negative expectancy. A quarantine lasts `quarantine_ms`, then
the strategy is on probation (THROTTLED, with its evidence window
cleared); `recovery_wins` wins in a row with non-negative expectancy
bring it back to ACTIVE.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import Any

import attrs

from fractald.core.models import ClosedTrade
from fractald.core.risk.params import ReliabilityParams


class StrategyState(enum.Enum):
    ACTIVE = "ACTIVE"
    THROTTLED = "THROTTLED"
    QUARANTINED = "QUARANTINED"


@attrs.frozen(slots=True)
class StrategyChange:
    strategy: str
    old: StrategyState
    new: StrategyState
    reason: str
    ts: int
    figures: dict[str, Any] = attrs.field(factory=dict, hash=False)


def _floats(values: Iterable[float]) -> tuple[float, ...]:
    return tuple(values)


@attrs.frozen(slots=True)
class StrategyRecord:
    """One strategy's evidence and state, a value: `after_trade` / `after_change` make the next."""

    state: StrategyState = StrategyState.ACTIVE
    since_ts: int = 0
    trades: int = 0
    wins: int = 0
    loss_streak: int = 0
    win_streak: int = 0
    cum_pnl: float = 0.0
    peak_pnl: float = 0.0
    max_drawdown: float = 0.0
    recent_r: tuple[float, ...] = attrs.field(default=(), converter=_floats)

    @property
    def win_rate(self) -> float:
        return self.wins / self.trades if self.trades else 0.0

    def expectancy(self) -> float:
        return sum(self.recent_r) / len(self.recent_r) if self.recent_r else 0.0

    def after_trade(self, trade: ClosedTrade, window: int) -> StrategyRecord:
        """This record with `trade` counted (its R joins the latest `window`)."""
        win = trade.pnl > 0
        cum_pnl = self.cum_pnl + trade.pnl
        peak_pnl = max(self.peak_pnl, cum_pnl)
        recent = (*self.recent_r, trade.r_multiple)
        return attrs.evolve(
            self,
            trades=self.trades + 1,
            wins=self.wins + win,
            loss_streak=0 if win else self.loss_streak + 1,
            win_streak=self.win_streak + 1 if win else 0,
            cum_pnl=cum_pnl,
            peak_pnl=peak_pnl,
            max_drawdown=max(self.max_drawdown, peak_pnl - cum_pnl),
            recent_r=recent[-window:],
        )

    def after_change(self, change: StrategyChange) -> StrategyRecord:
        """This record in `change`'s new state (probation out of quarantine starts with fresh evidence)."""
        if self.state is StrategyState.QUARANTINED and change.new is StrategyState.THROTTLED:
            return attrs.evolve(
                self, state=change.new, since_ts=change.ts, recent_r=(), loss_streak=0, win_streak=0
            )
        return attrs.evolve(self, state=change.new, since_ts=change.ts)


class StrategyReliability:
    def __init__(self, params: ReliabilityParams) -> None:
        self.params = params
        self.records: dict[str, StrategyRecord] = {}

    def record_of(self, strategy: str) -> StrategyRecord:
        """The strategy's record; a fresh one (not kept) for a strategy with no history yet.

        A pure read: asking about a strategy (a signal's checks, `fractalctl
        strategies`) must not change the state, or a rebuild from the ledger,
        which only sees events, would differ from the live engine.
        """
        rec = self.records.get(strategy)
        return StrategyRecord() if rec is None else rec

    def quarantined(self) -> list[str]:
        """The strategies now in quarantine (each waits out its time there)."""
        q = StrategyState.QUARANTINED
        return [s for s, rec in self.records.items() if rec.state is q]

    def scale(self, strategy: str) -> float:
        state = self.record_of(strategy).state
        if state is StrategyState.QUARANTINED:
            return 0.0
        return self.params.throttle_scale if state is StrategyState.THROTTLED else 1.0

    def record(self, trade: ClosedTrade) -> None:
        """Count `trade` (its strategy's record is replaced; evolve calls this)."""
        rec = self.record_of(trade.strategy)
        self.records[trade.strategy] = rec.after_trade(trade, self.params.expectancy_window)

    def evaluate(self, strategy: str, ts: int) -> StrategyChange | None:
        """The state change the latest evidence calls for, if any (pure read)."""
        p = self.params
        rec = self.record_of(strategy)
        if rec.state is StrategyState.QUARANTINED and ts - rec.since_ts < p.quarantine_ms:
            return None  # still serving its time: the evidence is not read (checked at every bar)
        n = len(rec.recent_r)
        exp = rec.expectancy()
        figures = {
            "loss_streak": rec.loss_streak,
            "win_streak": rec.win_streak,
            "expectancy_r": exp,
            "trades_in_window": n,
            "win_rate": rec.win_rate,
        }
        enough = n >= p.min_trades_for_expectancy
        new, reason = rec.state, ""
        if rec.state is not StrategyState.QUARANTINED:
            if rec.loss_streak >= p.quarantine_after_losses:
                new, reason = StrategyState.QUARANTINED, f"{rec.loss_streak} losses in a row"
            elif enough and exp <= p.quarantine_expectancy_r:
                new, reason = StrategyState.QUARANTINED, f"expectancy {exp:.3f}R over {n} trades"
            elif rec.state is StrategyState.ACTIVE and rec.loss_streak >= p.throttle_after_losses:
                new, reason = StrategyState.THROTTLED, f"{rec.loss_streak} losses in a row"
            elif rec.state is StrategyState.ACTIVE and enough and exp < 0:
                new, reason = StrategyState.THROTTLED, f"negative expectancy {exp:.3f}R"
            elif (
                rec.state is StrategyState.THROTTLED
                and rec.win_streak >= p.recovery_wins
                and (exp >= 0 or not enough)
            ):
                new, reason = StrategyState.ACTIVE, f"recovered: {rec.win_streak} wins in a row"
        elif ts - rec.since_ts >= p.quarantine_ms:
            new, reason = StrategyState.THROTTLED, "quarantine served; on probation"
        if new is rec.state:
            return None
        return StrategyChange(strategy, rec.state, new, reason, ts, figures)

    def apply(self, change: StrategyChange) -> None:
        """Put the strategy in `change`'s state (its record is replaced; evolve calls this)."""
        rec = self.record_of(change.strategy)
        self.records[change.strategy] = rec.after_change(change)
