"""One page per optimisation: a heatmap of two parameters, the ranked trials, and the best trial's
equity against the plan's current parameters (or, for walk-forward, in-sample next to out-of-sample).

A single self-contained HTML file: the charts are inline SVG drawn here, the style sits in the
page, there is no script, and the Content-Security-Policy forbids fetching anything.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
import markupsafe

_PACKAGE = resources.files("minitrade.reports")
_ENV = jinja2.Environment(loader=jinja2.FunctionLoader(
    lambda name: (_PACKAGE / "templates" / name).read_text(encoding="utf-8")),
    autoescape=True, trim_blocks=True, lstrip_blocks=True)
MAX_ROWS = 500
SHOWN_STATS = ("return_pct", "cagr_pct", "sharpe", "max_drawdown_pct", "trades")


@dataclass
class TrialView:
    """One trial as the page shows it."""

    rank: int | None
    params: dict[str, Any]
    score: float | None
    stats: dict[str, Any] | None
    error: str | None
    seconds: float
    worker: str


@dataclass
class WindowView:
    """One walk-forward window: in-sample best and its out-of-sample score, and the plan's own."""

    number: int
    train: str
    test: str
    params: dict[str, Any] | None
    in_sample: float | None
    out_of_sample: float | None
    plan_out_of_sample: float | None


@dataclass
class OptimizationPage:
    """Plain data for the page (built by the command from its results)."""

    optimization_id: str
    plan: str
    metric: str
    names: list[str]
    trials: list[TrialView]
    best_params: dict[str, Any] | None
    plan_params: dict[str, Any]
    yaml: str
    executor: str
    period: str
    commit: str | None = None
    best_equity: list[tuple[str, float]] = field(default_factory=list)
    plan_equity: list[tuple[str, float]] = field(default_factory=list)
    windows: list[WindowView] = field(default_factory=list)
    plan_file: str = ""


def write_page(folder: Path, page: OptimizationPage) -> Path:
    """Write `<folder>/<optimization_id>.html`; its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{page.optimization_id}.html"
    path.write_text(render(page), encoding="utf-8")
    return path


def render(page: OptimizationPage) -> str:
    """The page's HTML."""
    ranked = sorted((t for t in page.trials if t.rank is not None), key=lambda t: t.rank or 0)
    failed = [t for t in page.trials if t.rank is None]
    return _ENV.get_template("optimization.html.j2").render(
        page=page, rows=ranked[:MAX_ROWS], failed=failed[:MAX_ROWS], shown=SHOWN_STATS,
        heatmap=heatmap(page.trials, page.names, page.metric) if len(page.names) >= 2 else None,
        chart=equity_chart(page.best_equity, page.plan_equity) if page.best_equity else None,
        fmt=fmt)


def fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 100 else f"{value:,.1f}"
    return str(value)


def _colour(value: float | None, low: float, high: float) -> str:
    """Red (worst) through pale yellow to green (best)."""
    if value is None:
        return "#e5e5e5"
    t = 0.5 if high == low else (value - low) / (high - low)
    if t < 0.5:
        r, g, b = 215, int(48 + (217 - 48) * t * 2), int(39 + (140 - 39) * t * 2)
    else:
        r, g, b = int(215 - (215 - 26) * (t - 0.5) * 2), int(217 - (217 - 152) * (t - 0.5) * 2), \
                  int(140 - (140 - 80) * (t - 0.5) * 2)
    return f"#{r:02x}{g:02x}{b:02x}"


def heatmap(trials: Sequence[TrialView], names: Sequence[str], metric: str) -> markupsafe.Markup:
    """An SVG grid of the first two parameters; each cell the best score over the other parameters."""
    x_name, y_name = names[0], names[1]
    xs = sorted({t.params.get(x_name) for t in trials}, key=_sort_key)
    ys = sorted({t.params.get(y_name) for t in trials}, key=_sort_key)
    cells: dict[tuple[Any, Any], float] = {}
    for t in trials:
        if t.score is None:
            continue
        key = (t.params.get(x_name), t.params.get(y_name))
        cells[key] = max(cells.get(key, -math.inf), t.score)
    values = list(cells.values())
    low, high = (min(values), max(values)) if values else (0.0, 0.0)
    cw, ch, left, top = 56, 24, 70, 30
    width, height = left + cw * len(xs) + 10, top + ch * len(ys) + 30
    esc = markupsafe.escape
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'aria-label="{esc(metric)} by {esc(x_name)} and {esc(y_name)}" font-size="11" '
             f'font-family="sans-serif">',
             f'<text x="{left}" y="14" font-weight="bold">{esc(x_name)} →</text>',
             f'<text x="4" y="{top + 14}" font-weight="bold">{esc(y_name)} ↓</text>']
    for i, x in enumerate(xs):
        parts.append(f'<text x="{left + i * cw + cw / 2}" y="{top - 4}" text-anchor="middle">{esc(fmt(x))}</text>')
    for j, y in enumerate(ys):
        parts.append(f'<text x="{left - 6}" y="{top + j * ch + 16}" text-anchor="end">{esc(fmt(y))}</text>')
        for i, x in enumerate(xs):
            value = cells.get((x, y))
            parts.append(f'<rect x="{left + i * cw}" y="{top + j * ch}" width="{cw - 1}" height="{ch - 1}" '
                         f'fill="{_colour(value, low, high)}"><title>{esc(x_name)}={esc(fmt(x))} '
                         f'{esc(y_name)}={esc(fmt(y))}: {esc(fmt(value))}</title></rect>')
            if value is not None:
                parts.append(f'<text x="{left + i * cw + cw / 2}" y="{top + j * ch + 16}" '
                             f'text-anchor="middle">{esc(f"{value:.2f}")}</text>')
    parts.append("</svg>")
    return markupsafe.Markup("".join(parts))


def _sort_key(value: Any) -> tuple[int, Any]:
    return (0, value) if isinstance(value, int | float) else (1, str(value))


def equity_chart(best: Sequence[tuple[str, float]], plan: Sequence[tuple[str, float]]) -> markupsafe.Markup:
    """An SVG line chart of the best trial's equity (blue) and the plan's current params (grey)."""
    width, height, pad = 760, 260, 40
    series = [s for s in (best, plan) if s]
    days = sorted({d for s in series for d, _ in s})
    values = [v for s in series for _, v in s]
    low, high = min(values), max(values)
    where = {d: i for i, d in enumerate(days)}

    def points(s: Sequence[tuple[str, float]]) -> str:
        span_x, span_y = max(len(days) - 1, 1), (high - low) or 1.0
        return " ".join(f"{pad + (width - 2 * pad) * where[d] / span_x:.1f},"
                        f"{height - pad - (height - 2 * pad) * (v - low) / span_y:.1f}" for d, v in s)

    esc = markupsafe.escape
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             'aria-label="equity of the best trial and of the plan\'s current parameters" font-size="11" '
             'font-family="sans-serif">',
             f'<text x="{pad}" y="14">{esc(fmt(high))}</text>',
             f'<text x="{pad}" y="{height - pad + 14}">{esc(fmt(low))} · {esc(days[0])} to {esc(days[-1])}</text>']
    if plan:
        parts.append(f'<polyline fill="none" stroke="#999" stroke-width="1.5" points="{points(plan)}"/>')
    parts.append(f'<polyline fill="none" stroke="#1f6feb" stroke-width="1.5" points="{points(best)}"/>')
    parts.append(f'<text x="{width - 260}" y="14" fill="#1f6feb">best trial</text>'
                 f'<text x="{width - 160}" y="14" fill="#777">plan\'s current params</text></svg>')
    return markupsafe.Markup("".join(parts))
