"""Desired-state commands: init, validate, plan, apply, status, schema."""

from __future__ import annotations

import os
import sys
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape

from minitrade import clock, gitrepo
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
from minitrade.errors import ConfigError, GitError

# The rest of minitrade (pydantic models, DuckDB, pandas through the scheduler) is imported by the
# commands that use it, so `minitrade --help` and every other command start fast.
if TYPE_CHECKING:
    from minitrade.diff import ChangeSet
    from minitrade.loader import Snapshot
    from minitrade.store import Store
    from minitrade.store.heartbeat import DaemonHealth, SourceHealth

REV_OPTION = typer.Option(None, "--rev", help="Read this commit instead of the working tree.")


def _load(root: Path, rev: str | None) -> Snapshot:
    from minitrade.loader import load_commit, load_worktree

    return load_commit(root, rev) if rev else load_worktree(root)


def _state_store(root: Path) -> Store:
    """The store of a repo even when its files do not validate (state_dir read leniently)."""
    from minitrade.statedir import locate
    from minitrade.store import Store

    return Store(locate(root).state_dir / "minitrade.duckdb")


def _next_runs(snapshot: Snapshot, now: datetime) -> tuple[dict[str, list[datetime]], list[str]]:
    from minitrade.data.freshness import stale_plans
    from minitrade.scheduler import next_run_times, warnings_for

    runs, warnings = {}, []
    for name, plan in sorted(snapshot.plans.items()):
        runs[name] = next_run_times(plan, now, 5)
        warnings += [f"plan {name}: {w}" for w in warnings_for(plan, now.date())]
    warnings += [f"plan {name}: {why}" for name, why in stale_plans(snapshot, snapshot.plans, now,
                                                                    local_only=True).items()]
    return runs, warnings


def _drift_note(snapshot: Snapshot) -> str:
    from minitrade.loader import PLANS_DIR, SETTINGS_FILE, STRATEGIES_DIR

    if snapshot.commit is None and not gitrepo.is_repo(snapshot.root):
        return "working tree (not a git repository: `apply` needs one)"
    if snapshot.commit is None:
        return "working tree (no commit yet)"
    changed = gitrepo.dirty_paths(snapshot.root, [SETTINGS_FILE, PLANS_DIR, STRATEGIES_DIR])
    if not changed:
        return f"working tree (= HEAD {snapshot.commit[:8]})"
    listed = ", ".join(changed[:5]) + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")
    return f"working tree, differs from HEAD {snapshot.commit[:8]} in {listed}"


@app.command()
def validate(repo: Path | None = REPO_OPTION, rev: str | None = REV_OPTION,
             as_json: bool = typer.Option(False, "--json", help="Machine-readable output (has format_version); "
                                                                 "errors are in it too.")) -> None:
    """Check every file of the trading repo; change nothing.

    Example: minitrade validate --repo ~/trading
    """
    from minitrade.loader import ticker_issues
    from minitrade.reconciler import strategy_compile_check

    root = repo_path(repo)
    with handle_errors():
        try:
            snapshot = _load(root, rev)
            missing = ticker_issues(snapshot)  # what apply would refuse, asked of csv folders offline
            if missing:
                raise ConfigError(missing)
        except ConfigError as invalid:
            if as_json:  # the script gets the errors on stdout too; stderr says it as always
                emit_json("validate", {"ok": False, "errors": [str(i) for i in invalid.issues], "warnings": []})
            raise
        errors = strategy_compile_check(snapshot, {("strategy", p) for p in snapshot.strategies})
        if errors:
            for e in errors:
                err_console.print(f"[red]error:[/] {escape(e)}")
            if as_json:
                emit_json("validate", {"ok": False, "errors": errors, "warnings": []})
            raise typer.Exit(1)
        _, warnings = _next_runs(snapshot, clock.now())
        where = f"commit {snapshot.commit[:8]}" if rev and snapshot.commit else _drift_note(snapshot)
        s = snapshot.settings
        counts = {"plans": len(snapshot.plans), "strategies": len(snapshot.strategies),
                  "data_sources": len(s.data_sources), "brokers": len(s.brokers), "notifiers": len(s.notifiers)}
        if as_json:
            emit_json("validate", {"ok": True, "errors": [], "warnings": warnings, "counts": counts,
                                   "commit": snapshot.commit, "source": where})
            return
        for w in warnings:
            console.print(f"[yellow]warning:[/] {escape(w)}")
        console.print(f"OK: {counts['plans']} plans, {counts['strategies']} strategies, "
                      f"{counts['data_sources']} data sources, {counts['brokers']} brokers, "
                      f"{counts['notifiers']} notifiers ({escape(where)})")


class PlanFormat(StrEnum):
    TEXT = "text"
    JSON = "json"
    MARKDOWN = "markdown"


@app.command("plan")
def plan_cmd(repo: Path | None = REPO_OPTION, state_dir: Path | None = STATE_DIR_OPTION, rev: str | None = REV_OPTION,
             output: PlanFormat = typer.Option(PlanFormat.TEXT, "--format", help="text for people, json for "
                                               "scripts (has format_version), markdown for a pull-request comment."),
             as_json: bool = typer.Option(False, "--json", help="The same as --format json."),
             base: str | None = typer.Option(None, "--base", help="Compare with the files of this commit (e.g. "
                                             "origin/main in a pull request's CI) instead of the applied state.")
             ) -> None:
    """Show what `apply` would change, and each plan's next run times.

    Exit codes: 0 = no changes, 2 = changes to apply, 1 = error.

    Example: minitrade plan --json | jq .summary
    Example: minitrade plan --format markdown --base origin/main | tee plan.md
    """
    from minitrade.cli.changes_view import changes_json, changes_markdown, print_changes, print_schedule

    if as_json and output not in (PlanFormat.TEXT, PlanFormat.JSON):
        raise typer.BadParameter(f"--json and --format {output.value} disagree: give one of them", param_hint="--json")
    fmt = PlanFormat.JSON if as_json else output
    root = repo_path(repo, state_dir)
    with handle_errors():
        snapshot = _load(root, rev)
        changes, applied_view, against, base_warnings = _changes_against(snapshot, base)
        runs, warnings = _next_runs(snapshot, clock.now())
        warnings = base_warnings + warnings + _suspension_drift(snapshot)
        desired_view = {"source": f"commit {snapshot.commit}" if rev else _drift_note(snapshot),
                        "commit": snapshot.commit, "dirty": snapshot.dirty}
        disabled = {n for n, p in snapshot.plans.items() if not p.backtest_enabled}
        if fmt is PlanFormat.JSON:
            # Written as is: rich's JSON highlighting takes seconds on 500 plans and adds nothing to a pipe.
            console.file.write(changes_json(changes, desired=desired_view, applied=applied_view or {},
                                            next_runs=runs, warnings=warnings) + "\n")
        elif fmt is PlanFormat.MARKDOWN:
            console.file.write(changes_markdown(changes, ref=_markdown_ref(snapshot, rev),
                                                desired=str(desired_view["source"]), against=against,
                                                next_runs=runs, disabled=disabled, warnings=warnings))
        else:
            console.print(f"Desired: {escape(str(desired_view['source']))}")
            console.print(f"{'Base' if base else 'Applied'}: {escape(against)}")
            console.print()
            print_changes(console, changes)
            print_schedule(console, runs, disabled)
            for w in warnings:
                console.print(f"[yellow]warning:[/] {escape(w)}")
    raise typer.Exit(0 if changes.empty else 2)


def _suspension_drift(snapshot: Snapshot) -> list[str]:
    """Suspended plans (`minitrade suspend`, recorded in DuckDB) as drift from what the files say."""
    from zoneinfo import ZoneInfo

    from minitrade.cli.trader_cmds import plan_trading, suspension_view

    if not (snapshot.state_dir / "minitrade.duckdb").exists():  # CI (`--base`) has no state: nothing to show
        return []
    paused = suspension_view(snapshot.store(), ZoneInfo(snapshot.settings.timezone), plan_trading(snapshot.plans))
    return [f"drift: {view['drift']}" for view in paused.values()]


def _changes_against(snapshot: Snapshot, base: str | None) -> tuple[ChangeSet, dict[str, Any] | None, str,
                                                                        list[str]]:
    """The ChangeSet against the applied state (or the files of `base`), how to name what it compares
    with, for the JSON and for people, and a warning when the base itself does not validate."""
    from minitrade.diff import compute
    from minitrade.loader import load_commit
    from minitrade.reconciler import changeset, desired_state
    from minitrade.store.applied import last_applied

    if base is None:
        store = snapshot.store()
        changes = changeset(snapshot, store)
        with store.transaction() as con:
            applied = last_applied(con)
        if applied is None:
            return changes, None, "nothing applied yet", []
        view = {"commit": applied.commit_sha, "dirty": applied.dirty, "at": applied.attempted_at.isoformat()}
        named = (f"commit {applied.commit_sha[:8] if applied.commit_sha else '(none)'}"
                 f"{' (dirty)' if applied.dirty else ''} at {applied.attempted_at:%Y-%m-%d %H:%M}")
        return changes, view, named, []
    sha = gitrepo.resolve(snapshot.root, base)
    try:
        before = desired_state(load_commit(snapshot.root, base))
        warnings = []
    except ConfigError as invalid:  # a pull request that fixes a broken branch must still get its plan
        before, warnings = {}, [f"base {base} does not validate ({len(invalid.issues)} issue(s)): "
                                "compared with nothing"]
    plan_strategies = {name: plan.strategy for name, plan in snapshot.plans.items()}
    changes = compute(desired_state(snapshot), before, plan_strategies)
    return changes, {"commit": sha, "dirty": False, "at": None, "base": base}, \
        f"{base} (commit {(sha or '')[:8]})", warnings


def _markdown_ref(snapshot: Snapshot, rev: str | None) -> str:
    """`branch` @ `commit` for the comment's heading; in GitHub Actions the pull request's branch."""
    branch = os.environ.get("GITHUB_HEAD_REF") or (None if rev else gitrepo.branch(snapshot.root))
    commit = snapshot.commit[:8] if snapshot.commit else "no commit"
    where = f"`{commit}`" + (" (uncommitted changes)" if snapshot.dirty else "")
    return f"`{branch}` @ {where}" if branch else where


@app.command("apply")
def apply_cmd(repo: Path | None = REPO_OPTION, state_dir: Path | None = STATE_DIR_OPTION, rev: str | None = REV_OPTION,
              yes: bool = typer.Option(False, "--yes", "-y", help="Apply without asking."),
              allow_dirty: bool = typer.Option(False, "--allow-dirty",
                                               help="Apply uncommitted files (recorded as dirty).")) -> None:
    """Validate, check what changed, and record the applied state with its git commit.

    Works from HEAD (or --rev). Refuses a dirty working tree unless --allow-dirty. Idempotent.

    Example: git commit -am "raise cash" && minitrade apply --yes
    """
    from minitrade.cli.changes_view import print_changes
    from minitrade.loader import PLANS_DIR, SETTINGS_FILE, STRATEGIES_DIR, load_commit, load_worktree
    from minitrade.reconciler import apply as apply_snapshot
    from minitrade.reconciler import changeset, default_checks, record_rejected_load
    from minitrade.records import ApplyOutcome

    root = repo_path(repo, state_dir)
    with handle_errors():
        if not gitrepo.is_repo(root):
            raise GitError(f"{root} is not a git repository: `apply` records the commit it applies "
                           "(run `git init` and commit, or `minitrade init`)")
        if rev is None:
            dirty = gitrepo.dirty_paths(root, [SETTINGS_FILE, PLANS_DIR, STRATEGIES_DIR])
            if dirty and not allow_dirty:
                raise GitError("uncommitted changes in " + ", ".join(dirty[:5]) +
                               ": commit them (apply works from commits) or pass --allow-dirty")
        try:
            snapshot = load_worktree(root) if (rev is None and allow_dirty) else load_commit(root, rev or "HEAD")
        except ConfigError as e:
            commit = gitrepo.resolve(root, rev or "HEAD")
            record_rejected_load(root, _state_store(root), commit, e, "apply")
            raise
        store = snapshot.store()
        changes = changeset(snapshot, store)
        print_changes(console, changes)
        if not changes.empty and not yes:
            if not sys.stdin.isatty():
                err_console.print("error: not a terminal; pass --yes to apply without asking")
                raise typer.Exit(1)
            if not typer.confirm("Apply these changes?", default=False):
                console.print("Nothing applied.")
                raise typer.Exit(1)
        result = apply_snapshot(snapshot, store, checks=default_checks(),
                                progress=lambda m: err_console.print(f"[dim]{escape(m)}...[/]"))
        if result.outcome is ApplyOutcome.REJECTED:
            for error in result.errors:
                err_console.print(f"[red]check failed:[/] {escape(error)}")
            err_console.print("Nothing applied; the previously applied state is unchanged.")
            raise typer.Exit(1)
        commit = (snapshot.commit or "")[:8] + (" (dirty)" if snapshot.dirty else "")
        if result.outcome is ApplyOutcome.UNCHANGED:
            console.print(f"Already applied: nothing to do (commit {commit}).")
        else:
            console.print(f"[green]Applied[/] commit {commit}.")
        for gone, why in result.cleared:
            console.print(f"Plan {escape(gone.plan)}: its suspension (since {gone.at:%Y-%m-%d %H:%M %Z}) is cleared: "
                          f"{escape(why)}.")


@app.command()
def status(repo: Path | None = REPO_OPTION, state_dir: Path | None = STATE_DIR_OPTION,
           as_json: bool = typer.Option(False, "--json", help="Machine-readable output (has format_version)."),
           check: bool = typer.Option(False, "--check", help="Health check: exit 0 when the daemon runs and its "
                                      "last pass is recent, else 1 with one line saying why."),
           max_lag: str | None = typer.Option(None, "--max-lag", help="With --check: the oldest last pass that is "
                                              "healthy, e.g. 10m (default: 3 polls, at least poll + 5m).")) -> None:
    """Applied commit, last attempted commit and its error, plans with their flags and next run, and
    whether the daemon runs (pid, last pass, lag).

    Example: minitrade status --json | jq .plans
    Example (systemd/container health check): minitrade status --check --max-lag 10m
    """
    from dataclasses import asdict, replace

    from minitrade.cli.times import parse_duration
    from minitrade.store import runs as run_sql
    from minitrade.store.applied import applied_resources, last_applied, last_attempt
    from minitrade.store.heartbeat import daemon_health
    from minitrade.store.orders import open_orders

    root = repo_path(repo, state_dir)
    with handle_errors():
        allowed = parse_duration(max_lag, option="--max-lag") if max_lag is not None else None
        store = _state_store(root)
        with store.transaction() as con:
            applied, attempt = last_applied(con), last_attempt(con)
            resources = applied_resources(con)
            pending = [o.plan for o in open_orders(con)]
            last_runs = {name: run_sql.list_runs(con, plan=name, limit=1) for (kind, name) in resources
                         if kind == "plan"}
            health = daemon_health(con, store.path.parent, clock.now(), max_lag=allowed)
        health = replace(health, source=_source_health(store.path.parent, applied.commit_sha if applied else None))
        if check and not as_json:
            _print_check(health)
        plans = {name: r.spec for (kind, name), r in sorted(resources.items()) if kind == "plan"}
        last = {name: (runs[0].status, runs[0].started_at) if runs else None for name, runs in last_runs.items()}
        rows = _plan_rows(plans, last, {name: pending.count(name) for name in plans})
        paused = _suspensions(store, rows)
        if as_json:
            emit_json("status", {"applied": asdict(applied) if applied else None,
                                 "last_attempt": asdict(attempt) if attempt else None,
                                 "plans": rows, "open_orders": len(pending), "daemon": _health_json(health)})
            if check:
                _print_check(health, quiet=True)
            return
        _print_health(health)
        if applied is None:
            console.print("Applied: nothing yet (run `minitrade apply`).")
        else:
            console.print(f"Applied: commit {(applied.commit_sha or '(none)')[:8]}{' (dirty)' if applied.dirty else ''}"
                          f" at {applied.attempted_at:%Y-%m-%d %H:%M %Z}  {escape(applied.message or '')}")
        if attempt is not None and attempt.outcome == "rejected":
            console.print(f"[red]Last attempt rejected:[/] commit {(attempt.commit_sha or '(none)')[:8]} at "
                          f"{attempt.attempted_at:%Y-%m-%d %H:%M %Z}")
            for line in (attempt.error or "").splitlines():
                console.print(f"  {escape(line)}")
        if rows:
            _print_plan_table(rows)
        for view in paused.values():
            console.print(f"[yellow]drift:[/] {escape(view['drift'])}")
        if pending:
            console.print(f"{len(pending)} open order(s): `minitrade orders` lists them.")


def _source_health(state_dir: Path, applied: str | None) -> SourceHealth | None:
    """The remote a `daemon --source` follows, as its last fetch left it (None: it follows none).
    A failing fetch does not fail `--check`: the applied state still runs, and a restart would not
    mend a network; it is shown, logged and notified instead."""
    from minitrade.source import read_status
    from minitrade.store.heartbeat import SourceHealth

    fetched = read_status(state_dir)
    if fetched is None:
        return None
    return SourceHealth(url=fetched.url, head=fetched.remote_head, applied=applied,
                        last_fetch=fetched.last_fetch_at, error=fetched.error)


def _health_json(health: DaemonHealth) -> dict[str, Any]:
    """The daemon part of `status --json`: times ISO, durations in seconds, `problem` null when healthy."""
    from dataclasses import asdict

    seconds = {"lag_seconds": health.lag.total_seconds() if health.lag is not None else None,
               "max_lag_seconds": health.max_lag.total_seconds()}
    view = {k: v for k, v in asdict(health).items() if k not in ("lag", "max_lag", "source")}
    return {**view, **seconds, "ok": health.ok, "problem": health.problem,
            **({"source": asdict(health.source)} if health.source is not None else {})}


def _print_check(health: DaemonHealth, *, quiet: bool = False) -> None:
    """`status --check`: one line (on stderr when unhealthy), exit 0 or 1; `quiet` under --json (stdout has it)."""
    if health.problem is not None:
        err_console.print(f"unhealthy: {escape(health.problem)}", soft_wrap=True)
        raise typer.Exit(1)
    if not quiet:
        lag = f", last pass {_ago(health)}" if health.last_pass is not None else ", starting (no pass yet)"
        console.print(f"ok: daemon pid {health.pid} running{lag}", soft_wrap=True)
    raise typer.Exit(0)


def _ago(health: DaemonHealth) -> str:
    from minitrade.store.heartbeat import span

    assert health.last_pass is not None
    return f"{health.last_pass:%Y-%m-%d %H:%M:%S %Z} ({span(health.lag)} ago)"


def _print_health(health: DaemonHealth) -> None:
    """The daemon lines of `status`: running or not, pid, last pass and lag; the remote when it follows one."""
    polls = f", polls every {health.poll_seconds:g}s" if health.running else ""
    since = f" since {health.started_at:%Y-%m-%d %H:%M %Z}" if health.started_at is not None else ""
    last = f"last pass {_ago(health)}" if health.last_pass is not None else "no pass on record"
    if not health.running:
        console.print(f"Daemon: [red]not running[/] ({last}).")
    else:
        console.print(f"Daemon: running, pid {health.pid}{since}{polls}; {last}.")
        if health.problem is not None:
            console.print(f"[red]{escape(health.problem)}[/]")
    source = health.source
    if source is not None:
        fetched = f"{source.last_fetch:%Y-%m-%d %H:%M %Z}" if source.last_fetch is not None else "never"
        behind = "" if source.head == source.applied else " (not applied: see the last attempt)"
        console.print(f"Source: {escape(source.url)}: head {(source.head or '(unknown)')[:8]}, applied "
                      f"{(source.applied or '(none)')[:8]}{behind}, last fetch {fetched}")
        if source.error is not None:
            console.print(f"[red]fetch failing:[/] {escape(source.error)}")
        if source.error:
            console.print(f"  [red]fetch failing:[/] {escape(source.error)}")


def _plan_rows(plans: dict[str, dict[str, object]], last: dict[str, tuple[str, datetime] | None],
               pending: dict[str, int]) -> list[dict[str, Any]]:
    """One row per applied plan: its flags, last run, open orders and next run (None when none)."""
    from minitrade.models import Plan
    from minitrade.scheduler import next_run_times

    now = clock.now()  # MINITRADE_NOW too: a next run in the same present as the last run
    rows: list[dict[str, Any]] = []
    for name, spec in plans.items():
        plan = Plan.model_validate(spec)
        nxt = next_run_times(plan, now, 1) if plan.backtest_enabled else []
        ran = last.get(name)
        rows.append({"name": name, "backtest": plan.backtest.value, "trading": plan.trading.value,
                     "mode": plan.mode.value, "broker": plan.broker,
                     "last_run": {"status": ran[0], "started_at": ran[1]} if ran else None,
                     "open_orders": pending.get(name, 0), "next_run": nxt[0] if nxt else None})
    return rows


def _suspensions(store: Store, rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Suspended plans (`minitrade suspend`) as drift from the applied files; each row gets `suspended`."""
    from minitrade.cli.trader_cmds import suspension_view

    paused = suspension_view(store, _applied_zone(store), {r["name"]: r["trading"] for r in rows})
    for row in rows:
        row["suspended"] = paused.get(row["name"])
    return paused


def _applied_zone(store: Store) -> Any:
    from zoneinfo import ZoneInfo

    from minitrade.store.applied import applied_resources

    with store.transaction() as con:
        settings = applied_resources(con).get(("settings", "minitrade"))
    return ZoneInfo(str(settings.spec.get("timezone") or "UTC") if settings else "UTC")


def _print_plan_table(rows: list[dict[str, Any]]) -> None:
    from rich.table import Table

    table = Table("plan", "backtest", "trading", "mode", "broker", "last run", "open orders", "next run")
    for row in rows:
        ran, nxt = row["last_run"], row["next_run"]
        trading = "SUSPENDED" if row.get("suspended") else row["trading"]  # the drift line below says more
        table.add_row(row["name"], row["backtest"], trading, row["mode"], row["broker"],
                      f"{ran['status']} {ran['started_at']:%Y-%m-%d %H:%M}" if ran else "-",
                      str(row["open_orders"]), nxt.strftime("%Y-%m-%d %H:%M:%S %Z") if nxt else "-")
    console.print(table)


@app.command()
def schema(out: Path = typer.Option(Path("schemas"), "--out", help="Folder to write the JSON Schemas into."),
           repo: Path | None = REPO_OPTION, state_dir: Path | None = STATE_DIR_OPTION) -> None:
    """Write JSON Schemas of minitrade.yaml and plan files for editors (yaml-language-server).

    Example: minitrade schema --out schemas
    """
    from minitrade.schemas import write_schemas

    target = out if out.is_absolute() else repo_path(repo, state_dir) / out
    for path in write_schemas(target):
        console.print(f"wrote {path}")


@app.command()
def init(directory: Path = typer.Argument(Path("."), help="Folder of the new trading repo.")) -> None:
    """Scaffold a trading repo: git init, minitrade.yaml, an example plan and strategy, a CI workflow.

    Also .gitignore, schemas/ for editors, and .github/workflows/minitrade.yml: on each pull request
    GitHub Actions runs `minitrade validate` and posts `minitrade plan --format markdown` as a comment.

    Example: minitrade init ~/trading && cd ~/trading && minitrade plan
    """
    from minitrade.scaffold import scaffold

    with handle_errors():
        created = scaffold(directory.resolve())
        for path in created:
            console.print(f"created {path}")
        console.print(f"\nNext: cd {directory} && minitrade plan && minitrade apply")

