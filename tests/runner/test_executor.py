"""The compute phase in worker processes: deadlines, a memory cap, bounded output, and results
equal to computing in-process. Real forked processes; no timing assertions (deadlines are what
the executor enforces, the tests only check what it reports)."""

from __future__ import annotations

from collections.abc import Iterator
from importlib import resources

import pandas as pd
import pytest

from minitrade.models import Plan
from minitrade.runner.compute import RunInput, RunResult, compute, raise_for_error
from minitrade.runner.executor import BoundedText, InlineExecutor, ProcessExecutor

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

BROKEN = '''import backtrader as bt


class Broken(bt.Strategy):
    def next(self):
        raise ValueError("no such signal")
'''


def aapl() -> pd.DataFrame:
    with resources.as_file(resources.files("minitrade") / "sample_data" / "AAPL.csv") as path:
        frame = pd.read_csv(path, index_col="date", parse_dates=True)
    return frame.loc["2012-11-01":"2013-01-31"]


def unit(run_id: str, source: str, *, timeout: float = 120.0) -> RunInput:
    plan = Plan.model_validate({"name": run_id, "strategy": f"strategies/{run_id}.py", "universe": ["AAPL"],
                                "data_source": "samples", "backtest_start": "2012-11-01",
                                "trade_start": "2013-01-02", "run_at": "15:45", "cash": 100000})
    return RunInput(run_id=run_id, plan=plan, strategy_source=source, prices={"AAPL": aapl()}, cash=100000.0,
                    positions={}, trade_start=plan.trade_start, commission=0.001, end=None,
                    frozen_before=plan.trade_start, timeout=timeout)


@pytest.fixture
def pool() -> Iterator[ProcessExecutor]:
    executor = ProcessExecutor(2, memory_limit=1024**3)
    yield executor
    executor.close()


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


def test_inline_executor_computes_in_this_process() -> None:
    (result,) = InlineExecutor().run([unit("good", GOOD)])
    assert result.ok and result.worker == "inline"


def test_bounded_text_keeps_head_and_tail() -> None:
    text = BoundedText(keep=4)
    for part in ("abc", "defgh", "ijklmnop"):
        text.write(part)
    assert text.total == 16 and text.text() == "abcd\n[... 8 characters left out ...]\nmnop"
