"""IB's JSON rows as typed records, read once at the client boundary.

A row the code relies on (an execution of one of our orders, a position) is checked here: a missing
field or an unreadable value is a MalformedResponse naming the field and the row, never a KeyError
or a guess further in. Rows that are not ours (no cOID) are passed over without being read.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from minitrade.errors import MalformedResponse


@dataclass(frozen=True)
class Execution:
    """One execution (a fill) of an order minitrade placed: `client_id` is its cOID."""

    execution_id: str
    client_id: str
    size: float
    price: float
    commission: float
    at: datetime


@dataclass(frozen=True)
class PositionRow:
    """One position of an account as the portfolio endpoint reports it."""

    conid: int
    ticker: str
    quantity: float
    avg_cost: float
    market_price: float | None
    currency: str


def number(value: Any, default: float = 0.0) -> float:
    """IB sends numbers as numbers or strings ("1.0", "" for none)."""
    try:
        return float(value) if value not in (None, "") else default
    except (TypeError, ValueError):
        return default


def executions(rows: Iterable[Mapping[str, Any]], *, account: str | None = None) -> list[Execution]:
    """The executions of our orders among `rows` (`/iserver/account/trades`)."""
    return [_execution(row, account) for row in rows if str(row.get("order_ref") or "")]


def _execution(row: Mapping[str, Any], account: str | None) -> Execution:
    exec_id = _required(row, "execution_id", account)
    size, price = _finite(row, "size", account), _finite(row, "price", account)
    return Execution(execution_id=str(exec_id), client_id=str(row["order_ref"]), size=abs(size), price=price,
                     commission=number(row.get("commission")), at=_when(row, account))


def _when(row: Mapping[str, Any], account: str | None) -> datetime:
    try:
        if row.get("trade_time_r"):
            return datetime.fromtimestamp(int(row["trade_time_r"]) / 1000, UTC)
        return datetime.strptime(str(_required(row, "trade_time", account)), "%Y%m%d-%H:%M:%S").replace(tzinfo=UTC)
    except (TypeError, ValueError, OverflowError):
        raise _malformed(row, "trade_time", account) from None


def positions(rows: Iterable[Mapping[str, Any]], *, account: str | None = None) -> list[PositionRow]:
    """The non-zero positions among `rows` (`/portfolio/{account}/positions/{page}`)."""
    out = []
    for row in rows:
        quantity = _finite(row, "position", account)
        if quantity == 0:
            continue
        conid = _required(row, "conid", account)
        try:
            conid_number = int(conid)
        except (TypeError, ValueError):
            raise _malformed(row, "conid", account) from None
        price = row.get("mktPrice")
        out.append(PositionRow(conid_number, str(row.get("ticker") or row.get("contractDesc") or conid), quantity,
                               number(row.get("avgCost")), number(price, math.nan) if price is not None else None,
                               str(row.get("currency") or "")))
    return out


def _required(row: Mapping[str, Any], field: str, account: str | None) -> Any:
    value = row.get(field)
    if value in (None, ""):
        raise _malformed(row, field, account)
    return value


def _finite(row: Mapping[str, Any], field: str, account: str | None) -> float:
    value = number(_required(row, field, account), math.nan)
    if not math.isfinite(value):
        raise _malformed(row, field, account)
    return value


def _malformed(row: Mapping[str, Any], field: str, account: str | None) -> MalformedResponse:
    which = row.get("execution_id") or row.get("order_ref") or row.get("conid") or "?"
    return MalformedResponse(f"IB answered a row without a readable {field!r} (row {which}); nothing was "
                             "recorded from it, it is asked again next pass", account=account)
