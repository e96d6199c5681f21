"""Executors carry `RunInput -> RunResult` units: inline, or isolated in worker processes.

`ProcessExecutor` runs units in worker processes forked from a forkserver that imported pandas and
backtrader once, so a fork costs milliseconds, not an import. The limits are per unit and exact:
- a wall-clock deadline per unit: past it the worker is killed, the unit is `timeout`, a fresh
  worker takes the next one;
- an address-space cap (RLIMIT_AS) per worker: a strategy that allocates past it gets MemoryError
  (or dies), the unit is `killed` with the limit named, that worker is replaced, and the daemon's
  own memory is untouched;
- the strategy's stdout/stderr captured per unit in the worker, bounded (first and last part kept),
  and file descriptors 1/2 pointed at /dev/null, so megabytes of prints never reach the daemon;
- `workers` units at once (default: cores); results come back as they finish.
A worker serves consecutive units of one strategy source only (an optimisation's trials, a plan's
replayed runs, the plans due together that share a strategy file): a fresh process per unit cost
15 % of a 200 ms backtest, and 30-45 ms of machine CPU on a 60 ms one (its first touches of
memory, cold caches, its exit; a bare os.fork costs as much).
Another strategy's code never runs where a strategy has been, and each plan gets a module of its
own (`load_strategy(owner=...)`), so plans that share a file never share its module-level state.
Workers are recycled after MAX_UNITS_PER_WORKER units and all end with the batch.
A worker that dies without a result is reported, never retried here: the committing side decides.

`InlineExecutor` runs units in the calling process, one after another (research backtests,
tests of the pure path); it has no deadline and captures nothing.
"""

from __future__ import annotations

import io
import logging
import math
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
MAX_UNITS_PER_WORKER = 200       # a worker is replaced after this many units (bounds what a strategy leaks)


class Executor(Protocol):
    """Runs compute units; yields each result as it is ready (any order). `inputs` may be a UnitFeed,
    whose units arrive while the executor runs."""

    def run(self, inputs: Iterable[RunInput], *,
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

    def run(self, inputs: Iterable[RunInput], *,
            should_stop: Callable[[], bool] = lambda: False) -> Iterator[RunResult]:
        for inp in inputs:
            yield _interrupted(inp) if should_stop() else compute(inp)

    def close(self) -> None:
        """Nothing to release."""


class UnitFeed:
    """Units handed to a running executor one by one until `close()`: the daemon prepares its next
    run while workers compute the ones before. Iterating it blocks for the next unit, to the close;
    an executor that waits on several things waits on it too (it has a `fileno`)."""

    def __init__(self) -> None:
        self._units: queue.SimpleQueue[RunInput | None] = queue.SimpleQueue()
        self._wake, self._waker = multiprocessing.Pipe(duplex=False)
        self._signalled = False  # a wake-up is in the pipe: at most one, so a consumer that never
        self.closed = False      # drains it (one that iterates) cannot fill the pipe and block `put`

    def put(self, unit: RunInput) -> None:
        self._push(unit)

    def close(self) -> None:
        self._push(None)

    def _push(self, item: RunInput | None) -> None:
        self._units.put(item)
        if not self._signalled:
            self._signalled = True
            self._waker.send_bytes(b"")

    def fileno(self) -> int:
        return self._wake.fileno()

    def take(self) -> list[RunInput]:
        """The units put since the last take, without waiting."""
        while self._wake.poll():
            self._wake.recv_bytes()
        self._signalled = False  # after the drain: a put from now on wakes the consumer again
        taken: list[RunInput] = []
        while not self.closed:
            try:
                unit = self._units.get_nowait()
            except queue.Empty:
                break
            if unit is None:
                self.closed = True
            else:
                taken.append(unit)
        return taken

    def __iter__(self) -> Iterator[RunInput]:
        while not self.closed:
            unit = self._units.get()
            if unit is None:
                self.closed = True
            else:
                yield unit


IDLE_SECONDS = 0.25  # no result for this long: the caller's `on_idle` lets go of what it holds


class Results:
    """An executor's results for a caller that commits them, in batches of those ready together.

    A thread drives the executor, so it starts the next unit while the caller is busy with the last
    result: workers never wait on the caller's bookkeeping, and a caller slower than its workers gets
    everything that finished meanwhile as one batch (one transaction for all of them).
    `on_idle` is called before a wait of more than IDLE_SECONDS for the next result (the daemon lets
    go of the state file then). Both `due` (a caller that cannot wait) and `batches(gather, linger)`
    give a batch once it holds `gather` results or its first has waited `linger` seconds. The inline executor computes in the caller's thread when it asks
    for `batches()`: its results come one at a time, `on_idle` called before each.
    """

    def __init__(self, executor: Executor, inputs: Iterable[RunInput], *,
                 should_stop: Callable[[], bool] = lambda: False, on_idle: Callable[[], None] = lambda: None) -> None:
        self._executor, self._inputs, self._should_stop, self._on_idle = executor, inputs, should_stop, on_idle
        self._feed: queue.SimpleQueue[RunResult | BaseException | None] = queue.SimpleQueue()
        self._cancelled = threading.Event()
        self._ended = False
        self._held: list[RunResult] = []  # ready, kept by `due` for a batch of more
        self._held_since = 0.0
        self._thread: threading.Thread | None = None
        if not isinstance(executor, InlineExecutor):
            self._thread = threading.Thread(target=self._pump, name="minitrade-executor", daemon=True)
            self._thread.start()

    def _pump(self) -> None:
        try:
            for result in self._executor.run(self._inputs,
                                             should_stop=lambda: self._cancelled.is_set() or self._should_stop()):
                self._feed.put(result)
        except BaseException as e:  # handed to the caller's thread, raised there
            self._feed.put(e)
        self._feed.put(None)

    def ready(self) -> list[RunResult]:
        """The results ready now, without waiting (none from the inline executor: it computes in `batches`)."""
        batch: list[RunResult] = []
        while not self._ended and self._thread is not None:
            try:
                item = self._feed.get_nowait()
            except queue.Empty:
                break
            if not self._take(item, batch):
                break
        return batch

    def due(self, gather: int, linger: float) -> list[RunResult]:
        """Without waiting (the caller has work of its own): the results ready so far once they are
        `gather` or the first has waited `linger` seconds, else none; until then they are held, and
        `batches()` gives them first."""
        ready = self.ready()
        if ready and not self._held:
            self._held_since = time.monotonic()
        self._held += ready
        if self._held and (len(self._held) >= gather or time.monotonic() - self._held_since > linger):
            batch, self._held = self._held, []
            return batch
        return []

    def batches(self, *, gather: int = 1, linger: float = 0.0) -> Iterator[list[RunResult]]:
        """Block for the next result, then take whatever else is ready too; to the last result.

        With `gather`, a batch also waits for more results, until it holds `gather` of them or its
        first has waited `linger` seconds: a caller whose every batch has a fixed cost (a commit's
        statements) pays it fewer times. A wait of more than IDLE_SECONDS still calls `on_idle`.
        """
        if self._thread is None:
            for inp in self._inputs:
                self._on_idle()
                yield from ([result] for result in self._executor.run([inp], should_stop=self._should_stop))
            return
        if self._held:
            batch, self._held = self._held, []
            yield batch
        while not self._ended:
            batch = []
            if self._take(self._next(math.inf), batch):
                self._gather(batch, gather, time.monotonic() + linger)
            if batch:
                yield batch

    def _next(self, until: float) -> RunResult | BaseException | None | queue.Empty:
        """The next item from the executor, or queue.Empty once `until` (monotonic) has passed;
        `on_idle` is called once nothing came for IDLE_SECONDS."""
        idle = False
        while True:
            left = until - time.monotonic()
            if left <= 0:
                return queue.Empty()
            try:
                return self._feed.get(timeout=None if idle and left == math.inf else min(left, IDLE_SECONDS))
            except queue.Empty:
                if not idle:
                    self._on_idle()
                    idle = True

    def _gather(self, batch: list[RunResult], size: int, until: float) -> None:
        """Add what is ready to `batch`, and wait for more until it holds `size` results or `until`."""
        batch += self.ready()
        while not self._ended and len(batch) < size:
            item = self._next(until)
            if isinstance(item, queue.Empty) or not self._take(item, batch):
                return
            batch += self.ready()

    def _take(self, item: RunResult | BaseException | None, batch: list[RunResult]) -> bool:
        """Add a result to `batch`; False at the end (a BaseException from the executor is raised)."""
        if item is None or isinstance(item, BaseException):
            self._ended = True
            if isinstance(item, BaseException):
                raise item
            return False
        batch.append(item)
        return True

    def close(self) -> None:
        """The caller stopped (or is done): what still computes comes back interrupted and is dropped."""
        self._cancelled.set()
        if self._thread is not None:
            # worker processes notice within STOP_POLL; a Dask sweep only at its next result, so the
            # wait is bounded and the caller's close() of the executor ends the rest
            self._thread.join(JOIN_SECONDS)

    def __enter__(self) -> Results:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def ready_batches(executor: Executor, inputs: Sequence[RunInput], *,
                  should_stop: Callable[[], bool] = lambda: False,
                  on_idle: Callable[[], None] = lambda: None) -> Generator[list[RunResult], None, None]:
    """All of `inputs`' results in batches of those ready together (see Results)."""
    with Results(executor, inputs, should_stop=should_stop, on_idle=on_idle) as results:
        yield from results.batches()


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


def _serve(conn: Connection, memory_limit: int | None) -> None:
    """Child side: cap memory, then compute each unit received, output captured, until the pipe closes."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the daemon decides when a run stops
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.dup2(null, 2)
    _limit_memory(memory_limit)
    cpu = _cpu_seconds()
    while True:
        try:
            inp = conn.recv()
        except EOFError:
            return
        result = _compute_captured(inp, memory_limit)
        now = _cpu_seconds()
        spent, cpu = now - cpu, now
        try:
            conn.send(replace(result, cpu_seconds=spent))
        except MemoryError:
            conn.send(RunResult(inp.run_id, error_kind="killed", error=f"killed: memory limit {_size(memory_limit)}"))


def _compute_captured(inp: RunInput, memory_limit: int | None) -> RunResult:
    """`compute` with the strategy's output kept bounded and a memory failure named as the cap."""
    captured = BoundedText()
    sys.stdout = sys.stderr = captured
    try:
        result = compute(inp)
    except MemoryError:
        result = RunResult(inp.run_id, error_kind="memory")
    if result.error_kind == "memory":
        result = replace(result, error_kind="killed", error=f"killed: memory limit {_size(memory_limit)} "
                                                            f"(plan {inp.plan.name})")
    return replace(result, output=captured.text(), output_bytes=captured.total, worker=f"pid {os.getpid()}")


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
class _Worker:
    """A worker process, the strategy file and source it serves, and the unit it computes (if any)."""

    process: BaseProcess
    conn: Connection            # duplex: units go out, results come back
    key: tuple[str, str]
    served: int = 0
    unit: RunInput | None = None
    deadline: float = math.inf


def _key(inp: RunInput) -> tuple[str, str]:
    """Units of one key may share a worker: the same strategy file with the same text."""
    return inp.plan.strategy, inp.strategy_source


class ProcessExecutor:
    """Units in worker processes: a deadline, a memory cap, bounded captured output (see the module)."""

    def __init__(self, workers: int | None = None, *, memory_limit: int | None = DEFAULT_MEMORY_LIMIT) -> None:
        self.workers = max(1, workers or os.cpu_count() or 1)
        self.memory_limit = memory_limit
        self._context = multiprocessing.get_context("forkserver")
        # The forkserver imports these once; each worker is forked from it ready to work.
        self._context.set_forkserver_preload(["minitrade.runner.compute"])
        self._pool: list[_Worker] = []

    def run(self, inputs: Iterable[RunInput], *,
            should_stop: Callable[[], bool] = lambda: False) -> Iterator[RunResult]:
        """Results as units finish; once `should_stop()` says so, the rest come back interrupted
        (a feed's units still to come are the caller's to account for)."""
        feed = inputs if isinstance(inputs, UnitFeed) else None
        waiting = [] if feed is not None else list(inputs)
        try:
            while True:
                waiting += feed.take() if feed is not None else []
                if not (waiting or self._busy() or (feed is not None and not feed.closed)):
                    return
                if should_stop():
                    yield from (_interrupted(inp) for inp in self.abandon() + waiting)
                    return
                self._dispatch(waiting)
                yield from self._collect(feed if feed is not None and not feed.closed else None)
        finally:
            self.abandon()

    def _busy(self) -> list[_Worker]:
        return [w for w in self._pool if w.unit is not None]

    def _dispatch(self, waiting: list[RunInput]) -> None:
        """Hand waiting units, in order, to idle workers of their plan or to fresh ones while there is room."""
        while waiting:
            worker = next((w for w in self._pool if w.unit is None and w.key == _key(waiting[0])), None)
            if worker is None:
                if len(self._pool) >= self.workers:
                    spare = next((w for w in self._pool if w.unit is None), None)
                    if spare is None:
                        return  # every worker is computing
                    self._retire(spare)
                worker = self._spawn(_key(waiting[0]))
            self._give(worker, waiting.pop(0))

    def _spawn(self, key: tuple[str, str]) -> _Worker:
        ours, theirs = self._context.Pipe(duplex=True)
        process = self._context.Process(target=_serve, args=(theirs, self.memory_limit),
                                        name=f"minitrade-worker-{key[0].rsplit('/', 1)[-1]}", daemon=True)
        with _main_script_hidden():
            process.start()
        theirs.close()
        worker = _Worker(process, ours, key)
        self._pool.append(worker)
        return worker

    def _give(self, worker: _Worker, inp: RunInput) -> None:
        try:
            worker.conn.send(inp)
        except OSError:  # it died while idle: a fresh one takes the unit
            self._retire(worker)
            worker = self._spawn(_key(inp))
            worker.conn.send(inp)
        worker.unit, worker.deadline = inp, time.monotonic() + inp.timeout

    def _collect(self, feed: UnitFeed | None) -> Iterable[RunResult]:
        """Wait for the first result, death or deadline among the busy workers, or a new unit in the
        feed; report the results."""
        busy = self._busy()
        now = time.monotonic()
        # wake at least every STOP_POLL seconds to honour a stop request promptly
        timeout = min(STOP_POLL, max(0.0, min((w.deadline for w in busy), default=math.inf) - now))
        waited: list[Connection | int] = [w.conn for w in busy] + [w.process.sentinel for w in busy]
        ready = wait(waited + ([feed.fileno()] if feed is not None else []), timeout)
        return [result for worker in busy if (result := self._outcome(worker, ready)) is not None]

    def _outcome(self, worker: _Worker, ready: Sequence[object]) -> RunResult | None:
        inp = worker.unit
        assert inp is not None
        if worker.conn in ready or worker.process.sentinel in ready:
            result = self._receive(worker)
            if result is not None:
                worker.unit, worker.served = None, worker.served + 1
                if result.error_kind == "killed" or worker.served >= MAX_UNITS_PER_WORKER:
                    self._retire(worker)  # a worker that hit its memory cap starts afresh
                return result
            if not worker.process.is_alive():
                self._retire(worker)
                return self._died(inp, worker.process)
        if time.monotonic() >= worker.deadline:
            self._retire(worker)
            log.warning("run %s passed its %g s deadline; its worker was killed", inp.run_id, inp.timeout)
            return RunResult(inp.run_id, error_kind="timeout",
                             error=f"timed out after {inp.timeout:g} s (plan {inp.plan.name}: raise "
                                   "`timeout` in the plan if it really needs longer)",
                             worker=f"pid {worker.process.pid}")
        return None

    @staticmethod
    def _receive(worker: _Worker) -> RunResult | None:
        try:
            if worker.conn.poll():
                received = worker.conn.recv()
                return received if isinstance(received, RunResult) else None
        except (EOFError, OSError):
            return None
        return None

    def _died(self, inp: RunInput, process: BaseProcess) -> RunResult:
        code = process.exitcode
        how = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        hint = f"; memory limit {_size(self.memory_limit)}" if self.memory_limit else ""
        log.warning("run %s: its worker died (%s)", inp.run_id, how)
        return RunResult(inp.run_id, error_kind="killed", error=f"killed: the worker died ({how}{hint})",
                         worker=f"pid {process.pid}")

    def _retire(self, worker: _Worker) -> None:
        """End the worker (killed if it is still computing) and forget it."""
        if worker.unit is None:
            worker.conn.close()  # an idle worker reads EOF and exits on its own
            worker.process.join(0.5)
        if worker.process.is_alive():
            worker.process.kill()
        worker.process.join(5)
        worker.conn.close()
        self._pool.remove(worker)

    def abandon(self) -> list[RunInput]:
        """End every worker (the daemon is stopping, or the batch is over); the inputs they were computing."""
        left = [w.unit for w in self._pool if w.unit is not None]
        for worker in list(self._pool):
            self._retire(worker)
        return left

    def close(self) -> None:
        self.abandon()
