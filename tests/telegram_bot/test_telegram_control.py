"""Control from Telegram end to end: the real python-telegram-bot library, polling the fake Bot API
over a real socket, the bot on the daemon's thread, real git, DuckDB and daemon passes.

An allowed chat runs every command (a fill is recorded, suspend makes the next tick SKIPPED and
resume lets the following one run); acting commands wait for Yes; No and strangers change nothing;
every step is audited; the token is in no reply, audit row or log line."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import pytest

from minitrade.records import OrderStatus, TickStatus
from minitrade.runner.suspension import suspended
from minitrade.store import orders as order_sql
from minitrade.store.telegram_audit import history
from minitrade.testing.telegram_api import FakeBotAPI
from tests.telegram_bot.conftest import ME, NY, STRANGER, TOKEN, daemon_pass, state_store

DAY4 = datetime(2013, 1, 4, 15, 45, tzinfo=NY)
DAY7 = datetime(2013, 1, 7, 15, 45, tzinfo=NY)   # Monday


def say(api: FakeBotAPI, text: str, expect: str, chat: int = ME) -> dict:
    """Write `text` in the chat and wait for the bot's reply containing `expect`."""
    last = max([m["message_id"] for m in api.sent(chat)] + [api.send_text(chat, text)["message_id"]])
    return api.wait_for(chat, expect, after=last)


def confirm(api: FakeBotAPI, question: dict, button: str, expect: str, chat: int = ME) -> dict:
    """Press Yes or No under `question` and wait until the question shows its outcome."""
    assert [b["text"] for b in question["reply_markup"]["inline_keyboard"][0]] == ["Yes", "No"]
    api.press(chat, question["message_id"], text=button)
    return api.wait_for(chat, lambda m: m["message_id"] == question["message_id"] and expect in m["text"])


def the_order(repo):
    with state_store(repo).transaction() as con:
        (order,) = order_sql.open_orders(con, "alt")
    return order


def test_an_allowed_chat_runs_every_command_and_each_is_audited(telegram_repo, bot_api, bot, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    store = state_store(telegram_repo)
    status = say(bot_api, "/status", "minitrade status")["text"]
    assert "Applied: commit " + telegram_repo.head[:8] in status
    assert "alt: trading enabled, strict, manual; last run FINISHED 2013-01-03" in status
    assert "next 2013-01-04 15:45 EST; 1 open order(s)" in status
    assert {c["command"] for c in bot_api.commands} >= {"status", "positions", "orders", "fill", "suspend",
                                                        "resume", "ib_login"}

    order = the_order(telegram_repo)
    listed = say(bot_api, "/orders", "Open orders")["text"]
    assert order.client_id in listed and f"{order.side.value} {order.quantity:g} AAPL TOC" in listed

    question = say(bot_api, f"/fill {order.client_id} 75.5", "Record a fill of")
    assert f"→ {order.side.value} {order.quantity:g} AAPL @ 75.5 (all that remains)?" in question["text"]
    with store.transaction() as con:
        assert order_sql.fills_of(con, client_id=order.client_id) == [], "nothing before Yes"
    done = confirm(bot_api, question, "Yes", "Recorded fill")
    assert f"Recorded fill {order.client_id}#1: {order.side.value} {order.quantity:g} AAPL @ 75.5" in done["text"]
    assert "reply_markup" not in done, "the buttons are gone: a second Yes cannot be pressed"
    with store.transaction() as con:
        (fill,) = order_sql.fills_of(con, client_id=order.client_id)
        assert (fill.price, fill.quantity) == (75.5, order.quantity)
        filled = order_sql.get_order(con, order.client_id)
        assert filled is not None and filled.status is OrderStatus.FILLED

    positions = say(bot_api, "/positions", "Positions")["text"]
    assert f"AAPL {order.quantity:g} @ 75.50" in positions

    question = say(bot_api, "/suspend alt earnings tonight", "Suspend plan alt (earnings tonight)?")
    assert "alt" not in suspended(store)
    confirm(bot_api, question, "Yes", "is now suspended at 2013-01-03")
    assert suspended(store)["alt"].by == f"telegram chat {ME} (Trader)"
    skipped = daemon_pass(telegram_repo, DAY4 + timedelta(seconds=30))
    assert skipped.runs == [] and skipped.skipped == [("alt", DAY4)]

    question = say(bot_api, "/resume alt", "Resume plan alt")
    confirm(bot_api, question, "Yes", "resumed; its next scheduled run goes ahead")
    following = daemon_pass(telegram_repo, DAY7 + timedelta(seconds=30))
    assert [(r.plan, r.status) for r in following.runs] == [("alt", "FINISHED")]
    with store.transaction() as con:
        ticks = {t.scheduled_at.astimezone(NY): t.status for t in order_sql.ticks_of(con, "alt")}
        audit = history(con, ME)
    assert ticks[DAY4] is TickStatus.SKIPPED and ticks[DAY7] is TickStatus.FINISHED

    assert [(a.command, a.outcome) for a in audit] == [
        ("status", "answered"), ("orders", "answered"), ("fill", "asked"), ("fill", "done"),
        ("positions", "answered"), ("suspend", "asked"), ("suspend", "done"), ("resume", "asked"),
        ("resume", "done")]
    assert all(a.chat_id == ME and a.at.year == 2013 for a in audit)
    assert all(q["answered"] for q in bot_api.answers().values()), "every button press was answered"
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "telegram: chat 4242 fill" in logged and TOKEN not in logged
    assert TOKEN not in repr(audit) and TOKEN not in str(bot_api.sent(ME))


def test_a_stranger_changes_nothing_and_is_logged(telegram_repo, bot_api, bot, caplog) -> None:
    store = state_store(telegram_repo)
    order = the_order(telegram_repo)
    bot_api.send_text(STRANGER, "/suspend alt", first_name="Mallory")
    bot_api.send_text(STRANGER, f"/fill {order.client_id} 1")
    say(bot_api, "/status", "minitrade status")        # updates are handled in order: the stranger's are done
    assert bot_api.sent(STRANGER) == [], "a stranger gets no answer at all"
    assert suspended(store) == {}
    with store.transaction() as con:
        assert order_sql.fills_of(con, client_id=order.client_id) == []
        refused = [a for a in history(con) if a.chat_id == STRANGER]
    assert [(a.command, a.outcome, a.user_name) for a in refused] == [("suspend", "refused", "Mallory"),
                                                                     ("fill", "refused", "Mallory")]
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and r.name == "minitrade.telegram"]
    assert warned[0] == ("telegram: ignored a message from chat 6666 (Mallory), which is not in "
                         "telegram.allowed_chats")


def test_no_on_a_confirmation_changes_nothing(telegram_repo, bot_api, bot) -> None:
    store = state_store(telegram_repo)
    order = the_order(telegram_repo)
    question = say(bot_api, "/suspend alt", "Suspend plan alt?")
    confirm(bot_api, question, "No", "Not done (you said No)")
    question = say(bot_api, f"/fill {order.client_id} 75.5 5", "(10 remain)?")
    confirm(bot_api, question, "No", "Not done")
    assert suspended(store) == {}
    with store.transaction() as con:
        assert order_sql.fills_of(con, client_id=order.client_id) == []
        assert [(a.command, a.outcome) for a in history(con)] == [
            ("suspend", "asked"), ("suspend", "declined"), ("fill", "asked"), ("fill", "declined")]
    with pytest.raises(Exception, match="shows no such button"):
        bot_api.press(ME, question["message_id"], text="Yes")   # the answered question has no buttons left


@pytest.mark.parametrize(("text", "reply"), [
    pytest.param("/fill nosuch 1", "No order nosuch", id="unknown order"),
    pytest.param("/fill {order} -3", "PRICE must be a positive number, not -3", id="negative price"),
    pytest.param("/fill {order} 75 11", "more than the 10 that remain", id="more than remains"),
    pytest.param("/suspend alts", "No applied plan alts; did you mean alt?", id="did you mean"),
    pytest.param("/resume alt", "Plan alt is not suspended; nothing to do.", id="resume a running plan"),
    pytest.param("/frobnicate", "Unknown command /frobnicate", id="unknown command"),
])
def test_a_command_that_cannot_act_says_why_and_asks_nothing(telegram_repo, bot_api, bot, text, reply) -> None:
    order = the_order(telegram_repo)
    answer = say(bot_api, text.format(order=order.client_id), reply)
    assert "reply_markup" not in answer, "nothing to confirm"
    with state_store(telegram_repo).transaction() as con:
        assert order_sql.fills_of(con) == []
        outcomes = [a.outcome for a in history(con)]
    assert outcomes[-1] == "failed" and "done" not in outcomes
