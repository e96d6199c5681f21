"""`minitrade positions`, `suspend` and `resume`: what the plans hold and earn, and the emergency stop.

All three read the applied state from the state database (not the working tree), so they work
while the files are being edited or do not validate, and beside a remote-source daemon (--state-dir).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from minitrade import clock
from minitrade.cli.app import (
    ERROR,
    REPO_OPTION,
    STATE_DIR_OPTION,
    app,
    console,
    emit_json,
    err_console,
    handle_errors,
    repo_path,
)
from minitrade.cli.orders_cmds import CSV_OPTION, JSON_OPTION, _emit

if TYPE_CHECKING:      # the models, DuckDB and pandas load when a command runs, not for --help
    from zoneinfo import ZoneInfo

    from minitrade.models import Plan
    from minitrade.runner.positions import Drift, PlanBook, TickerBook, Totals
    from minitrade.store import Store
    from minitrade.store.applied import AppliedState
    from minitrade.store.suspensions import Override

PLAN_NAME = typer.Argument(help="The applied plan's name, as `minitrade status` lists it.", show_default=False)


def _store(repo: Path | None, state_dir: Path | None) -> Store:
    from minitrade.cli.config_cmds import _state_store

    return _state_store(repo_path(repo, state_dir))


# -- positions ---------------------------------------------------------------------------------

POSITION_COLUMNS = ["plan", "ticker", "quantity", "avg_cost", "mark", "mark_date", "market_value", "realized_pnl",
                    "unrealized_pnl", "fees", "fills"]


@app.command("positions")
def positions(plan: Annotated[str | None, typer.Argument(help="Only this plan (default: every plan and the total).",
                                                         show_default=False)] = None,
              broker: bool = typer.Option(False, "--broker", help="Also ask each IB account for its own positions "
                                          "(a call to its gateway; never logs in) and show where they differ."),
              as_json: bool = JSON_OPTION, as_csv: bool = CSV_OPTION,
              repo: Path | None = REPO_OPTION, state_dir: Path | None = STATE_DIR_OPTION) -> None:
    """Positions, cash, cost basis, realised and unrealised P&L and fees per plan, from the recorded fills.

    Marks are the latest cached closes (nothing is fetched). Average-cost method: realised P&L is
    before fees; net = realised + unrealised - fees. Rehearsal orders never count.

    Example: minitrade positions sma-aapl --json

    Example: minitrade positions --broker
    """
    from minitrade.errors import PlanUnknown
    from minitrade.runner.holdings import read_books
    from minitrade.runner.positions import totals
    from minitrade.store.applied import AppliedState

    if as_json and as_csv:
        raise typer.BadParameter("choose one of --json and --csv")
    with handle_errors():
        store = _store(repo, state_dir)
        applied = AppliedState(store)
        books = read_books(store, applied.plans, only=plan)
        if plan is not None and plan not in applied.plans and not any(b.tickers for b in books):
            raise PlanUnknown(f"no applied plan {plan!r} and no fills of one (applied plans: "
                              f"{', '.join(applied.plans) or 'none'})")
        total = totals(books)
        accounts = _broker_drift(applied, books) if broker else {}
        if as_json:
            emit_json("positions", {"plans": [_book_json(b) for b in books], "total": _total_json(total),
                                    "brokers": [_drift_json(name, found) for name, found in accounts.items()]})
        elif as_csv:
            rows = [row for b in books for row in _position_rows(b, cash_row=True)]
            _emit("positions", rows, POSITION_COLUMNS, as_json=False, as_csv=True, title="", empty="", view=[])
        else:
            _print_books(books, total, accounts, single=plan is not None)
    if any(isinstance(found, str) for found in accounts.values()):
        raise typer.Exit(ERROR)


def _broker_drift(applied: AppliedState, books: list[PlanBook]) -> dict[str, list[Drift] | str]:
    """Per IB account the plans trade through: its positions beside theirs, or why it could not be asked."""
    from minitrade.brokers.ib.broker import IBBroker as IBAdapter
    from minitrade.errors import BrokerError
    from minitrade.models import IBBroker
    from minitrade.runner.positions import account_drift

    out: dict[str, list[Drift] | str] = {}
    for name in sorted({p.broker for p in applied.plans.values()}):
        spec = applied.brokers.get(name)
        if spec is None or spec.get("type") != "ib":
            continue
        adapter = IBAdapter(name, IBBroker.model_validate(spec))
        try:
            held: dict[str, float] = {}
            for position in adapter.positions():
                held[position.ticker] = held.get(position.ticker, 0.0) + position.quantity
            out[name] = account_drift(books, name, held)
        except BrokerError as e:
            out[name] = f"not asked: {e}"
        finally:
            adapter.close()
    return out


def _ticker_json(t: TickerBook) -> dict[str, Any]:
    return {"ticker": t.ticker, "quantity": t.quantity, "avg_cost": t.avg_cost, "mark": t.mark,
            "mark_date": t.mark_date, "market_value": t.market_value, "realized_pnl": t.realized,
            "unrealized_pnl": t.unrealized, "fees": t.fees, "fills": t.fills}


def _book_json(b: PlanBook) -> dict[str, Any]:
    return {"plan": b.plan, "broker": b.broker, "applied": b.applied, "start_cash": b.start_cash, "cash": b.cash,
            "market_value": b.market_value, "equity": b.equity, "realized_pnl": b.realized,
            "unrealized_pnl": b.unrealized, "fees": b.fees, "positions": [_ticker_json(t) for t in b.tickers]}


def _total_json(t: Totals) -> dict[str, Any]:
    return {"start_cash": t.start_cash, "cash": t.cash, "market_value": t.market_value, "equity": t.equity,
            "realized_pnl": t.realized, "unrealized_pnl": t.unrealized, "fees": t.fees,
            "positions": [{"ticker": k, "quantity": q} for k, q in t.positions.items()]}


def _drift_json(account: str, found: list[Drift] | str) -> dict[str, Any]:
    if isinstance(found, str):
        return {"account": account, "error": found, "positions": [], "agrees": None}
    return {"account": account, "error": None, "agrees": all(d.agrees for d in found),
            "positions": [{"ticker": d.ticker, "broker": d.broker, "plans": d.plans, "drift": d.difference}
                          for d in found]}


def _position_rows(b: PlanBook, *, cash_row: bool = False) -> list[dict[str, Any]]:
    rows = [{"plan": b.plan, **_ticker_json(t)} for t in b.tickers]
    if cash_row:  # the CSV has cash as a row of its own, so a spreadsheet sums to the equity
        rows.append({"plan": b.plan, "ticker": "(cash)", "quantity": b.cash, "market_value": b.cash, "fees": 0.0,
                     "fills": 0})
    return rows


def _money(value: float | None, *, signed: bool = False) -> str:
    if value is None:
        return "unknown"
    return f"{value:+,.2f}" if signed else f"{value:,.2f}"


def _print_books(books: list[PlanBook], total: Totals, accounts: dict[str, list[Drift] | str], *,
                 single: bool) -> None:
    if not books:
        console.print("No applied plans and no fills.")
    for b in books:
        where = "" if b.applied else " (no longer applied: its book starts from nothing)"
        console.print(f"[bold]Plan {escape(b.plan)}[/] on {escape(b.broker)}{escape(where)}: cash {_money(b.cash)} "
                      f"(started {_money(b.start_cash)}), equity {_money(b.equity)}, realised "
                      f"{_money(b.realized, signed=True)}, unrealised {_money(b.unrealized, signed=True)}, "
                      f"fees {_money(b.fees)}")
        rows = [{**_ticker_json(t), "mark_at": f"{_money(t.mark)} ({t.mark_date})" if t.mark is not None else "none",
                 "avg": _money(t.avg_cost) if t.avg_cost is not None else "-",
                 "realised": _money(t.realized, signed=True), "unrealised": _money(t.unrealized, signed=True),
                 "fee": _money(t.fees)} for t in b.tickers]
        _emit("positions", rows, POSITION_COLUMNS, as_json=False, as_csv=False, title="  positions",
              empty="  no fills yet", view=[("ticker", "ticker"), ("quantity", "quantity"), ("avg", "avg cost"),
                                            ("mark_at", "mark (date)"), ("realised", "realised"),
                                            ("unrealised", "unrealised"), ("fee", "fees")])
    if not single and len(books) > 1:
        held = ", ".join(f"{q:g} {t}" for t, q in total.positions.items()) or "nothing"
        console.print(f"[bold]Total[/]: cash {_money(total.cash)}, equity {_money(total.equity)}, realised "
                      f"{_money(total.realized, signed=True)}, unrealised {_money(total.unrealized, signed=True)}, "
                      f"fees {_money(total.fees)}; holds {escape(held)}")
    for account, found in accounts.items():
        if isinstance(found, str):
            err_console.print(f"[red]broker {escape(account)}:[/] {escape(found)}")
            continue
        off = [d for d in found if not d.agrees]
        state = "agrees with its plans" if not off else f"[red]DRIFT in {len(off)} ticker(s)[/]"
        console.print(f"Broker {escape(account)} {state}:")
        for d in found:
            mark = "" if d.agrees else f"  drift {d.difference:+g}"
            console.print(f"  {escape(d.ticker)}: broker {d.broker:g}, plans {d.plans:g}{mark}")
        if off:
            console.print("  Next: fills not collected yet reach DuckDB on the next daemon pass; a position "
                          "placed outside minitrade stays drift", style="dim")


# -- suspend / resume --------------------------------------------------------------------------

@app.command("suspend")
def suspend(plan: Annotated[str, PLAN_NAME],
            reason: str | None = typer.Option(None, "--reason", "-r", help="Why, recorded and shown with it."),
            as_json: bool = typer.Option(False, "--json", help="Print JSON (has format_version)."),
            repo: Path | None = REPO_OPTION, state_dir: Path | None = STATE_DIR_OPTION) -> None:
    """Stop a plan at once without editing git: its runs are skipped and nothing is sent for it.

    Recorded in DuckDB with who, when and why; the daemon honours it from its next pass (a due run
    is recorded SKIPPED with the reason; held orders stay unsent). `plan` and `status` show it as
    drift until `minitrade resume PLAN`, or until an applied commit disables or deletes the plan.

    Example: minitrade suspend sma-aapl --reason "earnings tonight"
    """
    from minitrade.runner.suspension import describe, operator, suspend_plan
    from minitrade.store.applied import AppliedState

    with handle_errors():
        store = _store(repo, state_dir)
        applied = AppliedState(store)
        done = suspend_plan(store, plan, reason=reason, by=operator(), now=clock.now())
        s = done.suspension
        if as_json:
            emit_json("suspend", {"plan": plan, "suspended": True, "already": done.already,
                                  "suspension": _override_json(s), "trading": done.trading})
            return
        if done.already:
            console.print(f"Plan {escape(plan)} is already {escape(describe(s, applied.zone))}; that stands.")
        else:
            console.print(f"Plan {escape(plan)} {escape(describe(s, applied.zone))}.")
        console.print(f"The daemon skips its runs and sends none of its orders; the file still says trading: "
                      f"{done.trading}. Undo: minitrade resume {escape(plan)}")


@app.command("resume")
def resume(plan: Annotated[str, PLAN_NAME],
           as_json: bool = typer.Option(False, "--json", help="Print JSON (has format_version)."),
           repo: Path | None = REPO_OPTION, state_dir: Path | None = STATE_DIR_OPTION) -> None:
    """End a plan's suspension: its next scheduled run goes ahead as its file says.

    Orders held while it was suspended are sent at the next daemon pass only if still valid.

    Example: minitrade resume sma-aapl
    """
    from minitrade.runner.suspension import describe, operator, resume_plan
    from minitrade.store.applied import AppliedState

    with handle_errors():
        store = _store(repo, state_dir)
        applied = AppliedState(store)
        ended = resume_plan(store, plan, by=operator(), now=clock.now())
        if as_json:
            emit_json("resume", {"plan": plan, "suspended": False,
                                 "ended": _override_json(ended) if ended else None})
            return
        if ended is None:
            console.print(f"Plan {escape(plan)} is not suspended; nothing to do.")
            return
        console.print(f"Plan {escape(plan)} resumed (it was {escape(describe(ended, applied.zone))}); its next "
                      "scheduled run goes ahead.")


def _override_json(s: Override) -> dict[str, Any]:
    return asdict(s)


def suspension_view(store: Store, zone: ZoneInfo | None, trading: dict[str, str | None]) -> dict[str, Any]:
    """Per suspended plan: JSON of the suspension and its drift line (`trading`: what the file says)."""
    from minitrade.runner.suspension import drift, suspended

    return {name: {**_override_json(s), "drift": drift(s, trading.get(name), zone)}
            for name, s in suspended(store).items()}


def plan_trading(plans: dict[str, Plan]) -> dict[str, str | None]:
    return {name: ("enabled" if p.trading_enabled else "disabled") for name, p in plans.items()}
