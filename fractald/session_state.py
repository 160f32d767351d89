"""The trading session's state as data: what a snapshot holds, and how it goes back into a pipeline.

Start-up always builds the pipeline from the *current* config, then puts
the stored state into it (`restore_into`), so config changes ([strategies],
[broker], [risk]) and new defaults of a new release take effect on every
restart. Nothing here does I/O: the session reads the ledger and hands the
rows in.

Three kinds of state, three ways back:
* trading state (engine: orders, brackets, account, breakers, reliability,
  execution quality, market caches; pipelines: managed trades, learning,
  counters) is JSON in the snapshot (`session_state`);
* detection state (live SMC, slow averages, armed setups) is rebuilt by
  running detection again over the candles the ledger stored
  (`warm_up_from`), in the order it first saw them;
* partial bars of the bar builders are not stored: the feed restarts at the
  start of the widest timeframe's period before the cursor and the session
  skips what the cursor covers, so every partial bar is rebuilt from the
  same 1m bars or trades (replay, or the venue's REST backfill).

A 0.1.0 state (schema 1: a pickled pipeline) is never unpickled: its event
log is folded into a fresh pipeline instead (`fold_legacy_events`), once.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fractald.core.execution import events as engine_events
from fractald.core.execution.paper_venue import paper_trade_number
from fractald.core.models import Bar
from fractald.state_schema import stamp
from fractald.store.ledger import CandleRow, Event

# Pipeline events in the log that are not the engine's (they change no engine state).
_PIPELINE_COUNTERS = {"signal": "signals", "setup_skipped": "skips"}


def session_state(pipeline: Any, cursor: dict[str, int], bars_processed: int) -> dict[str, Any]:
    """The snapshot: versioned, plain JSON, no class names."""
    engine: Any = getattr(pipeline, "engine", None)
    engine_state = engine.snapshot() if hasattr(engine, "snapshot") else None
    venue = getattr(pipeline, "venue", None)
    if engine_state is not None:
        # The paper venue's book, under the engine's `broker` key where releases that kept
        # the broker inside the engine stored it: the same place and form, so either reads it.
        engine_state["broker"] = venue.snapshot() if venue is not None else None
    return stamp(
        {
            "cursor": dict(cursor),
            "bars_processed": bars_processed,
            "engine": engine_state,
            "pipelines": pipeline.export_state() if hasattr(pipeline, "export_state") else {},
        }
    )


def restore_into(pipeline: Any, state: dict[str, Any]) -> list[str]:
    """Put a (migrated) snapshot's trading state into a pipeline built from the current config."""
    engine: Any = getattr(pipeline, "engine", None)
    if state.get("engine") is not None and hasattr(engine, "restore"):
        engine.restore(state["engine"])
        venue = getattr(pipeline, "venue", None)
        if venue is not None:
            book = state["engine"].get("broker")
            if book is not None:
                venue.restore(book)
            else:  # a state made with a real venue, now paper: the book is the engine's orders
                resync_paper_venue(pipeline)
    if hasattr(pipeline, "import_state"):
        return list(pipeline.import_state(state.get("pipelines", {})))
    return []


def candle_bar(row: CandleRow) -> Bar:
    symbol, timeframe, ts_open, o, h, low, c, v, complete = row
    return Bar(symbol, timeframe, ts_open, o, h, low, c, v, complete)


def candle_row(bar: Bar) -> CandleRow:
    return (
        bar.symbol,
        bar.timeframe,
        bar.ts_open,
        bar.open,
        bar.high,
        bar.low,
        bar.close,
        bar.volume,
        bar.complete,
    )


def shift_row(row: CandleRow, offset: float) -> CandleRow:
    """A stored candle's prices moved by `offset` (a futures roll's back-adjustment)."""
    symbol, timeframe, ts_open, o, h, low, c, v, complete = row
    return (
        symbol,
        timeframe,
        ts_open,
        o + offset,
        h + offset,
        low + offset,
        c + offset,
        v,
        complete,
    )


def warm_up_from(pipeline: Any, rows: Iterable[CandleRow], cursor: dict[str, int]) -> int:
    """Detection over stored candles the cursor covers (a later one was never committed); how many."""
    warm_up = getattr(pipeline, "warm_up", None)
    if warm_up is None:
        return 0
    fed = 0
    for row in rows:
        covered = cursor.get(f"{row[0]}/{row[1]}")
        if covered is None or row[2] > covered:
            continue
        warm_up(candle_bar(row))
        fed += 1
    return fed


def fold_legacy_events(pipeline: Any, events: Iterable[Event]) -> dict[str, int]:
    """Rebuild trading state from a 0.1.0 event log: each engine event applied, then followed.

    The engine's appliers are the only code that changes its state, so
    applying the log gives back orders, brackets, the account, breakers,
    pause, reliability; `follow` gives the strategies their learning from
    the closed trades. Market caches (last prices, ATR) refill with the next
    bars; the breakers' peak equity becomes the best equity the log shows. Returns counts per kind of what was folded.
    """
    engine = pipeline.engine
    pipelines = list(getattr(pipeline, "pipelines", {}).values()) or [pipeline]
    counts: dict[str, int] = {}
    peak = engine.equity
    seq = 0
    for event in events:
        counter = _PIPELINE_COUNTERS.get(event.kind)
        if counter is not None:
            symbol = _event_symbol(event.payload)
            for p in pipelines:
                if symbol is None or p.symbol == symbol:
                    setattr(p, counter, getattr(p, counter) + 1)
        if event.kind not in engine_events.EVENT_TYPES:
            continue
        typed = engine_events.from_dict({**event.payload, "kind": event.kind})
        engine.apply(typed)
        if isinstance(typed, engine_events.OrderFilled):  # trade ids stay unique after the fold
            seq = max(seq, paper_trade_number(typed.trade_id))
        for p in pipelines:
            p.follow([typed])
        counts[event.kind] = counts.get(event.kind, 0) + 1
        peak = max(peak, engine.equity)
    # The breakers' peak followed every bar's mark, which the log does not hold: the best
    # equity the log shows is the nearest we know (a drawdown is judged from there on).
    engine.breakers.peak_equity = max(engine.breakers.peak_equity, peak)
    # The paper venue's book follows the folded orders now, not at the next
    # bar: the start-up reconciliation asks it before any bar arrives.
    resync_paper_venue(pipeline, seq)
    return counts


def resync_paper_venue(pipeline: Any, seq: int = 0) -> None:
    """The pipeline's paper venue (if any) holds what the engine's orders say is working.

    `seq`: the highest paper trade number the ledger's fills hold, if known.
    """
    venue = getattr(pipeline, "venue", None)
    if venue is None:
        return
    engine = pipeline.engine
    positions: dict[str, float] = {}
    for pos in engine.accounting.positions.values():
        positions[pos.symbol] = positions.get(pos.symbol, 0.0) + pos.quantity
    seq = max([seq, *(paper_trade_number(t) for o in engine.orders.values() for t in o.trade_ids)])
    venue.resync(engine.working_orders(), positions, seq)


def _event_symbol(payload: dict[str, Any]) -> str | None:
    signal = payload.get("signal")
    if isinstance(signal, dict) and isinstance(signal.get("symbol"), str):
        return str(signal["symbol"])
    symbol = payload.get("symbol")
    return symbol if isinstance(symbol, str) else None
