"""A trade's management plan: the strategy's rules for looking after it, frozen at entry.

The strategy builds it from its own parameters when it proposes the entry
(`Strategy.plan_management`); the engine carries it on the trade
(`BracketOpened.plan`, then `Bracket.plan`) and runs it in
`decide_brackets.manage`, next to the engine's own bracket rules (scale-out
targets, break-even after the first target, trailing by price, time exits
by `max_holding_bars`). So every rule that moves a stop or ends a trade runs
in one place, and a snapshot holds the trade with its rules: nothing of it
stays in the strategy.

The rules, judged on each base bar and each bar of the plan's timeframe
once the entry has filled:

* invalidation: a close of the plan's timeframe beyond `invalidation` exits
  (a wick on a smaller timeframe does not break structure);
* time: `time_exit_ms` after the first fill, the trade exits;
* break-even: once the best price is `break_even_at_r` R past the entry,
  the stop goes to the entry;
* trailing: once the best price is `trail_from_r` R past the entry, the
  stop follows it at `trail_atr` ATRs (the ATR at entry); never looser.
"""

from __future__ import annotations

from typing import Any

import attrs

from fractald.core.models import TIMEFRAME_MS, Side


def _timeframe(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value not in TIMEFRAME_MS:
        raise ValueError(
            f"{attribute.name} must be one of {', '.join(TIMEFRAME_MS)}, got {value!r}"
        )


def _positive(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
        raise ValueError(f"{attribute.name} must be a number > 0, got {value!r}")


def _positive_or_none(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None:
        _positive(instance, attribute, value)


def _not_negative(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{attribute.name} must be a number >= 0, got {value!r}")


@attrs.frozen(slots=True)
class ManagementPlan:
    """How an open trade is looked after: the strategy's rules, frozen at entry."""

    timeframe: str = attrs.field(validator=_timeframe)  # invalidation is judged on its closes
    entry: float = attrs.field(validator=_positive)  # the signal's entry and stop: 1 R apart
    stop: float = attrs.field(validator=_positive)
    atr: float = attrs.field(validator=_not_negative)  # the strategy timeframe's ATR at entry
    break_even_at_r: float | None = attrs.field(validator=_positive_or_none)
    trail_atr: float | None = attrs.field(validator=_positive_or_none)
    trail_from_r: float = attrs.field(validator=_not_negative)
    time_exit_ms: int = attrs.field(validator=_not_negative)  # 0: no time exit
    invalidation: float | None = attrs.field(validator=_positive_or_none)

    def __attrs_post_init__(self) -> None:
        if self.entry == self.stop:
            raise ValueError(f"ManagementPlan entry and stop must differ, both {self.entry}")

    @property
    def risk(self) -> float:
        """1 R in price: the planned entry to the planned stop."""
        return abs(self.entry - self.stop)

    def exit_reason(self, side: Side, ts_entry: int, bar_tf: str, ts: int, close: float) -> str:
        """Why the trade must end at this bar's close ("invalidated", "time"), or ""."""
        inv = self.invalidation
        if bar_tf == self.timeframe and inv is not None and (close - inv) * side.sign < 0:
            return "invalidated"
        if self.time_exit_ms and ts - ts_entry >= self.time_exit_ms:
            return "time"
        return ""

    def tighter_stop(
        self, side: Side, entry: float, stop: float, best: float
    ) -> tuple[float, str] | None:
        """(new stop, "break_even" | "trail") from the best price so far, or None: never looser."""
        sign = side.sign
        risk = self.risk
        gained = (best - entry) * sign
        new_stop, reason = stop, ""
        be_r = self.break_even_at_r
        if be_r is not None and gained >= be_r * risk and (entry - new_stop) * sign > 0:
            new_stop, reason = entry, "break_even"
        if self.trail_atr is not None and gained >= self.trail_from_r * risk:
            trail = best - sign * self.trail_atr * self.atr
            if (trail - new_stop) * sign > 0:
                new_stop, reason = trail, "trail"
        return (new_stop, reason) if reason else None
