"""`fractalctl enter SYMBOL long|short --stop P [--target P ...] [--risk F] [--post-only [--limit P]]`
and `fractalctl exit TRADE_ID`.

An operator's entry is a signal of strategy `manual` at the last price,
handed to the engine's `on_signal`: the same sizing, gates and routing as a
strategy's signal (a denial comes back with its code); `--post-only` makes the entry a
maker-only limit at `--limit` (default the last price), which the venue rejects rather
than fill as a taker. `exit` closes one
trade (its id is the trade's signal id, as `fractalctl positions` shows it)
with the engine's own exit. Both are mutating commands, so the server logs
them with the peer's uid; both work on paper as on a venue.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

from fractald.control.protocol import Arg, CommandError, PeerCred
from fractald.core.models import MAX_SIGNAL_RISK, Side, Signal

if TYPE_CHECKING:
    from fractald.actors.trading import TradingActor
    from fractald.control.server import CommandRegistry

MANUAL = "manual"
SIDES = {"long": Side.BUY, "short": Side.SELL}


def manual_signal(
    engine: Any,
    symbol: str,
    side: str,
    stop: float,
    targets: list[float],
    timeframe: str,
    risk: float | None = None,
    post_only: bool = False,
    limit: float | None = None,
) -> Signal:
    """The operator's entry as a signal; CommandError names what is wrong with it.

    `risk` (a fraction of equity, `--risk 0.01` = 1 %) replaces [risk] risk_fraction for
    this trade only; heat, exposure and every other gate still apply.
    """
    if side not in SIDES:
        raise CommandError(
            "bad_args", f"enter: side {side!r} must be long or short", argument="side"
        )
    if risk is not None and not 0.0 < risk <= MAX_SIGNAL_RISK:
        raise CommandError(
            "bad_args",
            f"enter: --risk {risk} must be a fraction of equity in "
            f"(0, {MAX_SIGNAL_RISK}] (0.01 risks 1 %)",
            argument="risk",
        )
    if limit is not None and not post_only:
        raise CommandError(
            "bad_args", "enter: --limit is the price of a --post-only entry", argument="limit"
        )
    if limit is not None and not limit > 0:
        raise CommandError("bad_args", f"enter: --limit {limit} must be a price", argument="limit")
    price = float(engine.last_price.get(symbol, 0.0)) if limit is None else limit
    if not price > 0:
        raise CommandError("no_price", f"enter: no price seen for {symbol} yet; wait for the feed")
    buy = SIDES[side] is Side.BUY
    if not (stop < price if buy else stop > price):
        raise CommandError(
            "bad_args",
            f"enter {side}: the stop {stop} must be "
            f"{'below' if buy else 'above'} the last price {price}",
            argument="stop",
        )
    if not targets:
        raise CommandError(
            "bad_args",
            "enter: give at least one --target PRICE (where the trade takes profit)",
            argument="target",
        )
    wrong = [t for t in targets if (t <= price if buy else t >= price)]
    if wrong:
        raise CommandError(
            "bad_args",
            f"enter {side}: targets {wrong} are not "
            f"{'above' if buy else 'below'} the last price {price}",
            argument="target",
        )
    signal = Signal(
        symbol=symbol,
        side=SIDES[side],
        entry=price,
        stop=stop,
        targets=tuple(sorted(targets, reverse=not buy)),
        confidence=100.0,
        strategy=MANUAL,
        timeframe=timeframe,
        ts_event=int(engine.last_ts),
        reasons=({"kind": "operator"},),
        risk_fraction=risk,
        post_only=post_only,
    )
    # A second entry before any new market event would get the first one's id (and be denied
    # as a duplicate): the operator meant a new trade, so it takes the next free millisecond.
    seen = getattr(engine, "seen_signals", {})
    while signal.signal_id in seen:
        signal = attrs.evolve(signal, ts_event=signal.ts_event + 1)
    return signal


def register_operator_entries(registry: CommandRegistry, actor: TradingActor) -> None:
    from fractald.control.engine_access import require_engine, run_engine_command

    bus = actor.bus

    async def enter(args: dict[str, Any], peer: PeerCred) -> dict[str, Any]:
        symbol = args["symbol"]
        symbols = list(actor.config.current.feed.symbols)
        if symbol not in symbols:
            raise CommandError(
                "bad_args",
                f"enter: unknown symbol {symbol!r}; valid: {', '.join(symbols)}",
                argument="symbol",
                allowed=symbols,
            )
        try:
            targets = [float(t) for t in args.get("target") or []]
        except ValueError:
            raise CommandError(
                "bad_args", f"enter: targets {args.get('target')} are not prices", argument="target"
            ) from None
        engine = require_engine(actor)
        risk = args.get("risk")
        signal = manual_signal(
            engine,
            symbol,
            args["side"],
            float(args["stop"]),
            targets,
            actor.config.current.strategies.timeframe,
            None if risk is None else float(risk),
            bool(args.get("post_only")),
            None if args.get("limit") is None else float(args["limit"]),
        )
        events = await run_engine_command(
            actor, lambda p: engine.on_signal(signal, int(engine.last_ts), venue=p.venue)
        )
        bus.publish(
            "operator_enter",
            {
                "by_uid": peer.uid,
                "symbol": symbol,
                "side": args["side"],
                "signal_id": signal.signal_id,
            },
        )
        denied = [e for e in events if type(e).__name__ == "SignalDenied"]
        return {
            "trade_id": signal.signal_id,
            "entry": signal.entry,
            "stop": signal.stop,
            "targets": list(signal.targets),
            "denied": [
                {"code": str(getattr(d.code, "value", d.code)), "message": d.message}
                for d in denied
            ],
            "events": sorted({type(e).__name__ for e in events}),
        }

    async def exit_trade(args: dict[str, Any], peer: PeerCred) -> dict[str, Any]:
        engine = require_engine(actor)
        trade_id = args["trade_id"]
        if trade_id not in engine.brackets:
            raise CommandError(
                "unknown_trade",
                f"exit: no open trade {trade_id!r}; open: {', '.join(engine.brackets) or 'none'}",
                argument="trade_id",
            )
        events = await run_engine_command(
            actor,
            lambda p: engine.invalidate(
                trade_id, int(engine.last_ts), reason="operator_exit", venue=p.venue
            ),
        )
        bus.publish("operator_exit", {"by_uid": peer.uid, "trade_id": trade_id})
        return {"trade_id": trade_id, "events": sorted({type(e).__name__ for e in events})}

    registry.register(
        "enter",
        enter,
        mutating=True,
        help="enter a trade by hand (strategy manual): same sizing, gates and routing",
        args=[
            Arg("symbol", str, required=True),
            Arg("side", str, required=True, choices=("long", "short")),
            Arg("stop", float, required=True),
            Arg("target", list),
            Arg("risk", float),
            Arg("post_only", bool),
            Arg("limit", float),
        ],
    )
    registry.register(
        "exit",
        exit_trade,
        mutating=True,
        help="close one trade (its id from positions)",
        args=[Arg("trade_id", str, required=True)],
    )
