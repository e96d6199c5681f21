"""The fake Bot API behaves as Telegram does where a bot can go wrong, over a real socket: the
answers python-telegram-bot and plain HTTP clients get are the real service's."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest
import requests
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup
from telegram.error import BadRequest, Conflict, InvalidToken

from minitrade.testing.telegram_api import FakeBotAPI
from minitrade.testing.telegram_wire import ApiError, command_entities
from tests.telegram_bot.conftest import TOKEN


def call(api: FakeBotAPI, method: str, token: str = TOKEN, **params: object) -> dict:
    return requests.post(f"{api.url}/bot{token}/{method}", json=params, timeout=30).json()


def ptb(api: FakeBotAPI, token: str = TOKEN) -> Bot:
    return Bot(token, base_url=f"{api.url}/bot{{token}}", base_file_url=f"{api.url}/file/bot{{token}}")


def test_get_updates_long_polls_and_an_offset_confirms(bot_api: FakeBotAPI) -> None:
    threading.Timer(0.2, lambda: bot_api.send_text(42, "/status")).start()
    first = call(bot_api, "getUpdates", timeout=20)          # returns when the message arrives
    (update,) = first["result"]
    assert first["ok"] and update["message"]["text"] == "/status"
    assert update["message"]["entities"] == [{"type": "bot_command", "offset": 0, "length": 7}]
    again = call(bot_api, "getUpdates", timeout=0)
    assert again["result"] == [update], "not confirmed yet: delivered again"
    assert call(bot_api, "getUpdates", offset=update["update_id"] + 1, timeout=0)["result"] == []
    assert bot_api.pending_updates() == 0


def test_a_second_poller_terminates_the_first_with_409(bot_api: FakeBotAPI) -> None:
    answers: list[dict] = []
    first = threading.Thread(target=lambda: answers.append(call(bot_api, "getUpdates", timeout=20)))
    first.start()
    while bot_api.calls.count("getUpdates") < 1:
        threading.Event().wait(0.02)
    assert call(bot_api, "getUpdates", timeout=0)["result"] == []
    first.join(30)
    assert answers == [{"ok": False, "error_code": 409, "description": "Conflict: terminated by other getUpdates "
                        "request; make sure that only one bot instance is running"}]

    async def two_bots() -> None:
        async with ptb(bot_api) as first_bot, ptb(bot_api) as second_bot:
            polls = bot_api.calls.count("getUpdates")
            poll = asyncio.create_task(first_bot.get_updates(timeout=20))
            while bot_api.calls.count("getUpdates") == polls:
                await asyncio.sleep(0.02)
            await second_bot.get_updates(timeout=0)
            with pytest.raises(Conflict):
                await poll
    asyncio.run(two_bots())


def test_command_offsets_count_utf16_units_as_telegram_does() -> None:
    assert command_entities("😀 €5 /fill@minitrade_bot x") == [{"type": "bot_command", "offset": 6, "length": 19}]
    assert command_entities("see a/b and /orders") == [{"type": "bot_command", "offset": 12, "length": 7}]


def test_what_telegram_refuses_the_fake_refuses(bot_api: FakeBotAPI) -> None:
    assert call(bot_api, "sendMessage", chat_id=42, text="hi")["description"] == "Bad Request: chat not found"
    bot_api.send_text(42, "hello")
    bad_html = call(bot_api, "sendMessage", chat_id=42, text="a <b>bold", parse_mode="HTML")
    assert bad_html["description"].startswith("Bad Request: can't parse entities")
    assert call(bot_api, "sendMessage", chat_id=42, text="1 < 2", parse_mode="HTML")["error_code"] == 400
    assert call(bot_api, "sendMessage", chat_id=42, text="x" * 4097)["description"] == "Bad Request: message is too long"
    long_data = {"inline_keyboard": [[{"text": "Yes", "callback_data": "y" * 65}]]}
    assert call(bot_api, "sendMessage", chat_id=42, text="?", reply_markup=long_data)["description"] == \
        "Bad Request: BUTTON_DATA_INVALID"
    sent = call(bot_api, "sendMessage", chat_id=42, text="<b>1 &lt; 2</b>", parse_mode="HTML")["result"]
    assert sent["text"] == "1 < 2"
    same = call(bot_api, "editMessageText", chat_id=42, message_id=sent["message_id"], text="1 < 2")
    assert same["description"].startswith("Bad Request: message is not modified")
    assert call(bot_api, "getMe", token="1:wrong") == {"ok": False, "error_code": 401, "description": "Unauthorized"}
    assert call(bot_api, "noSuchMethod")["error_code"] == 404


def test_buttons_are_pressed_on_screen_only_and_answered_once(bot_api: FakeBotAPI) -> None:
    bot_api.send_text(42, "hello")

    async def ask() -> dict:
        async with ptb(bot_api) as bot:
            markup = InlineKeyboardMarkup([[InlineKeyboardButton("Yes", callback_data="yes:1")]])
            message = await bot.send_message(42, "Sure?", reply_markup=markup)
            return json.loads(message.to_json())
    question = asyncio.run(ask())
    query_id = bot_api.press(42, question["message_id"], text="Yes")
    update = call(bot_api, "getUpdates", timeout=0)["result"][-1]
    assert update["callback_query"]["data"] == "yes:1" and update["callback_query"]["id"] == query_id
    assert update["callback_query"]["message"]["message_id"] == question["message_id"]
    assert call(bot_api, "answerCallbackQuery", callback_query_id=query_id)["result"] is True
    assert call(bot_api, "answerCallbackQuery", callback_query_id=query_id)["error_code"] == 400
    edited = call(bot_api, "editMessageText", chat_id=42, message_id=question["message_id"], text="Done")
    assert "reply_markup" not in edited["result"], "an edit without reply_markup drops the keyboard"
    with pytest.raises(ApiError, match="shows no such button"):
        bot_api.press(42, question["message_id"], text="Yes")

    async def refused() -> None:
        async with ptb(bot_api) as bot:
            with pytest.raises(BadRequest, match="(?i)message is not modified"):
                await bot.edit_message_text("Done", chat_id=42, message_id=question["message_id"])
        with pytest.raises(InvalidToken):
            async with ptb(bot_api, token="1:wrong"):
                pass
    asyncio.run(refused())
