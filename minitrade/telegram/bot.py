"""The Telegram bot: commands from the allowed chats, confirmations with inline buttons, the audit.

Built on python-telegram-bot (asyncio; polling with `getUpdates`, so no public address is needed).
Its base URL comes from `telegram.api_url`, which is how the tests and a rehearsal point it at
`minitrade.testing.telegram_api`. Rules:
- only chats in `allowed_chats` are answered; anything from another chat is ignored (no reply),
  logged as a warning and audited `refused`;
- /status, /positions, /orders answer at once; /fill, /suspend, /resume, /ib_login ask first with
  Yes/No buttons and act only on Yes pressed in the chat that asked, once (a second press finds
  nothing to do); a question not answered within `CONFIRM_SECONDS` expires;
- every command, question and outcome is a row of `telegram_audit` (chat id, command, outcome, time),
  written before the person sees the answer;
- the token is resolved only here, and every text the bot logs or raises passes through `redact`
  (python-telegram-bot writes the token into its InvalidToken message and its request URLs).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import secrets
import threading
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from minitrade import clock
from minitrade.credentials import redact, resolve_secret
from minitrade.errors import BotError, MinitradeError
from minitrade.models import TelegramSpec
from minitrade.store import Store
from minitrade.store.telegram_audit import AuditRow, record
from minitrade.telegram import actions, views

log = logging.getLogger("minitrade.telegram")
DEFAULT_API = "https://api.telegram.org"
CONFIRM_SECONDS = 300.0
POLL_TIMEOUT = 10            # seconds a getUpdates long poll waits
RETRY_SECONDS = 60.0         # the daemon's bot tries again this long after the API failed
COMMANDS = [
    ("status", "applied commit, daemon, plans and their next run"),
    ("positions", "positions and P&L from the recorded fills: /positions [PLAN]"),
    ("orders", "open orders with their ids: /orders [PLAN]"),
    ("fill", "record a manual fill: /fill ORDER PRICE [QTY]"),
    ("suspend", "stop a plan at once: /suspend PLAN [reason]"),
    ("resume", "end a suspension: /resume PLAN"),
    ("ib_login", "log in to IB (2FA on this phone): /ib_login [ACCOUNT]"),
    ("help", "what the bot can do"),
]
ACTING = ("fill", "suspend", "resume", "ib_login")
# Loggers whose info and debug lines carry the token: httpx logs every request URL
# (".../bot<token>/getUpdates"), python-telegram-bot its base URL and each call. They are held at
# warning whatever the log level, so those lines are never made (the handlers mask what is left).
TOKEN_LOGGERS = ("httpx", "httpcore", "telegram")


@dataclass
class _Pending:
    chat_id: int
    user: str | None
    proposal: actions.Proposal
    asked_at: float             # time.monotonic(): how long the question is open, not the present


class ControlBot:
    """One bot over one trading repo's state; `run` serves it until `stop` is set."""

    def __init__(self, desk: actions.Desk, spec: TelegramSpec, *, twofa_timeout: float = 120.0,
                 confirm_seconds: float = CONFIRM_SECONDS) -> None:
        self.desk, self.spec = desk, spec
        self.allowed = frozenset(spec.allowed_chats)
        self.twofa_timeout, self.confirm_seconds = twofa_timeout, confirm_seconds
        self._token: SecretStr | None = None
        self._pending: dict[str, _Pending] = {}
        self._codes: dict[int, queue.Queue[str]] = {}   # chats asked for a typed IB code
        self._logins: set[str] = set()                  # IB accounts with a login in progress
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._stop_requested = threading.Event()        # a stop() before the loop existed still counts
        self._app: Any = None
        self._requests: tuple[Any, ...] = ()

    # -- lifetime ------------------------------------------------------------------------------
    def token(self) -> SecretStr:
        """The bot token, resolved from its reference (remembered by credentials: logs mask it)."""
        if self._token is None:
            self._token = resolve_secret(self.spec.bot_token, env=self.desk.env, field="telegram.bot_token")
        return self._token

    def clean(self, text: str) -> str:
        """`text` without the token (python-telegram-bot puts it in errors and URLs)."""
        return redact(text, [self.token()])

    def run(self, ready: Callable[[], None] | None = None) -> None:
        """Serve until `stop()` (or SIGINT in the CLI); raises BotError when the API refuses the token
        or cannot be reached at start."""
        quiet_token_loggers()
        asyncio.run(self._serve(ready))

    def stop(self) -> None:
        """Ask a running bot to stop (from any thread)."""
        self._stop_requested.set()
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None:
            with contextlib.suppress(RuntimeError):    # its loop already closed
                loop.call_soon_threadsafe(stopping.set)

    def _application(self) -> Any:
        from telegram import Update
        from telegram.ext import (
            Application,
            CallbackQueryHandler,
            CommandHandler,
            MessageHandler,
            TypeHandler,
        )
        from telegram.ext import filters as tg_filters
        from telegram.request import HTTPXRequest

        api = self.spec.api_url or DEFAULT_API
        # built here so that they can be closed also when the bot never initialises (a refused
        # token): PTB closes them only on the shutdown of an initialised bot
        self._requests = (HTTPXRequest(), HTTPXRequest(connection_pool_size=1))
        app = (Application.builder().token(self.token().get_secret_value())
               .base_url(f"{api}/bot{{token}}").base_file_url(f"{api}/file/bot{{token}}")
               .request(self._requests[0]).get_updates_request(self._requests[1]).build())
        app.add_handler(TypeHandler(Update, self._gate), group=-1)
        app.add_handler(CommandHandler(["start", "help"], self._help))
        app.add_handler(CommandHandler("status", self._read(lambda args: views.status_text(
            self.desk.store, self.desk.state_dir))))
        app.add_handler(CommandHandler("positions", self._read(lambda args: views.positions_text(
            self.desk.store, args[0] if args else None))))
        app.add_handler(CommandHandler("orders", self._read(lambda args: views.orders_text(
            self.desk.store, args[0] if args else None))))
        for name in ACTING:
            app.add_handler(CommandHandler(name, self._ask))
        app.add_handler(CallbackQueryHandler(self._answer, pattern=r"^(yes|no):[0-9a-f]+$"))
        app.add_handler(MessageHandler(tg_filters.COMMAND, self._unknown))
        app.add_handler(MessageHandler(tg_filters.TEXT, self._text))
        app.add_error_handler(self._on_error)
        return app

    async def _serve(self, ready: Callable[[], None] | None) -> None:
        from telegram.error import InvalidToken, TelegramError

        self._loop, self._stopping = asyncio.get_running_loop(), asyncio.Event()
        if self._stop_requested.is_set():
            self._stopping.set()
        app = self._app = self._application()
        try:
            await app.initialize()
        except InvalidToken as e:
            await self._close_requests()
            raise BotError(f"the Telegram Bot API at {self.spec.api_url or DEFAULT_API} refused the bot token "
                           f"({self.clean(str(e))}); check telegram.bot_token ({self.spec.bot_token})") from None
        except TelegramError as e:
            await self._close_requests()
            raise BotError(f"the Telegram Bot API at {self.spec.api_url or DEFAULT_API} cannot be reached: "
                           f"{self.clean(str(e))}") from None
        try:
            await app.bot.set_my_commands(COMMANDS)
            await app.updater.start_polling(timeout=POLL_TIMEOUT, drop_pending_updates=False,
                                            error_callback=self._poll_error)
            await app.start()
            log.info("telegram bot @%s answers chats %s", app.bot.username,
                     ", ".join(str(c) for c in sorted(self.allowed)))
            if ready is not None:
                ready()
            await self._stopping.wait()
        except TelegramError as e:
            raise BotError(f"the Telegram bot stopped: {self.clean(str(e))}") from None
        finally:
            with contextlib.suppress(Exception):   # stopping must not hide why it stopped
                if app.updater.running:
                    await app.updater.stop()
                if app.running:
                    await app.stop()
            await app.shutdown()
            log.info("telegram bot stopped")

    async def _close_requests(self) -> None:
        """Close the HTTP clients of a bot that never initialised (its shutdown would skip them)."""
        await asyncio.gather(*(request.shutdown() for request in self._requests))

    def _poll_error(self, e: Exception) -> None:
        log.warning("telegram: polling failed, retrying: %s", self.clean(str(e)))

    # -- gate and audit ------------------------------------------------------------------------
    async def _gate(self, update: Any, context: Any) -> None:
        """Drop everything not from an allowed chat: no reply, a warning and an audit row."""
        from telegram.ext import ApplicationHandlerStop

        chat = update.effective_chat
        if chat is not None and chat.id in self.allowed:
            return
        user = update.effective_user
        text = update.effective_message.text if update.effective_message is not None else None
        if update.callback_query is not None:
            text = f"(button {update.callback_query.data})"
        chat_id = chat.id if chat is not None else 0
        log.warning("telegram: ignored a message from chat %s (%s), which is not in telegram.allowed_chats",
                    chat_id, _who(user) or "unknown user")
        await self._audit(chat_id, _who(user), _command_of(text), text, "refused", "chat not in allowed_chats")
        raise ApplicationHandlerStop

    async def _audit(self, chat_id: int, user: str | None, command: str, args: str | None, outcome: str,
                     detail: str | None = None) -> None:
        row = AuditRow(clock.now(), chat_id, user, command, args, outcome,
                       self.clean(detail) if detail is not None else None)
        try:
            await asyncio.to_thread(self._write_audit, row)
        except MinitradeError as e:   # the store locked for long: the action stands, the log keeps it
            log.error("telegram: audit row not written (%s %s %s): %s", chat_id, command, outcome, e)

    def _write_audit(self, row: AuditRow) -> None:
        with self.desk.store.transaction() as con:
            record(con, row)

    # -- commands ------------------------------------------------------------------------------
    async def _help(self, update: Any, context: Any) -> None:
        lines = ["<b>minitrade</b> answers:"] + [f"/{name}: {escape(text)}" for name, text in COMMANDS]
        lines.append("Acting commands ask for confirmation first.")
        await self._audit(update.effective_chat.id, _who(update.effective_user), "help", None, "answered")
        await self._reply(update, "\n".join(lines))

    def _read(self, view: Callable[[list[str]], str]) -> Callable[[Any, Any], Coroutine[Any, Any, None]]:
        async def handler(update: Any, context: Any) -> None:
            command = _command_of(update.effective_message.text)
            args = list(context.args or [])
            try:
                text = await asyncio.to_thread(view, args)
                outcome, detail = "answered", None
            except MinitradeError as e:
                text, outcome, detail = actions.failure(e), "failed", str(e)
            await self._audit(update.effective_chat.id, _who(update.effective_user), command, " ".join(args) or None,
                              outcome, detail)
            await self._reply(update, text)
        return handler

    async def _ask(self, update: Any, context: Any) -> None:
        """An acting command: check it, then ask Yes/No; nothing changes until Yes."""
        from telegram import InlineKeyboardButton, InlineKeyboardMarkup

        chat_id, user = update.effective_chat.id, _who(update.effective_user)
        command = _command_of(update.effective_message.text)
        args = list(context.args or [])
        try:
            proposal = await asyncio.to_thread(self._propose, command, args, chat_id, user)
        except MinitradeError as e:
            proposal = actions.failure(e)
        if isinstance(proposal, str):
            await self._audit(chat_id, user, command, " ".join(args) or None, "failed", _plain(proposal))
            await self._reply(update, proposal)
            return
        self._expire()
        key = secrets.token_hex(6)
        self._pending[key] = _Pending(chat_id, user, proposal, time.monotonic())
        buttons = InlineKeyboardMarkup([[InlineKeyboardButton("Yes", callback_data=f"yes:{key}"),
                                         InlineKeyboardButton("No", callback_data=f"no:{key}")]])
        await self._audit(chat_id, user, command, proposal.args or None, "asked")
        await update.effective_message.reply_text(proposal.question, parse_mode="HTML", reply_markup=buttons)

    def _propose(self, command: str, args: list[str], chat_id: int, user: str | None) -> actions.Proposal | str:
        by = f"telegram chat {chat_id}" + (f" ({user})" if user else "")
        if command == "fill":
            return actions.propose_fill(self.desk, args)
        if command == "suspend":
            return actions.propose_suspend(self.desk, args, by=by)
        if command == "resume":
            return actions.propose_resume(self.desk, args, by=by)
        return actions.propose_ib_login(self.desk, args, say=self._sayer(chat_id), code=self._code_asker(chat_id),
                                        twofa_timeout=self.twofa_timeout)

    def _expire(self) -> None:
        old = [k for k, p in self._pending.items() if time.monotonic() - p.asked_at > self.confirm_seconds]
        for key in old:
            del self._pending[key]

    async def _answer(self, update: Any, context: Any) -> None:
        """Yes or No pressed: act once, in the chat that asked, while the question is open."""
        query = update.callback_query
        verdict, key = str(query.data).split(":", 1)
        chat_id, user = update.effective_chat.id, _who(update.effective_user)
        pending = self._pending.get(key)
        if pending is None or pending.chat_id != chat_id:
            await query.answer("This question is closed (answered, expired, or the bot restarted).")
            await self._close(query, "(closed: send the command again)")
            return
        del self._pending[key]                   # one press acts; a second finds nothing
        proposal = pending.proposal
        if time.monotonic() - pending.asked_at > self.confirm_seconds:
            await self._audit(chat_id, user, proposal.command, proposal.args or None, "expired")
            await query.answer("Expired: send the command again.")
            await self._close(query, f"{proposal.question}\n→ Expired after {self.confirm_seconds:g}s: nothing done.")
            return
        if verdict == "no":
            await self._audit(chat_id, user, proposal.command, proposal.args or None, "declined")
            await query.answer("Not done.")
            await self._close(query, f"{proposal.question}\n→ Not done (you said No).")
            return
        await query.answer("Working on it…")
        await self._close(query, f"{proposal.question}\n→ Yes: working on it…")
        if proposal.command == "ib_login":
            account = proposal.args or "(the only account)"
            if account in self._logins:
                await self._audit(chat_id, user, proposal.command, proposal.args or None, "failed",
                                  "a login is already in progress")
                await self._send(chat_id, f"A login of {escape(account)} is already in progress.")
                return
            self._logins.add(account)
            context.application.create_task(self._act(chat_id, user, proposal, query, done=lambda:
                                                      self._logins.discard(account)))
            return
        await self._act(chat_id, user, proposal, query)

    async def _act(self, chat_id: int, user: str | None, proposal: actions.Proposal, query: Any, *,
                   done: Callable[[], None] = lambda: None) -> None:
        try:
            text = await asyncio.to_thread(proposal.act)
            outcome, detail = "done", _plain(text)
        except MinitradeError as e:
            text, outcome, detail = actions.failure(e), "failed", str(e)
        finally:
            done()
        log.info("telegram: chat %s %s %s: %s", chat_id, proposal.command, proposal.args, outcome)
        await self._audit(chat_id, user, proposal.command, proposal.args or None, outcome, detail)
        await self._close(query, f"{proposal.question}\n→ {text}")

    async def _unknown(self, update: Any, context: Any) -> None:
        command = _command_of(update.effective_message.text)
        await self._audit(update.effective_chat.id, _who(update.effective_user), command,
                          update.effective_message.text, "failed", "unknown command")
        await self._reply(update, f"Unknown command /{escape(command)}: /help lists what I answer.")

    async def _text(self, update: Any, context: Any) -> None:
        """Plain text: a typed IB code when one was asked for in this chat; else a pointer to /help."""
        chat_id = update.effective_chat.id
        waiting = self._codes.get(chat_id)
        if waiting is not None:
            waiting.put(update.effective_message.text or "")
            await self._reply(update, "Code received; typing it into the IB login page…")
            # the code itself is never audited or logged: it is a credential while it is valid
            await self._audit(chat_id, _who(update.effective_user), "ib_code", None, "answered", "2FA code typed in")
            return
        await self._reply(update, "I answer commands only: /help lists them.")

    # -- IB login callbacks (called from the login's worker thread) ------------------------------
    def _sayer(self, chat_id: int) -> Callable[[str], None]:
        def say(line: str) -> None:
            self._from_thread(self._send(chat_id, escape(line)))
        return say

    def _code_asker(self, chat_id: int) -> Callable[[], str | None]:
        def ask() -> str | None:
            box: queue.Queue[str] = queue.Queue()
            self._codes[chat_id] = box
            try:
                self._from_thread(self._send(chat_id, "IB asks for the security code it sent you (SMS or card): "
                                                      "reply with the code."))
                return box.get(timeout=self.twofa_timeout)
            except queue.Empty:
                self._from_thread(self._send(chat_id, f"No code within {self.twofa_timeout:g}s; the login stops."))
                return None
            finally:
                self._codes.pop(chat_id, None)
        return ask

    def _from_thread(self, coro: Coroutine[Any, Any, Any]) -> None:
        loop = self._loop
        if loop is None:
            coro.close()
            return
        with contextlib.suppress(Exception):   # a message that cannot be sent must not break the login
            asyncio.run_coroutine_threadsafe(coro, loop).result(timeout=30)

    # -- sending -------------------------------------------------------------------------------
    async def _reply(self, update: Any, text: str) -> None:
        await update.effective_message.reply_text(text, parse_mode="HTML")

    async def _send(self, chat_id: int, text: str) -> None:
        if self._app is not None:
            await self._app.bot.send_message(chat_id, text, parse_mode="HTML")

    async def _close(self, query: Any, text: str) -> None:
        """Replace the question by its outcome, buttons removed (an unchanged text is not an error)."""
        from telegram.error import BadRequest

        try:
            await query.edit_message_text(views.fit(text.splitlines()), parse_mode="HTML")
        except BadRequest as e:
            if "not modified" not in str(e):
                raise

    async def _on_error(self, update: object, context: Any) -> None:
        error = context.error
        log.error("telegram: a command failed: %s", self.clean(f"{type(error).__name__}: {error}"))
        chat = getattr(update, "effective_chat", None)
        if chat is not None and chat.id in self.allowed:
            with contextlib.suppress(Exception):
                await context.bot.send_message(chat.id, "That failed inside minitrade; the log has the details.")


def quiet_token_loggers() -> None:
    """Hold the loggers that would write the token in URLs at warning (see TOKEN_LOGGERS)."""
    for name in TOKEN_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level < logging.WARNING:     # NOTSET too: a root lowered later must not lower them
            logger.setLevel(logging.WARNING)


def _who(user: Any) -> str | None:
    if user is None:
        return None
    return f"@{user.username}" if user.username else user.first_name


def _command_of(text: str | None) -> str:
    """`fill` of '/fill@minitrade_bot X 1'; '(text)' for a message that is no command."""
    if not text or not text.startswith("/"):
        return "(text)"
    return text.split()[0][1:].split("@", 1)[0].lower()[:32]


def _plain(html_text: str) -> str:
    """An HTML reply as plain text for the audit."""
    import re
    from html import unescape

    return unescape(re.sub(r"<[^>]+>", "", html_text))


class BotThread:
    """The daemon's bot: a thread serving the applied `telegram:` section, restarted when it changes.

    A bot that cannot start (a refused token, the API unreachable) is logged and tried again every
    `RETRY_SECONDS`; trading never waits for it.
    """

    def __init__(self, root: Path, store: Store, state_dir: Path, *, env: Mapping[str, str] | None = None) -> None:
        # A Store of its own: the daemon's shares one open connection among a pass's transactions
        # (held_open), which another thread must not use at the same time.
        self.root, self.store, self.state_dir, self.env = root, Store(store.path), state_dir, env
        self._spec: TelegramSpec | None = None
        self._bot: ControlBot | None = None
        self._thread: threading.Thread | None = None
        self._quit = threading.Event()

    def watch(self, spec: TelegramSpec | None) -> None:
        """Serve `spec` (None: no bot); a changed section restarts the bot."""
        if spec == self._spec and (spec is None or self._thread is not None):
            return
        self.stop()
        self._spec = spec
        if spec is None:
            return
        self._quit = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(spec, self._quit), name="telegram-bot", daemon=True)
        self._thread.start()

    def _serve(self, spec: TelegramSpec, quit: threading.Event) -> None:
        while not quit.is_set():
            bot = ControlBot(actions.Desk(self.root, self.store, self.state_dir, self.env), spec)
            self._bot = bot
            try:
                bot.run()
                return
            except ModuleNotFoundError as e:
                log.error("telegram bot not running: %s is not installed (pip install 'minitrade[telegram]')", e.name)
                return
            except MinitradeError as e:   # BotError, or the token's reference unset (ConfigError)
                log.error("telegram bot not running (retrying in %gs): %s", RETRY_SECONDS, e)
            except Exception:
                log.exception("telegram bot failed (retrying in %gs)", RETRY_SECONDS)
            quit.wait(RETRY_SECONDS)

    def stop(self) -> None:
        self._quit.set()
        if self._bot is not None:
            self._bot.stop()
        if self._thread is not None:
            self._thread.join(timeout=15)
        self._thread, self._bot = None, None
