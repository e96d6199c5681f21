"""The `apply` check: every new or changed notifier must deliver a test message."""

from __future__ import annotations

from minitrade.loader import Snapshot
from minitrade.models import Settings
from minitrade.notify import notifier_check
from minitrade.testing.apprise_sink import closed_port_url


def snapshot(tmp_path, notifiers) -> Snapshot:
    settings = Settings.model_validate({"notifiers": notifiers})
    return Snapshot(root=tmp_path, settings=settings, plans={}, plan_files={}, strategies={},
                    commit="c0ffee1234567890")


def test_changed_notifiers_get_a_test_message_and_failures_are_reported(tmp_path, sink):
    snap = snapshot(tmp_path, {"phone": {"urls": [sink.url()]},
                               "dead": {"urls": [closed_port_url()]},
                               "unchanged": {"urls": [sink.url("unchanged")]}})

    errors = notifier_check(snap, {("notifier", "phone"), ("notifier", "dead"), ("plan", "spy")})

    assert len(errors) == 1 and errors[0].startswith("notifier dead: the test message was not delivered")
    assert [p.path for p in sink.posts] == ["/"]
    assert "c0ffee123456" in sink.posts[0].message
    assert not (tmp_path / "state").exists()  # apply records nothing while checking


def test_no_changed_notifier_means_nothing_is_sent(tmp_path, sink):
    snap = snapshot(tmp_path, {"phone": {"urls": [sink.url()]}})
    assert notifier_check(snap, {("plan", "spy")}) == []
    assert sink.posts == []
