"""A venue answering 429 + Retry-After is waited out, never escalated to a restart or a failed start.

The feed against the fake Binance on 127.0.0.1 (MockClock), which answers
every REST request and WebSocket handshake with 429 and a Retry-After for
a spell: the feed backs off as asked however many handshakes fail (a
restart would only ask again at once) and records how long the venue asked
it to wait; the supervisor's start-up gate reads that and waits on instead
of failing (the daemon itself: tests/test_rate_limit_daemon.py).
"""

from __future__ import annotations

import trio
import trio.testing
from fakevenue.harness import Collected, RecordingLog
from fakevenue.server import FakeBinance, Trade

from fractald.actors.supervisor import ActorContext, ActorSpec, Supervisor
from fractald.errors import StartupGateFailed
from fractald.venues.feed import FeedSettings, FeedState, run_feed

T0 = 1_700_006_400_000


def _trades(minutes: int) -> list[Trade]:
    return [Trade(T0 + 1_000 + i * 2_000, 37_000.0 + (i % 9), 0.01, i % 2 == 0)
            for i in range(minutes * 30)]


async def test_a_429_spell_is_backed_off_past_max_failures_and_remembered(
        mock_clock: trio.testing.MockClock) -> None:
    mock_clock.autojump_threshold = 0.001
    venue = FakeBinance(_trades(10), t0_ms=T0, limited_for_s=120.0, retry_after_s=7.0)
    state, got, log = FeedState(), Collected(), RecordingLog()
    send, receive = trio.open_memory_channel[object](32)
    async with trio.open_nursery() as nursery:
        await nursery.start(venue.run)
        settings = FeedSettings(venue="binance-futures", symbols=("BTCUSDT",), timeframes=("1m",),
                                ws_url=venue.ws_url, rest_url=venue.rest_url, max_failures=2,
                                backoff_base_s=0.2, backoff_cap_s=2.0)
        nursery.start_soon(got.consume, receive)
        nursery.start_soon(run_feed, settings, send, got.beat, log, state)
        await trio.sleep(30)
        # Within the spell: the venue's wait is remembered, as far ahead as it asked.
        assert state.venue_wait_until > trio.current_time()
        with trio.move_on_after(300):
            while not got.trades:
                await trio.sleep(1.0)
        nursery.cancel_scope.cancel()
    assert got.trades, "no market data after the spell"
    waits = [e["delay_s"] for e in log.events("ws_reconnecting")]
    assert len(waits) > 2 and min(waits) >= 7.0  # more than max_failures, each as long as asked
    assert venue.answered_429 > 2


async def test_the_start_up_gate_waits_while_the_venue_asks_and_fails_once_it_stops_asking(
        autojump_clock: trio.testing.MockClock) -> None:
    held: list[tuple[str, float]] = []

    async def attempt(venue_wait_s: float, gate_at_s: float) -> Supervisor:
        sup = Supervisor()
        start = trio.current_time()

        async def feed(ctx: ActorContext) -> None:
            for gate in ("store", "reconcile"):
                ctx.pass_gate(gate)
            await trio.sleep(gate_at_s)
            ctx.pass_gate("feeds")
            ctx.pass_gate("trading")
            await trio.sleep_forever()

        async def main(nursery: trio.Nursery) -> None:
            await sup.wait_gates(5.0, held_until=lambda: start + venue_wait_s,
                                 on_held=lambda gate, s: held.append((gate, s)))
            sup.stop_daemon()

        await sup.run([ActorSpec("feed", feed)], main=main)
        return sup

    # The venue asked us to wait 20 s: data at 22 s is a slow start, not a failure.
    assert (await attempt(venue_wait_s=20.0, gate_at_s=22.0)).fatal is None
    assert held and held[0][0] == "feeds"
    # Asked to wait 20 s, still no data 5 s (the gate's time) after that: fatal, clearly.
    held.clear()
    failed = await attempt(venue_wait_s=20.0, gate_at_s=60.0)
    assert isinstance(failed.fatal, StartupGateFailed)
    # Never asked to wait: the gate's own 5 s, as before.
    held.clear()
    never = await attempt(venue_wait_s=-1000.0, gate_at_s=8.0)
    assert isinstance(never.fatal, StartupGateFailed) and held == []
