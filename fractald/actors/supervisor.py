"""The supervisor: one trio nursery, per-actor restart policy, budget and backoff, start-up gates.

An actor is an `async def run(ctx: ActorContext)`. It proves liveness with
`ctx.beat()`; the heartbeat actor withholds systemd's watchdog ping when
any running actor has not beaten within its stall limit. A failure is
classified: transient errors restart the actor after a jittered
exponential backoff, within a budget of N restarts in T seconds (an
exhausted budget is fatal); fatal errors stop the daemon at once.
"""

from __future__ import annotations

import enum
import random
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import trio

from fractald.errors import (
    Category,
    FatalError,
    FractalError,
    RateLimited,
    RestartBudgetExhausted,
    StartupGateFailed,
    classify,
)
from fractald.logs import get_logger

GATES = ("store", "reconcile", "feeds", "trading")


class RestartPolicy(enum.Enum):
    PERMANENT = "permanent"  # always restarted, even after returning normally
    TRANSIENT = "transient"  # restarted only after a transient failure
    TEMPORARY = "temporary"  # never restarted


class ActorStatus(enum.Enum):
    STARTING = "starting"
    RUNNING = "running"
    BACKOFF = "backoff"
    STOPPED = "stopped"
    FAILED = "failed"


@attrs.frozen
class ActorSpec:
    name: str
    run: Callable[[ActorContext], Awaitable[None]]
    policy: RestartPolicy = RestartPolicy.PERMANENT
    budget: int = 5
    window_s: float = 300.0
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 30.0
    stall_limit_s: float = 20.0


@attrs.define
class ActorState:
    name: str
    stall_limit_s: float
    status: ActorStatus = ActorStatus.STARTING
    restarts: int = 0
    last_beat: float = 0.0
    last_error: str = ""
    restart_times: deque[float] = attrs.field(factory=lambda: deque(maxlen=1000))

    def as_dict(self, now: float) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status.value,
            "restarts": self.restarts,
            "last_beat_age_s": round(max(0.0, now - self.last_beat), 3),
            "stall_limit_s": self.stall_limit_s,
            "last_error": self.last_error,
        }


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """Full-jitter-free 'equal jitter': half fixed, half random, so delays grow but never sync up."""
    ceiling = min(cap, base * (2 ** max(0, attempt - 1)))
    return ceiling / 2 + rng.uniform(0, ceiling / 2)


class ActorContext:
    """What an actor may touch of the supervisor: its own liveness, gates, logging."""

    def __init__(self, supervisor: Supervisor, state: ActorState) -> None:
        self._supervisor = supervisor
        self._state = state
        self.name = state.name
        self.log = get_logger(state.name)

    def beat(self) -> None:
        self._state.last_beat = trio.current_time()

    @property
    def beat_interval_s(self) -> float:
        return self._state.stall_limit_s / 4

    def pass_gate(self, gate: str) -> None:
        self._supervisor.pass_gate(gate)

    async def wait_gate(self, gate: str) -> None:
        await self._supervisor.gates[gate].wait()

    async def receive(self, channel: trio.MemoryReceiveChannel[Any]) -> Any:
        """Receive from a channel, beating while idle so a quiet actor is not taken as stalled."""
        while True:
            self.beat()
            with trio.move_on_after(self.beat_interval_s):
                return await channel.receive()

    async def sleep(self, seconds: float) -> None:
        """Sleep in slices, beating between them."""
        deadline = trio.current_time() + seconds
        while (left := deadline - trio.current_time()) > 0:
            self.beat()
            await trio.sleep(min(left, self.beat_interval_s))
        self.beat()


class Supervisor:
    def __init__(
        self,
        rng: random.Random | None = None,
        on_event: Callable[[str, dict[str, Any]], None] | None = None,
    ) -> None:
        self.states: dict[str, ActorState] = {}
        self.gates: dict[str, trio.Event] = {g: trio.Event() for g in GATES}
        self.fatal: FractalError | None = None
        self.started_at = trio.current_time()
        self._rng = rng or random.Random()
        self._on_event = on_event or (lambda kind, detail: None)
        self._cancel_scope: trio.CancelScope | None = None
        self.log = get_logger("supervisor")

    # -- gates ---------------------------------------------------------------------
    def pass_gate(self, gate: str) -> None:
        if not self.gates[gate].is_set():
            self.gates[gate].set()
            self.log.info(
                "gate_passed", gate=gate, after_s=round(trio.current_time() - self.started_at, 3)
            )

    async def wait_gates(
        self,
        timeout_s: float,
        gates: tuple[str, ...] = GATES,
        *,
        held_until: Callable[[], float] | None = None,
        on_held: Callable[[str, float], None] | None = None,
    ) -> None:
        """Wait for each gate in order; a gate not passed in time is fatal.

        Unless the venue is holding it: ``held_until()`` is the trio time until which
        the venue asked us to wait (429/418 + Retry-After). A gate that runs out while
        the venue asked within the last ``timeout_s`` waits on, until ``timeout_s``
        after the venue's wait ends (``on_held(gate, seconds)`` is told each time).
        """
        for gate in gates:
            deadline = trio.current_time() + timeout_s
            while True:
                with trio.move_on_at(deadline) as scope:
                    await self.gates[gate].wait()
                held = held_until() if held_until is not None else 0.0
                now = trio.current_time()
                if not scope.cancelled_caught or held + timeout_s <= now:
                    break
                deadline = held + timeout_s
                wait_s = max(0.0, held - now)
                self.log.warning(
                    "gate_held_by_venue",
                    gate=gate,
                    retry_after_s=round(wait_s, 3),
                    waits_until_s=round(deadline - now, 3),
                    reason="the venue asked us to wait (rate limit): transient",
                )
                if on_held is not None:
                    on_held(gate, deadline - now)
            if scope.cancelled_caught:
                pending = [g for g in gates if not self.gates[g].is_set()]
                raise StartupGateFailed(
                    f"start-up gate {gate!r} not passed within {timeout_s}s "
                    f"(pending: {', '.join(pending)})",
                    gate=gate,
                )

    def gates_status(self) -> dict[str, bool]:
        return {g: e.is_set() for g, e in self.gates.items()}

    # -- liveness ------------------------------------------------------------------
    def stalled(self, now: float | None = None) -> list[str]:
        now = trio.current_time() if now is None else now
        return [
            s.name
            for s in self.states.values()
            if s.status is ActorStatus.RUNNING and now - s.last_beat > s.stall_limit_s
        ]

    def snapshot(self) -> list[dict[str, Any]]:
        now = trio.current_time()
        return [s.as_dict(now) for s in self.states.values()]

    # -- running -------------------------------------------------------------------
    def stop_daemon(self, error: FractalError | None = None) -> None:
        """Record a fatal error (first one wins) and cancel everything under the supervisor."""
        if error is not None and self.fatal is None:
            self.fatal = error
        if self._cancel_scope is not None:
            self._cancel_scope.cancel()

    async def run(
        self, specs: list[ActorSpec], main: Callable[[trio.Nursery], Awaitable[None]] | None = None
    ) -> None:
        """Run every actor (and an optional `main` task) until stopped or a fatal error."""
        with trio.CancelScope() as scope:
            self._cancel_scope = scope
            async with trio.open_nursery() as nursery:
                for spec in specs:
                    self.states[spec.name] = ActorState(
                        spec.name, spec.stall_limit_s, last_beat=trio.current_time()
                    )
                    nursery.start_soon(self._supervise, spec)
                if main is not None:
                    nursery.start_soon(self._run_main, main, nursery)

    async def _run_main(
        self, main: Callable[[trio.Nursery], Awaitable[None]], nursery: trio.Nursery
    ) -> None:
        try:
            await main(nursery)
        except Exception as exc:  # the main task has no restart policy: any failure is fatal
            error = classify(exc)
            if error.category is not Category.FATAL:
                error = FatalError(f"{error.code}: {error.message}")
            self.log.error("main_task_failed", error=error.as_dict(), exc_info=exc)
            self.stop_daemon(error)

    async def _supervise(self, spec: ActorSpec) -> None:
        state = self.states[spec.name]
        attempt = 0
        while True:
            state.status = ActorStatus.RUNNING
            state.last_beat = trio.current_time()
            error = await self._run_once(spec, state)
            if error is None:
                if spec.policy is not RestartPolicy.PERMANENT:
                    state.status = ActorStatus.STOPPED
                    self.log.info("actor_finished", actor=spec.name)
                    return
                self.log.warning("actor_returned_restarting", actor=spec.name)
            else:
                state.last_error = f"{error.code}: {error.message}"
                if error.category is Category.FATAL:
                    state.status = ActorStatus.FAILED
                    self.log.error("actor_fatal", actor=spec.name, error=error.as_dict())
                    self._on_event("actor_fatal", {"actor": spec.name, **error.as_dict()})
                    self.stop_daemon(error)
                    return
                if spec.policy is RestartPolicy.TEMPORARY:
                    state.status = ActorStatus.FAILED
                    self.log.warning(
                        "actor_failed_not_restarted", actor=spec.name, error=error.as_dict()
                    )
                    return
            now = trio.current_time()
            state.restart_times.append(now)
            recent = [t for t in state.restart_times if now - t <= spec.window_s]
            if len(recent) > spec.budget:
                state.status = ActorStatus.FAILED
                exhausted = RestartBudgetExhausted(
                    f"actor {spec.name!r} restarted {len(recent)} times within "
                    f"{spec.window_s}s (budget {spec.budget}); last error: {state.last_error}",
                    actor=spec.name,
                )
                self.log.error(
                    "restart_budget_exhausted",
                    actor=spec.name,
                    restarts=len(recent),
                    window_s=spec.window_s,
                )
                self._on_event("actor_fatal", {"actor": spec.name, **exhausted.as_dict()})
                self.stop_daemon(exhausted)
                return
            attempt = len(recent)
            delay = backoff_delay(attempt, spec.backoff_base_s, spec.backoff_cap_s, self._rng)
            if isinstance(error, RateLimited) and error.retry_after_s:
                delay = max(delay, error.retry_after_s)
            state.restarts += 1
            state.status = ActorStatus.BACKOFF
            self.log.warning(
                "actor_restarting",
                actor=spec.name,
                attempt=attempt,
                backoff_s=round(delay, 3),
                error=state.last_error,
            )
            self._on_event(
                "actor_restart",
                {
                    "actor": spec.name,
                    "attempt": attempt,
                    "backoff_s": delay,
                    "error": state.last_error,
                },
            )
            await trio.sleep(delay)

    async def _run_once(self, spec: ActorSpec, state: ActorState) -> FractalError | None:
        ctx = ActorContext(self, state)
        try:
            await spec.run(ctx)
        except trio.Cancelled:
            raise
        except BaseExceptionGroup as group:
            return _worst(group)
        except Exception as exc:  # noqa: BLE001 - every actor failure is classified, none escapes
            if not isinstance(exc, FractalError):
                get_logger(spec.name).warning("actor_exception", exc_info=exc)
            return classify(exc)
        return None


def _worst(group: BaseExceptionGroup[Any]) -> FractalError:
    """A group is fatal if any member is; Cancelled members alone re-raise."""
    leaves: list[BaseException] = []

    def walk(g: BaseExceptionGroup[Any]) -> None:
        for e in g.exceptions:
            walk(e) if isinstance(e, BaseExceptionGroup) else leaves.append(e)

    walk(group)
    if all(isinstance(e, trio.Cancelled) for e in leaves):
        raise group
    errors = [classify(e) for e in leaves if not isinstance(e, trio.Cancelled)]
    fatal = [e for e in errors if e.category is Category.FATAL]
    return fatal[0] if fatal else errors[0]
