"""`minitrade telegram run` and `minitrade telegram fake-api`: control from a phone, and a rehearsal.

The bot reads the `telegram:` section of the applied minitrade.yaml (what the daemon runs), so it
works beside a remote-source daemon (--state-dir) as `status` does. A daemon whose applied settings
have the section runs the same bot itself: run this only where no such daemon runs (one bot per
token: a second poller is refused by Telegram).
"""

from __future__ import annotations

import importlib.util
import signal
from pathlib import Path

import typer

from minitrade.cli.app import (
    REPO_OPTION,
    STATE_DIR_OPTION,
    app,
    console,
    err_console,
    handle_errors,
    repo_path,
)

telegram = typer.Typer(help="Control minitrade from Telegram: the bot, and a fake Bot API to rehearse with.\n\n"
                            "Example: `minitrade telegram run`", no_args_is_help=True)
app.add_typer(telegram, name="telegram")


@telegram.command("run")
def run(repo: Path | None = REPO_OPTION, state_dir: Path | None = STATE_DIR_OPTION,
        twofa_timeout: float = typer.Option(120.0, help="Seconds /ib_login waits for the 2FA approval or code.")) -> None:
    """Serve the bot of the applied `telegram:` section until Ctrl-C or SIGTERM.

    Needs `pip install 'minitrade[telegram]'`. Chats not in allowed_chats are ignored and logged;
    acting commands ask Yes/No first; everything is audited in DuckDB (telegram_audit).

    Example: minitrade telegram run --state-dir /srv/minitrade/state
    """
    from minitrade.errors import ConfigError, ConfigIssue
    from minitrade.reconcile_pass import applied_snapshot
    from minitrade.statedir import locate
    from minitrade.store import Store

    with handle_errors():
        root = repo_path(repo, state_dir)
        store = Store(locate(root).state_dir / "minitrade.duckdb")
        snapshot = applied_snapshot(root, store)
        if snapshot is None or snapshot.settings.telegram is None:
            raise ConfigError(ConfigIssue("minitrade.yaml", None, "telegram", "the applied settings have no "
                                          "`telegram:` section" if snapshot else "nothing is applied yet",
                                          "add `telegram: {bot_token: '${TELEGRAM_BOT_TOKEN}', allowed_chats: "
                                          "[CHAT_ID]}`, commit and `minitrade apply` (docs/telegram.md)"))
        if importlib.util.find_spec("telegram") is None:
            raise ConfigError(ConfigIssue("environment", None, "telegram", "python-telegram-bot is not installed",
                                          "pip install 'minitrade[telegram]'"))
        from minitrade.telegram.actions import Desk
        from minitrade.telegram.bot import ControlBot

        spec = snapshot.settings.telegram
        bot = ControlBot(Desk(root, store, snapshot.state_dir), spec, twofa_timeout=twofa_timeout)
        previous = signal.signal(signal.SIGTERM, lambda _s, _f: bot.stop())
        try:
            bot.run(ready=lambda: err_console.print(
                f"telegram bot running for chats {', '.join(map(str, spec.allowed_chats))}"
                " (Ctrl-C stops it)"))
        finally:
            signal.signal(signal.SIGTERM, previous)
        console.print("telegram bot stopped")


@telegram.command("fake-api")
def fake_api(port: int = typer.Option(8081, help="Port on 127.0.0.1."),
             token: str | None = typer.Option(None, help="Accept only this bot token (default: any)."),
             chat: int | None = typer.Option(None, help="Type as this chat's person on stdin: a line is a "
                                                        "message, [Yes] presses that button.")) -> None:
    """Run a fake Telegram Bot API (same wire format) to rehearse the bot without Telegram.

    Set `api_url: http://127.0.0.1:PORT` in the `telegram:` section, then `minitrade telegram run`.

    Example: minitrade telegram fake-api --port 8081 --chat 42
    """
    from minitrade.testing.telegram_api import main

    args = ["--port", str(port)] + (["--token", token] if token else []) + (["--chat", str(chat)] if chat is not None else [])
    console.print(f"starting the fake Bot API on 127.0.0.1:{port}", style="dim", markup=False)
    main(args)
