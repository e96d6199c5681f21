"""`minitrade apply` check: every new or changed data source must answer before it is applied.

A source is tried with one ticker of a plan that uses it (the first in universe order), over the
last two weeks, straight from the source (no cache), under its own deadline and proxy settings.
A source no plan uses yet is still tried, with a ticker it should know (PROBE): it must answer; an
answer that it has no such ticker is fine (nothing must be served yet), an unreachable host is not.
A csv source is asked offline for every ticker of each new or changed plan on it (file:line of the
universe entry), before the dry-run backtests would fail on it without a line.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from minitrade.data.registry import source_for
from minitrade.errors import DataError
from minitrade.loader import ticker_issues
from minitrade.models import CsvSource, EastMoneySource, YahooSource

if TYPE_CHECKING:
    from minitrade.loader import Snapshot

LOOKBACK = timedelta(days=14)
# What an unused remote source is asked for: a symbol every such provider has.
PROBE = {"yahoo": "SPY", "eastmoney": "600519"}


def check(snapshot: Snapshot, changed: set[tuple[str, str]]) -> list[str]:
    """Error messages for new or changed data sources that cannot serve a plan's ticker."""
    names = {name for kind, name in changed if kind == "data_source"}
    # a plan moving to another source (or a new plan) is tried by its dry-run backtest instead
    plans = {name for kind, name in changed if kind == "plan"} | {
        name for name, plan in snapshot.plans.items() if plan.data_source in names}
    errors: list[str] = [str(issue) for issue in ticker_issues(snapshot, plans)]
    for name in sorted(names):
        spec = snapshot.settings.data_sources.get(name)
        if spec is None:
            continue  # deleted
        users = [plan for plan in snapshot.plans.values() if plan.data_source == name]
        if not users:
            errors += _probe(snapshot, name, spec)
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


def _probe(snapshot: Snapshot, name: str, spec: CsvSource | YahooSource | EastMoneySource) -> list[str]:
    """A source no plan uses yet must at least answer (a csv folder must exist)."""
    if isinstance(spec, CsvSource):
        folder = spec.folder(snapshot.root)
        return [] if folder.is_dir() else [f"data source {name}: folder {folder} does not exist; create it "
                                           "or fix `path` in minitrade.yaml"]
    ticker = PROBE[spec.type]
    try:
        source_for(name, spec, root=snapshot.root).daily(ticker, datetime.now(UTC).date() - LOOKBACK)
    except DataError as e:
        if e.retryable:  # no answer at all (refused, timed out, 5xx): the source is not usable
            return [f"data source {name}: no plan uses it yet, and trying {ticker} failed: "
                    f"{str(e).split(': ', 1)[-1]}; fix its settings (base_url, proxy) or remove it"]
    return []
