"""`minitrade report [PLAN]`: (re)write the HTML report site under state/reports/ from the store."""

from __future__ import annotations

from pathlib import Path

import typer

from minitrade.cli.app import (
    REPO_OPTION,
    STATE_DIR_OPTION,
    app,
    console,
    handle_errors,
    repo_path,
    rich_escape,
)


@app.command("report")
def report(
    plan: str | None = typer.Argument(None, help="Only rewrite this plan's page (the index is always rewritten)."),
    repo: Path | None = REPO_OPTION, state_dir: Path | None = STATE_DIR_OPTION,
) -> None:
    """Write the HTML report site (index, a page per plan, CSV/JSON exports) under state/reports/.

    Pages open offline in any browser: open state/reports/index.html.

    Example: minitrade report sma-aapl
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from minitrade.loader import load_worktree
    from minitrade.notify import settings_secrets
    from minitrade.runner.publish import write_site

    with handle_errors():
        snapshot = load_worktree(repo_path(repo, state_dir))
        out_dir = snapshot.state_dir / "reports"
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=console, transient=True) as bar:
            task = bar.add_task("report", total=None)

            def step(done: int, total: int, what: str) -> None:
                bar.update(task, completed=done, total=total, description=what)

            index = write_site(snapshot.store(), out_dir, plans=[plan] if plan else None, progress=step,
                               secrets=settings_secrets(snapshot.settings))
    console.print(f"report written: {rich_escape(str(index))}")
    console.print(f"open file://{rich_escape(str(index.resolve()))}")
