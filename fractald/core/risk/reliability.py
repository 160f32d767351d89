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


@attrs.define(slots=True)
class StrategyRecord:
    state: StrategyState = StrategyState.ACTIVE
    since_ts: int = 0
    trades: int = 0
    wins: int = 0
    loss_streak: int = 0
    win_streak: int = 0
    cum_pnl: float = 0.0
    peak_pnl: float = 0.0
    max_drawdown: float = 0.0
    recent_r: list[float] = attrs.field(factory=list)

    @property
    def win_rate(self) -> float:
        return self.wins / self.trades if self.trades else 0.0

    def expectancy(self) -> float:
        return sum(self.recent_r) / len(self.recent_r) if self.recent_r else 0.0


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

    def _record(self, strategy: str) -> StrategyRecord:
        """The strategy's record, kept from now on (for the updates below)."""
        rec = self.records.get(strategy)
        if rec is None:
            rec = self.records[strategy] = StrategyRecord()
        return rec

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
        rec = self._record(trade.strategy)
        rec.trades += 1
        win = trade.pnl > 0
        rec.wins += win
        rec.loss_streak = 0 if win else rec.loss_streak + 1
        rec.win_streak = rec.win_streak + 1 if win else 0
        rec.cum_pnl += trade.pnl
        rec.peak_pnl = max(rec.peak_pnl, rec.cum_pnl)
        rec.max_drawdown = max(rec.max_drawdown, rec.peak_pnl - rec.cum_pnl)
        rec.recent_r.append(trade.r_multiple)
        del rec.recent_r[: -self.params.expectancy_window]

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
        rec = self._record(change.strategy)
        if rec.state is StrategyState.QUARANTINED and change.new is StrategyState.THROTTLED:
            rec.recent_r.clear()  # probation starts with fresh evidence
            rec.loss_streak = rec.win_streak = 0
        rec.state = change.new
        rec.since_ts = change.ts
