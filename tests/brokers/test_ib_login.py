"""Explicit login through real headless Chromium against the fake gateway's login page.

Tests that open the browser are marked `chromium`: skipped, with the reason, on a machine without one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from minitrade.brokers.base import SessionState
from minitrade.brokers.ib.login import LoginGuard, login
from minitrade.errors import BrokerNotReady, BrokerUnavailable, ConfigError
from minitrade.models import IBBroker as IBBrokerSpec
from minitrade.testing.ib_gateway import FakeGateway

from .conftest import make_client

ENV = {"IB_USERNAME": "fakeuser", "IB_PASSWORD": "fakepass"}
WRONG = {"IB_USERNAME": "fakeuser", "IB_PASSWORD": "not-the-password"}


@pytest.fixture
def login_gateway() -> Iterator[FakeGateway]:
    with FakeGateway(two_factor="push", lock_after=3) as gw:
        yield gw


def spec_for(gw: FakeGateway, **overrides: object) -> IBBrokerSpec:
    # The real gateway's certificate is self-signed: verify_tls false, as users configure it.
    fields: dict[str, object] = {"type": "ib", "username": "${IB_USERNAME}", "password": "${IB_PASSWORD}",
                                 "gateway": {"url": gw.url, "verify_tls": False}, "max_login_attempts": 2}
    fields.update(overrides)
    return IBBrokerSpec.model_validate(fields)


def run_login(gw: FakeGateway, tmp_path: Path, env: dict[str, str], **kwargs: Any) -> SessionState:
    spec = spec_for(gw)
    kwargs.setdefault("twofa_timeout", 20.0)
    with make_client(spec) as client:
        return login("ib-paper", spec, state_dir=tmp_path, env=env, client=client, poll=0.1,
                     page_timeout=20.0, **kwargs)


def approve_when_pending(gw: FakeGateway) -> threading.Thread:
    def approve() -> None:
        deadline = time.monotonic() + 30
        while gw.state != "2fa_pending" and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)      # the person takes a moment to reach for the phone
        gw.approve_2fa()

    thread = threading.Thread(target=approve, daemon=True)
    thread.start()
    return thread


def login_posts(gw: FakeGateway) -> int:
    return sum(1 for m, p, _ in gw.requests if m == "POST" and p == "/sso/Login")


@pytest.mark.chromium
def test_login_fills_the_real_form_and_waits_for_the_2fa_push(login_gateway: FakeGateway, tmp_path: Path) -> None:
    said: list[str] = []
    asked = threading.Event()  # the person approves once minitrade asked (not after a guessed delay)

    def say(line: str) -> None:
        said.append(line)
        if "approve the IB Key notification" in line:
            asked.set()

    def approve() -> None:
        if asked.wait(60):
            login_gateway.approve_2fa()

    approver = threading.Thread(target=approve, daemon=True)
    approver.start()
    assert run_login(login_gateway, tmp_path, ENV, say=say) is SessionState.AUTHENTICATED
    approver.join()
    (form,) = [body for m, p, body in login_gateway.requests if m == "POST" and p == "/sso/Login"]
    assert form["username"] == "fakeuser" and form["password"] == "fakepass"
    assert any("approve the IB Key notification" in line for line in said)
    assert not any("fakepass" in line for line in said)


@pytest.mark.chromium
def test_login_without_2fa_succeeds_directly(tmp_path: Path) -> None:
    with FakeGateway(two_factor="none") as gw:
        assert run_login(gw, tmp_path, ENV) is SessionState.AUTHENTICATED


@pytest.mark.chromium
def test_an_unapproved_push_times_out_cleanly_without_retrying(login_gateway: FakeGateway, tmp_path: Path) -> None:
    with pytest.raises(BrokerNotReady, match=r"not confirmed within 1.5s .*approve the notification"):
        run_login(login_gateway, tmp_path, ENV, twofa_timeout=1.5)
    assert login_posts(login_gateway) == 1
    assert LoginGuard(tmp_path / "ib" / "ib-paper.login.json", 2).failures == 0


@pytest.mark.chromium
def test_the_guard_stops_before_ib_can_lock_the_account(login_gateway: FakeGateway, tmp_path: Path) -> None:
    for attempt in (1, 2):
        with pytest.raises(BrokerNotReady, match=f"Invalid username password combination .*attempt {attempt} of"):
            run_login(login_gateway, tmp_path, WRONG)
    with pytest.raises(BrokerNotReady, match="login stopped: 2 failed attempts"):
        run_login(login_gateway, tmp_path, ENV)
    assert login_posts(login_gateway) == 2 and not login_gateway.locked
    LoginGuard(tmp_path / "ib" / "ib-paper.login.json", 2).reset()
    approve_when_pending(login_gateway)
    assert run_login(login_gateway, tmp_path, ENV) is SessionState.AUTHENTICATED


@pytest.mark.chromium
def test_error_messages_never_carry_the_password(login_gateway: FakeGateway, tmp_path: Path) -> None:
    with pytest.raises(BrokerNotReady) as caught:
        run_login(login_gateway, tmp_path, WRONG)
    assert "not-the-password" not in str(caught.value)
    assert "not-the-password" not in (tmp_path / "ib" / "ib-paper.login.json").read_text()


def test_an_already_live_session_opens_no_browser(login_gateway: FakeGateway, tmp_path: Path) -> None:
    login_gateway.set_state("authenticated")
    assert run_login(login_gateway, tmp_path, {}) is SessionState.AUTHENTICATED
    assert login_posts(login_gateway) == 0


def test_a_missing_secret_is_a_config_error(login_gateway: FakeGateway, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="IB_PASSWORD"):
        run_login(login_gateway, tmp_path, {"IB_USERNAME": "fakeuser"})


def test_login_needs_a_running_gateway(tmp_path: Path) -> None:
    gw = FakeGateway().start()
    spec = spec_for(gw)
    gw.stop()
    with make_client(spec) as client, pytest.raises(BrokerUnavailable, match="minitrade ib start"):
        login("ib-paper", spec, state_dir=tmp_path, env=ENV, client=client)


@pytest.mark.parametrize("state", ["competing", "sso_only"])
def test_a_valid_sso_session_is_reopened_without_the_browser(login_gateway: FakeGateway, tmp_path: Path,
                                                             state: str) -> None:
    login_gateway.set_state(state)
    assert run_login(login_gateway, tmp_path, {}) is SessionState.AUTHENTICATED
    assert login_posts(login_gateway) == 0
    assert ("POST", "/iserver/auth/ssodh/init", {"publish": True, "compete": True}) in login_gateway.requests


@pytest.mark.chromium
@pytest.mark.parametrize(("typed", "expect"), [
    pytest.param("123456", None, id="right code"),
    pytest.param("000000", "IB refused the 2FA code: Invalid security code", id="wrong code"),
    pytest.param(None, "asks for a typed 2FA code (SMS or card) and none was given", id="no code given"),
])
def test_a_typed_second_factor_is_asked_for_and_typed_into_the_page(tmp_path: Path, typed: str | None,
                                                                    expect: str | None) -> None:
    with FakeGateway(two_factor="code") as gw:
        asked: list[bool] = []

        def code() -> str | None:
            asked.append(gw.state == "2fa_pending")   # asked only once IB waits for it
            return typed

        if expect is None:
            assert run_login(gw, tmp_path, ENV, code=code) is SessionState.AUTHENTICATED
        else:
            with pytest.raises(BrokerNotReady, match=expect.replace("(", r"\(").replace(")", r"\)")):
                run_login(gw, tmp_path, ENV, code=code)
        assert asked == [True]
        assert gw.codes == ([typed] if typed else [])
