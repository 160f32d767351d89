"""The engine's transition table: how each event changes its state, all in one place.

`evolve(state, event)` is the only way the engine's event-sourced state
changes, live (`EngineApply._run`: a decider yields, then evolve) and on a rebuild (`apply`: a
stored ledger event, evolved without deciding anything). `TRANSITIONS`
maps each event type to its transition; an event type not in it is a
lookup miss, refused with a clear error, never half-applied (h11's
`_state.py` is the model).

The state evolved here is the engine's slices: orders (and the closed-order
ring), brackets, seen signals, the account, breakers, strategy reliability,
execution quality, the order-rate window, the pause flag, the risk parameters. Market-derived
caches (marks, ATR, correlation windows, the paper book's queue places) are
not touched here: they follow market data, not events (see
`_engine_state.MARKET_DERIVED`).

Each transition is a function (state, event) -> None that updates those
slices. Orders, brackets and positions are frozen values: a transition puts
the next one in `state.orders` / `state.brackets` / the account's positions
(through `Accounting.apply_fill` / `apply_funding`, called only here), so a
decider holding an old one reads it again after a `yield`; a bracket's
market-derived best prices move only through `mark_best_prices` /
`mark_plan_best` here. A price moves no position (marks are the account's,
one per symbol). The breakers' event-sourced part is a frozen value too
(`BreakerCounts`, replaced by the `CircuitBreakers` methods called here;
its market-derived peak and day follow prices), and so are each
strategy's reliability record, each (venue, symbol)'s execution-quality
samples and the order-rate window (`s.rate`). Still updated in place: the
correlation windows (market data), the seen-signal and closed-order rings,
the pause flag and params (replaced whole); `evolve` returns the same
state it was given.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs

from fractald.core.execution import events as ev
from fractald.core.execution.accounting import TripContext
from fractald.core.execution.brackets import Bracket, BracketState
from fractald.core.execution.orders import RECOVERED, Order, OrderEvent, OrderStatus
from fractald.core.risk.breakers import Breaker, Trip
from fractald.core.risk.gates import OrderRateLimiter
from fractald.core.risk.reliability import StrategyChange

if TYPE_CHECKING:
    from fractald.core.execution._engine_core import EngineCore as State

OE = OrderEvent


def evolve(state: State, event: Any) -> State:
    """`state` after `event` (updated in place; see the module doc). Unknown events are refused."""
    transition = TRANSITIONS.get(type(event))
    if transition is None:
        raise ValueError(f"not an engine event: {type(event).__name__} (no transition for it)")
    transition(state, event)
    return state


def _nothing(s: State, e: Any) -> None:
    """Recorded for operators and the ledger; the state does not change."""


def _bracket_opened(s: State, e: ev.BracketOpened) -> None:
    s.brackets[e.signal_id] = Bracket(
        e.signal_id,
        e.strategy,
        e.symbol,
        e.side,
        e.timeframe,
        e.quantity,
        e.entry,
        e.stop,
        e.targets,
        e.confidence,
        e.ts,
        plan=e.plan,
    )
    seen = s.seen_signals
    seen[e.signal_id] = None
    while len(seen) > s.params.max_seen_signals:
        seen.popitem(last=False)
    # On a rebuild no price has rolled the day yet: count the trade on its own day.
    s.breakers.roll_day(e.ts, s.accounting.equity)
    s.breakers.record_trade_opened()


def _order_intent(s: State, e: ev.OrderIntent) -> None:
    o = Order(
        e.client_order_id,
        e.symbol,
        e.side,
        e.order_type,
        e.quantity,
        e.price,
        e.trigger_price,
        e.tif,
        e.expire_ts,
        e.reduce_only,
        e.strategy,
        e.signal_id,
        e.role,
        ts_created=e.ts,
        intended_price=e.intended_price,
        post_only=e.post_only,
    )
    _, o = o.apply(OE.SUBMIT, e.ts)
    s.orders[o.client_order_id] = o
    s.rate = s.rate.recorded(e.ts)
    b = s.brackets.get(e.signal_id)
    if b is None:
        return
    coid, role = e.client_order_id, e.role
    if role == "entry":
        b = attrs.evolve(b, entry_coid=coid)
    elif role.startswith("tp"):
        b = attrs.evolve(
            b,
            target_coids=(*b.target_coids, coid),
            target_qtys=(*b.target_qtys, e.quantity),
            target_filled=(*b.target_filled, 0.0),
        )
    elif role.startswith("exit"):
        b = attrs.evolve(b, exit_coids=(*b.exit_coids, coid))
    elif role.startswith("stop"):
        b = attrs.evolve(b, stop_coids=(*b.stop_coids, coid))
    else:
        return
    s.brackets[e.signal_id] = b


def _cancel_requested(s: State, e: ev.CancelRequested) -> None:
    o = s.orders.get(e.client_order_id)
    if o is not None:
        s.orders[e.client_order_id] = o.apply(OE.CANCEL_REQUEST, e.ts)[1]


def _order_status(s: State, e: ev.OrderStatusChanged) -> None:
    o = s.orders.get(e.client_order_id)
    if o is None:
        return
    before = o.status
    _, o = o.apply(e.event, e.ts, reason=e.reason, venue_order_id=e.venue_order_id)
    s.orders[e.client_order_id] = o
    _after_order(s, o, before)
    q, venue, sym = s.exec_quality, s.params.venue, o.symbol
    if e.event is OE.ACCEPT:
        if e.reason != RECOVERED:
            q.record_ack(venue, sym, e.ts - o.ts_submitted)
        q.record_submit_outcome(venue, sym, rejected=False)
    elif e.event is OE.REJECT:
        q.record_submit_outcome(venue, sym, rejected=True)
    elif e.event is OE.CANCEL_REJECT:
        q.record_cancel_outcome(venue, sym, failed=True)
    elif e.event is OE.CANCEL and before is OrderStatus.PENDING_CANCEL:
        q.record_cancel_outcome(venue, sym, failed=False)


def _order_filled(s: State, e: ev.OrderFilled) -> None:
    o = s.orders.get(e.client_order_id)
    before = OrderStatus.INITIALIZED
    if o is not None:
        first = o.filled_qty == 0
        before = o.status
        _, o = o.apply_fill(e.trade_id, e.quantity, e.price, e.fee, e.ts)
        s.orders[e.client_order_id] = o
        # Fill latency means something for orders that take liquidity, counted from when
        # they started to (`ts_marketable`): a market order from its submit, a stop-market
        # from its trigger; a resting limit, or a stop whose trigger the venue never
        # reported, waits for the market by design and is not counted.
        if first and o.ts_marketable:
            s.exec_quality.record_fill_latency(s.params.venue, o.symbol, e.ts - o.ts_marketable)
        if first and o.intended_price > 0:
            s.exec_quality.record_slippage(
                s.params.venue, o.symbol, o.side.sign, o.intended_price, e.price
            )
    b = s.brackets.get(e.signal_id)
    ctx = trip_context(s, e)
    if b is not None:
        s.brackets[e.signal_id] = (
            b.entry_filled(e.received, e.price, e.ts)  # the stops protect what is held
            if e.role == "entry"
            else b.reduce_filled(e.client_order_id, e.quantity)
        )
    # The round trips this fill closes are booked by the report decider (`TradeClosed`),
    # which knows them before the fill is applied (`Accounting.closed_by`).
    s.accounting.apply_fill(e.strategy, e.symbol, e.side, e.received, e.price, e.fee, e.ts, ctx)
    if o is not None:
        _after_order(s, o, before)


def trip_context(s: State, e: ev.OrderFilled) -> TripContext:
    """What the accounting needs to know about the trade fill `e` belongs to (a pure read)."""
    b = s.brackets.get(e.signal_id)
    if b is not None:
        if e.role == "entry":
            return TripContext(
                trip_id=b.signal_id,
                confidence=b.confidence,
                risk=abs(e.price - b.initial_stop) * e.received,
            )
        reason = (
            "target"
            if e.role.startswith("tp")
            else "stop"
            if e.role.startswith("stop")
            else (b.exit_reason or e.role)
        )
        return TripContext(exit_reason=reason)
    if e.role == "flatten":
        return TripContext(exit_reason="flatten")
    return TripContext()


def _after_order(s: State, o: Order, before: OrderStatus) -> None:
    """An order that just ended: its bracket's entry is done, and it joins the closed-order ring."""
    if before.terminal or not o.status.terminal:
        return
    b = s.brackets.get(o.signal_id)
    if b is not None and o.role == "entry":
        s.brackets[o.signal_id] = attrs.evolve(b, entry_done=True)
    s.closed_orders.append(o.client_order_id)
    while len(s.closed_orders) > s.params.max_closed_orders:
        s.orders.pop(s.closed_orders.popleft(), None)


def _stop_moved(s: State, e: ev.StopMoved) -> None:
    b = s.brackets.get(e.signal_id)
    if b is not None:
        s.brackets[e.signal_id] = attrs.evolve(
            b, stop=e.new, break_even_done=b.break_even_done or e.reason == "break_even"
        )


def _bracket_exit(s: State, e: ev.BracketExit) -> None:
    b = s.brackets.get(e.signal_id)
    if b is not None:
        s.brackets[e.signal_id] = attrs.evolve(b, state=BracketState.EXITING, exit_reason=e.reason)


def _bracket_closed(s: State, e: ev.BracketClosed) -> None:
    s.brackets.pop(e.signal_id, None)


def _breaker_tripped(s: State, e: ev.BreakerTripped) -> None:
    s.breakers.trip(Trip(e.breaker, e.state, e.reason, e.ts, dict(e.figures)))


def _breakers_cleared(s: State, e: ev.BreakersCleared) -> None:
    # Only what tripped is cleared (with its own count); the drawdown peak restarts only when
    # max_drawdown itself tripped, so pause + resume cannot disarm the drawdown breaker.
    s.breakers.clear(e.breakers)
    if e.reason == "resume" and Breaker.MAX_DRAWDOWN in e.breakers:
        s.breakers.peak_equity = e.equity


def _paused(s: State, e: ev.Paused) -> None:
    s.paused = e.paused


def _error_recorded(s: State, e: ev.ErrorRecorded) -> None:
    s.breakers.record_error(e.ts)


def _trade_closed(s: State, e: ev.TradeClosed) -> None:
    s.reliability.record(e.trade)
    s.breakers.record_trade_closed(e.trade.pnl)


def _strategy_state(s: State, e: ev.StrategyStateChanged) -> None:
    s.reliability.apply(StrategyChange(e.strategy, e.old, e.new, e.reason, e.ts, dict(e.figures)))


def _funding_paid(s: State, e: ev.FundingPaid) -> None:
    s.accounting.apply_funding(e.symbol, e.rate, e.mark or None)


def _risk_changed(s: State, e: ev.RiskChanged) -> None:
    """Every part holding a copy of the risk parameters takes the new ones; counts, trips and
    history stay (a lowered limit trips at the next check, a lower trade count at the next signal)."""
    risk = e.risk
    s.params = attrs.evolve(s.params, risk=risk)
    s.breakers.set_params(risk.breakers)
    s.reliability.params = risk.reliability
    s.exec_quality.set_params(risk.exec_quality)
    g = risk.gates
    s.correlation.set_params(g.correlation_window, g.correlation_threshold)
    s.rate = OrderRateLimiter(g.max_orders_per_window, g.order_rate_window_ms, s.rate.history())


# -- market-derived marks: not events (a price moves them), but brackets change only here ---


def mark_best_prices(s: State, symbol: str, price: float) -> None:
    """The best price of `symbol`'s open brackets after `price` (what trailing stops follow)."""
    brackets = s.brackets
    for sid, b in list(brackets.items()):
        if b.symbol == symbol and b.state is BracketState.OPEN:
            best = b.best_after(price)
            if best != b.best_price:
                brackets[sid] = attrs.evolve(b, best_price=best)


def mark_plan_best(s: State, signal_id: str, high: float, low: float) -> None:
    """The best bar extreme since the first fill, what a management plan trails (one bar's)."""
    b = s.brackets[signal_id]
    best = max(b.plan_best, high) if b.sign > 0 else min(b.plan_best, low)
    if best != b.plan_best:
        s.brackets[signal_id] = attrs.evolve(b, plan_best=best)


TRANSITIONS: dict[type, Callable[[Any, Any], None]] = {
    ev.SignalDenied: _nothing,
    ev.BracketOpened: _bracket_opened,
    ev.OrderIntent: _order_intent,
    ev.CancelRequested: _cancel_requested,
    ev.OrderStatusChanged: _order_status,
    ev.OrderFilled: _order_filled,
    ev.OrderAnomaly: _nothing,
    ev.StopMoveRefused: _nothing,
    ev.StopMoved: _stop_moved,
    ev.BracketExit: _bracket_exit,
    ev.BracketClosed: _bracket_closed,
    ev.BreakerTripped: _breaker_tripped,
    ev.BreakersCleared: _breakers_cleared,
    ev.TradingStateChanged: _nothing,  # derived from the trips; recorded for operators
    ev.Paused: _paused,
    ev.ErrorRecorded: _error_recorded,
    ev.TradeClosed: _trade_closed,
    ev.StrategyStateChanged: _strategy_state,
    ev.FundingPaid: _funding_paid,
    ev.RiskChanged: _risk_changed,
}
