"""Executors carry `RunInput -> RunResult` units: inline, or isolated in worker processes.

`ProcessExecutor` runs each unit in its own process, forked from a forkserver that imported
pandas and backtrader once, so a fork costs milliseconds, not an import. A process per run (rather
than long-lived workers) is what makes the limits simple and exact:
- a wall-clock deadline per run: past it the process is killed, the run is `timeout`, the pool
  goes on with a fresh process;
- an address-space cap (RLIMIT_AS) per run: a strategy that allocates past it gets MemoryError
  (or dies), the run is `killed` with the limit named, the daemon's own memory is untouched;
- the strategy's stdout/stderr captured in the worker, bounded (first and last part kept), and
  file descriptors 1/2 pointed at /dev/null, so megabytes of prints never reach the daemon;
- `workers` runs at once (default: cores); results come back as they finish.
A worker that dies without a result is reported, never retried here: the committing side decides.

`InlineExecutor` runs units in the calling process, one after another (research backtests,
tests of the pure path); it has no deadline and captures nothing.
"""

from __future__ import annotations

import io
import logging
import multiprocessing
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Protocol

from minitrade.models import ExecutorSpec
from minitrade.runner.compute import RunInput, RunResult, compute

log = logging.getLogger("minitrade.executor")
OUTPUT_KEEP = 64 * 1024           # characters kept from the start and from the end of a run's output
DEFAULT_MEMORY_LIMIT = 2 * 1024**3
STOP_POLL = 0.5                   # seconds between looks at a stop request while runs compute
JOIN_SECONDS = 10.0               # the longest a caller that stops early waits for the executor's thread


class Executor(Protocol):
    """Runs compute units; yields each result as it is ready (any order)."""

    def run(self, inputs: Sequence[RunInput], *,
            should_stop: Callable[[], bool] = ...) -> Iterator[RunResult]: ...

    def close(self) -> None: ...


def executor_for(spec: ExecutorSpec) -> ProcessExecutor:
    """The executor minitrade.yaml's `executor:` section asks for."""
    return ProcessExecutor(spec.workers, memory_limit=spec.memory_limit_mb * 1024**2)


LOCAL = "local"


def chosen_executor(spec: ExecutorSpec, override: str | None = None) -> Executor:
    """The executor of one research command: `--executor local|tcp://HOST:PORT` if given, else
    minitrade.yaml's `executor:` (`type: dask` with its `address`, or local worker processes)."""
    address = override if override is not None else (spec.address if spec.type == "dask" else LOCAL)
    if address in (None, LOCAL):
        return executor_for(spec)
    from minitrade.runner.dask_executor import DaskExecutor  # dask is an optional extra

    return DaskExecutor(address)


def executor_label(spec: ExecutorSpec, override: str | None = None) -> str:
    """`local` or the Dask scheduler's address, as `chosen_executor` would pick."""
    if override is not None:
        return override
    return spec.address if spec.type == "dask" and spec.address else LOCAL


class InlineExecutor:
    """In this process, one unit after another; no deadline, nothing captured."""

    def run(self, inputs: Sequence[RunInput], *,
            should_stop: Callable[[], bool] = lambda: False) -> Iterator[RunResult]:
        for inp in inputs:
            yield _interrupted(inp) if should_stop() else compute(inp)

    def close(self) -> None:
        """Nothing to release."""


def ready_batches(executor: Executor, inputs: Sequence[RunInput], *,
                  should_stop: Callable[[], bool] = lambda: False) -> Generator[list[RunResult], None, None]:
    """The executor's results in batches of those ready together, for a caller that commits them.

    A thread drives the executor, so it starts the next unit while the caller is busy with the last
    result: workers never wait on the caller's bookkeeping, and a caller slower than its workers gets
    everything that finished meanwhile as one batch (one open of the state file for all of them).
    The inline executor computes in the caller's thread: its results come one at a time.
    """
    if isinstance(executor, InlineExecutor):
        yield from ([result] for result in executor.run(inputs, should_stop=should_stop))
        return
    feed: queue.SimpleQueue[RunResult | BaseException | None] = queue.SimpleQueue()
    cancelled = threading.Event()

    def pump() -> None:
        try:
            for result in executor.run(inputs, should_stop=lambda: cancelled.is_set() or should_stop()):
                feed.put(result)
        except BaseException as e:  # handed to the caller's thread, raised there
            feed.put(e)
        feed.put(None)

    thread = threading.Thread(target=pump, name="minitrade-executor", daemon=True)
    thread.start()
    try:
        yield from _drain(feed)
    finally:
        cancelled.set()  # the caller stopped early: what still computes comes back interrupted
        # worker processes notice within STOP_POLL; a Dask sweep only at its next result, so the
        # wait is bounded and the caller's close() of the executor ends the rest
        thread.join(JOIN_SECONDS)


def _drain(feed: queue.SimpleQueue[RunResult | BaseException | None]) -> Iterator[list[RunResult]]:
    """Block for the next item, then take whatever else is already there; None ends the feed."""
    while True:
        batch: list[RunResult] = []
        item = feed.get()
        while True:
            if item is None or isinstance(item, BaseException):
                if batch:
                    yield batch
                if item is None:
                    return
                raise item
            batch.append(item)
            try:
                item = feed.get_nowait()
            except queue.Empty:
                break
        yield batch


class BoundedText(io.TextIOBase):
    """A text stream keeping its first and last `keep` characters and counting the rest."""

    def __init__(self, keep: int = OUTPUT_KEEP) -> None:
        self.keep, self.head, self.tail, self.total = keep, "", "", 0

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.total += len(text)
        if len(self.head) < self.keep:
            room = self.keep - len(self.head)
            self.head, text = self.head + text[:room], text[room:]
        if text:
            self.tail = (self.tail + text)[-self.keep:]
        return len(text)

    def text(self) -> str:
        if self.total <= len(self.head) + len(self.tail):
            return self.head + self.tail
        skipped = self.total - len(self.head) - len(self.tail)
        return f"{self.head}\n[... {skipped:,} characters left out ...]\n{self.tail}"


def _limit_memory(limit: int | None) -> None:
    if limit is None:
        return
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = limit if hard == resource.RLIM_INFINITY else min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))


def _worker(inp: RunInput, conn: Connection, memory_limit: int | None) -> None:
    """Child side: cap memory, capture output, compute, send the result back, exit."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the daemon decides when a run stops
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.dup2(null, 2)
    captured = BoundedText()
    sys.stdout = sys.stderr = captured
    _limit_memory(memory_limit)
    try:
        result = compute(inp)
    except MemoryError:
        result = RunResult(inp.run_id, error_kind="memory")
    if result.error_kind == "memory":
        result = replace(result, error_kind="killed", error=f"killed: memory limit {_size(memory_limit)} "
                                                            f"(plan {inp.plan.name})")
    result = replace(result, output=captured.text(), output_bytes=captured.total, worker=f"pid {os.getpid()}",
                     cpu_seconds=_cpu_seconds())
    try:
        conn.send(result)
    except MemoryError:
        conn.send(RunResult(inp.run_id, error_kind="killed", error=f"killed: memory limit {_size(memory_limit)}"))
    conn.close()


def _cpu_seconds() -> float:
    """This process's CPU so far: a forkserver's child is nobody's RUSAGE_CHILDREN, so it reports its own."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@contextmanager
def _main_script_hidden() -> Iterator[None]:
    """While a run's process is started, the main script is not named to it.

    multiprocessing re-runs the main *script* (not a `-m` module) in every child it starts, to find
    functions defined there. A run needs nothing from it (its target and input are importable by
    name), and the `minitrade` console script imports the whole command line: measured ~300 ms of
    CPU per run (217 ms with the script hidden against 507-561 ms without, the same backtest).
    """
    main = sys.modules.get("__main__")
    if main is None or getattr(main, "__spec__", None) is not None or "__file__" not in main.__dict__:
        yield
        return
    path = main.__dict__.pop("__file__")
    try:
        yield
    finally:
        main.__dict__["__file__"] = path


def _interrupted(inp: RunInput) -> RunResult:
    return RunResult(inp.run_id, error_kind="interrupted",
                     error="interrupted: the daemon stopped during this run (resumed within its grace period)")


def _size(limit: int | None) -> str:
    if limit is None:
        return "none"
    return f"{limit / 1024**3:g} GiB" if limit >= 1024**3 else f"{limit / 1024**2:g} MiB"


@dataclass
class _Running:
    inp: RunInput
    process: BaseProcess
    conn: Connection
    deadline: float


class ProcessExecutor:
    """Each unit in its own worker process: a deadline, a memory cap, bounded captured output."""

    def __init__(self, workers: int | None = None, *, memory_limit: int | None = DEFAULT_MEMORY_LIMIT) -> None:
        self.workers = max(1, workers or os.cpu_count() or 1)
        self.memory_limit = memory_limit
        self._context = multiprocessing.get_context("forkserver")
        # The forkserver imports these once; each run's process is forked from it ready to work.
        self._context.set_forkserver_preload(["minitrade.runner.compute"])
        self._running: list[_Running] = []

    def run(self, inputs: Sequence[RunInput], *,
            should_stop: Callable[[], bool] = lambda: False) -> Iterator[RunResult]:
        """Results as runs finish; once `should_stop()` says so, the rest come back interrupted."""
        waiting = list(inputs)
        try:
            while waiting or self._running:
                if should_stop():
                    yield from (_interrupted(inp) for inp in self.abandon() + waiting)
                    return
                while waiting and len(self._running) < self.workers:
                    self._start(waiting.pop(0))
                yield from self._collect()
        finally:
            self.abandon()

    def _start(self, inp: RunInput) -> None:
        receive, send = self._context.Pipe(duplex=False)
        process = self._context.Process(target=_worker, args=(inp, send, self.memory_limit),
                                        name=f"minitrade-run-{inp.run_id}", daemon=True)
        with _main_script_hidden():
            process.start()
        send.close()
        self._running.append(_Running(inp, process, receive, time.monotonic() + inp.timeout))

    def _collect(self) -> Iterable[RunResult]:
        """Wait for the first result, death or deadline among the running units; report those."""
        now = time.monotonic()
        # wake at least every STOP_POLL seconds to honour a stop request promptly
        timeout = min(STOP_POLL, max(0.0, min(r.deadline for r in self._running) - now))
        ready = wait([r.conn for r in self._running] + [r.process.sentinel for r in self._running], timeout)
        done: list[RunResult] = []
        for run in list(self._running):
            result = self._outcome(run, ready)
            if result is not None:
                self._running.remove(run)
                done.append(result)
        return done

    def _outcome(self, run: _Running, ready: Sequence[object]) -> RunResult | None:
        if run.conn in ready or run.process.sentinel in ready:
            result = self._receive(run)
            if result is not None or not run.process.is_alive():
                self._reap(run)
                return result or self._died(run)
        if time.monotonic() >= run.deadline:
            self._reap(run)
            log.warning("run %s passed its %g s deadline; its worker was killed", run.inp.run_id, run.inp.timeout)
            return RunResult(run.inp.run_id, error_kind="timeout",
                             error=f"timed out after {run.inp.timeout:g} s (plan {run.inp.plan.name}: raise "
                                   "`timeout` in the plan if it really needs longer)", worker=f"pid {run.process.pid}")
        return None

    @staticmethod
    def _receive(run: _Running) -> RunResult | None:
        try:
            if run.conn.poll():
                received = run.conn.recv()
                return received if isinstance(received, RunResult) else None
        except (EOFError, OSError):
            return None
        return None

    def _died(self, run: _Running) -> RunResult:
        code = run.process.exitcode
        how = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        hint = f"; memory limit {_size(self.memory_limit)}" if self.memory_limit else ""
        log.warning("run %s: its worker died (%s)", run.inp.run_id, how)
        return RunResult(run.inp.run_id, error_kind="killed", error=f"killed: the worker died ({how}{hint})",
                         worker=f"pid {run.process.pid}")

    @staticmethod
    def _reap(run: _Running) -> None:
        if run.process.is_alive():
            run.process.kill()
        run.process.join(5)
        run.conn.close()

    def abandon(self) -> list[RunInput]:
        """Kill every running unit (the daemon is stopping); returns their inputs."""
        left = [r.inp for r in self._running]
        for run in self._running:
            self._reap(run)
        self._running.clear()
        return left

    def close(self) -> None:
        self.abandon()
