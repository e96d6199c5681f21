"""Write the report site: index.html, one page per plan, CSV/JSON exports, one shared chart script.

Layout under `state/reports/`:

    index.html  index.csv  index.json  version.txt
    assets/chart.js  assets/live.js  assets/style.css
    plans/<plan>/index.html  equity.csv  live.csv  runs.csv  orders.csv  fills.csv  trades.csv  plan.json
    plans/<plan>/backtest.html  backtest.csv      (the latest research backtest, when there is one)

A plan's page leads with its live record (equity from fills since it began trading, beside the
strict simulation over the same days); the simulation follows, over the same period; research
backtests never take the page's headline. Every time is shown in minitrade.yaml's timezone.

Pages open from disk with no network: the chart data sits in the page as JSON, the scripts and
stylesheet are local files, and a Content-Security-Policy forbids anything else. Served by
`minitrade serve`, `live.js` polls version.txt (same origin) and reloads the page when it changes.
"""

from __future__ import annotations

import contextlib
import csv
import html
import io
import json
import math
import os
from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
import markupsafe
import yaml

from minitrade.reports.model import (
    PlanInput,
    SiteInput,
    curves,
    equity_curves,
    format_stat,
    iso_day,
    parse_stats,
    sparkline,
    stat_rows,
    status_tags,
)

Progress = Callable[[int, int, str], None]
ASSETS = ("chart.js", "live.js", "style.css")
MAX_TABLE_ROWS = 500  # more rows are in the CSV export; a phone should not render 10k rows

_PACKAGE = resources.files("minitrade.reports")


def _template(name: str) -> str:
    return (_PACKAGE / "templates" / name).read_text(encoding="utf-8")


def _asset(name: str) -> str:
    return (_PACKAGE / "assets" / name).read_text(encoding="utf-8")


_ENV = jinja2.Environment(loader=jinja2.FunctionLoader(_template), autoescape=True,
                          trim_blocks=True, lstrip_blocks=True)


@jinja2.pass_context
def _when(context: Any, value: Any) -> str:
    """A time in the site's one timezone (minitrade.yaml's), so last and next runs read alike."""
    site = context.get("site")
    return when(value, site.timezone if isinstance(site, SiteInput) else "UTC")


def when(value: Any, zone: str = "UTC") -> str:
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            with contextlib.suppress(ValueError, KeyError):  # an unknown zone name: as recorded
                value = value.astimezone(ZoneInfo(zone))
        return str(value.strftime("%Y-%m-%d %H:%M %Z")).strip()
    return "" if value is None else str(value)


def _money(value: Any) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return f"{value:,.2f}"
    return "–"


def _short(commit: Any) -> str:
    return str(commit)[:7] if commit else "–"


def _stat(value: Any, key: str) -> str:
    return "–" if isinstance(value, jinja2.Undefined) else format_stat(key, value)


_ENV.filters.update(when=_when, short=_short, stat=_stat, money=_money)


def render_site(site: SiteInput, out_dir: Path, *, progress: Progress | None = None) -> Path:
    """Write every plan page, then the index; returns the path of index.html.

    `progress(done, total, plan)` is called after each plan page (the CLI shows a bar).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    total = len(site.plans)
    for done, plan in enumerate(site.plans, start=1):
        render_plan(plan, out_dir, site=site)
        if progress:
            progress(done, total, plan.name)
    return render_index(site, out_dir)


def render_index(site: SiteInput, out_dir: Path) -> Path:
    """index.html (every plan at a glance) with index.csv and index.json beside it."""
    _copy_assets(out_dir / "assets")
    rows = [_summary(p) for p in site.plans]
    page = _ENV.get_template("index.html.j2").render(site=site, rows=rows)
    _write(out_dir / "index.html", page, site.secrets)
    hidden = ("href", "tags", "spark")
    _write(out_dir / "index.csv", _csv(rows, [k for k in rows[0] if k not in hidden] if rows else ["plan"]),
           site.secrets)
    _write(out_dir / "index.json", _json({
        "generated_at": site.generated_at, "present": site.present, "timezone": site.timezone,
        "applied_commit": site.applied_commit, "totals": site.totals,
        "plans": [{k: v for k, v in r.items() if k not in ("href", "spark")} for r in rows]}), site.secrets)
    return out_dir / "index.html"


def render_plan(plan: PlanInput, out_dir: Path, *, site: SiteInput) -> Path:
    """plans/<name>/index.html with its CSV and JSON exports."""
    folder = out_dir / "plans" / plan.slug
    folder.mkdir(parents=True, exist_ok=True)
    if not all((out_dir / "assets" / name).is_file() for name in ASSETS):
        _copy_assets(out_dir / "assets")
    trade_start = str((plan.spec or {}).get("trade_start") or "")
    period = plan.live.start if plan.live else trade_start
    c = curves(plan, period or None)
    if len(c.dates) < 2:  # the simulation ends before the live period: show it from trade_start
        c = curves(plan, trade_start or None)
    if len(c.dates) < 2:
        c = curves(plan)
    start_day = next((d for d in c.dates if trade_start and d >= trade_start), None)
    markers = [{"date": start_day, "label": "trading starts"}] if start_day and start_day != c.dates[0] else []
    chart_equity = {"dates": c.dates, "format": "money", "markers": markers, "series": [
        {"name": "Strategy", "values": _finite(c.equity, 2)},
        {"name": "Buy & hold", "values": _finite(c.buy_hold, 2)},
    ]}
    live = plan.live
    chart_live = None if live is None or not live.dates else {
        "dates": live.dates, "format": "money", "series": [
            {"name": live.label, "values": _finite(live.equity, 2)},
            {"name": "Simulated", "values": _finite(live.simulated, 2)}]}
    chart_live_dd = None if chart_live is None or live is None else {
        "dates": live.dates, "format": "pct", "area": True,
        "series": [{"name": "Drawdown", "values": _finite(live.drawdown_pct, 3)}]}
    chart_drawdown = {"dates": c.dates, "format": "pct", "area": True,
                      "series": [{"name": "Drawdown", "values": _finite(c.drawdown_pct, 3)}]}
    runs = sorted(({**r, "return_pct": parse_stats(r.get("stats")).get("return_pct")} for r in plan.runs),
                  key=lambda r: str(r.get("started_at") or ""), reverse=True)
    orders = sorted(plan.orders, key=lambda r: str(r.get("created_at") or ""), reverse=True)
    fills = sorted(plan.fills, key=lambda r: str(r.get("filled_at") or ""), reverse=True)
    spec_yaml = yaml.safe_dump(_plain(plan.spec), sort_keys=False, allow_unicode=True) if plan.spec else ""
    page = _ENV.get_template("plan.html.j2").render(
        site=site, plan=plan, summary=_summary(plan), stats=stat_rows(plan.stats),
        live=live, live_stats=stat_rows(live.stats) if live else [], chart_live=chart_live,
        chart_live_dd=chart_live_dd, sim_period=c.dates[0] if c.dates else None,
        chart_equity=chart_equity, chart_drawdown=chart_drawdown, runs=runs[:MAX_TABLE_ROWS],
        orders=orders[:MAX_TABLE_ROWS], fills=fills[:MAX_TABLE_ROWS], trades=plan.trades[:MAX_TABLE_ROWS],
        counts={"runs": len(runs), "orders": len(orders), "fills": len(fills), "trades": len(plan.trades)},
        max_rows=MAX_TABLE_ROWS, spec_yaml=spec_yaml, has_chart=bool(c.dates))
    _write(folder / "index.html", page, site.secrets)
    equity_rows = [{"date": d, "equity": e, "buy_hold": b, "drawdown_pct": dd}
                   for d, e, b, dd in zip(c.dates, c.equity, c.buy_hold, c.drawdown_pct, strict=True)]
    _write(folder / "equity.csv", _csv(equity_rows, ["date", "equity", "buy_hold", "drawdown_pct"]), site.secrets)
    _write(folder / "runs.csv", _csv(runs, _RUN_COLUMNS), site.secrets)
    live_rows = [] if live is None else [
        {"date": d, "equity": e, "simulated": s, "drawdown_pct": dd}
        for d, e, s, dd in zip(live.dates, live.equity, live.simulated, live.drawdown_pct, strict=True)]
    _write(folder / "live.csv", _csv(live_rows, ["date", "equity", "simulated", "drawdown_pct"]), site.secrets)
    if plan.backtest is not None:
        render_backtest(plan, out_dir, site=site)
    if plan.outputs:  # linked from the runs table: output/<run>.txt
        (folder / "output").mkdir(exist_ok=True)
    for run_id, text in plan.outputs.items():
        _write(folder / "output" / f"{run_id}.txt", text, site.secrets)
    _write(folder / "orders.csv", _csv(orders, _columns(orders)), site.secrets)
    _write(folder / "fills.csv", _csv(fills, _columns(fills)), site.secrets)
    _write(folder / "trades.csv", _csv(plan.trades, _columns(plan.trades)), site.secrets)
    _write(folder / "plan.json", _json({
        "plan": plan.name, "spec": plan.spec, "applied_commit": plan.applied_commit,
        "summary": _summary(plan), "stats": plan.stats, "equity_run_id": plan.equity_run_id,
        "live": None if live is None else {"label": live.label, "start": live.start, "end": live.end,
                                           "stats": live.stats, "tracking": live.tracking, "book": live.book,
                                           "positions": live.positions, "note": live.note},
        "equity": equity_rows, "runs": runs, "orders": orders, "fills": fills, "trades": plan.trades,
    }), site.secrets)
    return folder / "index.html"


def render_backtest(plan: PlanInput, out_dir: Path, *, site: SiteInput) -> Path:
    """plans/<name>/backtest.html: the latest research backtest, on its own page (never the headline)."""
    assert plan.backtest is not None
    folder = out_dir / "plans" / plan.slug
    bt = plan.backtest
    c = equity_curves(bt.equity, bt.closes)
    chart = {"dates": c.dates, "format": "money", "series": [
        {"name": "Backtest", "values": _finite(c.equity, 2)}, {"name": "Buy & hold", "values": _finite(c.buy_hold, 2)}]}
    drawdown = {"dates": c.dates, "format": "pct", "area": True,
                "series": [{"name": "Drawdown", "values": _finite(c.drawdown_pct, 3)}]}
    page = _ENV.get_template("backtest.html.j2").render(
        site=site, plan=plan, bt=bt, stats=stat_rows(bt.stats), chart_equity=chart, chart_drawdown=drawdown,
        trades=bt.trades[:MAX_TABLE_ROWS], count=len(bt.trades), max_rows=MAX_TABLE_ROWS, has_chart=bool(c.dates))
    _write(folder / "backtest.html", page, site.secrets)
    rows = [{"date": d, "equity": e, "buy_hold": b, "drawdown_pct": dd}
            for d, e, b, dd in zip(c.dates, c.equity, c.buy_hold, c.drawdown_pct, strict=True)]
    _write(folder / "backtest.csv", _csv(rows, ["date", "equity", "buy_hold", "drawdown_pct"]), site.secrets)
    return folder / "backtest.html"


_RUN_COLUMNS = ["run_id", "kind", "status", "started_at", "finished_at", "commit_sha", "plan_digest",
                "start_date", "end_date", "return_pct", "error", "notes", "output_bytes", "stats"]


def _summary(plan: PlanInput) -> dict[str, Any]:
    """One line of the index: what a person checks first each morning."""
    latest = max((r for r in plan.runs if r.get("kind") != "backtest"),
                 key=lambda r: str(r.get("started_at") or ""), default=None)
    live = plan.live
    tags = status_tags(plan.spec, plan.suspended)
    return {
        "plan": plan.name, "href": f"plans/{plan.slug}/index.html", "status": " · ".join(tags), "tags": tags,
        "suspended": plan.suspended or "",
        "last_run": latest.get("started_at") if latest else None,
        "last_outcome": latest.get("status") if latest else None,
        "last_error": (latest.get("error") or "")[:200] if latest else "",
        "next_run": plan.next_run,
        "live_since": live.start if live else None,
        "return_pct": live.return_pct if live else None,
        "max_drawdown_pct": live.stats.get("max_drawdown_pct") if live else None,
        "equity": live.book.get("equity") if live else None,
        "tracking_difference_pct": (live.tracking or {}).get("difference_pct") if live else None,
        "pending_orders": len(plan.pending_orders),
        "broker": plan.broker, "broker_state": plan.broker_state, "commit": plan.applied_commit,
        "spark": sparkline(live.equity) if live else "",
    }


def _copy_assets(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in ASSETS:
        _write(folder / name, _asset(name))


def _write(path: Path, text: str, secrets: Sequence[str] = ()) -> None:
    """Mask `secrets` in every form they can take in our files, then write via a temporary file
    and a rename, so an open page never sees half a file."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        forms = {secret, html.escape(secret), str(markupsafe.escape(secret)), json.dumps(secret)[1:-1],
                 secret.replace('"', '""')}  # as written, in HTML, in JSON, in a quoted CSV field
        for form in forms:
            text = text.replace(form, "***")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _columns(rows: Sequence[dict[str, Any]]) -> list[str]:
    return list(rows[0]) if rows else []


def _cell(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict | list):
        return json.dumps(value, default=str)
    return "" if value is None else value


def _csv(rows: Iterable[dict[str, Any]], columns: Sequence[str]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in columns])
    return out.getvalue()


def _finite(values: Sequence[float | None], digits: int) -> list[float | None]:
    """Chart values rounded for a smaller page; NaN/inf become gaps (JSON has neither)."""
    return [round(v, digits) if v is not None and math.isfinite(v) else None for v in values]


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        value = float(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN/inf; the chart leaves a gap
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return str(value)


def _json(value: Any) -> str:
    """Compact JSON through the C encoder; the slow cleaning pass runs only if NaN/inf slipped in."""
    text = json.dumps(value, default=_json_default, separators=(",", ":"))
    if "NaN" in text or "Infinity" in text:
        text = json.dumps(_plain(value), default=_json_default, separators=(",", ":"), allow_nan=False)
    return text + "\n"


__all__ = ["render_backtest", "render_index", "render_plan", "render_site", "iso_day", "when"]
