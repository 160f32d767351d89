"""The strategy interface: one object per (symbol, timeframe) covering a trade's whole life.

    detect(ctx)                      -> setups seen at this closed bar
    plan_entry(setup)                -> a Signal (with confidence) or a coded Skip
    plan_management(signal, setup)   -> ManagementPlan: break-even, trailing, time exit, invalidation
    learn(trade)                     -> adjust the reliability multiplier from a closed trade

A strategy proposes trades and says how each is to be managed; it does not
manage them. The plan travels with the entry to the engine (`BracketOpened.plan`),
which runs it with its own bracket rules in one place
(`fractald.core.execution.decide_brackets.manage`).

Only `detect` is strategy-specific; the rest has sound defaults driven by
`StrategyParams`, so a new strategy is one file: a params class, a
`detect`, and an entry in the registry. Everything is pure and synchronous;
a strategy's state (armed setups, reliability) changes only through these
calls, so the same bars give the same signals in a backtest and the daemon.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Mapping
from typing import Any, ClassVar, Self

import attrs

from fractald.core.execution.management import ManagementPlan
from fractald.core.models import TIMEFRAME_MS, Bar, ClosedTrade, Side, Signal
from fractald.core.smc._live_validate import float_in, int_in
from fractald.core.smc.live import LiveSMC, LiveSMCParams, SMCEvent
from fractald.core.strategies.confidence import Confidence, ConfidenceModel, Factors

# Per-timeframe defaults: a swing on M15 needs more bars either side than on H4,
# and a trade on M15 should be given fewer hours than one on H4.
TIMEFRAME_DEFAULTS: dict[str, dict[str, Any]] = {
    "1m": {"swing_length": 10, "time_exit_bars": 60},
    "3m": {"swing_length": 8, "time_exit_bars": 48},
    "5m": {"swing_length": 8, "time_exit_bars": 48},
    "15m": {"swing_length": 6, "time_exit_bars": 32},
    "30m": {"swing_length": 5, "time_exit_bars": 28},
    "1h": {"swing_length": 5, "time_exit_bars": 24},
    "2h": {"swing_length": 4, "time_exit_bars": 20},
    "4h": {"swing_length": 3, "time_exit_bars": 18},
    "1d": {"swing_length": 2, "time_exit_bars": 10},
}


def _targets_r(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    ok = (
        isinstance(value, tuple)
        and value
        and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and 0.2 <= v <= 20
            for v in value
        )
    )
    if not ok or list(value) != sorted(set(value)):
        raise ValueError(
            f"{attribute.name} must be a non-empty increasing tuple of numbers in 0.2..20, got {value!r}"
        )


@attrs.frozen(slots=True)
class StrategyParams:
    """What every strategy tunes; subclasses add their own. `for_timeframe` fills timeframe defaults."""

    swing_length: int = attrs.field(default=6, validator=int_in(1, 200))
    targets_r: tuple[float, ...] = attrs.field(
        default=(1.5, 3.0), converter=tuple, validator=_targets_r
    )
    stop_buffer_atr: float = attrs.field(default=0.1, validator=float_in(0.0, 5.0))
    min_risk_atr: float = attrs.field(default=0.3, validator=float_in(0.0, 10.0))
    max_risk_atr: float = attrs.field(default=4.0, validator=float_in(0.1, 50.0))
    min_confidence: float = attrs.field(default=40.0, validator=float_in(0.0, 100.0))
    break_even_at_r: float | None = attrs.field(
        default=1.0, validator=float_in(0.1, 20.0, optional=True)
    )
    trail_atr: float | None = attrs.field(default=2.0, validator=float_in(0.1, 20.0, optional=True))
    trail_from_r: float = attrs.field(default=1.5, validator=float_in(0.0, 20.0))
    time_exit_bars: int = attrs.field(default=32, validator=int_in(1, 100_000))

    def __attrs_post_init__(self) -> None:
        if self.min_risk_atr >= self.max_risk_atr:
            raise ValueError(
                f"min_risk_atr ({self.min_risk_atr}) must be below max_risk_atr ({self.max_risk_atr})"
            )

    @classmethod
    def for_timeframe(cls, timeframe: str, **overrides: Any) -> Self:
        """Defaults for `timeframe`, then `overrides`; an unknown name is a ValueError listing the known ones."""
        if timeframe not in TIMEFRAME_DEFAULTS:
            raise ValueError(
                f"unknown timeframe {timeframe!r}; allowed: {', '.join(TIMEFRAME_DEFAULTS)}"
            )
        known = {a.name for a in attrs.fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(
                f"unknown parameter(s) {', '.join(unknown)} for {cls.__name__}; known: {', '.join(sorted(known))}"
            )
        values = {k: v for k, v in TIMEFRAME_DEFAULTS[timeframe].items() if k in known}
        values.update(overrides)
        return cls(**values)


# --- what flows between the calls ------------------------------------------------


@attrs.frozen(slots=True)
class Setup:
    """A trade idea before sizing and confidence: side, levels and the structures behind it."""

    strategy: str
    symbol: str
    timeframe: str
    side: Side
    entry: float
    stop: float
    atr: float
    ts_event: int
    factors: Factors
    reasons: tuple[dict[str, Any], ...] = ()
    invalidation: float | None = None  # a close beyond it ends the trade

    @property
    def risk(self) -> float:
        return abs(self.entry - self.stop)


class SkipCode(enum.Enum):
    LOW_CONFIDENCE = "LOW_CONFIDENCE"
    RISK_TOO_WIDE = "RISK_TOO_WIDE"
    NO_ATR = "NO_ATR"


@attrs.frozen(slots=True)
class Skip:
    """A setup that was seen but not traded, and why."""

    code: SkipCode
    strategy: str
    symbol: str
    ts_event: int
    detail: str


# --- the market view a strategy reads ----------------------------------------------


class BarContext:
    """One closed bar of the strategy's timeframe, the SMC events it produced, and the state around it."""

    __slots__ = (
        "atr_slow",
        "bar",
        "events",
        "index",
        "smc",
        "symbol",
        "timeframe",
        "trends",
        "volume_mean",
    )

    def __init__(
        self,
        symbol: str,
        timeframe: str,
        bar: Bar,
        index: int,
        events: tuple[SMCEvent, ...],
        smc: LiveSMC,
        trends: Mapping[str, int],
        atr_slow: float | None,
        volume_mean: float | None,
    ) -> None:
        self.symbol = symbol
        self.timeframe = timeframe
        self.bar = bar
        self.index = index
        self.events = events
        self.smc = smc
        self.trends = trends
        self.atr_slow = atr_slow
        self.volume_mean = volume_mean

    @property
    def atr(self) -> float | None:
        return self.smc.atr

    @property
    def atr_ratio(self) -> float | None:
        atr = self.smc.atr
        return atr / self.atr_slow if atr is not None and self.atr_slow else None


class MarketState:
    """Live SMC plus slow ATR and volume averages for one (symbol, timeframe); makes BarContexts."""

    def __init__(self, symbol: str, timeframe: str, params: LiveSMCParams, slow: int = 100) -> None:
        self.symbol = symbol
        self.timeframe = timeframe
        self.smc = LiveSMC(params)
        self._alpha = 2.0 / (slow + 1)
        self.atr_slow: float | None = None
        self.volume_mean: float | None = None

    def update(self, bar: Bar, trends: Mapping[str, int] | None = None) -> BarContext:
        volume_mean = self.volume_mean  # the mean *before* this bar, to compare the bar against
        events = self.smc.update(bar)
        a = self._alpha
        atr = self.smc.atr
        if atr is not None:
            self.atr_slow = (
                atr if self.atr_slow is None else self.atr_slow + a * (atr - self.atr_slow)
            )
        self.volume_mean = (
            bar.volume if volume_mean is None else volume_mean + a * (bar.volume - volume_mean)
        )
        return BarContext(
            self.symbol,
            self.timeframe,
            bar,
            self.smc.bars_seen - 1,
            events,
            self.smc,
            trends or {},
            self.atr_slow,
            volume_mean,
        )


def describe(event: Any, role: str) -> dict[str, Any]:
    """An SMC event as a signal reason: its kind, role in the setup, levels and bar times."""
    out: dict[str, Any] = {"role": role, "structure": type(event).__name__}
    for f in attrs.fields(type(event)):
        v = getattr(event, f.name)
        out[f.name] = v.value if isinstance(v, enum.Enum) else v
    return out


def opposing_liquidity(smc: LiveSMC, side: Side, entry: float) -> float | None:
    """The nearest price beyond entry where opposing stops rest: pools first, else the last swing."""
    want = 1 if side is Side.BUY else -1
    levels = [p.level for p in smc.liquidity_pools if int(p.direction) == want]
    swing = smc.last_swing_high if side is Side.BUY else smc.last_swing_low
    if swing is not None:
        levels.append(swing.level)
    ahead = [lv for lv in levels if (lv - entry) * side.sign > 0]
    if not ahead:
        return None
    return min(ahead) if side is Side.BUY else max(ahead)


class Strategy(abc.ABC):
    """Base of every strategy; subclasses set `name`, `params_type` and implement `detect`."""

    name: ClassVar[str]
    params_type: ClassVar[type[StrategyParams]] = StrategyParams

    def __init__(
        self,
        symbol: str,
        timeframe: str,
        params: StrategyParams | None = None,
        confidence: ConfidenceModel | None = None,
    ) -> None:
        if timeframe not in TIMEFRAME_MS:
            raise ValueError(f"unknown timeframe {timeframe!r}; allowed: {', '.join(TIMEFRAME_MS)}")
        self.symbol = symbol
        self.timeframe = timeframe
        self.params = params if params is not None else self.params_type.for_timeframe(timeframe)
        if not isinstance(self.params, self.params_type):
            raise TypeError(
                f"{self.name} needs {self.params_type.__name__}, got {type(self.params).__name__}"
            )
        self.confidence = confidence if confidence is not None else ConfidenceModel()
        self.trades_learned = 0
        self.ewma_r = 0.0

    # -- what the pipeline needs to feed us
    def smc_params(self) -> LiveSMCParams:
        return LiveSMCParams(swing_length=self.params.swing_length)

    # -- lifecycle
    @abc.abstractmethod
    def detect(self, ctx: BarContext) -> tuple[Setup, ...]:
        """Setups that this closed bar completes (usually none)."""

    def plan_entry(self, setup: Setup) -> Signal | Skip:
        p = self.params
        risk = setup.risk
        if setup.atr <= 0:
            return Skip(
                SkipCode.NO_ATR, self.name, setup.symbol, setup.ts_event, "ATR not known yet"
            )
        if risk > p.max_risk_atr * setup.atr:
            return Skip(
                SkipCode.RISK_TOO_WIDE,
                self.name,
                setup.symbol,
                setup.ts_event,
                f"stop {risk:.6g} away is over {p.max_risk_atr} ATR ({setup.atr:.6g})",
            )
        conf = self.confidence_of(setup)
        if conf.value < p.min_confidence:
            return Skip(
                SkipCode.LOW_CONFIDENCE,
                self.name,
                setup.symbol,
                setup.ts_event,
                f"confidence {conf.value:.1f} < {p.min_confidence}",
            )
        targets = tuple(setup.entry + setup.side.sign * r * risk for r in p.targets_r)
        return Signal(
            setup.symbol,
            setup.side,
            setup.entry,
            setup.stop,
            targets,
            conf.value,
            self.name,
            setup.timeframe,
            setup.ts_event,
            setup.reasons + (conf.as_reason(),),
        )

    def confidence_of(self, setup: Setup) -> Confidence:
        return self.confidence.score(setup.factors, self.reliability_multiplier)

    def plan_management(self, signal: Signal, setup: Setup) -> ManagementPlan:
        """How the engine is to look after `signal`'s trade, from this strategy's parameters."""
        p = self.params
        return ManagementPlan(
            self.timeframe,
            signal.entry,
            signal.stop,
            setup.atr,
            p.break_even_at_r,
            p.trail_atr,
            p.trail_from_r,
            p.time_exit_bars * TIMEFRAME_MS[self.timeframe],
            setup.invalidation,
        )

    def learn(self, trade: ClosedTrade) -> None:
        """Keep an exponentially weighted mean R of this strategy's trades (half-life ~7 trades)."""
        if trade.strategy != self.name:
            return
        self.trades_learned += 1
        self.ewma_r += 0.1 * (max(-3.0, min(3.0, trade.r_multiple)) - self.ewma_r)

    def learning_state(self) -> dict[str, Any]:
        """What `learn` has accumulated, as plain data (part of the snapshot)."""
        return {"trades_learned": self.trades_learned, "ewma_r": self.ewma_r}

    def restore_learning(self, data: Mapping[str, Any]) -> None:
        self.trades_learned = int(data["trades_learned"])
        self.ewma_r = float(data["ewma_r"])

    @property
    def reliability_multiplier(self) -> float:
        """1.0 until 5 trades are known; then 1 + 0.2 x mean R, kept within 0.6..1.2."""
        if self.trades_learned < 5:
            return 1.0
        return max(0.6, min(1.2, 1.0 + 0.2 * self.ewma_r))

    # -- helpers for subclasses
    def make_setup(
        self,
        ctx: BarContext,
        side: Side,
        stop: float,
        reasons: tuple[dict[str, Any], ...],
        *,
        invalidation: float | None = None,
        **factors: Any,
    ) -> Setup | None:
        """A setup entered at the bar's close, the stop pushed to at least `min_risk_atr` away."""
        atr = ctx.atr
        if atr is None:
            return None
        entry = ctx.bar.close
        stop = stop - side.sign * self.params.stop_buffer_atr * atr
        min_risk = self.params.min_risk_atr * atr
        if (entry - stop) * side.sign < min_risk:
            stop = entry - side.sign * min_risk
        if stop <= 0 or (entry - stop) * side.sign <= 0:
            return None
        room = opposing_liquidity(ctx.smc, side, entry)
        room_r = None if room is None else abs(room - entry) / abs(entry - stop)
        f = Factors(
            side,
            dict(ctx.trends),
            room_r=room_r,
            atr_ratio=ctx.atr_ratio,
            ts_event=ctx.bar.ts_event,
            **factors,
        )
        return Setup(
            self.name,
            ctx.symbol,
            self.timeframe,
            side,
            entry,
            stop,
            atr,
            ctx.bar.ts_event,
            f,
            reasons,
            invalidation,
        )
