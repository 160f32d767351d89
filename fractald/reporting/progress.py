"""Progress of long work (backtests, walk-forward folds) on stderr.

On a terminal: one line redrawn in place, a bar with the share done and an
ETA. Otherwise (a pipe, a log file, CI): a plain line at each tenth, so a
log shows the work moving without a flood of carriage returns.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

BAR_WIDTH = 30


def eta_text(seconds: float) -> str:
    seconds = max(0, int(seconds + 0.5))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class Progress:
    def __init__(
        self,
        total: int,
        label: str,
        stream: TextIO,
        *,
        tty: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total = max(1, total)
        self.label = label
        self.stream = stream
        self.tty = stream.isatty() if tty is None else tty
        self.clock = clock
        self.started = clock()
        self.done = 0
        self._tenths = 0

    def advance(self, n: int) -> None:
        self.done = min(self.total, self.done + n)
        share = self.done / self.total
        elapsed = self.clock() - self.started
        eta = elapsed / share * (1 - share) if share > 0 else 0.0
        if self.tty:
            filled = int(share * BAR_WIDTH)
            self.stream.write(
                f"\r{self.label} [{'#' * filled}{'.' * (BAR_WIDTH - filled)}] "
                f"{share * 100:3.0f}%  ETA {eta_text(eta)}  "
            )
            self.stream.flush()
        elif int(share * 10) > self._tenths:
            self._tenths = int(share * 10)
            self.stream.write(
                f"{self.label}: {share * 100:.0f}% ({self.done:,} of {self.total:,}), "
                f"ETA {eta_text(eta)}\n"
            )
            self.stream.flush()

    def finish(self) -> None:
        if self.tty:
            self.stream.write("\r" + " " * (len(self.label) + BAR_WIDTH + 24) + "\r")
            self.stream.flush()
