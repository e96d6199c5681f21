"""docs/notifiers.md: its example notifiers validate, and Apprise takes each URL once resolved (offline)."""

from __future__ import annotations

import re
from pathlib import Path

import apprise

from minitrade.credentials import resolve_secret
from minitrade.loader import load_worktree

DOC = Path(__file__).resolve().parents[2] / "docs" / "notifiers.md"
# Values shaped like the real ones: a Telegram bot token, a chat id, Mailjet's 32-hex-digit keys.
ENV = {"TELEGRAM_BOT_TOKEN": "123456789:AAHbcdefghijklmnopqrstuvwxyzABCDEFG", "TELEGRAM_CHAT_ID": "-1001234567890",
       "MAILJET_API_KEY": "0123456789abcdef0123456789abcdef", "MAILJET_SECRET_KEY": "fedcba9876543210fedcba9876543210"}


def test_the_documented_notifiers_validate_and_apprise_takes_their_urls(tmp_path: Path) -> None:
    [example] = re.findall(r"```yaml\n(.*?)```", DOC.read_text(), re.DOTALL)
    (tmp_path / "minitrade.yaml").write_text(example)
    (tmp_path / "plans").mkdir()
    notifiers = load_worktree(tmp_path).settings.notifiers  # references only: no literal secret is refused
    assert sorted(notifiers) == ["mail", "phone"]
    urls = {name: spec.urls for name, spec in notifiers.items()}
    assert urls["phone"] == ["tgram://${TELEGRAM_BOT_TOKEN}/${TELEGRAM_CHAT_ID}"]
    assert urls["mail"][0].startswith("mailtos://${MAILJET_API_KEY}:${MAILJET_SECRET_KEY}@in-v3.mailjet.com:587?")
    for name, listed in urls.items():
        for url in listed:
            resolved = resolve_secret(url, env=ENV).get_secret_value()
            assert apprise.Apprise().add(resolved) is True, name
