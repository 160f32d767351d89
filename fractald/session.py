"""A trading session: the pure pipeline plus its persistence, as the trading actor runs it.

The pipeline is plain Python over plain data, so its whole state is
snapshotted (pickled, then checksummed by the ledger) together with the
events each bar produced, in one transaction. Start-up restores the
newest good snapshot; the feed resumes after the bar it covers.
"""

from __future__ import annotations

import base64
import pickle
from typing import Any

import attrs
import cattrs

from fractald.actors.events import EventBus
from fractald.config import Config
from fractald.core.models import Bar, FeedHealth, Quote, TradeTick
from fractald.errors import StateCorrupt
from fractald.store.writer import AsyncLedger

SNAPSHOT_FORMAT = 1
SNAPSHOT_EVERY_BARS = 500  # a snapshot at least this often, besides every bar with events

_converter = cattrs.Converter()


def event_kind(event: Any) -> str:
    kind = getattr(event, "kind", None)
    if isinstance(kind, str):
        return kind
    name = type(event).__name__
    return "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")


def event_payload(event: Any) -> dict[str, Any]:
    if attrs.has(type(event)):
        data = _converter.unstructure(event)
        return data if isinstance(data, dict) else {"value": data}
    if isinstance(event, dict):
        return event
    return {"value": repr(event)}


def build_pipeline(config: Config) -> Any:
    """The pure pipeline the backtester also drives (None until strategies are configured)."""
    from fractald.pipeline_factory import pipeline_from_config

    return pipeline_from_config(config)


class TradingSession:
    def __init__(self, config: Config, ledger: AsyncLedger, log: Any, bus: EventBus,
                 pipeline: Any, cursor: dict[str, int]) -> None:
        self.config = config
        self.ledger = ledger
        self.log = log
        self.bus = bus
        self.pipeline = pipeline
        self.cursor = cursor
        self.bars_since_snapshot = 0
        self.bars_processed = 0
        self.last_bar: dict[str, dict[str, Any]] = {}
        self.feed_health: dict[str, FeedHealth] = {}

    # -- start-up == recovery -------------------------------------------------------------
    @classmethod
    async def recover(cls, config: Config, ledger: AsyncLedger, log: Any,
                      bus: EventBus) -> TradingSession:
        snapshot = await ledger.latest_good_snapshot()
        if snapshot is None:
            log.info("session_fresh_start")
            return cls(config, ledger, log, bus, build_pipeline(config), {})
        state = snapshot.state
        if state.get("format") != SNAPSHOT_FORMAT:
            raise StateCorrupt(
                f"snapshot {snapshot.id} has format {state.get('format')!r}, this version reads "
                f"{SNAPSHOT_FORMAT}; see runbooks/state-database-corrupt.md")
        try:
            pipeline = pickle.loads(base64.b64decode(state["pipeline"])) if state.get("pipeline") \
                else build_pipeline(config)
        except Exception as exc:
            raise StateCorrupt(f"snapshot {snapshot.id} cannot be read ({exc}); "
                               "see runbooks/state-database-corrupt.md") from exc
        session = cls(config, ledger, log, bus, pipeline, dict(state.get("cursor", {})))
        session.bars_processed = int(state.get("bars_processed", 0))
        session.apply_config(config)
        log.info("session_recovered", snapshot_id=snapshot.id, last_seq=snapshot.last_seq,
                 cursor=session.cursor, bars_processed=session.bars_processed)
        return session

    def apply_config(self, config: Config) -> None:
        self.config = config
        if self.pipeline is not None and hasattr(self.pipeline, "apply_config"):
            self.pipeline.apply_config(config)

    # -- market events --------------------------------------------------------------------
    async def on_bar(self, bar: Bar, accepting: bool = True) -> None:
        key = f"{bar.symbol}/{bar.timeframe}"
        if bar.ts_open <= self.cursor.get(key, -1):
            return  # already covered by the restored state (a resumed or restarted feed)
        events: list[Any] = []
        if self.pipeline is not None:
            events = list(self.pipeline.on_bar(bar, accepting=accepting))
        self.last_bar[key] = {"ts_open": bar.ts_open, "close": bar.close,
                              "complete": bar.complete}
        self.cursor[key] = bar.ts_open
        if bar.timeframe == "1m":
            self.bars_processed += 1
            self.bars_since_snapshot += 1
        if events or self.bars_since_snapshot >= SNAPSHOT_EVERY_BARS:
            await self.commit(events, ts_event=bar.ts_event)
        for event in events:
            self.bus.publish(event_kind(event), event_payload(event))

    async def on_tick(self, tick: TradeTick | Quote) -> None:
        if self.pipeline is None or not hasattr(self.pipeline, "on_tick"):
            return
        events = list(self.pipeline.on_tick(tick))
        if events:
            await self.commit(events, ts_event=tick.ts_event)
            for event in events:
                self.bus.publish(event_kind(event), event_payload(event))

    def on_feed_health(self, health: FeedHealth) -> None:
        self.feed_health[health.symbol] = health
        if self.pipeline is not None and hasattr(self.pipeline, "on_feed_health"):
            self.pipeline.on_feed_health(health)

    # -- persistence ----------------------------------------------------------------------
    def snapshot_state(self) -> dict[str, Any]:
        blob = b"" if self.pipeline is None else pickle.dumps(self.pipeline, protocol=5)
        return {"format": SNAPSHOT_FORMAT, "cursor": dict(self.cursor),
                "bars_processed": self.bars_processed,
                "pipeline": base64.b64encode(blob).decode() if blob else ""}

    async def commit(self, events: list[Any], ts_event: int) -> None:
        """Events and the state they lead to, in one transaction: all or nothing."""
        items = [(event_kind(e), event_payload(e), ts_event) for e in events]
        intents = [(e.client_order_id, event_payload(e)) for e in events
                   if event_kind(e) == "order_intent" and hasattr(e, "client_order_id")]
        await self.ledger.commit_batch(items, intents, self.snapshot_state())
        self.bars_since_snapshot = 0

    async def write_snapshot(self, reason: str) -> None:
        await self.commit([], ts_event=0)
        self.log.info("snapshot_written", reason=reason, cursor=self.cursor)

    # -- what operators see ---------------------------------------------------------------
    def summary_line(self) -> str:
        if self.pipeline is not None and hasattr(self.pipeline, "summary_line"):
            return str(self.pipeline.summary_line())
        return f"{self.bars_processed} bars"

    def status(self) -> dict[str, Any]:
        base: dict[str, Any] = {"bars_processed": self.bars_processed, "cursor": self.cursor,
                                "last_bar": self.last_bar}
        if self.pipeline is not None and hasattr(self.pipeline, "status"):
            base.update(self.pipeline.status())
        return base
