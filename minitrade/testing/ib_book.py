"""The fake IB gateway's market: accounts, contracts, orders, fills, positions and cash.

Plain state driven by a test clock; the HTTP layer (`ib_gateway`) holds the lock around every call.
Session times are US/Eastern weekdays, 09:30-16:00, market-on-close cutoff 15:50 (no holidays).
Imports nothing from minitrade on purpose: a bug in the client must not be mirrored here.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

EASTERN = ZoneInfo("America/New_York")
OPEN, CLOSE, MOC_CUTOFF = time(9, 30), time(16, 0), time(15, 50)
MOC_TIF_ERROR = "Invalid time-in-force for at-the-closing order."

# symbol -> (company name, [(conid, exchange, isUS)])
DEFAULT_CONTRACTS: dict[str, tuple[str, list[tuple[int, str, bool]]]] = {
    "AAPL": ("APPLE INC", [(265598, "NASDAQ", True), (493546048, "LSEETF", False),
                           (532640894, "AEQLIT", False)]),
    "SPY": ("SPDR S&P 500 ETF TRUST", [(756733, "ARCA", True)]),
    "QQQ": ("INVESCO QQQ TRUST SERIES 1", [(320227571, "NASDAQ", True)]),
    "MSFT": ("MICROSOFT CORP", [(272093, "NASDAQ", True)]),
}
STATUS_FILTER = {"Inactive": "inactive", "PendingSubmit": "pending_submit", "PreSubmitted": "pre_submitted",
                 "Submitted": "submitted", "Filled": "filled", "PendingCancel": "pending_cancel",
                 "Cancelled": "cancelled"}


@dataclass
class FakeOrder:
    order_id: int
    coid: str | None
    acct: str
    conid: int
    ticker: str
    side: str              # BUY | SELL
    order_type: str        # MKT | MOC
    tif: str               # DAY | OPG
    quantity: float
    placed_at: datetime
    fill_at: datetime
    expire_at: datetime
    status: str = "PreSubmitted"
    filled: float = 0.0
    avg_price: float | None = None
    last_execution: datetime | None = None

    @property
    def is_open(self) -> bool:
        return self.status in ("PreSubmitted", "Submitted", "PendingSubmit", "PendingCancel")


@dataclass
class Execution:
    execution_id: str
    order: FakeOrder
    size: float
    price: float
    commission: float
    at: datetime


def session_bounds(day: datetime) -> tuple[datetime, datetime, datetime]:
    """(open, moc cutoff, close) of the Eastern calendar day containing `day`, in UTC."""
    local = day.astimezone(EASTERN).date()

    def at(t: time) -> datetime:
        return datetime.combine(local, t, EASTERN).astimezone(UTC)

    return at(OPEN), at(MOC_CUTOFF), at(CLOSE)


def is_trading_day(moment: datetime) -> bool:
    return moment.astimezone(EASTERN).weekday() < 5


def next_open(moment: datetime) -> datetime:
    """The first session open at or after `moment`."""
    probe = moment
    for _ in range(10):
        opening, _, _ = session_bounds(probe)
        if is_trading_day(probe) and opening >= moment:
            return opening
        probe = (probe.astimezone(EASTERN) + timedelta(days=1)).replace(hour=0, minute=0)
    raise AssertionError("no trading day within ten days")


@dataclass
class Book:
    """Everything the fake broker knows about money and orders."""

    accounts: list[str] = field(default_factory=lambda: ["DU1234567"])
    currency: str = "USD"
    cash: float = 100_000.0
    commission_per_share: float = 0.005
    split_fills: bool = False
    contracts: dict[str, tuple[str, list[tuple[int, str, bool]]]] = field(
        default_factory=lambda: dict(DEFAULT_CONTRACTS))
    prices: dict[int, dict[str, float]] = field(default_factory=dict)
    orders: list[FakeOrder] = field(default_factory=list)
    executions: list[Execution] = field(default_factory=list)
    positions: dict[int, tuple[float, float]] = field(default_factory=dict)   # conid -> (qty, avg cost)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1_171_486_700))

    # -- contracts -----------------------------------------------------------------------------
    def contract(self, conid: int) -> tuple[str, str, str, bool] | None:
        """(symbol, name, exchange, isUS) of a conid."""
        for symbol, (name, listings) in self.contracts.items():
            for cid, exchange, is_us in listings:
                if cid == conid:
                    return symbol, name, exchange, is_us
        return None

    def stocks(self, symbols: list[str]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for symbol in symbols:
            if symbol in self.contracts:
                name, listings = self.contracts[symbol]
                out[symbol] = [{"name": name, "chineseName": None, "assetClass": "STK",
                                "contracts": [{"conid": c, "exchange": e, "isUS": u} for c, e, u in listings]}]
        return out

    # -- orders --------------------------------------------------------------------------------
    def check_ticket(self, ticket: dict[str, Any], now: datetime) -> str | FakeOrder:
        """Validate a ticket as IB would; an error text, or the order ready to store."""
        try:
            conid = int(ticket["conid"])
            quantity = float(ticket["quantity"])
            side, order_type = str(ticket["side"]).upper(), str(ticket["orderType"]).upper()
            tif = str(ticket.get("tif", "DAY")).upper()
        except (KeyError, TypeError, ValueError):
            return "invalid order fields"
        contract = self.contract(conid)
        if contract is None:
            return f"Contract {conid} not found"
        if str(ticket.get("acctId")) not in self.accounts:
            return f"Account {ticket.get('acctId')} is not a valid account"
        if side not in ("BUY", "SELL") or quantity <= 0:
            return "invalid order fields"
        opening, cutoff, closing = session_bounds(now)
        in_rth = is_trading_day(now) and opening <= now < closing
        if order_type == "MOC":
            if tif != "DAY":
                return f'"{side} {quantity:g} {contract[0]} {contract[2]}"\n{MOC_TIF_ERROR}'
            if not is_trading_day(now) or now >= cutoff:
                return "The order cannot be accepted: the market-on-close cutoff has passed."
            fill_at, expire_at = closing, closing
        elif order_type == "MKT" and tif == "OPG":
            if in_rth:
                return "Market-on-open orders must be submitted before the opening auction."
            fill_at = next_open(now)
            expire_at = fill_at
        elif order_type == "MKT" and tif == "DAY":
            fill_at = now if in_rth else next_open(now)
            expire_at = session_bounds(fill_at)[2]
        else:
            return f"Order type {order_type} with tif {tif} is not supported by this gateway"
        return FakeOrder(order_id=next(self._ids), coid=ticket.get("cOID"), acct=str(ticket["acctId"]),
                         conid=conid, ticker=contract[0], side=side, order_type=order_type, tif=tif,
                         quantity=quantity, placed_at=now, fill_at=fill_at, expire_at=expire_at)

    def find_coid(self, coid: str, now: datetime) -> FakeOrder | None:
        """An order with this cOID placed within the last 24 hours."""
        for order in self.orders:
            if order.coid == coid and now - order.placed_at < timedelta(hours=24):
                return order
        return None

    def order(self, order_id: int) -> FakeOrder | None:
        return next((o for o in self.orders if o.order_id == order_id), None)

    def cancel(self, order: FakeOrder, now: datetime) -> None:
        """Auction orders past their cutoff stay in the auction, as at IB."""
        _, cutoff, _ = session_bounds(order.fill_at)
        locked = (order.order_type == "MOC" and now >= cutoff) or (order.tif == "OPG" and now >= order.fill_at)
        if order.is_open and not locked:
            order.status = "PendingCancel"

    def work(self, order: FakeOrder, now: datetime) -> None:
        """An order just accepted: working at the exchange if its time has come, not yet filled."""
        if order.status == "PreSubmitted" and now >= order.fill_at:
            order.status = "Submitted"

    def settle(self, now: datetime) -> None:
        """Fill or expire every open order whose time has come."""
        for order in self.orders:
            if order.status == "PendingCancel":
                order.status = "Cancelled"
            if not order.is_open:
                continue
            quote = self.prices.get(order.conid)
            if now >= order.fill_at and quote is not None:
                if order.order_type == "MOC":
                    auction = "close"
                else:
                    auction = "open" if order.fill_at > order.placed_at else "last"
                self._fill(order, float(quote.get(auction, quote.get("last", 0.0))), order.fill_at)
            elif now >= order.expire_at:
                order.status = "Cancelled"
            elif order.status == "PreSubmitted" and now >= order.fill_at:
                order.status = "Submitted"

    def _fill(self, order: FakeOrder, price: float, at: datetime) -> None:
        """Fill the rest of `order`; in two executions when `split_fills` is on (as IB often reports)."""
        size = order.quantity - order.filled
        first = float(int(size // 2)) if self.split_fills and size >= 2 else size
        for n, part in enumerate(p for p in (first, size - first) if p > 0):
            commission = round(max(1.0, self.commission_per_share * part), 2)
            signed = part if order.side == "BUY" else -part
            self.cash -= signed * price + commission
            self._move_position(order.conid, signed, price)
            self.executions.append(Execution(f"0000e0d5.{order.order_id:08x}.01.{n + 1:02d}", order, part,
                                             price, commission, at))
        order.filled, order.avg_price, order.status, order.last_execution = order.quantity, price, "Filled", at

    def _move_position(self, conid: int, signed: float, price: float) -> None:
        qty, cost = self.positions.get(conid, (0.0, 0.0))
        new_qty = qty + signed
        if new_qty == 0:
            self.positions.pop(conid, None)
        elif qty == 0 or (qty > 0) == (signed > 0):
            self.positions[conid] = (new_qty, (qty * cost + signed * price) / new_qty)
        else:       # reduced keeps its cost; flipped starts at this price
            self.positions[conid] = (new_qty, cost if (qty > 0) == (new_qty > 0) else price)

    # -- wire shapes ---------------------------------------------------------------------------
    def live_order_json(self, order: FakeOrder) -> dict[str, Any]:
        moc = order.order_type == "MOC"
        kind = "MARKETONCLOSE" if moc else "MARKET"
        tif = "CLOSE" if moc else order.tif
        last = order.last_execution or order.placed_at
        return {"acct": order.acct, "account": order.acct, "conid": order.conid, "conidex": str(order.conid),
                "orderId": order.order_id, "ticker": order.ticker, "description1": order.ticker,
                "secType": "STK", "listingExchange": "NASDAQ", "companyName": order.ticker,
                "side": order.side, "orderType": "Market" if not moc else "MARKETONCLOSE",
                "origOrderType": kind, "timeInForce": tif, "price": "", "totalSize": order.quantity,
                "filledQuantity": order.filled, "remainingQuantity": order.quantity - order.filled,
                "sizeAndFills": f"{order.filled:g}", "avgPrice": "" if order.avg_price is None
                else f"{order.avg_price:g}", "status": order.status, "order_ccp_status": order.status,
                "order_ref": order.coid or "", "cashCcy": self.currency, "outsideRTH": False,
                "orderDesc": f"{order.side.title()} {order.quantity:g} {order.ticker} {kind}, {tif}",
                "lastExecutionTime": last.strftime("%y%m%d%H%M%S"),
                "lastExecutionTime_r": int(last.timestamp() * 1000)}

    def status_json(self, order: FakeOrder) -> dict[str, Any]:
        return {"order_id": order.order_id, "conid": order.conid, "symbol": order.ticker,
                "side": order.side[0], "order_type": "Market", "order_status": order.status,
                "size": f"{order.quantity:g}", "total_size": f"{order.quantity:g}",
                "filled_quantity": f"{order.filled:g}", "cum_fill": f"{order.filled:g}",
                "remaining_quantity": f"{order.quantity - order.filled:g}",
                "avg_fill_price": "" if order.avg_price is None else f"{order.avg_price:g}",
                "limit_price": "", "tif": order.tif, "order_ref": order.coid or "",
                "order_time": order.placed_at.strftime("%y%m%d%H%M%S"),
                "order_not_editable": not order.is_open, "cannot_cancel_order": not order.is_open}

    def trade_json(self, ex: Execution) -> dict[str, Any]:
        order = ex.order
        side = "B" if order.side == "BUY" else "S"
        signed = ex.size * ex.price
        return {"execution_id": ex.execution_id, "symbol": order.ticker, "side": side,
                "order_description": f"{'Bought' if side == 'B' else 'Sold'} {ex.size:g} @ {ex.price:g} on ISLAND",
                "trade_time": ex.at.astimezone(UTC).strftime("%Y%m%d-%H:%M:%S"),
                "trade_time_r": int(ex.at.timestamp() * 1000), "size": ex.size, "price": f"{ex.price:g}",
                "order_ref": order.coid or "", "submitter": "user1234", "exchange": "ISLAND",
                "commission": f"{ex.commission:g}", "net_amount": signed, "account": order.acct,
                "accountCode": order.acct, "company_name": order.ticker, "contract_description_1": order.ticker,
                "sec_type": "STK", "listing_exchange": "NASDAQ.NMS", "conid": order.conid,
                "conidEx": str(order.conid), "clearing_id": "IB", "clearing_name": "IB",
                "liquidation_trade": "0", "is_event_trading": "0"}

    def positions_json(self, acct: str) -> list[dict[str, Any]]:
        rows = []
        for conid, (qty, cost) in sorted(self.positions.items()):
            contract = self.contract(conid)
            price = self.prices.get(conid, {}).get("last", cost)
            ticker = contract[0] if contract else str(conid)
            rows.append({"acctId": acct, "conid": conid, "contractDesc": ticker, "ticker": ticker,
                         "position": qty, "mktPrice": price, "mktValue": qty * price, "currency": self.currency,
                         "avgCost": cost, "avgPrice": cost, "realizedPnl": 0.0,
                         "unrealizedPnl": qty * (price - cost), "assetClass": "STK",
                         "listingExchange": contract[2] if contract else "", "undConid": 0, "model": ""})
        return rows

    def ledger_json(self, acct: str, now: datetime) -> dict[str, Any]:
        stock = sum(r["mktValue"] for r in self.positions_json(acct))
        row = {"cashbalance": self.cash, "settledcash": self.cash, "stockmarketvalue": stock,
               "netliquidationvalue": self.cash + stock, "unrealizedpnl": 0.0, "realizedpnl": 0.0,
               "dividends": 0.0, "interest": 0.0, "exchangerate": 1, "acctcode": acct, "key": "LedgerList",
               "timestamp": int(now.timestamp()), "sessionid": 1, "severity": 0, "endofbundle": 1}
        return {self.currency: {"currency": self.currency, "secondkey": self.currency, **row},
                "BASE": {"currency": "BASE", "secondkey": "BASE", **row}}
