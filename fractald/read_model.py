"""Read-model queries over the trading state: a leaf module for every front end and actor.

The control socket, Telegram, metrics and alerts all read the same figures
from the engine through here, so no actor imports the control package (and
nothing here imports an actor, the daemon or the control package).
"""

from __future__ import annotations

from typing import Any

from fractald.core.figures import drawdown_fraction


def engine_of(trading: Any) -> Any:
    """The trading engine behind a trading actor, once its session is recovered (else None)."""
    session = getattr(trading, "session", None)
    pipeline = getattr(session, "pipeline", None)
    return getattr(pipeline, "engine", None)


def risk_figures(engine: Any) -> dict[str, float]:
    """Equity, peak, drawdown, open risk and heat against the cap."""
    equity = engine.equity
    open_risk = sum(r.risk for r in engine.open_risks())
    heat_cap = engine.params.risk.gates.max_heat_fraction
    peak = engine.breakers.peak_equity
    return {
        "equity": equity,
        "peak_equity": peak,
        "drawdown": drawdown_fraction(peak, equity),
        "open_risk": open_risk,
        "heat": open_risk / equity if equity > 0 else 0.0,
        "heat_cap": heat_cap,
        "heat_cap_amount": heat_cap * max(equity, 0.0),
    }


def current_curve(engine: Any) -> list[tuple[int, float]]:
    """The engine's equity curve (one point per base bar) ending at the equity of now.

    The last bar's point predates whatever happened since (a flatten's fill,
    its fees): the present equity replaces it, so the report ends where the
    account is.
    """
    curve = list(engine.accounting.equity_curve)
    now = (int(engine.last_ts), float(engine.equity))
    if curve and curve[-1][0] >= now[0]:
        curve[-1] = (curve[-1][0], now[1])
    elif now[0] > 0:
        curve.append(now)
    return curve
