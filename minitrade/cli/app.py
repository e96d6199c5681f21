"""The typer application, shared options and output helpers for every command module."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from typer.core import TyperGroup

# Exit codes of every command (README.md, "Exit codes"). A usage error is not click's 2: `plan` exits
# 2 for "changes pending" (as terraform's -detailed-exitcode), and a CI script must not take a typo
# for pending changes. 64 is EX_USAGE of sysexits.h.
OK, ERROR, CHANGES, USAGE, INTERRUPTED = 0, 1, 2, 64, 130
# The version of every `--json` document (README.md, "JSON output"): adding a field keeps it, removing,
# renaming or retyping one bumps it, so a script can refuse a shape it does not know.
JSON_FORMAT_VERSION = 1
# click's UsageError (unknown command/option, missing argument, BadParameter). Recent typer vendors its
# own click, older typer uses the click package: take the class typer itself raises.
_UsageError: type[Exception] = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")


@contextmanager
def _usage_exit_code() -> Iterator[None]:
    try:
        yield
    except _UsageError as e:
        e.exit_code = USAGE  # type: ignore[attr-defined]  # click reads it when it exits
        raise


class MinitradeGroup(TyperGroup):
    """The root command: every usage error below it, in any command or subcommand, exits USAGE."""

    def make_context(self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any) -> Any:
        with _usage_exit_code():
            return super().make_context(info_name, args, parent, **extra)

    def invoke(self, ctx: Any) -> Any:
        with _usage_exit_code():
            return super().invoke(ctx)


app = typer.Typer(
    cls=MinitradeGroup,
    name="minitrade",
    help="Run trading strategies on schedule, GitOps style.\n\n"
         "A trading repo holds minitrade.yaml, plans/*.yaml and strategies/*.py in git. "
         "`minitrade plan` shows what would change, `minitrade apply` applies it, "
         "`minitrade daemon` keeps it running.\n\n"
         "Example: minitrade init ~/trading && minitrade validate -C ~/trading && minitrade plan -C ~/trading",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain click help: no `<bool>` on flags, no boxes cut to 80 columns when piped
)


class LogLevel(StrEnum):
    debug = "debug"
    info = "info"
    warning = "warning"
    error = "error"


class LogFormat(StrEnum):
    text = "text"
    json = "json"


@app.callback()
def _global_options(
    ctx: typer.Context,
    log_level: LogLevel | None = typer.Option(
        None, "--log-level", show_default=False,
        help="Log lines at this level and above on stderr (default: warning; info for the daemon)."),
    log_format: LogFormat = typer.Option(LogFormat.text, "--log-format",
                                         help="Log lines as 'time level logger message', or one JSON object a line."),
) -> None:
    """The one logging setup of every command (minitrade/logsetup.py); the daemon adds its log file."""
    from minitrade.logsetup import configure

    default = LogLevel.info if ctx.invoked_subcommand == "daemon" else LogLevel.warning
    configure((log_level or default).value, log_format.value)


console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

REPO_OPTION = typer.Option(
    None, "--repo", "-C", envvar="MINITRADE_REPO",
    help="Trading repo folder (default: the current folder).", show_default=False,
)


def _use_state_dir(ctx: typer.Context, state_dir: Path | None) -> Path | None:
    """--state-dir: point every Snapshot and store of this command at it (MINITRADE_STATE_DIR, read by
    minitrade.statedir), restored when the command ends so that commands invoked in one process, as
    tests do, do not leak it to the next."""
    if state_dir is None:
        return None
    from minitrade.statedir import STATE_DIR_ENV

    state = state_dir.expanduser().resolve()
    before = os.environ.get(STATE_DIR_ENV)
    os.environ[STATE_DIR_ENV] = str(state)
    ctx.call_on_close(lambda: _restore_env(STATE_DIR_ENV, before))
    return state


STATE_DIR_OPTION = typer.Option(
    None, "--state-dir", envvar="MINITRADE_STATE_DIR", callback=_use_state_dir,
    help="State folder (DuckDB, reports, logs), e.g. a remote-source daemon's (default: minitrade.yaml's "
         "state_dir). Without --repo, its daemon's clone (STATE/source) is the repo.", show_default=False,
)


def repo_path(repo: Path | None, state_dir: Path | None = None) -> Path:
    """The trading repo root the command works on: --repo, else the clone of a remote-source daemon
    when --state-dir names one, else the current folder."""
    if repo is None and state_dir is not None:
        from minitrade.statedir import SOURCE_CLONE

        clone = state_dir / SOURCE_CLONE
        if (clone / ".git").exists():
            return clone
    return Path(repo if repo is not None else os.getcwd()).resolve()


def _restore_env(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


class handle_errors:  # lower case: used as a context manager, it reads like a statement
    """Turn a MinitradeError into its message on stderr and exit code 1, never a traceback."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        from minitrade.errors import MinitradeError

        if isinstance(exc, MinitradeError):
            err_console.print(f"[bold red]error:[/] {rich_escape(str(exc))}")
            raise typer.Exit(ERROR)


def rich_escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def emit_json(kind: str, payload: dict[str, Any]) -> None:
    """Print one `--json` document on stdout: format_version and kind first, then the payload."""
    doc = {"format_version": JSON_FORMAT_VERSION, "kind": kind, **payload}
    typer.echo(json.dumps(doc, indent=2, default=_json_value, ensure_ascii=False))


def _json_value(value: object) -> object:
    """Times as ISO 8601 (what every JSON reader parses), anything else unknown as its text."""
    from datetime import date

    return value.isoformat() if isinstance(value, date) else str(value)
