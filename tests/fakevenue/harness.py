"""Running the feed in tests: a recording logger and a consumer that collects what it sends."""

from __future__ import annotations

from typing import Any

import trio

from fractald.core.models import Bar, FeedHealth, Quote, TradeTick


class RecordingLog:
    """Enough of a structlog logger for the feed: keeps (level, event, fields)."""

    def __init__(self) -> None:
        self.records: list[tuple[str, str, dict[str, Any]]] = []

    def _rec(self, level: str, event: str, **kw: Any) -> None:
        self.records.append((level, event, kw))

    def info(self, event: str, **kw: Any) -> None:
        self._rec("info", event, **kw)

    def warning(self, event: str, **kw: Any) -> None:
        self._rec("warning", event, **kw)

    def error(self, event: str, **kw: Any) -> None:
        self._rec("error", event, **kw)

    def events(self, name: str) -> list[dict[str, Any]]:
        return [kw for _, event, kw in self.records if event == name]


class Collected:
    def __init__(self) -> None:
        self.items: list[object] = []
        self.beats = 0

    def beat(self) -> None:
        self.beats += 1

    @property
    def bars(self) -> list[Bar]:
        return [i for i in self.items if isinstance(i, Bar)]

    def bars_of(self, timeframe: str) -> list[Bar]:
        return [b for b in self.bars if b.timeframe == timeframe]

    @property
    def trades(self) -> list[TradeTick]:
        return [i for i in self.items if isinstance(i, TradeTick)]

    @property
    def quotes(self) -> list[Quote]:
        return [i for i in self.items if isinstance(i, Quote)]

    @property
    def health(self) -> list[FeedHealth]:
        return [i for i in self.items if isinstance(i, FeedHealth)]

    async def consume(self, receive: trio.MemoryReceiveChannel[object]) -> None:
        async with receive:
            async for item in receive:
                self.items.append(item)
