"""`minitrade optimize`: sweep a plan's strategy parameters; trials in DuckDB, CSV/JSON, a report page.

It never edits the plan: the best parameters are printed as the YAML lines to paste into it.
"""

from __future__ import annotations

import csv
import re
import sys
import time
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

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
from minitrade.cli.times import parse_day
from minitrade.errors import SearchSpaceError

if TYPE_CHECKING:  # pandas and backtrader load only when a sweep runs, not for `--help`
    from minitrade.loader import Snapshot
    from minitrade.reports.optimization import OptimizationPage
    from minitrade.runner.sweep import Outcome, Report, Request

EXECUTOR_PATTERN = re.compile(r"^(local|(tcp|tls)://[^\s/:]+:[0-9]{1,5})$")
EXECUTOR_HELP = ("local (worker processes on this machine) or a Dask scheduler tcp://HOST:PORT "
                 "(default: minitrade.yaml's executor).")


def check_executor(value: str | None) -> str | None:
    """`--executor`: local or tcp://HOST:PORT (a usage error otherwise)."""
    if value is not None and not EXECUTOR_PATTERN.match(value):
        raise typer.BadParameter(f"{value!r}: write local or tcp://HOST:PORT (a Dask scheduler)",
                                 param_hint="--executor")
    return value


EXECUTOR_OPTION = typer.Option(None, "--executor", help=EXECUTOR_HELP, callback=check_executor,
                               show_default=False)


@app.command()
def optimize(
    plan: str = typer.Argument(..., help="Plan name (see plans/*.yaml).", show_default=False),
    param: list[str] = typer.Option([], "--param", "-p", show_default=False,
                                    help="A parameter to vary: NAME=FROM:TO:STEP, NAME=A,B,C or NAME=VALUE "
                                         "(repeat the option)."),
    space_file: Path | None = typer.Option(None, "--space", show_default=False,
                                           help="YAML file of parameters: `fast: 5:50:5`, `mode: [a, b]`."),
    constraint: list[str] = typer.Option([], "--constraint", "-c", show_default=False,
                                         help="A condition on the parameters, e.g. 'fast < slow' (repeatable)."),
    method: str = typer.Option("grid", "--method", help="grid (every combination) or random."),
    samples: int = typer.Option(50, "--samples", help="Trials drawn by --method random."),
    seed: int = typer.Option(0, "--seed", help="Seed of --method random (the same seed, the same trials)."),
    metric: str = typer.Option("sharpe", "--metric", help="Statistic to rank by: sharpe, sortino, calmar, cagr, "
                                                          "return, drawdown, or any key of the backtest's stats."),
    start: str | None = typer.Option(None, "--from", help="Start date (default: the plan's backtest_start)."),
    end: str | None = typer.Option(None, "--to", help="End date (default: the latest prices)."),
    walk_forward: str | None = typer.Option(None, "--walk-forward", show_default=False,
                                            help="TRAIN/TEST window lengths, e.g. 3y/1y: optimise on each train "
                                                 "window, score the best on the test window after it."),
    executor: str | None = EXECUTOR_OPTION,
    top: int = typer.Option(10, "--top", help="Trials shown in the ranked table."),
    as_csv: bool = typer.Option(False, "--csv", help="Print every trial as CSV with a header row (the summary "
                                                     "goes to stderr)."),
    as_json: bool = typer.Option(False, "--json", help="Print the results as one JSON object."),
    repo: Path | None = REPO_OPTION, state_dir: Path | None = STATE_DIR_OPTION,
) -> None:
    """Search a plan's strategy parameters; rank trials by a statistic; print the best as YAML.

    Trials run on the executor (worker processes, or a Dask cluster), are recorded in DuckDB
    (optimization_trials) and shown on a report page. The plan file is never edited.

    Example: minitrade optimize sma-aapl -p fast=5:30:5 -p slow=20:100:10 -c 'fast < slow' --metric sharpe
    """
    from minitrade.loader import load_worktree
    from minitrade.runner.executor import chosen_executor, executor_label
    from minitrade.runner.sweep import new_id
    from minitrade.runner.sweep import optimize as run_optimize

    if as_json and as_csv:
        raise typer.BadParameter("choose one of --json and --csv")
    if method not in ("grid", "random"):
        raise typer.BadParameter(f"{method!r}: grid or random", param_hint="--method")
    with handle_errors():
        snapshot = load_worktree(repo_path(repo, state_dir))
        _known_plan(snapshot, plan)
        request = _request(snapshot, plan, param, space_file, constraint, method, samples, seed, metric,
                           parse_day(start, "--from"), parse_day(end, "--to"), walk_forward)
        runner = chosen_executor(snapshot.settings.executor, executor)
        label = executor_label(snapshot.settings.executor, executor)
        oid = new_id(plan)
        progress = SweepProgress(request.metric, quiet=(as_json or as_csv) and not err_console.is_terminal)
        try:
            with progress:
                report = run_optimize(snapshot, request, runner, executor_name=label, optimization_id=oid,
                                      on_outcome=progress.update)
        finally:
            runner.close()
        page = _page(snapshot, report, label)
        from minitrade.reports.optimization import write_page
        from minitrade.runner.publish import OPTIMIZE_FOLDER

        page_path = write_page(snapshot.state_dir / "reports" / OPTIMIZE_FOLDER, page)
    if as_json:
        emit_json("optimize", _json_doc(report, page, page_path))
    elif as_csv:
        _write_csv(sys.stdout, report)
        err_console.print(f"best parameters:\n{escape(page.yaml)}\noptimization {report.optimization_id}; "
                          f"report {escape(str(page_path))}")
    else:
        _print(report, page, page_path, top)
    if report.status == "FAILED":
        raise typer.Exit(1)




def _known_plan(snapshot: Snapshot, plan: str) -> None:
    from minitrade.cli.backtest_cmd import _chosen

    _chosen(snapshot, plan, False)


def _request(snapshot: Snapshot, plan: str, param: list[str], space_file: Path | None, constraint: list[str],
             method: str, samples: int, seed: int, metric: str, start: date | None, end: date | None,
             walk_forward: str | None) -> Request:
    """The sweep the options describe; a usage error (exit 64) names the option at fault."""
    from minitrade.runner import optimize as opt
    from minitrade.runner.sweep import Request
    from minitrade.strategy_source import declared_params

    try:
        params = [opt.parse_param(p) for p in param]
        if space_file is not None:
            params += opt.space_from_mapping(_read_space(space_file))
        if not params:
            raise SearchSpaceError("give the parameters to vary: --param NAME=FROM:TO:STEP (or --space FILE)")
        opt.check_space(params)
        spec = snapshot.plans[plan]
        opt.check_names(params, declared_params(snapshot.strategies.get(spec.strategy, ""), spec.class_name),
                        spec.strategy)
        names = [p.name for p in params]
        constraints = [opt.parse_constraint(c, names) for c in constraint]
        key = opt.metric_key(metric)
        windows = None
        if walk_forward is not None:
            train, test = opt.parse_walk_forward(walk_forward)
            first = start or snapshot.plans[plan].backtest_start
            last = end or _last_priceparse_day(snapshot, plan)
            windows = (walk_forward, opt.windows(first, last, train, test))
        request = Request(plan, params, constraints, method, samples, seed, key, start, end, windows)
        from minitrade.runner.sweep import sample

        if not sample(request):
            raise SearchSpaceError("no combination of the parameters meets the constraints; loosen them")
        return request
    except SearchSpaceError as e:
        raise typer.BadParameter(str(e)) from None


def _read_space(path: Path) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise SearchSpaceError(f"--space {path}: {e}") from None
    if not isinstance(data, dict):
        raise SearchSpaceError(f"--space {path}: write a mapping of parameter: range or list")
    return data


def _last_priceparse_day(snapshot: Snapshot, plan: str) -> date:
    """The last day of the plan's prices (for walk-forward windows without --to)."""
    from minitrade.data.registry import source_for

    spec = snapshot.plans[plan]
    source = source_for(spec.data_source, snapshot.settings.data_sources[spec.data_source], root=snapshot.root)
    last: date = min(source.daily(t, spec.backtest_start).index[-1].date() for t in spec.tickers)
    return last


class SweepProgress:
    """A bar with trials done, the best so far and the ETA on a terminal; plain lines when piped."""

    def __init__(self, metric: str, *, quiet: bool = False) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.metric, self.quiet = metric, quiet
        self.terminal = err_console.is_terminal
        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.fields[best]}"), TimeRemainingColumn(), console=err_console,
                            transient=True, disable=quiet or not self.terminal)
        self.task = self.bar.add_task("trials", total=None, best="")
        self.started = time.monotonic()

    def __enter__(self) -> SweepProgress:
        self.bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.__exit__(None, None, None)

    def update(self, outcome: Outcome, done: int, total: int, best: Outcome | None) -> None:
        from minitrade.runner.optimize import describe

        best_text = (f"best {self.metric} {best.score:.4g} ({describe(best.trial.params)})"
                     if best is not None and best.score is not None else "")
        if self.terminal:
            self.bar.update(self.task, completed=done, total=total, best=best_text)
            return
        if self.quiet:
            return
        what = f"error: {outcome.error}" if outcome.error else f"{self.metric} {_num(outcome.score)}"
        elapsed = time.monotonic() - self.started
        eta = elapsed / done * (total - done) if done else 0.0
        print(f"[{done}/{total}] {outcome.trial.phase} {describe(outcome.trial.params)}: {what}; {best_text}; "
              f"eta {eta:.0f}s", file=sys.stderr, flush=True)


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _trial_rows(report: Report) -> list[dict[str, Any]]:
    """Every trial of the report (and the baseline), flat, ranked within its phase and window."""
    from minitrade.runner.optimize import ranked

    rows = []
    ranks: dict[str, int] = {}
    for window in {o.trial.window for o in report.outcomes}:
        mine = [o for o in report.outcomes if o.trial.window == window]
        order = ranked([o.score for o in mine], report.metric)
        ranks.update({mine[i].trial.trial_id: n for n, i in enumerate(order, start=1) if mine[i].stats is not None})
    extra = [report.baseline] if report.baseline is not None else []
    extra += [o for _, _, test, own in report.windows for o in (test, own) if o is not None]
    for o in [*report.outcomes, *extra]:
        start, end = o.trial.period
        rows.append({"trial_id": o.trial.trial_id, "phase": o.trial.phase,
                     "window": o.trial.window.number if o.trial.window else None,
                     "window_start": start, "window_end": end, "rank": ranks.get(o.trial.trial_id),
                     "params": o.trial.params, "score": o.score, "error": o.error, "seconds": o.seconds,
                     "worker": o.worker, "stats": o.stats})
    return rows


def _write_csv(out: TextIO, report: Report) -> None:
    from minitrade.runner.optimize import STATISTICS

    rows = _trial_rows(report)
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["trial_id", "phase", "window", "window_start", "window_end", "rank", *report.names, "score",
                     "error", "seconds", "worker", *STATISTICS])
    for r in rows:
        stats = r["stats"] or {}
        writer.writerow([r["trial_id"], r["phase"], r["window"], r["window_start"] or "", r["window_end"] or "",
                         r["rank"], *(r["params"].get(n) for n in report.names), r["score"], r["error"] or "",
                         f"{r['seconds']:.4f}", r["worker"], *(stats.get(k) for k in STATISTICS)])


def _json_doc(report: Report, page: OptimizationPage, page_path: Path) -> dict[str, Any]:
    best = report.best
    return {"optimization_id": report.optimization_id, "plan": report.plan, "metric": report.metric,
            "status": report.status, "period": {"start": report.period[0], "end": report.period[1]},
            "best": None if best is None else {"params": best.trial.params, "score": best.score,
                                               "stats": best.stats, "yaml": page.yaml},
            "baseline": None if report.baseline is None else {"params": report.baseline.trial.params,
                                                              "score": report.baseline.score},
            "windows": [{"window": w.number, "train": {"start": w.train_start, "end": w.train_end},
                         "test": {"start": w.test_start, "end": w.test_end},
                         "params": tb.trial.params if tb else None, "in_sample": tb.score if tb else None,
                         "out_of_sample": test.score if test else None,
                         "plan_out_of_sample": own.score if own else None}
                        for w, tb, test, own in report.windows],
            "trials": _trial_rows(report), "report": str(page_path)}


def _page(snapshot: Snapshot, report: Report, executor: str) -> OptimizationPage:
    from minitrade.reports.optimization import OptimizationPage, TrialView, WindowView
    from minitrade.runner.optimize import yaml_lines

    plan = snapshot.plans[report.plan]
    plan_file = snapshot.plan_files.get(report.plan, f"plans/{report.plan}.yaml")
    rows = _trial_rows(report)
    trials = [TrialView(r["rank"], r["params"], r["score"], r["stats"], r["error"], r["seconds"], r["worker"])
              for r in rows if r["phase"] in ("sweep", "train")]
    best = report.best
    windows = [WindowView(w.number, f"{w.train_start} to {w.train_end}", f"{w.test_start} to {w.test_end}",
                          tb.trial.params if tb else None, tb.score if tb else None,
                          test.score if test else None, own.score if own else None)
               for w, tb, test, own in report.windows]
    return OptimizationPage(
        report.optimization_id, report.plan, report.metric, report.names, trials,
        best.trial.params if best else None, dict(plan.params),
        yaml_lines(plan.params, best.trial.params) if best else "", executor,
        f"{report.period[0]} to {report.period[1]}", snapshot.commit,
        _curve(best.equity if best else None),
        _curve(report.baseline.equity if report.baseline else None), windows, plan_file)


def _curve(equity: Any) -> list[tuple[str, float]]:
    if equity is None:
        return []
    step = max(1, len(equity) // 1000)  # a page needs no more than ~1000 points a line
    return [(d.date().isoformat(), float(v)) for d, v in list(equity.items())[::step]]


def _print(report: Report, page: OptimizationPage, page_path: Path, top: int) -> None:
    from rich.table import Table

    rows = sorted((r for r in _trial_rows(report) if r["rank"] is not None and r["phase"] in ("sweep", "train")),
                  key=lambda r: (r["window"] or 0, r["rank"]))
    if report.windows:
        _print_windows(report)
    else:
        table = Table(title=f"optimize {report.plan}: {len(report.outcomes)} trials, by {report.metric}",
                      title_justify="left")
        for column in ("rank", *report.names, report.metric, "return %", "max dd %", "trades"):
            table.add_column(column, justify="right")
        for r in rows[:top]:
            s = r["stats"] or {}
            table.add_row(str(r["rank"]), *(str(r["params"].get(n)) for n in report.names), _num(r["score"]),
                          _num(s.get("return_pct")), _num(s.get("max_drawdown_pct")), str(s.get("trades")))
        console.print(table)
        if report.baseline is not None:
            console.print(f"plan's current params ({escape(_params(report.baseline.trial.params))}): "
                          f"{report.metric} {_num(report.baseline.score)}")
    failed = [r for r in _trial_rows(report) if r["error"]]
    if failed:
        err_console.print(f"[yellow]{len(failed)} trial(s) failed[/], e.g. {escape(_params(failed[0]['params']))}: "
                          f"{escape(failed[0]['error'])}")
    if page.best_params is not None:
        console.print(f"best parameters, to paste into {escape(page.plan_file)} (minitrade never edits it):")
        console.print(escape(page.yaml), highlight=False)
    else:
        err_console.print("[bold red]error:[/] no trial produced statistics")
    console.print(f"optimization {report.optimization_id}; report {escape(str(page_path))}")


def _print_windows(report: Report) -> None:
    from rich.table import Table

    table = Table(title=f"walk-forward {report.plan}: {report.metric} in-sample vs out-of-sample",
                  title_justify="left")
    for column in ("window", "train", "best params", "in-sample", "test", "out-of-sample", "plan's params"):
        table.add_column(column, justify="right")
    for w, tb, test, own in report.windows:
        table.add_row(str(w.number), f"{w.train_start}..{w.train_end}", _params(tb.trial.params) if tb else "-",
                      _num(tb.score if tb else None), f"{w.test_start}..{w.test_end}",
                      _num(test.score if test else None), _num(own.score if own else None))
    console.print(table)


def _params(params: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in params.items()) or "(the plan's own)"
