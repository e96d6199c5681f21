"""The browser is found on this machine (PATH or MINITRADE_CHROMIUM/MINITRADE_CHROMEDRIVER), never assumed."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from minitrade.browser import BROWSER_ENV, DRIVER_ENV, find_browser
from minitrade.cli import app
from minitrade.errors import BrowserMissing
from minitrade.testing.ib_gateway import FakeGateway

runner = CliRunner()


def program(folder: Path, name: str, body: str = "exit 1") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return path


def bare_path(tmp_path: Path) -> Path:
    """A PATH folder holding only git (the CLI reads the repo's HEAD): no browser, no driver."""
    folder = tmp_path / "bare-bin"
    folder.mkdir()
    git = shutil.which("git")
    assert git is not None
    (folder / "git").symlink_to(git)
    return folder


@pytest.mark.parametrize("browser_name", ["chromium", "chromium-browser", "google-chrome"])
def test_the_browser_and_driver_are_found_on_the_path(tmp_path: Path, browser_name: str) -> None:
    binary, driver = program(tmp_path / "a", browser_name), program(tmp_path / "b", "chromedriver")
    found = find_browser({"PATH": f"{tmp_path / 'a'}:{tmp_path / 'b'}"})
    assert (found.binary, found.driver) == (binary, driver)


def test_the_environment_variables_win_over_the_path(tmp_path: Path) -> None:
    program(tmp_path / "bin", "chromium"), program(tmp_path / "bin", "chromedriver")
    mine, my_driver = program(tmp_path / "opt", "my-chrome"), program(tmp_path / "opt", "my-driver")
    found = find_browser({"PATH": str(tmp_path / "bin"), BROWSER_ENV: str(mine), DRIVER_ENV: str(my_driver)})
    assert (found.binary, found.driver) == (mine, my_driver)


def test_a_variable_naming_no_program_is_an_error_naming_the_variable(tmp_path: Path) -> None:
    program(tmp_path / "bin", "chromium"), program(tmp_path / "bin", "chromedriver")
    with pytest.raises(BrowserMissing, match=f"{DRIVER_ENV}=.*nowhere is not an executable file"):
        find_browser({"PATH": str(tmp_path / "bin"), DRIVER_ENV: str(tmp_path / "nowhere")})


def test_a_machine_without_a_driver_is_told_what_to_install(tmp_path: Path) -> None:
    program(tmp_path / "bin", "chromium")
    with pytest.raises(BrowserMissing, match=r"^chromedriver not found on PATH .*apt install chromium "
                                             r"chromium-driver.*MINITRADE_CHROMEDRIVER"):
        find_browser({"PATH": str(tmp_path / "bin")})


def login_repo(tmp_path: Path, gw: FakeGateway) -> Path:
    repo = tmp_path / "repo"
    (repo / "plans").mkdir(parents=True)
    (repo / "strategies").mkdir()
    (repo / "minitrade.yaml").write_text(
        "state_dir: state\nbrokers:\n  ib-paper:\n    type: ib\n    username: ${IB_USERNAME}\n"
        f"    password: ${{IB_PASSWORD}}\n    gateway: {{url: '{gw.url}', verify_tls: true, ca_cert: '{gw.ca_pem}'}}\n")
    return repo


def test_ib_login_without_a_browser_says_what_to_install(tmp_path: Path) -> None:
    with FakeGateway(two_factor="none") as gw:
        repo = login_repo(tmp_path, gw)
        result = runner.invoke(app, ["ib", "login", "ib-paper", "-C", str(repo)],
                               env={"PATH": str(bare_path(tmp_path)), BROWSER_ENV: None, DRIVER_ENV: None,
                                    "IB_USERNAME": "fakeuser", "IB_PASSWORD": "fakepass"})
        assert result.exit_code == 1, result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)
        assert "error: Chromium (or Chrome) and chromedriver not found on PATH" in result.output
        assert "apt install chromium chromium-driver" in result.output
        assert "Traceback" not in result.output and "fakepass" not in result.output
        assert not any(p == "/sso/Login" for m, p, _ in gw.requests if m == "POST")
    # No password was tried: the lockout guard counts nothing.
    assert not (repo / "state" / "ib" / "ib-paper.login.json").exists()


def test_ib_login_with_a_browser_that_does_not_start_names_it(tmp_path: Path) -> None:
    binary = program(tmp_path / "bin", "chromium")
    driver = program(tmp_path / "bin", "chromedriver", "echo 'broken driver' >&2; exit 3")
    with FakeGateway(two_factor="none") as gw:
        repo = login_repo(tmp_path, gw)
        result = runner.invoke(app, ["ib", "login", "ib-paper", "-C", str(repo)],
                               env={"PATH": str(bare_path(tmp_path)), BROWSER_ENV: str(binary),
                                    DRIVER_ENV: str(driver), "IB_USERNAME": "fakeuser", "IB_PASSWORD": "fakepass"})
    assert result.exit_code == 1, result.output
    assert f"error: {binary} with {driver} did not start" in result.output
    assert "Traceback" not in result.output
