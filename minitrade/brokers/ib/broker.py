"""The Broker protocol over Interactive Brokers' Client Portal gateway.

Submission is idempotent by `Order.client_id`, sent as IB's `cOID`:
- IB answers "Local order ID=… is already registered" -> the order exists: look it up and return it;
- a timeout, a dropped connection or a 5xx after sending -> look the id up in live orders and trades
  first; only if IB has never seen it is it sent once more (with the same cOID, so IB itself refuses
  a duplicate if the lookup was stale).
Never logs in: without a live brokerage session every call raises BrokerNotReady (BrokerDisconnected while
the gateway's link to IB is down: nothing reached IB, the order is held). Where the answer to a send was
lost and the lookup cannot be made now, the outcome stays unknown (BrokerUnavailable): the order is looked
up by cOID before anything is sent again.
IB's order questions are answered yes only for the broker's `confirm_message_ids`; what was confirmed is
returned in the order's note. Any other question is answered no (OrderQuestionRefused).
"""

from __future__ import annotations

import logging
import math
from datetime import UTC, datetime
from typing import Any

from minitrade.brokers.base import BrokerOrder, SessionState
from minitrade.brokers.ib import payloads
from minitrade.brokers.ib.client import AuthStatus, IBClient, Placement
from minitrade.brokers.ib.contracts import resolve_conid
from minitrade.brokers.ib.payloads import number
from minitrade.errors import AlreadyPlaced, BrokerNotReady, BrokerUnavailable, OrderNotFound
from minitrade.models import IBBroker as IBBrokerSpec
from minitrade.models import OrderType
from minitrade.records import Fill, Order, OrderStatus

log = logging.getLogger(__name__)

# Entry type -> (orderType, tif): market-on-open, market-on-close, plain market.
TICKETS: dict[OrderType, tuple[str, str]] = {
    OrderType.TOO: ("MKT", "OPG"), OrderType.TOC: ("MOC", "DAY"), OrderType.TRG: ("MKT", "DAY"),
}
_STATUS = {"Filled": OrderStatus.FILLED, "Cancelled": OrderStatus.CANCELLED, "Inactive": OrderStatus.REJECTED}


def _status(ib_status: str, filled: float) -> OrderStatus:
    status = _STATUS.get(ib_status, OrderStatus.SUBMITTED)
    if status is OrderStatus.SUBMITTED and filled > 0:
        return OrderStatus.PARTIAL
    return status


class IBBroker:
    """One `type: ib` broker account of minitrade.yaml."""

    def __init__(self, name: str, spec: IBBrokerSpec, *, client: IBClient | None = None) -> None:
        self.name, self.spec = name, spec
        self.client = client or IBClient.from_spec(spec, name=name)
        self.confirm = frozenset(spec.confirm_message_ids)
        self._account: str | None = None

    def close(self) -> None:
        self.client.close()

    # -- session -------------------------------------------------------------------------------
    def session(self) -> SessionState:
        return self.client.session_state()

    def keepalive(self) -> SessionState:
        """Tickle the gateway (about once a minute while the daemon runs) and report the session state.

        An EXPIRED/NO_SESSION answer is how the daemon notices a lost session (then notifies; never logs in).
        """
        try:
            status = self.client.tickle().get("iserver", {}).get("authStatus")
        except BrokerNotReady:
            return SessionState.NO_SESSION
        except BrokerUnavailable:
            return self.session()
        if not isinstance(status, dict):
            return self.session()
        return AuthStatus(bool(status.get("authenticated")), bool(status.get("connected")),
                          bool(status.get("competing"))).state

    def _ready(self) -> str:
        """The account to trade, after checking the session and making the calls IB requires first."""
        state = self.session()
        if state is not SessionState.AUTHENTICATED:
            raise BrokerNotReady(f"session is {state.value}; run `minitrade ib login {self.name}`",
                                 account=self.name)
        self._account = self.client.prepare(self.spec.account_id)
        return self._account

    # -- orders --------------------------------------------------------------------------------
    def ticket(self, order: Order, account: str) -> dict[str, Any]:
        order_type, tif = TICKETS[order.order_type]
        conid = order.conid or resolve_conid(self.client, order.ticker, account=self.name)
        quantity: float | int = int(order.quantity) if float(order.quantity).is_integer() else order.quantity
        return {"acctId": account, "conid": conid, "secType": f"{conid}:STK", "cOID": order.client_id,
                "orderType": order_type, "listingExchange": "SMART", "outsideRTH": False,
                "side": order.side.value, "ticker": order.ticker, "tif": tif, "quantity": quantity,
                "useAdaptive": False}

    def submit(self, order: Order) -> BrokerOrder:
        account = self._ready()
        ticket = self.ticket(order, account)
        try:
            return self._placed(order, self.client.place_order(account, ticket, confirm=self.confirm))
        except AlreadyPlaced:
            return self._existing(order.client_id, why="IB says its cOID is already registered")
        except BrokerUnavailable as first:
            log.warning("order %s: %s; looking it up before any retry", order.client_id, first)
            found = self._lookup_after(order.client_id, first)
            if found is not None:
                return found
            log.warning("order %s never reached IB; sending it once more with the same cOID", order.client_id)
            try:
                return self._placed(order, self.client.place_order(account, ticket, confirm=self.confirm))
            except AlreadyPlaced:
                return self._existing(order.client_id, why="IB says its cOID is already registered")

    def _lookup_after(self, client_id: str, first: BrokerUnavailable) -> BrokerOrder | None:
        """Look an order up after a lost answer; if the session or link is gone, its outcome stays unknown."""
        try:
            return self.find(client_id)
        except BrokerNotReady as e:
            # Holding it would send it again later without a lookup: keep it "outcome unknown" instead.
            raise BrokerUnavailable(f"order {client_id} may have reached IB ({first}) and cannot be looked up "
                                    f"now ({e}); it is looked up by client id before anything is sent again",
                                    account=self.name) from e

    def _placed(self, order: Order, ack: Placement) -> BrokerOrder:
        log.info("order %s placed at IB as %s (%s)", order.client_id, ack.order_id, ack.order_status)
        filled = order.quantity if ack.order_status == "Filled" else 0.0
        note = "; ".join(f"confirmed IB question {','.join(q.message_ids)}: {q.text}" for q in ack.confirmed)
        return BrokerOrder(order.client_id, ack.order_id, _status(ack.order_status, filled), filled,
                           order.quantity - filled, note=note or None)

    def _existing(self, client_id: str, *, why: str) -> BrokerOrder:
        found = self.find(client_id)
        if found is None:
            raise BrokerUnavailable(f"order {client_id}: {why}, but it is not visible yet; it will be "
                                    "reconciled on the next pass, not resent", account=self.name)
        return found

    def find(self, client_id: str) -> BrokerOrder | None:
        account = self._account or self._ready()
        for row in self.client.live_orders(account):
            if row.get("order_ref") == client_id:
                filled = number(row.get("filledQuantity"))
                avg = number(row.get("avgPrice"), math.nan)
                return BrokerOrder(client_id, str(row.get("orderId")), _status(str(row.get("status")), filled),
                                   filled, number(row.get("remainingQuantity")),
                                   None if math.isnan(avg) else avg)
        executions = [t for t in self.client.trades(days=7) if t.get("order_ref") == client_id]
        if not executions:
            return None
        size = sum(abs(number(t.get("size"))) for t in executions)
        paid = sum(abs(number(t.get("size"))) * number(t.get("price")) for t in executions)
        return BrokerOrder(client_id, str(executions[0].get("order_id") or ""), OrderStatus.FILLED, size, 0.0,
                           paid / size if size else None)

    def cancel(self, order: Order) -> None:
        """Cancel if still open at IB; an order already filled, cancelled or unknown is left alone."""
        found = self.find(order.client_id)
        if found is None or not found.status.is_open or not found.broker_order_id:
            return
        try:
            self.client.cancel_order(self._account or self._ready(), found.broker_order_id)
        except OrderNotFound:
            return  # gone meanwhile: filled, cancelled or expired at IB

    def fills(self, since: datetime | None = None) -> list[Fill]:
        """Executions of our orders (those carrying a cOID) since `since`, over at most 7 days."""
        if self._account is None:
            self._ready()
        days = 7 if since is None else max(1, min(7, math.ceil((datetime.now(UTC) - since).total_seconds()
                                                               / 86400) + 1))
        out = [Fill(fill_id=e.execution_id, client_id=e.client_id, quantity=e.size, price=e.price,
                    commission=e.commission, filled_at=e.at, source=f"ib:{self.name}")
               for e in payloads.executions(self.client.trades(days=days), account=self.name)
               if since is None or e.at >= since]
        return sorted(out, key=lambda f: (f.filled_at, f.fill_id))

    # -- portfolio -----------------------------------------------------------------------------
    def positions(self) -> list[payloads.PositionRow]:
        account = self._account or self._ready()
        return payloads.positions(self.client.positions(account), account=self.name)

    def cash(self) -> dict[str, float]:
        """Cash balance per currency, plus `BASE` (the account's base currency)."""
        account = self._account or self._ready()
        return {str(k): number(v.get("cashbalance")) for k, v in self.client.ledger(account).items()
                if isinstance(v, dict)}
