"""The live loop's commands: run one plan now, replay the past, run the daemon."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import typer
from rich.markup import escape

from minitrade.cli.app import (
    REPO_OPTION,
    STATE_DIR_OPTION,
    app,
    console,
    err_console,
    handle_errors,
    repo_path,
)
from minitrade.cli.times import PLAN_TIME_HELP, SETTINGS_TIME_HELP, parse_at, parse_duration, plan_zone_of
from minitrade.clock import now as real_now
from minitrade.errors import ConfigError, ConfigIssue

if TYPE_CHECKING:      # the run path (pandas, backtrader, DuckDB) loads when a command runs, not for --help
    from pydantic import SecretStr

    from minitrade.daemon import Follow
    from minitrade.reconcile_pass import PassResult
    from minitrade.runner.run import RunOutcome


def _print_outcome(outcome: RunOutcome) -> None:
    from minitrade.records import OrderStatus, RunStatus

    explained = (OrderStatus.REJECTED, OrderStatus.EXPIRED, OrderStatus.CANCELLED, OrderStatus.HELD)
    if outcome.status is not RunStatus.FINISHED:
        err_console.print(f"[red]{escape(outcome.plan)}: run failed:[/] {escape(outcome.error or '')}")
        return
    stats = outcome.result.stats if outcome.result else {}
    ret = stats.get("return_pct")
    console.print(f"{escape(outcome.plan)}: run {outcome.run_id} finished for {outcome.signal_day}"
                  + (f", return {ret:.2f}%" if isinstance(ret, float) else ""))
    if outcome.rehearsal:
        console.print("  [yellow]rehearsal:[/] not the present; nothing was sent to the broker")
    for order in outcome.orders:
        console.print(f"  {order.side.value} {order.quantity:g} {escape(order.ticker)} {order.order_type.value}"
                      f"  -> {order.status.value}  [dim]{escape(order.client_id)}[/]")
        if order.note and order.status in explained:
            console.print(f"    [dim]{escape(order.note)}[/]")
    for note in outcome.notes:
        console.print(f"  [yellow]note:[/] {escape(note)}")


@app.command("run")
def run_cmd(plan: str = typer.Argument(..., help="Plan name."),
            at: str | None = typer.Option(None, "--at", help="Run as if at this time. " + PLAN_TIME_HELP),
            repo: Path | None = REPO_OPTION, state_dir: Path | None = STATE_DIR_OPTION) -> None:
    """Run one applied plan now (or as if at --at), through the daemon's own code path.

    Orders are recorded and, when trading is enabled and the broker is logged in, submitted. A run
    --at a time more than 3 minutes from now is a rehearsal: its orders are recorded REHEARSAL and
    never submitted, and nothing at the broker changes.

    --at without a UTC offset is the plan's exchange time (as for `fill`).

    Example: minitrade run sma-aapl --at '2013-01-02 15:45'
    """
    from minitrade.loader import load_worktree
    from minitrade.reconcile_pass import applied_snapshot, live_env, publish
    from minitrade.records import RunStatus
    from minitrade.runner.run import run_plan

    root = repo_path(repo, state_dir)
    with handle_errors():
        store = load_worktree(root).store()
        snapshot = applied_snapshot(root, store)
        if snapshot is None:
            raise ConfigError(ConfigIssue("state", None, "", "nothing applied yet", "run `minitrade apply` first"))
        if plan not in snapshot.plans:
            raise ConfigError(ConfigIssue("state", None, "plan", f"no applied plan named {plan!r}",
                                          f"applied: {', '.join(sorted(snapshot.plans))}"))
        moment = parse_at(at, plan_zone_of(snapshot, plan)) if at else real_now()
        outcome = run_plan(live_env(snapshot, kind="manual", clock=lambda: moment), plan, moment)
        _print_outcome(outcome)
        publish(snapshot, store, [plan])
        if outcome.status is not RunStatus.FINISHED:
            raise typer.Exit(1)


@app.command("replay")
def replay_cmd(plans: list[str] = typer.Argument(None, help="Plans to replay (default: all)."),
               start: str = typer.Option(..., "--from", help="First day, e.g. 2013-01-02."),
               end: str = typer.Option(..., "--to", help="Last day, e.g. 2013-02-28."),
               repo: Path | None = REPO_OPTION, state_dir: Path | None = STATE_DIR_OPTION) -> None:
    """Rehearse live trading: the whole loop over past sessions on a simulated clock.

    Runs every tick of every plan in time order, fills orders at simulated prices, and writes the
    report site. Uses its own state (state/replay/), never the real records or brokers.

    Example: minitrade replay --from 2013-01-02 --to 2013-02-28
    """
    from minitrade.cli.progress import progress
    from minitrade.loader import load_worktree
    from minitrade.replay import replay
    from minitrade.runner.executor import executor_for
    from minitrade.runner.publish import write_site

    root = repo_path(repo, state_dir)
    with handle_errors():
        first, last = _day(start, "--from"), _day(end, "--to")
        snapshot = load_worktree(root)
        executor = executor_for(snapshot.settings.executor)  # plans due at one instant compute in parallel
        try:
            with progress(err_console, "replay", "sessions") as update:
                summary = replay(snapshot, start=first, end=last, plans=plans or None, progress=update,
                                 executor=executor)
        finally:
            executor.close()
        index = write_site(summary.store, summary.state_dir / "reports")
        orders = sum(len(r.orders) for r in summary.runs)
        console.print(f"Replayed {summary.sessions} sessions: {len(summary.runs)} runs, {orders} orders, "
                      f"{len(summary.fills)} fills, {len(summary.failed)} failed runs.")
        for failed in summary.failed[:5]:
            err_console.print(f"[red]failed:[/] {escape(failed.plan)}: {escape(failed.error or '')}")
        console.print(f"Report: {index}")
        if summary.failed:
            raise typer.Exit(1)


def _day(text: str, option: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ConfigError(ConfigIssue(option, None, "", f"{text!r} is not a date", "e.g. 2013-01-02")) from None


@app.command("daemon")
def daemon_cmd(once: bool = typer.Option(False, "--once", help="Run a single pass and exit (non-zero if it failed)."),
               at: str | None = typer.Option(None, "--at", help="With --once: run the pass as if at this time. "
                                             + SETTINGS_TIME_HELP),
               poll: float = typer.Option(60.0, "--poll", help="Seconds between passes when nothing is due."),
               source: str | None = typer.Option(None, "--source", help="Follow this remote repository (URL) "
                                                 "instead of the working tree; the daemon keeps its own clone "
                                                 "in STATE/source."),
               branch: str | None = typer.Option(None, "--branch", help="Branch to follow (default: "
                                                 "minitrade.yaml's branch, else main with --source, else HEAD)."),
               interval: str = typer.Option("60s", "--interval", help="With --source: how often to fetch, "
                                            "e.g. 30s, 5m."),
               token: str | None = typer.Option(None, "--token", help="With --source over HTTPS: the token, as "
                                                "a reference: '${MINITRADE_GIT_TOKEN}' or '${file:/path}' "
                                                "(default: $MINITRADE_GIT_TOKEN when set)."),
               ssh_key: Path | None = typer.Option(None, "--ssh-key", help="With --source over SSH: the "
                                                   "private key file."),
               webhook: str | None = typer.Option(None, "--webhook", help="With --source: accept push webhooks "
                                                  "on HOST:PORT and fetch at once."),
               webhook_secret: str | None = typer.Option(None, "--webhook-secret", help="The webhook's shared "
                                                         "secret, as a reference: '${MINITRADE_WEBHOOK_SECRET}'."),
               repo: Path | None = REPO_OPTION, state_dir: Path | None = STATE_DIR_OPTION) -> None:
    """The reconciler: apply each new commit, run every plan's ticks, hold or submit orders.

    Level-triggered: each pass re-reads the branch head and the state database. It starts from the
    applied state whatever the working tree or head holds (an invalid head is rejected by the pass,
    and the last applied state keeps running). Stops cleanly on SIGTERM. Only one daemon runs per
    state dir. --at (only with --once) without a UTC offset is minitrade.yaml's timezone, since the
    pass runs every plan; a past --at is a rehearsal (orders recorded REHEARSAL, never sent) and a
    future one is refused (it would use up real ticks).

    With --source the daemon follows a remote (GitOps): it fetches the branch every --interval into
    its own clone under --state-dir (default ./state), applies new commits as above, and retries a
    failing fetch with backoff. Secrets are references resolved from the environment or a file, and
    never written anywhere.

    Example: minitrade daemon --repo ~/trading

    Example: minitrade daemon --source https://github.com/you/trading.git --branch main --interval 60s --state-dir /var/lib/minitrade
    """
    from minitrade.daemon import run_daemon
    from minitrade.logsetup import configure_daemon_logging
    from minitrade.scheduler import GRACE
    from minitrade.statedir import locate
    from minitrade.store import Store

    if at is not None and not once:  # a loop on a frozen clock would wake for the same tick forever
        raise typer.BadParameter("a simulated time runs a single pass: add --once", param_hint="'--at'")
    with handle_errors():
        follow = None
        if source is not None:
            follow = _follow(source, branch, interval, token, ssh_key, webhook, webhook_secret, state_dir)
            root, state, zone, branch = follow.source.root, follow.source.state_dir, None, None
        else:
            if webhook is not None or token is not None or ssh_key is not None:
                raise typer.BadParameter("only with --source", param_hint="'--webhook/--token/--ssh-key'")
            root = repo_path(repo, state_dir)
            place = locate(root)  # never validates: the applied state runs whatever the tree holds
            state, zone, branch = place.state_dir, place.timezone, branch or place.branch
        configure_daemon_logging(state)
        moment = parse_at(at, ZoneInfo(zone or "UTC")) if at else None
        if moment is not None and moment - real_now() > GRACE:
            # a pass records its ticks as handled: a future one would use up ticks that have not happened
            raise typer.BadParameter(f"{moment.isoformat()} is in the future: a pass records the ticks it "
                                     "handles, so it would use up real ticks; pass a time up to now",
                                     param_hint="'--at'")
        if moment is not None and real_now() - moment > GRACE:
            console.print("[yellow]rehearsal:[/] --at is not the present: runs record REHEARSAL orders, "
                          "nothing is sent to a broker")
        console.print(f"minitrade daemon on {source or root} (state {state})")
        done = run_daemon(root, Store(state / "minitrade.duckdb"), state, once=once, branch=branch, poll=poll,
                          now=(lambda: moment) if moment else None, report=_print_pass, follow=follow,
                          on_stop=_print_stopping)
        if once and done.failed:
            err_console.print("[red]the pass failed[/] (see the lines above)")
            raise typer.Exit(1)


def _follow(url: str, branch: str | None, interval: str, token: str | None, ssh_key: Path | None,
            webhook: str | None, webhook_secret: str | None, state_dir: Path | None) -> Follow:
    """The remote source of `daemon --source`, its state dir made the process's (STATE/source is the repo)."""
    import os

    from minitrade.daemon import Follow
    from minitrade.source import RemoteSource, SourceSpec
    from minitrade.statedir import STATE_DIR_ENV
    from minitrade.webhook import parse_address

    state = (state_dir or Path("state")).expanduser().resolve()
    os.environ[STATE_DIR_ENV] = str(state)  # this process is the daemon: every Snapshot's state is here
    if token is None and os.environ.get("MINITRADE_GIT_TOKEN"):
        token = "${MINITRADE_GIT_TOKEN}"
    spec = SourceSpec(url, branch or "main", parse_duration(interval, option="--interval"),
                      token=_secret_ref(token, "--token") if token else None,
                      ssh_key=ssh_key.expanduser().resolve() if ssh_key else None)
    hook = None
    if webhook is not None:
        if webhook_secret is None:
            raise typer.BadParameter("a webhook needs --webhook-secret '${ENV}'", param_hint="'--webhook'")
        hook = (parse_address(webhook), _secret_ref(webhook_secret, "--webhook-secret"))
    return Follow.of(RemoteSource(spec, state), webhook=hook)


def _secret_ref(text: str, option: str) -> SecretStr:
    """A secret given on the command line must be a reference: a literal would sit in `ps` output and
    shell history."""
    from minitrade.credentials import references, resolve_secret

    if not references(text):
        raise typer.BadParameter("give a reference, not the secret itself: '${ENV_VAR}' or '${file:/path}' "
                                 "(a literal shows in `ps` and the shell's history)", param_hint=f"'{option}'")
    return resolve_secret(text, field=option)


def _print_stopping(signal_name: str) -> None:
    """Said the moment the signal arrives: the stop waits for the work in hand, which can take a while."""
    stamp = datetime.now(UTC).strftime("%H:%M:%S")
    console.print(f"{stamp} stopping: {signal_name} received; runs still computing are abandoned and their "
                  "ticks resumed on the next start")


def _print_pass(result: PassResult) -> None:
    stamp = datetime.now(UTC).strftime("%H:%M:%S")
    if result.attempted:
        console.print(f"{stamp} commit {result.attempted[:8]}: {result.outcome}")
    for outcome in result.runs:
        _print_outcome(outcome)
    for plan, tick in result.skipped:
        why = result.skip_reasons.get((plan, tick), "")
        console.print(f"{stamp} [yellow]skipped[/] {escape(plan)} tick {tick:%Y-%m-%d %H:%M:%S %Z}"
                      + (f": {escape(why)}" if why else ""))
    if result.next_tick is not None:
        console.print(f"{stamp} next tick {result.next_tick:%Y-%m-%d %H:%M:%S %Z}")
