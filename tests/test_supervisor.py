"""Supervisor behaviour under trio's MockClock: restarts, backoff, budgets, fatal stops, watchdog."""

from __future__ import annotations

import random

import pytest
import trio
import trio.testing

from fractald.actors.heartbeat import Heartbeat
from fractald.actors.supervisor import (
    ActorContext,
    ActorSpec,
    ActorStatus,
    RestartPolicy,
    Supervisor,
    backoff_delay,
)
from fractald.errors import (
    ConfigError,
    FeedDisconnected,
    RateLimited,
    RestartBudgetExhausted,
    StartupGateFailed,
)
from fractald.notify import Notifier


@pytest.fixture
def mock_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


def test_backoff_grows_and_is_capped() -> None:
    rng = random.Random(1)
    ceilings = [min(8.0, 0.5 * 2 ** (n - 1)) for n in range(1, 9)]
    for attempt, ceiling in enumerate(ceilings, start=1):
        delays = [backoff_delay(attempt, 0.5, 8.0, rng) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert max(delays) - min(delays) > 0  # jittered, not fixed


async def test_transient_failure_restarts_with_growing_backoff(mock_clock) -> None:
    starts: list[float] = []

    async def flaky(ctx: ActorContext) -> None:
        starts.append(trio.current_time())
        if len(starts) < 5:
            raise FeedDisconnected("venue closed the socket")
        await trio.sleep_forever()

    sup = Supervisor(rng=random.Random(7))
    spec = ActorSpec("feed", flaky, budget=10, window_s=1000, backoff_base_s=1, backoff_cap_s=60)
    with trio.move_on_after(500):
        await sup.run([spec])
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert len(starts) == 5
    assert sup.states["feed"].restarts == 4
    # attempt n waits within [2^(n-1)/2, 2^(n-1)] seconds: strictly growing ranges
    for n, gap in enumerate(gaps, start=1):
        ceiling = 2 ** (n - 1)
        assert ceiling / 2 <= gap <= ceiling + 1e-9
    assert sup.fatal is None
    assert sup.states["feed"].status is ActorStatus.RUNNING


async def test_rate_limit_waits_at_least_retry_after(mock_clock) -> None:
    starts: list[float] = []

    async def limited(ctx: ActorContext) -> None:
        starts.append(trio.current_time())
        if len(starts) == 1:
            raise RateLimited("429", retry_after_s=42)
        await trio.sleep_forever()

    sup = Supervisor(rng=random.Random(3))
    with trio.move_on_after(100):
        await sup.run([ActorSpec("rest", limited, backoff_base_s=0.1, backoff_cap_s=1)])
    assert starts[1] - starts[0] >= 42


async def test_exhausted_budget_stops_daemon_as_fatal(mock_clock) -> None:
    other_cancelled = trio.Event()

    async def always_fails(ctx: ActorContext) -> None:
        raise OSError("connection reset")

    async def bystander(ctx: ActorContext) -> None:
        try:
            await trio.sleep_forever()
        finally:
            other_cancelled.set()

    sup = Supervisor(rng=random.Random(0))
    await sup.run([
        ActorSpec("feed", always_fails, budget=3, window_s=3600, backoff_base_s=0.1),
        ActorSpec("other", bystander),
    ])
    assert isinstance(sup.fatal, RestartBudgetExhausted)
    assert sup.fatal.exit_status == 1
    assert sup.states["feed"].restarts == 3
    assert sup.states["feed"].status is ActorStatus.FAILED
    assert other_cancelled.is_set()


async def test_budget_window_forgets_old_restarts(mock_clock) -> None:
    count = 0

    async def fails_rarely(ctx: ActorContext) -> None:
        nonlocal count
        count += 1
        await trio.sleep(100)  # each failure is 100 s after the previous run started
        raise FeedDisconnected("drop")

    sup = Supervisor(rng=random.Random(0))
    with trio.move_on_after(2000):
        await sup.run([ActorSpec("feed", fails_rarely, budget=2, window_s=150,
                                 backoff_base_s=0.1, backoff_cap_s=0.2)])
    assert sup.fatal is None
    assert count > 10


async def test_fatal_error_stops_at_once(mock_clock) -> None:
    async def bad_config(ctx: ActorContext) -> None:
        await trio.sleep(1)
        raise ConfigError("config.feed.venue: 'kraken' is not allowed")

    async def bystander(ctx: ActorContext) -> None:
        await trio.sleep_forever()

    sup = Supervisor()
    start = trio.current_time()
    await sup.run([ActorSpec("feed", bad_config), ActorSpec("other", bystander)])
    assert trio.current_time() - start == pytest.approx(1)
    assert isinstance(sup.fatal, ConfigError)
    assert sup.fatal.exit_status == 78
    assert sup.states["feed"].restarts == 0


async def test_unknown_exception_is_fatal(mock_clock) -> None:
    async def buggy(ctx: ActorContext) -> None:
        raise ZeroDivisionError("oops")

    sup = Supervisor()
    await sup.run([ActorSpec("signals", buggy)])
    assert sup.fatal is not None and sup.fatal.exit_status == 1
    assert "ZeroDivisionError" in sup.fatal.message


async def test_policies_on_normal_return(mock_clock) -> None:
    runs = {"perm": 0, "trans": 0, "temp": 0}

    def make(name: str):
        async def actor(ctx: ActorContext) -> None:
            runs[name] += 1
            await trio.sleep(1)
        return actor

    sup = Supervisor(rng=random.Random(0))
    with trio.move_on_after(30):
        await sup.run([
            ActorSpec("perm", make("perm"), budget=1000, backoff_base_s=0.1, backoff_cap_s=0.1),
            ActorSpec("trans", make("trans"), policy=RestartPolicy.TRANSIENT),
            ActorSpec("temp", make("temp"), policy=RestartPolicy.TEMPORARY),
        ])
    assert runs["trans"] == 1 and runs["temp"] == 1
    assert runs["perm"] > 5
    assert sup.states["trans"].status is ActorStatus.STOPPED


async def test_temporary_actor_failure_is_not_restarted(mock_clock) -> None:
    runs = 0

    async def once(ctx: ActorContext) -> None:
        nonlocal runs
        runs += 1
        raise FeedDisconnected("gone")

    sup = Supervisor()
    with trio.move_on_after(60):
        await sup.run([ActorSpec("probe", once, policy=RestartPolicy.TEMPORARY)])
    assert runs == 1 and sup.fatal is None
    assert sup.states["probe"].status is ActorStatus.FAILED


async def test_gates_in_order_and_timeout(mock_clock) -> None:
    sup = Supervisor()

    async def passes_some(ctx: ActorContext) -> None:
        ctx.pass_gate("store")
        await trio.sleep(2)
        ctx.pass_gate("reconcile")
        await trio.sleep_forever()

    async def main(nursery: trio.Nursery) -> None:
        await sup.wait_gates(timeout_s=5)

    await sup.run([ActorSpec("boot", passes_some)], main=main)
    assert isinstance(sup.fatal, StartupGateFailed)
    assert "'feeds'" in sup.fatal.message
    assert sup.gates_status() == {"store": True, "reconcile": True, "feeds": False, "trading": False}


class RecordingNotifier(Notifier):
    def __init__(self, watchdog_usec: int) -> None:
        super().__init__({"WATCHDOG_USEC": str(watchdog_usec)})
        self.sent: list[tuple[float, dict[str, object]]] = []

    def send(self, **fields):  # type: ignore[override]
        self.sent.append((trio.current_time(), fields))
        return True

    def pings(self) -> list[float]:
        return [t for t, f in self.sent if "WATCHDOG" in f]


async def test_stalled_actor_withholds_watchdog_and_recovery_resumes(mock_clock) -> None:
    sup = Supervisor()
    notifier = RecordingNotifier(watchdog_usec=4_000_000)  # ping every 2 s
    heartbeat = Heartbeat(sup, notifier, status_line=lambda: "ok")
    stall = trio.Event()
    recover = trio.Event()

    async def worker(ctx: ActorContext) -> None:
        while True:
            ctx.beat()
            if stall.is_set() and not recover.is_set():
                await recover.wait()  # alive but not beating: stuck on something
            await trio.sleep(0.5)

    async def script(nursery: trio.Nursery) -> None:
        await trio.sleep(10)
        stall.set()
        await trio.sleep(30)
        recover.set()
        await trio.sleep(10)
        sup.stop_daemon()

    await sup.run([ActorSpec("worker", worker, stall_limit_s=5),
                   ActorSpec("heartbeat", heartbeat.run, stall_limit_s=5)], main=script)
    pings = notifier.pings()
    before = [t for t in pings if t < 10]
    during = [t for t in pings if 10 + 5 + 2 < t < 40]
    after = [t for t in pings if t > 41]
    assert len(before) >= 4 and all(b - a == pytest.approx(2, abs=0.01)
                                    for a, b in zip(before, before[1:]))
    assert during == []
    assert len(after) >= 3
    assert heartbeat.withheld > 5
    statuses = [f["STATUS"] for _, f in notifier.sent if "STATUS" in f]
    assert any(s.startswith("STALLED: worker") for s in statuses)
