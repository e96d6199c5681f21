"""The fake gateway itself: standalone process, wire quirks the client relies on, isolation."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from minitrade.brokers.base import SessionState
from minitrade.brokers.ib.client import IBClient, Pacing
from minitrade.testing.ib_gateway import FakeGateway

ROOT = Path(__file__).resolve().parents[2]
_SESSIONS: list[requests.Session] = []


def plain_session() -> requests.Session:
    """A plain HTTP client that ignores REQUESTS_CA_BUNDLE (closed after each test)."""
    session = requests.Session()
    session.trust_env = False
    _SESSIONS.append(session)
    return session


@pytest.fixture(autouse=True)
def _close_sessions() -> Iterator[None]:
    yield
    while _SESSIONS:
        _SESSIONS.pop().close()


def test_fake_makes_its_own_certificate_without_trustme() -> None:
    code = ("import sys, ssl, urllib.request; sys.modules['trustme'] = None\n"
            "from minitrade.testing.ib_gateway import FakeGateway\n"
            "with FakeGateway() as gw:\n"
            "    ctx = ssl.create_default_context(cafile=str(gw.ca_pem))\n"
            "    print(urllib.request.urlopen(gw.url + '/sso/Login', context=ctx).status)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "200"


def test_fake_imports_nothing_from_minitrade_outside_testing() -> None:
    code = ("import sys, minitrade.testing.ib_gateway; "
            "print(sorted(m for m in sys.modules if m.startswith('minitrade.') and not m.startswith('minitrade.testing')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


def test_fake_runs_standalone_and_lets_a_person_approve_2fa(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen([sys.executable, "-m", "minitrade.testing.ib_gateway", "--port", str(port)],
                               stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        assert f"https://localhost:{port}" in banner
        ca = banner.split("CA certificate: ")[1].rstrip(")\n")
        with IBClient(f"https://localhost:{port}", verify=ca, pacing=Pacing.off()) as client:
            assert client.session_state() is SessionState.NO_SESSION
            session = plain_session()
            form = {"username": "fakeuser", "password": "fakepass"}
            page = session.post(f"https://localhost:{port}/sso/Login", data=form, verify=ca, timeout=10)
            assert "login-step-notification\"" in page.text       # the push block is shown
            approved = session.post(f"https://localhost:{port}/__fake/2fa/approve", verify=ca, timeout=10)
            assert approved.json() == {"approved": True}
            assert client.session_state() is SessionState.AUTHENTICATED
    finally:
        process.terminate()
        process.wait(10)
        if process.stdout:
            process.stdout.close()


def test_login_page_has_the_real_field_names(gateway: FakeGateway) -> None:
    session = plain_session()
    root = session.get(gateway.url + "/", verify=str(gateway.ca_pem), allow_redirects=False, timeout=10)
    assert root.status_code == 302 and root.headers["Location"] == "/sso/Login?forwardTo=22&RL=1&ip2loc=on"
    html = session.get(gateway.url + root.headers["Location"], verify=str(gateway.ca_pem), timeout=10).text
    for marker in ('name="username"', 'name="password"', "xyz-button-login", "xyz-errormessage", 'id="twofactbase"',
                   "login-step-notification", 'for="toggle1"'):
        assert marker in html


def test_both_api_prefixes_are_served(gateway: FakeGateway) -> None:
    session = plain_session()
    for prefix in ("/v1/api", "/v1/portal"):
        answer = session.post(gateway.url + prefix + "/iserver/auth/status", verify=str(gateway.ca_pem), timeout=10)
        assert answer.json()["authenticated"] is True


def test_an_unconfirmed_reply_chain_is_invalidated_by_the_next_order(gateway: FakeGateway) -> None:
    gateway.questions = ["o163"]
    session = plain_session()
    api, ca = gateway.url + "/v1/api", str(gateway.ca_pem)
    session.get(api + "/iserver/accounts", verify=ca, timeout=10)
    ticket = {"acctId": "DU1234567", "conid": 265598, "orderType": "MOC", "tif": "DAY", "side": "BUY", "quantity": 1}
    first = session.post(api + "/iserver/account/DU1234567/orders", json={"orders": [{**ticket, "cOID": "a"}]},
                         verify=ca, timeout=10).json()
    session.post(api + "/iserver/account/DU1234567/orders", json={"orders": [{**ticket, "cOID": "b"}]},
                 verify=ca, timeout=10)
    stale = session.post(api + f"/iserver/reply/{first[0]['id']}", json={"confirmed": True}, verify=ca, timeout=10)
    assert stale.status_code == 503 and gateway.orders == []


def test_paths_may_end_in_a_slash_and_unknown_routes_answer_400(gateway: FakeGateway) -> None:
    session = plain_session()
    api, ca = gateway.url + "/v1/api", str(gateway.ca_pem)
    assert session.get(api + "/iserver/accounts/", verify=ca, timeout=10).json()["accounts"] == ["DU1234567"]
    for path in ("/iserver/no/such/thing", "/portfolio/DU1234567/nothing", "/nothing"):
        answer = session.get(api + path, verify=ca, timeout=10)
        assert (answer.status_code, answer.json()) == (400, {"error": "Bad Request", "statusCode": 400}), path


def test_without_a_bridge_every_iserver_call_answers_400_no_bridge(gateway: FakeGateway) -> None:
    session = plain_session()
    api, ca = gateway.url + "/v1/api", str(gateway.ca_pem)
    down = session.post(gateway.url + "/__fake/bridge", json={"up": False}, verify=ca, timeout=10)
    assert down.json() == {"up": False}
    for method, path in (("GET", "/iserver/accounts"), ("POST", "/iserver/auth/status"),
                         ("POST", "/iserver/account/DU1234567/orders"), ("GET", "/iserver/account/orders")):
        answer = session.request(method, api + path, json={}, verify=ca, timeout=10)
        assert (answer.status_code, answer.json()) == (400, {"error": "Bad Request: no bridge", "statusCode": 400})
    assert session.post(api + "/tickle", verify=ca, timeout=10).json()["iserver"] == {"error": "no bridge"}
    assert session.get(api + "/portfolio/accounts", verify=ca, timeout=10).status_code == 200
    gateway.set_bridge(True)
    assert session.get(api + "/iserver/accounts", verify=ca, timeout=10).status_code == 200


def test_questions_are_configurable_and_their_answers_recorded(gateway: FakeGateway) -> None:
    session = plain_session()
    api, ca = gateway.url + "/v1/api", str(gateway.ca_pem)
    session.post(gateway.url + "/__fake/questions", json={"ids": ["o354", "o451"]}, verify=ca, timeout=10)
    session.get(api + "/iserver/accounts", verify=ca, timeout=10)
    ticket = {"acctId": "DU1234567", "conid": 265598, "orderType": "MOC", "tif": "DAY", "side": "BUY",
              "quantity": 1, "cOID": "q-1"}
    first = session.post(api + "/iserver/account/DU1234567/orders", json={"orders": [ticket]}, verify=ca,
                         timeout=10).json()
    assert first[0]["messageIds"] == ["o354"] and "without market data" in first[0]["message"][0]
    second = session.post(api + f"/iserver/reply/{first[0]['id']}", json={"confirmed": True}, verify=ca,
                          timeout=10).json()
    assert second[0]["messageIds"] == ["o451"] and "Total Value Limit" in second[0]["message"][0]
    refused = session.post(api + f"/iserver/reply/{second[0]['id']}", json={"confirmed": False}, verify=ca,
                           timeout=10).json()
    assert "not confirmed" in refused["error"] and gateway.orders == []
    assert session.get(gateway.url + "/__fake/answers", verify=ca, timeout=10).json() == [
        {"id": "o354", "confirmed": True}, {"id": "o451", "confirmed": False}]


@pytest.mark.parametrize(("in_post", "acked"), [pytest.param(False, "Submitted", id="fills-later"),
                                                 pytest.param(True, "Filled", id="fills-inside-the-post")])
def test_a_market_order_is_acknowledged_working_and_fills_on_a_later_request(gateway: FakeGateway, in_post: bool,
                                                                             acked: str) -> None:
    session = plain_session()
    api, ca = gateway.url + "/v1/api", str(gateway.ca_pem)
    session.post(gateway.url + "/__fake/fills", json={"in_post": in_post}, verify=ca, timeout=10)
    session.get(api + "/iserver/accounts", verify=ca, timeout=10)
    ticket = {"acctId": "DU1234567", "conid": 265598, "orderType": "MKT", "tif": "DAY", "side": "BUY",
              "quantity": 1, "cOID": "m-1"}
    ack = session.post(api + "/iserver/account/DU1234567/orders", json={"orders": [ticket]}, verify=ca,
                       timeout=10).json()
    assert ack[0]["order_status"] == acked
    trades = session.get(api + "/iserver/account/trades", verify=ca, timeout=10).json()
    assert [t["order_ref"] for t in trades] == ["m-1"]
