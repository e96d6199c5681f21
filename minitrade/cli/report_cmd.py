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


@app.command("serve")
def serve(
    port: int = typer.Option(8000, "--port", min=0, max=65535, help="Port on 127.0.0.1 (0: any free port)."),
    repo: Path | None = REPO_OPTION, state_dir: Path | None = STATE_DIR_OPTION,
) -> None:
    """Serve the report site (STATE/reports) on 127.0.0.1; open pages reload after each run.

    Only this machine can connect. Pages poll the site's version.txt, which every report write
    (the daemon after a run, `minitrade report`, `replay`) renews, and reload when it changes.
    Ctrl-C stops. A replay writes its own site: serve it with --state-dir state/replay.

    Example: minitrade serve --port 8000
    """
    from minitrade.cli.app import INTERRUPTED
    from minitrade.reports.serve import site_server
    from minitrade.statedir import locate

    with handle_errors():
        folder = locate(repo_path(repo, state_dir)).state_dir / "reports"
        server = site_server(folder, port=port)
    bound = server.server_address[1]
    console.print(f"serving {rich_escape(str(folder))} at http://127.0.0.1:{bound}/ (Ctrl-C stops)", soft_wrap=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        raise typer.Exit(INTERRUPTED) from None
    finally:
        server.server_close()
