"""`minitrade apply` check: every new or changed data source must answer before it is applied.

A source is tried with one ticker of a plan that uses it (the first in universe order), over the
last two weeks, straight from the source (no cache), under its own deadline and proxy settings.
A source no plan uses is not contacted: there is nothing it must be able to serve yet.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from minitrade.data.registry import source_for
from minitrade.errors import DataError
from minitrade.models import CsvSource

if TYPE_CHECKING:
    from minitrade.loader import Snapshot

LOOKBACK = timedelta(days=14)


def check(snapshot: Snapshot, changed: set[tuple[str, str]]) -> list[str]:
    """Error messages for new or changed data sources that cannot serve a plan's ticker."""
    names = {name for kind, name in changed if kind == "data_source"}
    # a plan moving to another source (or a new plan) is tried by its dry-run backtest instead
    errors: list[str] = []
    for name in sorted(names):
        spec = snapshot.settings.data_sources.get(name)
        if spec is None:
            continue  # deleted
        users = [plan for plan in snapshot.plans.values() if plan.data_source == name]
        if not users:
            continue
        ticker = next(iter(users[0].universe))
        # a folder of CSV files is history, not a live feed: it must serve the plan's range
        start = users[0].backtest_start if isinstance(spec, CsvSource) else datetime.now(UTC).date() - LOOKBACK
        try:
            source = source_for(name, spec, root=snapshot.root)
            source.daily(ticker, start)
        except DataError as e:
            errors.append(f"data source {name}: could not fetch {ticker} for plan {users[0].name}: "
                          f"{str(e).split(': ', 1)[-1]}")
    return errors
