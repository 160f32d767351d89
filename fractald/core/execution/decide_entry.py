"""The entry decider: a signal and the engine's state in, the events of taking it (or not) out.

The risk ladder, cheapest check first: duplicate, stale, trading state,
pause, the day's trade count, quarantine, one bracket per symbol and side,
feed and execution quality, a stop already crossed, sizing, the order rate,
portfolio heat and exposure. The first that says no is the `SignalDenied`;
when all pass, the trade's plan (`BracketOpened`) and its entry order
(`OrderIntent`). A pure read of the state: the engine evolves by these
events afterwards (`TradingEngine.on_signal`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fractald.core.execution import events as ev
from fractald.core.execution.management import ManagementPlan
from fractald.core.execution.orders import OrderType, TimeInForce, client_order_id
from fractald.core.models import Side, Signal, timeframe_ms
from fractald.core.risk.breakers import Breaker, TradingState
from fractald.core.risk.denial import Denial, DenialCode, deny
from fractald.core.risk.gates import Candidate, check_feed, check_portfolio
from fractald.core.risk.reliability import StrategyState
from fractald.core.risk.sizing import SizedOrder, size_signal

if TYPE_CHECKING:
    from fractald.core.execution._engine_core import EngineCore as State


def entry_events(
    s: State, signal: Signal, ts: int, plan: ManagementPlan | None = None
) -> list[Any]:
    """[SignalDenied], or [BracketOpened (carrying `plan`), OrderIntent] for the entry."""
    checked = check_signal(s, signal, ts)
    if isinstance(checked, Denial):
        return [
            ev.SignalDenied(
                ts,
                signal.signal_id,
                signal.strategy,
                signal.symbol,
                checked.code,
                checked.message,
                dict(checked.figures),
            )
        ]
    sized, p = checked, s.params
    post_only = signal.post_only or p.post_only_entries
    limit = p.entry_type is OrderType.LIMIT or post_only
    expire = ts + p.entry_ttl_bars * timeframe_ms(signal.timeframe) if limit else None
    return [
        ev.BracketOpened(
            ts,
            signal.signal_id,
            signal.strategy,
            signal.symbol,
            signal.side,
            signal.timeframe,
            sized.quantity,
            sized.entry,
            sized.stop,
            tuple(signal.targets),
            signal.confidence,
            sized.risk_amount,
            plan,
        ),
        ev.OrderIntent(
            ts,
            client_order_id(signal.signal_id, "entry"),
            signal.symbol,
            signal.side,
            OrderType.LIMIT if limit else p.entry_type,
            sized.quantity,
            price=sized.entry if limit else None,
            tif=TimeInForce.GTD if limit else TimeInForce.GTC,
            expire_ts=expire,
            strategy=signal.strategy,
            signal_id=signal.signal_id,
            role="entry",
            intended_price=s.last_price.get(signal.symbol, sized.entry)
            if not limit
            else sized.entry,
            post_only=post_only,
        ),
    ]


def check_signal(st: State, s: Signal, ts: int) -> Denial | SizedOrder:
    """Every reason to say no, cheapest first; the sized order when all pass."""
    p = st.params
    if s.signal_id in st.seen_signals:
        return deny(DenialCode.DUPLICATE_SIGNAL, f"signal {s.signal_id} was already handled")
    age, max_age = ts - s.ts_event, p.max_signal_age_bars * timeframe_ms(s.timeframe)
    if age > max_age:
        return deny(
            DenialCode.SIGNAL_STALE,
            f"signal is {age} ms old, more than {max_age} ms",
            value=age,
            limit=max_age,
        )
    if p.long_only and s.side is Side.SELL:
        return deny(
            DenialCode.LONG_ONLY,
            f"{s.symbol}: the venue ({p.venue}) holds only what was bought; it cannot sell short",
        )
    state = st.breakers.state
    if state is not TradingState.ACTIVE:
        return _state_denial(st, state, ts)
    if st.paused:
        return deny(DenialCode.TRADING_PAUSED, "trading is paused by the operator")
    if st.breakers.trades_left(ts) <= 0:
        return _trade_count_denial(st, ts)
    rel = st.reliability.record_of(s.strategy)
    if rel.state is StrategyState.QUARANTINED:
        return deny(
            DenialCode.STRATEGY_QUARANTINED,
            f"strategy {s.strategy} is quarantined",
            since_ts=rel.since_ts,
        )
    for b in st.brackets.values():
        if b.symbol == s.symbol and (b.strategy == s.strategy or b.side is not s.side):
            return deny(
                DenialCode.POSITION_ALREADY_OPEN,
                f"{b.strategy} already holds a {b.side.value} bracket on {s.symbol}",
                signal_id=b.signal_id,
            )
    d = check_feed(
        st.feed.get(s.symbol),
        st.exec_quality.score(p.venue, s.symbol),
        p.risk.gates,
        p.require_feed_health,
    )
    if d:
        return d
    price = st.last_price.get(s.symbol)
    if price is not None and (price - s.stop) * s.side.sign <= 0:
        return deny(
            DenialCode.STOP_ALREADY_HIT,
            f"price {price} is already through the stop {s.stop}",
            price=price,
            stop=s.stop,
        )
    equity = st.accounting.equity
    market = p.entry_type is OrderType.MARKET and not (s.post_only or p.post_only_entries)
    sized = size_signal(
        s,
        equity,
        st.instrument(s.symbol),
        p.risk.sizing,
        st.reliability.scale(s.strategy),
        entry=price if market else None,
    )
    if isinstance(sized, Denial):
        return sized
    d = st.rate.check(ts)
    if d:
        return d
    cand = Candidate(s.symbol, sized.notional, sized.risk_amount)
    d = check_portfolio(
        cand, st.open_risks(), equity, p.risk.gates, st.correlation.cluster_of(s.symbol)
    )
    return d if d else sized


def _state_denial(st: State, state: TradingState, ts: int) -> Denial:
    trips = st.breakers.trips
    if set(trips) == {Breaker.TRADES_PER_DAY} and st.breakers.trades_left(ts) <= 0:
        return _trade_count_denial(st, ts)  # say which limit, not just the state it set
    code = (
        DenialCode.TRADING_HALTED if state is TradingState.HALTED else DenialCode.TRADING_REDUCING
    )
    return deny(
        code,
        f"trading is {state.value}: no new entries",
        trips=[t.breaker.value for t in trips.values()],
    )


def _trade_count_denial(st: State, ts: int) -> Denial:
    limit = st.breakers.params.max_trades_per_day
    done = limit - st.breakers.trades_left(ts)
    return deny(
        DenialCode.TRADES_PER_DAY,
        f"{done} trades today reached the limit {limit}: no new entries until the "
        "next UTC day (or a higher risk.max_trades_per_day)",
        value=done,
        limit=limit,
    )
