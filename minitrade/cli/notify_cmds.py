"""`minitrade notify test NAME` and `minitrade notify log`: prove a notifier works, see what was sent."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import typer

from minitrade.cli.app import (
    REPO_OPTION,
    STATE_DIR_OPTION,
    app,
    console,
    emit_json,
    err_console,
    handle_errors,
    repo_path,
    rich_escape,
)

notify_app = typer.Typer(help="Notifiers from minitrade.yaml (Apprise URLs).\n\n"
                              "Example: minitrade notify test phone && minitrade notify log phone",
                         no_args_is_help=True)
app.add_typer(notify_app, name="notify")


@notify_app.command("test")
def notify_test(
    name: str = typer.Argument(..., help="Notifier name from minitrade.yaml."),
    repo: Path | None = REPO_OPTION, state_dir: Path | None = STATE_DIR_OPTION,
) -> None:
    """Send a test message through notifier NAME; exit 1 if it was not delivered.

    Example: `minitrade notify test phone`
    """
    from minitrade.loader import load_worktree
    from minitrade.notify import Notifier

    with handle_errors():
        snapshot = load_worktree(repo_path(repo, state_dir))
        notifier = Notifier.from_settings(snapshot.settings, store=snapshot.store())
        outcome = notifier.send_test(name, context="Sent by `minitrade notify test`.")
    if outcome.ok:
        console.print(f"[green]sent[/] a test message through notifier {rich_escape(name)}")
        return
    err_console.print(f"[bold red]failed:[/] notifier {rich_escape(name)}: {rich_escape(outcome.error or '')}")
    raise typer.Exit(1)


@notify_app.command("log")
def notify_log(
    notifier: str | None = typer.Argument(None, help="Only this notifier."),
    limit: int = typer.Option(20, "--limit", "-n", min=1, help="How many, newest first."),
    repo: Path | None = REPO_OPTION, state_dir: Path | None = STATE_DIR_OPTION,
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output (has format_version)."),
) -> None:
    """Show the latest notification attempts (sent, suppressed as duplicate, failed).

    Example: `minitrade notify log phone -n 5`
    """
    from rich.table import Table

    from minitrade.loader import load_worktree
    from minitrade.store import notifications

    with handle_errors():
        snapshot = load_worktree(repo_path(repo, state_dir))
        rows = notifications.recent(snapshot.store(), limit=limit, notifier=notifier)
    if as_json:
        emit_json("notifications", {"notifications": [asdict(r) for r in rows]})
        return
    table = Table("sent at (UTC)", "notifier", "event", "outcome", "title", "error")
    style = {"sent": "green", "suppressed": "dim", "failed": "red"}
    for r in rows:
        table.add_row(r.sent_at.strftime("%Y-%m-%d %H:%M:%S"), r.notifier, r.event,
                      f"[{style.get(r.outcome, '')}]{r.outcome}[/]", rich_escape(r.title),
                      rich_escape(r.error or ""))
    console.print(table if rows else "no notifications recorded yet")
