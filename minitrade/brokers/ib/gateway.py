"""Start, stop and check the local Client Portal gateway process (the unzipped clientportal.gw).

The gateway is started the way its own `bin/run.sh` does: java with `root` (conf.yaml, vertx.jks)
and the jars on the classpath, from the install folder: `gateway.install_dir`, or else the copy
`minitrade ib install` unpacked under `<state>/ib-gateway/<account>`. Its pid goes to `<state>/ib/<account>.gateway.pid`
and its console to `<state>/ib/<account>.gateway.log`. `stop` only ever signals a pid whose command
line is the gateway's, so a recycled pid is never killed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from minitrade.brokers.base import SessionState
from minitrade.brokers.ib.client import IBClient
from minitrade.errors import BrokerError, BrokerUnavailable
from minitrade.models import IBBroker as IBBrokerSpec

GATEWAY_CLASS = "ibgroup.web.core.clientportal.gw.GatewayStart"
CLASSPATH = "root:dist/ibgroup.web.core.iblink.router.clientportal.gw.jar:build/lib/runtime/*"
_STARTED: dict[int, subprocess.Popen[bytes]] = {}   # children of this process, reaped on stop


@dataclass(frozen=True)
class GatewayStatus:
    account: str
    url: str
    pid: int | None           # the process we started, if it is still alive
    session: SessionState

    def __str__(self) -> str:
        process = f"pid {self.pid}" if self.pid else "not started by minitrade"
        return f"{self.account}: {self.session.value} ({self.url}, {process})"


def command(java: str) -> list[str]:
    """The java command line of bin/run.sh (run from the install folder)."""
    return [java, "-server", "-Dvertx.disableDnsResolver=true", "-Djava.net.preferIPv4Stack=true",
            "-Dvertx.logger-delegate-factory-class-name=io.vertx.core.logging.SLF4JLogDelegateFactory",
            "-Dnologback.statusListenerClass=ch.qos.logback.core.status.OnConsoleStatusListener",
            "-Dnolog4j.debug=true", "-Dnolog4j2.debug=true", "-cp", CLASSPATH, GATEWAY_CLASS]


def installed_dir(state_dir: Path, account: str) -> Path:
    """Where `minitrade ib install` unpacks the gateway of `account` (one per account: its own listenPort)."""
    return state_dir / "ib-gateway" / account


def running_pid(account: str, *, state_dir: Path) -> int | None:
    """The pid of the gateway minitrade started for `account`, if it is still running."""
    return _gateway_pid(_files(state_dir, account)[0])


def _install_folder(account: str, spec: IBBrokerSpec, state_dir: Path) -> Path:
    """gateway.install_dir when set, else the installed copy; an error that says how to get one."""
    if spec.gateway.install_dir:
        install = Path(spec.gateway.install_dir).expanduser()
        if not (install / "root" / "conf.yaml").is_file():
            raise BrokerError(f"{install} is not a Client Portal gateway folder (no root/conf.yaml)", account=account)
        return install
    install = installed_dir(state_dir, account)
    if not (install / "root" / "conf.yaml").is_file():
        raise BrokerError(f"no gateway is installed for {account}: run `minitrade ib install --account {account}` "
                          "(or unzip clientportal.gw.zip yourself and set gateway.install_dir in minitrade.yaml)",
                          account=account)
    return install


def _files(state_dir: Path, account: str) -> tuple[Path, Path]:
    folder = state_dir / "ib"
    return folder / f"{account}.gateway.pid", folder / f"{account}.gateway.log"


def _gateway_pid(pid_file: Path) -> int | None:
    """The pid in the file if that process is alive and is a gateway; None otherwise."""
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    if pid in _STARTED and _STARTED[pid].poll() is not None:
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None
    return pid if GATEWAY_CLASS in cmdline and state != "Z" else None


def _java(java: str | None) -> str:
    found = java or (str(Path(os.environ["JAVA_HOME"]) / "bin" / "java") if os.environ.get("JAVA_HOME") else None) \
        or shutil.which("java")
    if not found or not Path(found).exists():
        raise BrokerError("java was not found: install a Java runtime (>= 8u192, e.g. `apt-get install "
                          "default-jre-headless`) or set JAVA_HOME")
    return found


def start(account: str, spec: IBBrokerSpec, *, state_dir: Path, java: str | None = None,
          wait: float = 60.0) -> int:
    """Start the gateway of `account` (or find it running) and wait until it answers; returns its pid.

    Runs from gateway.install_dir, or from the copy `minitrade ib install` made when that is unset.
    """
    pid_file, log_file = _files(state_dir, account)
    running = _gateway_pid(pid_file)
    if running is not None:
        return running
    install = _install_folder(account, spec, state_dir)
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log:
        process = subprocess.Popen(command(_java(java)), cwd=install, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    _STARTED[process.pid] = process
    pid_file.write_text(f"{process.pid}\n")
    deadline = time.monotonic() + wait
    with IBClient.from_spec(spec, name=account, read_retries=0, timeout=5.0) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pid_file.unlink(missing_ok=True)
                tail = log_file.read_text(errors="replace")[-600:]
                raise BrokerUnavailable(f"the gateway exited with code {process.returncode}; its log "
                                        f"({log_file}) ends with:\n{tail}", account=account)
            with contextlib.suppress(BrokerError):
                if client.session_state() is not SessionState.NOT_RUNNING:
                    return process.pid
            time.sleep(0.2)
    stop(account, state_dir=state_dir)
    raise BrokerUnavailable(f"the gateway did not answer at {spec.gateway.url} within {wait:g}s "
                            f"(is listenPort in root/conf.yaml the port of gateway.url?); see {log_file}",
                            account=account)


def stop(account: str, *, state_dir: Path, timeout: float = 15.0) -> bool:
    """Stop the gateway minitrade started for `account`; False if none was running."""
    pid_file, _ = _files(state_dir, account)
    pid = _gateway_pid(pid_file)
    pid_file.unlink(missing_ok=True)
    if pid is None:
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.1)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)
    child = _STARTED.pop(pid, None)
    if child is not None:
        child.wait(timeout)
    return True


def _alive(pid: int) -> bool:
    child = _STARTED.get(pid)
    if child is not None:
        return child.poll() is None
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def status(account: str, spec: IBBrokerSpec, *, state_dir: Path) -> GatewayStatus:
    """Process and session state: not running, no session, authenticated, competing or expired."""
    pid_file, _ = _files(state_dir, account)
    with IBClient.from_spec(spec, name=account, read_retries=0, timeout=5.0) as client:
        session = client.session_state()
    return GatewayStatus(account, spec.gateway.url, _gateway_pid(pid_file), session)
