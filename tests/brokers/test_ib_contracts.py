"""Contract resolution and the `apply` check for IB plans and brokers."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import pytest

from minitrade.brokers.ib.client import IBClient
from minitrade.brokers.ib.contracts import candidates, conids_for, contracts_check
from minitrade.errors import OrderRejected
from minitrade.loader import Snapshot
from minitrade.models import IBBroker as IBBrokerSpec
from minitrade.models import Plan, Settings
from minitrade.testing.ib_gateway import FakeGateway

from .conftest import make_spec


def plan(name: str, universe: object, broker: str = "ib-paper") -> Plan:
    return Plan.model_validate({"name": name, "strategy": "strategies/sma.py", "universe": universe,
                                "data_source": "csv", "backtest_start": "2024-01-02", "run_at": "15:45",
                                "broker": broker, "cash": 10000})


def snapshot(brokers: dict[str, IBBrokerSpec], *plans: Plan) -> Snapshot:
    settings = Settings.model_validate({"brokers": {"manual": {"type": "manual"},
                                                    **{k: v.model_dump() for k, v in brokers.items()}}})
    return Snapshot(root=Path("."), settings=settings, plans={p.name: p for p in plans},
                    plan_files={p.name: f"plans/{p.name}.yaml" for p in plans}, strategies={})


def test_candidates_list_every_listing_us_first(client: IBClient) -> None:
    found = candidates(client, ["aapl", "SPY", "NOPE"])
    assert [(c.conid, c.exchange, c.is_us) for c in found["AAPL"]] == [
        (265598, "NASDAQ", True), (532640894, "AEQLIT", False), (493546048, "LSEETF", False)]
    assert [c.conid for c in found["SPY"]] == [756733] and found["NOPE"] == []


def test_apply_refuses_an_ambiguous_unpinned_symbol_listing_the_choices(gateway: FakeGateway) -> None:
    snap = snapshot({"ib-paper": make_spec(gateway)}, plan("tech", ["AAPL", "SPY"]))
    (error,) = contracts_check(snap, {("plan", "tech")})
    assert error.startswith("plans/tech.yaml: universe: AAPL is ambiguous")
    assert "265598 NASDAQ US" in error and "493546048 LSEETF non-US" in error
    assert "universe: {AAPL: {conid: 265598}}" in error


def test_apply_accepts_pinned_and_unambiguous_symbols(gateway: FakeGateway) -> None:
    snap = snapshot({"ib-paper": make_spec(gateway)}, plan("tech", {"AAPL": {"conid": 265598}, "SPY": None}))
    assert contracts_check(snap, {("plan", "tech")}) == []


def test_apply_refuses_a_symbol_ib_does_not_know(gateway: FakeGateway) -> None:
    snap = snapshot({"ib-paper": make_spec(gateway)}, plan("odd", ["ZZZZ"]))
    assert contracts_check(snap, {("plan", "odd")}) == ["plans/odd.yaml: universe: IB knows no stock listing for ZZZZ"]


def test_apply_ignores_unchanged_plans_and_other_brokers(gateway: FakeGateway) -> None:
    snap = snapshot({"ib-paper": make_spec(gateway)}, plan("tech", ["AAPL"]), plan("manual", ["AAPL"], "manual"))
    assert contracts_check(snap, {("plan", "manual")}) == []
    assert gateway.requests == []


def test_a_new_broker_without_a_session_needs_login_and_does_not_fail(
        gateway: FakeGateway, caplog: pytest.LogCaptureFixture) -> None:
    gateway.set_state("no_session")
    snap = snapshot({"ib-paper": make_spec(gateway)})
    with caplog.at_level(logging.WARNING):
        assert contracts_check(snap, {("broker", "ib-paper")}) == []
    assert "login needed" in caplog.text and "minitrade ib login ib-paper" in caplog.text
    assert not any(p.startswith("/sso/Login") for _, p, _ in gateway.requests)


def test_a_new_broker_with_a_session_has_its_account_checked(gateway: FakeGateway) -> None:
    good = snapshot({"ib-paper": make_spec(gateway, account_id="DU1234567")})
    assert contracts_check(good, {("broker", "ib-paper")}) == []
    assert ("GET", "/iserver/accounts", None) in gateway.requests
    bad = snapshot({"ib-paper": make_spec(gateway, account_id="U0000001")})
    (error,) = contracts_check(bad, {("broker", "ib-paper")})
    assert "U0000001 is not among this login's accounts (DU1234567)" in error


def test_a_new_broker_whose_gateway_is_down_fails(gateway: FakeGateway) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"https://localhost:{s.getsockname()[1]}"
    snap = snapshot({"ib-live": make_spec(gateway, gateway={"url": url})})
    (error,) = contracts_check(snap, {("broker", "ib-live")})
    assert "no gateway answers" in error and "minitrade ib start --account ib-live" in error


def test_apply_refuses_a_pin_that_is_not_a_listing_of_the_symbol(gateway: FakeGateway) -> None:
    snap = snapshot({"ib-paper": make_spec(gateway)}, plan("typo", {"AAPL": {"conid": 756733}, "BRK-B": 72063691}))
    (error,) = contracts_check(snap, {("plan", "typo")})
    assert error.startswith("plans/typo.yaml: universe: conid 756733 pinned for AAPL is not one of its IB listings")


def test_conids_for_a_universe_use_pins_and_resolve_the_rest(client: IBClient) -> None:
    universe = plan("p", {"AAPL": {"conid": 265598}, "SPY": None}).universe
    assert conids_for(client, universe) == {"AAPL": 265598, "SPY": 756733}
    with pytest.raises(OrderRejected, match="AAPL is ambiguous"):
        conids_for(client, plan("p", ["AAPL"]).universe)
