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

    @property
    def slug(self) -> str:
        """Folder name of the plan's page; plan names are already file-safe (models.NAME_PATTERN)."""
        return self.name

    @property
    def latest_run(self) -> Row | None:
        return max(self.runs, key=lambda r: _sortable(r.get("started_at")), default=None)

    @property
    def stats(self) -> dict[str, Any]:
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
class SiteInput:
    """The whole site: every plan, plus the applied commit and the last reconciliation."""

    plans: list[PlanInput]
    generated_at: datetime
    applied_commit: str | None = None
    last_reconciliation: Row | None = None
    title: str = "minitrade"
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


def curves(plan: PlanInput) -> Curves:
    """Equity, an equal-weight buy-and-hold basket of the same start value, and drawdown."""
    points = sorted(((iso_day(r["date"]), float(r["equity"])) for r in plan.equity), key=lambda p: p[0])
    dates = [d for d, _ in points]
    equity = [v for _, v in points]
    drawdown, peak = [], -math.inf
    for value in equity:
        peak = max(peak, value)
        drawdown.append(100 * (value / peak - 1) if peak > 0 else 0.0)
    return Curves(dates, equity, buy_and_hold(dates, equity[0] if equity else 0.0, plan.closes), drawdown)


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
    "expectancy": "Expectancy", "sqn": "SQN",
}


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
