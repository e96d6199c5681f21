"""Command line: parse arguments, call the orchestration layer, render results, map exit codes.

Exit codes: 0 success (for `plan`: no changes), 1 error, 2 `plan` found changes.
"""

from __future__ import annotations

import sys

# Each module registers its commands on `app` when imported.
from minitrade.cli import (  # noqa: F401
    backtest_cmd,
    config_cmds,
    data_cmds,
    ib_cmds,
    live_cmds,
    notify_cmds,
    orders_cmds,
    report_cmd,
)
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
