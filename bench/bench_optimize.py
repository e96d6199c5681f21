"""Benchmark of `minitrade optimize`'s executors on the embedded default's sma-aapl plan (not a test).

    python bench/bench_optimize.py               # 40 trials (fast 5..50 x slow 60..120), 1 ticker x ~2,550 bars
    python bench/bench_optimize.py --trials 200  # the issue's size (fast 5..100 x slow 40..220)

Prints, for the same grid over AAPL 2003-01-02..2013-03-01 (the shipped sample prices):
(a) in one process: the sweep serially in this process (InlineExecutor), on the local executor
    (ProcessExecutor, 2 workers) and through a Dask cluster started here with dask's own command line
    (`dask scheduler` + 2 `dask worker --nthreads 1`, on 127.0.0.1): seconds, trials/s and ratios,
    beside this machine's ceiling: the bare backtests of (b) split over 2 processes running at once
    (a shared machine's second core gives less than a second core's worth);
(b) per-trial overhead of the serial sweep over a bare backtrader run of the same trials (the same
    strategy as a plain bt.Strategy, the same numpy feed), which is what each trial costs beyond
    backtrader itself: price checks, fills, books, statistics, the trial's RunInput;
(c) the whole process: `python -m minitrade optimize ... --executor local` and `--executor tcp://...`
    from a fresh interpreter, imports, DuckDB and the report page included.
The machine is shared, so each figure is the best of `--repeat` runs (default 2); the overhead is also
given per repeat, serial against the bare run just before it, in wall time and in CPU time (both run
in this process; CPU time leaves out what the machine's other tenants take). Serial and bare run
first, before this process has a Dask client or worker processes, as in `minitrade optimize`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PLAIN = '''
import backtrader as bt


class SmaCrossover(bt.Strategy):
    params = (("fast", 20), ("slow", 50), ("invest", 0.95))

    def __init__(self):
        self.cross = bt.ind.CrossOver(bt.ind.SMA(self.data.close, period=self.p.fast),
                                      bt.ind.SMA(self.data.close, period=self.p.slow))

    def next(self):
        if self.cross > 0 and not self.position:
            self.order_target_percent(target=self.p.invest)
        elif self.cross < 0 and self.position:
            self.close()
'''


def grid_args(trials: int) -> list[str]:
    if trials >= 200:
        return ["-p", "fast=5:100:5", "-p", "slow=40:220:20"]   # 20 x 10
    return ["-p", "fast=5:50:5", "-p", "slow=60:120:20"]        # 10 x 4


def make_repo(folder: Path) -> Path:
    repo = folder / "repo"
    repo.mkdir()
    shutil.copyfile(ROOT / "minitrade.yaml", repo / "minitrade.yaml")
    for sub in ("plans", "strategies"):
        shutil.copytree(ROOT / sub, repo / sub, ignore=shutil.ignore_patterns("__pycache__"))
    (repo / ".gitignore").write_text("state/\n")
    env = {**os.environ, "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.invalid",
           "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.invalid"}
    for cmd in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "bench"]):
        subprocess.run(["git", "-C", str(repo), *cmd], check=True, env=env)
    return repo


@contextmanager
def dask_cluster(folder: Path, workers: int = 2) -> Iterator[str]:
    """A scheduler and `workers` one-thread workers on 127.0.0.1, started as a person would."""
    info = folder / "scheduler.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "env": env}
    procs = [subprocess.Popen([sys.executable, "-m", "dask", "scheduler", "--host", "127.0.0.1", "--port", "0",
                               "--no-dashboard", "--scheduler-file", str(info)], **quiet)]  # type: ignore[call-overload]
    try:
        while not (info.exists() and info.stat().st_size):
            time.sleep(0.1)
        procs += [subprocess.Popen([sys.executable, "-m", "dask", "worker", "--scheduler-file", str(info),
                                    "--nthreads", "1", "--no-nanny", "--no-dashboard", "--host", "127.0.0.1"],
                                   **quiet) for _ in range(workers)]  # type: ignore[call-overload]
        from distributed import Client

        address = json.loads(info.read_text())["address"]
        with Client(address, set_as_default=False) as client:
            client.wait_for_workers(workers, timeout=120)
        yield address
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def sweep_seconds(repo: Path, trials: int, executor: Any) -> tuple[float, dict[str, Any]]:
    """One sweep through minitrade's own orchestration (as the command runs it), timed."""
    from minitrade.loader import load_worktree
    from minitrade.runner import optimize as opt
    from minitrade.runner.sweep import Request, optimize

    snapshot = load_worktree(repo)
    args = grid_args(trials)
    request = Request("sma-aapl", [opt.parse_param(a) for a in args[1::2]])
    start = time.perf_counter()
    report = optimize(snapshot, request, executor, executor_name=repr(executor))
    seconds = time.perf_counter() - start
    stats = {json.dumps(o.trial.params, sort_keys=True): o.stats for o in report.outcomes}
    return seconds, stats


def bare_seconds(repo: Path, trials: int, share: tuple[int, int] = (0, 1), ready: Any = None) -> float:
    """The same backtests in plain backtrader: the floor each trial's overhead is measured against.

    `share` (k, n) runs every n-th backtest from the k-th only; `ready` (a barrier) is waited on
    once everything is loaded, so processes running their shares at once start together.
    """
    import backtrader as bt

    from minitrade.data.registry import source_for
    from minitrade.loader import load_worktree
    from minitrade.runner import optimize as opt
    from minitrade.runner.feed import ArrayFeed

    snapshot = load_worktree(repo)
    plan = snapshot.plans["sma-aapl"]
    frame = source_for(plan.data_source, snapshot.settings.data_sources[plan.data_source],
                       root=repo).daily("AAPL", plan.backtest_start)
    namespace: dict[str, Any] = {}
    exec(compile(PLAIN, "plain.py", "exec"), namespace)
    # the sweep also runs the plan's own params (its baseline trial): the same backtests here
    combos = ([{}] + opt.grid([opt.parse_param(a) for a in grid_args(trials)[1::2]]))[share[0]::share[1]]
    if ready is not None:
        ready.wait()
    start = time.perf_counter()
    for combo in combos:
        cerebro = bt.Cerebro(stdstats=False)
        cerebro.broker.setcash(plan.cash)
        cerebro.broker.setcommission(commission=snapshot.settings.commission)
        cerebro.broker.set_coc(True)
        cerebro.adddata(ArrayFeed(frame=frame, name="AAPL"))
        cerebro.addstrategy(namespace["SmaCrossover"], **{**plan.params, **combo})
        cerebro.run()
    return time.perf_counter() - start


def bare_in_parallel(repo: Path, trials: int, workers: int = 2) -> float:
    """Wall seconds of the bare backtests split over `workers` processes running at once: what this
    machine's cores give plain backtrader, the ceiling for any executor's speed-up."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    ready, results = context.Barrier(workers), context.SimpleQueue()
    procs = [context.Process(target=_bare_share, args=(repo, trials, (k, workers), ready, results))
             for k in range(workers)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join()
    return max(results.get() for _ in procs)


def _bare_share(repo: Path, trials: int, share: tuple[int, int], ready: Any, results: Any) -> None:
    results.put(bare_seconds(repo, trials, share, ready))


def whole_process(repo: Path, trials: int, executor: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "minitrade", "optimize", "sma-aapl", *grid_args(trials),
                    "--executor", executor, "--json", "--repo", str(repo)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env={**os.environ, "PYTHONPATH": str(ROOT)})
    return time.perf_counter() - start


def main() -> None:
    trials = int(sys.argv[sys.argv.index("--trials") + 1]) if "--trials" in sys.argv else 40
    repeat = int(sys.argv[sys.argv.index("--repeat") + 1]) if "--repeat" in sys.argv else 2
    from minitrade.runner.executor import InlineExecutor, ProcessExecutor

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        repo = make_repo(folder)
        print(f"{trials} trials of sma-aapl (1 ticker, AAPL 2003-2013), {os.cpu_count()} cores, "
              f"load average {os.getloadavg()[0]:.1f}; best of {repeat}")
        best: dict[str, float] = {}
        results: dict[str, dict[str, Any]] = {}
        # serial over bare, measured back to back (robust to the machine's drift) and before this process
        # has a Dask client or worker processes: as `minitrade optimize` runs a serial sweep
        # CPU time too: both run in this process, and CPU time leaves out what the machine's other
        # tenants take (this shared machine's wall times of the same work differ by 20-40 %)
        pairs: list[float] = []
        cpu_pairs: list[float] = []
        for _ in range(repeat):
            cpu = time.process_time()
            bare_now = bare_seconds(repo, trials)
            bare_cpu, cpu = time.process_time() - cpu, time.process_time()
            seconds, results["serial"] = sweep_seconds(repo, trials, InlineExecutor())
            cpu_pairs.append((time.process_time() - cpu) / bare_cpu)
            pairs.append(seconds / bare_now)
            best["bare"] = min(best.get("bare", float("inf")), bare_now)
            best["serial"] = min(best.get("serial", float("inf")), seconds)
        with dask_cluster(folder) as address:
            for _ in range(repeat):
                for name, make in (("local", lambda: ProcessExecutor(2)), ("dask", lambda: _dask(address))):
                    executor = make()
                    try:
                        seconds, results[name] = sweep_seconds(repo, trials, executor)
                    finally:
                        executor.close()
                    best[name] = min(best.get(name, float("inf")), seconds)
                best["bare x2"] = min(best.get("bare x2", float("inf")), bare_in_parallel(repo, trials))
            bare = best["bare"]
            whole = {name: min(whole_process(repo, trials, target) for _ in range(repeat))
                     for name, target in (("local", "local"), ("dask", address))}
        same = all(results[n] == results["serial"] for n in ("local", "dask"))
        n = len(results["serial"])
        print("(a) one process, the sweep alone (prices read once, trials, DuckDB rows)")
        for name in ("serial", "local", "dask"):
            print(f"    {name:7} {best[name]:7.2f} s  {n / best[name]:6.1f} trials/s  "
                  f"{1000 * best[name] / n:6.1f} ms/trial")
        print(f"    local (2 workers) vs serial: {best['serial'] / best['local']:.2f}x faster (target >= 1.7x)")
        print(f"    dask (2 workers) vs local:   {best['local'] / best['dask']:.2f}x "
              f"({'faster' if best['dask'] < best['local'] else 'slower'})")
        print(f"    identical statistics on every executor: {same}")
        ceiling = best["bare"] / best["bare x2"]
        print(f"    this machine's ceiling: the bare backtests split over 2 processes at once run {ceiling:.2f}x "
              f"faster than serially; local's {best['serial'] / best['local']:.2f}x is "
              f"{100 * best['serial'] / best['local'] / ceiling:.0f} % of it")
        print(f"(b) bare backtrader, the same {n} trials + the plan's own params serially: {bare:.2f} s "
              f"({1000 * bare / (n + 1):.1f} ms/backtest); "
              f"serial sweep overhead {100 * (best['serial'] / bare - 1):+.1f} % best over best, "
              f"{', '.join(f'{100 * (r - 1):+.1f} %' for r in pairs)} measured back to back (target <= 15 %); "
              f"in CPU time back to back {', '.join(f'{100 * (r - 1):+.1f} %' for r in cpu_pairs)}")
        print("(c) whole process: python -m minitrade optimize ... --executor X (imports, DuckDB, report page)")
        for name, seconds in whole.items():
            print(f"    {name:7} {seconds:7.2f} s")
        print(f"    dask vs local, whole process: {whole['local'] / whole['dask']:.2f}x")


def _dask(address: str) -> Any:
    from minitrade.runner.dask_executor import DaskExecutor

    return DaskExecutor(address)


if __name__ == "__main__":
    main()
