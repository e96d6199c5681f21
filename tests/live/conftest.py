"""A trading repo with one fast, deterministic plan for the live-loop tests."""

from __future__ import annotations

import pytest

ALTERNATE = '''import backtrader as bt


class Alternate(bt.Strategy):
    """Holds `size` shares on odd bars and none on even ones: an order every session."""

    params = (("size", 10),)

    def next(self):
        self.order_target_size(target=self.p.size if len(self) % 2 else 0)
'''

PLAN = """name: alt
strategy: strategies/alternate.py
universe: [AAPL]
data_source: samples
calendar: XNYS
backtest_start: 2012-11-01
trade_start: 2013-01-02
run_at: "15:45"
order_type: TOC
mode: strict
broker: manual
cash: 100000
trading: enabled
"""


# The present these tests live in: the sample prices end on 2013-03-01, and `apply` refuses a
# trading-enabled plan whose source has no bar for the current dates (issue 10, item 4).
PRESENT = "2013-01-03T15:45:00-05:00"


@pytest.fixture
def live_repo(trading_repo, monkeypatch):
    """Only the `alt` plan (the examples are slower and not needed here), committed; the clock in 2013."""
    monkeypatch.setenv("MINITRADE_NOW", PRESENT)
    for path in sorted((trading_repo.path / "plans").glob("*.yaml")):
        path.unlink()
    trading_repo.write("strategies/alternate.py", ALTERNATE)
    trading_repo.write("plans/alt.yaml", PLAN)
    trading_repo.commit("alt plan")
    return trading_repo


AAPL_CONID = 265598


@pytest.fixture
def start_gateway():
    """Start the fake IB gateway (real HTTPS on 127.0.0.1) in a given session state, at a given time."""
    from minitrade.testing.ib_gateway import FakeGateway

    started: list[FakeGateway] = []

    def start(state: str, now):
        gw = FakeGateway(two_factor="none", state=state, now=now).start()
        gw.set_price(AAPL_CONID, open=75.0, close=76.0, last=75.5)
        started.append(gw)
        return gw

    yield start
    for gw in started:
        gw.stop()


def trade_alt_through_ib(repo, gateway, *, mode: str | None = None) -> None:
    """Point the `alt` plan at an IB broker account whose gateway is the fake, and commit."""
    repo.edit("minitrade.yaml", "  manual: {type: manual}", f"""  manual: {{type: manual}}
  ib:
    type: ib
    username: ${{IB_USERNAME}}
    password: ${{IB_PASSWORD}}
    gateway: {{url: "{gateway.url}", verify_tls: true, ca_cert: "{gateway.ca_pem}"}}""")
    repo.edit("plans/alt.yaml", "broker: manual", "broker: ib")
    repo.edit("plans/alt.yaml", "universe: [AAPL]", f"universe: {{AAPL: {{conid: {AAPL_CONID}}}}}")
    if mode is not None:
        repo.edit("plans/alt.yaml", "mode: strict", f"mode: {mode}")
    repo.commit("alt through IB")
