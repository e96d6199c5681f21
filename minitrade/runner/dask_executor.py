"""A Dask executor: compute units run as tasks on a Dask distributed cluster, beyond one machine.

What travels: each `RunInput` (the plan, the strategy's source text, cash, dates) as a task
argument, and its prices once per `run()` call: every distinct price frame set is scattered to
the cluster once (`scatter(broadcast=False)`; Dask copies it to the workers that need it) and the
tasks reference that future, so a 200-trial sweep sends its prices once, not 200 times. Workers
need minitrade installed (`pip install 'minitrade[dask]'`), never a checkout of the trading repo,
DuckDB, brokers or secrets: results come back as plain `RunResult`s and the coordinating process
records them.

A worker lost mid-sweep: the scheduler re-runs the tasks it held on other workers (a task whose
worker dies three times is given up as `KilledWorker`, reported as that unit's failure). Each
task is keyed by its unit's run id and results are de-duplicated by run id as they are collected,
so a unit is never counted twice. `retries=1` re-runs a task whose function raised (a transient
failure of the worker's own machinery; the strategy's errors are results, not exceptions).

Unlike the local executor, Dask runs units in worker threads: no per-run deadline or memory cap
(start workers with `--memory-limit`), and a strategy's prints go to the worker's log.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace
from typing import Any

import pandas as pd

from minitrade.errors import ExecutorUnavailable
from minitrade.runner.compute import RunInput, RunResult, compute

log = logging.getLogger("minitrade.executor")
CONNECT_TIMEOUT = 10.0   # seconds to reach the scheduler
RETRIES = 1


def compute_remote(inp: RunInput, prices: dict[str, pd.DataFrame]) -> RunResult:
    """Worker side: the unit with the scattered prices, computed; the result names the worker."""
    result = compute(replace(inp, prices=prices))
    try:
        from distributed import get_worker

        where = f"dask {get_worker().address}"
    except (ImportError, ValueError):  # called outside a worker (tests of the function itself)
        where = "dask"
    return replace(result, worker=where)


class DaskExecutor:
    """Units as tasks on the Dask scheduler at `address`; results as they complete, once each."""

    def __init__(self, address: str, *, connect_timeout: float = CONNECT_TIMEOUT) -> None:
        self.address = address
        try:
            import distributed
        except ImportError as e:
            raise ExecutorUnavailable("the Dask executor needs dask and distributed: "
                                      "pip install 'minitrade[dask]' (or use --executor local)") from e
        try:
            self._client: Any = dask_api(distributed).Client(address, timeout=connect_timeout,
                                                             set_as_default=False)
        except (OSError, TimeoutError) as e:
            raise ExecutorUnavailable(f"cannot reach the Dask scheduler at {address} ({e}); start it with "
                                      "`dask scheduler` and workers with `dask worker ADDRESS`, "
                                      "or use --executor local") from e

    def __repr__(self) -> str:
        return f"DaskExecutor({self.address!r})"

    def run(self, inputs: Iterable[RunInput], *,
            should_stop: Callable[[], bool] = lambda: False) -> Iterator[RunResult]:
        """Submit every unit (a feed's once it is closed), then yield each result once as it completes (any order)."""
        import distributed

        inputs = list(inputs)
        if not inputs:
            return
        tasks = self._submit(inputs)
        seen: set[str] = set()
        try:
            for future in dask_api(distributed).as_completed(list(tasks), loop=self._client.loop):
                inp = tasks[future]
                if inp.run_id in seen:  # never count a unit twice, whatever the cluster replays
                    continue
                seen.add(inp.run_id)
                yield self._result(future, inp)
                if should_stop():
                    yield from (_interrupted(i) for i in tasks.values() if i.run_id not in seen)
                    return
        finally:
            self._client.cancel([f for f in tasks if not f.done()])

    def _submit(self, inputs: Sequence[RunInput]) -> dict[Any, RunInput]:
        """Scatter each distinct set of prices once, then submit one task per unit keyed by its run id."""
        sweep = uuid.uuid4().hex[:8]
        scattered: dict[int, Any] = {}
        tasks: dict[Any, RunInput] = {}
        for inp in inputs:
            prices = scattered.get(id(inp.prices))
            if prices is None:  # a list of one: scattering the dict itself would scatter each frame apart
                (prices,) = self._client.scatter([inp.prices], broadcast=False)
                scattered[id(inp.prices)] = prices
            future = self._client.submit(compute_remote, replace(inp, prices={}), prices,
                                         key=f"minitrade-{sweep}-{inp.run_id}", pure=False, retries=RETRIES)
            tasks[future] = inp
        log.info("submitted %d units to %s (%d price sets scattered)", len(tasks), self.address, len(scattered))
        return tasks

    @staticmethod
    def _result(future: Any, inp: RunInput) -> RunResult:
        if future.status == "finished":
            result = future.result()
            if isinstance(result, RunResult):
                return result
        error = future.exception() if future.status == "error" else None
        log.warning("run %s failed on the Dask cluster: %r", inp.run_id, error)
        what = type(error).__name__ if error is not None else future.status
        return RunResult(inp.run_id, error_kind="killed",
                         error=f"killed: the Dask cluster gave no result ({what}: {error}; plan {inp.plan.name})",
                         worker="dask")

    def close(self) -> None:
        """Disconnect from the scheduler (the cluster keeps running)."""
        self._client.close()


def dask_api(module: Any) -> Any:
    """The distributed module as `Any`: it has no type annotations for mypy strict."""
    return module


def _interrupted(inp: RunInput) -> RunResult:
    return RunResult(inp.run_id, error_kind="interrupted", error="interrupted: the sweep was stopped")
