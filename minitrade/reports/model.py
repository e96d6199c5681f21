"""What a report is made of: plain data handed over by the caller, and the series derived from it.

The report package never reads the store: the CLI (or the runner) gathers rows and passes them in,
so a report can be rendered from any source and tested without a database.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

Row = dict[str, Any]

OPEN_ORDER_STATUSES = ("PENDING_SUBMIT", "HELD", "SUBMITTED", "PARTIAL")


@dataclass
class PlanInput:
    """Everything one plan's page shows, as rows (column name -> value).

    `equity`, `trades` and `sim_fills` belong to `equity_run_id`, the latest finished run that
    recorded an equity curve; `closes` (ticker, date, close) price the buy-and-hold comparison.
    """

    name: str
    spec: Mapping[str, Any] | None = None
    applied_commit: str | None = None
    applied_at: datetime | None = None
    runs: list[Row] = field(default_factory=list)
    outputs: Mapping[str, str] = field(default_factory=dict)   # run id -> what its strategy printed
    equity_run_id: str | None = None
    equity: list[Row] = field(default_factory=list)
    closes: list[Row] = field(default_factory=list)
    trades: list[Row] = field(default_factory=list)
    sim_fills: list[Row] = field(default_factory=list)
    orders: list[Row] = field(default_factory=list)
    fills: list[Row] = field(default_factory=list)
    next_run: datetime | None = None
    broker_state: str | None = None
    live: LiveView | None = None
    sim_stats: dict[str, Any] | None = None
    """The simulation's statistics over the live period (from trade_start or replay's first day),
    not over the warm-up years before it; None: the run's own statistics."""
    backtest: BacktestView | None = None
    suspended: str | None = None        # "suspended at T by W: reason" while an override stands

    @property
    def slug(self) -> str:
        """Folder name of the plan's page; plan names are already file-safe (models.NAME_PATTERN)."""
        return self.name

    @property
    def latest_run(self) -> Row | None:
        return max(self.runs, key=lambda r: _sortable(r.get("started_at")), default=None)

    @property
    def stats(self) -> dict[str, Any]:
        """Statistics of the simulation shown: over the live period when known, else the run's own."""
        if self.sim_stats is not None:
            return self.sim_stats
        return self.run_stats

    @property
    def run_stats(self) -> dict[str, Any]:
        """Statistics of the run whose equity is shown (else of the latest run that has any)."""
        chosen = [r for r in self.runs if r.get("run_id") == self.equity_run_id]
        ordered = chosen or sorted(self.runs, key=lambda r: _sortable(r.get("started_at")), reverse=True)
        for run in ordered:
            stats = parse_stats(run.get("stats"))
            if stats:
                return stats
        return {}

    @property
    def pending_orders(self) -> list[Row]:
        return [o for o in self.orders if o.get("status") in OPEN_ORDER_STATUSES]

    @property
    def broker(self) -> str | None:
        value = (self.spec or {}).get("broker")
        return str(value) if value else None


@dataclass
class LiveView:
    """A plan's live record since it began trading, from its fills, beside the strict simulation.

    `label` is "Live" (real fills) or "Replay" (a replay store's simulated fills). Series share
    `dates`; `simulated` is the simulation rebased to the live start value; None is a gap.
    """

    label: str
    start: str
    end: str | None
    dates: list[str] = field(default_factory=list)
    equity: list[float | None] = field(default_factory=list)
    simulated: list[float | None] = field(default_factory=list)
    drawdown_pct: list[float | None] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    tracking: Row | None = None       # start, end, live_return_pct, simulated_return_pct, difference_pct
    book: Row = field(default_factory=dict)   # start_equity, cash, market_value, equity, realized, unrealized, fees
    positions: list[Row] = field(default_factory=list)
    note: str | None = None           # why a figure is missing (no cached close yet, say)

    @property
    def return_pct(self) -> float | None:
        value = self.stats.get("return_pct")
        return float(value) if isinstance(value, int | float) else None


@dataclass
class BacktestView:
    """The plan's latest research backtest (`minitrade backtest`): shown on its own page only."""

    run: Row
    equity: list[Row] = field(default_factory=list)
    closes: list[Row] = field(default_factory=list)
    trades: list[Row] = field(default_factory=list)

    @property
    def stats(self) -> dict[str, Any]:
        return parse_stats(self.run.get("stats"))


@dataclass
class SiteInput:
    """The whole site: every plan, plus the applied commit and the last reconciliation."""

    plans: list[PlanInput]
    generated_at: datetime
    applied_commit: str | None = None
    last_reconciliation: Row | None = None
    title: str = "minitrade"
    timezone: str = "UTC"               # minitrade.yaml's: every time on the site is shown in it
    present: datetime | None = None     # the "now" of last and next runs (a replay's: its clock)
    totals: Row | None = None           # every plan's book summed (runner.positions.totals)
    optimizations: list[Row] = field(default_factory=list)  # the newest `minitrade optimize` runs, linked
    secrets: tuple[str, ...] = field(default=(), repr=False)
    """Values masked in every written file (a token that slipped into an error text, say)."""


def parse_stats(value: Any) -> dict[str, Any]:
    """runs.stats is JSON text in the store; accept a dict too."""
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, str) and value.strip():
        try:
            loaded = json.loads(value)
        except json.JSONDecodeError:
            return {}
        return loaded if isinstance(loaded, dict) else {}
    return {}


def _sortable(value: Any) -> str:
    return value.isoformat() if isinstance(value, date | datetime) else str(value or "")


def iso_day(value: Any) -> str:
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return str(value)[:10]


@dataclass(frozen=True)
class Curves:
    """Aligned daily series for the charts and the equity export."""

    dates: list[str]
    equity: list[float]
    buy_hold: list[float | None]
    drawdown_pct: list[float]


def curves(plan: PlanInput, since: str | None = None) -> Curves:
    """Equity, an equal-weight buy-and-hold basket of the same start value, and drawdown.

    `since` (an ISO day) starts the curves at the last day before it (the period's starting value).
    """
    return equity_curves(plan.equity, plan.closes, since)


def equity_curves(rows: Sequence[Row], closes: Sequence[Row], since: str | None = None) -> Curves:
    """`curves` of any equity rows (date, equity) and the closes that price buy-and-hold."""
    points = sorted(((iso_day(r["date"]), float(r["equity"])) for r in rows), key=lambda p: p[0])
    if since:
        before = [i for i, (d, _) in enumerate(points) if d < since]
        points = points[before[-1] if before else 0:]
    dates = [d for d, _ in points]
    equity = [v for _, v in points]
    drawdown, peak = [], -math.inf
    for value in equity:
        peak = max(peak, value)
        drawdown.append(100 * (value / peak - 1) if peak > 0 else 0.0)
    return Curves(dates, equity, buy_and_hold(dates, equity[0] if equity else 0.0, closes), drawdown)


def buy_and_hold(dates: Sequence[str], start_value: float, closes: Sequence[Row]) -> list[float | None]:
    """Equal-weight basket bought at each ticker's first close on or after the first date.

    A ticker without a price on a day carries its last close forward; days before any ticker
    has a price are None (the chart leaves a gap rather than inventing a value).
    """
    if not dates or not closes or start_value <= 0:
        return [None] * len(dates)
    first_day = dates[0]
    by_ticker: dict[str, dict[str, float]] = {}
    for r in closes:
        day = iso_day(r["date"])
        if day >= first_day and r.get("close") is not None:
            by_ticker.setdefault(str(r["ticker"]), {})[day] = float(r["close"])
    if not by_ticker:
        return [None] * len(dates)
    base: dict[str, float] = {}
    last: dict[str, float] = {}
    out: list[float | None] = []
    for day in dates:
        for ticker, series in by_ticker.items():
            if day in series:
                last[ticker] = series[day]
                base.setdefault(ticker, series[day])
        held = [last[t] / base[t] for t in base if base[t] > 0]
        out.append(start_value * sum(held) / len(held) if held and len(base) == len(by_ticker) else None)
    return out


STAT_LABELS: dict[str, str] = {
    "start": "Start", "end": "End", "duration_days": "Duration (days)", "bars": "Bars",
    "start_equity": "Start equity", "final_equity": "Final equity", "peak_equity": "Peak equity",
    "return_pct": "Return", "buy_hold_return_pct": "Buy & hold return", "cagr_pct": "CAGR",
    "volatility_pct": "Volatility (ann.)", "sharpe": "Sharpe ratio", "sortino": "Sortino ratio",
    "calmar": "Calmar ratio", "max_drawdown_pct": "Max drawdown", "avg_drawdown_pct": "Avg drawdown",
    "max_drawdown_days": "Max drawdown duration (days)", "exposure_pct": "Exposure",
    "trades": "Trades", "win_rate_pct": "Win rate", "best_trade_pct": "Best trade",
    "worst_trade_pct": "Worst trade", "avg_trade_pct": "Avg trade", "profit_factor": "Profit factor",
    "expectancy": "Expectancy", "sqn": "SQN", "fills": "Fills",
}


def sparkline(values: Sequence[float | None], width: int = 120, height: int = 28) -> str:
    """SVG polyline points of a small equity line (no script: the index draws it as plain SVG)."""
    known = [(i, v) for i, v in enumerate(values) if v is not None and math.isfinite(v)]
    if len(known) < 2:
        return ""
    low, high = min(v for _, v in known), max(v for _, v in known)
    span, last = (high - low) or 1.0, max(len(values) - 1, 1)
    return " ".join(f"{i * width / last:.1f},{height - 1 - (v - low) * (height - 2) / span:.1f}" for i, v in known)


def status_tags(spec: Mapping[str, Any] | None, suspended: str | None) -> list[str]:
    """What the plan's files say, as applied, and any override: 'trading enabled' only when they say so."""
    if spec is None:
        return ["not applied"]
    tags = ["trading enabled" if spec.get("trading") == "enabled" else "trading disabled"]
    if spec.get("backtest") == "disabled":
        tags.append("schedule disabled")
    if suspended:
        tags.append("suspended")
    return tags


def stat_rows(stats: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(label, formatted value) for every statistic: known ones first in a fixed order."""
    known = [k for k in STAT_LABELS if k in stats]
    other = sorted(k for k in stats if k not in STAT_LABELS and not k.startswith("_"))
    return [(STAT_LABELS.get(k, k.replace("_", " ").capitalize()), format_stat(k, stats[k]))
            for k in [*known, *other]]


def format_stat(key: str, value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if not math.isfinite(float(value)):
        return "–"
    if key.endswith("_pct"):
        return f"{value:+.2f}%" if key in ("return_pct", "buy_hold_return_pct", "cagr_pct") else f"{value:.2f}%"
    if key.endswith("_equity") or key == "expectancy":
        return f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,d}"
    return f"{value:,.2f}"
