"""Fixtures for notification tests: a real Apprise json:// sink on loopback and a real DuckDB file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from minitrade.store import Store
from minitrade.testing.apprise_sink import AppriseSink


@pytest.fixture
def sink() -> Iterator[AppriseSink]:
    with AppriseSink() as running:
        yield running


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "state" / "minitrade.duckdb")


def table_rows(store: Store) -> list[tuple]:
    with store.transaction() as con:
        return con.execute("SELECT * FROM notifications ORDER BY id").fetchall()
