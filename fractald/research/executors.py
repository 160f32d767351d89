"""Where trials run: in this process, or on a Dask cluster (local by default, or one by address).

The candles go to the workers once (scattered and broadcast); each trial then
carries only slice bounds and parameters. A trial whose worker dies is retried
on another (`retries`), so a lost worker costs time, not trials.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, Protocol

import attrs

from fractald.core.candles import Candles
from fractald.core.models import Bar
from fractald.research.evaluate import Request, run_slice

Job = tuple[int, int, int, dict[str, Any]]  # lo, hi, warm_lo, params


class Executor(Protocol):
    workers: int

    @property
    def in_flight(self) -> int:
        """How many trials to keep submitted at once."""

    def run(self, request: Request, jobs: Sequence[Job]) -> list[dict[str, Any]]: ...

    def submit(self, request: Request, job: Job) -> Any:
        """Start one trial; the handle goes to `first_done` and `result`."""

    def first_done(self, pending: Sequence[Any]) -> Any:
        """One finished handle of `pending` (blocks until one is)."""

    def result(self, handle: Any) -> dict[str, Any]: ...

    def close(self) -> None: ...


@attrs.frozen(slots=True)
class _Finished:
    summary: dict[str, Any]


class InProcess:
    """Runs trials one after another here: for tests and one-core machines."""

    workers = 1
    in_flight = 1  # one at a time: each study asks, then tells, exactly as sequential Optuna

    def __init__(self, bars: Sequence[Bar]) -> None:
        self.bars = bars

    def run(self, request: Request, jobs: Sequence[Job]) -> list[dict[str, Any]]:
        return [
            run_slice(self.bars, lo, hi, warm, request, params) for lo, hi, warm, params in jobs
        ]

    def submit(self, request: Request, job: Job) -> _Finished:
        lo, hi, warm, params = job
        return _Finished(run_slice(self.bars, lo, hi, warm, request, params))

    def first_done(self, pending: Sequence[Any]) -> Any:
        return pending[0]

    def result(self, handle: Any) -> dict[str, Any]:
        return handle.summary  # type: ignore[no-any-return]

    def close(self) -> None:
        pass


class OnDask:
    """Runs trials on a Dask cluster: a LocalCluster with one single-threaded worker process per core
    by default (the backtest is pure Python: threads would share one GIL), or `scheduler` if given."""

    def __init__(
        self,
        bars: Sequence[Bar],
        scheduler: str | None = None,
        n_workers: int | None = None,
        retries: int = 2,
    ) -> None:
        from dask.distributed import Client, LocalCluster

        self._cluster = None
        if scheduler:
            self.client = Client(scheduler, timeout="20s")
        else:
            self._cluster = LocalCluster(
                n_workers=n_workers or os.cpu_count() or 1,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address=None,
            )
            self.client = Client(self._cluster)
        self.retries = retries
        # Candle columns travel as a few arrays (48 bytes a candle), a list as one object per bar.
        [self._bars] = self.client.scatter(
            [bars if isinstance(bars, Candles) else list(bars)], broadcast=True
        )

    @property
    def workers(self) -> int:
        return max(1, len(self.client.scheduler_info().get("workers", {})))

    @property
    def in_flight(self) -> int:
        # One more than the workers: a worker that finishes finds its next trial queued
        # already instead of waiting for the round trip through the scheduler to us.
        return self.workers + 1

    def run(self, request: Request, jobs: Sequence[Job]) -> list[dict[str, Any]]:
        futures = [
            self.client.submit(
                run_slice,
                self._bars,
                lo,
                hi,
                warm,
                request,
                params,
                pure=False,
                retries=self.retries,
            )
            for lo, hi, warm, params in jobs
        ]
        return list(self.client.gather(futures))

    def submit(self, request: Request, job: Job) -> Any:
        lo, hi, warm, params = job
        return self.client.submit(
            run_slice, self._bars, lo, hi, warm, request, params, pure=False, retries=self.retries
        )

    def first_done(self, pending: Sequence[Any]) -> Any:
        from dask.distributed import wait

        done, _ = wait(list(pending), return_when="FIRST_COMPLETED")
        return next(f for f in pending if f in done)

    def result(self, handle: Any) -> dict[str, Any]:
        return handle.result()  # type: ignore[no-any-return]

    def close(self) -> None:
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()
