"""The daemon's event bus: every notable thing is published here, for `tail` and the alerts.

Publishing never blocks: each subscriber has a bounded buffer and a slow
subscriber loses its oldest-undelivered events (counted), never the daemon's time.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import attrs
import trio


@attrs.frozen
class DaemonEvent:
    seq: int
    kind: str
    data: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "kind": self.kind, **self.data}


@attrs.define(eq=False)
class _Subscriber:
    send: trio.MemorySendChannel[DaemonEvent]
    kinds: frozenset[str] | None
    dropped: int = 0


class EventBus:
    def __init__(self, recent_cap: int = 200) -> None:
        self._subscribers: list[_Subscriber] = []
        self._seq = itertools.count(1)
        self.recent: list[DaemonEvent] = []
        self._recent_cap = recent_cap

    def publish(self, kind: str, data: dict[str, Any] | None = None) -> DaemonEvent:
        event = DaemonEvent(next(self._seq), kind, dict(data or {}))
        self.recent.append(event)
        if len(self.recent) > self._recent_cap:
            del self.recent[: len(self.recent) - self._recent_cap]
        for sub in self._subscribers:
            if sub.kinds is not None and kind not in sub.kinds:
                continue
            try:
                sub.send.send_nowait(event)
            except trio.WouldBlock:
                sub.dropped += 1
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
        return event

    @contextmanager
    def subscribe(
        self, kinds: set[str] | None = None, buffer: int = 1000
    ) -> Iterator[trio.MemoryReceiveChannel[DaemonEvent]]:
        send, receive = trio.open_memory_channel[DaemonEvent](buffer)
        sub = _Subscriber(send, frozenset(kinds) if kinds else None)
        self._subscribers.append(sub)
        try:
            yield receive
        finally:
            self._subscribers.remove(sub)
            send.close()
            receive.close()

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)
