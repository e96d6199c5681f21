"""Fixtures of the Telegram tests: the fake Bot API on a real socket, a trading repo whose applied
settings have a `telegram:` section pointing at it, and the bot served as the daemon serves it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from minitrade.reconcile_pass import applied_snapshot, reconcile_once
from minitrade.store import Store
from minitrade.telegram.bot import BotThread
from minitrade.testing.telegram_api import FakeBotAPI
from tests.conftest import present
from tests.live.conftest import live_repo, start_gateway  # noqa: F401

TOKEN = "7000000001:AAF-fake-secret-token-do-not-log"
TOKEN_ENV = "MT_TEST_TELEGRAM_TOKEN"
ME, STRANGER = 4242, 6666
NY = ZoneInfo("America/New_York")
DAY3 = datetime(2013, 1, 3, 15, 45, tzinfo=NY)


def state_store(repo) -> Store:
    return Store(repo.path / "state" / "minitrade.duckdb")


def daemon_pass(repo, at: datetime):
    """One daemon pass with the clock (and the machine's present) at `at`."""
    with present(at):
        return reconcile_once(repo.path, state_store(repo), now=lambda: at)


@pytest.fixture
def bot_api() -> Iterator[FakeBotAPI]:
    with FakeBotAPI(token=TOKEN) as api:
        yield api


def add_telegram(repo, api: FakeBotAPI, chats: tuple[int, ...] = (ME,)) -> str:
    text = repo.read("minitrade.yaml") + (f"telegram:\n  bot_token: ${{{TOKEN_ENV}}}\n  allowed_chats: "
                                          f"[{', '.join(map(str, chats))}]\n  api_url: {api.url}\n")
    repo.write("minitrade.yaml", text)
    return repo.commit("control from telegram")


@pytest.fixture
def telegram_repo(live_repo, bot_api, monkeypatch):  # noqa: F811
    """The live repo with a telegram section, applied by a first daemon pass on 2013-01-03 (the `alt`
    plan's first tick runs and orders)."""
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    add_telegram(live_repo, bot_api)
    result = daemon_pass(live_repo, DAY3 + timedelta(seconds=30))
    assert result.outcome == "applied" and [r.plan for r in result.runs] == ["alt"]
    return live_repo


@pytest.fixture
def bot(telegram_repo) -> Iterator[BotThread]:
    """The bot of the applied settings, on the daemon's thread (what `minitrade daemon` starts)."""
    store = state_store(telegram_repo)
    snapshot = applied_snapshot(telegram_repo.path, store)
    assert snapshot is not None and snapshot.settings.telegram is not None
    thread = BotThread(telegram_repo.path, store, Path(snapshot.state_dir))
    thread.watch(snapshot.settings.telegram)
    yield thread
    thread.stop()
