"""`fractald run` against a fake venue: the fake in a thread on the real clock, a replay ending now.

The replay is a slice of the bundled BTC candles shifted so its last bar
closed a minute ago: the engine's event time is the venue's wall time, so
intents are as young as a live feed's would be. The fake's price is the
replay's last close, so an operator's entry fills where the books expect.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

import pandas as pd
import trio

from fractald.datasets import bundled_btc_1m


def candles_ending_now(path: Path, count: int = 300, start: int = 20_000) -> tuple[Path, float]:
    """`count` bundled 1m candles, shifted to end a minute ago; returns (path, last close)."""
    frame = bundled_btc_1m().iloc[start:start + count].copy()
    last_open = (int(time.time()) // 60 - 2) * 60
    shift = pd.Timestamp(last_open, unit="s", tz=frame.index.tz) - frame.index[-1]
    frame.index = frame.index + shift
    out = frame.copy()
    out.insert(0, "timestamp", out.index.strftime("%Y-%m-%d %H:%M:%S.%f"))
    out.to_csv(path, index=False)
    return path, float(frame["close"].iloc[-1])


class FakeInThread:
    """A trio fake venue (`await nursery.start(fake.run)`) on its own thread; `call` runs on its loop."""

    def __init__(self, fake: Any) -> None:
        self.fake = fake
        self._token: trio.lowlevel.TrioToken | None = None
        self._ready = threading.Event()
        self._stop: trio.Event | None = None
        self._thread = threading.Thread(target=lambda: trio.run(self._main), daemon=True)

    async def _main(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        self._stop = trio.Event()
        async with trio.open_nursery() as nursery:
            await nursery.start(self.fake.run)
            self._ready.set()
            await self._stop.wait()
            nursery.cancel_scope.cancel()

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """`fn(*args)` on the fake's loop (its state is the loop's to touch)."""
        assert self._token is not None
        return trio.from_thread.run_sync(fn, *args, trio_token=self._token)

    def __enter__(self) -> Self:
        self._thread.start()
        assert self._ready.wait(10), "the fake venue did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        if self._stop is not None and self._token is not None:
            trio.from_thread.run_sync(self._stop.set, trio_token=self._token)
        self._thread.join(10)


@contextmanager
def running(fake: Any) -> Iterator[FakeInThread]:
    with FakeInThread(fake) as runner:
        yield runner


def wait_for(what: Callable[[], Any], timeout: float, why: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = what()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s {why}")
