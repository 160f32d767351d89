"""Event plumbing and the appliers: the only code that changes engine state, and only from an event.

`_emit` applies an event, then records it for the caller; `apply` (the
rebuild path) applies a ledger event without deciding anything new. Each
`_a_*` applier is the whole effect of one event type on the engine.

Relies on (see `EngineCore`): `_drain` (EngineOrders) to finish a step,
`_resync_paper` and `equity` (EngineState).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fractald.core.execution import events as ev
from fractald.core.execution._engine_core import EngineCore
from fractald.core.execution.accounting import TripContext
from fractald.core.execution.brackets import Bracket, BracketState
from fractald.core.execution.orders import Order, OrderEvent, OrderStatus, OrderType
from fractald.core.risk.breakers import Trip
from fractald.core.risk.reliability import StrategyChange

OE = OrderEvent


class EngineApply(EngineCore):
    """Event plumbing (`_begin`, `_emit`, `_finish`, `apply`) and the appliers."""

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
