"""Brackets: the orders that manage one trade, and the stops that guard it.

Each order event moves its bracket on: targets after the entry fills,
break-even after a target, one-cancels-other after a venue stop, bounded
exit retries, a venue stop kept at the bracket's stop; a bracket closes once
the entry is done and nothing is held. Prices drive the local and trailing
stops (`_on_price`); strategies tighten stops (`move_stop`) or invalidate
trades.

Relies on (see `EngineCore`): `_begin`/`_emit`/`_finish` (EngineApply),
`instrument` (EngineState), `_submit`/`_cancel`/`_drain` (EngineOrders),
`_check_equity` (EngineBreakers).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fractald.core.execution import events as ev
from fractald.core.execution._engine_core import EngineCore
from fractald.core.execution.brackets import Bracket, BracketState, TrailMode
from fractald.core.execution.orders import QTY_EPS, Order, OrderStatus, OrderType, client_order_id

_LIVE_AT_VENUE = frozenset({OrderStatus.ACCEPTED, OrderStatus.TRIGGERED, OrderStatus.PARTIALLY_FILLED,
                            OrderStatus.PENDING_UPDATE})


class EngineBrackets(EngineCore):
    """Bracket management after each order event; local, trailing and strategy stops."""

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
