"""Signals to orders, and venue reports back to order events.

A signal goes to the entry decider (`decide_entry`: the risk ladder, cheapest
check first), whose events deny it with a coded reason or open a bracket with
its entry order. Orders go to the paper
broker in-process (or out as events for the router); each venue report
becomes an order event or an anomaly (`decide_report`), closed trades are booked, and the
order's bracket is moved on.

Relies on (see `EngineCore`): `_begin`/`_emit`/`_finish` (EngineApply),
`instrument`/`open_risks` (EngineState, through `decide_entry`),
`_manage_after_order` (EngineBrackets), `_check_equity`/`_check_counters`
(EngineBreakers).
"""

from __future__ import annotations

from typing import Any

from fractald.core.execution import events as ev
from fractald.core.execution._engine_core import EngineCore
from fractald.core.execution.decide_entry import entry_events
from fractald.core.execution.decide_report import report_event
from fractald.core.execution.orders import OrderEvent, OrderStatus
from fractald.core.execution.reports import VenueReport
from fractald.core.models import Signal

OE = OrderEvent


class EngineOrders(EngineCore):
    """Signals (through the entry decider), order submission and cancels, venue reports."""

    # ================================================================ signals
    def on_signal(self, signal: Signal, ts: int) -> list[Any]:
        """A strategy's signal: the entry decider's events (denied, or the trade and its entry)."""
        self._begin(ts)
        for event in entry_events(self, signal, ts):
            if isinstance(event, ev.OrderIntent):
                self._submit(event)
                self._check_counters(ts)
            else:
                self._emit(event)
        return self._finish()

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
        event = report_event(o, r)
        if event is None:
            return
        self._emit(event)
        if o is None or isinstance(event, ev.OrderAnomaly):
            return
        if isinstance(event, ev.OrderFilled):
            self._book_closed_trades(r.ts)
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
