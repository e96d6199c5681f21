"""The typer application, shared options and output helpers for every command module."""

from __future__ import annotations

import os
from pathlib import Path

import typer
from rich.console import Console

app = typer.Typer(
    name="minitrade",
    help="Run trading strategies on schedule, GitOps style.\n\n"
         "A trading repo holds minitrade.yaml, plans/*.yaml and strategies/*.py in git. "
         "`minitrade plan` shows what would change, `minitrade apply` applies it, "
         "`minitrade daemon` keeps it running.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

REPO_OPTION = typer.Option(
    None, "--repo", "-C", envvar="MINITRADE_REPO",
    help="Trading repo folder (default: the current folder).", show_default=False,
)


def repo_path(repo: Path | None) -> Path:
    """The trading repo root the command works on."""
    return Path(repo if repo is not None else os.getcwd()).resolve()


class handle_errors:  # noqa: N801  (used as a context manager, reads like a statement)
    """Turn a MinitradeError into its message on stderr and exit code 1, never a traceback."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        from minitrade.errors import MinitradeError

        if isinstance(exc, MinitradeError):
            err_console.print(f"[bold red]error:[/] {rich_escape(str(exc))}")
            raise typer.Exit(1)


def rich_escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)
