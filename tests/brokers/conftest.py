"""Fixtures for the broker tests: a fake IB gateway over real HTTPS, and clients pointed at it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime

import pytest

from minitrade.brokers.ib.broker import IBBroker
from minitrade.brokers.ib.client import IBClient, Pacing
from minitrade.models import IBBroker as IBBrokerSpec
from minitrade.models import OrderType
from minitrade.records import Order, OrderStatus, Side
from minitrade.testing.ib_gateway import FakeGateway

# Wednesday 2026-11-25, 10:00 New York (15:00 UTC): inside regular trading hours.
IN_RTH = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
PRE_OPEN = datetime(2026, 11, 25, 13, 0, tzinfo=UTC)        # 08:00 New York
AAPL, SPY = 265598, 756733


@pytest.fixture
def gateway() -> Iterator[FakeGateway]:
    with FakeGateway(two_factor="none", state="authenticated", now=IN_RTH) as gw:
        gw.set_price(AAPL, open=189.0, close=191.5, last=190.0)
        gw.set_price(SPY, open=600.0, close=602.0, last=601.0)
        yield gw


def make_spec(gw: FakeGateway, /, **overrides: object) -> IBBrokerSpec:
    fields: dict[str, object] = {
        "type": "ib", "username": "${IB_USERNAME}", "password": "${IB_PASSWORD}",
        "gateway": {"url": gw.url, "verify_tls": True, "ca_cert": str(gw.ca_pem)},
    }
    fields.update(overrides)
    return IBBrokerSpec.model_validate(fields)


def make_client(spec: IBBrokerSpec, **kwargs: object) -> IBClient:
    kwargs.setdefault("pacing", Pacing.off())
    kwargs.setdefault("sleep", lambda seconds: None)
    return IBClient.from_spec(spec, name="ib-test", **kwargs)


@pytest.fixture
def spec(gateway: FakeGateway) -> IBBrokerSpec:
    return make_spec(gateway)


@pytest.fixture
def client(spec: IBBrokerSpec) -> Iterator[IBClient]:
    with make_client(spec) as c:
        yield c


@pytest.fixture
def broker(spec: IBBrokerSpec) -> Iterator[IBBroker]:
    b = IBBroker("ib-test", spec, client=make_client(spec, timeout=1.0))
    yield b
    b.close()


def make_order(client_id: str = "plan1-20261125-1500-AAPL-0", *, ticker: str = "AAPL", conid: int | None = AAPL,
               order_type: OrderType = OrderType.TOC, side: Side = Side.BUY, quantity: float = 10) -> Order:
    return Order(client_id=client_id, plan="plan1", run_id="run1", trading_day=date(2026, 11, 25),
                 ticker=ticker, side=side, quantity=quantity, order_type=order_type, broker="ib-test",
                 status=OrderStatus.PENDING_SUBMIT, conid=conid)
