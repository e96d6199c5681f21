"""Run a plan's strategy over daily prices in backtrader and collect everything a run records.

Entry types (see `runner.entry`): TOC fills at the signal bar's close (backtrader cheat-on-close);
TOO at the next bar's open of that ticker; TRG, decided by a run during the session, at the signal
bar's close (the price the run saw, as near as daily bars get), and decided outside the session
at the next bar's open (daily bars have no intraday price).
The equity curve, cash and positions are rebuilt per session from the fills (end-of-day values,
so a TOC fill counts on its signal day), which equals backtrader's broker value at the end.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

os.environ.setdefault("MPLBACKEND", "Agg")  # backtrader's plotting must never need a display

import backtrader as bt
import numpy as np
import pandas as pd

from minitrade.data.base import COLUMNS, canonical
from minitrade.errors import DataError, MinitradeError, StrategyError
from minitrade.models import OrderType, Plan
from minitrade.records import OrderIntent, Side
from minitrade.runner.entry import trg_fills_at_once
from minitrade.runner.feed import ArrayFeed
from minitrade.runner.ledger import closed_trades, daily_book
from minitrade.runner.stats import compute_stats
from minitrade.runner.strategy import check_params, strategy_file, user_error
from minitrade.strategy_api import CONTEXT_ATTR, StrategyContext

Progress = Callable[[int, int], None]
PROGRESS_EVERY = 250


@dataclass
class BacktestResult:
    """What one backtest produced; frames are indexed by session date (tz-naive)."""

    plan: str
    start_equity: float
    equity: pd.DataFrame          # columns equity, cash
    positions: pd.DataFrame       # shares held at the end of each session, one column per ticker
    fills: pd.DataFrame           # date, ticker, size (signed), price, commission
    trades: pd.DataFrame          # closed round trips: ticker, size, entry/exit date and price, pnl, return_pct
    stats: dict[str, Any]
    intents: list[OrderIntent]    # the last bar's decisions, if that bar is on/after trade_start
    last_date: date
    rejected: list[str] = field(default_factory=list)  # orders backtrader refused (cash, margin)

    @property
    def final_equity(self) -> float:
        return float(self.equity["equity"].iloc[-1])


class _Universe(OrderedDict[str, Any]):
    """cerebro.datasbyname: an unknown ticker is the strategy's error, named plainly."""

    plan: str | None = None

    def __missing__(self, key: str) -> Any:
        raise StrategyError(f"ticker {key!r} is not in the plan's universe ({', '.join(self)})", plan=self.plan)


class _Broker(bt.brokers.BackBroker):  # type: ignore[misc]
    """backtrader's broker, plus what a run records: seeded positions, fills, each bar's first order.

    Hooking the broker (called once per bar anyway) instead of adding an analyzer keeps the
    engine's per-bar overhead to one counter update.
    """

    def __init__(self, seeded: dict[Any, tuple[float, float]], progress: Progress | None, total: int,
                 frozen_before: date | None = None, at_once: Callable[[date], bool] | None = None) -> None:
        super().__init__()
        self.seeded, self.progress, self.total = seeded, progress, total
        self.frozen_before = frozen_before
        self.at_once = at_once  # TRG plans: whether a market order of that day fills on its own bar
        self._at_once_days: dict[date, bool] = {}
        self.fills: list[tuple[Any, str, float, float, float]] = []
        self.rejected: list[str] = []
        self.bar_orders_from = 0  # index in self.orders of the first order placed during the current bar
        self.bars = 0

    def start(self) -> None:
        super().start()
        for data, (size, price) in self.seeded.items():
            self.positions[data] = bt.Position(size=size, price=price)

    def next(self) -> None:
        self.bar_orders_from = len(self.orders)
        self.bars += 1
        if self.progress is not None and self.bars % PROGRESS_EVERY == 0:
            self.progress(self.bars, self.total)
        super().next()

    def submit(self, order: Any, check: bool = True) -> Any:
        # Incremental runs start from the actual book: nothing may trade before trade_start.
        if self.frozen_before is not None and bt.num2date(order.data.datetime[0]).date() < self.frozen_before:
            order.cancel()
            self.notify(order)
            return order
        if self.at_once is not None:
            # coc is on for the broker; an order of a day without a run in the session opts out
            day = bt.num2date(order.created.dt).date()
            if day not in self._at_once_days:
                self._at_once_days[day] = self.at_once(day)
            order.addinfo(coc=self._at_once_days[day])
        return super().submit(order, check)

    def notify(self, order: Any) -> None:
        super().notify(order)
        if order.status == order.Completed:
            ex = order.executed
            self.fills.append((bt.num2date(ex.dt).date(), order.data._name, float(ex.size),
                               float(ex.price), float(ex.comm)))
        elif order.status in (order.Margin, order.Rejected):
            # backtrader checks cash on the bar after the order was placed; the refusal is dated
            # with the day the strategy placed it
            day = bt.num2date(order.created.dt).date()
            self.rejected.append(f"{day} {order.data._name} {order.created.size:+g}: {order.getstatusname()}")


def run_backtest(plan: Plan, prices: Mapping[str, pd.DataFrame], strategy_cls: type, *,
                 cash: float | None = None, positions: Mapping[str, float] | None = None,
                 trade_start: date | None = None, commission: float = 0.0,
                 storage: dict[str, Any] | None = None, end: date | None = None,
                 progress: Progress | None = None, frozen_before: date | None = None) -> BacktestResult:
    """Backtest `strategy_cls` for `plan` on `prices` (ticker -> daily OHLCV) from backtest_start.

    `cash`, `positions` and `trade_start` default to the plan's. With `frozen_before`, orders of
    earlier bars are cancelled instead of executed, so the book on that day is exactly `cash` and
    `positions` (incremental mode's actual holdings). Raises DataError for bad prices
    (naming plan and ticker) and StrategyError for anything the strategy does wrong (naming its
    file and line); the caller never sees a raw exception from user code.
    """
    frames = prepare_prices(plan, prices, end=end)
    cash = plan.cash if cash is None else float(cash)
    held = {t: float(s) for t, s in (plan.positions if positions is None else positions).items() if s}
    trade_start = plan.trade_start if trade_start is None else trade_start
    file = strategy_file(strategy_cls)
    check_params(strategy_cls, plan.params, plan=plan.name, file=file)
    first_day = min(f.index[0] for f in frames.values())
    for ticker in held:
        if ticker not in frames:
            raise StrategyError(f"preexisting position in {ticker!r}, which is not in the universe", plan=plan.name)
        if frames[ticker].index[0] != first_day:
            raise DataError(f"plan {plan.name}: a preexisting position needs a price on the first day "
                            f"{first_day.date()}, but prices start {frames[ticker].index[0].date()}",
                            source=plan.data_source, ticker=ticker)
    seeded = {t: (s, float(frames[t]["open"].iloc[0])) for t, s in held.items()}
    # every session any ticker has (np.unique sorts; a set of Timestamps cost 7 ms a run)
    dates = pd.DatetimeIndex(np.unique(np.concatenate([f.index.values for f in frames.values()])))

    cerebro = bt.Cerebro(stdstats=False)
    feeds = {t: ArrayFeed(frame=f, name=t) for t, f in frames.items()}
    at_once = (lambda day: trg_fills_at_once(plan, day)) if plan.order_type is OrderType.TRG else None
    broker = _Broker({feeds[t]: v for t, v in seeded.items()}, progress, len(dates), frozen_before, at_once)
    cerebro.setbroker(broker)
    universe = _Universe()
    universe.plan = plan.name
    cerebro.datasbyname = universe
    cerebro.broker.setcash(cash)
    cerebro.broker.setcommission(commission=commission)
    if plan.order_type in (OrderType.TOC, OrderType.TRG):
        cerebro.broker.set_coc(True)
    for feed in feeds.values():
        cerebro.adddata(feed)
    context = StrategyContext(plan=plan.name, tickers=list(frames), timezone=plan.timezone,
                              positions=dict(held), storage=storage if storage is not None else {})
    setattr(cerebro, CONTEXT_ATTR, context)
    cerebro.addstrategy(strategy_cls, **plan.params)
    try:
        cerebro.run()
    except (MinitradeError, Exception) as e:
        if isinstance(e, DataError):
            raise
        raise user_error(e, file=file, plan=plan.name) from e
    if progress is not None:
        progress(len(dates), len(dates))

    fills = pd.DataFrame(broker.fills, columns=["date", "ticker", "size", "price", "commission"])
    fills["date"] = pd.to_datetime(fills["date"])
    closes = pd.DataFrame({t: f["close"] for t, f in frames.items()}).reindex(dates)
    book = daily_book(dates, closes, fills, cash=cash, positions=held)
    start_equity = cash + sum(s * p for s, p in seeded.values())
    trades = closed_trades(fills, {t: (s, p, first_day) for t, (s, p) in seeded.items()})
    stats = compute_stats(book.equity["equity"], start_equity=start_equity, trades=trades,
                          exposure=(book.positions != 0).any(axis=1), closes=closes)
    last_date = dates[-1].date()
    intents: list[OrderIntent] = []
    if trade_start is None or last_date >= trade_start:
        intents = last_bar_intents(broker.orders[broker.bar_orders_from:], plan, file)
    return BacktestResult(plan=plan.name, start_equity=start_equity, equity=book.equity,
                          positions=book.positions, fills=fills, trades=trades, stats=stats,
                          intents=intents, last_date=last_date, rejected=broker.rejected)


def prepare_prices(plan: Plan, prices: Mapping[str, pd.DataFrame], *, end: date | None = None
                   ) -> dict[str, pd.DataFrame]:
    """Check every universe ticker's prices and cut them to [backtest_start, end], in plan order."""
    frames: dict[str, pd.DataFrame] = {}
    for ticker in plan.tickers:
        frame = prices.get(ticker)
        if frame is None or len(frame) == 0:
            raise DataError(f"plan {plan.name}: no prices for {ticker}", source=plan.data_source, ticker=ticker)
        index = pd.DatetimeIndex(frame.index)
        if not index.is_monotonic_increasing and not index.has_duplicates:
            at = next(i for i in range(1, len(index)) if index[i] < index[i - 1])
            raise DataError(f"plan {plan.name}: dates are not in ascending order ({index[at - 1].date()} "
                            f"comes before {index[at].date()})", source=plan.data_source, ticker=ticker)
        try:
            clean = frame if _is_canonical(frame) else canonical(frame, source=plan.data_source, ticker=ticker)
        except DataError as e:
            raise DataError(f"plan {plan.name}: {str(e).split(': ', 1)[-1]}", source=plan.data_source,
                            ticker=ticker) from e
        clean = clean.loc[pd.Timestamp(plan.backtest_start):pd.Timestamp(end) if end else None]
        if clean.empty:
            raise DataError(f"plan {plan.name}: no prices from backtest_start {plan.backtest_start}"
                            f"{f' to {end}' if end else ''}", source=plan.data_source, ticker=ticker)
        frames[ticker] = clean
    return frames


def _is_canonical(frame: pd.DataFrame) -> bool:
    """Cheap check that a frame already is what `canonical` returns (sources and the cache give that)."""
    if list(frame.columns) != COLUMNS or not all(t == np.float64 for t in frame.dtypes):
        return False
    index = frame.index
    if not isinstance(index, pd.DatetimeIndex) or index.tz is not None:
        return False
    if not (index.is_monotonic_increasing and index.is_unique) or (index != index.normalize()).any():
        return False
    values = frame.to_numpy()
    return bool(np.isfinite(values).all() and (values[:, :4] > 0).all())


def last_bar_intents(orders: list[Any], plan: Plan, file: str | None) -> list[OrderIntent]:
    """Net the orders the strategy placed on the last bar into one intent per ticker."""
    net: dict[str, float] = {}
    for order in orders:
        if order.status in (order.Canceled, order.Expired, order.Completed):
            continue
        if order.exectype not in (None, bt.Order.Market):
            raise StrategyError(f"the last bar placed a {order.getordername()} order for "
                                f"{order.data._name}; only market orders (buy/sell/order_target_*) can "
                                f"become {plan.order_type} orders", plan=plan.name, file=file)
        net[order.data._name] = net.get(order.data._name, 0.0) + float(order.created.size)
    return [OrderIntent(ticker=t, side=Side.BUY if q > 0 else Side.SELL, quantity=abs(q),
                        order_type=plan.order_type)
            for t, q in net.items() if abs(q) > 1e-9]
