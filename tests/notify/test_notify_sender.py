"""Notifier end to end: Apprise's real json:// sender posting to a local sink, audit rows in DuckDB."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta

import pytest

from minitrade.errors import ConfigError
from minitrade.models import NotifierSpec, OrderType, Settings
from minitrade.notify import Notifier, message_digest, messages
from minitrade.records import Order, OrderStatus, Side
from minitrade.testing.apprise_sink import closed_port_url
from tests.notify.conftest import table_rows

SECRET = "tok-9f3e7c21b84d"


def order(ticker: str, side: Side = Side.BUY, qty: float = 10) -> Order:
    return Order(client_id=f"spy-20261125-1545-{ticker}-0", plan="spy", run_id="r1",
                 trading_day=date(2026, 11, 25), ticker=ticker, side=side, quantity=qty,
                 order_type=OrderType.TOC, broker="ib-paper", status=OrderStatus.HELD)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 25, 15, 45, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def test_event_goes_only_to_notifiers_subscribed_to_it(sink, store):
    notifier = Notifier({
        "phone": NotifierSpec(urls=[sink.url("phone")], events=["run.failed", "orders.pending"]),
        "everything": NotifierSpec(urls=[sink.url("all")]),
    }, store=store)

    failed = notifier.notify(messages.run_failed("spy", "DataError: yahoo/SPY: timed out", run_id="r1"))
    finished = notifier.notify(messages.run_finished("spy", run_id="r1", stats={"return_pct": 12.34}))

    assert [(o.notifier, o.outcome) for o in failed] == [("phone", "sent"), ("everything", "sent")]
    assert [(o.notifier, o.outcome) for o in finished] == [("everything", "sent")]
    by_path = [(p.path, p.title) for p in sink.posts]
    assert by_path == [("/phone", "spy: run FAILED"), ("/all", "spy: run FAILED"),
                       ("/all", "spy: run finished")]
    assert sink.posts[0].type == "failure"
    assert "DataError: yahoo/SPY: timed out" in sink.posts[0].message
    assert "minitrade run spy" in sink.posts[0].message
    assert "Return +12.3%" in sink.posts[2].message


def test_held_orders_message_lists_orders_and_says_how_to_log_in(sink):
    notifier = Notifier({"phone": NotifierSpec(urls=[sink.url()])})
    held = [order("SPY"), order("QQQ", Side.SELL, 5)]

    notifier.notify(messages.orders_pending("spy", held, broker="ib-paper"))

    (post,) = sink.posts
    assert post.title == "spy: 2 order(s) HELD"
    assert "- BUY 10 SPY TOC\n- SELL 5 QQQ TOC" in post.message
    assert "minitrade ib login" in post.message
    assert post.type == "warning"


def test_secret_in_url_is_used_but_never_appears_in_bodies_logs_or_table(sink, store, monkeypatch, caplog):
    monkeypatch.setenv("MT_TEST_NOTIFY_TOKEN", SECRET)
    caplog.set_level(logging.DEBUG)
    dead = closed_port_url("hook/${MT_TEST_NOTIFY_TOKEN}")
    notifier = Notifier({
        "phone": NotifierSpec(urls=[sink.url("hook/${MT_TEST_NOTIFY_TOKEN}")]),
        "dead": NotifierSpec(urls=[dead]),
    }, store=store)

    # An error text that happens to carry the secret (a URL in an exception) must be redacted too.
    outcomes = notifier.notify(messages.run_failed("spy", f"POST https://x/{SECRET} failed", run_id="r1"))

    assert [o.outcome for o in outcomes] == ["sent", "failed"]
    (post,) = sink.posts
    assert post.path == f"/hook/{SECRET}"  # the reference was resolved for the request itself
    assert SECRET not in post.body.decode()
    assert "POST https://x/*** failed" in post.message
    assert "JSON POST URL: http://127.0.0.1" in caplog.text  # Apprise logs the URL it posts to ...
    assert SECRET not in caplog.text         # ... and redacted
    assert SECRET not in repr(table_rows(store))
    assert SECRET not in (outcomes[1].error or "")
    assert SECRET not in repr(notifier)


def test_same_message_is_not_sent_twice_within_the_window(sink, store):
    clock = Clock()
    notifier = Notifier({"phone": NotifierSpec(urls=[sink.url()], dedup_minutes=10)}, store=store,
                        clock=clock)
    message = messages.orders_pending("spy", [order("SPY")], broker="ib-paper")

    first = notifier.notify(message)
    clock.now += timedelta(minutes=9)
    second = notifier.notify(message)
    other = notifier.notify(messages.orders_pending("spy", [order("QQQ")], broker="ib-paper"))
    clock.now += timedelta(minutes=2)
    third = notifier.notify(message)

    assert [o[0].outcome for o in (first, second, other, third)] == ["sent", "suppressed", "sent", "sent"]
    assert len(sink.posts) == 3
    assert [(r[1], r[2], r[6]) for r in table_rows(store)] == [
        ("phone", "orders.pending", "sent"), ("phone", "orders.pending", "suppressed"),
        ("phone", "orders.pending", "sent"), ("phone", "orders.pending", "sent")]


def twin(client_id: str) -> Order:
    """An order whose notice reads exactly like `order("SPY")`'s, but a different order."""
    return Order(client_id=client_id, plan="spy", run_id="r2", trading_day=date(2026, 11, 25), ticker="SPY",
                 side=Side.BUY, quantity=10, order_type=OrderType.TOC, broker="ib-paper", status=OrderStatus.HELD)


@pytest.mark.parametrize("build", [
    pytest.param(lambda o: messages.orders_generated("spy", [o], trading_enabled=True), id="generated"),
    pytest.param(lambda o: messages.orders_pending("spy", [o], broker="ib-paper"), id="pending"),
    pytest.param(lambda o: messages.orders_submitted("spy", [o], broker="ib-paper"), id="submitted"),
])
def test_a_new_order_is_never_suppressed_even_when_its_notice_reads_the_same(sink, store, build):
    clock = Clock()
    notifier = Notifier({"phone": NotifierSpec(urls=[sink.url()], dedup_minutes=10)}, store=store,
                        clock=clock)
    first, second = build(order("SPY")), build(twin("spy-20261125-1555-SPY-0"))
    assert (first.title, first.body) == (second.title, second.body)  # word for word alike

    sent_first = notifier.notify(first)
    clock.now += timedelta(minutes=10)
    sent_second = notifier.notify(second)

    assert [o.outcome for o in (*sent_first, *sent_second)] == ["sent", "sent"]
    assert len(sink.posts) == 2
    assert [r[3] for r in table_rows(store)] == [message_digest(first.event, first.key),
                                                 message_digest(second.event, second.key)]


def test_the_same_runs_failure_reported_twice_is_sent_once(sink, store):
    clock = Clock()
    notifier = Notifier({"phone": NotifierSpec(urls=[sink.url()], dedup_minutes=10)}, store=store,
                        clock=clock)

    first = notifier.notify(messages.run_failed("spy", "DataError: yahoo/SPY: timed out", run_id="spy-r1"))
    clock.now += timedelta(minutes=3)
    # the same run reported again (e.g. its failure seen twice), even worded differently: one event
    again = notifier.notify(messages.run_failed("spy", "DataError: yahoo/SPY: 503", run_id="spy-r1"))
    # another run failing with the very same text is another event
    other = notifier.notify(messages.run_failed("spy", "DataError: yahoo/SPY: timed out", run_id="spy-r2"))

    assert [o[0].outcome for o in (first, again, other)] == ["sent", "suppressed", "sent"]
    assert len(sink.posts) == 2


@pytest.mark.parametrize(("first", "second", "same"), [
    pytest.param(messages.config_rejected("feedbeef1234", "plans/a.yaml:3: cash: must be > 0"),
                 messages.config_rejected("feedbeef1234", "plans/a.yaml:3: cash: must be > 0\n(again)"),
                 True, id="rejected-same-commit"),
    pytest.param(messages.config_rejected("feedbeef1234", "plans/a.yaml:3: cash: must be > 0"),
                 messages.config_rejected("0badc0de5678", "plans/a.yaml:3: cash: must be > 0"),
                 False, id="rejected-other-commit"),
    pytest.param(messages.broker_login_needed("ib", plans=["spy"], held=[order("SPY")]),
                 messages.broker_login_needed("ib", plans=["spy"], held=[twin("spy-20261125-1555-SPY-0")]),
                 False, id="login-needed-new-held-orders"),
    pytest.param(messages.calendar_ending("XNYS", date(2026, 12, 31), today=date(2026, 11, 25)),
                 messages.calendar_ending("XNYS", date(2026, 12, 31), today=date(2026, 11, 25)),
                 True, id="calendar-same-day"),
    pytest.param(messages.calendar_ending("XNYS", date(2026, 12, 31), today=date(2026, 11, 25)),
                 messages.calendar_ending("XSHG", date(2026, 12, 31), today=date(2026, 11, 25)),
                 False, id="calendar-other-calendar"),
])
def test_events_without_a_run_are_keyed_by_their_own_identity(sink, store, first, second, same):
    notifier = Notifier({"phone": NotifierSpec(urls=[sink.url()], dedup_minutes=10)}, store=store,
                        clock=Clock())
    notifier.notify(first)
    (outcome,) = notifier.notify(second)
    assert outcome.outcome == ("suppressed" if same else "sent")


def test_dedup_window_holds_across_notifier_instances_through_the_store(sink, store):
    spec = {"phone": NotifierSpec(urls=[sink.url()])}
    message = messages.daemon_started("abc1234def", plans=3)

    Notifier(spec, store=store).notify(message)
    again = Notifier(spec, store=store).notify(message)

    assert again[0].outcome == "suppressed"
    assert len(sink.posts) == 1


def test_dead_endpoint_is_recorded_and_does_not_break_the_caller(sink, store, caplog):
    notifier = Notifier({"dead": NotifierSpec(urls=[closed_port_url("x")]),
                         "phone": NotifierSpec(urls=[sink.url()])}, store=store)

    outcomes = notifier.notify(messages.run_finished("spy", run_id="r1", stats={}))
    retried = notifier.notify(messages.run_finished("spy", run_id="r1", stats={}))

    dead, phone = outcomes
    assert (dead.outcome, phone.outcome) == ("failed", "sent")
    assert "connection error" in (dead.error or "").lower()
    assert not dead.ok
    assert retried[0].outcome == "failed"  # a failure is retried next time, not deduplicated
    rows = table_rows(store)
    assert [(r[1], r[6]) for r in rows] == [("dead", "failed"), ("phone", "sent"),
                                            ("dead", "failed"), ("phone", "suppressed")]
    assert "connection error" in rows[0][7].lower()
    assert "notifier dead: run.finished not delivered" in caplog.text


def test_endpoint_answering_500_fails_and_recovers(sink, store):
    notifier = Notifier({"phone": NotifierSpec(urls=[sink.url()], dedup_minutes=0)}, store=store)
    sink.fail(500)
    failed = notifier.notify(messages.daemon_stopped("SIGTERM"))
    sink.recover()
    sent = notifier.notify(messages.daemon_stopped("SIGTERM"))

    assert (failed[0].outcome, sent[0].outcome) == ("failed", "sent")
    assert len(sink.posts) == 2


def test_unset_secret_fails_only_that_notifier(sink, monkeypatch):
    monkeypatch.delenv("MT_TEST_UNSET_TOKEN", raising=False)
    notifier = Notifier({"broken": NotifierSpec(urls=["json://127.0.0.1/${MT_TEST_UNSET_TOKEN}"]),
                         "phone": NotifierSpec(urls=[sink.url()])})

    broken, phone = notifier.send("config.applied", "config applied", "Commit abc applied.",
                                  key="commit:abc")

    assert broken.outcome == "failed"
    assert "MT_TEST_UNSET_TOKEN" in (broken.error or "") and "not set" in (broken.error or "")
    assert phone.outcome == "sent"


def test_unknown_url_scheme_is_a_failure_naming_the_scheme():
    notifier = Notifier({"mail": NotifierSpec(urls=["mailjet://key:secret@example.com"])})

    (outcome,) = notifier.send("run.failed", "t", "b", key="run:r1")

    assert outcome.outcome == "failed"
    assert "'mailjet'" in (outcome.error or "")


def test_send_test_ignores_event_filter_and_dedup(sink, store):
    notifier = Notifier({"phone": NotifierSpec(urls=[sink.url()], events=["run.failed"])}, store=store)

    first, second = notifier.send_test("phone"), notifier.send_test("phone")

    assert (first.outcome, second.outcome) == ("sent", "sent")
    assert sink.posts[0].title == "minitrade test: phone"
    assert "notifier phone works" in sink.posts[0].message
    with pytest.raises(ConfigError, match="no notifier named 'tablet'"):
        notifier.send_test("tablet")


def test_broker_passwords_are_redacted_from_messages(sink, monkeypatch):
    monkeypatch.setenv("MT_TEST_IB_PASSWORD", "hunter2-ib-pass")
    settings = Settings.model_validate({
        "brokers": {"ib": {"type": "ib", "username": "${MT_TEST_IB_USER}", "password": "${MT_TEST_IB_PASSWORD}"}},
        "notifiers": {"phone": {"urls": [sink.url()]}},
    })
    notifier = Notifier.from_settings(settings)

    notifier.notify(messages.run_failed("spy", "login failed for password hunter2-ib-pass", run_id="r1"))

    assert "hunter2-ib-pass" not in sink.posts[0].body.decode()


def test_an_unknown_event_name_is_a_caller_bug_not_a_silent_no_op(sink):
    notifier = Notifier({"phone": NotifierSpec(urls=[sink.url()])})
    with pytest.raises(ValueError, match="unknown notification event 'orders.held'"):
        notifier.send("orders.held", "t", "b", key="orders:c1")
    assert sink.posts == []
