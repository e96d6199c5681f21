"""Parameter search, pure parts: the space, constraints, sampling, metrics, walk-forward windows.

- A parameter is `name=5:50:5` (an inclusive range with a step; integers when all three are),
  `name=a,b,c` (choices: numbers, true/false or text) or `name=10` (one value).
- A constraint is an expression over parameter names and numbers (`fast < slow`,
  `slow - fast >= 10 and mode != 'b'`), parsed with `ast` and evaluated by a tiny interpreter that
  knows comparisons, + - * / // %, unary minus, and/or/not: never `eval`, so a constraint cannot
  call, import, index or reach an attribute.
- `grid` is every combination that satisfies the constraints; `random` draws `samples` distinct
  combinations with a seed (the same seed, the same trials).
- The metric is any numeric statistic of `runner/stats.py` (aliases: return, cagr, drawdown...);
  higher is better except for volatility and drawdown lengths.
- Walk-forward `3y/1y`: train windows of three years, each followed by a one-year test window;
  windows step by the test length, so the test windows tile the period without overlap.
"""

from __future__ import annotations

import ast
import difflib
import itertools
import math
import operator
import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

import pandas as pd

from minitrade.errors import SearchSpaceError

MAX_GRID = 100_000          # trials in one sweep: past this, ask for --method random
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# Numeric statistics of runner/stats.py (a test keeps this list equal to what compute_stats returns).
STATISTICS = (
    "duration_days", "bars", "exposure_pct", "start_equity", "final_equity", "peak_equity", "return_pct",
    "buy_hold_return_pct", "cagr_pct", "volatility_pct", "sharpe", "sortino", "calmar", "max_drawdown_pct",
    "max_drawdown_days", "avg_drawdown_pct", "avg_drawdown_days", "trades", "win_rate_pct", "best_trade_pct",
    "worst_trade_pct", "avg_trade_pct", "profit_factor", "expectancy", "sqn",
)
ALIASES = {"return": "return_pct", "cagr": "cagr_pct", "drawdown": "max_drawdown_pct",
           "volatility": "volatility_pct", "win_rate": "win_rate_pct", "exposure": "exposure_pct",
           "equity": "final_equity"}
LOWER_IS_BETTER = frozenset({"volatility_pct", "max_drawdown_days", "avg_drawdown_days"})


# ---------------------------------------------------------------------------------------------
# the space

@dataclass(frozen=True)
class Param:
    """One parameter and the values it takes in the search."""

    name: str
    values: tuple[Any, ...]


def parse_param(text: str) -> Param:
    """`fast=5:50:5`, `mode=a,b` or `size=10` as a Param."""
    name, sep, spec = text.partition("=")
    name, spec = name.strip(), spec.strip()
    if not sep or not NAME.match(name) or not spec:
        raise SearchSpaceError(f"--param {text!r}: write NAME=FROM:TO:STEP, NAME=A,B,C or NAME=VALUE "
                               "(e.g. fast=5:50:5)")
    if ":" in spec:
        return Param(name, _range(name, spec))
    values = tuple(dict.fromkeys(_scalar(part.strip()) for part in spec.split(",") if part.strip()))
    if not values:
        raise SearchSpaceError(f"--param {text!r}: no values")
    return Param(name, values)


def _range(name: str, spec: str) -> tuple[Any, ...]:
    parts = [p.strip() for p in spec.split(":")]
    if len(parts) != 3:
        raise SearchSpaceError(f"--param {name}={spec}: a range is FROM:TO:STEP (e.g. 5:50:5)")
    try:
        start, stop, step = (Decimal(p) for p in parts)
    except InvalidOperation:
        raise SearchSpaceError(f"--param {name}={spec}: FROM, TO and STEP must be numbers") from None
    if step <= 0 or stop < start:
        raise SearchSpaceError(f"--param {name}={spec}: needs FROM <= TO and a positive STEP")
    count = int((stop - start) / step) + 1
    if count > MAX_GRID:
        raise SearchSpaceError(f"--param {name}={spec}: {count:,} values; use a larger STEP")
    as_int = all(re.fullmatch(r"[+-]?\d+", p) for p in parts)
    # Decimal arithmetic: 0.1:0.5:0.1 gives 0.3, not 0.30000000000000004
    return tuple(int(start + i * step) if as_int else float(start + i * step) for i in range(count))


def _scalar(text: str) -> Any:
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text.strip("'\"")


def space_from_mapping(spec: Mapping[str, Any]) -> list[Param]:
    """A space written in a YAML file: `fast: 5:50:5`, `mode: [a, b]` or `size: 10`."""
    params = []
    for name, value in spec.items():
        if isinstance(value, list):
            if not value:
                raise SearchSpaceError(f"parameter {name}: an empty list of values")
            params.append(Param(str(name), tuple(dict.fromkeys(value))))
        else:
            params.append(parse_param(f"{name}={value}"))
    return params


def check_space(params: Sequence[Param]) -> None:
    """Refuse a parameter named twice."""
    seen: set[str] = set()
    for p in params:
        if p.name in seen:
            raise SearchSpaceError(f"parameter {p.name} is given twice; give it once")
        seen.add(p.name)


def check_names(params: Sequence[Param], declared: tuple[str, list[str]] | None, file: str) -> None:
    """Refuse a parameter the strategy does not declare, before any trial runs (`declared` is
    `strategy_source.declared_params`: None when the file's params cannot be known statically)."""
    if declared is None:
        return
    strategy, known = declared
    for p in params:
        if p.name not in known:
            near = difflib.get_close_matches(p.name, known, n=1)
            hint = f"did you mean {near[0]!r}?" if near else (
                f"it declares {', '.join(known)}" if known else "it declares no params")
            raise SearchSpaceError(f"--param {p.name}: strategy {strategy} ({file}) has no param {p.name!r}; {hint}")


def grid_size(params: Sequence[Param]) -> int:
    return math.prod(len(p.values) for p in params)


# ---------------------------------------------------------------------------------------------
# constraints

_BINOPS: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
}
_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
    ast.Eq: operator.eq, ast.NotEq: operator.ne,
}
ALLOWED = "comparisons (< <= > >= == !=), + - * / // %, and/or/not, parameter names, numbers and 'text'"


@dataclass(frozen=True)
class Constraint:
    """A condition every trial's parameters must meet, e.g. `fast < slow`."""

    text: str
    tree: ast.Expression

    def holds(self, values: Mapping[str, Any]) -> bool:
        """Whether `values` meet the condition (a division by zero does not)."""
        try:
            return bool(_evaluate(self.tree.body, values))
        except ZeroDivisionError:
            return False
        except TypeError as e:
            raise SearchSpaceError(f"--constraint {self.text!r}: {e} (with {dict(values)})") from None


def parse_constraint(text: str, names: Sequence[str]) -> Constraint:
    """Parse `text` into a Constraint over `names`; anything but plain arithmetic and logic is refused."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as e:
        raise SearchSpaceError(f"--constraint {text!r}: not an expression ({e.msg})") from None
    for node in ast.walk(tree):
        _check_node(text, node, names)
    return Constraint(text, tree)


def _check_node(text: str, node: ast.AST, names: Sequence[str]) -> None:
    allowed = (ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.USub, ast.UAdd,
               ast.BinOp, ast.Compare, ast.Name, ast.Load, ast.Constant, *_BINOPS, *_COMPARE)
    if not isinstance(node, allowed):
        what = ast.get_source_segment(text.strip(), node) or type(node).__name__
        raise SearchSpaceError(f"--constraint {text!r}: `{what}` is not allowed ({type(node).__name__}); "
                               f"a constraint may use only {ALLOWED}")
    if isinstance(node, ast.Name) and node.id not in names:
        raise SearchSpaceError(f"--constraint {text!r}: {node.id!r} is not a parameter "
                               f"(parameters: {', '.join(names) or 'none'})")
    if isinstance(node, ast.Constant) and not isinstance(node.value, int | float | str):
        raise SearchSpaceError(f"--constraint {text!r}: {node.value!r} is not a number or text")


def _evaluate(node: ast.expr, values: Mapping[str, Any]) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return values[node.id]
    if isinstance(node, ast.BinOp):
        return _BINOPS[type(node.op)](_evaluate(node.left, values), _evaluate(node.right, values))
    if isinstance(node, ast.UnaryOp):
        operand = _evaluate(node.operand, values)
        return not operand if isinstance(node.op, ast.Not) else (-operand if isinstance(node.op, ast.USub)
                                                                 else +operand)
    if isinstance(node, ast.BoolOp):
        results = (_evaluate(v, values) for v in node.values)
        return all(results) if isinstance(node.op, ast.And) else any(results)
    if isinstance(node, ast.Compare):
        left = _evaluate(node.left, values)
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            right = _evaluate(right_node, values)
            if not _COMPARE[type(op)](left, right):
                return False
            left = right
        return True
    raise SearchSpaceError(f"unexpected {type(node).__name__} in a constraint")  # _check_node refused it


# ---------------------------------------------------------------------------------------------
# sampling

def grid(params: Sequence[Param], constraints: Sequence[Constraint] = ()) -> list[dict[str, Any]]:
    """Every combination of the values that meets every constraint, in a stable order."""
    size = grid_size(params)
    if size > MAX_GRID:
        raise SearchSpaceError(f"the grid has {size:,} combinations (more than {MAX_GRID:,}); "
                               "use --method random --samples N, or larger steps")
    names = [p.name for p in params]
    combos = (dict(zip(names, values, strict=True)) for values in itertools.product(*(p.values for p in params)))
    return [c for c in combos if all(k.holds(c) for k in constraints)]


def random_sample(params: Sequence[Param], samples: int, seed: int,
                  constraints: Sequence[Constraint] = ()) -> list[dict[str, Any]]:
    """`samples` distinct combinations meeting the constraints, drawn with `seed` (fewer if fewer exist)."""
    if samples < 1:
        raise SearchSpaceError("--samples must be at least 1")
    if grid_size(params) <= max(4 * samples, 10_000):  # small space: draw from the constrained grid itself
        everything = grid(params, constraints)
        return random.Random(seed).sample(everything, min(samples, len(everything)))
    rng, chosen, seen = random.Random(seed), [], set()
    for _ in range(samples * 100):  # a sparse constraint may reject most draws
        combo = {p.name: rng.choice(p.values) for p in params}
        key = tuple(combo.values())
        if key in seen or not all(k.holds(combo) for k in constraints):
            continue
        seen.add(key)
        chosen.append(combo)
        if len(chosen) == samples:
            break
    return chosen


# ---------------------------------------------------------------------------------------------
# metrics and ranking

def metric_key(name: str) -> str:
    """The statistic a --metric names (an alias or a key of runner/stats.py)."""
    key = ALIASES.get(name, name)
    if key not in STATISTICS:
        import difflib

        near = difflib.get_close_matches(name, [*STATISTICS, *ALIASES], n=1)
        hint = f"did you mean {near[0]!r}?" if near else "statistics: " + ", ".join(STATISTICS)
        raise SearchSpaceError(f"--metric {name!r} is not a statistic of the backtest ({hint})")
    return key


def score(stats: Mapping[str, Any] | None, key: str) -> float | None:
    """The metric's value in `stats`, or None when undefined (no trades, flat equity)."""
    value = None if stats is None else stats.get(key)
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def better(a: float | None, b: float | None, key: str) -> bool:
    """Whether score `a` beats `b` (None never beats anything)."""
    if a is None:
        return False
    if b is None:
        return True
    return a < b if key in LOWER_IS_BETTER else a > b


def ranked(scores: Sequence[float | None], key: str) -> list[int]:
    """Indices of `scores` best first; undefined scores last, ties in their original order."""
    sign = 1.0 if key in LOWER_IS_BETTER else -1.0
    return sorted(range(len(scores)), key=lambda i: (scores[i] is None, sign * (scores[i] or 0.0), i))


# ---------------------------------------------------------------------------------------------
# walk-forward windows

SPAN = re.compile(r"^(\d+)\s*([ymwd])$")


@dataclass(frozen=True)
class Window:
    """One walk-forward step: optimise on [train_start, train_end], score on [test_start, test_end]."""

    number: int
    train_start: date
    train_end: date
    test_start: date
    test_end: date


def parse_walk_forward(text: str) -> tuple[pd.DateOffset, pd.DateOffset]:
    """`3y/1y` (years, months, weeks or days) as the train and test lengths."""
    parts = [p.strip().lower() for p in text.split("/")]
    if len(parts) != 2 or not all(SPAN.match(p) for p in parts):
        raise SearchSpaceError(f"--walk-forward {text!r}: write TRAIN/TEST as lengths like 3y/1y, 18m/6m, 26w/4w")
    offsets = []
    for part in parts:
        match = SPAN.match(part)
        assert match is not None
        amount, unit = int(match.group(1)), match.group(2)
        if amount == 0:
            raise SearchSpaceError(f"--walk-forward {text!r}: a window cannot be 0 long")
        offsets.append(pd.DateOffset(**{{"y": "years", "m": "months", "w": "weeks", "d": "days"}[unit]: amount}))
    return offsets[0], offsets[1]


def windows(start: date, end: date, train: pd.DateOffset, test: pd.DateOffset) -> list[Window]:
    """The walk-forward windows between `start` and `end`; the last test window may be short."""
    out: list[Window] = []
    at = pd.Timestamp(start)
    while True:
        test_start = at + train
        if test_start.date() > end:
            break
        train_end = (test_start - timedelta(days=1)).date()
        test_end = min((test_start + test - timedelta(days=1)).date(), end)
        out.append(Window(len(out) + 1, at.date(), train_end, test_start.date(), test_end))
        at = at + test
    if not out:
        raise SearchSpaceError(f"--walk-forward: the period {start} to {end} is shorter than one train window "
                               "and its test window; use shorter windows or a longer period")
    return out


def yaml_lines(plan_params: Mapping[str, Any], best: Mapping[str, Any]) -> str:
    """The `params:` block to paste into the plan file: its own params with the best ones over them."""
    import yaml

    merged = {**plan_params, **best}
    return yaml.safe_dump({"params": merged}, default_flow_style=False, sort_keys=False).rstrip("\n")


def describe(params: Mapping[str, Any]) -> str:
    """`fast=10 slow=30` for a progress line."""
    return " ".join(f"{k}={v}" for k, v in params.items())
