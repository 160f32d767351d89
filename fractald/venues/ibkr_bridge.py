"""ib_async's asyncio loop in a thread of its own, and a bridge so trio can await it.

ib_async is asyncio; the daemon is trio. The IB client lives on a private
event loop in a dedicated thread; trio submits coroutines to it
(`run_coroutine_threadsafe`) and waits on a trio Event that the future's
done-callback sets through the trio token, so a stuck IB call never blocks
the trio loop or the watchdog: the caller's timeout cancels the wait (and the
IB-side future). What IB pushes by itself crosses back through a bounded
trio channel; when it is full the IB thread waits (backpressure), so no fill
is ever dropped.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import trio

T = TypeVar("T")


class AsyncioThread:
    """A running asyncio loop in a daemon thread; `stop()` ends it."""

    def __init__(self, name: str = "ib_async") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    async def call(self, make: Callable[[], Awaitable[T]], timeout_s: float) -> T:
        """Run `make()` on the asyncio loop; wait for it from trio, at most `timeout_s`."""
        future: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(
            _awaited(make), self.loop
        )
        done = trio.Event()
        token = trio.lowlevel.current_trio_token()
        future.add_done_callback(lambda _f: token.run_sync_soon(done.set))
        try:
            with trio.fail_after(timeout_s):
                await done.wait()
        except BaseException:
            future.cancel()
            raise
        return future.result()

    def call_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        self.loop.call_soon_threadsafe(fn, *args)

    def stop(self) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)


async def _awaited(make: Callable[[], Awaitable[T]]) -> T:
    return await make()


class ToTrio:
    """Pushes items from the asyncio thread into a bounded trio channel, waiting when it is full."""

    def __init__(self, send: trio.MemorySendChannel[Any], token: trio.lowlevel.TrioToken) -> None:
        self.send = send
        self.token = token
        self.closed = False

    def put(self, item: Any) -> None:
        """Called on the IB thread. Blocks that thread (not trio) while the channel is full."""
        if self.closed:
            return
        try:
            trio.from_thread.run(self.send.send, item, trio_token=self.token)
        except (trio.RunFinishedError, trio.ClosedResourceError, trio.BrokenResourceError):
            self.closed = True
