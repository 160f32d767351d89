"""What every part of the TradingEngine shares: its parameters and the shape of its state.

The engine (engine.py) is one class composed of mixins, one job each:

- `_engine_apply.EngineApply`: the driver: each event a decider yields goes
  through `evolve.evolve`, the one transition table and the only code that
  changes event-sourced state, and only from an event;
- `_engine_orders.EngineOrders`: signals (to `decide_entry`) and venue reports in;
- `_engine_brackets.EngineBrackets`: prices against the trades' stops; strategy requests;
- `_engine_market.EngineMarket`: bars, ticks, quotes and the paper fills they drive;
- `_engine_breakers.EngineBreakers`: breaker checks and operator commands;
- `_engine_state.EngineState`: read-only views, snapshot and restore.

The decisions themselves are plain functions over the state, one module per
concern, that read it and return (or yield) events and change nothing:
`decide_entry` (the risk ladder), `decide_report` (venue reports),
`decide_brackets` (trade management), `decide_breakers` (trips),
`decide_commands` (the operator's commands).

`EngineCore` is their common base. It declares (for the type checker only)
the attributes `TradingEngine.__init__` sets and the methods one mixin calls
on another, so each mixin states what it relies on from the rest in one
place. At run time it adds nothing: no attributes, no methods, no slots, so
the engine's instance state is that of `__init__`.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any

import attrs

from fractald.core.execution.brackets import BracketParams
from fractald.core.execution.orders import OrderType
from fractald.core.execution.paper import PaperParams
from fractald.core.risk.params import RiskParams, in_range, int_range
from fractald.core.risk.sizing import Instrument

if TYPE_CHECKING:
    import collections
    from collections.abc import Iterable

    from fractald.core.execution._engine_apply import Step
    from fractald.core.execution.accounting import Accounting
    from fractald.core.execution.brackets import Bracket
    from fractald.core.execution.orders import Order
    from fractald.core.execution.paper_venue import PaperVenue
    from fractald.core.models import FeedHealth
    from fractald.core.risk.breakers import CircuitBreakers, TradingState
    from fractald.core.risk.exec_quality import ExecutionQuality
    from fractald.core.risk.gates import CorrelationTracker, OpenRisk, OrderRateLimiter
    from fractald.core.risk.reliability import StrategyReliability


class FillSource(enum.Enum):
    """What drives the paper broker: candles (backtests, bar replays) or live trades and quotes."""

    BARS = "BARS"
    TICKS = "TICKS"


@attrs.frozen(slots=True)
class EngineParams:
    initial_equity: float = attrs.field(default=10_000.0, validator=in_range(0, 1e15, lo_open=True))
    venue: str = "paper"
    fills_from: FillSource = FillSource.BARS
    entry_type: OrderType = OrderType.MARKET
    entry_ttl_bars: int = attrs.field(default=3, validator=int_range(1, 100_000))  # LIMIT entries
    # A signal older than this many bars of its timeframe is stale (e.g. replayed after a restart).
    max_signal_age_bars: int = attrs.field(default=1, validator=int_range(0, 100_000))
    require_feed_health: bool = False
    instruments: tuple[Instrument, ...] = ()
    default_lot_size: float = attrs.field(default=0.001, validator=in_range(0, 1e9, lo_open=True))
    default_tick_size: float = attrs.field(default=0.01, validator=in_range(0, 1e9, lo_open=True))
    max_closed_orders: int = attrs.field(default=2_000, validator=int_range(10, 10_000_000))
    max_seen_signals: int = attrs.field(default=10_000, validator=int_range(10, 10_000_000))
    max_exit_attempts: int = attrs.field(default=3, validator=int_range(1, 100))
    risk: RiskParams = attrs.field(factory=RiskParams)
    paper: PaperParams = attrs.field(factory=PaperParams)
    brackets: BracketParams = attrs.field(factory=BracketParams)
    # The venue cannot sell short (spot): a SELL entry is denied, coded `long_only`.
    long_only: bool = False
    # Every entry a maker-only limit at the signal's entry (as a signal's own `post_only`).
    post_only_entries: bool = False

    def __attrs_post_init__(self) -> None:
        if self.entry_type not in (OrderType.MARKET, OrderType.LIMIT):
            raise ValueError(
                f"EngineParams.entry_type must be MARKET or LIMIT, got {self.entry_type}"
            )


@attrs.define(slots=True)
class _Atr:
    prev_close: float = 0.0
    value: float = 0.0
    n: int = 0


# Pickles name a class by its module: these three were defined in engine.py
# before the engine was split, and engine.py stays their public home.
for _cls in (FillSource, EngineParams, _Atr):
    _cls.__module__ = "fractald.core.execution.engine"


class EngineCore:
    """The engine's state and cross-mixin methods, declared for the type checker (see module doc)."""

    if TYPE_CHECKING:
        # ---- state, set by TradingEngine.__init__
        params: EngineParams
        instruments: dict[str, Instrument]
        accounting: Accounting
        breakers: CircuitBreakers
        reliability: StrategyReliability
        exec_quality: ExecutionQuality
        correlation: CorrelationTracker
        rate: OrderRateLimiter
        orders: dict[str, Order]
        closed_orders: collections.deque[str]
        brackets: dict[str, Bracket]
        seen_signals: collections.OrderedDict[str, None]
        feed: dict[str, FeedHealth]
        last_price: dict[str, float]
        atr: dict[str, _Atr]
        paused: bool
        last_ts: int
        last_funding_ts: int

        # ---- EngineApply
        def _begin(self, ts: int, venue: PaperVenue | None = None) -> Step: ...
        def _finish(self, step: Step) -> list[Any]: ...
        def _run(self, step: Step, decision: Iterable[Any]) -> None: ...
        def _drain(self, step: Step) -> None: ...

        # ---- EngineState
        @property
        def state(self) -> TradingState: ...
        @property
        def equity(self) -> float: ...
        def instrument(self, symbol: str) -> Instrument: ...
        def open_risks(self) -> list[OpenRisk]: ...
        def working_orders(self) -> list[Order]: ...

        # ---- EngineBrackets
        def _on_price(self, step: Step, symbol: str, price: float, ts: int) -> None: ...
        def _mark(self, symbol: str, price: float) -> None: ...

        # ---- EngineBreakers
        def _check_equity(self, step: Step, ts: int, equity: float | None = None) -> None: ...
