"""A fake venue in a background thread on the real clock, for tests that run the daemon as a subprocess.

Venue time is the wall clock (as at a real venue), and the market is a
script of trades laid from `history_s` before now to `duration_s` after:
what lies before the start is reachable only through REST klines.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Any

import trio

from fakevenue.server import FakeBinance, Trade


def steady_trades(start_ms: int, end_ms: int, every_ms: int = 500, price: float = 37_000.0,
                  seed: int = 3) -> list[Trade]:
    rng = random.Random(seed)
    out = []
    for ts in range(start_ms, end_ms, every_ms):
        price = round(price + rng.uniform(-3, 3), 2)
        out.append(Trade(ts, price, round(rng.uniform(0.001, 1.0), 3), rng.random() < 0.5))
    return out


class LiveFake:
    """Runs `make(t0_ms, now_ms)` -> FakeBinance (or a subclass) in a thread until `stop()`."""

    def __init__(self, make: Callable[[int, int], FakeBinance]) -> None:
        self._make = make
        self.venue: FakeBinance | None = None
        self._ready = threading.Event()
        self._token: Any = None
        self._scope: trio.CancelScope | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, daemon=True)

    def __enter__(self) -> FakeBinance:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError(f"fake venue did not start: {self._error!r}")
        assert self.venue is not None
        return self.venue

    def __exit__(self, *exc: object) -> None:
        if self._token is not None and self._scope is not None:
            trio.from_thread.run_sync(self._scope.cancel, trio_token=self._token)
        self._thread.join(10)

    def _main(self) -> None:
        try:
            trio.run(self._serve)
        except BaseException as exc:  # noqa: BLE001 - reported by __enter__ or the test
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        now_ms = int(time.time() * 1000)
        t0_ms = now_ms - round(trio.current_time() * 1000)  # venue time == wall clock
        self.venue = self._make(t0_ms, now_ms)
        self._token = trio.lowlevel.current_trio_token()
        with trio.CancelScope() as self._scope:
            async with trio.open_nursery() as nursery:
                await nursery.start(self.venue.run)
                self._ready.set()
