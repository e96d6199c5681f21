"""The one registry of broker adapters: by spec type, built once per pool, closed together."""

from __future__ import annotations

from minitrade.brokers.ib.broker import IBBroker as IBAdapter
from minitrade.brokers.manual import ManualBroker
from minitrade.brokers.registry import BrokerPool, reports_fills
from minitrade.models import IBBroker
from minitrade.models import ManualBroker as ManualSpec
from minitrade.testing.ib_gateway import FakeGateway

from .conftest import make_spec


def test_adapters_by_spec_type_built_once_and_closed_together(gateway: FakeGateway) -> None:
    ib_spec = make_spec(gateway)
    manual_spec = ManualSpec.model_validate({"type": "manual"})
    pool = BrokerPool({"ib": ib_spec, "hand": manual_spec})
    ib, hand = pool("ib"), pool("hand")
    assert isinstance(ib, IBAdapter) and isinstance(hand, ManualBroker)
    assert pool("ib") is ib, "one adapter per account for the pool's life"
    ib.session()  # a real request: its HTTP session holds a connection to the gateway
    pool.close()
    assert pool("ib") is not ib, "after close, an account gets a fresh adapter"
    assert reports_fills(ib_spec) and not reports_fills(manual_spec) and not reports_fills(None)
    assert isinstance(ib_spec, IBBroker)
