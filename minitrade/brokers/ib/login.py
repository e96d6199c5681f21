"""Explicit login to the IB gateway through its login page, driven by headless Chromium.

The browser and its driver are found on this machine by minitrade.browser (PATH or
`MINITRADE_CHROMIUM`/`MINITRADE_CHROMEDRIVER`); without them login says what to install.

Only `minitrade ib login ACCOUNT` calls this: minitrade never logs in on its own. Username and
password come from the secret references in minitrade.yaml and never reach a log or an error.
A failed password is counted in a small file in the state dir; after `max_login_attempts` failures
login refuses to try again, so IB never locks the account (IB blocks logins for 24 h after
repeated failures). A 2FA push that is not approved in time ends the attempt with a clear message
and no retry. When IB asks for a typed second factor (an SMS or card code) instead of a push, a
caller that can ask the person (the Telegram bot) passes `code`: it is asked once, its answer is
typed into the page's code box and submitted; the code never reaches a log or an error.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from minitrade.brokers.base import SessionState
from minitrade.brokers.ib.client import IBClient
from minitrade.browser import BROWSER_ENV, DRIVER_ENV, find_browser
from minitrade.credentials import redact, resolve_secret
from minitrade.errors import BrokerError, BrokerNotReady, BrokerUnavailable, BrowserMissing
from minitrade.models import IBBroker as IBBrokerSpec

log = logging.getLogger(__name__)

LOGIN_ROUTE = "/sso/Login?forwardTo=22&RL=1&ip2loc=on"
SUCCESS_TEXT = "Client login succeeds"
# Selectors of the login page (version 2, 2023-): see EXTERNAL_APIS.md section 1.2.
USERNAME, PASSWORD = "input[name=username]", "input[name=password]"
SUBMIT, ERROR = "button.xyz-button-login", ".xyz-errormessage"
PUSH_WAITING, CODE_BOX = ".login-step-notification", "#twofactbase"
CODE_INPUT = "#xyz-field-bronze-response"    # typed 2FA code, submitted with RETURN (as ibeam does)


class LoginGuard:
    """Failed password attempts of one account, kept across invocations in the state dir."""

    def __init__(self, path: Path, limit: int) -> None:
        self.path, self.limit = path, limit

    @property
    def failures(self) -> int:
        try:
            return int(json.loads(self.path.read_text()).get("failures", 0))
        except (OSError, ValueError):
            return 0

    def check(self, account: str) -> None:
        if self.failures >= self.limit:
            raise BrokerNotReady(
                f"login stopped: {self.failures} failed attempts recorded (limit {self.limit}), another one "
                "could get the account locked by IB. Check the username/password secrets and log in once "
                f"by hand in a browser, then run `minitrade ib login {account} --reset-failures`",
                account=account)

    def failed(self, reason: str) -> int:
        count = self.failures + 1
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps({"failures": count, "last_failure": datetime.now(UTC).isoformat(),
                                         "reason": reason}))
        return count

    def reset(self) -> None:
        self.path.unlink(missing_ok=True)


def chromium(*, verify_tls: bool) -> Any:
    """Headless Chromium found on this machine (minitrade.browser); Selenium Manager never downloads.

    Raises:
        BrowserMissing: no browser or driver found, or the one found does not start.
    """
    from selenium import webdriver
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.chrome.service import Service

    found = find_browser()
    options = webdriver.ChromeOptions()
    options.binary_location = str(found.binary)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-background-networking"):
        options.add_argument(arg)
    if not verify_tls:      # the gateway's self-signed certificate, as configured in minitrade.yaml
        options.add_argument("--ignore-certificate-errors")
    try:
        return webdriver.Chrome(service=Service(str(found.driver)), options=options)
    except WebDriverException as e:
        first = (e.msg or type(e).__name__).splitlines()[0]
        raise BrowserMissing(f"{found.binary} with {found.driver} did not start: {first} (the driver must "
                             f"match the browser's version; set {BROWSER_ENV}/{DRIVER_ENV} to choose "
                             "another pair)") from None


def _outcome(driver: Any) -> tuple[str, str] | None:
    """What the page shows after submitting: success, an error, a pending push, a code prompt."""
    from selenium.webdriver.common.by import By

    if SUCCESS_TEXT in driver.find_element(By.TAG_NAME, "body").text:
        return "success", ""
    for element in driver.find_elements(By.CSS_SELECTOR, ERROR):
        if element.is_displayed() and element.text.strip():
            return "error", element.text.strip()
    if any(e.is_displayed() for e in driver.find_elements(By.CSS_SELECTOR, PUSH_WAITING)):
        return "push", ""
    if any(e.is_displayed() for e in driver.find_elements(By.CSS_SELECTOR, CODE_BOX)):
        return "code", ""
    return None


def login(name: str, spec: IBBrokerSpec, *, state_dir: Path, env: Mapping[str, str] | None = None,
          twofa_timeout: float = 120.0, page_timeout: float = 30.0, poll: float = 1.0,
          client: IBClient | None = None, driver_factory: Callable[..., Any] = chromium,
          say: Callable[[str], None] = log.info, code: Callable[[], str | None] | None = None) -> SessionState:
    """Log account `name` in through the gateway's login page; returns the session state after.

    `code` asks the person for a typed second factor when IB wants one (None: they gave none);
    without it such a login ends with a message saying so.

    Raises:
        BrokerNotReady: wrong credentials (counted), 2FA not approved in time, or the guard refused.
        BrokerUnavailable: the gateway is not running or the page never loaded.
        ConfigError: a secret reference cannot be resolved.
    """
    own_client = client is None
    client = client or IBClient.from_spec(spec, name=name)
    try:
        state = client.session_state()
        if state is SessionState.NOT_RUNNING:
            raise BrokerUnavailable(f"no gateway answers at {spec.gateway.url}; start it with "
                                    f"`minitrade ib start --account {name}`", account=name)
        if state is SessionState.AUTHENTICATED:
            say(f"{name}: already logged in")
            return state
        if state is SessionState.COMPETING or (state is SessionState.NO_SESSION and _sso_up(client)):
            # The SSO session is valid: reopening the brokerage session needs no credentials.
            with contextlib.suppress(BrokerError):
                client.init_brokerage_session()
            if client.session_state() is SessionState.AUTHENTICATED:
                say(f"{name}: brokerage session reopened without a new login")
                return SessionState.AUTHENTICATED
        guard = LoginGuard(state_dir / "ib" / f"{name}.login.json", spec.max_login_attempts)
        guard.check(name)
        username = resolve_secret(spec.username, env=env, field="username")
        password = resolve_secret(spec.password, env=env, field="password")
        outcome = _submit(driver_factory, spec, username.get_secret_value(), password.get_secret_value(),
                          page_timeout=page_timeout, name=name, code=code)
        if outcome[0] == "error":
            reason = redact(outcome[1], [username, password])
            count = guard.failed(reason)
            raise BrokerNotReady(f"IB refused the login: {reason} (failed attempt {count} of at most "
                                 f"{spec.max_login_attempts}; minitrade does not retry on its own)", account=name)
        if outcome[0] == "code":
            raise BrokerNotReady("IB asks for a typed 2FA code (SMS or card) and none was given; log in from "
                                 "Telegram (/ib_login), which asks for it, or switch the account to IB Key push "
                                 "notifications", account=name)
        if outcome[0] == "code_error":
            raise BrokerNotReady(f"IB refused the 2FA code: {redact(outcome[1], [username, password])} (nothing "
                                 f"was retried; run the login again for a new code)", account=name)
        if outcome[0] == "push":
            say(f"{name}: approve the IB Key notification on your phone (waiting up to {twofa_timeout:g}s)")
        state = _await_session(client, name, twofa_timeout if outcome[0] == "push" else page_timeout, poll)
        guard.reset()
        say(f"{name}: logged in ({state.value})")
        return state
    finally:
        if own_client:
            client.close()


def _submit(driver_factory: Callable[..., Any], spec: IBBrokerSpec, username: str, password: str, *,
            page_timeout: float, name: str, code: Callable[[], str | None] | None = None) -> tuple[str, str]:
    """Fill the form once and report what the page answered; a code prompt is answered through `code`
    ("code" when none was given, "code_error" when IB refused it). The browser is always closed."""
    from selenium.common.exceptions import (
        StaleElementReferenceException,
        TimeoutException,
        WebDriverException,
    )
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver = driver_factory(verify_tls=spec.gateway.verify_tls)
    try:
        driver.set_page_load_timeout(page_timeout)
        try:
            driver.get(spec.gateway.url.rstrip("/") + LOGIN_ROUTE)
            wait = WebDriverWait(driver, page_timeout, poll_frequency=0.2,
                                 ignored_exceptions=(StaleElementReferenceException,))
            wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, USERNAME))
            driver.find_element(By.CSS_SELECTOR, USERNAME).send_keys(username)
            driver.find_element(By.CSS_SELECTOR, PASSWORD).send_keys(password)
            driver.find_element(By.CSS_SELECTOR, SUBMIT).click()
            outcome: tuple[str, str] | None = wait.until(_outcome)
            assert outcome is not None      # until() returns only a truthy value
            if outcome[0] == "code" and code is not None:
                return _type_code(driver, wait, code)
            return outcome
        except TimeoutException as e:
            raise BrokerUnavailable(f"the gateway's login page at {spec.gateway.url} did not answer within "
                                    f"{page_timeout:g}s", account=name) from e
        except WebDriverException as e:
            # Selenium's text never holds typed keys, but keep the first line only: it names the failure.
            first = (e.msg or type(e).__name__).splitlines()[0]
            raise BrokerUnavailable(f"browser login failed: {first}", account=name) from None
    finally:
        with contextlib.suppress(Exception):
            driver.quit()


def _type_code(driver: Any, wait: Any, code: Callable[[], str | None]) -> tuple[str, str]:
    """Ask for the typed second factor and submit it in the page's code box (RETURN)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    given = code()
    if not given or not given.strip():
        return "code", ""
    box = driver.find_element(By.CSS_SELECTOR, CODE_INPUT)
    box.send_keys(given.strip())
    box.send_keys(Keys.RETURN)

    def answered(d: Any) -> tuple[str, str] | None:
        found = _outcome(d)
        return found if found is not None and found[0] in ("success", "error") else None

    outcome: tuple[str, str] = wait.until(answered)
    return ("success", "") if outcome[0] == "success" else ("code_error", outcome[1])


def _await_session(client: IBClient, name: str, timeout: float, poll: float) -> SessionState:
    """Poll the gateway until the brokerage session is up; opens it (ssodh/init) after an SSO login."""
    deadline = time.monotonic() + timeout
    initialised = False
    while True:
        state = client.session_state()
        if state is SessionState.AUTHENTICATED:
            return state
        if state in (SessionState.COMPETING, SessionState.EXPIRED) or (
                state is SessionState.NO_SESSION and _sso_up(client) and not initialised):
            with contextlib.suppress(BrokerError):
                client.init_brokerage_session()
                initialised = True
                continue
        if time.monotonic() >= deadline:
            raise BrokerNotReady(f"the login was not confirmed within {timeout:g}s (2FA push not approved?); "
                                 f"nothing was retried. Run `minitrade ib login {name}` again and approve the "
                                 "notification on your phone", account=name)
        time.sleep(poll)


def _sso_up(client: IBClient) -> bool:
    """SSO logged in but no brokerage session yet (auth status answers, not authenticated, connected)."""
    try:
        status = client.auth_status()
    except BrokerError:
        return False
    return status.connected and not status.authenticated
