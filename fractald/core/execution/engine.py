"""TradingEngine: the pure composition of risk, orders, brackets, paper fills and accounting.

Inputs are market data, signals, venue reports and operator commands,
each stamped with event time; outputs are immutable events (see
events.py) for the ledger. The engine changes its own state *only* by
applying those events (deciders yield them, the driver `_run` evolves
the state by each and records it; nothing is kept between calls), so a rebuild from
a snapshot plus the later events (`restore` then `apply` each) lands in
the same state. Market-derived caches (last prices, trailing best price,
ATR, correlation windows, paper queue positions) live in snapshots only.

The engine owns no venue. With `venue == "paper"` whoever drives it (the
session, the backtest loop: `core.pipeline`) holds a `PaperVenue` and
passes it with each input; the engine hands that input's order intents and
cancels to it and takes its reports back in the same call, as it takes any
venue's. With any other venue, OrderIntent and CancelRequested events are
what the router actor sends, and the venue's reports come back through
`on_venue_report`.

The class is composed of mixins, one job each (see `_engine_core` for the
map and for what each relies on from the others); this module is the
public home of `TradingEngine`, `EngineParams` and `FillSource`, the names
imports and pickled snapshots refer to.
"""

from __future__ import annotations

import collections

from fractald.core.execution._engine_apply import EngineApply
from fractald.core.execution._engine_brackets import EngineBrackets
from fractald.core.execution._engine_breakers import EngineBreakers
from fractald.core.execution._engine_core import EngineParams, FillSource, _Atr
from fractald.core.execution._engine_market import EngineMarket
from fractald.core.execution._engine_orders import EngineOrders
from fractald.core.execution._engine_state import EngineState, event_sourced
from fractald.core.execution.accounting import Accounting
from fractald.core.execution.brackets import Bracket
from fractald.core.execution.orders import Order
from fractald.core.models import FeedHealth
from fractald.core.risk.breakers import CircuitBreakers
from fractald.core.risk.exec_quality import ExecutionQuality
from fractald.core.risk.gates import CorrelationTracker, OrderRateLimiter
from fractald.core.risk.reliability import StrategyReliability

# Pickles name EngineParams, FillSource and `_Atr` as classes of this module (their
# `__module__` says so): the imports above keep those names resolving here.
__all__ = ["EngineParams", "FillSource", "TradingEngine", "event_sourced"]


class TradingEngine(
    EngineState, EngineApply, EngineOrders, EngineBrackets, EngineMarket, EngineBreakers
):
    """The engine's state, set here; what acts on it comes from the mixins (see `_engine_core`)."""

    def __init__(self, params: EngineParams | None = None) -> None:
        self.params = p = params or EngineParams()
        self.instruments = {i.symbol: i for i in p.instruments}
        self.accounting = Accounting(p.initial_equity)
        self.breakers = CircuitBreakers(p.risk.breakers, p.initial_equity)
        self.reliability = StrategyReliability(p.risk.reliability)
        self.exec_quality = ExecutionQuality(p.risk.exec_quality)
        self.correlation = CorrelationTracker(
            p.risk.gates.correlation_window, p.risk.gates.correlation_threshold
        )
        self.rate = OrderRateLimiter(
            p.risk.gates.max_orders_per_window, p.risk.gates.order_rate_window_ms
        )
        self.orders: dict[str, Order] = {}
        self.closed_orders: collections.deque[str] = collections.deque()
        self.brackets: dict[str, Bracket] = {}
        self.seen_signals: collections.OrderedDict[str, None] = collections.OrderedDict()
        self.feed: dict[str, FeedHealth] = {}
        self.last_price: dict[str, float] = {}
        self.atr: dict[str, _Atr] = {}
        self.paused = False
        self.last_ts = 0
        self.last_funding_ts = 0
