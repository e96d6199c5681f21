"""`minitrade backtest`: research backtests of plans; results go to DuckDB and CSV/JSON, never orders."""

from __future__ import annotations

import difflib
import json
import uuid
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape

from minitrade.cli.app import (
    REPO_OPTION,
    STATE_DIR_OPTION,
    app,
    console,
    emit_json,
    err_console,
    handle_errors,
    repo_path,
)
from minitrade.cli.optimize_cmd import EXECUTOR_OPTION
from minitrade.cli.times import parse_day
from minitrade.errors import ConfigError, ConfigIssue, MinitradeError

if TYPE_CHECKING:      # pandas and backtrader load only when a backtest runs, not for `--help`
    from minitrade.loader import Snapshot
    from minitrade.runner.backtest import BacktestResult

SHOWN = [
    ("start", "Start"), ("end", "End"), ("duration_days", "Duration (days)"), ("exposure_pct", "Exposure %"),
    ("final_equity", "Final equity"), ("peak_equity", "Peak equity"), ("return_pct", "Return %"),
    ("buy_hold_return_pct", "Buy & hold return %"), ("cagr_pct", "CAGR %"), ("volatility_pct", "Volatility % (ann.)"),
    ("sharpe", "Sharpe"), ("sortino", "Sortino"), ("calmar", "Calmar"), ("max_drawdown_pct", "Max drawdown %"),
    ("max_drawdown_days", "Max drawdown days"), ("avg_drawdown_pct", "Avg drawdown %"), ("trades", "Trades"),
    ("win_rate_pct", "Win rate %"), ("best_trade_pct", "Best trade %"), ("worst_trade_pct", "Worst trade %"),
    ("avg_trade_pct", "Avg trade %"), ("profit_factor", "Profit factor"), ("expectancy", "Expectancy"),
    ("sqn", "SQN"),
]




@app.command()
def backtest(
    plan: str | None = typer.Argument(None, help="Plan name (see plans/*.yaml).", show_default=False),
    all_plans: bool = typer.Option(False, "--all", help="Backtest every plan."),
    start: str | None = typer.Option(None, "--from", help="Start date (default: the plan's backtest_start)."),
    end: str | None = typer.Option(None, "--to", help="End date (default: the latest prices)."),
    as_json: bool = typer.Option(False, "--json", help="Print the results as JSON."),
    executor: str | None = EXECUTOR_OPTION,
    repo: Path | None = REPO_OPTION, state_dir: Path | None = STATE_DIR_OPTION,
) -> None:
    """Backtest plans on their data sources: statistics table, records in DuckDB, CSV/JSON files.

    Never creates orders.

    Example: minitrade backtest sma-aapl --from 2010-01-01
    """
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

    from minitrade.loader import load_worktree

    first, last = parse_day(start, "--from"), parse_day(end, "--to")
    with handle_errors():
        snapshot = load_worktree(repo_path(repo, state_dir))
        names = _chosen(snapshot, plan, all_plans)
        if len(names) > 1 or executor is not None:  # side by side on the worker pool (or a Dask cluster)
            outcomes = _run_many(snapshot, names, first, last, executor)
        else:  # one plan in this process, with a progress bar of its prices and bars
            (name,) = names
            with Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn(),
                          console=err_console, transient=True,
                          disable=as_json and not err_console.is_terminal) as bar:
                task = bar.add_task(f"{name}: prices", total=None)

                def step(stage: str, done: int, total: int) -> None:
                    bar.update(task, description=f"{name}: {stage}", completed=done, total=total)

                outcomes = {name: _run_one(snapshot, name, first, last, step)}
    if as_json:
        emit_json("backtest", {"backtests": outcomes})
    else:
        _print(outcomes)
    if any(o.get("error") for o in outcomes.values()):
        raise typer.Exit(1)


def _chosen(snapshot: Snapshot, plan: str | None, all_plans: bool) -> list[str]:
    if all_plans == (plan is not None):
        raise typer.BadParameter("name one plan, or pass --all", param_hint="PLAN")
    if all_plans:
        if not snapshot.plans:
            raise ConfigError(ConfigIssue("plans/", None, "", "no plans to backtest"))
        return sorted(snapshot.plans)
    assert plan is not None
    if plan not in snapshot.plans:
        near = difflib.get_close_matches(plan, list(snapshot.plans), n=1)
        hint = f"did you mean {near[0]!r}?" if near else f"plans: {', '.join(sorted(snapshot.plans)) or 'none'}"
        raise ConfigError(ConfigIssue("plans/", None, "", f"no plan named {plan!r}", hint))
    return [plan]


def _run_one(snapshot: Snapshot, name: str, first: date | None, last: date | None, step: Any) -> dict[str, Any]:
    from minitrade.runner.research import backtest_plan

    run_id = _new_run(snapshot, name)
    try:
        result = backtest_plan(snapshot, name, start=first, end=last, progress=step)
    except MinitradeError as e:
        return _record(snapshot, run_id, e)
    return _record(snapshot, run_id, result)


def _new_run(snapshot: Snapshot, name: str) -> str:
    from minitrade.store import runs as store_runs

    run_id = f"backtest-{name}-{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    with snapshot.store().transaction() as con:
        store_runs.start_run(con, run_id=run_id, plan=name, kind="backtest", commit_sha=snapshot.commit,
                             plan_digest=snapshot.digests().get(("plan", name)))
    return run_id


def _run_many(snapshot: Snapshot, names: list[str], first: date | None, last: date | None,
              executor_name: str | None = None) -> dict[str, dict[str, Any]]:
    """Backtest several plans on the worker pool (minitrade.yaml's `executor:`, or `--executor`),
    printing a line as each one finishes (plain lines also when piped)."""
    from minitrade.runner.compute import raise_for_error
    from minitrade.runner.executor import chosen_executor
    from minitrade.runner.research import research_input

    outcomes: dict[str, dict[str, Any]] = {}
    units, plan_of = [], {}
    for name in names:
        run_id = _new_run(snapshot, name)
        plan_of[run_id] = name
        try:
            units.append(research_input(snapshot, name, run_id=run_id, start=first, end=last))
        except MinitradeError as e:
            outcomes[name] = _record(snapshot, run_id, e)
    executor = chosen_executor(snapshot.settings.executor, executor_name)
    try:
        for done, computed in enumerate(executor.run(units), start=1):
            name = plan_of[computed.run_id]
            try:
                outcomes[name] = _record(snapshot, computed.run_id, raise_for_error(computed))
            except MinitradeError as e:
                outcomes[name] = _record(snapshot, computed.run_id, e)
            err_console.print(f"[{done}/{len(units)}] {name}: {'failed' if outcomes[name].get('error') else 'done'}")
    finally:
        executor.close()
    return {name: outcomes[name] for name in names}


def _record(snapshot: Snapshot, run_id: str, result: BacktestResult | MinitradeError) -> dict[str, Any]:
    """Store a research backtest's outcome and write its files; the command's row for it."""
    from minitrade.store import runs as store_runs

    store = snapshot.store()
    if isinstance(result, MinitradeError):
        with store.transaction() as con:
            store_runs.finish_run(con, run_id, error=str(result))
        return {"run_id": run_id, "error": str(result)}
    name = result.plan
    with store.transaction() as con:
        store_runs.write_results(con, run_id, equity=result.equity, positions=result.positions,
                                 trades=result.trades, fills=result.fills, plan=name)
        store_runs.finish_run(con, run_id, stats=result.stats, start_date=result.equity.index[0].date(),
                              end_date=result.last_date)
    folder = _write_files(snapshot.state_dir / "backtests" / name, run_id, snapshot, result)
    return {"run_id": run_id, "stats": result.stats, "folder": str(folder), "rejected_orders": result.rejected,
            "last_bar_decisions": [f"{i.side} {i.quantity:g} {i.ticker} {i.order_type}" for i in result.intents]}


def _write_files(folder: Path, run_id: str, snapshot: Snapshot, result: BacktestResult) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    result.equity.join(result.positions.add_prefix("shares_")).to_csv(folder / "equity.csv", float_format="%.6f")
    # %.10g: backtrader averages fill prices, which leaves float noise like 1.1758999999999997
    result.trades.to_csv(folder / "trades.csv", index=False, date_format="%Y-%m-%d", float_format="%.10g")
    result.fills.to_csv(folder / "fills.csv", index=False, date_format="%Y-%m-%d", float_format="%.10g")
    meta = {"plan": result.plan, "run_id": run_id, "commit": snapshot.commit, "dirty": snapshot.dirty,
            "stats": result.stats, "rejected_orders": result.rejected}
    (folder / "result.json").write_text(json.dumps(meta, indent=2, default=str) + "\n", encoding="utf-8")
    return folder


def _print(outcomes: dict[str, dict[str, Any]]) -> None:
    from rich.table import Table

    good = {n: o for n, o in outcomes.items() if not o.get("error")}
    if good:
        table = Table(title="Backtest", title_justify="left")
        table.add_column("statistic")
        for name in good:
            table.add_column(name, justify="right")
        for key, label in SHOWN:
            table.add_row(label, *(_fmt(o["stats"].get(key)) for o in good.values()))
        console.print(table)
        for name, o in good.items():
            console.print(f"{name}: run {o['run_id']}, files in {escape(o['folder'])}")
            if o["rejected_orders"]:
                console.print(f"  [yellow]{len(o['rejected_orders'])} orders refused by the simulated broker[/] "
                              f"(e.g. {escape(o['rejected_orders'][0])})")
    for o in outcomes.values():
        if o.get("error"):
            err_console.print(f"[bold red]error:[/] {escape(o['error'])}")


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.2f}"
    return str(value)
