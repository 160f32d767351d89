"""`fractald chart`: the multi-timeframe SMC chart drawn offline from a candle file."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from fractald.core.candles import Candles
from fractald.core.models import TIMEFRAME_MS, Bar
from fractald.errors import ExitStatus

DEFAULT_TIMEFRAMES = "4h,1h,15m"


def bars_to_frame(bars: Sequence[Bar]) -> pd.DataFrame:
    """OHLCV DataFrame indexed by UTC open time, from bars of one timeframe."""
    if isinstance(bars, Candles):  # columns already: no Bar objects to walk
        index = pd.to_datetime(bars.ts_open, unit="ms", utc=True)
        return pd.DataFrame(
            {
                "open": bars.open,
                "high": bars.high,
                "low": bars.low,
                "close": bars.close,
                "volume": bars.volume,
            },
            index=index,
        )
    index = pd.to_datetime([b.ts_open for b in bars], unit="ms", utc=True)
    return pd.DataFrame(
        {
            "open": [b.open for b in bars],
            "high": [b.high for b in bars],
            "low": [b.low for b in bars],
            "close": [b.close for b in bars],
            "volume": [b.volume for b in bars],
        },
        index=index,
    )


def parse_time_ms(text: str | None) -> int | None:
    """An ISO-8601 date or time (UTC unless it says otherwise) as epoch milliseconds."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO-8601 date or time (e.g. 2022-01-15 or 2022-01-15T12:00)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def parse_timeframes(text: str) -> list[str]:
    frames = [t.strip() for t in text.split(",") if t.strip()]
    bad = [t for t in frames if t not in TIMEFRAME_MS]
    if bad or not frames:
        raise argparse.ArgumentTypeError(
            f"unknown timeframe(s) {bad or text!r}; allowed: {', '.join(TIMEFRAME_MS)}"
        )
    return frames


def parse_swing_length_option(text: str) -> dict[str, int]:
    from fractald.swing_lengths import parse_swing_lengths

    try:
        return parse_swing_lengths(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_chart_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", help="candles: CSV, JSON or Parquet (default: bundled BTC 1m)")
    parser.add_argument("--symbol", default="BTC-PERP", help="symbol name for the title")
    parser.add_argument(
        "--timeframes",
        type=parse_timeframes,
        default=DEFAULT_TIMEFRAMES,
        help=f"comma-separated, coarsest first (default {DEFAULT_TIMEFRAMES})",
    )
    parser.add_argument("--from", dest="start", type=parse_time_ms, help="window start (UTC)")
    parser.add_argument("--to", dest="end", type=parse_time_ms, help="window end (UTC)")
    parser.add_argument(
        "--config",
        help="the daemon's config: its strategies' swing lengths and "
        "the instrument's tick (default: the embedded default config)",
    )
    parser.add_argument(
        "--swing-lengths",
        type=parse_swing_length_option,
        metavar="TF=N,...",
        help="override the detectors' swing length per timeframe, e.g. 15m=4,1h=5 "
        "(default: what the config's strategies trade on)",
    )
    parser.add_argument(
        "--plot",
        default="chart.png",
        help="PNG file to write (default chart.png; the path written is printed)",
    )
    parser.add_argument(
        "--trades",
        action="store_true",
        help="also trade the candles as `fractald backtest` does (the config's "
        "strategies) and draw those trades, numbered, with their table",
    )
    parser.add_argument(
        "--catalog",
        metavar="DIR",
        default=None,
        help="read candles from this catalog (fractald download) by --venue/--symbol/--from/--to",
    )
    parser.add_argument(
        "--venue", default="binance-futures", help="the catalog's venue (default binance-futures)"
    )


def _load_bars(args: argparse.Namespace) -> Sequence[Bar]:
    """The candles to draw: the catalog's --from..--to range, a file, or the bundled ones."""
    from fractald.venues.replay import bundled_candle_columns, load_candle_columns

    catalog = getattr(args, "catalog", None)
    if catalog is None:
        return (
            load_candle_columns(args.data, args.symbol)
            if args.data
            else bundled_candle_columns(args.symbol)
        )
    from fractald.research.catalog import Catalog

    if args.data:
        raise ValueError("give either --data or --catalog, not both")
    if args.start is None:
        raise ValueError("--catalog needs --from (and optionally --to)")
    return Catalog(catalog).load_columns(
        getattr(args, "venue", "binance-futures"),
        args.symbol,
        args.start,
        args.end if args.end is not None else 2**62,
    )


def backtest_trades(bars: Sequence[Bar], config: Any, symbol: str) -> list[Any]:
    """The trades the config's strategies make over `bars`: the backtest's own pipeline, so the
    chart's trades are the ones `fractald backtest` (and a daemon replay) reports."""
    from fractald.backtest import StrategySettings, new_runner

    cfg = config.strategies
    settings = StrategySettings(
        tuple(cfg.enabled),
        cfg.timeframe,
        tuple(cfg.trend_timeframes),
        {k: dict(v) for k, v in cfg.params.items()},
        config,
    )
    runner = new_runner(symbol, bars[0].timeframe, settings, config.broker.starting_equity)
    runner.feed(bars)
    return list(runner.trades)


def run_chart(args: argparse.Namespace) -> int:
    from fractald.config import load_config
    from fractald.errors import ConfigError
    from fractald.reporting.chart import frames_from, plot_chart
    from fractald.reporting.live_overlays import chart_settings
    from fractald.venues.replay import ReplayError

    try:
        config = load_config(getattr(args, "config", None))
    except ConfigError as exc:
        print(f"fractald chart: {exc}", file=sys.stderr)
        return int(ExitStatus.CONFIG)
    lengths, tick = chart_settings(config, args.symbol)
    lengths.update(getattr(args, "swing_lengths", None) or {})

    timeframes = args.timeframes
    if isinstance(timeframes, str):
        timeframes = parse_timeframes(timeframes)
    try:
        bars = _load_bars(args)
    except (ReplayError, ValueError) as exc:
        print(f"fractald chart: {exc}", file=sys.stderr)
        return int(ExitStatus.USAGE)
    frame = bars_to_frame(bars)
    trades = backtest_trades(bars, config, args.symbol) if getattr(args, "trades", False) else []
    path = plot_chart(
        frames_from(frame, timeframes),
        args.plot,
        start_ms=args.start,
        end_ms=args.end,
        symbol=args.symbol,
        swing_length=lengths,
        tick_size=tick,
        trades=trades,
    )
    used = ", ".join(f"{tf} swing {lengths.get(tf, '?')}" for tf in timeframes)
    traded = f"; {len(trades)} backtest trades" if getattr(args, "trades", False) else ""
    print(f"wrote {path} ({used}; live detectors; {len(bars)} candles{traded})")
    return 0
