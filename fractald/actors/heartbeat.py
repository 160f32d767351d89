"""The heartbeat actor: systemd's watchdog ping and STATUS line, honest about stalls.

WATCHDOG=1 goes out at half of WATCHDOG_USEC, and only while every running
actor has beaten within its stall limit; a stalled actor withholds the
ping (and is named in a log line), so systemd restarts a daemon that is
alive but stuck. A blocked event loop sends nothing at all, by construction.
"""

from __future__ import annotations

from collections.abc import Callable

import trio

from fractald.actors.supervisor import ActorContext, Supervisor
from fractald.notify import Notifier


class Heartbeat:
    def __init__(
        self,
        supervisor: Supervisor,
        notifier: Notifier,
        status_line: Callable[[], str],
        tick_s: float = 1.0,
    ) -> None:
        self.supervisor = supervisor
        self.notifier = notifier
        self.status_line = status_line
        self.tick_s = tick_s
        self.pings = 0
        self.withheld = 0
        self._last_status = ""
        self._stalled: tuple[str, ...] = ()

    async def run(self, ctx: ActorContext) -> None:
        next_ping = trio.current_time()
        while True:
            ctx.beat()
            now = trio.current_time()
            stalled = tuple(self.supervisor.stalled(now))
            if stalled != self._stalled:
                if stalled:
                    ctx.log.error("watchdog_withheld", stalled_actors=list(stalled))
                else:
                    ctx.log.info("watchdog_resumed")
                self._stalled = stalled
            interval = self.notifier.watchdog_interval_s
            if interval is not None and now >= next_ping:
                if stalled:
                    self.withheld += 1
                else:
                    self.notifier.watchdog()
                    self.pings += 1
                next_ping = now + interval
            self._send_status()
            until_ping = next_ping - trio.current_time() if interval is not None else self.tick_s
            await trio.sleep(max(0.0, min(self.tick_s, until_ping)))

    def _send_status(self) -> None:
        line = self.status_line()
        if self._stalled:
            line = f"STALLED: {', '.join(self._stalled)} | {line}"
        if line != self._last_status:
            self.notifier.status(line)
            self._last_status = line
