"""`minitrade data ...`: test a data source, warm the price cache, accept changed history.

The sources are built from minitrade.yaml (`data_sources:`), so their proxy, base URL and
timeout settings apply here exactly as in a run.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any

import typer

from minitrade import clock
from minitrade.cli.app import (
    REPO_OPTION,
    STATE_DIR_OPTION,
    app,
    console,
    emit_json,
    err_console,
    handle_errors,
    repo_path,
    rich_escape,
)
from minitrade.errors import DataError

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from minitrade.data.cache import BatchStored

data_app = typer.Typer(help="Market data: test a source, warm the price cache, accept changed history.\n\n"
                            "Example: minitrade data check samples AAPL && minitrade data fetch",
                       no_args_is_help=True)
app.add_typer(data_app, name="data")


@data_app.command("check")
def check(
    source: Annotated[str, typer.Argument(help="A data source name from minitrade.yaml, e.g. yahoo.")],
    tickers: Annotated[list[str], typer.Argument(help="One or more tickers, e.g. SPY QQQ.")],
    days: Annotated[int, typer.Option("--days", "-n", min=1, max=250, help="How many recent bars to show.")] = 5,
    repo: Path | None = REPO_OPTION, state_dir: Path | None = STATE_DIR_OPTION,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output (has format_version); "
                                                          "a failed ticker has its error in it.")] = False,
) -> None:
    """Fetch the last bars of TICKERS straight from SOURCE (no cache) and show them.

    Example: minitrade data check samples AAPL MSFT --days 3
    """
    from rich.table import Table

    from minitrade.data.registry import source_for
    from minitrade.loader import load_worktree

    with handle_errors():
        snap = load_worktree(repo_path(repo, state_dir))
        spec = snap.settings.data_sources.get(source)
        if spec is None:
            known = ", ".join(sorted(snap.settings.data_sources)) or "none"
            raise DataError(f"no data source named {source!r} in minitrade.yaml (defined: {known})")
        feed = source_for(source, spec, root=snap.root)
        start = clock.now().date() - timedelta(days=days * 2 + 14)  # MINITRADE_NOW: a rehearsal's present
        failures = 0
        checked: list[dict[str, Any]] = []
        for ticker in tickers:
            try:
                bars = feed.daily(ticker, start)
            except DataError as e:
                failures += 1
                err_console.print(f"[bold red]error:[/] {rich_escape(str(e))}")
                checked.append({"ticker": ticker, "error": str(e), "bars": []})
                continue
            recent = bars.tail(days)
            checked.append({"ticker": ticker, "error": None, "adjustment": bars.attrs.get("adjustment", "unadjusted"),
                            "partial": bool(bars.attrs.get("partial")),
                            "bars": [{"date": day.date().isoformat(),
                                      **{c: float(row[c]) for c in ("open", "high", "low", "close", "volume")}}
                                     for day, row in recent.iterrows()]})
            if as_json:
                continue
            table = Table(title=f"{source} {ticker} ({bars.attrs.get('adjustment', 'unadjusted')})",
                          title_justify="left")
            for column in ("date", "open", "high", "low", "close", "volume"):
                table.add_column(column, justify="left" if column == "date" else "right")
            for number, (day, row) in enumerate(recent.iterrows(), 1):
                label = day.date().isoformat()
                if number == len(recent) and bars.attrs.get("partial"):
                    label += " (partial)"
                table.add_row(label, *(f"{row[c]:,.4f}" for c in ("open", "high", "low", "close")),
                              f"{row['volume']:,.0f}")
            console.print(table)
        if as_json:
            emit_json("data_check", {"source": source, "ok": not failures, "tickers": checked})
        if failures:
            raise typer.Exit(1)
        if not as_json:
            console.print(f"[green]ok:[/] {source} answered for {len(tickers)} ticker(s)")


@data_app.command("fetch")
def fetch(
    plan: Annotated[list[str] | None, typer.Option("--plan", "-p", help="Only these plans (default: all).")] = None,
    repo: Path | None = REPO_OPTION, state_dir: Path | None = STATE_DIR_OPTION,
) -> None:
    """Warm the price cache for every plan of the working tree: fetch only what is missing.

    Tickers are fetched a few at a time (a source's `concurrency`) and stored in batches. SIGTERM
    or Ctrl-C stops after the fetches in flight (exit code 130): every stored batch is kept, and
    the next `data fetch` continues with the missing tickers.

    Example: minitrade data fetch --plan sma-aapl --plan equal-weight
    """
    from minitrade.data.cache import PriceCache, stopped_error
    from minitrade.data.registry import source_for
    from minitrade.loader import load_worktree

    with handle_errors():
        snap = load_worktree(repo_path(repo, state_dir))
        plans = snap.plans
        if plan:
            unknown = sorted(set(plan) - set(plans))
            if unknown:
                raise DataError(f"no plan named {', '.join(unknown)} (plans: {', '.join(sorted(plans)) or 'none'})")
            plans = {name: plans[name] for name in plan}
        wanted: dict[str, tuple[date, list[str]]] = {}
        for spec in plans.values():
            start, tickers = wanted.get(spec.data_source, (spec.backtest_start, []))
            known = set(tickers)
            tickers += [t for t in spec.universe if t not in known]
            wanted[spec.data_source] = (min(start, spec.backtest_start), tickers)
        if not wanted:
            console.print("no plans: nothing to fetch")
            return
        store = snap.store()
        failed: list[str] = []
        with _stop_on_signals() as stop:
            for name, (start, tickers) in sorted(wanted.items()):
                if stop.is_set():
                    break
                cache = PriceCache(store, source_for(name, snap.settings.data_sources[name], root=snap.root))
                with _FetchProgress(name, start, len(tickers)) as shown:
                    got = cache.serve_many(tickers, start, keep=False, should_stop=stop.is_set,
                                           progress=shown.ticker, on_batch=shown.batch)
                    shown.finish(cache.fetches, got.fetched)
                failed += [str(e) for e in got.failures.values()]
                if got.stopped:
                    failed.append(str(stopped_error(name, got, len(tickers))))
        for message in failed:
            err_console.print(f"[bold red]error:[/] {rich_escape(message)}")
        if stop.is_set():
            err_console.print("stopped: the batches stored so far are kept; run `minitrade data fetch` "
                              "again to fetch the rest")
            raise typer.Exit(130)
        if failed:
            raise typer.Exit(1)
        count = sum(len(t) for _, t in wanted.values())
        console.print(f"[green]ok:[/] prices cached for {count} ticker(s) in {store.path}")


@contextmanager
def _stop_on_signals() -> Iterator[threading.Event]:
    """An event set by SIGTERM or SIGINT while inside (a second SIGINT interrupts as usual)."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():  # signals reach the main thread only
        yield stop
        return

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        err_console.print(f"{signal.Signals(signum).name}: stopping after the fetches in flight")

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


class _FetchProgress:
    """A progress bar on a terminal; elsewhere (logs, pipes) one plain line per stored batch."""

    def __init__(self, source: str, start: date, total: int) -> None:
        self.source, self.start, self.total = source, start, total
        self.bar: Progress | None = None
        self.task: TaskID | None = None
        if console.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
            self.bar = Progress(*columns, console=console, transient=False)
        else:
            console.print(f"{source}: {total} ticker(s) since {start}", highlight=False)

    def __enter__(self) -> _FetchProgress:
        if self.bar is not None:
            self.bar.start()
            self.task = self.bar.add_task(f"{self.source} since {self.start}", total=self.total)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()

    def ticker(self, ticker: str, done: int, total: int) -> None:
        if self.bar is not None and self.task is not None:
            self.bar.update(self.task, completed=done, description=f"{self.source} {ticker}")

    def batch(self, stored: BatchStored) -> None:
        if self.bar is None:
            console.print(f"{self.source}: batch {stored.number}/{stored.batches} stored: {stored.done}/"
                          f"{stored.total} tickers done ({stored.fetched} fetched, {stored.failed} failed)",
                          highlight=False)

    def finish(self, requests: int, fetched: int) -> None:
        line = f"{self.source} since {self.start} ({fetched} fetched, {requests} requests)"
        if self.bar is not None and self.task is not None:
            self.bar.update(self.task, description=line)
        else:
            console.print(line, highlight=False)


@data_app.command("accept")
def accept(
    plan: Annotated[str, typer.Argument(help="The strict plan whose changed price history to accept.")],
    repo: Path | None = REPO_OPTION, state_dir: Path | None = STATE_DIR_OPTION,
) -> None:
    """Accept changed past prices (a split, a dividend adjustment) for a strict plan.

    The next run records the history as it is now instead of stopping on the difference.

    Example: minitrade data accept sma-aapl
    """
    from minitrade.data.changes import accept_history
    from minitrade.loader import load_worktree

    with handle_errors():
        snap = load_worktree(repo_path(repo, state_dir))
        accept_history(snap.store(), plan)
        console.print(f"[green]ok:[/] {plan} will take the current price history as its past")
