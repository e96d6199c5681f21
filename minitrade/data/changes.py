"""Strict mode's guard: did past prices change since the plan's previous run?

A strict plan replays its whole history every run, so its orders are only consistent if the past
it replays is the past it traded on. Each run records the final bars it used (`price_history`,
partial bars excluded; appended, never rewritten); the next run compares open/high/low/close on the dates both share with a
relative tolerance and stops with `DataChanged` naming the ticker, the dates and by how much —
typically a split or a dividend adjustment the provider applied to the past.

    check_unchanged(store, "spy-qqq", prices)              # raises DataChanged
    record_history(store, "spy-qqq", run_id, prices)        # after a successful run
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date

import duckdb
import numpy as np
import pandas as pd

from minitrade.errors import DataChanged
from minitrade.store import Store
from minitrade.store import prices as sql

DEFAULT_RTOL = 1e-5
PRICES = ["open", "high", "low", "close"]


@dataclass(frozen=True)
class PriceChange:
    """How one ticker's past differs from what the previous run used."""

    ticker: str
    changed: tuple[date, ...]      # dates whose open/high/low/close moved beyond the tolerance
    vanished: tuple[date, ...]     # dates the previous run had and the new history lacks
    worst_date: date | None
    worst_column: str | None
    old: float | None
    new: float | None

    @property
    def worst_relative(self) -> float:
        if self.old is None or self.new is None or self.old == 0:
            return 0.0
        return self.new / self.old - 1

    def describe(self) -> str:
        parts = [f"{self.ticker}:"]
        if self.changed:
            span = (f"on {self.changed[0]}" if len(self.changed) == 1
                    else f"from {self.changed[0]} to {self.changed[-1]}")
            parts.append(f"{len(self.changed)} bar{'s' if len(self.changed) != 1 else ''} {span} changed, "
                         f"by up to {self.worst_relative:+.4%} ({self.worst_column} on {self.worst_date}: "
                         f"{self.old:.6g} -> {self.new:.6g})")
        if self.vanished:
            parts.append(f"{len(self.vanished)} bar(s) disappeared (first {self.vanished[0]})")
        return " ".join(parts)


def used_bars(prices: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """The final bars of a run in long form (ticker, date, OHLC); a partial last bar is left out."""
    parts = [_long(str(t), *_final_bars(f)) for t, f in prices.items()]
    return pd.concat(parts, ignore_index=True) if parts else _long("", np.empty(0, np.int64), np.empty((0, 4)))


def compare(previous: pd.DataFrame, prices: Mapping[str, pd.DataFrame], *,
            rtol: float = DEFAULT_RTOL) -> list[PriceChange]:
    """Changes of `prices` against a previous run's long-form bars; pure, no I/O.

    Only dates from the new history's first date on are compared (a later backtest_start is not a
    change); tickers new to the plan have nothing to compare. Dates are matched as int64 nanoseconds
    with numpy (a strict tick compares years of bars per ticker: pandas index set operations cost 5x).
    """
    changes: list[PriceChange] = []
    for ticker, old in previous.groupby("ticker", sort=True):
        frame = prices.get(str(ticker))
        new_days, new_values = _final_bars(frame) if frame is not None else (np.empty(0, np.int64), None)
        if new_values is None or not len(new_days):
            continue
        old_days = old["date"].to_numpy("datetime64[ns]").view(np.int64)
        span = (old_days >= new_days[0]) & (old_days <= new_days[-1])
        old_days, old_values = old_days[span], _ohlc(old)[span]
        at = np.minimum(np.searchsorted(new_days, old_days), len(new_days) - 1)
        found = new_days[at] == old_days
        shared = old_days[found]
        vanished = _dates(old_days[~found])
        before, after = old_values[found], new_values[at[found]]
        with np.errstate(divide="ignore", invalid="ignore"):
            relative = np.abs(after - before) / np.abs(before)
        moved = (relative > rtol).any(axis=1)
        if not moved.any() and not vanished:
            continue
        worst: tuple[date | None, str | None, float | None, float | None] = (None, None, None, None)
        if moved.any():
            row, col = np.unravel_index(np.nanargmax(np.where(np.isfinite(relative), relative, 0)),
                                        relative.shape)
            worst = (_dates(shared[row:row + 1])[0], PRICES[col], float(before[row, col]), float(after[row, col]))
        changes.append(PriceChange(str(ticker), _dates(shared[moved]), vanished, *worst))
    return changes


def _final_bars(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """A ticker's final bars (a partial last bar left out) as sorted int64 nanosecond dates and OHLC rows."""
    bars = frame.iloc[:-1] if frame.attrs.get("partial") and len(frame) else frame
    days = pd.DatetimeIndex(bars.index).as_unit("ns").asi8
    values = _ohlc(bars)
    if len(days) > 1 and not (np.diff(days) > 0).all():
        order = np.argsort(days, kind="stable")
        days, values = days[order], values[order]
    return days, values


def _ohlc(frame: pd.DataFrame) -> np.ndarray:
    """Rows of open, high, low, close as float64 (column by column: `frame[PRICES]` costs a reindex)."""
    return np.column_stack([frame[c].to_numpy("float64") for c in PRICES])


def _dates(nanoseconds: np.ndarray) -> tuple[date, ...]:
    return tuple(d.date() for d in pd.DatetimeIndex(nanoseconds.astype("datetime64[ns]")))


def recorded_histories(store: Store, plans: Sequence[str]) -> dict[str, pd.DataFrame]:
    """The history each plan's previous runs recorded (see `check_unchanged`), one query for them all."""
    if not plans:
        return {}
    with store.transaction() as con:
        return sql.read_histories(con, plans)


def detect_changes(store: Store, plan: str, prices: Mapping[str, pd.DataFrame], *,
                   rtol: float = DEFAULT_RTOL, previous: pd.DataFrame | None = None) -> list[PriceChange]:
    """Changes of `prices` against the history recorded by the plan's previous run (`previous`,
    when the caller read it already with `recorded_histories`)."""
    if previous is None:
        previous = recorded_histories(store, [plan])[plan]
    if previous.empty:
        return []
    return compare(previous, prices, rtol=rtol)


def check_unchanged(store: Store, plan: str, prices: Mapping[str, pd.DataFrame], *,
                    rtol: float = DEFAULT_RTOL, source: str | None = None,
                    previous: pd.DataFrame | None = None) -> None:
    """Raise DataChanged (with `.changes`) if the past moved since the plan's previous run."""
    changes = detect_changes(store, plan, prices, rtol=rtol, previous=previous)
    if not changes:
        return
    tickers = ", ".join(c.ticker for c in changes)
    detail = "; ".join(c.describe() for c in changes)
    error = DataChanged(
        f"plan {plan}: past prices changed since its previous run (tolerance {rtol:g}): {detail}. "
        "A split or dividend adjustment rewrote history, so this strict plan's past orders no longer "
        f"follow from its prices. Start a new plan, or accept the new history with "
        f"`minitrade data accept {plan}`", changes=changes, source=source, ticker=tickers)
    raise error


def record_history(store: Store, plan: str, run_id: str, prices: Mapping[str, pd.DataFrame]) -> str:
    """Remember the final bars this run used; returns their digest (for runs.data_digest)."""
    with store.transaction() as con:
        return record_histories(con, [(plan, run_id, prices)])[run_id]


def record_histories(con: duckdb.DuckDBPyConnection,
                     runs: Sequence[tuple[str, str, Mapping[str, pd.DataFrame]]]) -> dict[str, str]:
    """Remember the final bars each run (plan, run id, prices) used, one run per plan, in one query
    and one insert for them all; returns each run's digest (for runs.data_digest).

    Append-only: a strict run follows `check_unchanged`, so the bars recorded already are the ones
    it used (to the tolerance) and stay as first recorded; only bars after a ticker's last recorded
    one (or before its first, when backtest_start moved earlier) are added, so a tick's write does
    not grow with the history. A date that appeared inside the recorded span is added too, and a
    ticker the plan no longer trades is forgotten, as a whole rewrite would do.
    """
    spans = sql.history_spans(con, [plan for plan, _, _ in runs])
    new: list[pd.DataFrame] = []
    gaps: list[pd.DataFrame] = []
    drop: list[tuple[str, str]] = []
    digests: dict[str, str] = {}
    for plan, run_id, prices in runs:
        final = {str(t): _final_bars(f) for t, f in prices.items()}
        added, missing = _unrecorded(final, spans[plan])
        new.append(added.assign(plan=plan, run_id=run_id))
        if missing is not None:
            gaps.append(missing.assign(plan=plan, run_id=run_id))
        drop += [(plan, t) for t in sorted(set(spans[plan]) - {t for t, (days, _) in final.items() if len(days)})]
        digests[run_id] = _digest(final)
    sql.append_history(con, pd.concat(new, ignore_index=True) if new else used_bars({}),
                       fill_gaps=pd.concat(gaps, ignore_index=True) if gaps else None, drop=drop)
    return digests


def _unrecorded(final: Mapping[str, tuple[np.ndarray, np.ndarray]], spans: Mapping[str, tuple[date, date, int]]
                ) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """The bars outside each ticker's recorded span, and (rarely) the inside ones to insert if missing.

    Inside a span the recorded count tells whether a date is missing: when it equals the number of
    the run's bars inside the span, every one of them is recorded (the dates both share matched)."""
    new: list[pd.DataFrame] = []
    gaps: list[pd.DataFrame] = []
    for ticker, (days, values) in final.items():
        span = spans.get(ticker)
        inside = np.zeros(len(days), bool) if span is None else \
            (days >= _nanoseconds(span[0])) & (days <= _nanoseconds(span[1]))
        if not inside.all():
            new.append(_long(ticker, days[~inside], values[~inside]))
        if span is not None and int(inside.sum()) != span[2]:
            gaps.append(_long(ticker, days[inside], values[inside]))
    return (pd.concat(new, ignore_index=True) if new else used_bars({}),
            pd.concat(gaps, ignore_index=True) if gaps else None)


def _long(ticker: str, days: np.ndarray, values: np.ndarray) -> pd.DataFrame:
    """One ticker's bars in long form: ticker, date, open, high, low, close."""
    return pd.DataFrame({"ticker": ticker, "date": days.astype("datetime64[ns]"),
                         **{c: values[:, i] for i, c in enumerate(PRICES)}})


def _nanoseconds(day: date) -> int:
    return int(np.datetime64(day, "ns").astype(np.int64))


def accept_history(store: Store, plan: str) -> None:
    """Forget the recorded history so the next strict run starts from the prices as they are now."""
    with store.transaction() as con:
        sql.forget_history(con, plan)


def history_digest(prices: Mapping[str, pd.DataFrame]) -> str:
    """sha256 of the final bars (ticker, date, OHLC to 8 significant digits), order-independent."""
    return _digest({str(t): _final_bars(f) for t, f in prices.items()})


def _digest(final: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> str:
    digest = hashlib.sha256()
    for ticker in sorted(final):
        nanoseconds, values = final[ticker]
        if not len(nanoseconds):
            continue
        days = nanoseconds.astype("datetime64[ns]").astype("datetime64[D]")
        digest.update(ticker.encode())
        digest.update("".join(np.datetime_as_string(days, unit="D")).replace("-", "").encode())
        digest.update(_rounded((ticker, str(days[0])), values.ravel()).tobytes())
    return digest.hexdigest()


# Rounding to 8 digits goes through text, one value at a time: a strict run's history is the previous
# run's plus a bar, so the leading values already rounded (equal to the bit) are reused.
_ROUNDED: OrderedDict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = OrderedDict()
_ROUNDED_MAX = 64
_rounded_lock = threading.Lock()


def _rounded(key: tuple[str, str], raw: np.ndarray) -> np.ndarray:
    """`raw` to 8 significant digits, as float(f"{v:.8g}") gives it."""
    with _rounded_lock:
        cached = _ROUNDED.pop(key, None)
    done, out = 0, np.empty(len(raw))
    if cached is not None:
        old_raw, old_out = cached
        n = min(len(old_raw), len(raw))
        differs = np.flatnonzero(old_raw[:n].view(np.int64) != raw[:n].view(np.int64))
        done = int(differs[0]) if len(differs) else n
        out[:done] = old_out[:done]
    out[done:] = [float(f"{v:.8g}") for v in raw[done:]]
    with _rounded_lock:
        _ROUNDED[key] = (raw.copy(), out)
        while len(_ROUNDED) > _ROUNDED_MAX:
            _ROUNDED.popitem(last=False)
    return out
