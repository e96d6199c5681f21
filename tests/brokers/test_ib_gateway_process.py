"""Gateway process management: start from an install folder, health, status, stop."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

from minitrade.brokers.base import SessionState
from minitrade.brokers.ib import gateway
from minitrade.errors import BrokerError, BrokerUnavailable
from minitrade.models import IBBroker as IBBrokerSpec

# Stands in for `java`: records its command line, then serves the fake gateway on FAKE_GATEWAY_PORT.
JAVA_SHIM = f"""#!{sys.executable}
import os, sys
from pathlib import Path
Path(os.environ["SHIM_ARGS"]).write_text("\\n".join([os.getcwd()] + sys.argv[1:]))
if os.environ.get("SHIM_FAIL"):
    print("Error: could not find or load main class", flush=True)
    sys.exit(3)
from minitrade.testing.ib_gateway import main
main(["--port", os.environ["FAKE_GATEWAY_PORT"]])
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path, int]:
    folder = tmp_path / "clientportal.gw"
    (folder / "root").mkdir(parents=True)
    (folder / "root" / "conf.yaml").write_text("listenPort: 5000\nlistenSsl: true\n")
    java = tmp_path / "java"
    java.write_text(JAVA_SHIM)
    java.chmod(0o755)
    port = free_port()
    monkeypatch.setenv("FAKE_GATEWAY_PORT", str(port))
    monkeypatch.setenv("SHIM_ARGS", str(tmp_path / "args.txt"))
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parents[2]))
    return folder, java, port


def spec_for(folder: Path, port: int) -> IBBrokerSpec:
    return IBBrokerSpec.model_validate({
        "type": "ib", "username": "${IB_USERNAME}", "password": "${IB_PASSWORD}",
        "gateway": {"url": f"https://localhost:{port}", "verify_tls": False, "install_dir": str(folder)}})


def test_start_runs_the_gateway_like_run_sh_and_stop_ends_it(install: tuple[Path, Path, int],
                                                              tmp_path: Path) -> None:
    folder, java, port = install
    spec, state = spec_for(folder, port), tmp_path / "state"
    assert gateway.status("ib-paper", spec, state_dir=state).session is SessionState.NOT_RUNNING
    pid = gateway.start("ib-paper", spec, state_dir=state, java=str(java))
    try:
        args = (tmp_path / "args.txt").read_text().splitlines()
        assert args[0] == str(folder) and args[-1] == gateway.GATEWAY_CLASS
        assert args[args.index("-cp") + 1].startswith("root:dist/")
        assert (state / "ib" / "ib-paper.gateway.pid").read_text().strip() == str(pid)
        current = gateway.status("ib-paper", spec, state_dir=state)
        assert (current.pid, current.session) == (pid, SessionState.NO_SESSION)
        assert gateway.start("ib-paper", spec, state_dir=state, java=str(java)) == pid   # already running
    finally:
        assert gateway.stop("ib-paper", state_dir=state)
    assert gateway.status("ib-paper", spec, state_dir=state).session is SessionState.NOT_RUNNING
    assert not gateway.stop("ib-paper", state_dir=state)


def test_a_gateway_that_dies_at_start_shows_its_log(install: tuple[Path, Path, int], tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    folder, java, port = install
    monkeypatch.setenv("SHIM_FAIL", "1")
    with pytest.raises(BrokerUnavailable, match="(?s)exited with code 3.*could not find or load main class"):
        gateway.start("ib-paper", spec_for(folder, port), state_dir=tmp_path / "state", java=str(java))
    assert not (tmp_path / "state" / "ib" / "ib-paper.gateway.pid").exists()


def test_start_needs_a_gateway_install_folder(tmp_path: Path) -> None:
    with pytest.raises(BrokerError, match="no root/conf.yaml"):
        gateway.start("ib-paper", spec_for(tmp_path, free_port()), state_dir=tmp_path)


def test_stop_never_signals_a_pid_that_is_not_a_gateway(tmp_path: Path) -> None:
    pid_file = tmp_path / "ib" / "ib-paper.gateway.pid"
    pid_file.parent.mkdir(parents=True)
    pid_file.write_text("1\n")          # init: alive, but not a gateway
    assert not gateway.stop("ib-paper", state_dir=tmp_path)
