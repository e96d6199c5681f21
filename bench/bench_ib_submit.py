"""IB order submission: cost of the idempotent path vs bare HTTP posts, against the fake gateway.

    python bench/bench_ib_submit.py [--orders 200]

Runs in this process against the fake on 127.0.0.1 over real HTTPS. Prints the time per order of
- bare `requests` POSTs of the same tickets (the baseline: one round trip each),
- IBBroker.submit (session check, /iserver/accounts, place; pacing off as on a local fake),
- IBBroker.submit when every other send is dropped after the order was stored (lookup, no resend),
and the ratios to the baseline.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from minitrade.brokers.ib.broker import IBBroker
from minitrade.brokers.ib.client import IBClient, Pacing
from minitrade.models import IBBroker as IBBrokerSpec
from minitrade.models import OrderType
from minitrade.records import Order, OrderStatus, Side
from minitrade.testing.ib_gateway import FakeGateway

PRE_OPEN = datetime(2026, 11, 25, 13, 0, tzinfo=UTC)


def order(i: int, prefix: str) -> Order:
    return Order(client_id=f"{prefix}-{i}", plan="bench", run_id="r", trading_day=date(2026, 11, 25), ticker="AAPL",
                 side=Side.BUY, quantity=1, order_type=OrderType.TOC, broker="ib", status=OrderStatus.PENDING_SUBMIT,
                 conid=265598)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--orders", type=int, default=200)
    n = parser.parse_args().orders
    logging.disable(logging.WARNING)      # the dropped sends are logged on purpose; not here
    with FakeGateway(state="authenticated", now=PRE_OPEN) as gw:
        gw.orders_preflight_quirk = False
        ca = str(gw.ca_pem)
        session = requests.Session()
        session.trust_env = False
        session.get(gw.url + "/v1/api/iserver/accounts", verify=ca)
        start = time.perf_counter()
        for i in range(n):
            session.post(gw.url + "/v1/api/iserver/account/DU1234567/orders", verify=ca, json={"orders": [{
                "acctId": "DU1234567", "conid": 265598, "cOID": f"raw-{i}", "orderType": "MOC", "tif": "DAY",
                "side": "BUY", "quantity": 1}]}).raise_for_status()
        raw = (time.perf_counter() - start) / n

        spec = IBBrokerSpec.model_validate({"type": "ib", "username": "${U}", "password": "${P}",
                                            "gateway": {"url": gw.url, "verify_tls": True, "ca_cert": ca}})
        broker = IBBroker("ib", spec, client=IBClient.from_spec(spec, pacing=Pacing.off()))
        start = time.perf_counter()
        for i in range(n):
            broker.submit(order(i, "ok"))
        clean = (time.perf_counter() - start) / n

        gw.inject("POST", r"/iserver/account/.*/orders", *(["drop_after", "no-fault"] * (n // 2)))
        start = time.perf_counter()
        for i in range(n):
            broker.submit(order(i, "drop"))
        faulty = (time.perf_counter() - start) / n
        broker.close()
        placed = sum(1 for o in gw.orders if o.coid and o.coid.startswith("drop-"))
    print(f"bare POST            {raw * 1000:7.2f} ms/order  (baseline)")
    print(f"IBBroker.submit      {clean * 1000:7.2f} ms/order  x{clean / raw:.1f}")
    print(f"  half sends dropped {faulty * 1000:7.2f} ms/order  x{faulty / raw:.1f}  "
          f"({placed} orders at the gateway for {n} submits)")


if __name__ == "__main__":
    main()
