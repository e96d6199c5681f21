"""`minitrade backtest` on a real trading repo (git, DuckDB file, sample prices); never orders."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from minitrade.cli import app
from minitrade.store import Store
from minitrade.store import runs as store_runs

ROOT = Path(__file__).resolve().parents[2]


def invoke(*args: str) -> Any:
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def test_backtest_all_records_runs_and_writes_files(trading_repo: Any) -> None:
    result = invoke("backtest", "--all", "--repo", str(trading_repo.path))
    assert result.exit_code == 0, result.output
    assert "Sharpe" in result.output and "momentum-rotation" in result.output
    state = trading_repo.path / "state"
    with Store(state / "minitrade.duckdb").transaction() as con:
        runs = store_runs.list_runs(con, kind="backtest")
        orders = con.execute("SELECT count(*) FROM orders").fetchone()
        trades = con.execute("SELECT count(*) FROM backtest_trades").fetchone()
    assert sorted(r.plan for r in runs) == ["equal-weight", "momentum-rotation", "sma-aapl"]
    assert all(r.status == "FINISHED" and r.commit_sha == trading_repo.head and r.plan_digest for r in runs)
    assert orders == (0,) and trades is not None and trades[0] > 0
    folder = state / "backtests" / "sma-aapl"
    meta = json.loads((folder / "result.json").read_text())
    assert meta["stats"]["trades"] > 0 and meta["commit"] == trading_repo.head
    assert (folder / "equity.csv").read_text().startswith("date,equity,cash,shares_AAPL")
    assert (folder / "trades.csv").exists() and (folder / "fills.csv").exists()


def test_backtest_one_plan_with_dates_as_json(trading_repo: Any) -> None:
    result = invoke("backtest", "sma-aapl", "--from", "2010-01-04", "--to", "2011-12-30", "--json",
                    "--repo", str(trading_repo.path))
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert (doc["format_version"], doc["kind"]) == (1, "backtest")
    out = doc["backtests"]
    assert list(out) == ["sma-aapl"]
    assert (out["sma-aapl"]["stats"]["start"], out["sma-aapl"]["stats"]["end"]) == ("2010-01-04", "2011-12-30")


def test_unknown_plan_suggests_the_nearest(trading_repo: Any) -> None:
    result = invoke("backtest", "sma-apl", "--repo", str(trading_repo.path))
    assert result.exit_code == 1
    assert "no plan named 'sma-apl'" in result.output and "did you mean 'sma-aapl'" in result.output


def test_failing_strategy_is_recorded_and_reported_with_file_and_line(trading_repo: Any) -> None:
    trading_repo.edit("strategies/sma_crossover.py", "        if self.cross > 0 and not self.position:",
                      "        if self.missing_attribute:")
    result = invoke("backtest", "sma-aapl", "--repo", str(trading_repo.path))
    assert result.exit_code == 1
    assert "plan sma-aapl: strategies/sma_crossover.py:17: AttributeError" in result.output
    with Store(trading_repo.path / "state" / "minitrade.duckdb").transaction() as con:
        (run,) = store_runs.list_runs(con, plan="sma-aapl")
    assert run.status == "FAILED" and run.error is not None and "sma_crossover.py:17" in run.error


@pytest.mark.slow
def test_readme_first_command_runs_offline_on_the_repo_root(tmp_path: Path) -> None:
    """The README's `minitrade backtest --all` on this repository (state kept out of the tree)."""
    for name in ("minitrade.yaml",):
        (tmp_path / name).write_text((ROOT / name).read_text())
    for folder in ("plans", "strategies"):
        (tmp_path / folder).mkdir()
        for f in (ROOT / folder).glob("*.*"):
            (tmp_path / folder / f.name).write_text(f.read_text())
    done = subprocess.run([sys.executable, "-m", "minitrade", "backtest", "--all", "--repo", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "equal-weight" in done.stdout and "Final equity" in done.stdout
