"""Notifications through Apprise: `Notifier` sends events, `messages` words them, `notifier_check` tests them.

    from minitrade.notify import Notifier, messages
    Notifier.from_settings(settings, store=store).notify(messages.run_failed("spy", str(error)))
"""

from __future__ import annotations

from minitrade.notify import messages
from minitrade.notify.check import notifier_check
from minitrade.notify.messages import Message
from minitrade.notify.sender import Notifier, Outcome, message_digest, settings_secrets

__all__ = ["Message", "Notifier", "Outcome", "message_digest", "messages", "notifier_check",
           "settings_secrets"]
