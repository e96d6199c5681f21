"""`minitrade ib ...` commands against the fake gateway."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from minitrade.cli import app
from minitrade.testing.ib_gateway import FakeGateway

runner = CliRunner()


def trading_repo(tmp_path: Path, gw: FakeGateway, *, second: bool = False) -> Path:
    extra = ("  ib-live:\n    type: ib\n    username: ${IB_USERNAME}\n    password: ${IB_PASSWORD}\n"
             "    gateway: {url: 'https://localhost:1', verify_tls: false}\n") if second else ""
    (tmp_path / "minitrade.yaml").write_text(
        "state_dir: state\n"
        "brokers:\n"
        "  manual: {type: manual}\n"
        "  ib-paper:\n"
        "    type: ib\n"
        "    username: ${IB_USERNAME}\n"
        "    password: ${IB_PASSWORD}\n"
        f"    gateway: {{url: '{gw.url}', verify_tls: true, ca_cert: '{gw.ca_pem}'}}\n" + extra)
    (tmp_path / "plans").mkdir()
    (tmp_path / "strategies").mkdir()
    return tmp_path


@pytest.fixture
def repo(tmp_path: Path, gateway: FakeGateway) -> Path:
    return trading_repo(tmp_path, gateway)


def test_status_shows_the_session_state(repo: Path, gateway: FakeGateway) -> None:
    result = runner.invoke(app, ["ib", "status", "-C", str(repo)])
    assert result.exit_code == 0, result.output
    assert "ib-paper: authenticated" in result.output
    gateway.set_state("expired")
    assert "ib-paper: expired" in runner.invoke(app, ["ib", "status", "-C", str(repo)]).output


def test_contracts_lists_the_choices_and_how_to_pin_one(repo: Path) -> None:
    result = runner.invoke(app, ["ib", "contracts", "AAPL", "-C", str(repo)])
    assert result.exit_code == 0, result.output
    for conid in ("265598", "493546048", "532640894"):
        assert conid in result.output
    assert "universe: {AAPL: {conid: 265598}}" in result.output


def test_logout_ends_the_brokerage_session(repo: Path, gateway: FakeGateway) -> None:
    result = runner.invoke(app, ["ib", "logout", "-C", str(repo)])
    assert result.exit_code == 0, result.output
    assert gateway.state == "sso_only"


def test_login_with_a_live_session_opens_no_browser(repo: Path, gateway: FakeGateway) -> None:
    result = runner.invoke(app, ["ib", "login", "ib-paper", "-C", str(repo)], env={"IB_USERNAME": "u"})
    assert result.exit_code == 0, result.output
    assert "already logged in" in result.output


def test_an_unknown_account_is_an_error_naming_the_ib_brokers(repo: Path) -> None:
    result = runner.invoke(app, ["ib", "login", "manual", "-C", str(repo)])
    assert result.exit_code == 1
    assert "no broker 'manual' of type ib" in result.output and "ib-paper" in result.output


def test_several_ib_accounts_need_account(tmp_path: Path, gateway: FakeGateway) -> None:
    repo = trading_repo(tmp_path, gateway, second=True)
    result = runner.invoke(app, ["ib", "contracts", "SPY", "-C", str(repo)])
    assert result.exit_code == 1 and "--account" in result.output
    result = runner.invoke(app, ["ib", "contracts", "SPY", "--account", "ib-paper", "-C", str(repo)])
    assert result.exit_code == 0 and "756733" in result.output
