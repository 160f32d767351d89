"""The trading engine as control commands reach it: ready or not, and one command at a time.

Shared by the trading commands (pause, flatten, halt...) and the operator's
manual entries: a handler runs between two market events (under the trading
actor's lock), and the events an operator command makes are committed and
published exactly like a bar's.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from fractald.control.protocol import CommandError
from fractald.read_model import engine_of

if TYPE_CHECKING:
    from collections.abc import Callable

    from fractald.actors.trading import TradingActor
    from fractald.core.execution.engine import TradingEngine
    from fractald.core.pipeline import Portfolio


def require_engine(actor: TradingActor) -> TradingEngine:
    if actor.session is None:
        raise CommandError("not_ready", "trading state is still being recovered; try again")
    if getattr(actor.session, "catching_up", False):
        raise CommandError(
            "not_ready",
            "trading state is catching up with the event log after "
            "a restart; try again in a moment",
        )
    engine = engine_of(actor)
    if engine is None:
        raise CommandError(
            "no_engine",
            "no trading engine: no strategies are enabled ([strategies] enabled in the config)",
        )
    return engine


def require_portfolio(actor: TradingActor) -> Portfolio:
    """The portfolio around the engine (the operator commands go through it)."""
    require_engine(actor)
    session = actor.session
    assert session is not None
    return session.pipeline  # type: ignore[no-any-return]


async def run_engine_command(
    actor: TradingActor, command: Callable[[Portfolio], list[Any]]
) -> list[Any]:
    """Run an operator command on the portfolio; commit and publish its events like a bar's."""
    # Between two market events, never inside one: the trading actor's lock when it has one.
    lock = getattr(actor, "_lock", None)
    async with lock if lock is not None else contextlib.nullcontext():
        return await _run_locked(actor, command)


async def _run_locked(actor: TradingActor, command: Callable[[Portfolio], list[Any]]) -> list[Any]:
    from fractald.session import event_kind, event_payload

    engine = require_engine(actor)
    portfolio = require_portfolio(actor)
    session = actor.session
    assert session is not None
    # The portfolio's commands route the engine's events through every pipeline
    # (a flatten that closes a bracket ends its management, a closed trade reaches
    # its strategy's learning), as a bar's events are.
    events = command(portfolio)
    if events:
        await session.commit(events, ts_event=engine.last_ts)
    for event in events:
        actor.bus.publish(event_kind(event), event_payload(event))
    return events
