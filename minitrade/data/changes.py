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
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

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
    parts = []
    for ticker, frame in prices.items():
        bars = frame.iloc[:-1] if frame.attrs.get("partial") and len(frame) else frame
        part = bars[PRICES].astype("float64").copy()
        part.insert(0, "date", pd.DatetimeIndex(bars.index).astype("datetime64[ns]"))
        part.insert(0, "ticker", ticker)
        parts.append(part.reset_index(drop=True))
    if not parts:
        return pd.DataFrame({"ticker": pd.Series(dtype=str), "date": pd.Series(dtype="datetime64[ns]"),
                             **{c: pd.Series(dtype="float64") for c in PRICES}})
    return pd.concat(parts, ignore_index=True)


def compare(previous: pd.DataFrame, prices: Mapping[str, pd.DataFrame], *,
            rtol: float = DEFAULT_RTOL) -> list[PriceChange]:
    """Changes of `prices` against a previous run's long-form bars; pure, no I/O.

    Only dates from the new history's first date on are compared (a later backtest_start is not a
    change); tickers new to the plan have nothing to compare.
    """
    current = used_bars(prices)
    changes: list[PriceChange] = []
    for ticker, old in previous.groupby("ticker", sort=True):
        new = current[current["ticker"] == ticker]
        if new.empty:
            continue
        old_bars = old.set_index("date")[PRICES]
        new_bars = new.set_index("date")[PRICES]
        old_bars = old_bars[(old_bars.index >= new_bars.index[0]) & (old_bars.index <= new_bars.index[-1])]
        shared = old_bars.index.intersection(new_bars.index)
        vanished = tuple(d.date() for d in old_bars.index.difference(new_bars.index))
        before = old_bars.loc[shared].to_numpy()
        after = new_bars.loc[shared].to_numpy()
        with np.errstate(divide="ignore", invalid="ignore"):
            relative = np.abs(after - before) / np.abs(before)
        moved = (relative > rtol).any(axis=1)
        if not moved.any() and not vanished:
            continue
        worst: tuple[date | None, str | None, float | None, float | None] = (None, None, None, None)
        if moved.any():
            row, col = np.unravel_index(np.nanargmax(np.where(np.isfinite(relative), relative, 0)),
                                        relative.shape)
            worst = (shared[row].date(), PRICES[col], float(before[row, col]), float(after[row, col]))
        changes.append(PriceChange(str(ticker), tuple(d.date() for d in shared[moved]), vanished, *worst))
    return changes


def detect_changes(store: Store, plan: str, prices: Mapping[str, pd.DataFrame], *,
                   rtol: float = DEFAULT_RTOL) -> list[PriceChange]:
    """Changes of `prices` against the history recorded by the plan's previous run."""
    with store.transaction() as con:
        previous = sql.read_history(con, plan)
    if previous.empty:
        return []
    return compare(previous, prices, rtol=rtol)


def check_unchanged(store: Store, plan: str, prices: Mapping[str, pd.DataFrame], *,
                    rtol: float = DEFAULT_RTOL, source: str | None = None) -> None:
    """Raise DataChanged (with `.changes`) if the past moved since the plan's previous run."""
    changes = detect_changes(store, plan, prices, rtol=rtol)
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
    """Remember the final bars this run used; returns their digest (for runs.data_digest).

    Append-only: a strict run follows `check_unchanged`, so the bars recorded already are the ones
    it used (to the tolerance) and stay as first recorded; only bars after a ticker's last recorded
    one (or before its first, when backtest_start moved earlier) are added, so a tick's write does
    not grow with the history. A date that appeared inside the recorded span is added too, and a
    ticker the plan no longer trades is forgotten, as a whole rewrite would do.
    """
    bars = used_bars(prices)
    with store.transaction() as con:
        spans = sql.history_spans(con, plan)
        new, gaps = _unrecorded(bars, spans)
        sql.append_history(con, plan, run_id, new, fill_gaps=gaps,
                           drop=sorted(set(spans) - set(bars["ticker"])))
    return history_digest(prices)


def _unrecorded(bars: pd.DataFrame, spans: Mapping[str, tuple[date, date, int]]
                ) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """The bars outside each ticker's recorded span, and (rarely) the inside ones to insert if missing.

    Inside a span the recorded count tells whether a date is missing: when it equals the number of
    the run's bars inside the span, every one of them is recorded (the dates both share matched)."""
    first = pd.to_datetime(bars["ticker"].map({t: pd.Timestamp(s[0]) for t, s in spans.items()}))
    last = pd.to_datetime(bars["ticker"].map({t: pd.Timestamp(s[1]) for t, s in spans.items()}))
    inside = (bars["date"] >= first) & (bars["date"] <= last)
    counts = inside.groupby(bars["ticker"]).sum()
    short = [t for t, n in counts.items() if t in spans and spans[str(t)][2] != n]
    gaps = bars[inside & bars["ticker"].isin(short)] if short else None
    return bars[~inside], gaps


def accept_history(store: Store, plan: str) -> None:
    """Forget the recorded history so the next strict run starts from the prices as they are now."""
    with store.transaction() as con:
        sql.forget_history(con, plan)


def history_digest(prices: Mapping[str, pd.DataFrame]) -> str:
    """sha256 of the final bars (ticker, date, OHLC to 8 significant digits), order-independent."""
    bars = used_bars(prices).sort_values(["ticker", "date"], kind="stable")
    digest = hashlib.sha256()
    for ticker, group in bars.groupby("ticker", sort=True):
        days = group["date"].to_numpy("datetime64[D]")
        digest.update(str(ticker).encode())
        digest.update("".join(np.datetime_as_string(days, unit="D")).replace("-", "").encode())
        key = (str(ticker), str(days[0]) if len(days) else "")
        digest.update(_rounded(key, group[PRICES].to_numpy("float64").ravel()).tobytes())
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
