"""Which DataSource implementation serves a `data_sources:` entry of minitrade.yaml."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from minitrade.models import CsvSource, EastMoneySource, YahooSource

if TYPE_CHECKING:  # the protocol's module imports pandas; a csv source is built without it
    from minitrade.data.base import DataSource


def source_for(name: str, spec: CsvSource | YahooSource | EastMoneySource, *, root: Path) -> DataSource:
    """Build the data source named `name` in minitrade.yaml; `root` is the trading repo folder."""
    if isinstance(spec, CsvSource):
        from minitrade.data.csv import CsvDataSource

        return CsvDataSource(name, spec, root=root)
    if isinstance(spec, YahooSource):
        from minitrade.data.yahoo import YahooDataSource

        return YahooDataSource(name, spec)
    from minitrade.data.eastmoney import EastMoneyDataSource

    return EastMoneyDataSource(name, spec)
