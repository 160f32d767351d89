"""Control commands that look back: trades, signals, report, chart and metrics.

History comes from where it is kept: closed trades and signals from the
ledger's event log (so they survive restarts), the equity curve from the
engine's accounting, and recent 1m candles from `BarHistory`, a bounded
tap on the feed-to-trading channel. Drawing (matplotlib) and ledger reads
run on worker threads, never on the trio loop.
"""

from __future__ import annotations

import base64
import collections
import datetime as dt
import io
import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import cattrs
import trio

from fractald.control.protocol import Arg, CommandError, ErrorCode, PeerCred
from fractald.core.models import TIMEFRAME_MS, Bar, ClosedTrade, Signal
from fractald.ledger_queries import (
    closed_trades,
    recent_signals,
    signal_objects,
)
from fractald.read_model import current_curve

if TYPE_CHECKING:
    from fractald.config import Config
    from fractald.control.server import CommandRegistry
    from fractald.core.execution.engine import TradingEngine
    from fractald.shell_deps import LedgerSource, LiveConfig

BAR_HISTORY_CAP = 7 * 1440  # a week of 1m candles per symbol: the chart's default window is 4 days
MAX_SIGNALS = 1_000
DEFAULT_SIGNALS = 20
PERIODS = ("day", "week", "month", "all")
DEFAULT_CHART_TIMEFRAMES = ("4h", "1h", "15m")
_RELATIVE = re.compile(r"^(\d+)([mhdw])$")
_UNIT_MS = {"m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 7 * 86_400_000}
_converter = cattrs.Converter()


# --------------------------------------------------------------------------- bar history


class BarHistory:
    """Recent closed 1m bars per symbol, recorded as they pass to the trading actor.

    `tap(downstream)` returns an object with the channel's `send` that
    records, then forwards: the feed is held back exactly as before (no
    buffering added, nothing dropped).
    """

    def __init__(self, cap: int = BAR_HISTORY_CAP) -> None:
        if cap < 1:
            raise ValueError(f"bar history cap must be >= 1, got {cap}")
        self.cap = cap
        self.bars: dict[str, collections.deque[Bar]] = {}

    def record(self, event: Any) -> None:
        if isinstance(event, Bar) and event.timeframe == "1m" and event.complete:
            ring = self.bars.setdefault(event.symbol, collections.deque(maxlen=self.cap))
            if not ring or event.ts_open > ring[-1].ts_open:
                ring.append(event)

    def of(self, symbol: str) -> list[Bar]:
        return list(self.bars.get(symbol, ()))

    def tap(self, downstream: Any) -> Any:
        """`downstream` wrapped (typed Any: it stands in for the MemorySendChannel it wraps)."""
        return _Tap(self, downstream)


class _Tap:
    """Quacks like the MemorySendChannel it wraps: `send` records, then forwards."""

    def __init__(self, history: BarHistory, downstream: Any) -> None:
        self._history = history
        self._downstream = downstream

    async def send(self, event: Any) -> None:
        for item in getattr(event, "events", (event,)):  # a MarketBatch, or one event
            self._history.record(item)
        await self._downstream.send(event)

    def __getattr__(self, name: str) -> Any:  # send_nowait, clone, aclose...
        return getattr(self._downstream, name)


# --------------------------------------------------------------------------- time arguments


def parse_when(text: str, now_ms: int, arg: str) -> int:
    """An ISO-8601 date/time (UTC unless it says otherwise), or a span back from now: 30m, 12h, 1d, 2w."""
    text = text.strip()
    m = _RELATIVE.match(text)
    if m:
        return now_ms - int(m.group(1)) * _UNIT_MS[m.group(2)]
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise CommandError(
            ErrorCode.BAD_ARGS,
            f"argument {arg!r}: {text!r} is not an ISO-8601 date or time "
            "(2022-01-15, 2022-01-15T12:00) nor a span like 30m, 12h, 1d, 2w",
            argument=arg,
            allowed="ISO-8601 date/time or N[m|h|d|w]",
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return int(moment.timestamp() * 1000)


def event_now_ms(engine: TradingEngine | None) -> int:
    """ "Now" for periods and spans: the event time of the newest bar the engine saw.

    On a replay this is the data's time, which is what "today" must mean there;
    live it is within a bar of the wall clock.
    """
    if engine is not None and engine.last_ts > 0:
        return int(engine.last_ts)
    return time.time_ns() // 1_000_000


def trade_row(t: ClosedTrade, tick_size: float | None = None) -> dict[str, Any]:
    row: dict[str, Any] = _converter.unstructure(t)
    row["hold_ms"] = t.ts_exit - t.ts_entry
    if tick_size is not None:
        row["tick_size"] = tick_size  # what the tables round prices to
    return row


def tick_of(config: Config, engine: TradingEngine | None, symbol: str) -> float:
    """The instrument's tick: the engine's (the venue's) when it runs, else the config's."""
    if engine is not None:
        return float(engine.instrument(symbol).tick_size)
    return float(config.broker.tick_size)


# --------------------------------------------------------------------------- drawing


def png_base64(figure: Any) -> str:
    """Render a matplotlib Figure to PNG, base64 (call on a worker thread)."""
    from fractald.reporting.plots import DPI

    buf = io.BytesIO()
    figure.savefig(buf, format="png", dpi=DPI)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _equity_png(
    curve: list[tuple[int, float]],
    trades: list[ClosedTrade],
    start: float,
    title: str,
    report: Any = None,
) -> str:
    from fractald.reporting.plots import equity_figure

    return png_base64(
        equity_figure(curve, trades, starting_equity=start, title=title, report=report)
    )


def _chart_png(
    bars: list[Bar],
    timeframes: list[str],
    trades: list[ClosedTrade],
    signals: list[Signal],
    symbol: str,
    swing_lengths: dict[str, int],
    tick_size: float,
) -> str:
    from fractald.reporting.chart import chart_figure, frames_from
    from fractald.reporting.chart_cli import bars_to_frame

    frames = frames_from(bars_to_frame(bars), timeframes)
    frames = {tf: f for tf, f in frames.items() if not f.empty}
    return png_base64(
        chart_figure(
            frames,
            trades=trades,
            signals=signals,
            symbol=symbol,
            swing_length=swing_lengths,
            tick_size=tick_size,
        )
    )


def _chart_swing_lengths(
    config: Any, symbol: str, given: str | None, engine: TradingEngine | None
) -> tuple[dict[str, int], float]:
    """The detectors' swing length per timeframe as the daemon's strategies trade (the config's),
    with the operator's `TF=N,...` over it; and the instrument's tick."""
    from fractald.reporting.live_overlays import chart_settings
    from fractald.swing_lengths import parse_swing_lengths

    lengths, tick = chart_settings(config, symbol)
    if given:
        try:
            lengths.update(parse_swing_lengths(given))
        except ValueError as exc:
            raise CommandError(
                ErrorCode.BAD_ARGS,
                f"chart: {exc}",
                argument="swing_lengths",
                allowed="TF=N,... e.g. 15m=4,1h=5",
            ) from None
    if engine is not None:
        tick = engine.instrument(symbol).tick_size
    return lengths, tick


# --------------------------------------------------------------------------- the commands


class ReportCommands:
    """Handlers for trades, signals, report, chart and metrics."""

    def __init__(
        self,
        config: LiveConfig,
        ledgers: LedgerSource,
        bar_history: BarHistory,
        metrics_text: Callable[[], str],
        engine: Callable[[], TradingEngine | None],
    ) -> None:
        self.config = config
        self.ledgers = ledgers
        self.bar_history = bar_history
        self.metrics_text = metrics_text
        self.engine = engine

    def register(self, r: CommandRegistry) -> None:
        r.register(
            "trades",
            self.trades,
            help="closed trades (newest last)",
            args=[
                Arg("since", str, help="closed since: ISO time or a span back (30m, 12h, 1d, 2w)"),
                Arg("strategy", str, help="only this strategy"),
                Arg("symbol", str, help="only this symbol"),
            ],
        )
        r.register(
            "signals",
            self.signals,
            help="recent signals and what became of them",
            args=[
                Arg(
                    "last",
                    int,
                    default=DEFAULT_SIGNALS,
                    minimum=1,
                    maximum=MAX_SIGNALS,
                    help="how many",
                )
            ],
        )
        r.register(
            "report",
            self.report,
            help="performance report (equity, P&L, ratios)",
            args=[
                Arg("period", str, default="all", choices=PERIODS, help="day, week, month or all"),
                Arg("from", str, help="start: ISO date/time or a span back (7d)"),
                Arg("to", str, help="end: ISO date/time"),
                Arg("plot", bool, default=False, help="add the equity plot (PNG, base64)"),
            ],
        )
        r.register(
            "chart",
            self.chart,
            help="multi-timeframe candles with SMC structure and trades",
            args=[
                Arg("symbol", str, required=True, help="a configured symbol"),
                Arg(
                    "timeframes",
                    list,
                    default=list(DEFAULT_CHART_TIMEFRAMES),
                    choices=tuple(tf for tf in TIMEFRAME_MS if tf != "1m"),
                    help="timeframes to stack, e.g. 4h,1h,15m",
                ),
                Arg(
                    "swing_lengths",
                    str,
                    help="detectors' swing length per timeframe over the config's, e.g. 15m=4,1h=5",
                ),
                Arg("plot", bool, default=False, help="draw it (PNG, base64)"),
            ],
        )
        r.register("metrics", self.metrics, help="the Prometheus metrics (same as the textfile)")

    async def trades(self, args: dict[str, Any], peer: PeerCred) -> list[dict[str, Any]]:
        since = None
        if args.get("since"):
            since = parse_when(args["since"], event_now_ms(self.engine()), "since")
        trades = await closed_trades(self.ledgers, since, args.get("strategy"), args.get("symbol"))
        engine = self.engine()
        return [trade_row(t, tick_of(self.config.current, engine, t.symbol)) for t in trades]

    async def signals(self, args: dict[str, Any], peer: PeerCred) -> list[dict[str, Any]]:
        engine = self.engine()
        rows = await recent_signals(self.ledgers, int(args["last"]))
        for row in rows:
            if isinstance(row.get("symbol"), str):
                row["tick_size"] = tick_of(self.config.current, engine, row["symbol"])
        return rows

    async def report(self, args: dict[str, Any], peer: PeerCred) -> dict[str, Any]:
        from fractald.reporting.report import Period, build_report, period_bounds

        engine = self.engine()
        now = event_now_ms(engine)
        period = period_bounds(args["period"], now)
        start = parse_when(args["from"], now, "from") if args.get("from") else period.start_ms
        end = parse_when(args["to"], now, "to") if args.get("to") else period.end_ms
        if start is not None and end is not None and end < start:
            raise CommandError(
                ErrorCode.BAD_ARGS,
                f"report: 'to' ({end}) is before 'from' ({start})",
                argument="to",
                allowed="a time after 'from'",
            )
        label = period.label if not (args.get("from") or args.get("to")) else "custom"
        period = Period(start, end, label)
        trades = await closed_trades(self.ledgers)
        starting = self.config.current.broker.starting_equity
        curve: list[tuple[int, float]] = []
        if engine is not None:
            starting = engine.accounting.initial_equity
            curve = current_curve(engine)
        report = build_report(trades, curve, starting, period)
        result: dict[str, Any] = report.to_dict()
        result["open"] = self._open_summary(engine)
        if args["plot"]:
            chosen = [t for t in trades if period.contains(t.ts_exit)]
            drawn = [p for p in curve if period.contains(p[0])] or curve
            if period.start_ms is not None and drawn and drawn[0][0] > period.start_ms:
                # the equity the period started from, as the report counts it (its drawdown too)
                drawn = [(period.start_ms, report.starting_equity), *drawn]
            if len(drawn) < 2 and not chosen:
                raise CommandError(
                    "no_data",
                    "nothing to plot yet: no equity history and no closed trades in this period",
                )
            title = f"fractald equity ({period.label})"
            # The headline is the report's own figures: the plot and the table never disagree.
            result["plot_png"] = await trio.to_thread.run_sync(
                _equity_png, drawn, chosen, report.starting_equity, title, report
            )
        return result

    @staticmethod
    def _open_summary(engine: TradingEngine | None) -> dict[str, Any]:
        """What the report's closed trades leave out: the open positions' unrealized P&L."""
        if engine is None:
            return {}
        acct = engine.accounting
        return {
            "equity": acct.equity,
            "unrealized_pnl": acct.unrealized,
            "open_positions": sum(1 for p in acct.positions.values() if p.side is not None),
        }

    async def chart(self, args: dict[str, Any], peer: PeerCred) -> dict[str, Any]:
        symbol = args["symbol"]
        symbols = list(self.config.current.feed.symbols)
        if symbol not in symbols:
            raise CommandError(
                ErrorCode.BAD_ARGS,
                f"chart: unknown symbol {symbol!r}; valid: {', '.join(symbols)}",
                argument="symbol",
                allowed=symbols,
            )
        timeframes = sorted(set(args["timeframes"]), key=lambda tf: -TIMEFRAME_MS[tf])
        history = self.bar_history
        bars = history.of(symbol)
        coarsest = TIMEFRAME_MS[timeframes[0]] // TIMEFRAME_MS["1m"]
        if len(bars) < max(coarsest * 3, 30):
            raise CommandError(
                "no_data",
                f"chart: only {len(bars)} 1m bars of {symbol} seen so far; "
                f"{max(coarsest * 3, 30)} are needed for {timeframes[0]}",
            )
        lengths, tick = _chart_swing_lengths(
            self.config.current, symbol, args.get("swing_lengths"), self.engine()
        )
        result: dict[str, Any] = {
            "symbol": symbol,
            "timeframes": timeframes,
            "bars_1m": len(bars),
            "from_ts": bars[0].ts_open,
            "to_ts": bars[-1].ts_open,
            "swing_lengths": {tf: lengths[tf] for tf in timeframes},
            "detectors": "live",
        }
        if args["plot"]:
            trades = await closed_trades(self.ledgers, since_ms=bars[0].ts_open, symbol=symbol)
            # Only the signals the bot acted on: denied ones would draw entries never made.
            taken = {
                row["signal_id"]
                for row in await recent_signals(self.ledgers, MAX_SIGNALS)
                if row["outcome"] == "taken"
            }
            signals = [
                s
                for s in await signal_objects(self.ledgers, MAX_SIGNALS)
                if s.symbol == symbol and s.ts_event >= bars[0].ts_open and s.signal_id in taken
            ]
            result["trades"] = len(trades)
            result["plot_png"] = await trio.to_thread.run_sync(
                _chart_png, bars, timeframes, trades, signals, symbol, lengths, tick
            )
        return result

    async def metrics(self, args: dict[str, Any], peer: PeerCred) -> str:
        return self.metrics_text()
