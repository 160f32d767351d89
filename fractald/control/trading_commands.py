"""Control commands that read or steer trading: positions, orders, pause, flatten, halt...

Views read the engine (`session.pipeline.engine`) directly: it is plain
data, and a handler runs between two steps of the trading actor, never
in the middle of one. Commands that change trading (pause, resume,
flatten, halt) call the portfolio's operator commands (the engine's, with
the events followed by every pipeline) and then treat their events
exactly like a bar's: committed to the ledger with a snapshot in one
transaction, then published on the bus. So a halt
survives a restart, and `tail` and the alerts see it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fractald.control.engine_access import (
    require_engine,
    run_engine_command,
)
from fractald.control.protocol import Arg, CommandError, PeerCred
from fractald.core.execution.orders import QTY_EPS
from fractald.core.risk.breakers import Breaker
from fractald.read_model import engine_of, risk_figures

if TYPE_CHECKING:
    from collections.abc import Callable

    from fractald.actors.trading import TradingActor
    from fractald.control.report_commands import ReportCommands
    from fractald.control.server import CommandRegistry
    from fractald.core.execution.engine import TradingEngine
    from fractald.risk_overrides import RiskOverrides


def _kinds(events: list[Any]) -> dict[str, int]:
    out: dict[str, int] = {}
    for e in events:
        kind = getattr(e, "kind", type(e).__name__)
        out[kind] = out.get(kind, 0) + 1
    return out


# --------------------------------------------------------------------------- views


def positions_view(engine: TradingEngine) -> list[dict[str, Any]]:
    rows = []
    brackets = {(b.strategy, b.symbol): b for b in engine.brackets.values()}
    for p in engine.accounting.positions.values():
        if abs(p.quantity) <= QTY_EPS:
            continue
        b = brackets.get((p.strategy, p.symbol))
        rows.append(
            {
                "symbol": p.symbol,
                "strategy": p.strategy,
                "side": "LONG" if p.quantity > 0 else "SHORT",
                "quantity": p.quantity,
                "avg_price": p.avg_price,
                "mark_price": engine.accounting.mark_price(p.symbol),
                "unrealized_pnl": engine.accounting.unrealized_of(p),
                "stop": b.stop if b else None,
                "targets": list(b.targets) if b else [],
                "open_risk": b.open_risk() if b else None,
                "state": b.state.value if b else "unmanaged",
                "opened_ts": p.trip_ts_entry,
                "confidence": p.trip_confidence,
                "tick_size": engine.instrument(p.symbol).tick_size,
            }
        )
    return sorted(rows, key=lambda r: (r["symbol"], r["strategy"]))


def orders_view(engine: TradingEngine, include_done: bool) -> list[dict[str, Any]]:
    rows = []
    for o in engine.orders.values():
        if o.status.terminal and not include_done:
            continue
        rows.append(
            {
                "client_order_id": o.client_order_id,
                "symbol": o.symbol,
                "side": o.side.value,
                "type": o.order_type.value,
                "role": o.role,
                "status": o.status.value,
                "quantity": o.quantity,
                "filled_qty": o.filled_qty,
                "price": o.price,
                "trigger_price": o.trigger_price,
                "avg_fill_price": o.avg_fill_price or None,
                "strategy": o.strategy,
                "created_ts": o.ts_created,
                "last_ts": o.ts_last,
                "reason": o.reason,
                "tick_size": engine.instrument(o.symbol).tick_size,
            }
        )
    return sorted(rows, key=lambda r: (r["created_ts"], r["client_order_id"]))


def breakers_view(actor: TradingActor, engine: TradingEngine) -> dict[str, Any]:
    b = engine.breakers
    p = b.params
    equity = engine.equity
    figures = risk_figures(engine)
    daily_loss = (
        (b.day_start_equity - equity) / b.day_start_equity if b.day_start_equity > 0 else 0.0
    )
    now = {
        Breaker.MAX_DRAWDOWN: (figures["drawdown"], p.max_drawdown_fraction),
        Breaker.DAILY_LOSS: (daily_loss, p.daily_loss_fraction),
        Breaker.TRADES_PER_DAY: (b.trades_today, p.max_trades_per_day),
        Breaker.CONSECUTIVE_LOSSES: (b.consecutive_losses, p.max_consecutive_losses),
        Breaker.ERROR_BURST: (len(b.errors), p.error_burst_count),
    }
    rows = []
    for breaker in Breaker:
        trip = b.trips.get(breaker)
        value, limit = now.get(breaker, (None, None))
        rows.append(
            {
                "breaker": breaker.value,
                "tripped": trip is not None,
                "state": trip.state.value if trip else "-",
                "value": value,
                "limit": limit,
                "daily_reset": breaker.value in p.daily_reset_breakers,
                "since_ts": trip.ts if trip else None,
                "reason": trip.reason if trip else "",
            }
        )
    # Why this drawdown need not equal the report's (core.figures says the same).
    basis = (
        "max_drawdown's value is the drawdown now from the peak since the last resume, "
        "equity read at every intrabar price; `report` shows the deepest drawdown of the "
        "equity marked at each bar close"
    )
    return {
        "trading_state": engine.state.value,
        "paused": engine.paused,
        "accepting": actor.accepts_entries(),
        "breakers": rows,
        "note": basis,
    }


def strategies_view(actor: TradingActor, engine: TradingEngine) -> list[dict[str, Any]]:
    rows = []
    pipelines = getattr(actor.session.pipeline, "pipelines", {}) if actor.session else {}
    for pipeline in pipelines.values():
        for s in pipeline.strategies:
            rec = engine.reliability.record_of(s.name)
            rows.append(
                {
                    "strategy": s.name,
                    "symbol": s.symbol,
                    "timeframe": s.timeframe,
                    "state": rec.state.value,
                    "since_ts": rec.since_ts or None,
                    "size_scale": engine.reliability.scale(s.name),
                    "confidence_multiplier": s.reliability_multiplier,
                    "trades": rec.trades,
                    "win_rate": rec.win_rate,
                    "loss_streak": rec.loss_streak,
                    "expectancy_r": rec.expectancy(),
                    "cum_pnl": rec.cum_pnl,
                    "max_drawdown": rec.max_drawdown,
                }
            )
    return rows


def account_status(
    actor: TradingActor, last_signal: Callable[[], dict[str, Any] | None]
) -> dict[str, Any]:
    """What `status` adds for the operator: equity, risk, positions, state, last signal."""
    engine = engine_of(actor)
    if engine is None:
        return {"state": "recovering" if actor.session is None else "no engine"}
    out: dict[str, Any] = {
        "trading_state": engine.state.value,
        "paused": engine.paused,
        "accepting": actor.accepts_entries(),
        **risk_figures(engine),
    }
    out["positions"] = sum(
        1 for p in engine.accounting.positions.values() if abs(p.quantity) > QTY_EPS
    )
    out["working_orders"] = len(engine.working_orders())
    out["trips"] = [
        {"breaker": t.breaker.value, "state": t.state.value, "reason": t.reason, "ts": t.ts}
        for t in engine.breakers.trips.values()
    ]
    out["last_signal"] = last_signal()
    return out


# --------------------------------------------------------------------------- registration


def register_trading_commands(
    registry: CommandRegistry,
    actor: TradingActor,
    reports: ReportCommands,
    risk_overrides: RiskOverrides,
) -> None:
    """Every trading and reporting command (the control actor's one hook into trading)."""
    from fractald.risk_overrides import register_risk_commands

    bus = actor.bus

    async def positions(args: dict[str, Any], peer: PeerCred) -> list[dict[str, Any]]:
        return positions_view(require_engine(actor))

    async def orders(args: dict[str, Any], peer: PeerCred) -> list[dict[str, Any]]:
        return orders_view(require_engine(actor), bool(args["all"]))

    async def breakers(args: dict[str, Any], peer: PeerCred) -> dict[str, Any]:
        return breakers_view(actor, require_engine(actor))

    async def strategies(args: dict[str, Any], peer: PeerCred) -> list[dict[str, Any]]:
        return strategies_view(actor, require_engine(actor))

    async def pause(args: dict[str, Any], peer: PeerCred) -> dict[str, Any]:
        events = await run_engine_command(actor, lambda p: p.pause())
        actor.accepting = False
        bus.publish("operator_pause", {"by_uid": peer.uid})
        return {
            "accepting": False,
            "events": _kinds(events),
            "note": "no new entries; open trades are still managed (survives a restart)",
        }

    async def resume(args: dict[str, Any], peer: PeerCred) -> dict[str, Any]:
        engine = require_engine(actor)
        cleared = [b.value for b in engine.breakers.trips]
        events = await run_engine_command(actor, lambda p: p.resume())
        actor.accepting = True
        bus.publish("operator_resume", {"by_uid": peer.uid, "cleared": cleared})
        return {
            "accepting": True,
            "trading_state": engine.state.value,
            "cleared": cleared,
            "events": _kinds(events),
        }

    async def flatten(args: dict[str, Any], peer: PeerCred) -> dict[str, Any]:
        symbol = args.get("symbol")
        symbols = list(actor.config.current.feed.symbols)
        if symbol is not None and symbol not in symbols:
            raise CommandError(
                "bad_args",
                f"flatten: unknown symbol {symbol!r}; valid: "
                f"{', '.join(symbols)} (or none for all)",
                argument="symbol",
                allowed=symbols,
            )
        events = await run_engine_command(actor, lambda p: p.flatten(symbol))
        bus.publish("operator_flatten", {"by_uid": peer.uid, "symbol": symbol or "*"})
        return {
            "symbol": symbol or "all",
            "events": _kinds(events),
            "positions": positions_view(require_engine(actor)),
        }

    async def halt(args: dict[str, Any], peer: PeerCred) -> dict[str, Any]:
        events = await run_engine_command(actor, lambda p: p.kill())
        actor.accepting = False
        bus.publish("kill_switch", {"by_uid": peer.uid})
        engine = require_engine(actor)
        return {
            "trading_state": engine.state.value,
            "events": _kinds(events),
            "positions": positions_view(engine),
            "note": "halted and flattening; `fractalctl resume` to trade again",
        }

    async def reconcile(args: dict[str, Any], peer: PeerCred) -> dict[str, Any]:
        report = await actor.reconcile_now("operator")
        if report is None and getattr(actor, "router", None) is not None:
            raise CommandError(
                "not_ready",
                "an order or a report is on its way between trading and the venue, or the venue "
                "did not answer: nothing was compared; try again in a moment",
            )
        if report is None:
            raise CommandError(
                "not_supported",
                "no reconciler for this broker yet (only the "
                "in-process paper broker can be reconciled)",
            )
        return {"clean": report.clean, **report.as_dict()}

    r = registry
    r.register(
        "reconcile",
        reconcile,
        mutating=True,
        help="compare the ledger with the broker now; mismatches go REDUCING",
    )
    r.register("positions", positions, help="open positions with stops, targets and open risk")
    r.register(
        "orders",
        orders,
        help="working orders (all: finished ones too)",
        args=[Arg("all", bool, default=False, help="include finished orders")],
    )
    r.register("breakers", breakers, help="circuit breakers: tripped, figures against limits")
    r.register("strategies", strategies, help="strategies: reliability state, throttle, quarantine")
    r.register("pause", pause, mutating=True, help="stop new entries; manage open trades")
    r.register(
        "resume",
        resume,
        mutating=True,
        help="allow new entries again; clears the pause and every tripped breaker",
    )
    r.register(
        "flatten",
        flatten,
        mutating=True,
        help="close positions at market (one symbol or all)",
        args=[Arg("symbol", str, help="only this symbol")],
    )
    r.register(
        "halt",
        halt,
        mutating=True,
        confirm=True,
        help="kill switch: halt trading and flatten everything (needs yes)",
    )
    reports.register(r)
    from fractald.control.operator_entries import register_operator_entries

    register_operator_entries(r, actor)
    register_risk_commands(r, risk_overrides)
