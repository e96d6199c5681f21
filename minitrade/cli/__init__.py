"""Command line: parse arguments, call the orchestration layer, render results, map exit codes.

Exit codes (the one table, README.md "Exit codes"; constants in cli/app.py): 0 success (for `plan`: no
changes), 1 error, 2 `plan` found changes, 64 usage error (any command), 130 interrupted.
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
    logs_cmd,
    notify_cmds,
    optimize_cmd,
    orders_cmds,
    report_cmd,
    telegram_cmds,
    trader_cmds,
)
from minitrade.cli.app import ERROR, INTERRUPTED, app, err_console, rich_escape
from minitrade.errors import MinitradeError


def main() -> None:
    """Entry point of the `minitrade` console script."""
    try:
        app()
    except MinitradeError as e:
        err_console.print(f"[bold red]error:[/] {rich_escape(str(e))}", markup=True)
        sys.exit(ERROR)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(INTERRUPTED)
    except Exception as e:  # the last resort: a bug of ours is one line and a log entry, never a traceback
        import logging

        logging.getLogger("minitrade.cli").debug("internal error", exc_info=True)
        err_console.print(f"[bold red]error:[/] internal error: {type(e).__name__}: {rich_escape(str(e))}\n"
                          "This is a bug in minitrade: run the command again with --log-level debug for the "
                          "traceback, and report it.", markup=True)
        sys.exit(ERROR)


__all__ = ["app", "main"]
