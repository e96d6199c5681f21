"""The daemon's health as a person and a service manager see it: `status` names a running daemon,
`status --check` passes while it is alive and recent and fails once it lags or is killed; the IB
keepalive tickles the (fake) gateway and a dropped session is told once, never logged back in.

Real daemon processes, the fake IB gateway over HTTPS, the Apprise sink, real DuckDB and git.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from minitrade.cli import app
from minitrade.daemon import run_daemon
from minitrade.loader import load_worktree
from minitrade.store import Store
from minitrade.store.heartbeat import last_pass
from minitrade.testing.apprise_sink import AppriseSink
from tests.conftest import present_env
from tests.e2e.test_daemon_process import wait_for
from tests.live.conftest import PRESENT, trade_alt_through_ib

LOGIN_PATHS = ("/iserver/auth/ssodh/init", "/iserver/reauthenticate", "/sso/Login")


@pytest.fixture
def sink() -> Iterator[AppriseSink]:
    with AppriseSink() as s:
        yield s


def start_daemon(repo: Path, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "minitrade", "daemon", "--poll", "1", "--repo", str(repo)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1", **env})


def minitrade(repo: Path, *args: str, now: datetime | str = PRESENT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "minitrade", *args, "--repo", str(repo)], capture_output=True,
                          text=True, timeout=120, env={**os.environ, **present_env(now)})


def passed(repo: Path) -> bool:
    with Store(repo / "state" / "minitrade.duckdb", lock_timeout=10).transaction() as con:
        return last_pass(con) is not None


def with_notifier(repo, sink: AppriseSink) -> None:
    repo.edit("minitrade.yaml", "notifiers: {}", f'notifiers:\n  phone:\n    urls: ["{sink.url("hook")}"]')
    repo.commit("tell the phone")


def titled(sink: AppriseSink, title: str) -> list[str]:
    return [p.message for p in sink.posts if p.title == title]


def test_status_check_passes_while_the_daemon_lives_and_fails_when_it_lags_or_is_killed(live_repo) -> None:
    repo = live_repo.path
    later = (datetime.fromisoformat(PRESENT) + timedelta(minutes=10)).isoformat()
    daemon = start_daemon(repo)
    try:
        assert wait_for(lambda: passed(repo)), "the daemon records its first pass"
        shown = minitrade(repo, "status")
        assert shown.returncode == 0, shown.stderr
        assert f"Daemon: running, pid {daemon.pid}" in shown.stdout and "polls every 1s" in shown.stdout

        doc = json.loads(minitrade(repo, "status", "--json").stdout)["daemon"]
        assert doc["running"] is True and doc["pid"] == daemon.pid and doc["ok"] is True
        assert doc["poll_seconds"] == 1.0 and doc["passes"] >= 1 and doc["last_pass"] is not None
        assert doc["max_lag_seconds"] == 301.0  # poll 1 s: at least a poll plus five minutes

        healthy = minitrade(repo, "status", "--check")
        assert healthy.returncode == 0, healthy.stderr
        assert healthy.stdout.startswith(f"ok: daemon pid {daemon.pid} running, last pass")

        # ten minutes on, the daemon's clock (MINITRADE_NOW) still says it passed at PRESENT: it lags
        lagging = minitrade(repo, "status", "--check", now=later)
        assert lagging.returncode == 1 and lagging.stdout == ""
        assert f"daemon pid {daemon.pid} is lagging: last pass 10m 0s ago" in lagging.stderr, lagging.stderr
        assert minitrade(repo, "status", "--check", "--max-lag", "15m", now=later).returncode == 0
        as_json = minitrade(repo, "status", "--check", "--json", now=later)
        assert as_json.returncode == 1
        doc = json.loads(as_json.stdout)["daemon"]
        assert doc["ok"] is False and doc["lag_seconds"] == 600.0 and "lagging" in doc["problem"]
    finally:
        daemon.send_signal(signal.SIGKILL)
        daemon.communicate(timeout=60)

    # killed: the kernel released its lock; the heartbeat alone says nothing about a live process
    down = minitrade(repo, "status", "--check")
    assert down.returncode == 1 and "daemon not running (last pass" in down.stderr, down.stderr
    doc = json.loads(minitrade(repo, "status", "--json").stdout)["daemon"]
    assert doc["running"] is False and doc["ok"] is False and doc["pid"] == daemon.pid
    assert "not running" in minitrade(repo, "status").stdout
    typo = minitrade(repo, "status", "--check", "--max-lag", "bogus")
    assert typo.returncode == 64 and "not a duration" in typo.stderr  # a usage error, not a verdict


def test_keepalive_tickles_the_gateway_and_a_dropped_session_is_told_once_never_logged_in(
        live_repo, start_gateway, sink: AppriseSink, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IB_USERNAME", "fakeuser")
    monkeypatch.setenv("IB_PASSWORD", "fakepass-Secret-42")
    gateway = start_gateway("authenticated", datetime.fromisoformat(PRESENT))
    with_notifier(live_repo, sink)
    trade_alt_through_ib(live_repo, gateway)
    daemon = start_daemon(live_repo.path, MINITRADE_KEEPALIVE_SECONDS="0.2")
    try:
        assert wait_for(lambda: gateway.tickles() >= 3), "the keepalive tickles the applied state's gateway"
        gateway.drop_session()
        assert wait_for(lambda: bool(titled(sink, "IB session lost: ib"))), [p.title for p in sink.posts]
        seen = gateway.tickles()
        assert wait_for(lambda: gateway.tickles() >= seen + 5), "it keeps tickling a lost session"
        (lost,) = titled(sink, "IB session lost: ib")  # told once, however many tickles find it gone
        assert "run `minitrade ib login ib`" in lost and "expired" in lost

        gateway.set_state("authenticated")  # the person logged in
        assert wait_for(lambda: bool(titled(sink, "IB session back: ib"))), [p.title for p in sink.posts]
    finally:
        daemon.send_signal(signal.SIGTERM)
        out, err = daemon.communicate(timeout=60)
    assert daemon.returncode == 0, err
    assert len(titled(sink, "IB session lost: ib")) == 1
    assert not [path for _, path, _ in gateway.requests if path.startswith(LOGIN_PATHS)], "never logs in"
    assert "fakepass-Secret-42" not in out + err + "".join(p.message for p in sink.posts)
    (stopped,) = titled(sink, "minitrade daemon stopped")
    assert "Daemon stopped: SIGTERM." in stopped


def test_an_exception_in_the_loop_is_logged_and_notified_before_the_daemon_stops(
        live_repo, sink: AppriseSink, caplog: pytest.LogCaptureFixture) -> None:
    with_notifier(live_repo, sink)
    applied = CliRunner().invoke(app, ["apply", "--yes", "--repo", str(live_repo.path)], catch_exceptions=False)
    assert applied.exit_code == 0, applied.output
    snapshot = load_worktree(live_repo.path)

    def report(_result: object) -> None:  # what the CLI prints after each pass: here it breaks
        raise RuntimeError("stdout is gone")

    with pytest.raises(RuntimeError, match="stdout is gone"):
        run_daemon(live_repo.path, snapshot.store(), snapshot.state_dir, poll=1, report=report)
    assert "the daemon loop failed; stopping" in caplog.text and "RuntimeError: stdout is gone" in caplog.text
    (stopped,) = titled(sink, "minitrade daemon stopped after an ERROR")
    assert "Daemon stopped after an error: RuntimeError: stdout is gone." in stopped
    assert titled(sink, "minitrade daemon started"), "it was announced when it started"
