"""`minitrade orders`, `minitrade trades` and `minitrade fill`: the order book from the state database.

These read and write the store even when the trading repo's files do not validate (a person
must be able to record a fill while fixing a broken plan), so the store is found leniently.
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from minitrade.cli.app import (
    REPO_OPTION,
    STATE_DIR_OPTION,
    app,
    console,
    emit_json,
    err_console,
    handle_errors,
    repo_path,
)
from minitrade.cli.times import PLAN_TIME_HELP, parse_at, plan_zone_of
from minitrade.errors import ConfigError

if TYPE_CHECKING:      # DuckDB and the models load when a command runs, not for --help
    from minitrade.records import Fill, Order
    from minitrade.store import Store

PLAN_ARG = typer.Argument(help="Only this plan's orders (default: every plan).", show_default=False)
JSON_OPTION = typer.Option(False, "--json", help="Print JSON: {format_version, kind, <kind>: [objects]}.")
CSV_OPTION = typer.Option(False, "--csv", help="Print CSV with a header row.")


def _store(root: Path) -> tuple[Store, Any]:
    """The repo's store and its snapshot (None when the files do not validate)."""
    from minitrade.cli.config_cmds import _state_store
    from minitrade.loader import load_worktree

    try:
        snap = load_worktree(root)
    except ConfigError:
        return _state_store(root), None
    return snap.store(), snap


def _emit(kind: str, rows: list[dict[str, Any]], columns: list[str], *, as_json: bool, as_csv: bool,
          title: str, empty: str, view: list[tuple[str, str]]) -> None:
    """JSON ({kind: rows}) or CSV of every column, or the `view` columns ((key, header)) as aligned lines."""
    if as_json and as_csv:
        raise typer.BadParameter("choose one of --json and --csv")
    if as_json:
        emit_json(kind, {kind: rows})
        return
    if as_csv:
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        typer.echo(out.getvalue(), nl=False)
        return
    if not rows:
        console.print(empty)
        return
    # Aligned lines, not a boxed table: a narrow terminal must never cut or fold an id that a
    # person copies into `minitrade fill`; notes go on their own indented line.
    shown = [(key, header) for key, header in view if key != "note"]
    cells = [[_cell(row.get(key)) for key, _ in shown] for row in rows]
    widths = [max(len(header), *(len(line[i]) for line in cells)) for i, (_, header) in enumerate(shown)]
    console.print(f"[bold]{escape(title)}[/]")
    console.print("  ".join(h.ljust(w) for (_, h), w in zip(shown, widths, strict=True)).rstrip(), style="dim")
    for row, line in zip(rows, cells, strict=True):
        console.print(escape("  ".join(c.rjust(w) if key in ("price", "commission") else c.ljust(w)
                                       for (key, _), c, w in zip(shown, line, widths, strict=True)).rstrip()))
        if row.get("note"):
            console.print(f"    note: {escape(str(row['note']))}", style="dim")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.4f}".rstrip("0").rstrip(".")
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M")
    return str(value)


def _order_row(order: Order, filled: float) -> dict[str, Any]:
    row = asdict(order)
    row.update(side=order.side.value, order_type=order.order_type.value, status=order.status.value,
               filled=filled, remaining=order.quantity - filled,
               trade=f"{order.side.value} {order.quantity:g} {order.ticker}",
               progress=f"{filled:g}/{order.quantity:g}")
    return row


@app.command("orders")
def orders(plan: Annotated[str | None, PLAN_ARG] = None,
           show_all: bool = typer.Option(False, "--all", "-a", help="Every order, not only the open ones."),
           as_json: bool = JSON_OPTION, as_csv: bool = CSV_OPTION, repo: Path | None = REPO_OPTION, state_dir: Path | None = STATE_DIR_OPTION) -> None:
    """Open orders (waiting for the broker or for you), or every order with --all.

    Example: minitrade orders sma-aapl --all --csv
    """
    from minitrade.store import orders as order_sql

    with handle_errors():
        store, _ = _store(repo_path(repo, state_dir))
        with store.transaction() as con:
            found = order_sql.orders_of(con, plan) if show_all else order_sql.open_orders(con, plan)
            filled = order_sql.filled_quantities(con, plan)
        rows = [_order_row(o, filled.get(o.client_id, 0.0)) for o in found]
        which = "orders" if show_all else "open orders"
        _emit("orders", rows, ["client_id", "plan", "trading_day", "ticker", "side", "quantity", "filled", "order_type",
                     "broker", "status", "note"], as_json=as_json, as_csv=as_csv,
              view=[("client_id", "order"), ("trade", "trade"), ("order_type", "type"), ("progress", "filled"),
                    ("status", "status"), ("note", "note")],
              title=f"{which.capitalize()}{f' of {plan}' if plan else ''}",
              empty=f"No {which}{f' for plan {plan}' if plan else ''}.")
        if not (as_json or as_csv) and any(o.status.is_open for o in found):
            console.print("Placed one by hand? Record it: minitrade fill ORDER --price P [--qty Q] "
                          "[--commission C] [--at 'YYYY-MM-DD HH:MM']", style="dim")


@app.command("trades")
def trades(plan: Annotated[str | None, PLAN_ARG] = None, as_json: bool = JSON_OPTION, as_csv: bool = CSV_OPTION,
           repo: Path | None = REPO_OPTION, state_dir: Path | None = STATE_DIR_OPTION) -> None:
    """Fills recorded against the orders (broker executions and `minitrade fill`), oldest first.

    Example: minitrade trades sma-aapl --json
    """
    from minitrade.store import orders as order_sql

    with handle_errors():
        store, _ = _store(repo_path(repo, state_dir))
        with store.transaction() as con:
            fills = order_sql.fills_of(con, plan)
            book = {o.client_id: o for o in order_sql.orders_of(con, plan)}
        rows = [_fill_row(f, book.get(f.client_id)) for f in fills]
        _emit("trades", rows, ["filled_at", "plan", "ticker", "side", "quantity", "price", "commission", "client_id",
                     "fill_id", "source"], as_json=as_json, as_csv=as_csv,
              view=[("filled_at", "filled at (UTC)"), ("trade", "trade"), ("price", "price"),
                    ("commission", "commission"), ("fill_id", "fill")],
              title=f"Trades{f' of {plan}' if plan else ''}",
              empty=f"No trades{f' for plan {plan}' if plan else ''}.")


@app.command("runs")
def runs(plan: Annotated[str | None, PLAN_ARG] = None,
         output: str | None = typer.Option(None, "--output", help="Print what this run's strategy printed."),
         limit: int = typer.Option(50, "--limit", min=1, help="How many runs, newest first."),
         as_json: bool = JSON_OPTION, as_csv: bool = CSV_OPTION, repo: Path | None = REPO_OPTION, state_dir: Path | None = STATE_DIR_OPTION) -> None:
    """Runs of the plans, newest first: kind, outcome, error, notes, and how much the strategy printed.

    A strategy's stdout/stderr is captured in its worker (first and last 64 KiB kept); --output RUN
    prints it.

    Example: minitrade runs sma-aapl --limit 5
    """
    from minitrade.store import runs as run_sql

    with handle_errors():
        store, _ = _store(repo_path(repo, state_dir))
        if output is not None:
            with store.transaction() as con:
                text, total = run_sql.read_output(con, output)
                known = run_sql.get_run(con, output)
            if known is None:
                raise typer.BadParameter(f"no run {output!r} (list them with `minitrade runs`)", param_hint="'--output'")
            typer.echo(text if text else f"run {output} printed nothing", nl=not text or not text.endswith("\n"))
            if text and total > len(text):
                err_console.print(f"(printed {total:,} characters in all; the first and last 64 KiB are kept)")
            return
        with store.transaction() as con:
            rows = [_run_row(r, run_sql.read_output(con, r.run_id)[1]) for r in run_sql.list_runs(con, plan=plan,
                                                                                                  limit=limit)]
        _emit("runs", rows, ["run_id", "plan", "kind", "status", "tick_at", "started_at", "finished_at", "error", "notes",
                     "printed"], as_json=as_json, as_csv=as_csv,
              view=[("started_at", "started (UTC)"), ("plan", "plan"), ("kind", "kind"), ("status", "outcome"),
                    ("printed", "printed"), ("run_id", "run"), ("note", "note")],
              title=f"Runs{f' of {plan}' if plan else ''}", empty=f"No runs{f' of plan {plan}' if plan else ''}.")


def _run_row(run: Any, printed: int) -> dict[str, Any]:
    row = {k: getattr(run, k) for k in ("run_id", "plan", "kind", "status", "tick_at", "started_at",
                                       "finished_at", "error", "notes")}
    row.update(printed=printed, note=run.error or run.notes)
    return row


def _fill_row(fill: Fill, order: Order | None) -> dict[str, Any]:
    row = asdict(fill)
    row.update(plan=order.plan if order else None, ticker=order.ticker if order else None,
               side=order.side.value if order else None,
               trade=f"{order.side.value} {fill.quantity:g} {order.ticker}" if order else "?")
    return row


@app.command("fill")
def fill(order: Annotated[str, typer.Argument(help="The order's client id, as `minitrade orders` lists it.")],
         price: float = typer.Option(..., "--price", "-p", help="The execution price."),
         qty: float | None = typer.Option(None, "--qty", "-q", help="Shares filled (default: all that remain)."),
         commission: float = typer.Option(0.0, "--commission", "-c", help="Commission paid, in cash."),
         at: str | None = typer.Option(None, "--at", help="When it executed (default: now). " + PLAN_TIME_HELP),
         repo: Path | None = REPO_OPTION, state_dir: Path | None = STATE_DIR_OPTION) -> None:
    """Record a real execution of an order you placed by hand (manual broker); partial fills allowed.

    Example: minitrade fill sma-aapl.20261125.204500Z.AAPL.0 --price 231.50 --qty 10 --commission 1
    """
    from minitrade.errors import FillRefused
    from minitrade.runner.fills import record_fill
    from minitrade.store import orders as order_sql

    with handle_errors():
        store, snap = _store(repo_path(repo, state_dir))
        with store.transaction() as con:
            known = order_sql.get_order(con, order)
        if known is not None and snap is not None:
            spec = snap.settings.brokers.get(known.broker)
            if spec is not None and spec.type != "manual":
                raise FillRefused(f"order {order} went to {spec.type} broker {known.broker}, which reports its "
                                  "own executions (they are synced on each run); a hand-typed fill would count "
                                  "twice", account=known.broker)
        when = None
        if at is not None and known is not None:  # an unknown order is refused by record_fill
            when = parse_at(at, plan_zone_of(snap, known.plan),
                            zone_name=f"plan {known.plan} is not in the trading repo")
        plan = _applied_plan(repo_path(repo, state_dir), store, known.plan) if known is not None else None
        done = record_fill(store, order, price=price, quantity=qty, commission=commission, at=when, plan=plan)
        with store.transaction() as con:
            settled = order_sql.get_order(con, order)
            total = sum(f.quantity for f in order_sql.fills_of(con, client_id=order))
        assert settled is not None
        console.print(f"Recorded fill {escape(done.fill_id)}: {settled.side.value} {done.quantity:g} "
                      f"{escape(settled.ticker)} @ {done.price:g} (commission {done.commission:g}) at "
                      f"{done.filled_at:%Y-%m-%d %H:%M %Z}")
        console.print(f"Order {escape(order)} is now {settled.status.value}: {total:g} of "
                      f"{settled.quantity:g} filled, {settled.quantity - total:g} remaining.")
        if snap is not None and snap.settings.notifiers:
            _notify_fill(snap, store, settled, done)


def _applied_plan(root: Path, store: Store, name: str) -> Any:
    """The plan as applied (what trades), for the checks a fill must pass; None if not applied."""
    from minitrade.reconcile_pass import applied_snapshot

    try:
        applied = applied_snapshot(root, store)
    except ConfigError:
        return None
    return applied.plans.get(name) if applied is not None else None


def _notify_fill(snap: Any, store: Store, order: Order, done: Fill) -> None:
    """Tell the fills.recorded subscribers; a delivery failure is reported, never fatal (the fill is in)."""
    from minitrade.notify import Notifier, messages

    outcomes = Notifier.from_settings(snap.settings, store=store).notify(
        messages.fills_recorded(order.plan, [done], orders={order.client_id: order}))
    for outcome in outcomes:
        if not outcome.ok:
            err_console.print(f"[yellow]warning:[/] notifier {escape(outcome.notifier)} failed: "
                              f"{escape(outcome.error or 'unknown error')}")


