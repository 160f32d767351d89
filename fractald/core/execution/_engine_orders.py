"""Signals to orders, and venue reports back to order events.

A signal passes the risk checks, cheapest first (or is denied, with a coded
reason), and opens a bracket with its entry order. Orders go to the paper
broker in-process (or out as events for the router); each venue report
becomes an order event (or an anomaly), closed trades are booked, and the
order's bracket is moved on.

Relies on (see `EngineCore`): `_begin`/`_emit`/`_finish` (EngineApply),
`state`/`equity`/`instrument`/`open_risks` (EngineState),
`_manage_after_order` (EngineBrackets), `_check_equity`/`_check_counters`
(EngineBreakers).
"""

from __future__ import annotations

from typing import Any

from fractald.core.execution import events as ev
from fractald.core.execution._engine_core import EngineCore
from fractald.core.execution.orders import (
    QTY_EPS,
    OrderEvent,
    OrderStatus,
    OrderType,
    TimeInForce,
    client_order_id,
)
from fractald.core.execution.reports import VenueReport
from fractald.core.models import Signal, timeframe_ms
from fractald.core.risk.breakers import Breaker, TradingState
from fractald.core.risk.denial import Denial, DenialCode, deny
from fractald.core.risk.gates import Candidate, check_feed, check_portfolio
from fractald.core.risk.reliability import StrategyState
from fractald.core.risk.sizing import SizedOrder, size_signal
from fractald.errors import InvariantViolation

OE = OrderEvent


class EngineOrders(EngineCore):
    """Signals (risk checks, sizing), order submission and cancels, venue reports."""

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
