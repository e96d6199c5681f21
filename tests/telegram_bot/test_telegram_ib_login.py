"""/ib_login from the phone against the fake IB gateway, through real headless Chromium: the 2FA push
is approved (or the typed code the bot asks for is given), then the held orders go out."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from minitrade.reconcile_pass import applied_snapshot
from minitrade.records import OrderStatus
from minitrade.store import orders as order_sql
from minitrade.store.telegram_audit import history
from minitrade.telegram.bot import BotThread
from minitrade.testing.ib_gateway import FakeGateway
from tests.live.conftest import AAPL_CONID
from tests.telegram_bot.conftest import DAY3, ME, TOKEN, TOKEN_ENV, add_telegram, daemon_pass, state_store
from tests.telegram_bot.test_telegram_control import confirm, say


def ib_setup(repo, api, gateway: FakeGateway, monkeypatch) -> BotThread:
    """`alt` trades through IB (the fake gateway, no session, verify_tls false as users set it); its
    first tick holds its order; the bot of the applied settings runs."""
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    monkeypatch.setenv("IB_USERNAME", "fakeuser")
    monkeypatch.setenv("IB_PASSWORD", "fakepass")
    repo.edit("minitrade.yaml", "  manual: {type: manual}", f"""  manual: {{type: manual}}
  ib:
    type: ib
    username: ${{IB_USERNAME}}
    password: ${{IB_PASSWORD}}
    gateway: {{url: "{gateway.url}", verify_tls: false}}""")
    repo.edit("plans/alt.yaml", "broker: manual", "broker: ib")
    repo.edit("plans/alt.yaml", "universe: [AAPL]", f"universe: {{AAPL: {{conid: {AAPL_CONID}}}}}")
    add_telegram(repo, api)
    daemon_pass(repo, DAY3 + timedelta(seconds=30))
    with state_store(repo).transaction() as con:
        assert [o.status for o in order_sql.orders_of(con, "alt")] == [OrderStatus.HELD]
    snapshot = applied_snapshot(repo.path, state_store(repo))
    assert snapshot is not None and snapshot.settings.telegram is not None
    bot = BotThread(repo.path, state_store(repo), Path(snapshot.state_dir))
    bot.watch(snapshot.settings.telegram)
    return bot


@pytest.fixture
def gateway(start_gateway) -> FakeGateway:
    gw = start_gateway("no_session", DAY3)
    gw.two_factor = "push"
    return gw


@pytest.mark.chromium
@pytest.mark.slow
def test_ib_login_from_the_phone_approves_the_push_and_sends_held_orders(live_repo, bot_api, gateway,
                                                                         monkeypatch) -> None:
    bot = ib_setup(live_repo, bot_api, gateway, monkeypatch)
    try:
        question = say(bot_api, "/ib_login", "Log IB account ib in through its gateway")
        assert gateway.state == "no_session", "nothing before Yes"
        confirm(bot_api, question, "Yes", "working on it")
        bot_api.wait_for(ME, "approve the IB Key notification on your phone", timeout=90)
        assert gateway.approve_2fa()
        done = bot_api.wait_for(ME, lambda m: m["message_id"] == question["message_id"] and "IB account ib:" in m["text"],
                                timeout=90)
        assert "IB account ib: authenticated." in done["text"]
        assert "1 held order(s) after the login:" in done["text"] and ": SUBMITTED" in done["text"]
    finally:
        bot.stop()
    with state_store(live_repo).transaction() as con:
        assert [o.status for o in order_sql.orders_of(con, "alt")] == [OrderStatus.SUBMITTED]
        assert [(a.command, a.outcome) for a in history(con, ME)] == [("ib_login", "asked"), ("ib_login", "done")]
    assert len(gateway.book.orders) == 1


@pytest.mark.chromium
@pytest.mark.slow
def test_ib_login_asks_for_a_typed_code_and_types_the_reply_into_the_page(live_repo, bot_api, gateway,
                                                                          monkeypatch) -> None:
    gateway.two_factor = "code"
    bot = ib_setup(live_repo, bot_api, gateway, monkeypatch)
    try:
        question = say(bot_api, "/ib_login ib", "Log IB account")
        confirm(bot_api, question, "Yes", "working on it")
        bot_api.wait_for(ME, "IB asks for the security code it sent you", timeout=90)
        say(bot_api, gateway.twofa_code, "Code received")
        done = bot_api.wait_for(ME, lambda m: m["message_id"] == question["message_id"] and "IB account ib:" in m["text"],
                                timeout=90)
        assert "IB account ib: authenticated." in done["text"] and ": SUBMITTED" in done["text"]
    finally:
        bot.stop()
    assert gateway.codes == [gateway.twofa_code]
    with state_store(live_repo).transaction() as con:
        audit = history(con, ME)
    assert ("ib_code", "answered") in [(a.command, a.outcome) for a in audit]
    assert gateway.twofa_code not in repr(audit), "the code is a credential: never audited"
