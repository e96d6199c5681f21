"""Publishing the report site from the store: gather every plan's records and render the pages.

Lives in the orchestration layer because it joins the store, the scheduler, the book of fills and
the renderer; `minitrade report`, the daemon (after each pass that ran something) and `replay` call
it. A plan's page leads with its live record (`runner.performance`: equity from its fills since it
began trading, beside what the strict simulation expected); research backtests get a page of their
own. Each publish ends by rewriting `version.txt`, which `minitrade serve`'s pages poll to reload.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd

from minitrade import clock
from minitrade.errors import ConfigError, MinitradeError
from minitrade.models import Plan
from minitrade.records import Fill, Order
from minitrade.reports import PlanInput, SiteInput, render_index, render_plan
from minitrade.reports.model import BacktestView, LiveView
from minitrade.runner import performance
from minitrade.runner.positions import PlanBook, PlanStart, plan_book, totals
from minitrade.runner.suspension import describe
from minitrade.store import Store, reporting
from minitrade.store import optimizations as optimization_sql
from minitrade.store import orders as order_sql
from minitrade.store import suspensions as suspension_sql

log = logging.getLogger("minitrade.report")
VERSION_FILE = "version.txt"
OPTIMIZE_FOLDER = "optimize"  # `minitrade optimize` writes its pages there, under the site's folder

Progress = Callable[[int, int, str], None]


def next_run(spec: Mapping[str, Any] | None, now: datetime) -> datetime | None:
    """The applied plan's next tick, or None (suspended, deleted, or its calendar has ended)."""
    if not spec or spec.get("backtest") == "disabled":
        return None
    from minitrade.scheduler import next_run_times

    try:
        times = next_run_times(Plan.model_validate(dict(spec)), now, count=1)
    except (ValueError, MinitradeError):
        return None
    return times[0] if times else None


def broker_state(plan: PlanInput, known: Mapping[str, str]) -> str | None:
    """What the report can say about the broker session without contacting it."""
    broker = plan.broker
    if broker is None:
        return None
    if broker in known:
        return known[broker]
    if broker == "manual":
        return "ready"
    if any(o.get("status") == "HELD" for o in plan.orders):
        return "login needed: orders held"
    return "not checked (minitrade ib status)"


def write_site(store: Store, out_dir: Path, *, plans: list[str] | None = None,
               broker_states: Mapping[str, str] | None = None, progress: Progress | None = None,
               now: datetime | None = None, secrets: Sequence[str] = ()) -> Path:
    """Gather every (or the named) plan from the store and write the site; returns index.html.

    The index always lists every plan; `plans` limits which plan pages are rewritten. The runner
    calls this after each run with the live broker state it knows. `secrets` are masked in every
    file written (`minitrade.notify.settings_secrets(settings)` gives them).
    """
    real = clock.now()
    with store.transaction() as con:
        names = reporting.plan_names(con)
        unknown = sorted(set(plans or []) - set(names))
        if unknown:
            from minitrade.errors import ConfigIssue

            raise ConfigError([ConfigIssue("state", None, "plan", f"no plan named {n!r} in the store",
                                           f"known: {', '.join(names) or 'none yet'}") for n in unknown])
        replay = reporting.is_replay(con)
        # one present for last and next runs: a replay's is its simulated clock (its last run)
        present = now or (_last_run_at(con) if replay else None) or real
        zone = reporting.settings_timezone(con) or "UTC"
        site = SiteInput(plans=[], generated_at=real, applied_commit=reporting.applied_commit(con),
                         last_reconciliation=reporting.last_reconciliation(con), secrets=tuple(secrets),
                         timezone=zone, present=present)
        site.optimizations = _optimizations(con, out_dir)
        held = suspension_sql.suspended(con)
        all_orders, all_fills = order_sql.orders_of(con, None), order_sql.fills_of(con, None)
        books: list[tuple[PlanBook, float | None]] = []
        wanted = set(plans or names)
        for done, name in enumerate(names, start=1):
            rows = reporting.plan_rows(con, name)
            plan = PlanInput(name=name, **rows)
            if name in held:
                plan.suspended = describe(held[name], _zone(zone))
            book = _live(con, plan, all_orders, all_fills, replay=replay)
            if book is not None:
                books.append(book)
            if name in wanted:
                backtest = reporting.backtest_rows(con, name, dict(plan.spec or {}) or None)
                plan.backtest = BacktestView(**backtest) if backtest else None
            else:  # the index needs the summary only
                plan.equity, plan.closes, plan.trades, plan.sim_fills, plan.fills = [], [], [], [], []
            site.plans.append(plan)
            if progress:
                progress(done, len(names) * 2, f"read {name}")
    site.totals = _totals(books) if books else None
    for plan in site.plans:
        plan.next_run = next_run(plan.spec, present)
        plan.broker_state = broker_state(plan, broker_states or {})
    for done, plan in enumerate(site.plans, start=1):
        if plan.name in wanted:
            render_plan(plan, out_dir, site=site)
        if progress:
            progress(len(names) + done, len(names) * 2, f"wrote {plan.name}")
    index = render_index(site, out_dir)
    write_version(out_dir)
    return index


def write_version(out_dir: Path) -> str:
    """A new token in version.txt: pages served by `minitrade serve` reload when it changes."""
    token = f"{clock.now().isoformat()} {uuid.uuid4().hex}"
    tmp = out_dir / f".{VERSION_FILE}.tmp"
    tmp.write_text(token + "\n", encoding="utf-8")
    tmp.replace(out_dir / VERSION_FILE)
    return token


def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ValueError, KeyError):
        return None


def _optimizations(con: Any, out_dir: Path) -> list[dict[str, Any]]:
    """The newest optimisations for the index, each linked to its page when that page exists."""
    rows = []
    for o in optimization_sql.recent(con):
        page = Path(OPTIMIZE_FOLDER) / f"{o.optimization_id}.html"
        rows.append({"id": o.optimization_id, "plan": o.plan, "metric": o.metric, "status": o.status,
                     "started_at": o.started_at, "best_params": o.best_params,
                     "href": page.as_posix() if (out_dir / page).is_file() else None})
    return rows


def _last_run_at(con: Any) -> datetime | None:
    row = con.execute("SELECT max(coalesce(tick_at, started_at)) FROM runs").fetchone()
    return row[0] if row and isinstance(row[0], datetime) else None


def _totals(books: Sequence[tuple[PlanBook, float | None]]) -> dict[str, Any]:
    """Every plan's book summed; the return is against the books' start values (cash and preexisting
    positions at their start marks), unknown when one of them is."""
    t = totals([b for b, _ in books])
    starts = [s for _, s in books]
    start = None if any(s is None for s in starts) else sum(s for s in starts if s is not None)
    return {"start_equity": start, "cash": t.cash, "market_value": t.market_value, "equity": t.equity,
            "realized": t.realized, "unrealized": t.unrealized, "fees": t.fees, "positions": t.positions,
            "return_pct": (100 * (t.equity / start - 1) if t.equity is not None and start else None)}


def _live(con: Any, plan: PlanInput, orders: list[Order], fills: list[Fill], *,
          replay: bool) -> tuple[PlanBook, float | None] | None:
    """Fill `plan.live` (and the simulation's statistics over the same period); returns its book and
    start value."""
    spec = _plan_model(plan.spec)
    if spec is None:
        return None
    from minitrade.scheduler import plan_zone
    from minitrade.trading_calendar import get_calendar

    zone = plan_zone(spec, get_calendar(spec.calendar))
    first_run = reporting.first_live_day(con, plan.name)
    trade_start = spec.trade_start or spec.backtest_start   # no trade_start: signals trade from the start
    first_day = max(trade_start, _day(first_run, zone)) if first_run is not None else trade_start
    tickers = sorted({*spec.tickers, *spec.positions, *(o.ticker for o in orders if o.plan == plan.name)})
    start = PlanStart(plan.name, spec.broker, float(spec.cash), {t: float(q) for t, q in spec.positions.items()})
    start_marks = reporting.marks_as_of(con, plan.name, spec.data_source, sorted(spec.positions), trade_start)
    closes = performance.closes_frame(reporting.marks(con, plan.name, spec.data_source, tickers,
                                                      first_day - timedelta(days=10)))
    latest = {t: (closes[t].last_valid_index().date(), float(closes[t].dropna().iloc[-1]))
              for t in closes.columns if closes[t].notna().any()}
    book = plan_book(start, orders, fills, marks=latest, start_marks=start_marks)
    sim = _simulated(plan.equity)
    plan.sim_stats = _sim_stats(plan, sim, closes, first_day) if first_run is not None else None
    if first_run is None:
        return book, performance.start_value(start, reporting.marks_as_of(
            con, plan.name, spec.data_source, sorted(spec.positions), first_day - timedelta(days=1)))
    # the live return's base is the book at the close before its first day, the simulation's base too
    # (a replay from February does not count January's move of a preexisting position)
    base_marks = reporting.marks_as_of(con, plan.name, spec.data_source, sorted(spec.positions),
                                       first_day - timedelta(days=1))
    curve = performance.live_equity(start, orders, fills, closes, first_day=first_day, zone=zone,
                                    start_marks=base_marks)
    stats = performance.period_stats(curve.equity, start_equity=curve.start_equity,
                                     closes=closes[[t for t in spec.tickers if t in closes.columns]],
                                     exposure=curve.exposure)
    if stats:
        stats["fills"] = curve.fills
    track = performance.tracking(curve, sim, first_day=first_day) if not sim.empty else None
    dates = [d.date().isoformat() for d in curve.equity.index]
    peak, drawdown = -math.inf, []
    for value in curve.equity:
        if math.isfinite(value):
            peak = max(peak, value)
        drawdown.append(100 * (value / peak - 1) if math.isfinite(value) and peak > 0 else None)
    plan.live = LiveView(
        label="Replay" if replay else "Live", start=first_day.isoformat(), end=dates[-1] if dates else None,
        dates=dates, equity=_values(curve.equity),
        simulated=_values(track.simulated) if track else [None] * len(dates), drawdown_pct=drawdown, stats=stats,
        tracking=None if track is None else {
            "start": track.start, "end": track.end, "live_return_pct": track.live_return_pct,
            "simulated_return_pct": track.simulated_return_pct, "difference_pct": track.difference_pct},
        book={"start_equity": curve.start_equity, "cash": book.cash, "market_value": book.market_value,
              "equity": book.equity, "realized": book.realized, "unrealized": book.unrealized, "fees": book.fees},
        positions=[{"ticker": t.ticker, "quantity": t.quantity, "avg_cost": t.avg_cost, "mark": t.mark,
                    "mark_date": t.mark_date, "market_value": t.market_value, "realized": t.realized,
                    "unrealized": t.unrealized, "fees": t.fees, "fills": t.fills} for t in book.tickers],
        note=_note(curve, first_day))
    return book, curve.start_equity


def _note(curve: performance.LiveCurve, first_day: date) -> str | None:
    if curve.equity.empty:
        return f"no cached close since {first_day.isoformat()} yet: the live equity starts with the next bar"
    if curve.start_equity is None:
        return "a preexisting position has no cached close on or before trade_start: its return is unknown"
    if curve.equity.isna().any():
        return "days before a held ticker's first cached close have no value"
    return None


def _sim_stats(plan: PlanInput, sim: pd.Series, closes: pd.DataFrame, first_day: date) -> dict[str, Any] | None:
    """The simulation's statistics from the live period's start (from the day before it, its base)."""
    if sim.empty or not (sim.index >= pd.Timestamp(first_day)).any():
        return None
    before = sim[sim.index < pd.Timestamp(first_day)]
    base = float(before.iloc[-1]) if len(before) else None
    span = sim[sim.index >= pd.Timestamp(first_day)]
    held = pd.Series([bool(r.get("positions") not in (None, "", "{}")) for r in plan.equity],
                     index=pd.DatetimeIndex([pd.Timestamp(str(r["date"])[:10]) for r in plan.equity]), dtype=float)
    trades = pd.DataFrame(plan.trades, columns=["ticker", "exit_date", "pnl", "return_pct"])
    if len(trades):
        exits = pd.to_datetime(trades["exit_date"])
        trades = trades[exits.notna() & (exits >= pd.Timestamp(first_day))]
    universe = [t for t in ((plan.spec or {}).get("universe") or []) if t in closes.columns]
    stats = performance.period_stats(span, start_equity=base if base is not None else float(span.iloc[0]),
                                     closes=closes[universe], exposure=held, trades=trades)
    return stats or None


def _simulated(rows: Sequence[Mapping[str, Any]]) -> pd.Series:
    if not rows:
        return pd.Series(dtype=float)
    return pd.Series([float(r["equity"]) for r in rows],
                     index=pd.DatetimeIndex([pd.Timestamp(str(r["date"])[:10]) for r in rows]), dtype=float)


def _values(series: pd.Series) -> list[float | None]:
    return [float(v) if v is not None and math.isfinite(v) else None for v in series.tolist()]


def _day(value: Any, zone: ZoneInfo) -> date:
    if isinstance(value, datetime):
        return (value.astimezone(zone) if value.tzinfo else value).date()
    return date.fromisoformat(str(value)[:10])


def _plan_model(spec: Mapping[str, Any] | None) -> Plan | None:
    if not spec:
        return None
    try:
        return Plan.model_validate(dict(spec))
    except ValueError:
        return None
