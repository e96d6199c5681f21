"""Command line: parse arguments, call the orchestration layer, render results, map exit codes.

Exit codes: 0 success (for `plan`: no changes), 1 error, 2 `plan` found changes.
"""

from __future__ import annotations

import sys

from minitrade.cli import config_cmds  # noqa: F401  (registers commands)
from minitrade.cli import live_cmds  # noqa: F401  (registers commands)
from minitrade.cli import orders_cmds  # noqa: F401  (registers commands)
from minitrade.cli import backtest_cmd  # noqa: F401  (registers commands)
from minitrade.cli import notify_cmds, report_cmd  # noqa: F401  (registers commands)
from minitrade.cli import data_cmds  # noqa: F401
from minitrade.cli import ib_cmds  # noqa: F401  (registers commands)
from minitrade.cli.app import app, err_console
from minitrade.errors import MinitradeError


def main() -> None:
    """Entry point of the `minitrade` console script."""
    try:
        app()
    except MinitradeError as e:
        err_console.print(f"[bold red]error:[/] {e}", markup=True)
        sys.exit(1)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)


__all__ = ["app", "main"]
