"""The bracket decider: what each order event, price and strategy request means for a trade.

Targets after the entry fills, break-even after a target, one-cancels-other
after a venue stop, bounded exit retries, a venue stop kept at the
bracket's stop; a bracket closes once the entry is done and nothing is
held. Prices drive the local and trailing stops; the trade's timeframe bars
end it on time. A trade opened with a strategy's management plan
(`Bracket.plan`, see `management.py`) is also run by that plan at each bar
(`manage`): invalidation, time exit, break-even and trailing by R. The
operator (or anything else) may still tighten a stop (`move_stop`) or end a
trade (`invalidate`).

Every decider here is a generator over the engine's state: it reads the
state and yields events, and never changes anything. The engine's driver
(`_engine_apply.EngineApply._run`) evolves the state by each event before
the decider resumes, so a read after a `yield` sees that event applied
(an exit's close check sees the exit order it just sent), exactly as a
replay of the same events would. Brackets are frozen values, so a decider
reads its bracket again (`now`) after each `yield` that may have changed it. Orders yielded here go to the venue
(the paper broker in-process, or out through the router) from the driver.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from fractald.core.execution import events as ev
from fractald.core.execution.brackets import Bracket, BracketState, TrailMode
from fractald.core.execution.orders import QTY_EPS, Order, OrderStatus, OrderType, client_order_id
from fractald.core.models import Bar, timeframe_ms

if TYPE_CHECKING:
    from fractald.core.execution._engine_core import EngineCore as State

Decision = Iterator[Any]

_LIVE_AT_VENUE = frozenset(
    {
        OrderStatus.ACCEPTED,
        OrderStatus.TRIGGERED,
        OrderStatus.PARTIALLY_FILLED,
        OrderStatus.PENDING_UPDATE,
    }
)


def now(s: State, b: Bracket) -> Bracket:
    """`b` as the state holds it now (the last value it had, once it is closed and gone)."""
    return s.brackets.get(b.signal_id, b)


def working(s: State, coids: Iterable[str]) -> list[str]:
    """The orders among `coids` that are still working (known and not terminal)."""
    orders = s.orders
    return [c for c in coids if c in orders and not orders[c].status.terminal]


def cancel(s: State, coid: str, ts: int, reason: str) -> Decision:
    """Ask the venue to cancel `coid`, unless it is gone, done, or being canceled already."""
    o = s.orders.get(coid)
    if o is None or o.status.terminal or o.status is OrderStatus.PENDING_CANCEL:
        return
    yield ev.CancelRequested(ts, coid, reason)


def after_order(s: State, b: Bracket, o: Order, ts: int) -> Decision:
    """Move bracket `b` on after an event of its order `o`."""
    inst = s.instrument(b.symbol)
    params = s.params
    if o.role == "entry":
        if b.state is BracketState.EXITING and o.filled_qty > 0:
            yield from send_exit(s, b, ts)  # filled while we were getting out: get out of this too
        elif (
            b.entry_done
            and b.state is BracketState.OPEN
            and not b.target_coids
            and not params.brackets.local_targets
        ):
            for i, (price, qty) in enumerate(b.target_plan(params.brackets, inst)):
                yield _closing_order(b, ts, f"tp{i + 1}", OrderType.LIMIT, qty, price, price=price)
    elif o.role.startswith("tp"):
        be = b.break_even_stop(params.brackets, inst)
        if be is not None and b.state is BracketState.OPEN:
            yield ev.StopMoved(ts, b.signal_id, b.stop, be, "break_even")
    elif o.role.startswith("stop") and o.filled_qty > QTY_EPS:
        yield from exit_trade(s, b, "stop", ts, o.avg_fill_price)  # the venue stop fired: OCO
    elif (
        o.role.startswith("exit")
        and o.status.terminal
        and b.open_qty > QTY_EPS
        and not working(s, b.exit_coids)
        and len(b.exit_coids) < params.max_exit_attempts
    ):
        yield from send_exit(
            s, b, ts
        )  # an exit ended short of flat: try again, a bounded number of times
    # (The guards repeat the deciders' own first checks: every report passes here, and a
    # generator not made is cheaper than one that yields nothing.)
    b = now(s, b)
    if params.brackets.venue_stops:
        yield from sync_venue_stop(s, b, ts)
        b = now(s, b)
    if b.entry_done:
        yield from maybe_close(s, b, ts)


def venue_stop_live(s: State, b: Bracket) -> bool:
    return s.params.brackets.venue_stops and any(
        s.orders[c].status in _LIVE_AT_VENUE for c in working(s, b.stop_coids)
    )


def _closing_order(
    b: Bracket,
    ts: int,
    role: str,
    order_type: OrderType,
    qty: float,
    intended_price: float,
    *,
    price: float | None = None,
    trigger_price: float | None = None,
) -> ev.OrderIntent:
    """A reduce-only order against the bracket's position, its id derived from the trade's and `role`."""
    return ev.OrderIntent(
        ts,
        client_order_id(b.signal_id, role),
        b.symbol,
        b.side.opposite(),
        order_type,
        qty,
        price=price,
        trigger_price=trigger_price,
        reduce_only=True,
        strategy=b.strategy,
        signal_id=b.signal_id,
        role=role,
        intended_price=intended_price,
    )


def sync_venue_stop(s: State, b: Bracket, ts: int, min_move_ticks: int = 0) -> Decision:
    """Keep one reduce-only venue stop at the bracket's stop price for the held quantity."""
    if not s.params.brackets.venue_stops or b.state is not BracketState.OPEN:
        return
    if s.params.brackets.local_targets and working(s, b.target_coids):
        return  # a target's exit is selling what the stop would lock: the stop follows it
    inst = s.instrument(b.symbol)
    qty = inst.floor_qty(b.open_qty)
    live = working(s, b.stop_coids)
    if live:
        cur = s.orders[live[-1]]
        same_qty = abs(cur.leaves_qty - qty) <= QTY_EPS
        moved_ticks = abs((cur.trigger_price or 0.0) - b.stop) / inst.tick_size
        if same_qty and moved_ticks < max(0.5, min_move_ticks):
            return
    for coid in live:
        yield from cancel(s, coid, ts, "stop_replaced")
    if qty <= QTY_EPS:
        return
    role = f"stop{len(b.stop_coids) + 1}"
    yield _closing_order(b, ts, role, OrderType.STOP_MARKET, qty, b.stop, trigger_price=b.stop)


def maybe_close(s: State, b: Bracket, ts: int) -> Decision:
    """Close the bracket once the entry is done and nothing is held any more."""
    if b.signal_id not in s.brackets or not b.entry_done:
        return
    if b.open_qty > QTY_EPS:
        stuck = (
            b.state is BracketState.EXITING
            and not working(s, b.exit_coids)
            and len(b.exit_coids) >= s.params.max_exit_attempts
        )
        if not stuck:
            return
        # Out of exit attempts: the venue says there is nothing to reduce. Say so, close it.
        yield ev.OrderAnomaly(
            ts,
            b.exit_coids[-1],
            "exit_attempts_exhausted",
            f"{b.signal_id} still books {b.open_qty}",
        )
    # Flat: nothing of this trade may stay at the venue, exits included (reduce-only
    # would stop them flipping the position, but an order left working is a loose end).
    for coid in working(s, (*b.target_coids, *b.stop_coids, *b.exit_coids, b.entry_coid)):
        yield from cancel(s, coid, ts, "bracket_closed")
    if b.exit_reason:
        reason = b.exit_reason
    elif b.filled_qty > QTY_EPS:
        reason = "targets"
    else:
        entry = s.orders.get(b.entry_coid)
        reason = "entry_" + (entry.status.value.lower() if entry else "gone")
    yield ev.BracketClosed(ts, b.signal_id, reason)


def send_exit(s: State, b: Bracket, ts: int) -> Decision:
    """A reduce-only market order for what the bracket holds beyond the exits already working."""
    pending = sum(s.orders[c].leaves_qty for c in working(s, b.exit_coids))
    rest = b.open_qty - pending
    # Whole lots; a sub-lot remainder (an odd venue fill) goes out as it is, so
    # nothing is left behind that no exit could ever close.
    qty = s.instrument(b.symbol).floor_qty(rest) or round(rest, 12)
    if qty <= QTY_EPS:
        return
    role = f"exit{len(b.exit_coids) + 1}"
    yield _closing_order(b, ts, role, OrderType.MARKET, qty, s.last_price.get(b.symbol, 0.0))


def exit_trade(s: State, b: Bracket, reason: str, ts: int, price: float = 0.0) -> Decision:
    """Get out of the trade: cancel its entry, targets and stops, send the exit (once)."""
    if b.state in (BracketState.EXITING, BracketState.CLOSED):
        return
    yield ev.BracketExit(ts, b.signal_id, reason, price)
    for coid in working(s, (b.entry_coid, *b.target_coids, *b.stop_coids)):
        yield from cancel(s, coid, ts, reason)
    yield from send_exit(s, now(s, b), ts)
    yield from maybe_close(s, now(s, b), ts)


def price_stops(s: State, symbol: str, price: float, ts: int) -> Decision:
    """Local stops and trailing stops of `symbol`'s trades at one price (already marked)."""
    bp = s.params.brackets
    trailing = bp.trail_mode is not TrailMode.NONE
    for b in [b for b in s.brackets.values() if b.symbol == symbol]:
        if b.state is BracketState.PENDING:
            if b.stop_hit(price):
                yield from exit_trade(s, b, "stop_before_entry", ts, price)
            continue
        if b.state is not BracketState.OPEN:
            continue
        new = (
            b.trailing_stop(price, bp, s.instrument(symbol), atr_of(s, symbol, b.timeframe))
            if trailing
            else None
        )
        if new is not None:
            yield ev.StopMoved(ts, b.signal_id, b.stop, new, "trailing")
            yield from sync_venue_stop(s, now(s, b), ts, bp.venue_stop_min_move_ticks)
            b = now(s, b)
        # With a venue stop acknowledged and working, the venue fires it; the local check
        # is the backstop for when none is (not acked yet, being replaced, canceled under us).
        if b.stop_hit(price) and not venue_stop_live(s, b):
            yield from exit_trade(s, b, "stop", ts, price)
        elif bp.local_targets and b.state is BracketState.OPEN:
            yield from local_target(s, b, price, ts)


def local_target(s: State, b: Bracket, price: float, ts: int) -> Decision:
    """The next target kept here, once the price reaches it: its share at market, reduce-only,
    after taking the venue stop off (on spot the stop locks the whole balance)."""
    if working(s, b.target_coids) or working(s, b.exit_coids):
        return
    plan = b.target_plan(s.params.brackets, s.instrument(b.symbol))
    i = len(b.target_coids)
    if i >= len(plan) or (price - plan[i][0]) * b.sign < 0:
        return
    qty = b.open_qty if i == len(plan) - 1 else min(plan[i][1], b.open_qty)
    if qty <= QTY_EPS:
        return
    for coid in working(s, b.stop_coids):
        yield from cancel(s, coid, ts, "target_reached")
    role = f"tp{i + 1}"
    yield _closing_order(b, ts, role, OrderType.MARKET, round(qty, 12), plan[i][0])


def atr_of(s: State, symbol: str, timeframe: str) -> float | None:
    a = s.atr.get(f"{symbol}|{timeframe}")
    return a.value if a is not None and a.n >= s.params.brackets.atr_period else None


def time_exits(s: State, symbol: str, timeframe: str, ts: int, close: float) -> Decision:
    """Trades on `timeframe` whose holding time is up at this bar's close."""
    tf_ms = timeframe_ms(timeframe)
    for b in [b for b in s.brackets.values() if b.symbol == symbol and b.timeframe == timeframe]:
        if b.time_exit_due(ts, s.params.brackets, tf_ms):
            yield from exit_trade(s, b, "time", ts, close)


def invalidate(s: State, signal_id: str, ts: int, reason: str) -> Decision:
    """The structure behind a trade broke: get out of it."""
    b = s.brackets.get(signal_id)
    if b is not None:
        yield from exit_trade(s, b, reason, ts, s.last_price.get(b.symbol, 0.0))


def move_stop(s: State, signal_id: str, stop: float, ts: int, reason: str) -> Decision:
    """A strategy tightens a trade's stop. A stop is never loosened; one already crossed exits now."""
    b = s.brackets.get(signal_id)
    if b is None or b.state not in (BracketState.OPEN, BracketState.PENDING):
        yield ev.StopMoveRefused(ts, signal_id, stop, b.stop if b else 0.0, "no_open_trade")
        return
    new = s.instrument(b.symbol).round_price(stop, -b.sign)
    if (new - b.stop) * b.sign <= 0:
        yield ev.StopMoveRefused(ts, signal_id, new, b.stop, "would_loosen")
        return
    yield ev.StopMoved(ts, signal_id, b.stop, new, reason)
    b = now(s, b)
    price = s.last_price.get(b.symbol)
    if price is not None and b.stop_hit(price):
        yield from exit_trade(s, b, reason, ts, price)
    else:
        yield from sync_venue_stop(s, b, ts)


def manage(s: State, b: Bracket, bar: Bar) -> Decision:
    """Run the trade's management plan at one closed bar (its first fill seen, `plan_best` marked).

    Exit when a close of the plan's timeframe is beyond its invalidation level
    or when its time is up; else tighten the stop to break-even or the trail,
    judged against the trade's own stop on the instrument's ticks (a move that
    rounds to no tightening is not asked for).
    """
    plan = b.plan
    if plan is None or b.filled_qty <= 0:
        return
    ts = bar.ts_event
    why = plan.exit_reason(b.side, b.ts_first_fill, bar.timeframe, ts, bar.close)
    if why:
        yield from invalidate(s, b.signal_id, ts, f"strategy_{why}")
        return
    tighter = plan.tighter_stop(b.side, b.avg_entry, b.stop, b.plan_best)
    if tighter is None:
        return
    stop, reason = tighter
    if (s.instrument(b.symbol).round_price(stop, -b.sign) - b.stop) * b.sign > 0:
        yield from move_stop(s, b.signal_id, stop, ts, reason)
