"""The `apply` check for notifiers: every new or changed notifier must deliver a test message."""

from __future__ import annotations

from typing import TYPE_CHECKING

from minitrade.errors import ConfigError
from minitrade.notify.sender import Notifier

if TYPE_CHECKING:
    from minitrade.loader import Snapshot


def notifier_check(snapshot: Snapshot, changed: set[tuple[str, str]]) -> list[str]:
    """Send a test message through each new or changed notifier; one error string per failure.

    Nothing is recorded in the store: `apply` records nothing unless every check passes.
    """
    names = sorted(name for kind, name in changed
                   if kind == "notifier" and name in snapshot.settings.notifiers)
    if not names:
        return []
    notifier = Notifier.from_settings(snapshot.settings)
    commit = (snapshot.commit or "working tree")[:12]
    errors: list[str] = []
    for name in names:
        try:
            outcome = notifier.send_test(name, context=f"Sent by `minitrade apply` for {commit}.")
        except ConfigError as e:
            errors.append(f"notifier {name}: {e}")
            continue
        if not outcome.ok:
            errors.append(f"notifier {name}: the test message was not delivered: {outcome.error}")
    return errors
