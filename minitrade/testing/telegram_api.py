"""A fake Telegram Bot API on 127.0.0.1: the real wire format, and a control side for people and tests.

The bot side is `https://api.telegram.org/bot<token>/<method>` as documented at
https://core.telegram.org/bots/api, served over plain HTTP: every answer is
`{"ok": true, "result": ...}` or `{"ok": false, "error_code": N, "description": "..."}`, parameters
come as a query string, a form (values of objects JSON-encoded, as python-telegram-bot sends them)
or a JSON body. What the real service does and a bot can get wrong is done here too:
- `getUpdates` long-polls up to `timeout` seconds; an `offset` confirms (forgets) every earlier
  update, a negative one keeps only the last updates; a second poller ends the first with
  409 "Conflict: terminated by other getUpdates request" (two bots on one token);
- a user's text carries `bot_command` entities with offsets in UTF-16 code units (what command
  handlers match on);
- `sendMessage` refuses a chat that never wrote to the bot ("chat not found"), empty or too long
  text, HTML that Telegram cannot parse (`parse_mode: HTML`: unknown tags, unclosed tags, a bare `<`
  or `&`), and inline buttons whose `callback_data` is not 1-64 bytes;
- `editMessageText` refuses an edit that changes nothing ("message is not modified") and drops the
  inline keyboard when no `reply_markup` is given; `answerCallbackQuery` refuses an unknown or an
  already answered query.
Not served: files, webhooks (only `deleteWebhook`/`getWebhookInfo` for a polling bot), payments,
inline mode; returned messages carry no formatting entities (their text is the parsed plain text).

The control side (`/__fake/...`, JSON) plays the person at the phone: write a message from a chat,
press an inline button of a message the bot sent there, read what the bot sent. It imports nothing
from minitrade, so a bug in the bot cannot be mirrored here.

    with FakeBotAPI(token="123:ABC") as api:       # api.url -> http://127.0.0.1:PORT
        api.send_text(42, "/status")
        reply = api.wait_for(42, "Applied")
        api.press(42, reply["message_id"], text="Yes")
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import count
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from minitrade.testing.telegram_wire import (
    MAX_CALLBACK_DATA,
    MAX_POLL_TIMEOUT,
    MAX_TEXT,
    ApiError,
    command_entities,
    parse_html,
    typed_params,
    utf16_len,
)


@dataclass
class Chat:
    """A chat the bot can write to: a private chat with a person (id > 0) or a group (id < 0)."""

    id: int
    first_name: str = "Trader"
    username: str | None = None

    def json(self) -> dict[str, Any]:
        if self.id < 0:
            return {"id": self.id, "type": "group", "title": self.first_name}
        doc: dict[str, Any] = {"id": self.id, "type": "private", "first_name": self.first_name}
        if self.username:
            doc["username"] = self.username
        return doc


@dataclass
class Sent:
    """A message the bot sent, as it stands now (edits replace text and keyboard), and its history."""

    message: dict[str, Any]
    edits: list[dict[str, Any]] = field(default_factory=list)


class FakeBotAPI:
    """The Bot API of one bot: its token, its users' chats, the update queue and what it sent."""

    def __init__(self, *, token: str | None = None, port: int = 0, bot_username: str = "minitrade_fake_bot",
                 bot_id: int = 7000000001) -> None:
        self.token = token                     # None: any token is accepted (and remembered in `tokens`)
        self.tokens: set[str] = set()
        self.bot = {"id": bot_id, "is_bot": True, "first_name": "minitrade (fake)", "username": bot_username,
                    "can_join_groups": True, "can_read_all_group_messages": False, "supports_inline_queries": False,
                    "can_connect_to_business": False, "has_main_web_app": False}
        self.calls: list[str] = []             # every Bot API method called, in order
        self.commands: list[dict[str, str]] = []
        self._changed = threading.Condition()
        self._updates: list[dict[str, Any]] = []
        self._next_update = count(500_000_001)
        self._confirmed = 0                    # updates below this id were confirmed by an offset
        self._poller = 0                       # generation of the getUpdates request allowed to wait
        self._chats: dict[int, Chat] = {}
        self._sent: dict[int, dict[int, Sent]] = {}   # chat id -> message id -> message
        self._next_message: dict[int, count[int]] = {}
        self._queries: dict[str, dict[str, Any]] = {}  # callback query id -> {chat_id, answered, answer}
        self._next_query = count(4_000_000_000_001)
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """The API root: a bot's base URL is `{url}/bot{token}`."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FakeBotAPI:
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="fake-telegram",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        with self._changed:
            self._poller += 1                  # a long poll in flight returns at once
            self._changed.notify_all()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeBotAPI:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # -- the person's side -----------------------------------------------------------------
    def send_text(self, chat_id: int, text: str, *, first_name: str = "Trader",
                  username: str | None = None) -> dict[str, Any]:
        """The person in chat `chat_id` writes `text` to the bot; returns the message as delivered."""
        with self._changed:
            chat = self._chats.setdefault(chat_id, Chat(chat_id, first_name, username))
            message = {"message_id": next(self._counter(chat_id)), "from": self._user(chat), "chat": chat.json(),
                       "date": int(time.time()), "text": text}
            entities = command_entities(text)
            if entities:
                message["entities"] = entities
            self._push({"message": message})
            return message

    def press(self, chat_id: int, message_id: int, data: str | None = None, *, text: str | None = None) -> str:
        """Press an inline button (by its callback_data or its label) of a message the bot shows in
        `chat_id`; returns the callback query id. Only buttons on screen now can be pressed."""
        with self._changed:
            sent = self._sent.get(chat_id, {}).get(message_id)
            if sent is None:
                raise ApiError(400, f"no message {message_id} from the bot in chat {chat_id}")
            buttons = [b for row in (sent.message.get("reply_markup") or {}).get("inline_keyboard", []) for b in row]
            chosen = [b for b in buttons if (data is not None and b.get("callback_data") == data)
                      or (text is not None and b.get("text") == text)]
            if not chosen or "callback_data" not in chosen[0]:
                shown = ", ".join(repr(b.get("text")) for b in buttons) or "none"
                raise ApiError(400, f"message {message_id} in chat {chat_id} shows no such button (buttons: {shown})")
            query_id = str(next(self._next_query))
            chat = self._chats[chat_id]
            self._queries[query_id] = {"chat_id": chat_id, "answered": False, "answer": None}
            self._push({"callback_query": {"id": query_id, "from": self._user(chat), "message": sent.message,
                                           "chat_instance": str(abs(chat_id) * 7 + 3),
                                           "data": chosen[0]["callback_data"]}})
            return query_id

    def sent(self, chat_id: int) -> list[dict[str, Any]]:
        """What the bot sent to `chat_id`, oldest first, each as it stands now."""
        with self._changed:
            return [s.message for s in self._sent.get(chat_id, {}).values()]

    def answers(self) -> dict[str, dict[str, Any]]:
        """Every callback query: whether the bot answered it (a spinner spins on the phone until it does)."""
        with self._changed:
            return {k: dict(v) for k, v in self._queries.items()}

    def wait_for(self, chat_id: int, match: str | Callable[[dict[str, Any]], bool], *, after: int = 0,
                 timeout: float = 30.0) -> dict[str, Any]:
        """The first message (sent or edited) in `chat_id` with id above `after` whose text contains
        `match` (or satisfies it); waits for the bot up to `timeout` seconds, else TimeoutError."""
        test = match if callable(match) else (lambda m: match in m.get("text", ""))
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for message in self.sent(chat_id):
                    if message["message_id"] > after and test(message):
                        return message
                left = deadline - time.monotonic()
                if left <= 0:
                    texts = [m.get("text", "") for m in self.sent(chat_id)]
                    raise TimeoutError(f"no message matching {match!r} in chat {chat_id} within {timeout:g}s; "
                                       f"the bot sent: {texts}")
                self._changed.wait(left)

    def pending_updates(self) -> int:
        """Updates not yet confirmed by the bot's getUpdates offset."""
        with self._changed:
            return sum(1 for u in self._updates if u["update_id"] >= self._confirmed)

    # -- the bot's side --------------------------------------------------------------------
    def call(self, token: str, method: str, params: dict[str, Any]) -> Any:
        """One Bot API call; returns the `result` or raises ApiError."""
        if self.token is not None and token != self.token:
            raise ApiError(401, "Unauthorized")
        self.tokens.add(token)
        handler = getattr(self, f"_m_{method.lower()}", None)
        self.calls.append(method)
        if handler is None:
            raise ApiError(404, "Not Found")
        return handler(params)

    def _m_getme(self, params: dict[str, Any]) -> Any:
        return self.bot

    def _m_deletewebhook(self, params: dict[str, Any]) -> Any:
        if params.get("drop_pending_updates"):
            with self._changed:
                self._confirmed = next(self._next_update)
        return True

    def _m_getwebhookinfo(self, params: dict[str, Any]) -> Any:
        return {"url": "", "has_custom_certificate": False, "pending_update_count": self.pending_updates()}

    def _m_setmycommands(self, params: dict[str, Any]) -> Any:
        commands = params.get("commands")
        if not isinstance(commands, list):
            raise ApiError(400, "Bad Request: parameter \"commands\" is required")
        for c in commands:
            if not re.fullmatch(r"[a-z0-9_]{1,32}", str(c.get("command", ""))):
                raise ApiError(400, "Bad Request: BOT_COMMAND_INVALID")
            if not 1 <= len(str(c.get("description", ""))) <= 256:
                raise ApiError(400, "Bad Request: BOT_COMMAND_DESCRIPTION_INVALID")
        self.commands = [{"command": c["command"], "description": c["description"]} for c in commands]
        return True

    def _m_getmycommands(self, params: dict[str, Any]) -> Any:
        return self.commands

    def _m_close(self, params: dict[str, Any]) -> Any:
        return True

    def _m_getupdates(self, params: dict[str, Any]) -> Any:
        offset, limit = int(params.get("offset") or 0), int(params.get("limit") or 100)
        timeout = min(float(params.get("timeout") or 0), MAX_POLL_TIMEOUT)
        limit = max(1, min(limit, 100))
        deadline = time.monotonic() + timeout
        with self._changed:
            self._poller += 1
            me = self._poller
            self._changed.notify_all()          # an earlier poll still waiting is terminated
            if offset < 0:                      # keep only the last -offset updates
                if len(self._updates) > -offset:
                    self._confirmed = self._updates[offset]["update_id"]
            elif offset > self._confirmed:
                self._confirmed = offset
            self._updates = [u for u in self._updates if u["update_id"] >= self._confirmed]
            while True:
                ready = [u for u in self._updates if u["update_id"] >= self._confirmed][:limit]
                if ready:
                    return ready
                left = deadline - time.monotonic()
                if left <= 0:
                    return []
                self._changed.wait(left)
                if self._poller != me:
                    raise ApiError(409, "Conflict: terminated by other getUpdates request; make sure that only "
                                        "one bot instance is running")

    def _m_sendmessage(self, params: dict[str, Any]) -> Any:
        chat_id = self._chat_id(params)
        text = self._text(params)
        markup = self._markup(params.get("reply_markup"))
        with self._changed:
            chat = self._chats[chat_id]
            message: dict[str, Any] = {"message_id": next(self._counter(chat_id)), "from": self._bot_user(),
                                       "chat": chat.json(), "date": int(time.time()), "text": text}
            if markup:
                message["reply_markup"] = markup
            self._sent.setdefault(chat_id, {})[message["message_id"]] = Sent(message)
            self._changed.notify_all()
            return message

    def _m_editmessagetext(self, params: dict[str, Any]) -> Any:
        chat_id = self._chat_id(params)
        text = self._text(params)
        markup = self._markup(params.get("reply_markup"))
        with self._changed:
            sent = self._sent.get(chat_id, {}).get(int(params.get("message_id") or 0))
            if sent is None:
                raise ApiError(400, "Bad Request: message to edit not found")
            old = sent.message
            if old.get("text") == text and old.get("reply_markup") == (markup or None):
                raise ApiError(400, "Bad Request: message is not modified: specified new message content and "
                                    "reply markup are exactly the same as a current content and reply markup of "
                                    "the message")
            new = {k: v for k, v in old.items() if k != "reply_markup"}
            new.update(text=text, edit_date=int(time.time()))
            if markup:
                new["reply_markup"] = markup
            sent.edits.append(old)
            sent.message = new
            self._changed.notify_all()
            return new

    def _m_editmessagereplymarkup(self, params: dict[str, Any]) -> Any:
        chat_id = self._chat_id(params)
        markup = self._markup(params.get("reply_markup"))
        with self._changed:
            sent = self._sent.get(chat_id, {}).get(int(params.get("message_id") or 0))
            if sent is None:
                raise ApiError(400, "Bad Request: message to edit not found")
            if sent.message.get("reply_markup") == (markup or None):
                raise ApiError(400, "Bad Request: message is not modified: specified new message content and "
                                    "reply markup are exactly the same as a current content and reply markup of "
                                    "the message")
            new = {k: v for k, v in sent.message.items() if k != "reply_markup"}
            new["edit_date"] = int(time.time())
            if markup:
                new["reply_markup"] = markup
            sent.edits.append(sent.message)
            sent.message = new
            self._changed.notify_all()
            return new

    def _m_answercallbackquery(self, params: dict[str, Any]) -> Any:
        with self._changed:
            query = self._queries.get(str(params.get("callback_query_id", "")))
            if query is None or query["answered"]:
                raise ApiError(400, "Bad Request: query is too old and response timeout expired or query ID is "
                                    "invalid")
            query.update(answered=True, answer=params.get("text"))
            self._changed.notify_all()
            return True

    def _m_deletemessage(self, params: dict[str, Any]) -> Any:
        chat_id = self._chat_id(params)
        with self._changed:
            if self._sent.get(chat_id, {}).pop(int(params.get("message_id") or 0), None) is None:
                raise ApiError(400, "Bad Request: message to delete not found")
            self._changed.notify_all()
            return True

    # -- helpers -------------------------------------------------------------------------------
    def _push(self, update: dict[str, Any]) -> None:
        """Queue an update (the caller holds the lock) and wake the long poll."""
        self._updates.append({"update_id": next(self._next_update), **update})
        self._changed.notify_all()

    def _counter(self, chat_id: int) -> count[int]:
        return self._next_message.setdefault(chat_id, count(1))

    def _user(self, chat: Chat) -> dict[str, Any]:
        user: dict[str, Any] = {"id": abs(chat.id) if chat.id > 0 else 1000, "is_bot": False,
                                "first_name": chat.first_name if chat.id > 0 else "Trader", "language_code": "en"}
        if chat.username:
            user["username"] = chat.username
        return user

    def _bot_user(self) -> dict[str, Any]:
        return {k: self.bot[k] for k in ("id", "is_bot", "first_name", "username")}

    def _chat_id(self, params: dict[str, Any]) -> int:
        raw = params.get("chat_id")
        if raw is None or raw == "":
            raise ApiError(400, "Bad Request: chat_id is empty")
        try:
            chat_id = int(raw)
        except (TypeError, ValueError):
            raise ApiError(400, "Bad Request: chat not found") from None
        if chat_id not in self._chats:
            raise ApiError(400, "Bad Request: chat not found")
        return chat_id

    @staticmethod
    def _text(params: dict[str, Any]) -> str:
        text = str(params.get("text") or "")
        if str(params.get("parse_mode") or "").upper() == "HTML":
            text = parse_html(text)
        elif params.get("parse_mode"):
            raise ApiError(400, f"Bad Request: unsupported parse_mode {params['parse_mode']!r} in the fake "
                                "(HTML only)")
        if not text.strip():
            raise ApiError(400, "Bad Request: message text is empty")
        if utf16_len(text) > MAX_TEXT:
            raise ApiError(400, "Bad Request: message is too long")
        return text

    @staticmethod
    def _markup(markup: Any) -> dict[str, Any] | None:
        if markup is None:
            return None
        keyboard = markup.get("inline_keyboard") if isinstance(markup, dict) else None
        if not isinstance(keyboard, list) or not all(isinstance(row, list) for row in keyboard):
            raise ApiError(400, "Bad Request: can't parse reply keyboard markup JSON object")
        for row in keyboard:
            for button in row:
                if not str(button.get("text") or "").strip():
                    raise ApiError(400, "Bad Request: text buttons are unallowed in the inline keyboard")
                data = button.get("callback_data")
                if data is not None and not 1 <= len(str(data).encode()) <= MAX_CALLBACK_DATA:
                    raise ApiError(400, "Bad Request: BUTTON_DATA_INVALID")
                if data is None and "url" not in button:
                    raise ApiError(400, "Bad Request: can't parse inline keyboard button: Field \"callback_data\" "
                                        "must be of type String")
        return {"inline_keyboard": keyboard}

    # -- HTTP ----------------------------------------------------------------------------------
    def _control(self, method: str, path: str, body: dict[str, Any], query: dict[str, str]) -> tuple[int, Any]:
        """The person's side over HTTP: /__fake/message, /__fake/press, /__fake/sent, /__fake/calls."""
        if path == "/__fake/message" and method == "POST":
            return 200, self.send_text(int(body["chat_id"]), str(body["text"]),
                                       first_name=str(body.get("first_name") or "Trader"))
        if path == "/__fake/press" and method == "POST":
            query_id = self.press(int(body["chat_id"]), int(body["message_id"]), body.get("data"),
                                  text=body.get("text"))
            return 200, {"callback_query_id": query_id}
        if path == "/__fake/sent":
            return 200, self.sent(int(query.get("chat_id") or body.get("chat_id") or 0))
        if path == "/__fake/calls":
            return 200, list(self.calls)
        if path == "/__fake/answers":
            return 200, self.answers()
        return 404, {"error": "unknown control path"}

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read `calls`
                return

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

            def _serve(self, method: str) -> None:
                parts = urlsplit(self.path)
                query = dict(parse_qsl(parts.query))
                try:
                    params = {**query, **self._body()}
                except ValueError as e:
                    self._send(400, {"ok": False, "error_code": 400, "description": f"Bad Request: {e}"})
                    return
                if parts.path.startswith("/__fake/"):
                    try:
                        status, payload = api._control(method, parts.path, params, query)
                    except ApiError as e:
                        status, payload = e.code, {"error": e.description}
                    except (KeyError, TypeError, ValueError) as e:
                        status, payload = 400, {"error": f"bad control request: {e!r}"}
                    self._send(status, payload)
                    return
                match = re.fullmatch(r"/bot([^/]+)/([A-Za-z]+)", parts.path)
                if match is None:
                    self._send(404, {"ok": False, "error_code": 404, "description": "Not Found"})
                    return
                try:
                    result = api.call(match.group(1), match.group(2), typed_params(params))
                except ApiError as e:
                    self._send(e.code, {"ok": False, "error_code": e.code, "description": e.description})
                    return
                self._send(200, {"ok": True, "result": result})

            def _body(self) -> dict[str, Any]:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                kind = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
                if not raw:
                    return {}
                if kind == "application/json":
                    doc = json.loads(raw)
                    if not isinstance(doc, dict):
                        raise ValueError("the JSON body must be an object")
                    return doc
                if kind == "multipart/form-data":
                    raise ValueError("multipart uploads (files) are not served by the fake")
                return dict(parse_qsl(raw.decode(), keep_blank_values=True))

            def _send(self, status: int, payload: Any) -> None:
                data = json.dumps(payload).encode()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # a poller that gave up
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)

        return Handler


# -- a person rehearsing: `minitrade telegram fake-api` --------------------------------------------

def _show(message: dict[str, Any], *, edited: bool = False) -> str:
    buttons = [b.get("text", "") for row in (message.get("reply_markup") or {}).get("inline_keyboard", [])
               for b in row]
    keys = ("  " + "  ".join(f"[{b}]" for b in buttons)) if buttons else ""
    return f"{'(edited) ' if edited else ''}bot> {message.get('text', '')}{keys}"


def chat(api: FakeBotAPI, chat_id: int, lines: Any = sys.stdin, out: Any = sys.stdout) -> None:
    """Play the person in chat `chat_id`: each line typed is sent to the bot; `[Yes]` presses that
    button on the latest message showing it; the bot's messages and edits are printed as they come."""
    printed: dict[int, dict[str, Any]] = {}
    stop = threading.Event()

    def echo() -> None:
        while not stop.is_set():
            for message in api.sent(chat_id):
                if printed.get(message["message_id"]) != message:
                    print(_show(message, edited=message["message_id"] in printed), file=out, flush=True)
                    printed[message["message_id"]] = message
            stop.wait(0.2)

    threading.Thread(target=echo, name="fake-telegram-echo", daemon=True).start()
    try:
        for raw in lines:
            line = raw.strip()
            if not line:
                continue
            pressed = re.fullmatch(r"\[(.+)\]", line)
            if pressed is None:
                api.send_text(chat_id, line)
                continue
            showing = [m for m in api.sent(chat_id) if any(
                b.get("text") == pressed.group(1) for row in (m.get("reply_markup") or {}).get("inline_keyboard", [])
                for b in row)]
            if not showing:
                print(f"no message shows a button {pressed.group(1)!r}", file=out, flush=True)
                continue
            api.press(chat_id, showing[-1]["message_id"], text=pressed.group(1))
    finally:
        stop.set()


def main(argv: list[str] | None = None) -> None:
    """Run the fake Bot API in the foreground until Ctrl-C; with --chat, type as that chat's person."""
    parser = argparse.ArgumentParser(prog="python -m minitrade.testing.telegram_api", description=main.__doc__)
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--token", default=None, help="accept only this bot token (default: any)")
    parser.add_argument("--chat", type=int, default=None, help="chat id to type as on stdin")
    args = parser.parse_args(argv)
    api = FakeBotAPI(token=args.token, port=args.port).start()
    print(f"fake Telegram Bot API on {api.url}: in minitrade.yaml, telegram: {{api_url: {api.url}, ...}}",
          flush=True)
    print(f"write as chat 42:  curl -s {api.url}/__fake/message -H 'Content-Type: application/json' "
          "-d '{\"chat_id\": 42, \"text\": \"/status\"}'", flush=True)
    print(f"read the replies:  curl -s '{api.url}/__fake/sent?chat_id=42'", flush=True)
    print(f"press a button:    curl -s {api.url}/__fake/press -H 'Content-Type: application/json' "
          "-d '{\"chat_id\": 42, \"message_id\": N, \"text\": \"Yes\"}'", flush=True)

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    try:
        if args.chat is not None:
            print(f"typing as chat {args.chat}: a line is a message, [Yes] presses a button; Ctrl-D ends",
                  flush=True)
            chat(api, args.chat)
        else:
            threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        api.stop()


if __name__ == "__main__":
    main()
