"""TradingEngine: the pure composition of risk, orders, brackets, paper fills and accounting.

Inputs are market data, signals, venue reports and operator commands,
each stamped with event time; outputs are immutable events (see
events.py) for the ledger. The engine changes its own state *only* by
applying those events (`_emit` applies, then records), so a rebuild from
a snapshot plus the later events (`restore` then `apply` each) lands in
the same state. Market-derived caches (last prices, trailing best price,
ATR, correlation windows, paper queue positions) live in snapshots only.

With `venue == "paper"` the engine owns a PaperBroker and feeds its
reports back in-process; with any other venue, OrderIntent and
CancelRequested events are what the router actor sends, and the venue's
reports come back through `on_venue_report`.
"""

from __future__ import annotations

import collections
import enum
from collections.abc import Callable, Iterable
from typing import Any

import attrs
import cattrs

from fractald.core.execution import events as ev
from fractald.core.execution.accounting import Accounting, TripContext
from fractald.core.execution.brackets import Bracket, BracketParams, BracketState, TrailMode
from fractald.core.execution.orders import (
    QTY_EPS,
    Order,
    OrderEvent,
    OrderStatus,
    OrderType,
    TimeInForce,
    client_order_id,
)
from fractald.core.execution.paper import (
    PaperBroker,
    PaperOrder,
    PaperParams,
    bar_path_ends,
    bar_path_points,
    path_trade,
)
from fractald.core.execution.reports import VenueReport
from fractald.core.models import Bar, FeedHealth, Quote, Side, Signal, TradeTick, timeframe_ms
from fractald.core.risk.breakers import MS_PER_DAY, Breaker, CircuitBreakers, TradingState, Trip
from fractald.core.risk.denial import Denial, DenialCode, deny
from fractald.core.risk.exec_quality import ExecutionQuality
from fractald.core.risk.gates import (
    Candidate,
    CorrelationTracker,
    OpenRisk,
    OrderRateLimiter,
    check_feed,
    check_portfolio,
)
from fractald.core.risk.params import BreakerParams, RiskParams, in_range, int_range
from fractald.core.risk.reliability import StrategyChange, StrategyReliability, StrategyState
from fractald.core.risk.sizing import Instrument, SizedOrder, size_signal
from fractald.errors import InvariantViolation

OE = OrderEvent


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

    def __attrs_post_init__(self) -> None:
        if self.entry_type not in (OrderType.MARKET, OrderType.LIMIT):
            raise ValueError(f"EngineParams.entry_type must be MARKET or LIMIT, got {self.entry_type}")


@attrs.define(slots=True)
class _Atr:
    prev_close: float = 0.0
    value: float = 0.0
    n: int = 0


_conv = cattrs.Converter()
# Brackets whose local stop `_on_price` watches.
_GUARDED = (BracketState.PENDING, BracketState.OPEN)  # a tuple: `in` by identity, no enum hashing
_LIVE_AT_VENUE = frozenset({OrderStatus.ACCEPTED, OrderStatus.TRIGGERED, OrderStatus.PARTIALLY_FILLED,
                            OrderStatus.PENDING_UPDATE})


# Breakers whose trip leaves entries not yet filled alone. The day's trade count
# counts a trade when its bracket opens, so the trip at the limit comes with the
# trade that reached it: that trade (and the earlier ones) are within the limit
# and are kept; only the next one is refused (`_trade_count_denial`).
_KEEPS_ENTRIES = (Breaker.TRADES_PER_DAY,)


def _day_starts(points: list[tuple[float, int]]) -> list[tuple[float, int]]:
    """The first point, and each point in another UTC day than the one before it."""
    out: list[tuple[float, int]] = []
    day = -1
    for price, ts in points:
        if ts // MS_PER_DAY != day:
            day = ts // MS_PER_DAY
            out.append((price, ts))
    return out


class TradingEngine:
    # (UTC day, equity, breaker limits) of the last breaker check, while no event has
    # been applied since: a check on that day at that equity would find nothing new
    # (see `_check_equity`). The class default covers an engine unpickled from before.
    _settled: tuple[int, float, BreakerParams] | None = None

    def __init__(self, params: EngineParams | None = None) -> None:
        self.params = p = params or EngineParams()
        self.instruments = {i.symbol: i for i in p.instruments}
        self.accounting = Accounting(p.initial_equity)
        self.breakers = CircuitBreakers(p.risk.breakers, p.initial_equity)
        self.reliability = StrategyReliability(p.risk.reliability)
        self.exec_quality = ExecutionQuality(p.risk.exec_quality)
        self.correlation = CorrelationTracker(p.risk.gates.correlation_window,
                                              p.risk.gates.correlation_threshold)
        self.rate = OrderRateLimiter(p.risk.gates.max_orders_per_window, p.risk.gates.order_rate_window_ms)
        self.broker: PaperBroker | None = PaperBroker(p.paper) if p.venue == "paper" else None
        if self.broker is not None and p.fills_from is FillSource.BARS:
            self.broker.immediate = True  # latency is far below a bar
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
        self._out: list[Any] = []
        self._reports: collections.deque[VenueReport] = collections.deque()
        self._closed_pending: list[Any] = []
        self._paper_dirty = False
        self._settled = None
        self._appliers = self._build_appliers()

    def _build_appliers(self) -> dict[type, Callable[[Any], None]]:
        """Event type -> how applying it changes the engine (the only way state changes)."""
        return {
            ev.SignalDenied: lambda e: None,
            ev.BracketOpened: self._a_bracket_opened,
            ev.OrderIntent: self._a_intent,
            ev.CancelRequested: self._a_cancel_requested,
            ev.OrderStatusChanged: self._a_status,
            ev.OrderFilled: self._a_fill,
            ev.OrderAnomaly: lambda e: None,
            ev.StopMoveRefused: lambda e: None,
            ev.StopMoved: self._a_stop_moved,
            ev.BracketExit: self._a_bracket_exit,
            ev.BracketClosed: self._a_bracket_closed,
            ev.BreakerTripped: lambda e: self.breakers.trip(
                Trip(e.breaker, e.state, e.reason, e.ts, dict(e.figures))),
            ev.BreakersCleared: self._a_breakers_cleared,
            ev.TradingStateChanged: lambda e: None,  # derived from the trips; recorded for operators
            ev.Paused: lambda e: setattr(self, "paused", e.paused),
            ev.ErrorRecorded: lambda e: self.breakers.record_error(e.ts),
            ev.TradeClosed: self._a_trade_closed,
            ev.StrategyStateChanged: lambda e: self.reliability.apply(StrategyChange(
                e.strategy, e.old, e.new, e.reason, e.ts, dict(e.figures))),
            ev.FundingPaid: self._a_funding,
        }

    # Pickling (the daemon snapshots the pipeline around the engine): the bound
    # appliers are rebuilt, not pickled.
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        del state["_appliers"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._appliers = self._build_appliers()

    # ======================================================================= views
    @property
    def state(self) -> TradingState:
        return self.breakers.state

    @property
    def equity(self) -> float:
        return self.accounting.equity

    def instrument(self, symbol: str) -> Instrument:
        inst = self.instruments.get(symbol)
        if inst is None:
            inst = self.instruments[symbol] = Instrument(symbol, self.params.default_lot_size,
                                                         self.params.default_tick_size)
        return inst

    def open_risks(self) -> list[OpenRisk]:
        return [OpenRisk(b.symbol, b.exposure(self.last_price.get(b.symbol, 0.0)), b.open_risk())
                for b in self.brackets.values() if b.state is not BracketState.CLOSED]

    def working_orders(self) -> list[Order]:
        return [o for o in self.orders.values() if not o.status.terminal]

    def orders_awaiting_ack(self) -> list[Order]:
        """Orders sent (or about to be, when the process died) with no word from the venue yet.

        After a restart each must be looked up at the venue by client order id:
        known there, carry on; unknown, it never left, so send it again (same id)
        or reject it locally.
        """
        return [o for o in self.orders.values() if o.status is OrderStatus.SUBMITTED]

    def status(self) -> dict[str, Any]:
        """What `fractalctl status` shows."""
        return {"trading_state": self.state.value, "paused": self.paused, "equity": self.equity,
                "peak_equity": self.breakers.peak_equity,
                "trips": [{"breaker": t.breaker.value, "state": t.state.value, "reason": t.reason,
                           "ts": t.ts, "figures": t.figures} for t in self.breakers.trips.values()],
                "open_brackets": len(self.brackets), "working_orders": len(self.working_orders()),
                "strategies": {s: r.state.value for s, r in self.reliability.records.items()}}

    # ================================================================ event plumbing
    def _begin(self, ts: int) -> None:
        if self._paper_dirty:
            self._resync_paper()
        self._out = []
        self.last_ts = max(self.last_ts, ts)

    def _finish(self) -> list[Any]:
        self._drain()
        out, self._out = self._out, []
        return out

    def _emit(self, event: Any) -> None:
        self._apply(event)
        self._out.append(event)

    def apply(self, event: Any) -> None:
        """Rebuild path: apply one ledger event without deciding anything new."""
        self._apply(event)
        self._closed_pending.clear()
        self.last_ts = max(self.last_ts, event.ts)
        self._paper_dirty = self.broker is not None

    def _apply(self, event: Any) -> None:
        try:
            applier = self._appliers[type(event)]
        except KeyError:
            raise ValueError(f"not an engine event: {type(event).__name__}") from None
        self._settled = None
        applier(event)

    # ================================================================ appliers
    def _a_bracket_opened(self, e: ev.BracketOpened) -> None:
        self.brackets[e.signal_id] = Bracket(
            e.signal_id, e.strategy, e.symbol, e.side, e.timeframe, e.quantity, e.entry, e.stop,
            list(e.targets), e.confidence, e.ts)
        self._remember_signal(e.signal_id)
        # On a rebuild no price has rolled the day yet: count the trade on its own day.
        self.breakers.roll_day(e.ts, self.equity)
        self.breakers.record_trade_opened()

    def _remember_signal(self, signal_id: str) -> None:
        self.seen_signals[signal_id] = None
        while len(self.seen_signals) > self.params.max_seen_signals:
            self.seen_signals.popitem(last=False)

    def _a_intent(self, e: ev.OrderIntent) -> None:
        o = Order(e.client_order_id, e.symbol, e.side, e.order_type, e.quantity, e.price,
                  e.trigger_price, e.tif, e.expire_ts, e.reduce_only, e.strategy, e.signal_id, e.role,
                  ts_created=e.ts, intended_price=e.intended_price)
        o.apply(OE.SUBMIT, e.ts)
        self.orders[o.client_order_id] = o
        self.rate.record(e.ts)
        b = self.brackets.get(e.signal_id)
        if b is None:
            return
        if e.role == "entry":
            b.entry_coid = e.client_order_id
        elif e.role.startswith("tp"):
            b.target_coids.append(e.client_order_id)
            b.target_qtys.append(e.quantity)
            b.target_filled.append(0.0)
        elif e.role.startswith("exit"):
            b.exit_coids.append(e.client_order_id)
        elif e.role.startswith("stop"):
            b.stop_coids.append(e.client_order_id)

    def _a_cancel_requested(self, e: ev.CancelRequested) -> None:
        o = self.orders.get(e.client_order_id)
        if o is not None:
            o.apply(OE.CANCEL_REQUEST, e.ts)

    def _a_status(self, e: ev.OrderStatusChanged) -> None:
        o = self.orders.get(e.client_order_id)
        if o is None:
            return
        before = o.status
        o.apply(e.event, e.ts, reason=e.reason, venue_order_id=e.venue_order_id)
        self._after_order_applied(o, before)
        venue, sym = self.params.venue, o.symbol
        if e.event is OE.ACCEPT:
            self.exec_quality.record_ack(venue, sym, e.ts - o.ts_submitted)
            self.exec_quality.record_submit_outcome(venue, sym, rejected=False)
        elif e.event is OE.REJECT:
            self.exec_quality.record_submit_outcome(venue, sym, rejected=True)
        elif e.event is OE.CANCEL_REJECT:
            self.exec_quality.record_cancel_outcome(venue, sym, failed=True)
        elif e.event is OE.CANCEL and before is OrderStatus.PENDING_CANCEL:
            self.exec_quality.record_cancel_outcome(venue, sym, failed=False)

    def _a_fill(self, e: ev.OrderFilled) -> None:
        o = self.orders.get(e.client_order_id)
        if o is not None:
            first = o.filled_qty == 0
            before = o.status
            o.apply_fill(e.trade_id, e.quantity, e.price, e.fee, e.ts)
            # Submit-to-fill latency means something for orders that take liquidity;
            # a resting limit waits for the market by design.
            if first and o.order_type in (OrderType.MARKET, OrderType.STOP_MARKET):
                self.exec_quality.record_fill_latency(self.params.venue, o.symbol, e.ts - o.ts_submitted)
            if first and o.intended_price > 0:
                self.exec_quality.record_slippage(self.params.venue, o.symbol, o.side.sign,
                                                  o.intended_price, e.price)
        if self.broker is not None and e.trade_id.startswith("paper-"):
            self.broker.seq = max(self.broker.seq, int(e.trade_id[6:]))
        b = self.brackets.get(e.signal_id)
        ctx = TripContext()
        if b is not None:
            if e.role == "entry":
                ctx = TripContext(trip_id=b.signal_id, confidence=b.confidence,
                                  risk=abs(e.price - b.initial_stop) * e.quantity)
                b.on_entry_fill(e.quantity, e.price, e.ts)
            else:
                reason = ("target" if e.role.startswith("tp") else "stop" if e.role.startswith("stop")
                          else (b.exit_reason or e.role))
                ctx = TripContext(exit_reason=reason)
                b.on_reduce_fill(e.client_order_id, e.quantity)
        elif e.role == "flatten":
            ctx = TripContext(exit_reason="flatten")
        self._closed_pending += self.accounting.apply_fill(
            e.strategy, e.symbol, e.side, e.quantity, e.price, e.fee, e.ts, ctx)
        if o is not None:
            self._after_order_applied(o, before)

    def _after_order_applied(self, o: Order, before: OrderStatus) -> None:
        if before.terminal or not o.status.terminal:
            return
        b = self.brackets.get(o.signal_id)
        if b is not None and o.role == "entry":
            b.entry_done = True
        self.closed_orders.append(o.client_order_id)
        while len(self.closed_orders) > self.params.max_closed_orders:
            self.orders.pop(self.closed_orders.popleft(), None)

    def _a_bracket_closed(self, e: ev.BracketClosed) -> None:
        self.brackets.pop(e.signal_id, None)

    def _a_stop_moved(self, e: ev.StopMoved) -> None:
        b = self.brackets.get(e.signal_id)
        if b is not None:
            b.stop = e.new
            if e.reason == "break_even":
                b.break_even_done = True

    def _a_bracket_exit(self, e: ev.BracketExit) -> None:
        b = self.brackets.get(e.signal_id)
        if b is not None:
            b.state = BracketState.EXITING
            b.exit_reason = e.reason

    def _a_breakers_cleared(self, e: ev.BreakersCleared) -> None:
        if e.reason == "resume":
            self.breakers.resume(e.equity)
        self.breakers.clear(e.breakers)

    def _a_trade_closed(self, e: ev.TradeClosed) -> None:
        self.reliability.record(e.trade)
        self.breakers.record_trade_closed(e.trade.pnl)

    def _a_funding(self, e: ev.FundingPaid) -> None:
        self.accounting.apply_funding(e.symbol, e.rate, e.mark or None)

    # ================================================================ signals
    def on_signal(self, signal: Signal, ts: int) -> list[Any]:
        self._begin(ts)
        denial = self._check_signal(signal, ts)
        if isinstance(denial, Denial):
            self._emit(ev.SignalDenied(ts, signal.signal_id, signal.strategy, signal.symbol,
                                       denial.code, denial.message, dict(denial.figures)))
            return self._finish()
        sized = denial
        self._emit(ev.BracketOpened(ts, signal.signal_id, signal.strategy, signal.symbol, signal.side,
                                    signal.timeframe, sized.quantity, sized.entry, sized.stop,
                                    tuple(signal.targets), signal.confidence, sized.risk_amount))
        limit = self.params.entry_type is OrderType.LIMIT
        expire = ts + self.params.entry_ttl_bars * timeframe_ms(signal.timeframe) if limit else None
        self._submit(ev.OrderIntent(
            ts, client_order_id(signal.signal_id, "entry"), signal.symbol, signal.side,
            self.params.entry_type, sized.quantity, price=sized.entry if limit else None,
            tif=TimeInForce.GTD if limit else TimeInForce.GTC, expire_ts=expire,
            strategy=signal.strategy, signal_id=signal.signal_id, role="entry",
            intended_price=self.last_price.get(signal.symbol, sized.entry) if not limit else sized.entry))
        self._check_counters(ts)
        return self._finish()

    def _check_signal(self, s: Signal, ts: int) -> Denial | SizedOrder:
        """Every reason to say no, cheapest first; the sized order when all pass."""
        if s.signal_id in self.seen_signals:
            return deny(DenialCode.DUPLICATE_SIGNAL, f"signal {s.signal_id} was already handled")
        age, max_age = ts - s.ts_event, self.params.max_signal_age_bars * timeframe_ms(s.timeframe)
        if age > max_age:
            return deny(DenialCode.SIGNAL_STALE, f"signal is {age} ms old, more than {max_age} ms",
                        value=age, limit=max_age)
        state = self.state
        if state is not TradingState.ACTIVE:
            return self._state_denial(state, ts)
        if self.paused:
            return deny(DenialCode.TRADING_PAUSED, "trading is paused by the operator")
        if self.breakers.trades_left(ts) <= 0:
            return self._trade_count_denial(ts)
        rel = self.reliability.record_of(s.strategy)
        if rel.state is StrategyState.QUARANTINED:
            return deny(DenialCode.STRATEGY_QUARANTINED, f"strategy {s.strategy} is quarantined",
                        since_ts=rel.since_ts)
        for b in self.brackets.values():
            if b.symbol == s.symbol and (b.strategy == s.strategy or b.side is not s.side):
                return deny(DenialCode.POSITION_ALREADY_OPEN,
                            f"{b.strategy} already holds a {b.side.value} bracket on {s.symbol}",
                            signal_id=b.signal_id)
        d = check_feed(self.feed.get(s.symbol), self.exec_quality.score(self.params.venue, s.symbol),
                       self.params.risk.gates, self.params.require_feed_health)
        if d:
            return d
        price = self.last_price.get(s.symbol)
        if price is not None and (price - s.stop) * s.side.sign <= 0:
            return deny(DenialCode.STOP_ALREADY_HIT, f"price {price} is already through the stop {s.stop}",
                        price=price, stop=s.stop)
        equity = self.equity
        market = self.params.entry_type is OrderType.MARKET
        sized = size_signal(s, equity, self.instrument(s.symbol), self.params.risk.sizing,
                            self.reliability.scale(s.strategy), entry=price if market else None)
        if isinstance(sized, Denial):
            return sized
        d = self.rate.check(ts)
        if d:
            return d
        cand = Candidate(s.symbol, sized.notional, sized.risk_amount)
        d = check_portfolio(cand, self.open_risks(), equity, self.params.risk.gates,
                            self.correlation.cluster_of(s.symbol))
        return d if d else sized

    def _state_denial(self, state: TradingState, ts: int) -> Denial:
        trips = self.breakers.trips
        if set(trips) == {Breaker.TRADES_PER_DAY} and self.breakers.trades_left(ts) <= 0:
            return self._trade_count_denial(ts)  # say which limit, not just the state it set
        code = DenialCode.TRADING_HALTED if state is TradingState.HALTED else DenialCode.TRADING_REDUCING
        return deny(code, f"trading is {state.value}: no new entries",
                    trips=[t.breaker.value for t in trips.values()])

    def _trade_count_denial(self, ts: int) -> Denial:
        limit = self.breakers.params.max_trades_per_day
        done = limit - self.breakers.trades_left(ts)
        return deny(DenialCode.TRADES_PER_DAY,
                    f"{done} trades today reached the limit {limit}: no new entries until the "
                    "next UTC day (or a higher risk.max_trades_per_day)", value=done, limit=limit)

    # ================================================================ orders
    def _submit(self, intent: ev.OrderIntent) -> None:
        self._emit(intent)
        if self.broker is not None:
            self._reports.extend(self.broker.submit(self.orders[intent.client_order_id], intent.ts))

    def _cancel(self, coid: str, ts: int, reason: str) -> None:
        o = self.orders.get(coid)
        if o is None or o.status.terminal or o.status is OrderStatus.PENDING_CANCEL:
            return
        self._emit(ev.CancelRequested(ts, coid, reason))
        if self.broker is not None:
            self._reports.extend(self.broker.cancel(coid, ts))

    def on_venue_report(self, report: VenueReport) -> list[Any]:
        self._begin(report.ts)
        self._reports.append(report)
        return self._finish()

    def _drain(self) -> None:
        while self._reports:
            self._on_report(self._reports.popleft())

    def _on_report(self, r: VenueReport) -> None:
        o = self.orders.get(r.client_order_id)
        if o is None:
            self._emit(ev.OrderAnomaly(r.ts, r.client_order_id, "unknown_order", r.kind.value))
            return
        if r.kind is OE.FILL:
            if r.trade_id in o.trade_ids:
                return  # a duplicate report of a fill already applied
            if o.next_status(o.fill_event(r.quantity)) is None:
                self._emit(ev.OrderAnomaly(r.ts, o.client_order_id, "fill_in_" + o.status.value,
                                           r.trade_id))
                return
            if o.filled_qty + r.quantity > o.quantity * (1 + 1e-9) + QTY_EPS:
                raise InvariantViolation(f"overfill on {o.client_order_id}",
                                         client_order_id=o.client_order_id, trade_id=r.trade_id)
            self._emit(ev.OrderFilled(r.ts, o.client_order_id, r.trade_id, o.symbol, o.side, r.quantity,
                                      r.price, r.fee, r.liquidity, o.strategy, o.signal_id, o.role))
            self._book_closed_trades(r.ts)
        else:
            target = o.next_status(r.kind)
            if target is None:
                self._emit(ev.OrderAnomaly(r.ts, o.client_order_id, "invalid_transition",
                                           f"{r.kind.value} in {o.status.value}"))
                return
            self._emit(ev.OrderStatusChanged(r.ts, o.client_order_id, r.kind, target, r.reason,
                                             r.venue_order_id))
        b = self.brackets.get(o.signal_id)
        if b is not None:
            self._manage_after_order(b, o, r.ts)
        self._check_equity(r.ts)

    def _book_closed_trades(self, ts: int) -> None:
        closed, self._closed_pending = self._closed_pending, []
        for trade in closed:
            self._emit(ev.TradeClosed(ts, trade))
            change = self.reliability.evaluate(trade.strategy, ts)
            if change is not None:
                self._emit(ev.StrategyStateChanged(ts, change.strategy, change.old, change.new,
                                                   change.reason, dict(change.figures)))
        if closed:
            self._check_counters(ts)

    # ================================================================ brackets
    def _manage_after_order(self, b: Bracket, o: Order, ts: int) -> None:
        inst = self.instrument(b.symbol)
        if o.role == "entry":
            if b.state is BracketState.EXITING and o.filled_qty > 0:
                self._send_exit(b, ts)  # filled while we were getting out: get out of this too
            elif b.entry_done and b.state is BracketState.OPEN and not b.target_coids:
                for i, (price, qty) in enumerate(b.target_plan(self.params.brackets, inst)):
                    self._submit(ev.OrderIntent(
                        ts, client_order_id(b.signal_id, f"tp{i + 1}"), b.symbol, b.side.opposite(),
                        OrderType.LIMIT, qty, price=price, reduce_only=True, strategy=b.strategy,
                        signal_id=b.signal_id, role=f"tp{i + 1}", intended_price=price))
        elif o.role.startswith("tp"):
            be = b.break_even_stop(self.params.brackets, inst)
            if be is not None and b.state is BracketState.OPEN:
                self._emit(ev.StopMoved(ts, b.signal_id, b.stop, be, "break_even"))
        elif o.role.startswith("stop") and o.filled_qty > QTY_EPS:
            self._exit(b, "stop", ts, o.avg_fill_price)  # the venue stop fired: one cancels other
        elif (o.role.startswith("exit") and o.status.terminal and b.open_qty > QTY_EPS
              and not self._working(b.exit_coids) and len(b.exit_coids) < self.params.max_exit_attempts):
            self._send_exit(b, ts)  # an exit ended short of flat: try again, a bounded number of times
        self._sync_venue_stop(b, ts)
        self._maybe_close(b, ts)

    def _venue_stop_live(self, b: Bracket) -> bool:
        return self.params.brackets.venue_stops and any(
            self.orders[c].status in _LIVE_AT_VENUE for c in self._working(b.stop_coids))

    def _sync_venue_stop(self, b: Bracket, ts: int, min_move_ticks: int = 0) -> None:
        """Keep one reduce-only venue stop at the bracket's stop price for the held quantity."""
        if not self.params.brackets.venue_stops or b.state is not BracketState.OPEN:
            return
        inst = self.instrument(b.symbol)
        qty = inst.floor_qty(b.open_qty)
        working = self._working(b.stop_coids)
        if working:
            cur = self.orders[working[-1]]
            same_qty = abs(cur.leaves_qty - qty) <= QTY_EPS
            moved_ticks = abs((cur.trigger_price or 0.0) - b.stop) / inst.tick_size
            if same_qty and moved_ticks < max(0.5, min_move_ticks):
                return
        for coid in working:
            self._cancel(coid, ts, "stop_replaced")
        if qty <= QTY_EPS:
            return
        role = f"stop{len(b.stop_coids) + 1}"
        self._submit(ev.OrderIntent(ts, client_order_id(b.signal_id, role), b.symbol, b.side.opposite(),
                                    OrderType.STOP_MARKET, qty, trigger_price=b.stop, reduce_only=True,
                                    strategy=b.strategy, signal_id=b.signal_id, role=role,
                                    intended_price=b.stop))

    def _working(self, coids: Iterable[str]) -> list[str]:
        return [c for c in coids if c in self.orders and not self.orders[c].status.terminal]

    def _maybe_close(self, b: Bracket, ts: int) -> None:
        """Close the bracket once the entry is done and nothing is held any more."""
        if b.signal_id not in self.brackets or not b.entry_done:
            return
        if b.open_qty > QTY_EPS:
            stuck = (b.state is BracketState.EXITING and not self._working(b.exit_coids)
                     and len(b.exit_coids) >= self.params.max_exit_attempts)
            if not stuck:
                return
            # Out of exit attempts: the venue says there is nothing to reduce. Say so, close it.
            self._emit(ev.OrderAnomaly(ts, b.exit_coids[-1], "exit_attempts_exhausted",
                                       f"{b.signal_id} still books {b.open_qty}"))
        # Flat: nothing of this trade may stay at the venue, exits included (reduce-only
        # would stop them flipping the position, but an order left working is a loose end).
        for coid in self._working(b.target_coids + b.stop_coids + b.exit_coids + [b.entry_coid]):
            self._cancel(coid, ts, "bracket_closed")
        if b.exit_reason:
            reason = b.exit_reason
        elif b.filled_qty > QTY_EPS:
            reason = "targets"
        else:
            entry = self.orders.get(b.entry_coid)
            reason = "entry_" + (entry.status.value.lower() if entry else "gone")
        self._emit(ev.BracketClosed(ts, b.signal_id, reason))

    def _send_exit(self, b: Bracket, ts: int) -> None:
        pending = sum(self.orders[c].leaves_qty for c in self._working(b.exit_coids))
        rest = b.open_qty - pending
        # Whole lots; a sub-lot remainder (an odd venue fill) goes out as it is, so
        # nothing is left behind that no exit could ever close.
        qty = self.instrument(b.symbol).floor_qty(rest) or round(rest, 12)
        if qty <= QTY_EPS:
            return
        role = f"exit{len(b.exit_coids) + 1}"
        self._submit(ev.OrderIntent(ts, client_order_id(b.signal_id, role), b.symbol, b.side.opposite(),
                                    OrderType.MARKET, qty, reduce_only=True, strategy=b.strategy,
                                    signal_id=b.signal_id, role=role,
                                    intended_price=self.last_price.get(b.symbol, 0.0)))

    def _exit(self, b: Bracket, reason: str, ts: int, price: float = 0.0) -> None:
        if b.state in (BracketState.EXITING, BracketState.CLOSED):
            return
        self._emit(ev.BracketExit(ts, b.signal_id, reason, price))
        for coid in self._working([b.entry_coid] + b.target_coids + b.stop_coids):
            self._cancel(coid, ts, reason)
        self._send_exit(b, ts)
        self._maybe_close(b, ts)

    def _on_price(self, symbol: str, price: float, ts: int) -> None:
        """Local stops, trailing stops and marks at one price."""
        self._mark(symbol, price)
        trailing = self.params.brackets.trail_mode is not TrailMode.NONE
        for b in [b for b in self.brackets.values() if b.symbol == symbol]:
            if b.state is BracketState.PENDING:
                if b.stop_hit(price):
                    self._exit(b, "stop_before_entry", ts, price)
                continue
            if b.state is not BracketState.OPEN:
                continue
            new = b.trailing_stop(price, self.params.brackets, self.instrument(symbol),
                                  self._atr_of(symbol, b.timeframe)) if trailing else None
            if new is not None:
                self._emit(ev.StopMoved(ts, b.signal_id, b.stop, new, "trailing"))
                self._sync_venue_stop(b, ts, self.params.brackets.venue_stop_min_move_ticks)
            # With a venue stop acknowledged and working, the venue fires it; the local check
            # is the backstop for when none is (not acked yet, being replaced, canceled under us).
            if b.stop_hit(price) and not self._venue_stop_live(b):
                self._exit(b, "stop", ts, price)
        self._drain()
        self._check_equity(ts)

    def _mark(self, symbol: str, price: float) -> None:
        self.last_price[symbol] = price
        self.accounting.mark(symbol, price)

    def _atr_of(self, symbol: str, timeframe: str) -> float | None:
        a = self.atr.get(f"{symbol}|{timeframe}")
        return a.value if a is not None and a.n >= self.params.brackets.atr_period else None

    def invalidate(self, signal_id: str, ts: int, reason: str = "invalidated") -> list[Any]:
        """The structure behind a trade broke: get out of it."""
        self._begin(ts)
        b = self.brackets.get(signal_id)
        if b is not None:
            self._exit(b, reason, ts, self.last_price.get(b.symbol, 0.0))
        return self._finish()

    # ================================================================ market data
    def on_bar(self, bar: Bar) -> list[Any]:
        ts = bar.ts_event
        self._begin(ts)
        broker = self.broker
        if broker is None or self.params.fills_from is not FillSource.BARS:
            self._on_price(bar.symbol, bar.close, ts)
        elif self._quiet(bar.symbol, broker):
            self._walk_quiet(bar, broker, ts)
        else:
            self._walk(bar, broker, ts)
        if bar.complete:
            self.correlation.add_close(bar.symbol, bar.ts_open, bar.close)
        self._timeframe_close(bar, ts)
        self._funding(bar.symbol, ts)
        self.accounting.record_equity(ts)
        for strategy in self.reliability.quarantined():
            change = self.reliability.evaluate(strategy, ts)
            if change is not None:
                self._emit(ev.StrategyStateChanged(ts, strategy, change.old, change.new,
                                                   change.reason, dict(change.figures)))
        return self._finish()

    def _walk(self, bar: Bar, broker: PaperBroker, ts_close: int) -> None:
        """Trade the bar's intrabar path through the paper broker one price at a time, then its close.

        While no order or local stop of the symbol is within the path's reach
        (`_inert`) and the walk has caused nothing yet, a point can only note the
        trade, move the marks and check the breakers: there only the trade is
        noted and the breakers checked at the equity its price gives, and the
        marks move at the close (or at the first point that does more).
        """
        symbol = bar.symbol
        path = bar_path_points(bar, self._levels(symbol))
        prices = [p for p, _ in path]
        inert = self._inert(symbol, broker, min(prices), max(prices), path[-1][1])
        emitted = len(self._out)
        for i, (price, ts) in enumerate(path):
            if inert and len(self._out) == emitted and not self._reports:
                # Nothing a breaker trip does here reads this symbol's marks.
                broker.record_trade(symbol, price, ts)
                self._check_equity(ts, self.accounting.equity_at(symbol, price))
                if len(self._out) != emitted:
                    self._mark(symbol, price)
                continue
            inert = False
            size, aggressor = path_trade(bar, path, i)
            self._reports.extend(broker.trade(symbol, price, size, aggressor, ts))
            self._drain()
            self._on_price(symbol, price, ts)
        self._reports.extend(broker.advance(symbol, ts_close))
        # Inert to its end, the path's last point was checked at the close's price.
        settled = inert and len(self._out) == emitted
        self._close_bar(symbol, bar.close, ts_close, path[-1][1] // MS_PER_DAY if settled else None)

    def _close_bar(self, symbol: str, close: float, ts: int, settled_day: int | None) -> None:
        """The bar's close, at `ts`.

        `settled_day`: the walk changed nothing since a breaker check at the
        close's equity on that day, and no bracket of the symbol can act at the
        close's price. Then the close only moves the marks, unless it starts a day
        or reports wait; otherwise it is a full price point.
        """
        if settled_day is None or ts // MS_PER_DAY != settled_day or self._reports:
            self._on_price(symbol, close, ts)
        else:
            self._mark(symbol, close)

    def _inert(self, symbol: str, broker: PaperBroker, lo: float, hi: float, until_ts: int) -> bool:
        """No paper order or local stop of `symbol` can act on prices within [lo, hi] until `until_ts`.

        A stop hit is monotone in the price, so both ends of the range cover it;
        a trailing stop may move at any price, so an open trade that trails is never inert.
        """
        if not broker.idle_within(symbol, lo, hi, until_ts):
            return False
        trailing = self.params.brackets.trail_mode is not TrailMode.NONE
        for b in self.brackets.values():
            if b.symbol != symbol or b.state not in _GUARDED:
                continue
            if (trailing and b.state is BracketState.OPEN) or b.stop_hit(lo) or b.stop_hit(hi):
                return False
        return True

    def _quiet(self, symbol: str, broker: PaperBroker) -> bool:
        """Nothing on `symbol` can fill or move the equity: no bracket, no paper order, no position."""
        for b in self.brackets.values():
            if b.symbol == symbol:
                return False
        return not (broker.has_orders(symbol) or self.accounting.holds(symbol))

    def _walk_quiet(self, bar: Bar, broker: PaperBroker, ts_close: int) -> None:
        """`_walk` for a quiet symbol, stopping only at the path's points that can matter.

        With nothing to fill and the equity flat along the path, a point of it
        changes the symbol's marks and the broker's last trade, which the bar's
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
        one_day = first[1] // MS_PER_DAY == day
        for _, ts in [first] if one_day else _day_starts(bar_path_points(bar)):
            self._drain()
            self._check_equity(ts)
        broker.record_trade(bar.symbol, *last)
        self._close_bar(bar.symbol, bar.close, ts_close, day)

    def on_higher_timeframe_bar(self, bar: Bar) -> list[Any]:
        """A bar of a longer timeframe that the base bars already traded through.

        No fills and no price marks (its prices were already seen); it feeds the
        ATR of its timeframe and the time exits of trades on that timeframe.
        Correlation stays on the base bars, so every symbol is compared on the same clock.
        """
        ts = bar.ts_event
        self._begin(ts)
        self._timeframe_close(bar, ts)
        return self._finish()

    def _timeframe_close(self, bar: Bar, ts: int) -> None:
        if bar.complete:
            self._update_atr(bar)
        for b in [b for b in self.brackets.values() if b.symbol == bar.symbol
                  and b.timeframe == bar.timeframe]:
            if b.time_exit_due(ts, self.params.brackets, timeframe_ms(bar.timeframe)):
                self._exit(b, "time", ts, bar.close)

    def move_stop(self, signal_id: str, stop: float, ts: int, reason: str = "strategy") -> list[Any]:
        """A strategy tightens a trade's stop. A stop is never loosened; one already crossed exits now."""
        self._begin(ts)
        b = self.brackets.get(signal_id)
        if b is None or b.state not in (BracketState.OPEN, BracketState.PENDING):
            self._emit(ev.StopMoveRefused(ts, signal_id, stop, b.stop if b else 0.0, "no_open_trade"))
            return self._finish()
        new = self.instrument(b.symbol).round_price(stop, -b.sign)
        if (new - b.stop) * b.sign <= 0:
            self._emit(ev.StopMoveRefused(ts, signal_id, new, b.stop, "would_loosen"))
            return self._finish()
        self._emit(ev.StopMoved(ts, signal_id, b.stop, new, reason))
        price = self.last_price.get(b.symbol)
        if price is not None and b.stop_hit(price):
            self._exit(b, reason, ts, price)
        else:
            self._sync_venue_stop(b, ts)
        return self._finish()

    def _levels(self, symbol: str) -> list[float]:
        assert self.broker is not None
        levels = [b.stop for b in self.brackets.values() if b.symbol == symbol]
        for o in self.broker.orders.values():
            if o.symbol == symbol:
                levels += [x for x in (o.price, o.trigger_price) if x]
        return levels

    def _update_atr(self, bar: Bar) -> None:
        key = f"{bar.symbol}|{bar.timeframe}"
        a = self.atr.get(key)
        if a is None:
            a = self.atr[key] = _Atr()
        tr = bar.high - bar.low if a.n == 0 else max(bar.high, a.prev_close) - min(bar.low, a.prev_close)
        period = self.params.brackets.atr_period
        a.n += 1
        a.value = tr if a.n == 1 else a.value + (tr - a.value) / min(a.n, period)  # Wilder smoothing
        a.prev_close = bar.close

    def _funding(self, symbol: str, ts: int) -> None:
        if self.broker is None:
            return
        due = self.broker.funding_due(self.last_funding_ts, ts)
        self.last_funding_ts = ts
        if not due:
            return
        rate = self.params.paper.funding_rate
        mark = self.last_price.get(symbol, 0.0)
        for _ in range(due):
            amount = sum(p.quantity * mark * rate for p in self.accounting.positions.values()
                         if p.symbol == symbol)
            if amount:
                self._emit(ev.FundingPaid(ts, symbol, rate, amount, mark))

    def on_trade(self, tick: TradeTick) -> list[Any]:
        self._begin(tick.ts_event)
        if self.broker is not None and self.params.fills_from is FillSource.TICKS:
            self._reports.extend(self.broker.on_trade(tick))
            self._drain()
        self._on_price(tick.symbol, tick.price, tick.ts_event)
        return self._finish()

    def on_quote(self, q: Quote) -> list[Any]:
        self._begin(q.ts_event)
        if self.broker is not None and self.params.fills_from is FillSource.TICKS:
            self._reports.extend(self.broker.on_quote(q))
            self._drain()
        if q.bid > 0 and q.ask > 0 and not q.crossed:
            # Stops of longs are hit by the bid, of shorts by the ask: check the worse side.
            held = {b.side for b in self.brackets.values() if b.symbol == q.symbol}
            if Side.BUY in held:
                self._on_price(q.symbol, q.bid, q.ts_event)
            if Side.SELL in held:
                self._on_price(q.symbol, q.ask, q.ts_event)
            if not held:
                self.last_price[q.symbol] = q.mid
                self.accounting.mark(q.symbol, q.mid)
        return self._finish()

    def on_feed_health(self, h: FeedHealth) -> list[Any]:
        self._begin(h.ts_event)
        self.feed[h.symbol] = h
        return self._finish()

    def on_error(self, ts: int, source: str, detail: str) -> list[Any]:
        """A transient error somewhere (feed, venue): counted for the error-burst breaker."""
        self._begin(ts)
        self._emit(ev.ErrorRecorded(ts, source, detail))
        self._check_counters(ts)
        return self._finish()

    # ================================================================ breakers
    def _check_equity(self, ts: int, equity: float | None = None) -> None:
        """The equity breakers at `ts`, at the current equity (or at `equity`, what it is there).

        Skipped when it would find nothing: on the same UTC day and at the same
        equity as the last check, with no event applied and the same limits since,
        the peak and the trips already hold what this one would put there.
        """
        if equity is None:
            equity = self.accounting.equity
        breakers = self.breakers
        day = ts // MS_PER_DAY
        last = self._settled
        if last is not None and last[0] == day and last[1] == equity and last[2] is breakers.params:
            return
        self._check_breakers(ts, equity)
        self._settled = (day, equity, breakers.params)

    def _check_breakers(self, ts: int, equity: float) -> None:
        breakers = self.breakers
        if breakers.starts_day(ts):
            old = breakers.state
            cleared = breakers.roll_day(ts, equity)  # a new UTC day clears the daily breakers
            if cleared:
                self._emit(ev.BreakersCleared(ts, tuple(cleared), "daily_reset", equity))
                self._state_change(old, ts, "daily reset")
        breakers.mark_equity(ts, equity)
        for t in breakers.check_equity(ts, equity):
            self._trip(t)

    def _check_counters(self, ts: int) -> None:
        for t in self.breakers.check_counters(ts):
            self._trip(t)

    def _trip(self, t: Trip) -> None:
        old = self.state
        self._emit(ev.BreakerTripped(t.ts, t.breaker, t.state, t.reason, dict(t.figures)))
        self._state_change(old, t.ts, t.reason)
        if t.breaker not in _KEEPS_ENTRIES and self.state is not TradingState.ACTIVE:
            self._withdraw_entries(t.ts)

    def _state_change(self, old: TradingState, ts: int, reason: str) -> None:
        new = self.state
        if new is not old:
            self._emit(ev.TradingStateChanged(ts, old, new, reason))

    def _withdraw_entries(self, ts: int) -> None:
        """No new risk: entries that have not filled yet are withdrawn (none left: nothing to do)."""
        for b in list(self.brackets.values()):
            if b.state is BracketState.PENDING:
                self._exit(b, "trading_state", ts)
            elif not b.entry_done:
                self._cancel(b.entry_coid, ts, "trading_state")

    # ================================================================ commands
    def set_risk(self, params: RiskParams) -> None:
        """Swap the risk parameters (sizing, gates, breakers, reliability, execution quality).

        For a running engine or one unpickled with older settings. Counts, trips
        and history stay; every part holding a copy of the parameters takes the
        new ones. No event comes of it: new limits are judged at the next market
        event (the breaker-check cache is keyed on the limits object, and is
        dropped here too), a lower trade-count limit at the next signal.
        """
        if not isinstance(params, RiskParams):
            raise TypeError(f"set_risk needs a RiskParams, got {type(params).__name__}")
        if params == self.params.risk:
            return  # nothing changes: keep the identity the check cache is keyed on
        self.params = attrs.evolve(self.params, risk=params)
        self.breakers.set_params(params.breakers)
        self.reliability.params = params.reliability
        self.exec_quality.set_params(params.exec_quality)
        g = params.gates
        self.correlation.set_params(g.correlation_window, g.correlation_threshold)
        self.rate = OrderRateLimiter(g.max_orders_per_window, g.order_rate_window_ms, self.rate.history())
        self._settled = None

    def trip(self, breaker: Breaker, state: TradingState, reason: str,
             figures: dict[str, Any] | None = None, ts: int | None = None) -> list[Any]:
        """Trip `breaker` from outside the engine (reconciliation, an operator): events to persist.

        The same path as a breaker the engine trips itself: the trip, the
        state change it causes, and the withdrawal of entries not filled yet.
        A breaker already tripped stays as it is (no events).
        """
        if state is TradingState.ACTIVE:
            raise ValueError(f"a trip must set REDUCING or HALTED, not {state.value}")
        ts = self.last_ts if ts is None else ts
        self._begin(ts)
        if breaker not in self.breakers.trips:
            self._trip(Trip(breaker, state, reason, ts, dict(figures or {})))
        return self._finish()

    def pause(self, ts: int | None = None) -> list[Any]:
        ts = self.last_ts if ts is None else ts
        self._begin(ts)
        if not self.paused:
            self._emit(ev.Paused(ts, True))
        return self._finish()

    def resume(self, ts: int | None = None) -> list[Any]:
        """Operator resume: clears pause and every breaker trip, and restarts the drawdown peak."""
        ts = self.last_ts if ts is None else ts
        self._begin(ts)
        old = self.state
        if self.paused:
            self._emit(ev.Paused(ts, False))
        self._emit(ev.BreakersCleared(ts, tuple(self.breakers.trips), "resume", self.equity))
        self._state_change(old, ts, "operator resume")
        return self._finish()

    def halt(self, ts: int | None = None, reason: str = "operator halt") -> list[Any]:
        ts = self.last_ts if ts is None else ts
        self._begin(ts)
        self._trip(Trip(Breaker.OPERATOR, TradingState.HALTED, reason, ts))
        return self._finish()

    def flatten(self, symbol: str | None = None, ts: int | None = None) -> list[Any]:
        """Close every position (of `symbol`, or all) with reduce-only market orders."""
        ts = self.last_ts if ts is None else ts
        self._begin(ts)
        for b in list(self.brackets.values()):
            if symbol is None or b.symbol == symbol:
                self._exit(b, "flatten", ts, self.last_price.get(b.symbol, 0.0))
        covered = {(b.strategy, b.symbol) for b in self.brackets.values()}
        for p in list(self.accounting.positions.values()):
            if (symbol is None or p.symbol == symbol) and abs(p.quantity) > QTY_EPS and (
                    p.strategy, p.symbol) not in covered:
                side = Side.SELL if p.quantity > 0 else Side.BUY
                self._submit(ev.OrderIntent(
                    ts, client_order_id(f"flatten:{p.strategy}:{p.symbol}:{ts}", "flatten"), p.symbol,
                    side, OrderType.MARKET, abs(p.quantity), reduce_only=True, strategy=p.strategy,
                    role="flatten", intended_price=self.last_price.get(p.symbol, 0.0)))
        return self._finish()

    def kill(self, ts: int | None = None) -> list[Any]:
        """Kill switch: halt and flatten everything."""
        return self.halt(ts, "kill switch") + self.flatten(None, ts)

    # ================================================================ persistence
    def snapshot(self) -> dict[str, Any]:
        """Plain JSON-able state; `restore` on a fresh engine with the same params gives it back."""
        return {
            "version": 1,
            "last_ts": self.last_ts,
            "last_funding_ts": self.last_funding_ts,
            "paused": self.paused,
            "orders": [_conv.unstructure(o) for o in self.orders.values()],
            "closed_orders": list(self.closed_orders),
            "brackets": [_conv.unstructure(b) for b in self.brackets.values()],
            "seen_signals": list(self.seen_signals),
            "feed": [_conv.unstructure(h) for h in self.feed.values()],
            "last_price": dict(self.last_price),
            "atr": {k: _conv.unstructure(v) for k, v in self.atr.items()},
            "accounting": self.accounting.snapshot(),
            "breakers": self.breakers.snapshot(),
            "trips": [_conv.unstructure(t) for t in self.breakers.trips.values()],
            "reliability": {s: _conv.unstructure(r) for s, r in self.reliability.records.items()},
            "exec_quality": self.exec_quality.snapshot(),
            "correlation": self.correlation.snapshot(),
            "rate": self.rate.history(),
            "broker": self.broker.snapshot() if self.broker is not None else None,
        }

    def restore(self, data: dict[str, Any]) -> None:
        from fractald.core.risk.reliability import StrategyRecord

        if data.get("version") != 1:
            raise ValueError(f"unknown engine snapshot version {data.get('version')!r}; expected 1")
        self.last_ts = int(data["last_ts"])
        self.last_funding_ts = int(data["last_funding_ts"])
        self.paused = bool(data["paused"])
        self.orders = {o.client_order_id: o for o in
                       (_conv.structure(d, Order) for d in data["orders"])}
        self.closed_orders = collections.deque(data["closed_orders"])
        self.brackets = {b.signal_id: b for b in
                         (_conv.structure(d, Bracket) for d in data["brackets"])}
        self.seen_signals = collections.OrderedDict((s, None) for s in data["seen_signals"])
        self.feed = {h.symbol: h for h in (_conv.structure(d, FeedHealth) for d in data["feed"])}
        self.last_price = {k: float(v) for k, v in data["last_price"].items()}
        self.atr = {k: _conv.structure(v, _Atr) for k, v in data["atr"].items()}
        self.accounting.restore(data["accounting"])
        self.breakers.restore(data["breakers"])
        self.breakers.trips = {t.breaker: t for t in (_conv.structure(d, Trip) for d in data["trips"])}
        self.reliability.records = {s: _conv.structure(r, StrategyRecord)
                                    for s, r in data["reliability"].items()}
        self.exec_quality.restore(data["exec_quality"])
        self.correlation.restore(data["correlation"])
        self.rate = OrderRateLimiter(self.rate.limit, self.rate.window_ms, data["rate"])
        self._settled = None
        if self.broker is not None and data.get("broker") is not None:
            self.broker.restore(data["broker"])
        self._paper_dirty = False

    def _resync_paper(self) -> None:
        """After replaying ledger events, rebuild the paper book from the engine's orders.

        Queue places are not in the ledger, so a rebuilt resting order has an
        unknown queue (only a trade-through fills it): conservative.
        """
        assert self.broker is not None
        self._paper_dirty = False
        book: dict[str, PaperOrder] = {}
        for o in self.working_orders():
            triggered = o.status is OrderStatus.TRIGGERED
            book[o.client_order_id] = PaperOrder(
                o.client_order_id, o.symbol, o.side, o.order_type, o.quantity, o.price,
                o.trigger_price, o.tif, o.expire_ts, o.reduce_only, active_ts=o.ts_submitted,
                filled=o.filled_qty, triggered=triggered,
                resting=o.order_type is OrderType.LIMIT or (
                    triggered and o.order_type is OrderType.STOP_LIMIT))
        self.broker.orders = book
        positions: dict[str, float] = {}
        for pos in self.accounting.positions.values():
            positions[pos.symbol] = positions.get(pos.symbol, 0.0) + pos.quantity
        self.broker.positions = positions
