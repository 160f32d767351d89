"""The operator-command decider: pause, resume, halt, flatten, trip, set_risk as events.

Each command is a generator over the engine's state, like the other
deciders: it reads the state and yields the events the command makes,
which the engine applies through `evolve`, so a replay of the ledger
carries every command (a `RiskChanged` applies the limits in force at each
point). The kill switch is a halt and then a flatten (`TradingEngine.kill`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fractald.core.execution import events as ev
from fractald.core.execution.decide_brackets import Decision, exit_trade
from fractald.core.execution.decide_breakers import state_change, trip
from fractald.core.execution.orders import QTY_EPS, OrderType, client_order_id
from fractald.core.models import Side
from fractald.core.risk.breakers import Breaker, TradingState, Trip
from fractald.core.risk.params import RiskParams

if TYPE_CHECKING:
    from fractald.core.execution._engine_core import EngineCore as State


def set_risk(s: State, params: RiskParams, ts: int, reason: str) -> list[Any]:
    """New risk parameters (sizing, gates, breakers, reliability, execution quality); none if equal.

    A plain list, checked at once: a wrong type is refused before anything runs.
    """
    if not isinstance(params, RiskParams):
        raise TypeError(f"set_risk needs a RiskParams, got {type(params).__name__}")
    return [] if params == s.params.risk else [ev.RiskChanged(ts, params, reason)]


def check_trip(state: TradingState) -> None:
    """A trip from outside must stop something: refused at once (before the command runs) if not."""
    if state is TradingState.ACTIVE:
        raise ValueError(f"a trip must set REDUCING or HALTED, not {state.value}")


def trip_breaker(
    s: State,
    breaker: Breaker,
    state: TradingState,
    reason: str,
    figures: dict[str, Any] | None,
    ts: int,
) -> Decision:
    """Trip `breaker` from outside (reconciliation, an operator); one already tripped stays as it is.

    `check_trip(state)` first: a generator would only refuse once it runs.
    """
    if breaker not in s.breakers.trips:
        yield from trip(s, Trip(breaker, state, reason, ts, dict(figures or {})))


def pause(s: State, ts: int) -> Decision:
    if not s.paused:
        yield ev.Paused(ts, True)


def resume(s: State, ts: int) -> Decision:
    """Clear the pause and the breakers that tripped (the drawdown peak restarts only if
    max_drawdown is one of them)."""
    old = s.breakers.state
    if s.paused:
        yield ev.Paused(ts, False)
    yield ev.BreakersCleared(ts, tuple(s.breakers.trips), "resume", s.accounting.equity)
    yield from state_change(s, old, ts, "operator resume")


def halt(s: State, ts: int, reason: str, breaker: Breaker) -> Decision:
    yield from trip(s, Trip(breaker, TradingState.HALTED, reason, ts))


def flatten(s: State, symbol: str | None, ts: int, reason: str = "flatten") -> Decision:
    """Close every position (of `symbol`, or all) with reduce-only market orders.

    `reason` names why in each trade's exit (`contract_roll`: a futures roll closes the
    old month's trades before the new month's prices reach them)."""
    for b in list(s.brackets.values()):
        if symbol is None or b.symbol == symbol:
            yield from exit_trade(s, b, reason, ts, s.last_price.get(b.symbol, 0.0))
    covered = {(b.strategy, b.symbol) for b in s.brackets.values()}
    for p in list(s.accounting.positions.values()):
        if (
            (symbol is None or p.symbol == symbol)
            and abs(p.quantity) > QTY_EPS
            and (p.strategy, p.symbol) not in covered
        ):
            side = Side.SELL if p.quantity > 0 else Side.BUY
            yield ev.OrderIntent(
                ts,
                client_order_id(f"flatten:{p.strategy}:{p.symbol}:{ts}", "flatten"),
                p.symbol,
                side,
                OrderType.MARKET,
                abs(p.quantity),
                reduce_only=True,
                strategy=p.strategy,
                role="flatten",
                intended_price=s.last_price.get(p.symbol, 0.0),
            )
