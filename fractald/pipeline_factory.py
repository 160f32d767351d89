"""Builds the pure trading pipeline from the config: the one place the daemon and backtest share.

A daemon replay and `fractald backtest` of the same candles make the same
trades because both get their pipeline, engine parameters included, here.
"""

from __future__ import annotations

from typing import Any

import attrs

from fractald.config import Config
from fractald.core.execution.brackets import BracketParams
from fractald.core.execution.engine import EngineParams, FillSource, TradingEngine
from fractald.core.execution.paper import PaperParams
from fractald.core.pipeline import Portfolio, build_portfolio
from fractald.core.risk.params import BreakerParams, GateParams, RiskParams, SizingParams
from fractald.core.risk.session_gate import SessionGate
from fractald.core.strategies.confidence import ConfidenceModel, ConfidenceWeights


def risk_params(config: Config) -> RiskParams:
    r = config.risk
    breaker_fields: dict[str, Any] = {
        "max_drawdown_fraction": r.max_drawdown,
        "daily_loss_fraction": r.daily_loss_limit,
        "daily_loss_money": r.daily_loss_money,
        "max_trades_per_day": r.max_trades_per_day,
        "max_consecutive_losses": r.max_consecutive_losses,
    }
    breakers = (
        BreakerParams.for_live(**breaker_fields)
        if r.mode == "live"
        else BreakerParams(**breaker_fields)
    )
    return RiskParams(
        sizing=SizingParams(
            risk_fraction=r.risk_per_trade,
            max_risk_money=r.max_risk_money,
            max_stop_ticks=r.max_stop_ticks,
        ),
        gates=GateParams(
            max_heat_fraction=r.heat_cap,
            max_open_positions=r.max_open_positions,
            min_data_quality=r.min_data_quality,
            min_execution_quality=r.min_execution_quality,
        ),
        breakers=breakers,
    )


def engine_params(config: Config) -> EngineParams:
    b = config.broker
    replay = config.feed.venue == "replay"
    return EngineParams(
        initial_equity=b.starting_equity,
        venue=b.kind,  # the broker the engine routes to ("paper"), not the data feed
        # Candle replays and backtests fill on each bar's intrabar path; live feeds on trades.
        fills_from=FillSource.BARS if replay else FillSource.TICKS,
        require_feed_health=not replay,
        default_lot_size=b.lot_size,
        default_tick_size=b.tick_size,
        risk=risk_params(config),
        paper=PaperParams(
            latency_ms=b.latency_ms,
            slippage_bps=b.slippage_bps,
            maker_fee_bps=b.maker_fee_bps,
            taker_fee_bps=b.taker_fee_bps,
        ),
        # A real venue holds each trade's protective stop (reduce-only, resized and moved with it).
        brackets=BracketParams(
            venue_stops=b.kind != "paper",
            # Spot: the stop locks the whole balance, so targets are kept here (sold at market).
            local_targets=b.kind == "binance-spot",
        ),
        long_only=b.kind == "binance-spot",  # spot cannot sell short: a short entry is denied
        post_only_entries=config.strategies.post_only_entries,
    )


def confidence_model(config: Config) -> ConfidenceModel:
    return ConfidenceModel(ConfidenceWeights(**config.strategies.confidence))


def pipeline_from_config(
    config: Config, symbols: list[str] | None = None, engine: TradingEngine | None = None
) -> Portfolio:
    """One pipeline per symbol around one shared engine (portfolio-wide risk)."""
    s = config.strategies
    return build_portfolio(
        symbols or list(config.feed.symbols),
        engine or TradingEngine(engine_params(config)),
        list(s.enabled),
        s.timeframe,
        params=s.params or None,
        confidence=confidence_model(config),
        trend_timeframes=tuple(s.trend_timeframes),
        session_gate=session_gate_of(config),
    )


def session_gate_of(config: Config) -> SessionGate | None:
    """The exchange-session gate `[session]` asks for (None: a 24 h market)."""
    c = config.session
    if not c.calendar:
        return None
    from fractald.session_calendar import session_gate

    return session_gate(
        c.calendar, c.skip_first_minutes, c.no_entry_last_minutes, c.flatten_before_close_minutes
    )


def describe(config: Config) -> dict[str, Any]:
    """The engine parameters in force, for `fractalctl config`-like views."""
    return attrs.asdict(
        engine_params(config),
        recurse=True,
        value_serializer=lambda _i, _f, v: getattr(v, "value", v),
    )
