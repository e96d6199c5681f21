"""The compute phase in worker processes: deadlines, a memory cap, bounded output, and results
equal to computing in-process. Real forked processes; no timing assertions (deadlines are what
the executor enforces, the tests only check what it reports)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from importlib import resources

import pandas as pd
import pytest

from minitrade.models import Plan
from minitrade.runner.compute import RunInput, RunResult, compute, raise_for_error
from minitrade.runner.executor import (
    BoundedText,
    InlineExecutor,
    ProcessExecutor,
    Results,
    UnitFeed,
    ready_batches,
)

GOOD = '''import backtrader as bt


class Alternate(bt.Strategy):
    def next(self):
        self.order_target_size(target=10 if len(self) % 2 else 0)
'''

LOOPS = '''import backtrader as bt


class Forever(bt.Strategy):
    def next(self):
        while True:
            pass
'''

HOG = '''import backtrader as bt


class Hog(bt.Strategy):
    def next(self):
        self.hoard = bytearray(3 * 1024 ** 3)
'''

CHATTY = '''import backtrader as bt


class Chatty(bt.Strategy):
    def next(self):
        print("x" * 1023)
        if len(self) == 1:
            for _ in range(50 * 1024):
                print("y" * 1023)
'''

TAMPERS = '''import backtrader as bt

bt.Strategy.tampered = True  # process-wide: whatever runs in this process later sees it


class Tampers(bt.Strategy):
    def next(self):
        print(len(self))
'''

TRUSTS = '''import backtrader as bt


class Trusts(bt.Strategy):
    def next(self):
        if getattr(bt.Strategy, "tampered", False):
            raise RuntimeError("another plan's code ran in this process")
'''

COUNTS = '''import backtrader as bt

starts = 0  # module-level state: each plan has its own


class Counts(bt.Strategy):
    def start(self):
        global starts
        starts += 1
        print(f"start {starts}")
'''

BROKEN = '''import backtrader as bt


class Broken(bt.Strategy):
    def next(self):
        raise ValueError("no such signal")
'''


def aapl() -> pd.DataFrame:
    with resources.as_file(resources.files("minitrade") / "sample_data" / "AAPL.csv") as path:
        frame = pd.read_csv(path, index_col="date", parse_dates=True)
    return frame.loc["2012-11-01":"2013-01-31"]


def unit(run_id: str, source: str, *, timeout: float = 120.0, plan_name: str | None = None) -> RunInput:
    plan = Plan.model_validate({"name": plan_name or run_id, "strategy": f"strategies/{plan_name or run_id}.py",
                                "universe": ["AAPL"],
                                "data_source": "samples", "backtest_start": "2012-11-01",
                                "trade_start": "2013-01-02", "run_at": "15:45", "cash": 100000})
    return RunInput(run_id=run_id, plan=plan, strategy_source=source, prices={"AAPL": aapl()}, cash=100000.0,
                    positions={}, trade_start=plan.trade_start, commission=0.001, end=None,
                    frozen_before=plan.trade_start, timeout=timeout)


def workers(count: int) -> Iterator[ProcessExecutor]:
    executor = ProcessExecutor(count, memory_limit=1024**3)
    yield executor
    executor.close()


@pytest.fixture
def pool() -> Iterator[ProcessExecutor]:
    yield from workers(2)


def test_a_looping_strategy_times_out_while_a_good_one_finishes(pool: ProcessExecutor) -> None:
    results = {r.run_id: r for r in pool.run([unit("forever", LOOPS, timeout=3), unit("good", GOOD)])}
    assert results["good"].ok and raise_for_error(results["good"]).intents is not None
    stuck = results["forever"]
    assert stuck.error_kind == "timeout" and "timed out after 3 s" in (stuck.error or "")


def test_a_memory_hog_fails_with_the_cap_and_the_pool_goes_on(pool: ProcessExecutor) -> None:
    results = {r.run_id: r for r in pool.run([unit("hog", HOG), unit("good", GOOD)])}
    hog = results["hog"]
    assert hog.error_kind == "killed" and "memory limit 1 GiB" in (hog.error or "")
    assert results["good"].ok


def test_fifty_megabytes_of_prints_are_kept_bounded(pool: ProcessExecutor) -> None:
    (result,) = pool.run([unit("chatty", CHATTY)])
    assert result.ok and result.output_bytes > 50 * 1024**2
    assert len(result.output) < 200 * 1024 and "characters left out" in result.output
    assert result.output.startswith("x" * 1023 + "\n" + "y" * 1023) and result.output.rstrip().endswith("x" * 1023)


def test_worker_results_equal_the_in_process_computation(pool: ProcessExecutor) -> None:
    (worker,) = pool.run([unit("good", GOOD)])
    inline = compute(unit("good", GOOD))
    assert worker.worker.startswith("pid ") and inline.worker == "inline"
    pd.testing.assert_frame_equal(raise_for_error(worker).equity, raise_for_error(inline).equity)
    assert raise_for_error(worker).intents == raise_for_error(inline).intents


def test_a_strategy_error_is_a_result_naming_the_users_line(pool: ProcessExecutor) -> None:
    (result,) = pool.run([unit("broken", BROKEN)])
    assert result.error_kind == "strategy"
    assert "strategies/broken.py:6" in (result.error or "") and "no such signal" in (result.error or "")


def test_a_stop_request_interrupts_what_is_still_computing(pool: ProcessExecutor) -> None:
    seen: list[RunResult] = []
    for result in pool.run([unit("forever", LOOPS, timeout=600)], should_stop=lambda: True):
        seen.append(result)
    assert [r.error_kind for r in seen] == ["interrupted"]


@pytest.fixture
def one_worker() -> Iterator[ProcessExecutor]:
    yield from workers(1)


def test_a_plans_units_share_a_worker_and_another_plans_never_do(one_worker: ProcessExecutor) -> None:
    units = [unit("a1", TAMPERS, plan_name="a"), unit("a2", TAMPERS, plan_name="a"), unit("b1", TRUSTS, plan_name="b")]
    results = {r.run_id: r for r in one_worker.run(units)}
    assert results["a1"].worker == results["a2"].worker != results["b1"].worker
    assert results["b1"].ok, results["b1"].error  # plan a's tampering stayed in plan a's process
    # each unit's output is its own, not the worker's so far
    assert results["a1"].output == results["a2"].output and results["a1"].output.startswith("1\n2\n")
    assert all(r.cpu_seconds > 0 for r in results.values())


def test_plans_that_share_a_strategy_file_share_a_worker_but_not_its_module(one_worker: ProcessExecutor) -> None:
    def counting(run_id: str, plan_name: str) -> RunInput:
        shared = unit(run_id, COUNTS, plan_name=plan_name)
        return replace(shared, plan=shared.plan.model_copy(update={"strategy": "strategies/counts.py"}))

    results = {r.run_id: r for r in one_worker.run([counting("p1", "p"), counting("p2", "p"), counting("q1", "q")])}
    assert results["p1"].worker == results["p2"].worker == results["q1"].worker  # no fork for plan q
    # plan p's second unit continues p's module; plan q starts with a module of its own
    assert [results[r].output for r in ("p1", "p2", "q1")] == ["start 1\n", "start 2\n", "start 1\n"]


def test_after_a_timeout_the_plans_next_unit_gets_a_fresh_worker(one_worker: ProcessExecutor) -> None:
    units = [unit("stuck", LOOPS, timeout=2, plan_name="p"), unit("next", LOOPS.replace("while True", "while False"),
                                                                   plan_name="p")]
    results = {r.run_id: r for r in one_worker.run(units)}
    assert results["stuck"].error_kind == "timeout" and results["next"].ok
    assert results["stuck"].worker != results["next"].worker


def test_a_worker_is_replaced_after_its_quota_of_units(one_worker: ProcessExecutor,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("minitrade.runner.executor.MAX_UNITS_PER_WORKER", 2)
    results = list(one_worker.run([unit(f"u{i}", GOOD, plan_name="p") for i in range(3)]))
    assert [r.ok for r in results] == [True, True, True]
    assert results[0].worker == results[1].worker != results[2].worker


def test_inline_executor_computes_in_this_process() -> None:
    (result,) = InlineExecutor().run([unit("good", GOOD)])
    assert result.ok and result.worker == "inline"


def test_bounded_text_keeps_head_and_tail() -> None:
    text = BoundedText(keep=4)
    for part in ("abc", "defgh", "ijklmnop"):
        text.write(part)
    assert text.total == 16 and text.text() == "abcd\n[... 8 characters left out ...]\nmnop"


class Scripted:
    """An executor whose results come as the test allows: after the first, it waits for `go`, then
    gives the rest at once and sets `given` (so they are all waiting when the caller looks)."""

    def __init__(self, ids: list[str], *, fail_after_first: bool = False, compute_until_stopped: bool = False) -> None:
        self.ids, self.fail_after_first, self.until_stopped = ids, fail_after_first, compute_until_stopped
        self.go, self.given = threading.Event(), threading.Event()
        self.stopped = False

    def run(self, inputs: Iterable[RunInput], *,
            should_stop: Callable[[], bool] = lambda: False) -> Iterator[RunResult]:
        first, *rest = self.ids
        yield RunResult(first)
        while self.until_stopped and not should_stop():  # the rest compute until told to stop
            threading.Event().wait(0.01)
        assert self.until_stopped or self.go.wait(30)
        if self.fail_after_first:
            raise ConnectionError("the cluster went away")
        for run_id in rest:
            yield RunResult(run_id)
        self.stopped = should_stop()
        self.given.set()

    def close(self) -> None:
        """Nothing held."""


def test_results_that_arrived_together_come_as_one_batch() -> None:
    executor = Scripted(["a", "b", "c"])
    batches = ready_batches(executor, [])
    assert [r.run_id for r in next(batches)] == ["a"]
    executor.go.set()
    assert executor.given.wait(30)  # b and c wait in the feed: the caller was busy meanwhile
    assert [r.run_id for r in next(batches)] == ["b", "c"]
    assert list(batches) == []
    assert not executor.stopped


def test_a_gathering_batch_waits_for_more_results_up_to_its_size() -> None:
    executor = Scripted(["a", "b", "c", "d"])
    executor.go.set()  # every result comes as soon as asked
    with Results(executor, []) as results:
        batches = [[r.run_id for r in b] for b in results.batches(gather=3, linger=60)]
    assert batches[0][:3] == ["a", "b", "c"] and [i for b in batches for i in b] == ["a", "b", "c", "d"]


def test_a_gathering_batch_is_given_once_its_first_result_waited_long_enough() -> None:
    executor = Scripted(["a", "b", "c"])  # b and c only come once the caller has had a
    with Results(executor, []) as results:
        batches = results.batches(gather=16, linger=0.05)
        assert [r.run_id for r in next(batches)] == ["a"]
        executor.go.set()
        assert [r.run_id for b in batches for r in b] == ["b", "c"]


def test_results_held_by_due_come_once_enough_are_ready() -> None:
    executor = Scripted(["a", "b", "c"])  # b and c only come once told
    with Results(executor, []) as results:
        assert results.due(2, 60) == []  # a alone, at most: held for more
        executor.go.set()
        assert executor.given.wait(30)
        assert [r.run_id for r in results.due(2, 60)] == ["a", "b", "c"]


def test_results_held_by_due_come_first_from_batches() -> None:
    executor = Scripted(["a", "b", "c"])
    executor.go.set()
    with Results(executor, []) as results:
        assert executor.given.wait(30)
        assert results.due(5, 60) == []  # three ready, fewer than asked: held
        assert [[r.run_id for r in b] for b in results.batches()] == [["a", "b", "c"]]


def test_an_executors_error_reaches_the_caller_after_the_results_before_it() -> None:
    executor = Scripted(["a", "b"], fail_after_first=True)
    batches = ready_batches(executor, [])
    assert [r.run_id for r in next(batches)] == ["a"]
    executor.go.set()
    with pytest.raises(ConnectionError, match="went away"):
        next(batches)


def test_a_caller_that_stops_early_stops_the_executor() -> None:
    executor = Scripted(["a", "b"], compute_until_stopped=True)
    batches = ready_batches(executor, [])
    next(batches)
    batches.close()  # the caller leaves: what is still running is told to stop (close returns once it has)
    assert executor.given.is_set() and executor.stopped


def test_worker_batches_hold_every_result_once(pool: ProcessExecutor) -> None:
    ids = [f"u{i}" for i in range(5)]
    batches = list(ready_batches(pool, [unit(i, GOOD) for i in ids]))
    assert sorted(r.run_id for b in batches for r in b) == ids
    assert all(r.error is None for b in batches for r in b)


def test_inline_results_come_one_at_a_time() -> None:
    batches = list(ready_batches(InlineExecutor(), [unit("x", GOOD), unit("y", GOOD)]))
    assert [[r.run_id for r in b] for b in batches] == [["x"], ["y"]]


def test_units_fed_while_the_executor_runs_compute_as_they_come(pool: ProcessExecutor) -> None:
    """The daemon hands each run to the workers once it is prepared: the first computes (and its
    result is ready) before the second is even fed."""
    feed = UnitFeed()
    with Results(pool, feed) as results:
        feed.put(unit("first", GOOD))
        deadline = time.monotonic() + 60
        early: list[RunResult] = []
        while not early and time.monotonic() < deadline:
            early = results.ready()
            time.sleep(0.05)
        assert [r.run_id for r in early] == ["first"] and early[0].error is None
        feed.put(unit("second", GOOD))
        feed.close()
        later = [r.run_id for batch in results.batches() for r in batch]
    assert later == ["second"]


def test_a_feed_never_blocks_the_one_who_fills_it() -> None:
    """Units put before anyone takes them (an inline executor reads the feed only once it is
    closed) never fill the wake-up pipe: one wake-up is pending at most."""
    feed, one = UnitFeed(), unit("x", GOOD)

    def fill() -> None:
        for _ in range(100_000):
            feed.put(one)
        feed.close()

    filler = threading.Thread(target=fill, daemon=True)
    filler.start()
    filler.join(60)
    assert not filler.is_alive()
    assert sum(1 for _ in feed) == 100_000 and feed.closed
