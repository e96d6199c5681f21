"""`minitrade data ...`: test a data source, warm the price cache, accept changed history.

The sources are built from minitrade.yaml (`data_sources:`), so their proxy, base URL and
timeout settings apply here exactly as in a run.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer

from minitrade.cli.app import REPO_OPTION, app, console, err_console, handle_errors, repo_path, rich_escape
from minitrade.errors import DataError

data_app = typer.Typer(help="Market data: test a source, warm the price cache, accept changed history.\n\n"
                            "Example: minitrade data check samples AAPL && minitrade data fetch",
                       no_args_is_help=True)
app.add_typer(data_app, name="data")


@data_app.command("check")
def check(
    source: Annotated[str, typer.Argument(help="A data source name from minitrade.yaml, e.g. yahoo.")],
    tickers: Annotated[list[str], typer.Argument(help="One or more tickers, e.g. SPY QQQ.")],
    days: Annotated[int, typer.Option("--days", "-n", min=1, max=250, help="How many recent bars to show.")] = 5,
    repo: Path | None = REPO_OPTION,
) -> None:
    """Fetch the last bars of TICKERS straight from SOURCE (no cache) and show them.

    Example: minitrade data check samples AAPL MSFT --days 3
    """
    from rich.table import Table

    from minitrade.data.registry import source_for
    from minitrade.loader import load_worktree

    with handle_errors():
        snap = load_worktree(repo_path(repo))
        spec = snap.settings.data_sources.get(source)
        if spec is None:
            known = ", ".join(sorted(snap.settings.data_sources)) or "none"
            raise DataError(f"no data source named {source!r} in minitrade.yaml (defined: {known})")
        feed = source_for(source, spec, root=snap.root)
        start = datetime.now(UTC).date() - timedelta(days=days * 2 + 14)
        failures = 0
        for ticker in tickers:
            try:
                bars = feed.daily(ticker, start)
            except DataError as e:
                failures += 1
                err_console.print(f"[bold red]error:[/] {rich_escape(str(e))}")
                continue
            table = Table(title=f"{source} {ticker} ({bars.attrs.get('adjustment', 'unadjusted')})",
                          title_justify="left")
            for column in ("date", "open", "high", "low", "close", "volume"):
                table.add_column(column, justify="left" if column == "date" else "right")
            recent = bars.tail(days)
            for number, (day, row) in enumerate(recent.iterrows(), 1):
                label = day.date().isoformat()
                if number == len(recent) and bars.attrs.get("partial"):
                    label += " (partial)"
                table.add_row(label, *(f"{row[c]:,.4f}" for c in ("open", "high", "low", "close")),
                              f"{row['volume']:,.0f}")
            console.print(table)
        if failures:
            raise typer.Exit(1)
        console.print(f"[green]ok:[/] {source} answered for {len(tickers)} ticker(s)")


@data_app.command("fetch")
def fetch(
    plan: Annotated[list[str] | None, typer.Option("--plan", "-p", help="Only these plans (default: all).")] = None,
    repo: Path | None = REPO_OPTION,
) -> None:
    """Warm the price cache for every plan of the working tree: fetch only what is missing.

    Example: minitrade data fetch --plan sma-aapl --plan equal-weight
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

    from minitrade.data.cache import PriceCache
    from minitrade.data.registry import source_for
    from minitrade.loader import load_worktree

    with handle_errors():
        snap = load_worktree(repo_path(repo))
        plans = snap.plans
        if plan:
            unknown = sorted(set(plan) - set(plans))
            if unknown:
                raise DataError(f"no plan named {', '.join(unknown)} (plans: {', '.join(sorted(plans)) or 'none'})")
            plans = {name: plans[name] for name in plan}
        wanted: dict[str, tuple[date, list[str]]] = {}
        for spec in plans.values():
            start, tickers = wanted.get(spec.data_source, (spec.backtest_start, []))
            tickers += [t for t in spec.universe if t not in tickers]
            wanted[spec.data_source] = (min(start, spec.backtest_start), tickers)
        if not wanted:
            console.print("no plans: nothing to fetch")
            return
        store = snap.store()
        failed: list[str] = []
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console, transient=False) as progress:
            for name, (start, tickers) in sorted(wanted.items()):
                spec_ = snap.settings.data_sources[name]
                cache = PriceCache(store, source_for(name, spec_, root=snap.root))
                task = progress.add_task(f"{name} since {start}", total=len(tickers))

                def advance(ticker: str, done: int, total: int, task: TaskID = task, name: str = name) -> None:
                    progress.update(task, completed=done, description=f"{name} {ticker}")

                try:
                    cache.daily_many(tickers, start, progress=advance)
                except DataError as e:
                    failed.append(str(e))
                progress.update(task, description=f"{name} since {start} ({cache.fetches} requests)")
        for message in failed:
            err_console.print(f"[bold red]error:[/] {rich_escape(message)}")
        if failed:
            raise typer.Exit(1)
        count = sum(len(t) for _, t in wanted.values())
        console.print(f"[green]ok:[/] prices cached for {count} ticker(s) in {store.path}")


@data_app.command("accept")
def accept(
    plan: Annotated[str, typer.Argument(help="The strict plan whose changed price history to accept.")],
    repo: Path | None = REPO_OPTION,
) -> None:
    """Accept changed past prices (a split, a dividend adjustment) for a strict plan.

    The next run records the history as it is now instead of stopping on the difference.

    Example: minitrade data accept sma-aapl
    """
    from minitrade.data.changes import accept_history
    from minitrade.loader import load_worktree

    with handle_errors():
        snap = load_worktree(repo_path(repo))
        accept_history(snap.store(), plan)
        console.print(f"[green]ok:[/] {plan} will take the current price history as its past")
