"""The per-bar trading pipeline for one symbol, shared by the backtester and the daemon.

Feed it closed bars of every timeframe in the order they close (a base bar,
then the higher-timeframe bars that close with it). For each bar:

* base bar: the engine (risk, orders, paper fills, accounting) sees it
  first, then runs each open trade's management plan on it (exit on time,
  ratchet the stop): the plan the strategy gave with the entry;
* a bar of an open trade's strategy timeframe: the engine judges the
  trade's invalidation on its close (before new setups on that bar);
* a strategy or trend timeframe bar: the live SMC detectors update, the
  multi-timeframe trends are read, each strategy on that timeframe detects
  setups, plans entries (confidence, coded skips) and hands signals to the
  engine, which sizes them or denies them with a code.

`on_bar` returns every event in the order it happened: the engine's events
and the pipeline's own (`SignalEmitted`, `SetupSkipped`). Nothing here reads a clock or does I/O, and the
order of work is fixed, so the same bars always give the same events: a
backtest and a daemon replay of the same candles make the same trades.

The engine's `on_bar` only sees base bars: a higher-timeframe bar repeats
prices the base bars already traded through, and replaying them would fill
stops that a later stop move had taken away. If the engine has
`on_higher_timeframe_bar(bar)` (ATR and time exits per timeframe, no
fills), higher-timeframe bars go there. A strategy does not manage trades:
its `plan_management` goes with the signal (`engine.on_signal(signal, ts,
plan)`), and the engine runs it (`engine.manage_trades(bar, every_plan)`),
so trade management has one owner and lives in the engine's state.

Several symbols share one engine (portfolio risk) through `Portfolio`,
which routes each bar to its symbol's pipeline.

The paper venue is the pipeline's, not the engine's: with a paper engine
(`params.venue == "paper"`) `build_pipeline` makes one (`build_portfolio`
one for all symbols, as they share one account) and the pipeline passes it
with every input, so the engine's orders go to it and its reports come
back in the same call. The daemon's session and the backtest loop both
drive the engine through here, so both drive the same paper venue.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Protocol

import attrs

from fractald.core.execution import events as ev
from fractald.core.execution.paper_venue import PaperVenue, paper_venue_for
from fractald.core.models import TIMEFRAME_MS, Bar, FeedHealth, Quote, Signal, TradeTick
from fractald.core.risk.params import RiskParams
from fractald.core.risk.session_gate import SessionGate
from fractald.core.smc.live import LiveSMCParams
from fractald.core.strategies.base import TIMEFRAME_DEFAULTS, MarketState, Skip, Strategy
from fractald.core.strategies.confidence import ConfidenceModel
from fractald.core.strategies.registry import create


class Engine(Protocol):
    """What the pipeline needs from the risk/execution core (fractald.core.execution.engine)."""

    def on_bar(self, bar: Bar, venue: PaperVenue | None = ...) -> list[Any]: ...
    def on_signal(
        self, signal: Signal, ts: int, *, plan: Any = ..., venue: PaperVenue | None = ...
    ) -> list[Any]: ...
    def invalidate(
        self, signal_id: str, ts: int, reason: str = ..., venue: PaperVenue | None = ...
    ) -> list[Any]: ...


class OperatedEngine(Engine, Protocol):
    """An engine the operator can steer (what `Portfolio`'s commands need)."""

    def pause(self, ts: int | None = ..., venue: PaperVenue | None = ...) -> list[Any]: ...
    def resume(self, ts: int | None = ..., venue: PaperVenue | None = ...) -> list[Any]: ...
    def flatten(
        self, symbol: str | None = ..., ts: int | None = ..., venue: PaperVenue | None = ...
    ) -> list[Any]: ...
    def halt(
        self, ts: int | None = ..., reason: str = ..., *, venue: PaperVenue | None = ...
    ) -> list[Any]: ...
    def kill(self, ts: int | None = ..., venue: PaperVenue | None = ...) -> list[Any]: ...
    def trip(
        self,
        breaker: Any,
        state: Any,
        reason: str,
        figures: dict[str, Any] | None = ...,
        ts: int | None = ...,
        venue: PaperVenue | None = ...,
    ) -> list[Any]: ...
    def set_risk(self, params: RiskParams, *, venue: PaperVenue | None = ...) -> list[Any]: ...


_OPERATOR_CALLS = ("pause", "resume", "flatten", "halt", "kill", "trip", "set_risk")


class NullEngine:
    """An engine that never trades: for signal-only runs (research, charts) and to measure the pipeline alone."""

    def on_bar(self, bar: Bar, venue: PaperVenue | None = None) -> list[Any]:
        return []

    def on_signal(
        self, signal: Signal, ts: int, *, plan: Any = None, venue: PaperVenue | None = None
    ) -> list[Any]:
        return []

    def invalidate(
        self, signal_id: str, ts: int, reason: str = "", venue: PaperVenue | None = None
    ) -> list[Any]:
        return []


@attrs.frozen(slots=True)
class SignalEmitted:
    """A strategy's signal; `sent` is False while the pipeline is not accepting new entries."""

    kind: ClassVar[str] = "signal"
    ts: int
    signal: Signal
    sent: bool


@attrs.frozen(slots=True)
class SetupSkipped:
    kind: ClassVar[str] = "setup_skipped"
    ts: int
    strategy: str
    symbol: str
    code: str
    detail: str


class Pipeline:
    """Strategies + live SMC + the engine, for one symbol."""

    def __init__(
        self,
        symbol: str,
        strategies: Sequence[Strategy],
        engine: Engine,
        *,
        base_timeframe: str = "1m",
        trend_timeframes: Sequence[str] = ("15m", "1h", "4h"),
        session_gate: SessionGate | None = None,
        venue: PaperVenue | None = None,
    ) -> None:
        for tf in (base_timeframe, *trend_timeframes):
            if tf not in TIMEFRAME_MS:
                raise ValueError(f"unknown timeframe {tf!r}; allowed: {', '.join(TIMEFRAME_MS)}")
        for s in strategies:
            if s.symbol != symbol:
                raise ValueError(f"strategy {s.name} is for {s.symbol}, not {symbol}")
            if TIMEFRAME_MS[s.timeframe] < TIMEFRAME_MS[base_timeframe]:
                raise ValueError(
                    f"strategy {s.name} runs on {s.timeframe}, below the base {base_timeframe}"
                )
        self.symbol = symbol
        self.base_timeframe = base_timeframe
        self.strategies = tuple(strategies)
        self.session_gate = session_gate
        self.engine = engine
        self.venue = (
            venue  # the paper venue the engine's orders go to (None: a real venue's router)
        )
        self._trend_timeframes = tuple(trend_timeframes)
        self._wire()
        self._last_ts: dict[str, int] = {}
        self.signals = 0
        self.skips = 0
        self.bars = 0

    def _wire(self) -> None:
        """Fresh detection state: the live SMC per (timeframe, parameters), each strategy's run."""
        trend_timeframes = self._trend_timeframes
        self._states: dict[tuple[str, LiveSMCParams], MarketState] = {}
        self._runs: dict[str, list[tuple[Strategy, MarketState]]] = {}
        for s in self.strategies:
            self._runs.setdefault(s.timeframe, []).append(
                (s, self._state(s.timeframe, s.smc_params()))
            )
        # Meta-strategies (k5_noise_filter) see each bar before the strategies they may veto.
        for runs in self._runs.values():
            runs.sort(key=lambda run: not hasattr(run[0], "veto"))
        self._vetoes = tuple(s for s in self.strategies if hasattr(s, "veto"))
        self._trend: dict[str, MarketState] = {}
        for tf in trend_timeframes:
            mine = [ms for (t, _), ms in self._states.items() if t == tf]
            default = LiveSMCParams(swing_length=TIMEFRAME_DEFAULTS[tf]["swing_length"])
            self._trend[tf] = mine[0] if mine else self._state(tf, default)
        self._by_tf: dict[str, list[MarketState]] = {}
        for (tf, _), ms in self._states.items():
            self._by_tf.setdefault(tf, []).append(ms)

    def _state(self, timeframe: str, params: LiveSMCParams) -> MarketState:
        key = (timeframe, params)
        if key not in self._states:
            self._states[key] = MarketState(self.symbol, timeframe, params)
        return self._states[key]

    # --- views ----------------------------------------------------------------------
    def trends(self) -> dict[str, int]:
        return {tf: ms.smc.trend for tf, ms in self._trend.items()}

    def open_trades(self) -> dict[str, Any]:
        """This symbol's trades the engine manages by a strategy's plan: signal id -> plan."""
        managed = getattr(self.engine, "managed_trades", None)
        return {} if managed is None else dict(managed(self.symbol))

    def status(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "bars": self.bars,
            "signals": self.signals,
            "skips": self.skips,
            "trends": self.trends(),
            "managed_trades": len(self.open_trades()),
            "strategies": {
                s.name: {
                    "timeframe": s.timeframe,
                    "trades_learned": s.trades_learned,
                    "reliability_multiplier": s.reliability_multiplier,
                }
                for s in self.strategies
            },
        }

    def summary_line(self) -> str:
        trends = " ".join(f"{tf}:{t:+d}" for tf, t in self.trends().items())
        return f"{self.symbol} bars={self.bars} signals={self.signals} trends {trends}"

    def swing_lengths(self) -> dict[str, int]:
        """Per timeframe, the swing length of the detectors trading reads (a trend timeframe's
        trend detector; else the first strategy's there): what a chart of this pipeline draws."""
        out = {tf: ms.smc.params.swing_length for tf, ms in self._trend.items()}
        for tf, params in self._states:
            out.setdefault(tf, params.swing_length)
        return out

    # --- state as data (the snapshot's `pipelines` entry) -----------------------------
    def export_state(self) -> dict[str, Any]:
        """What trading taught this pipeline, as plain JSON data (no class names).

        Counters and each strategy's learning. The trades are the engine's
        (with their management plans). What market data alone determines
        (live SMC, slow averages, armed setups) is not here: `warm_up`
        rebuilds it from the candles.
        """
        return {
            "bars": self.bars,
            "signals": self.signals,
            "skips": self.skips,
            "last_ts": dict(self._last_ts),
            "learning": {s.name: s.learning_state() for s in self.strategies},
        }

    def import_state(self, data: Mapping[str, Any]) -> list[str]:
        """Restore `export_state` into this pipeline (built from the current config).

        Learning of a strategy no longer enabled is dropped (a trade of it
        keeps its plan: the engine holds it). Returns what was notable, for
        the log.
        """
        notes: list[str] = []
        self.bars, self.signals, self.skips = (
            int(data["bars"]),
            int(data["signals"]),
            int(data["skips"]),
        )
        self._last_ts = {str(k): int(v) for k, v in data["last_ts"].items()}
        by_name = {s.name: s for s in self.strategies}
        for name, learned in data["learning"].items():
            if name in by_name:
                by_name[name].restore_learning(learned)
            else:
                notes.append(f"learning of disabled strategy {name} dropped")
        return notes

    def detection_timeframes(self) -> frozenset[str]:
        """The timeframes whose closed bars detection reads (what `warm_up` needs again)."""
        return frozenset(self._by_tf)

    def reset_detection(self) -> None:
        """Forget what detection took from the market (live SMC, slow averages, armed setups).

        For a futures roll: the bars it saw are back-adjusted, and `warm_up` then runs
        again over them, so no level of the old month stays behind for the new month's
        prices to sweep or break. Each strategy is made anew with its parameters,
        confidence and learning; a managed trade keeps its plan (the engine holds it).
        """
        fresh: dict[int, Strategy] = {}
        for s in self.strategies:
            new = type(s)(s.symbol, s.timeframe, s.params, s.confidence)
            new.restore_learning(s.learning_state())
            fresh[id(s)] = new
        self.strategies = tuple(fresh.values())
        self._wire()

    def warm_up(self, bar: Bar) -> None:
        """Detection only, for a bar this pipeline saw before a restart: no trading, no events.

        Feeding the stored candles through here in their original order
        gives the live SMC, slow averages and strategies' armed setups the
        state `on_bar` had left them in (the same code runs on the same bars).
        """
        states = self._by_tf.get(bar.timeframe)
        if not states:
            return
        ctxs = {id(ms): ms.update(bar) for ms in states}
        trends = self.trends()
        for strategy, ms in self._runs.get(bar.timeframe, ()):
            ctx = ctxs[id(ms)]
            ctx.trends = trends
            strategy.detect(ctx)

    # --- inputs ---------------------------------------------------------------------
    def on_bar(self, bar: Bar, accepting: bool = True) -> list[Any]:
        """One closed bar of any timeframe; returns the events it caused, in order."""
        if bar.symbol != self.symbol:
            raise ValueError(f"pipeline for {self.symbol} got a {bar.symbol} bar")
        last = self._last_ts.get(bar.timeframe)
        if last is not None and bar.ts_open <= last:
            raise ValueError(
                f"{bar.timeframe} bars must arrive in time order: {bar.ts_open} after {last}"
            )
        self._last_ts[bar.timeframe] = bar.ts_open
        out: list[Any] = []
        if bar.timeframe == self.base_timeframe:
            self.bars += 1
            self._engine(self.engine.on_bar(bar, self.venue), out)
            self._manage(bar, True, out)
            if self.session_gate is not None and self.session_gate.must_flatten(bar.ts_event):
                for sid in self.open_trades():
                    self._engine(
                        self.engine.invalidate(sid, bar.ts_event, "session_close", self.venue), out
                    )
        else:
            hook = getattr(self.engine, "on_higher_timeframe_bar", None)
            if hook is not None:
                self._engine(hook(bar, self.venue), out)
            self._manage(bar, False, out)
        states = self._by_tf.get(bar.timeframe)
        if states:
            self._analyse(bar, states, accepting, out)
        return out

    def quiet_window(self) -> tuple[int, int] | None:
        """The span [start, end) in which base bars only feed the engine's quiet step, or None.

        Inside it a base bar makes no event: no detection runs on the base
        timeframe, no session gate can close a trade, and the engine says the
        symbol is quiet (`TradingEngine.quiet_window`). The backtest loop
        hands such bars over in runs (`on_quiet_bars`) instead of one by one.
        """
        if self.session_gate is not None or self.base_timeframe in self._by_tf:
            return None
        window = getattr(self.engine, "quiet_window", None)
        return None if window is None else window(self.symbol, self.venue)

    def on_quiet_bars(self, bars: list[Bar]) -> None:
        """`on_bar` of each of `bars` (base bars, in time order, inside `quiet_window`), at once."""
        base = self.base_timeframe
        last = self._last_ts.get(base)
        if last is not None and bars[0].ts_open <= last:
            raise ValueError(
                f"{base} bars must arrive in time order: {bars[0].ts_open} after {last}"
            )
        self._last_ts[base] = bars[-1].ts_open
        self.bars += len(bars)
        self.engine.on_quiet_bars(bars, self.venue)  # type: ignore[attr-defined]

    def on_tick(self, tick: TradeTick | Quote) -> list[Any]:
        out: list[Any] = []
        handler = getattr(
            self.engine, "on_trade" if isinstance(tick, TradeTick) else "on_quote", None
        )
        if handler is not None:
            self._engine(handler(tick, self.venue), out)
        return out

    def on_feed_health(self, health: FeedHealth) -> list[Any]:
        out: list[Any] = []
        handler = getattr(self.engine, "on_feed_health", None)
        if handler is not None:
            self._engine(handler(health), out)
        return out

    # --- the work -------------------------------------------------------------------
    def _analyse(
        self, bar: Bar, states: list[MarketState], accepting: bool, out: list[Any]
    ) -> None:
        ctxs = {id(ms): ms.update(bar) for ms in states}
        trends = self.trends()  # after this bar: the trend it just confirmed counts
        for strategy, ms in self._runs.get(bar.timeframe, ()):
            ctx = ctxs[id(ms)]
            ctx.trends = trends
            for setup in strategy.detect(ctx):
                planned = strategy.plan_entry(setup)
                if isinstance(planned, Skip):
                    self.skips += 1
                    out.append(
                        SetupSkipped(
                            bar.ts_event,
                            planned.strategy,
                            planned.symbol,
                            planned.code.value,
                            planned.detail,
                        )
                    )
                    continue
                gate = self.session_gate
                if gate is not None and (closed := gate.entry_refusal(bar.ts_event)) is not None:
                    self.skips += 1
                    out.append(
                        SetupSkipped(
                            bar.ts_event, strategy.name, planned.symbol, "OUTSIDE_SESSION", closed
                        )
                    )
                    continue
                veto = next(((v.name, why) for v in self._vetoes if (why := v.veto(planned))), None)
                if veto is not None:
                    self.skips += 1
                    out.append(
                        SetupSkipped(
                            bar.ts_event,
                            strategy.name,
                            planned.symbol,
                            "NOISE_VETO",
                            f"{veto[0]}: {veto[1]}",
                        )
                    )
                    continue
                self.signals += 1
                out.append(SignalEmitted(bar.ts_event, planned, accepting))
                if accepting:
                    plan = strategy.plan_management(planned, setup)
                    self._engine(
                        self.engine.on_signal(planned, bar.ts_event, plan=plan, venue=self.venue),
                        out,
                    )

    def _manage(self, bar: Bar, every_plan: bool, out: list[Any]) -> None:
        """The engine runs the open trades' management plans at this bar (when it can)."""
        manage = getattr(self.engine, "manage_trades", None)
        if manage is not None:
            self._engine(manage(bar, every_plan, self.venue), out)

    def follow(self, events: list[Any]) -> None:
        """Follow engine events that came from elsewhere (an operator command, a trip).

        A trade they close must reach its strategy's learning, exactly as when
        a bar caused it.
        """
        self._engine(events, [])

    def _engine(self, events: list[Any], out: list[Any]) -> None:
        """Record the engine's events; a closed trade teaches its strategy."""
        out.extend(events)
        for e in events:
            match e:
                case ev.TradeClosed():
                    for s in self.strategies:
                        if s.symbol == e.trade.symbol:
                            s.learn(e.trade)


class Portfolio:
    """One pipeline per symbol around one shared engine; bars and ticks go to their symbol's pipeline."""

    def __init__(self, pipelines: Sequence[Pipeline]) -> None:
        if not pipelines:
            raise ValueError("a portfolio needs at least one pipeline")
        engines = {id(p.engine) for p in pipelines}
        if len(engines) != 1:
            raise ValueError("every pipeline of a portfolio must share one engine")
        if len({id(p.venue) for p in pipelines}) != 1:
            raise ValueError(
                "every pipeline of a portfolio must share one paper venue (one account)"
            )
        self.pipelines: dict[str, Pipeline] = {}
        for p in pipelines:
            if p.symbol in self.pipelines:
                raise ValueError(f"two pipelines for {p.symbol}")
            self.pipelines[p.symbol] = p
        self.engine = pipelines[0].engine
        self.venue = pipelines[0].venue

    def _for(self, symbol: str) -> Pipeline:
        try:
            return self.pipelines[symbol]
        except KeyError:
            raise ValueError(
                f"no pipeline for {symbol}; have {', '.join(sorted(self.pipelines))}"
            ) from None

    def on_bar(self, bar: Bar, accepting: bool = True) -> list[Any]:
        return self._for(bar.symbol).on_bar(bar, accepting)

    def on_tick(self, tick: TradeTick | Quote) -> list[Any]:
        return self._for(tick.symbol).on_tick(tick)

    def on_feed_health(self, health: FeedHealth) -> list[Any]:
        return self._for(health.symbol).on_feed_health(health)

    def status(self) -> dict[str, Any]:
        return {"symbols": {s: p.status() for s, p in self.pipelines.items()}}

    # --- state as data ---------------------------------------------------------------
    def export_state(self) -> dict[str, Any]:
        return {symbol: p.export_state() for symbol, p in self.pipelines.items()}

    def import_state(self, data: Mapping[str, Any]) -> list[str]:
        """Each configured symbol's state; a symbol no longer configured is dropped (noted)."""
        notes = [
            f"state of {symbol} dropped: not a configured symbol"
            for symbol in data
            if symbol not in self.pipelines
        ]
        for symbol, p in self.pipelines.items():
            if symbol in data:
                notes.extend(p.import_state(data[symbol]))
        return notes

    def detection_timeframes(self, symbol: str) -> frozenset[str]:
        p = self.pipelines.get(symbol)
        return frozenset() if p is None else p.detection_timeframes()

    def reset_detection(self, symbol: str) -> None:
        """A roll of `symbol`: its detection state starts afresh (see Pipeline.reset_detection)."""
        self._for(symbol).reset_detection()

    def warm_up(self, bar: Bar) -> None:
        p = self.pipelines.get(bar.symbol)
        if p is not None:
            p.warm_up(bar)

    # --- operator commands: the engine's, with their events followed by every pipeline ---
    def pause(self, ts: int | None = None) -> list[Any]:
        """No new entries; open trades are still managed."""
        return self._follow(self._operated().pause(ts, venue=self.venue))

    def resume(self, ts: int | None = None) -> list[Any]:
        """Lift the pause and every breaker trip."""
        return self._follow(self._operated().resume(ts, venue=self.venue))

    def flatten(self, symbol: str | None = None, ts: int | None = None) -> list[Any]:
        """Close the positions of `symbol` (None: all) at market."""
        if symbol is not None:
            self._for(symbol)  # an unknown symbol is an error, not a silent no-op
        return self._follow(self._operated().flatten(symbol, ts, venue=self.venue))

    def close_for_roll(self, symbol: str, ts: int | None = None) -> list[Any]:
        """A futures roll of `symbol`: its trades closed on the old month (reason contract_roll)."""
        self._for(symbol)  # an unknown symbol is an error, not a silent no-op
        close = getattr(self.engine, "close_for_roll", None)
        if close is None:  # an engine that never trades holds nothing to close
            return []
        return self._follow(close(symbol, ts, venue=self.venue))

    def halt(self, ts: int | None = None) -> list[Any]:
        """HALTED: nothing new; what is held keeps its protective exits."""
        return self._follow(self._operated().halt(ts, venue=self.venue))

    def kill(self, ts: int | None = None) -> list[Any]:
        """Kill switch: halt and flatten everything."""
        return self._follow(self._operated().kill(ts, venue=self.venue))

    def trip(
        self,
        breaker: Any,
        state: Any,
        reason: str,
        figures: dict[str, Any] | None = None,
        ts: int | None = None,
    ) -> list[Any]:
        """Trip a breaker from outside (reconciliation); withdrawn entries end their management."""
        return self._follow(
            self._operated().trip(breaker, state, reason, figures, ts, venue=self.venue)
        )

    def set_risk(self, params: RiskParams) -> list[Any]:
        """New risk parameters for the shared engine (judged at the next market event); its event."""
        return self._follow(self._operated().set_risk(params, venue=self.venue))

    def _operated(self) -> OperatedEngine:
        missing = [name for name in _OPERATOR_CALLS if not hasattr(self.engine, name)]
        if missing:
            raise TypeError(
                f"{type(self.engine).__name__} takes no operator commands "
                f"(lacks {', '.join(missing)})"
            )
        return self.engine  # type: ignore[return-value]

    def on_venue_report(self, report: Any) -> list[Any]:
        """A venue's report through the engine; the pipelines follow what it closes and fills."""
        engine: Any = self.engine  # an engine that routes to a venue (TradingEngine has it)
        return self._follow(engine.on_venue_report(report, self.venue))

    def _follow(self, events: list[Any]) -> list[Any]:
        for p in self.pipelines.values():
            p.follow(events)
        return events

    def summary_line(self) -> str:
        return "; ".join(p.summary_line() for p in self.pipelines.values())


def build_portfolio(
    symbols: Sequence[str],
    engine: Engine,
    strategies: Sequence[str],
    timeframe: str = "15m",
    **kw: Any,
) -> Portfolio:
    """`build_pipeline` for each symbol, all sharing `engine` (and its paper venue: one account)."""
    kw.setdefault("venue", paper_venue_for(engine))
    return Portfolio([build_pipeline(s, engine, strategies, timeframe, **kw) for s in symbols])


def build_pipeline(
    symbol: str,
    engine: Engine,
    strategies: Sequence[str],
    timeframe: str = "15m",
    *,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    confidence: ConfidenceModel | None = None,
    base_timeframe: str = "1m",
    trend_timeframes: Sequence[str] = ("15m", "1h", "4h"),
    session_gate: SessionGate | None = None,
    venue: PaperVenue | None = None,
) -> Pipeline:
    """A pipeline from plain settings (what [strategies] in the config holds).

    A paper engine gets `venue`, or a paper venue of its own (`paper_venue_for`).
    """
    params = params or {}
    unknown = sorted(set(params) - set(strategies))
    if unknown:
        raise ValueError(f"params given for strategies that are not enabled: {', '.join(unknown)}")
    built = [create(name, symbol, timeframe, params.get(name), confidence) for name in strategies]
    return Pipeline(
        symbol,
        built,
        engine,
        base_timeframe=base_timeframe,
        trend_timeframes=trend_timeframes,
        session_gate=session_gate,
        venue=venue if venue is not None else paper_venue_for(engine),
    )
