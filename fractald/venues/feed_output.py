"""The feed's side of its bounded output channel, and the nursery its tasks run in."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio

from fractald.core.bars import BarCorrection
from fractald.core.continuous import ContractRolled
from fractald.core.models import Bar, FeedHealth, Quote, TradeTick
from fractald.errors import FractalError


class FeedOutput:
    """Sends into the bounded channel: bars and trades wait for room, quotes and health conflate."""

    def __init__(self, send: trio.MemorySendChannel[Any]) -> None:
        self._send = send
        self._latest: dict[tuple[type, str], Quote | FeedHealth] = {}
        self._wake = trio.Event()
        self.conflated = 0
        self.sent = 0

    async def send(self, item: Bar | TradeTick | BarCorrection | ContractRolled) -> None:
        try:
            # No scheduler round trip while there is room; wait (never drop) when full.
            self._send.send_nowait(item)
        except trio.WouldBlock:
            await self._send.send(item)
        self.sent += 1

    def offer(self, item: Quote | FeedHealth) -> None:
        key = (type(item), item.symbol)
        if key in self._latest:
            self.conflated += 1
        self._latest[key] = item
        self._wake.set()

    async def pump(self) -> None:
        """Forward the latest quote/health per symbol whenever the channel has room."""
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            await self.flush()

    async def flush(self) -> None:
        while self._latest:
            key = next(iter(self._latest))
            await self._send.send(self._latest.pop(key))
            self.sent += 1


@asynccontextmanager
async def feed_nursery() -> AsyncIterator[trio.Nursery]:
    """A nursery that re-raises a lone error as itself, so the supervisor sees its category."""
    try:
        async with trio.open_nursery() as nursery:
            yield nursery
    except BaseExceptionGroup as group:
        leaves = _leaves(group)
        fractal = [e for e in leaves if isinstance(e, FractalError)]
        chosen = fractal[0] if fractal else leaves[0]
        if len(leaves) == 1 or fractal:
            raise chosen from group
        raise


def _leaves(group: BaseExceptionGroup) -> list[BaseException]:
    out: list[BaseException] = []
    for exc in group.exceptions:
        out.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return out
