"""Stale prices: which session's bar a run needs, and `DataStale` when its source lacks it.

A run at instant `at` decides on its signal day's bar (today once the session opened, else the
previous session). A source has a session's bar `delay` after that session opens (Yahoo and
EastMoney show today's partial bar minutes after the open; a csv folder has no delay unless its
spec sets one), so the run *needs* the bar of the last session whose open plus the delay has
passed. A source whose last bar is older fails the run with DataStale, the same way whether the
bars came from the source, from the price cache, or from neither:

    needed = needed_day("XNYS", at, timedelta(minutes=20), latest=signal_day)
    prices = fresh_prices(cache, ["SPY"], start, signal_day, needed=needed, at=at)  # or DataStale

Through a `PriceCache` the tickers are fetched in batches (a few at a time, one transaction per
batch), and `should_stop` (e.g. `stop_event.is_set`) abandons a long first fetch between fetches
with FetchStopped; the answer is the same as asking the source ticker by ticker.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

from minitrade.data.registry import source_for
from minitrade.errors import DataError, DataStale, FetchStopped
from minitrade.models import CsvSource
from minitrade.trading_calendar import get_calendar

if TYPE_CHECKING:  # pandas and the cache come with the prices: `plan`'s stale check needs neither
    import pandas as pd

    from minitrade.data.base import DataSource
    from minitrade.loader import Snapshot

PROBE_DAYS = 14  # `probe_last_bars` asks this far back before the needed day


def needed_day(calendar: str, at: datetime, delay: timedelta, *, latest: date | None = None) -> date | None:
    """The last session of `calendar` whose open plus `delay` is at or before `at` (capped at `latest`)."""
    cal = get_calendar(calendar)
    local = at.astimezone(cal.tz).date()
    day = local if cal.is_session(local) else cal.previous_session_day(local)
    if latest is not None and day is not None and day > latest:
        day = latest if cal.is_session(latest) else cal.previous_session_day(latest)
    while day is not None and cal.session(day).open + delay > at:
        day = cal.previous_session_day(day)
    return day


def fresh_prices(source: DataSource, tickers: Iterable[str], start: date, end: date, *, needed: date | None,
                 at: datetime, should_stop: Callable[[], bool] | None = None) -> dict[str, pd.DataFrame]:
    """Bars of each ticker from `start` to `end`; DataStale naming every ticker without the needed bar.

    Raises the first other DataError (in ticker order), or FetchStopped once `should_stop()` is true.
    """
    from minitrade.data.cache import PriceCache, stopped_error

    names = list(dict.fromkeys(tickers))
    prices: dict[str, pd.DataFrame] = {}
    stale: dict[str, date | None] = {}
    if isinstance(source, PriceCache):
        got = source.serve_many(names, start, end, should_stop=should_stop)
        for ticker, error in got.failures.items():
            if not isinstance(error, DataStale):
                raise error
            stale[ticker] = error.last_bar
        if got.stopped:
            raise stopped_error(source.name, got, len(names))
        prices = got.frames
    else:
        for ticker in names:
            if should_stop is not None and should_stop():
                raise FetchStopped(f"stopped on request with {len(names) - len(prices) - len(stale)} of "
                                   f"{len(names)} tickers not fetched yet", source=source.name)
            try:
                prices[ticker] = source.daily(ticker, start, end)
            except DataStale as e:
                stale[ticker] = e.last_bar
    if needed is not None:
        for ticker, frame in prices.items():
            last = frame.index[-1].date() if len(frame) else None
            if last is None or last < needed:
                stale[ticker] = last
    if stale:
        raise stale_error(source.name, stale, needed, at)
    return prices


def preload(source: DataSource, requests: Mapping[str, date], last: date) -> None:
    """Let a price cache read at once what several `fresh_prices` calls will ask it (see
    PriceCache.preload); any other source reads when asked."""
    from minitrade.data.cache import PriceCache

    if isinstance(source, PriceCache):
        source.preload(requests, last)


def forget(source: DataSource) -> None:
    """Drop what `preload` read."""
    from minitrade.data.cache import PriceCache

    if isinstance(source, PriceCache):
        source.forget()


def probe_last_bars(source: DataSource, tickers: Iterable[str], needed: date) -> dict[str, date | None]:
    """Each ticker's last bar up to now, asking only the last few weeks (for `plan` and `apply`).

    A DataError other than DataStale (the source is down, the ticker unknown) propagates.
    """
    last: dict[str, date | None] = {}
    from minitrade.data.csv import CsvDataSource

    for ticker in tickers:  # a csv folder answers from the file's text, without pandas
        known = source.last_bar(ticker) if isinstance(source, CsvDataSource) else None
        if known is not None:
            last[ticker] = known
            continue
        try:
            frame = source.daily(ticker, needed - timedelta(days=PROBE_DAYS), None)
            last[ticker] = frame.index[-1].date() if len(frame) else None
        except DataStale as e:
            last[ticker] = e.last_bar
    return last


def stale_error(source: str, stale: dict[str, date | None], needed: date | None, at: datetime) -> DataStale:
    """The one DataStale message: source, tickers, their last bars, the day needed, and what to do."""
    bars = ", ".join(f"{t} {last or 'none in the window asked'}" for t, last in stale.items())
    known = [d for d in stale.values() if d is not None]
    when = f"{at:%Y-%m-%d %H:%M %Z}".strip()
    return DataStale(
        f"stale prices: no bar for {needed} (last bar: {bars}); a run at {when} needs it. Add the missing "
        f"bars to data source {source} (csv: the tickers' files), or if it publishes later in the day, "
        f"raise its `delay_minutes` in minitrade.yaml", source=source, ticker=", ".join(stale),
        last_bar=min(known) if known else None, expected=needed)


def stale_plans(snapshot: Snapshot, names: Iterable[str], at: datetime, *,
                local_only: bool) -> dict[str, str]:
    """Scheduled plans among `names` whose source lacks the bar a run at `at` would need: plan -> why.

    `local_only` asks only csv sources (`plan` stays offline and quick); a source that cannot be
    read at all is left to the checks that report errors (apply's source check and dry run).
    """
    sources: dict[str, DataSource] = {}
    probed: dict[tuple[str, str, date], date | None] = {}
    out: dict[str, str] = {}
    for name in sorted(names):
        plan = snapshot.plans.get(name)
        spec = snapshot.settings.data_sources.get(plan.data_source) if plan is not None else None
        if plan is None or spec is None or not plan.backtest_enabled:
            continue
        if local_only and not isinstance(spec, CsvSource):
            continue
        needed = needed_day(plan.calendar, at, spec.delay)
        if needed is None:
            continue
        missing = [t for t in plan.tickers if (plan.data_source, t, needed) not in probed]
        try:
            if plan.data_source not in sources:
                sources[plan.data_source] = source_for(plan.data_source, spec, root=snapshot.root)
            for ticker, last in probe_last_bars(sources[plan.data_source], missing, needed).items():
                probed[(plan.data_source, ticker, needed)] = last
        except DataError:
            continue
        behind = {t: probed[(plan.data_source, t, needed)] for t in plan.tickers}
        behind = {t: last for t, last in behind.items() if last is None or last < needed}
        if behind:
            bars = ", ".join(f"{t} {last or 'none recently'}" for t, last in behind.items())
            out[name] = (f"data source {plan.data_source} cannot serve the current dates: no bar for {needed} "
                         f"(last bar: {bars}), so its runs fail as stale. Add the missing bars, or rehearse "
                         "on past dates with `minitrade replay`")
    return out
