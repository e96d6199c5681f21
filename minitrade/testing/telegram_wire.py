"""Telegram's wire rules the fake Bot API enforces: limits, command entities in UTF-16 units, the
HTML subset of `parse_mode: HTML`, and how form values are typed. Imports nothing from minitrade."""

from __future__ import annotations

import json
import re
from typing import Any

MAX_TEXT = 4096                # UTF-16 code units of a message text
MAX_CALLBACK_DATA = 64         # bytes of a button's callback_data
MAX_POLL_TIMEOUT = 50.0        # the real service caps long polling near this
HTML_TAGS = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "code", "pre", "a", "tg-spoiler",
             "span", "blockquote", "tg-emoji"}
JSON_FIELDS = {"reply_markup", "allowed_updates", "commands", "scope", "entities", "link_preview_options",
               "reply_parameters"}
INT_FIELDS = {"chat_id", "message_id", "offset", "limit", "timeout", "cache_time", "user_id"}
BOOL_FIELDS = {"show_alert", "drop_pending_updates", "disable_notification", "protect_content"}
_COMMAND = re.compile(r"(?<![\w/])/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{3,32})?")
_ENTITY = re.compile(r"&(lt|gt|amp|quot|#[0-9]+|#x[0-9a-fA-F]+);")
_TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)((?:\s+[a-zA-Z-]+(?:=\"[^\"]*\"|='[^']*')?)*)\s*>")
_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}


class ApiError(Exception):
    """An answer `{"ok": false, ...}` with the real service's code and description."""

    def __init__(self, code: int, description: str) -> None:
        super().__init__(description)
        self.code, self.description = code, description


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units: how Telegram counts offsets, lengths and limits."""
    return len(text.encode("utf-16-le")) // 2


def command_entities(text: str) -> list[dict[str, Any]]:
    """The `bot_command` entities Telegram attaches to a user's text (offsets in UTF-16 units)."""
    return [{"type": "bot_command", "offset": utf16_len(text[:m.start()]), "length": utf16_len(m.group(0))}
            for m in _COMMAND.finditer(text)]


def parse_html(text: str) -> str:
    """The plain text of an HTML-formatted message; ApiError where Telegram's parser refuses it."""
    out: list[str] = []
    stack: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "<":
            tag = _TAG.match(text, i)
            if tag is None:
                raise ApiError(400, f"Bad Request: can't parse entities: Unexpected character '<' at byte offset "
                                    f"{len(text[:i].encode())}")
            closing, name = tag.group(1) == "/", tag.group(2).lower()
            if name not in HTML_TAGS:
                raise ApiError(400, f"Bad Request: can't parse entities: Unsupported start tag \"{name}\" at byte "
                                    f"offset {len(text[:i].encode())}")
            if closing:
                if not stack or stack[-1] != name:
                    raise ApiError(400, f"Bad Request: can't parse entities: Unmatched end tag at byte offset "
                                        f"{len(text[:i].encode())}, expected \"</{stack[-1] if stack else ''}>\", "
                                        f"found \"</{name}>\"")
                stack.pop()
            else:
                stack.append(name)
            i = tag.end()
        elif ch == "&":
            entity = _ENTITY.match(text, i)
            if entity is None:
                raise ApiError(400, "Bad Request: can't parse entities: Character '&' is reserved and must be "
                                    f"escaped at byte offset {len(text[:i].encode())}")
            code = entity.group(1)
            out.append(_NAMED.get(code) or chr(int(code[2:], 16) if code.startswith("#x") else int(code[1:])))
            i = entity.end()
        else:
            out.append(ch)
            i += 1
    if stack:
        raise ApiError(400, f"Bad Request: can't parse entities: Can't find end tag corresponding to start tag "
                            f"\"{stack[-1]}\"")
    return "".join(out)


def typed_params(params: dict[str, Any]) -> dict[str, Any]:
    """Form values as the service reads them: objects JSON-decoded, numbers and booleans parsed."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, str) and key in JSON_FIELDS:
            try:
                value = json.loads(value)
            except ValueError:
                raise ApiError(400, f"Bad Request: can't parse {key} JSON object") from None
        elif isinstance(value, str) and key in BOOL_FIELDS:
            value = value.lower() in ("true", "1")
        elif isinstance(value, str) and key in INT_FIELDS and re.fullmatch(r"-?\d+", value):
            value = int(value)
        out[key] = value
    return out
