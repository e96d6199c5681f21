"""`minitrade ib ...`: the IB gateway process, explicit login, session state, contract choices, fake gateway.

Account names are the `type: ib` brokers of minitrade.yaml.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape

from minitrade.cli.app import (
    REPO_OPTION,
    STATE_DIR_OPTION,
    app,
    console,
    emit_json,
    err_console,
    handle_errors,
    repo_path,
)
from minitrade.errors import ConfigError, ConfigIssue

if TYPE_CHECKING:      # the models (pydantic) load when a command runs, not for --help
    from minitrade.loader import Snapshot
    from minitrade.models import IBBroker as IBBrokerSpec

ib = typer.Typer(help="Interactive Brokers: gateway process, explicit login, session state, contracts.\n\n"
                      "Example: `minitrade ib start && minitrade ib login ib-paper`",
                 no_args_is_help=True)
app.add_typer(ib, name="ib")

ACCOUNT_OPTION = typer.Option(None, "--account", "-a", help="IB broker name in minitrade.yaml "
                                                             "(default: the only one).", show_default=False)


def _ib_brokers(snapshot: Snapshot) -> dict[str, IBBrokerSpec]:
    from minitrade.models import IBBroker as IBBrokerSpec

    return {n: b for n, b in snapshot.settings.brokers.items() if isinstance(b, IBBrokerSpec)}


def _pick(snapshot: Snapshot, account: str | None) -> tuple[str, IBBrokerSpec]:
    from minitrade.loader import SETTINGS_FILE

    brokers = _ib_brokers(snapshot)
    names = ", ".join(sorted(brokers)) or "none"
    if account is not None:
        if account not in brokers:
            raise ConfigError(ConfigIssue(SETTINGS_FILE, None, "brokers", f"no broker {account!r} of type ib",
                                          f"IB brokers: {names}"))
        return account, brokers[account]
    if len(brokers) != 1:
        message = "defines no broker of type ib" if not brokers else f"has several IB brokers ({names})"
        raise ConfigError(ConfigIssue(SETTINGS_FILE, None, "brokers", message, "pass --account NAME"
                                      if brokers else "add one with `type: ib`"))
    return next(iter(brokers.items()))


def _snapshot(repo: Path | None, state_dir: Path | None) -> Snapshot:
    from minitrade.loader import load_worktree

    return load_worktree(repo_path(repo, state_dir))


@ib.command()
def start(account: str | None = ACCOUNT_OPTION, java: str | None = typer.Option(None, help="java executable."),
          repo: Path | None = REPO_OPTION, state_dir: Path | None = STATE_DIR_OPTION) -> None:
    """Start the gateway from gateway.install_dir and wait until it answers.

    Example: minitrade ib start --account ib-paper
    """
    from minitrade.brokers.ib import gateway

    with handle_errors():
        snapshot = _snapshot(repo, state_dir)
        name, spec = _pick(snapshot, account)
        pid = gateway.start(name, spec, state_dir=snapshot.state_dir, java=java)
        console.print(f"gateway of {name} runs (pid {pid}) at {spec.gateway.url}; "
                      f"log in with `minitrade ib login {name}`")


@ib.command()
def install(account: str | None = ACCOUNT_OPTION,
            from_zip: Path | None = typer.Option(None, "--from", help="clientportal.gw.zip already downloaded "
                                                 "(default: download it).", show_default=False),
            port: int | None = typer.Option(None, "--port", help="Port the gateway listens on (default: the port "
                                            "of gateway.url).", show_default=False),
            repo: Path | None = REPO_OPTION, state_dir: Path | None = STATE_DIR_OPTION) -> None:
    """Download (or take --from) IB's Client Portal gateway, unpack it under the state dir, lock it to 127.0.0.1.

    Writes root/conf.yaml (listenPort from gateway.url, listenSsl, ips.allow 127.0.0.1) and
    `minitrade ib start` uses this copy when gateway.install_dir is unset. The download comes from
    IB's published URL, or from MINITRADE_IB_GATEWAY_URL when set. Installing again replaces it.

    Example: minitrade ib install --account ib-paper && minitrade ib start --account ib-paper
    """
    from urllib.parse import urlsplit

    from minitrade.brokers.ib import install as gw_install

    with handle_errors():
        snapshot = _snapshot(repo, state_dir)
        name, spec = _pick(snapshot, account)
        listen = port or urlsplit(spec.gateway.url).port
        if port is not None and port != urlsplit(spec.gateway.url).port:
            err_console.print(f"[yellow]warning:[/] the gateway will listen on {port}, not on the port of "
                              f"{escape(spec.gateway.url)}: `minitrade ib start` only finds it through a "
                              "forward or proxy at gateway.url")
        if from_zip is None:
            err_console.print(f"downloading {escape(gw_install.download_url())}")
        target = gw_install.install(name, spec, state_dir=snapshot.state_dir, zip_path=from_zip, port=port,
                                    progress=_progress_line())
        console.print(f"gateway of {name} installed in {escape(str(target))} (port {listen or 'of gateway.url'}, "
                      f"allows 127.0.0.1 only); start it with `minitrade ib start --account {name}`")


def _progress_line() -> Callable[[int, int | None], None]:
    """One line on stderr rewritten in place as the download goes (a new line per MB when not a terminal)."""
    last = [-1]

    def show(done: int, total: int | None) -> None:
        mb = done >> 20
        if mb == last[0] and done != total:
            return
        last[0] = mb
        of = f" of {total / 2**20:.1f} MB ({100 * done // total}%)" if total else " MB"
        line = f"  {done / 2**20:.1f}{of}"
        end = "\n" if (total is not None and done >= total) or not err_console.is_terminal else ""
        err_console.file.write(("\r" if err_console.is_terminal else "") + line + end)
        err_console.file.flush()

    return show


@ib.command()
def stop(account: str | None = ACCOUNT_OPTION, repo: Path | None = REPO_OPTION, state_dir: Path | None = STATE_DIR_OPTION) -> None:
    """Stop the gateway that `minitrade ib start` started.

    Example: minitrade ib stop --account ib-paper
    """
    from minitrade.brokers.ib import gateway

    with handle_errors():
        snapshot = _snapshot(repo, state_dir)
        name, _ = _pick(snapshot, account)
        stopped = gateway.stop(name, state_dir=snapshot.state_dir)
        console.print(f"gateway of {name} stopped" if stopped else f"no gateway of {name} was running")


@ib.command()
def status(account: str | None = ACCOUNT_OPTION, repo: Path | None = REPO_OPTION, state_dir: Path | None = STATE_DIR_OPTION,
           as_json: bool = typer.Option(False, "--json", help="Machine-readable output (has format_version).")) -> None:
    """Session state of each IB account: not running, no session, authenticated, competing, expired.

    Example: minitrade ib status
    """
    from minitrade.brokers.ib import gateway

    with handle_errors():
        snapshot = _snapshot(repo, state_dir)
        names = [_pick(snapshot, account)[0]] if account else sorted(_ib_brokers(snapshot))
        if not names:
            _pick(snapshot, None)
        found = []
        for name in names:
            state = gateway.status(name, _ib_brokers(snapshot)[name], state_dir=snapshot.state_dir)
            found.append({"account": state.account, "url": state.url, "pid": state.pid,
                          "session": state.session.value})
            if not as_json:  # as each answers: a slow gateway must not hide the others' state
                console.print(escape(str(state)))
        if as_json:
            emit_json("ib_status", {"accounts": found})


@ib.command()
def login(account: str = typer.Argument(..., help="IB broker name in minitrade.yaml."),
          twofa_timeout: float = typer.Option(120.0, help="Seconds to wait for the 2FA approval."),
          reset_failures: bool = typer.Option(False, "--reset-failures", help="Forget failed attempts recorded "
                                              "by the lockout guard (after checking the credentials)."),
          repo: Path | None = REPO_OPTION, state_dir: Path | None = STATE_DIR_OPTION) -> None:
    """Log in through the gateway's login page (headless Chromium) and wait for the 2FA push.

    Chromium (or Chrome) and chromedriver are found on PATH, or set MINITRADE_CHROMIUM and
    MINITRADE_CHROMEDRIVER.

    Example: minitrade ib login ib-paper --twofa-timeout 180
    """
    from minitrade.brokers.ib.login import LoginGuard
    from minitrade.brokers.ib.login import login as ib_login

    with handle_errors():
        snapshot = _snapshot(repo, state_dir)
        name, spec = _pick(snapshot, account)
        if reset_failures:
            LoginGuard(snapshot.state_dir / "ib" / f"{name}.login.json", spec.max_login_attempts).reset()
        state = ib_login(name, spec, state_dir=snapshot.state_dir, twofa_timeout=twofa_timeout,
                         say=lambda line: console.print(escape(line)))
        console.print(f"{name}: {state.value}")
        _send_held(snapshot)


def _send_held(snapshot: Snapshot) -> None:
    """After a login, held orders go out (those still valid for their entry type)."""
    from minitrade.reconcile_pass import send_held

    for order in send_held(snapshot.root, snapshot.store()):
        console.print(f"  {escape(order.client_id)}: {order.status.value}"
                      + (f" ({escape(order.note)})" if order.note else ""))


@ib.command()
def logout(account: str | None = ACCOUNT_OPTION, repo: Path | None = REPO_OPTION, state_dir: Path | None = STATE_DIR_OPTION) -> None:
    """End the brokerage session (orders will be held until the next login).

    Example: minitrade ib logout --account ib-paper
    """
    from minitrade.brokers.ib.client import IBClient

    with handle_errors():
        snapshot = _snapshot(repo, state_dir)
        name, spec = _pick(snapshot, account)
        with IBClient.from_spec(spec, name=name) as client:
            client.logout()
        console.print(f"{name}: logged out")


@ib.command()
def contracts(symbol: str = typer.Argument(..., help="Ticker, e.g. AAPL."), account: str | None = ACCOUNT_OPTION,
              repo: Path | None = REPO_OPTION, state_dir: Path | None = STATE_DIR_OPTION) -> None:
    """List the IB listings of SYMBOL; pin one in the plan as `universe: {SYMBOL: {conid: N}}`.

    Example: minitrade ib contracts AAPL --account ib-paper
    """
    from rich.table import Table

    from minitrade.brokers.ib.client import IBClient
    from minitrade.brokers.ib.contracts import candidates

    with handle_errors():
        snapshot = _snapshot(repo, state_dir)
        name, spec = _pick(snapshot, account)
        with IBClient.from_spec(spec, name=name) as client:
            found = candidates(client, [symbol]).get(symbol.upper(), [])
        if not found:
            console.print(f"IB knows no stock listing for {escape(symbol)}")
            raise typer.Exit(1)
        table = Table("conid", "exchange", "US", "name", title=f"{symbol.upper()} at IB ({name})")
        for c in found:
            table.add_row(str(c.conid), c.exchange, "yes" if c.is_us else "no", c.name)
        console.print(table)
        console.print(f"pin one in the plan file: universe: {{{symbol.upper()}: {{conid: {found[0].conid}}}}}",
                      markup=False)


@ib.command("fake-gateway")
def fake_gateway(port: int = typer.Option(5000, help="Port on 127.0.0.1."),
                 username: str = typer.Option("fakeuser", help="Username the fake accepts."),
                 password: str = typer.Option("fakepass", help="Password the fake accepts."),
                 two_factor: str = typer.Option("push", help="push, code (a typed code: 123456) or none."),
                 auto_approve: float | None = typer.Option(None, help="Approve 2FA pushes after N seconds.")) -> None:
    """Run a fake IB gateway (HTTPS, same API) to rehearse the IB flow without an account.

    Point a broker's gateway.url at https://localhost:PORT (verify_tls: false).

    Example: minitrade ib fake-gateway --port 5001 --auto-approve 2
    """
    from minitrade.testing.ib_gateway import main

    args = ["--port", str(port), "--username", username, "--password", password, "--two-factor", two_factor]
    main(args + (["--auto-approve", str(auto_approve)] if auto_approve is not None else []))
