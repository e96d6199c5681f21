"""Fixtures of the market-data tests: fake Yahoo and EastMoney on 127.0.0.1, a real DuckDB file."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from minitrade.data.eastmoney import EastMoneyDataSource
from minitrade.data.yahoo import YahooDataSource
from minitrade.models import EastMoneySource, YahooSource
from minitrade.store import Store
from minitrade.testing.eastmoney import FakeEastMoney
from minitrade.testing.yahoo import FakeYahoo

# Friday 2026-11-20: 22:00 UTC is after the New York close; 18:00 UTC is during the session.
NY_AFTER_CLOSE = datetime(2026, 11, 20, 22, 0, tzinfo=UTC)
NY_OPEN = datetime(2026, 11, 20, 18, 0, tzinfo=UTC)
# 03:00 UTC is 11:00 in Shanghai (session running); 08:00 UTC is 16:00 (closed).
CN_OPEN = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)
CN_AFTER_CLOSE = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


@pytest.fixture
def fake_yahoo() -> Iterator[FakeYahoo]:
    with FakeYahoo() as fake:
        fake.book.now = NY_AFTER_CLOSE
        yield fake


@pytest.fixture
def fake_eastmoney() -> Iterator[FakeEastMoney]:
    with FakeEastMoney() as fake:
        fake.book.now = CN_AFTER_CLOSE
        yield fake


@pytest.fixture
def yahoo(fake_yahoo: FakeYahoo) -> YahooDataSource:
    """The production Yahoo client pointed at the fake, quick to give up."""
    spec = YahooSource(type="yahoo", base_url=fake_yahoo.url, timeout=3.0)
    return YahooDataSource("yahoo", spec, retries=2, backoff=0.01)


@pytest.fixture
def eastmoney(fake_eastmoney: FakeEastMoney) -> EastMoneyDataSource:
    spec = EastMoneySource(type="eastmoney", base_url=fake_eastmoney.url, timeout=3.0)
    return EastMoneyDataSource("eastmoney", spec, retries=2, backoff=0.01,
                               clock=lambda: fake_eastmoney.book.now)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "state" / "minitrade.duckdb")
