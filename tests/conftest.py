"""Shared fixtures: isolated git identity, and real trading repos (git init in tmp_path)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import pytest

from minitrade.browser import find_browser
from minitrade.errors import BrowserMissing

ROOT = Path(__file__).resolve().parents[1]


def pytest_runtest_setup(item: pytest.Item) -> None:
    """A test marked `chromium` is skipped, naming what is missing, on a machine without a browser."""
    if item.get_closest_marker("chromium") is None:
        return
    try:
        find_browser()
    except BrowserMissing as e:
        pytest.skip(f"no browser: {e}")


@pytest.fixture(autouse=True)
def isolated_git(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Every test gets its own git identity and no global/system git config."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(home / ".gitconfig"))
    for who in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{who}_NAME", "Test Trader")
        monkeypatch.setenv(f"GIT_{who}_EMAIL", "trader@example.invalid")
    monkeypatch.delenv("MINITRADE_REPO", raising=False)
    monkeypatch.delenv(NOW_ENV, raising=False)


# minitrade trades only at the real present; a past `--at` is a rehearsal. Tests of the live path
# make the machine's clock read the tick's instant, as `faketime` would (minitrade.clock honours it).
NOW_ENV = "MINITRADE_NOW"


def present_env(moment: datetime | str) -> dict[str, str]:
    """Environment in which minitrade's clock reads `moment` (for CliRunner and subprocesses)."""
    return {NOW_ENV: moment if isinstance(moment, str) else moment.isoformat()}


def at_own_present(args: Sequence[str]) -> dict[str, str]:
    """The environment of a command whose `--at` is the present: the clock reads that instant."""
    items = list(args)
    return present_env(items[items.index("--at") + 1]) if "--at" in items else {}


@contextmanager
def present(moment: datetime) -> Iterator[None]:
    """In this process, minitrade's clock reads `moment` (in-process daemon passes of the live path)."""
    before = os.environ.get(NOW_ENV)
    os.environ[NOW_ENV] = moment.isoformat()
    try:
        yield
    finally:
        if before is None:
            del os.environ[NOW_ENV]
        else:
            os.environ[NOW_ENV] = before


class TradingRepo:
    """A real git repository holding a trading repo, with small editing helpers."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def git(self, *args: str) -> str:
        done = subprocess.run(["git", "-C", str(self.path), *args], capture_output=True, text=True, check=True)
        return done.stdout.strip()

    def write(self, rel: str, text: str | bytes) -> Path:
        target = self.path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            target.write_bytes(text)
        else:
            target.write_text(text, encoding="utf-8")
        return target

    def read(self, rel: str) -> str:
        return (self.path / rel).read_text(encoding="utf-8")

    def edit(self, rel: str, old: str, new: str) -> None:
        text = self.read(rel)
        assert old in text, f"{old!r} not in {rel}"
        self.write(rel, text.replace(old, new, 1))

    def remove(self, rel: str) -> None:
        (self.path / rel).unlink()

    def commit(self, message: str = "change") -> str:
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", message)
        return self.git("rev-parse", "HEAD")

    @property
    def head(self) -> str:
        return self.git("rev-parse", "HEAD")


@pytest.fixture
def trading_repo(tmp_path: Path) -> Iterator[TradingRepo]:
    """A copy of the embedded default (minitrade.yaml, plans/, strategies/) committed in a fresh repo."""
    path = tmp_path / "repo"
    path.mkdir()
    shutil.copyfile(ROOT / "minitrade.yaml", path / "minitrade.yaml")
    shutil.copytree(ROOT / "plans", path / "plans")
    shutil.copytree(ROOT / "strategies", path / "strategies", ignore=shutil.ignore_patterns("__pycache__"))
    (path / ".gitignore").write_text("state/\n__pycache__/\n")
    repo = TradingRepo(path)
    repo.git("init", "-q", "-b", "main")
    repo.commit("initial")
    yield repo
