"""The Dask executor against a real cluster: `dask scheduler` and two `dask worker` processes on
127.0.0.1 started with dask's own command line; sweeps through it match the local executor, survive
a worker killed mid-sweep, and fail a broken trial alone."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from minitrade.cli import app
from minitrade.errors import ExecutorUnavailable
from minitrade.models import ExecutorSpec
from minitrade.runner.executor import chosen_executor
from minitrade.store import Store
from minitrade.store import optimizations as store_opt
from tests.conftest import ROOT, TradingRepo

pytest.importorskip("distributed", reason="the Dask executor needs pip install 'minitrade[dask]'")
pytestmark = pytest.mark.slow

START_WAIT = 60.0  # seconds a scheduler or worker may take to come up on a busy machine


@dataclass
class Cluster:
    address: str
    scheduler: subprocess.Popen[bytes]
    workers: list[subprocess.Popen[bytes]]


def _env() -> dict[str, str]:
    """Workers import this checkout's minitrade (as `pip install` would give them)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return env


def _wait_for(what: str, ready: Any, procs: list[subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + START_WAIT
    while not ready():
        dead = [p for p in procs if p.poll() is not None]
        if dead or time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not come up (exit codes {[p.returncode for p in procs]})")
        time.sleep(0.1)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """A scheduler on a free port (learnt from --scheduler-file) and two one-thread workers."""
    yield from _cluster(tmp_path)


@pytest.fixture(scope="module")
def shared_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    yield from _cluster(tmp_path_factory.mktemp("dask"))


def _cluster(folder: Path) -> Iterator[Cluster]:
    info = folder / "scheduler.json"
    logs = folder / "logs"
    logs.mkdir(exist_ok=True)
    common = ["--no-dashboard"]
    scheduler = _start(["scheduler", "--host", "127.0.0.1", "--port", "0", "--scheduler-file", str(info), *common],
                       logs / "scheduler.log")
    procs = [scheduler]
    try:
        _wait_for("dask scheduler", lambda: info.exists() and info.stat().st_size > 0, procs)
        address = json.loads(info.read_text())["address"]
        workers = [_start(["worker", "--scheduler-file", str(info), "--nthreads", "1", "--no-nanny", "--name",
                           f"w{i}", "--host", "127.0.0.1", *common], logs / f"worker{i}.log") for i in (1, 2)]
        procs += workers
        _wait_for("dask workers", lambda: _worker_count(logs) == 2, procs)
        yield Cluster(address, scheduler, workers)
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _start(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    """`dask ARGS` (dask's own command line), its log in `log`."""
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-m", "dask", *args], env=_env(), stdout=subprocess.DEVNULL,
                                stderr=out)


def _worker_count(logs: Path) -> int:
    return sum("Registered to:" in (logs / f"worker{i}.log").read_text(errors="replace") for i in (1, 2))


def invoke(*args: str) -> Any:
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def _by_params(doc: dict[str, Any]) -> dict[str, Any]:
    return {f"{t['phase']} {json.dumps(t['params'], sort_keys=True)}": (t["stats"], t["error"])
            for t in doc["trials"]}


SWEEP = ("optimize", "sma-aapl", "-p", "fast=5:15:5", "-p", "slow=20:40:20", "--from", "2010-01-04",
         "--to", "2012-12-31", "--json")


def test_a_sweep_on_dask_matches_the_local_executor(shared_cluster: Cluster, trading_repo: TradingRepo) -> None:
    on_dask = invoke(*SWEEP, "--executor", shared_cluster.address, "--repo", str(trading_repo.path))
    assert on_dask.exit_code == 0, on_dask.output
    local = invoke(*SWEEP, "--executor", "local", "--repo", str(trading_repo.path))
    assert local.exit_code == 0, local.output
    dask_doc, local_doc = json.loads(on_dask.stdout), json.loads(local.stdout)
    assert _by_params(dask_doc) == _by_params(local_doc) and len(dask_doc["trials"]) == 7
    assert dask_doc["best"] == local_doc["best"]
    workers = {t["worker"] for t in dask_doc["trials"]}
    assert workers and all(w.startswith("dask tcp://127.0.0.1:") for w in workers)
    with Store(trading_repo.path / "state" / "minitrade.duckdb").transaction() as con:
        row = store_opt.optimization(con, dask_doc["optimization_id"])
    assert row is not None and row.executor == shared_cluster.address and row.status == "FINISHED"


def test_backtest_all_runs_on_the_cluster(shared_cluster: Cluster, trading_repo: TradingRepo) -> None:
    result = invoke("backtest", "--all", "--from", "2012-01-03", "--json", "--executor", shared_cluster.address,
                    "--repo", str(trading_repo.path))
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)["backtests"]
    assert sorted(out) == ["equal-weight", "momentum-rotation", "sma-aapl"]
    assert all(o["stats"]["start"] >= "2012-01-03" for o in out.values())


def test_yaml_executor_type_dask_is_used_and_an_unreachable_scheduler_is_named() -> None:
    spec = ExecutorSpec.model_validate({"type": "dask", "address": "tcp://127.0.0.1:9"})
    with pytest.raises(ExecutorUnavailable, match=r"cannot reach the Dask scheduler at tcp://127.0.0.1:9"):
        chosen_executor(spec)
    with pytest.raises(ExecutorUnavailable):
        chosen_executor(ExecutorSpec.model_validate({}), "tcp://127.0.0.1:9")


# A strategy whose trials wait at a gate: each writes `started-<pid>-<fast>` when it starts and waits
# for the file `open`, so the test can kill a worker while it is certainly running a trial.
GATED = '''
import os
import time

import backtrader as bt

from minitrade import Strategy


class Gated(Strategy):
    params = (("fast", 5), ("slow", 20), ("gate", ""))

    def __init__(self):
        if self.p.fast == 13:
            raise RuntimeError("thirteen is unlucky")
        marker = os.path.join(self.p.gate, f"started-{os.getpid()}-{self.p.fast}")
        with open(marker, "w") as f:
            f.write("")
        waited = 0.0
        while not os.path.exists(os.path.join(self.p.gate, "open")) and waited < 120:
            time.sleep(0.02)
            waited += 0.02
        self.cross = bt.ind.CrossOver(bt.ind.SMA(self.data.close, period=self.p.fast),
                                      bt.ind.SMA(self.data.close, period=self.p.slow))

    def next(self):
        if self.cross > 0 and not self.position:
            self.order_target_percent(target=0.95)
        elif self.cross < 0 and self.position:
            self.close()
'''


def _gated_repo(repo: TradingRepo, gate: Path) -> None:
    repo.write("strategies/gated.py", GATED)
    repo.edit("plans/sma-aapl.yaml", "strategy: strategies/sma_crossover.py", "strategy: strategies/gated.py")
    repo.edit("plans/sma-aapl.yaml", "params: {fast: 20, slow: 50}",
              f"params: {{fast: 20, slow: 50, gate: {json.dumps(str(gate))}}}")
    repo.commit("gated strategy")


def test_a_worker_killed_mid_sweep_loses_no_trial_and_doubles_none(cluster: Cluster, trading_repo: TradingRepo,
                                                                   tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    gate.mkdir()
    _gated_repo(trading_repo, gate)
    sweep = subprocess.Popen(
        [sys.executable, "-m", "minitrade", "optimize", "sma-aapl", "-p", "fast=5:12:1", "-p", "slow=30",
         "--from", "2011-01-03", "--to", "2012-12-31", "--executor", cluster.address, "--json",
         "--repo", str(trading_repo.path)], env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        workers = {str(w.pid): w for w in cluster.workers}
        _wait_for("a trial on each worker",
                  lambda: {m.name.split("-")[1] for m in gate.glob("started-*")} == set(workers), [sweep])
        victim_pid = sorted(workers)[0]
        (killed_marker,) = [m for m in gate.glob(f"started-{victim_pid}-*")]
        killed_fast = int(killed_marker.name.split("-")[2])
        workers[victim_pid].send_signal(signal.SIGKILL)  # while it is inside a trial
        workers[victim_pid].wait()
        (gate / "open").write_text("")
        out, err = sweep.communicate(timeout=300)
    finally:
        if sweep.poll() is None:
            sweep.kill()
            sweep.wait()
    assert sweep.returncode == 0, err.decode()
    doc = json.loads(out)
    swept = [t for t in doc["trials"] if t["phase"] == "sweep"]
    assert sorted(t["params"]["fast"] for t in swept) == list(range(5, 13))  # none lost, none doubled
    assert all(t["error"] is None and t["stats"] for t in swept)
    rerun = next(t for t in doc["trials"] if t["params"]["fast"] == killed_fast)  # maybe the baseline (20)
    assert rerun["error"] is None and rerun["worker"].startswith("dask tcp://")
    with Store(trading_repo.path / "state" / "minitrade.duckdb").transaction() as con:
        rows = store_opt.trials(con, doc["optimization_id"])
        (count,) = con.execute("SELECT count(*) FROM optimization_trials").fetchone() or (0,)
    assert count == len(rows) == 9 and len({r.trial_id for r in rows}) == 9
    # the killed trial ran again elsewhere: its marker was written by two different processes
    assert len({m.name.split("-")[1] for m in gate.glob(f"started-*-{killed_fast}")}) == 2


def test_a_strategy_error_on_dask_fails_that_trial_with_file_and_line(shared_cluster: Cluster,
                                                                      trading_repo: TradingRepo,
                                                                      tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    gate.mkdir()
    (gate / "open").write_text("")
    _gated_repo(trading_repo, gate)
    result = invoke("optimize", "sma-aapl", "-p", "fast=12:14:1", "-p", "slow=30", "--from", "2012-01-03",
                    "--to", "2012-12-31", "--executor", shared_cluster.address, "--json",
                    "--repo", str(trading_repo.path))
    assert result.exit_code == 0, result.output
    swept = {t["params"]["fast"]: t for t in json.loads(result.stdout)["trials"] if t["phase"] == "sweep"}
    assert swept[13]["error"] == "plan sma-aapl: strategies/gated.py:15: RuntimeError: thirteen is unlucky"
    assert swept[12]["stats"] and swept[14]["stats"] and not swept[12]["error"]
