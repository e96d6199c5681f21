"""`minitrade optimize` on the local executor: the space, constraints, ranking, DuckDB rows, CSV/JSON,
the YAML to paste, the report page, and walk-forward on hand-made prices (real repos, real DuckDB)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from minitrade.cli import app
from minitrade.cli.app import USAGE
from minitrade.errors import SearchSpaceError
from minitrade.runner import optimize as opt
from minitrade.runner.stats import compute_stats
from minitrade.store import Store
from minitrade.store import optimizations as store_opt
from tests.conftest import TradingRepo


def invoke(*args: str) -> Any:
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def _json(result: Any) -> dict[str, Any]:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


# ---------------------------------------------------------------------------------------------
# the pure parts

@pytest.mark.parametrize(("text", "values"), [
    pytest.param("fast=5:20:5", (5, 10, 15, 20), id="int-range"),
    pytest.param("x=0.1:0.3:0.1", (0.1, 0.2, 0.3), id="float-range-without-noise"),
    pytest.param("mode=a,b,a", ("a", "b"), id="choices"),
    pytest.param("on=true,false", (True, False), id="booleans"),
    pytest.param("size=10", (10,), id="one-value"),
])
def test_parameter_ranges_and_choices(text: str, values: tuple[Any, ...]) -> None:
    assert opt.parse_param(text).values == values


@pytest.mark.parametrize("text", ["fast", "fast=", "fast=50:5:5", "fast=1:5:0", "fast=a:b:c", "1x=3"])
def test_malformed_parameters_are_refused(text: str) -> None:
    with pytest.raises(SearchSpaceError):
        opt.parse_param(text)


@pytest.mark.parametrize("text", [
    pytest.param("__import__('os').system('touch /tmp/pwned')", id="call"),
    pytest.param("fast.__class__", id="attribute"),
    pytest.param("[c for c in ()]", id="comprehension"),
    pytest.param("fast ** 10 ** 10", id="power"),
    pytest.param("(lambda: 1)() == 1", id="lambda"),
    pytest.param("open", id="unknown-name"),
])
def test_constraints_refuse_code(text: str) -> None:
    with pytest.raises(SearchSpaceError, match="constraint"):
        opt.parse_constraint(text, ["fast", "slow"])


def test_constraints_filter_the_grid_and_random_draws_repeat_with_the_seed() -> None:
    space = [opt.parse_param("fast=5:30:5"), opt.parse_param("slow=10:40:10")]
    rules = [opt.parse_constraint("fast < slow and slow - fast >= 10", ["fast", "slow"])]
    combos = opt.grid(space, rules)
    assert combos and all(c["fast"] < c["slow"] and c["slow"] - c["fast"] >= 10 for c in combos)
    assert len(combos) == sum(1 for f in range(5, 31, 5) for s in range(10, 41, 10) if s - f >= 10)
    first = opt.random_sample(space, 5, 7, rules)
    assert first == opt.random_sample(space, 5, 7, rules) and len(first) == 5
    assert all(c in combos for c in first) and len({tuple(c.values()) for c in first}) == 5
    assert opt.random_sample(space, 5, 8, rules) != first


def test_every_numeric_statistic_can_be_ranked() -> None:
    """The list of metrics is exactly the numeric keys compute_stats returns (no drift)."""
    equity = pd.Series([100.0, 101.0, 99.0, 103.0], index=pd.bdate_range("2024-01-02", periods=4))
    stats = compute_stats(equity, start_equity=100.0, trades=pd.DataFrame({"pnl": [1.0], "return_pct": [1.0]}),
                          exposure=pd.Series([1.0] * 4), closes=pd.DataFrame({"A": [1.0, 2.0, 3.0, 4.0]}))
    assert set(opt.STATISTICS) == set(stats) - {"start", "end"}
    assert opt.metric_key("cagr") == "cagr_pct" and opt.metric_key("calmar") == "calmar"
    with pytest.raises(SearchSpaceError, match="did you mean 'sharpe'"):
        opt.metric_key("sharp")


def test_walk_forward_windows_tile_the_period() -> None:
    train, test = opt.parse_walk_forward("2y/1y")
    wins = opt.windows(pd.Timestamp("2010-01-01").date(), pd.Timestamp("2014-06-30").date(), train, test)
    assert [(str(w.train_start), str(w.train_end), str(w.test_start), str(w.test_end)) for w in wins] == [
        ("2010-01-01", "2011-12-31", "2012-01-01", "2012-12-31"),
        ("2011-01-01", "2012-12-31", "2013-01-01", "2013-12-31"),
        ("2012-01-01", "2013-12-31", "2014-01-01", "2014-06-30"),
    ]
    with pytest.raises(SearchSpaceError):
        opt.parse_walk_forward("3y")


def test_executor_type_dask_needs_an_address_and_leaves_applied_digests_alone(trading_repo: TradingRepo) -> None:
    from minitrade.errors import ConfigError
    from minitrade.loader import load_worktree

    before = load_worktree(trading_repo.path).digests()
    text = trading_repo.read("minitrade.yaml")
    trading_repo.write("minitrade.yaml", text + "executor: {type: dask, address: 'tcp://10.0.0.5:8786'}\n")
    snapshot = load_worktree(trading_repo.path)
    assert snapshot.settings.executor.address == "tcp://10.0.0.5:8786"
    assert snapshot.digests() == before  # where research runs is no change to apply
    trading_repo.write("minitrade.yaml", text + "executor: {type: dask}\n")
    with pytest.raises(ConfigError, match="needs the scheduler's address"):
        load_worktree(trading_repo.path)


# ---------------------------------------------------------------------------------------------
# the command on the embedded default (sma-aapl, sample prices)

SMA_ARGS = ("optimize", "sma-aapl", "-p", "fast=5:15:5", "-p", "slow=20:40:10", "-c", "fast < slow",
            "--from", "2009-01-02", "--to", "2012-12-31")


def test_optimize_records_every_trial_and_prints_the_yaml_to_paste(trading_repo: TradingRepo,
                                                                  tmp_path: Path) -> None:
    plan_before = trading_repo.read("plans/sma-aapl.yaml")
    doc = _json(invoke(*SMA_ARGS, "--metric", "calmar", "--executor", "local", "--json",
                       "--repo", str(trading_repo.path)))
    assert doc["kind"] == "optimize" and doc["format_version"] == 1 and doc["metric"] == "calmar"
    swept = [t for t in doc["trials"] if t["phase"] == "sweep"]
    assert len(swept) == 9 and all(t["error"] is None for t in swept)
    best = max(swept, key=lambda t: t["stats"]["calmar"])
    assert doc["best"]["params"] == best["params"] and best["rank"] == 1
    assert doc["best"]["yaml"] == f"params:\n  fast: {best['params']['fast']}\n  slow: {best['params']['slow']}"
    (baseline,) = [t for t in doc["trials"] if t["phase"] == "baseline"]
    assert baseline["params"] == {"fast": 20, "slow": 50}  # the plan's own, for comparison
    assert trading_repo.read("plans/sma-aapl.yaml") == plan_before  # never edits the plan

    with Store(trading_repo.path / "state" / "minitrade.duckdb").transaction() as con:
        row = store_opt.optimization(con, doc["optimization_id"])
        rows = store_opt.trials(con, doc["optimization_id"])
    assert row is not None and row.status == "FINISHED" and row.best_params == best["params"]
    assert row.commit_sha == trading_repo.head and row.executor == "local" and row.metric == "calmar"
    assert len(rows) == 10 and len({r.trial_id for r in rows}) == 10
    by_params = {json.dumps(r.params, sort_keys=True): r for r in rows if r.phase == "sweep"}
    for t in swept:
        r = by_params[json.dumps(t["params"], sort_keys=True)]
        assert r.stats == t["stats"] and r.score == t["stats"]["calmar"]
        assert r.seconds > 0 and r.worker.startswith("pid ")

    page = Path(doc["report"]).read_text()
    assert "<svg" in page and "fast" in page and "<script" not in page
    assert "https://" not in page and "http://" not in page.replace("http://www.w3.org/2000/svg", "")

    # the site's index links the optimisation once the site is written again
    assert invoke("report", "--repo", str(trading_repo.path)).exit_code == 0
    index = (trading_repo.path / "state" / "reports" / "index.html").read_text()
    link = f'href="optimize/{doc["optimization_id"]}.html"'
    assert link in index and "calmar" in index
    assert f"fast={best['params']['fast']} slow={best['params']['slow']}" in index


def test_csv_output_is_one_row_a_trial_with_every_statistic(trading_repo: TradingRepo) -> None:
    result = invoke(*SMA_ARGS, "--method", "random", "--samples", "4", "--csv", "--repo", str(trading_repo.path))
    assert result.exit_code == 0, result.output
    table = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(table) == 5 and [r["phase"] for r in table].count("baseline") == 1
    assert {"fast", "slow", "score", "sharpe", "calmar", "return_pct", "sqn", "seconds", "worker"} <= set(table[0])
    assert all(r["score"] == r["sharpe"] for r in table)
    assert "best parameters:\nparams:" in result.stderr
    both = invoke(*SMA_ARGS, "--csv", "--json", "--repo", str(trading_repo.path))
    assert both.exit_code == USAGE and "choose one of --json and --csv" in both.output


def test_text_output_shows_ranked_table_and_best_params(trading_repo: TradingRepo) -> None:
    result = invoke(*SMA_ARGS, "--method", "random", "--samples", "3", "--seed", "1",
                    "--repo", str(trading_repo.path))
    assert result.exit_code == 0, result.output
    assert "optimize sma-aapl: 3 trials, by sharpe" in result.output
    assert "to paste into plans/sma-aapl.yaml" in result.output and "params:\n  fast:" in result.output
    assert "[4/4]" in result.stderr  # plain progress lines when not on a terminal


@pytest.mark.parametrize(("args", "message"), [
    pytest.param(("-c", "__import__('os')"), "is not allowed (Call)", id="code-in-constraint"),
    pytest.param(("-c", "fats < slow"), "'fats' is not a parameter", id="unknown-name"),
    pytest.param(("--metric", "sharp"), "did you mean 'sharpe'", id="metric"),
    pytest.param(("-c", "fast > 100"), "no combination", id="nothing-left"),
    pytest.param(("-p", "slowe=30:40:10"), "strategy SmaCrossover (strategies/sma_crossover.py) has no param 'slowe'; "
                 "did you mean 'slow'?", id="undeclared-param"),
])
def test_bad_options_are_usage_errors_naming_the_fault(trading_repo: TradingRepo, args: tuple[str, ...],
                                                       message: str) -> None:
    result = invoke("optimize", "sma-aapl", "-p", "fast=5:15:5", "-p", "slow=20:40:10", *args,
                    "--repo", str(trading_repo.path))
    assert result.exit_code == USAGE
    assert message in " ".join(result.output.split())
    assert not (trading_repo.path / "state" / "reports" / "optimize").exists()


def test_a_failing_trial_fails_alone_with_the_users_file_and_line(trading_repo: TradingRepo) -> None:
    trading_repo.edit("strategies/sma_crossover.py", "    def next(self):\n",
                      "    def next(self):\n        if self.p.fast == 10:\n            raise ValueError('no ten')\n")
    doc = _json(invoke(*SMA_ARGS, "--json", "--repo", str(trading_repo.path)))
    failed = [t for t in doc["trials"] if t["error"]]
    assert [t["params"]["fast"] for t in failed] == [10, 10, 10]
    assert all("strategies/sma_crossover.py:18: ValueError: no ten" in t["error"] for t in failed), failed[0]
    assert doc["status"] == "FINISHED" and doc["best"]["params"]["fast"] != 10


# ---------------------------------------------------------------------------------------------
# walk-forward on hand-made prices: up in 2010 and 2011, down in 2012 and 2013

DIRECTION = '''
from minitrade import Strategy


class Direction(Strategy):
    params = (("mode", "flat"),)

    def next(self):
        if self.p.mode == "long" and not self.position:
            self.order_target_percent(target=0.95)
'''


def _trend_repo(tmp_path: Path) -> TradingRepo:
    days = pd.bdate_range("2010-01-04", "2013-12-31")
    drift = np.where(days.year <= 2011, 0.001, -0.001)
    close = 100 * np.exp(np.cumsum(drift))
    frame = pd.DataFrame({"date": days.strftime("%Y-%m-%d"), "open": close, "high": close * 1.001,
                          "low": close * 0.999, "close": close, "volume": 1000})
    repo = TradingRepo(tmp_path / "repo")
    repo.path.mkdir()
    repo.write("minitrade.yaml", "data_sources:\n  hand: {type: csv, path: data}\n")
    repo.write("data/TRND.csv", frame.to_csv(index=False))
    repo.write("strategies/direction.py", DIRECTION)
    repo.write("plans/trend.yaml", "strategy: strategies/direction.py\nuniverse: [TRND]\ndata_source: hand\n"
                                   "backtest_start: 2010-01-04\nrun_at: '15:45'\ncash: 10000\n"
                                   "params: {mode: flat}\n")
    repo.write(".gitignore", "state/\n")
    repo.git("init", "-q", "-b", "main")
    repo.commit("trend")
    return repo


def test_walk_forward_picks_each_windows_best_and_scores_it_out_of_sample(tmp_path: Path) -> None:
    repo = _trend_repo(tmp_path)
    doc = _json(invoke("optimize", "trend", "-p", "mode=long,flat", "--metric", "return",
                       "--walk-forward", "1y/1y", "--json", "--repo", str(repo.path)))
    windows = doc["windows"]
    assert [(w["train"]["start"], w["test"]["start"]) for w in windows] == [
        ("2010-01-04", "2011-01-04"), ("2011-01-04", "2012-01-04"), ("2012-01-04", "2013-01-04")]
    # the best parameter changes with the market: long while it rises, flat once it falls
    assert [w["params"] for w in windows] == [{"mode": "long"}, {"mode": "long"}, {"mode": "flat"}]
    assert windows[0]["in_sample"] > 0 and windows[0]["out_of_sample"] > 0
    # trained on a rising 2011, long loses in the falling 2012: overfitting shows out of sample
    assert windows[1]["in_sample"] > 0 > windows[1]["out_of_sample"]
    assert windows[2]["out_of_sample"] == 0.0 and windows[2]["plan_out_of_sample"] == 0.0
    assert doc["best"]["params"] == {"mode": "flat"}  # trained on the latest window
    with Store(repo.path / "state" / "minitrade.duckdb").transaction() as con:
        rows = store_opt.trials(con, doc["optimization_id"])
    assert sorted((r.window_no, r.phase) for r in rows) == sorted(
        [(w, "train") for w in (1, 2, 3) for _ in range(2)] + [(w, p) for w in (1, 2, 3) for p in ("test", "baseline")])
    test_2012 = next(r for r in rows if r.window_no == 2 and r.phase == "test")
    assert (str(test_2012.window_start), str(test_2012.window_end)) == ("2012-01-04", "2013-01-03")
    assert test_2012.stats is not None and test_2012.stats["start"] >= "2012-01-04"
    result = invoke("optimize", "trend", "-p", "mode=long,flat", "--metric", "return",
                    "--walk-forward", "1y/1y", "--repo", str(repo.path))
    assert "in-sample vs out-of-sample" in result.output


def test_trials_are_recorded_once_each_in_batches_of_any_size(tmp_path: Path) -> None:
    """A flush writes many trials in one statement; a trial id seen before (a Dask task run twice),
    in the same flush or an earlier one, is ignored and not counted."""
    from datetime import UTC, datetime

    def trial(n: int, score: float = 1.0) -> store_opt.TrialRow:
        return store_opt.TrialRow("opt-1", f"t{n:04d}", n, "sweep", None, None, None, {"fast": n},
                                  {"sharpe_ratio": score}, score, None, 0.2, "pid 1")

    store = Store(tmp_path / "minitrade.duckdb")
    with store.transaction() as con:
        store_opt.start_optimization(con, store_opt.OptimizationRow(
            "opt-1", "p", None, False, datetime.now(UTC), None, "RUNNING", "grid", "sharpe_ratio", {"fast": [1]}, [],
            None, None, None, "local", None))
        assert store_opt.record_trials(con, [trial(n) for n in range(120)] + [trial(5, score=9.0)]) == 120
        assert store_opt.record_trials(con, [trial(119, score=9.0), trial(120)]) == 1
        recorded = store_opt.trials(con, "opt-1")
    assert [t.number for t in recorded] == list(range(121))
    assert {t.score for t in recorded} == {1.0}  # the first of each trial id stands
