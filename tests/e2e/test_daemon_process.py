"""The daemon as a real process: applies new commits, one per state dir, stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from minitrade.errors import StoreLocked
from minitrade.store import Store
from minitrade.store.applied import last_applied, last_attempt
from tests.conftest import present_env


def start_daemon(repo: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "minitrade", "daemon", "--poll", "1", "--repo", str(repo)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


def wait_for(condition: Callable[[], bool], timeout: float = 90.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return True
        except StoreLocked:  # the daemon holds the file for a moment; any other error is the test's answer
            pass
        time.sleep(0.3)
    return False


def test_daemon_applies_commits_refuses_a_twin_and_stops_on_sigterm(live_repo) -> None:
    store = Store(live_repo.path / "state" / "minitrade.duckdb", lock_timeout=10)

    def applied() -> str | None:
        with store.transaction() as con:
            row = last_applied(con)
        return row.commit_sha if row else None

    daemon = start_daemon(live_repo.path)
    try:
        assert wait_for(lambda: applied() == live_repo.head), "the daemon applies HEAD on its first pass"
        twin = subprocess.run([sys.executable, "-m", "minitrade", "daemon", "--repo", str(live_repo.path)],
                              capture_output=True, text=True, timeout=60)
        assert twin.returncode == 1 and "already runs" in twin.stderr

        live_repo.edit("plans/alt.yaml", "cash: 100000", "cash: 120000")
        second = live_repo.commit("more cash")
        assert wait_for(lambda: applied() == second), "a new commit is applied without a restart"

        live_repo.edit("plans/alt.yaml", "cash: 120000", "cash: -1")
        bad = live_repo.commit("broken")

        def rejected() -> bool:
            with store.transaction() as con:
                attempt = last_attempt(con)
            return attempt is not None and attempt.commit_sha == bad and attempt.outcome == "rejected"

        assert wait_for(rejected), "an invalid commit is recorded as rejected"
        assert applied() == second, "the last good state keeps running"

        # a checkout of another branch rewrites files and HEAD at once: one attempt, applied
        live_repo.git("checkout", "-q", "-b", "feature", second)
        for i in range(40):  # plenty of file events
            live_repo.write(f"plans/extra-{i}.yaml", (live_repo.path / "plans" / "alt.yaml").read_text()
                            .replace("name: alt", f"name: extra-{i}"))
        feature = live_repo.commit("forty more plans on a branch")
        live_repo.git("checkout", "-q", "main")
        live_repo.git("checkout", "-q", "feature")
        assert wait_for(lambda: applied() == feature), "the checked-out branch's HEAD is applied"
    finally:
        daemon.send_signal(signal.SIGTERM)
        out, err = daemon.communicate(timeout=60)
    assert daemon.returncode == 0, err
    assert "stopping: SIGTERM received; runs still computing are abandoned" in out  # said when it arrives
    assert "rejected" in out
    assert out.count(f"commit {feature[:8]}: applied") == 1, out


BLOCKING = '''import os
import time
from pathlib import Path

import backtrader as bt


class Blocking(bt.Strategy):
    """Alternates 10 / 0 shares; while the `gate` file exists, it says so and waits in its last bar."""

    params = (("gate", ""),)

    def next(self):
        self.order_target_size(target=10 if len(self) % 2 else 0)

    def stop(self):
        gate = Path(self.p.gate)
        while gate.exists():
            gate.with_suffix(".inside").write_text(str(os.getpid()))
            time.sleep(0.2)
'''


def test_sigterm_mid_run_abandons_the_computation_and_a_restart_resumes_the_tick(live_repo, tmp_path) -> None:
    from typer.testing import CliRunner

    from minitrade.cli import app
    from minitrade.records import TickStatus
    from minitrade.store import orders as order_sql
    from minitrade.store import runs as run_sql

    gate = tmp_path / "gate"
    live_repo.write("strategies/blocking.py", BLOCKING)
    live_repo.edit("plans/alt.yaml", "strategies/alternate.py", "strategies/blocking.py")
    live_repo.edit("plans/alt.yaml", "trading: enabled", f"trading: enabled\nparams: {{gate: '{gate}'}}")
    live_repo.commit("a strategy that waits at a gate")
    assert CliRunner().invoke(app, ["apply", "--yes", "--repo", str(live_repo.path)]).exit_code == 0
    gate.write_text("hold")  # after apply: its dry run must pass
    store = Store(live_repo.path / "state" / "minitrade.duckdb", lock_timeout=10)
    first = "2013-01-03T15:45:30-05:00"
    daemon = subprocess.Popen([sys.executable, "-m", "minitrade", "daemon", "--once", "--at", first,
                               "--repo", str(live_repo.path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env={**os.environ, **present_env(first)})
    try:
        assert wait_for(gate.with_suffix(".inside").exists, timeout=120), "the run is computing"
        daemon.send_signal(signal.SIGTERM)
    finally:
        out, err = daemon.communicate(timeout=60)
    assert daemon.returncode == 0, err
    with store.transaction() as con:
        (tick,) = order_sql.ticks_of(con, "alt")
        (run,) = run_sql.list_runs(con, plan="alt")
        assert tick.status is TickStatus.STARTED, "left open: the next pass resumes it within its grace"
        assert run.status == "FAILED" and "interrupted" in (run.error or "")
        assert order_sql.orders_of(con, "alt") == []

    gate.unlink()
    again = "2013-01-03T15:46:30-05:00"
    resumed = subprocess.run([sys.executable, "-m", "minitrade", "daemon", "--once", "--at", again,
                              "--repo", str(live_repo.path)], capture_output=True, text=True, timeout=240,
                             env={**os.environ, **present_env(again)})
    assert resumed.returncode == 0, resumed.stderr
    with store.transaction() as con:
        (tick,) = order_sql.ticks_of(con, "alt")
        assert tick.status is TickStatus.FINISHED
        assert len(order_sql.orders_of(con, "alt")) == 1


def _daemon_once(repo: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "minitrade", "daemon", "--once", "--repo", str(repo)],
                          capture_output=True, text=True, timeout=120, env={**os.environ, **env})


def test_a_commit_whose_load_killed_the_daemon_is_rejected_on_restart_not_loaded_again(live_repo) -> None:
    from minitrade.testing.apprise_sink import AppriseSink

    with AppriseSink() as sink:
        live_repo.edit("minitrade.yaml", "notifiers: {}\n",
                       f'notifiers:\n  ops:\n    urls: ["{sink.url("hook")}"]\n    events: [config.rejected]\n')
        good = live_repo.commit("notify the rejections")
        first = _daemon_once(live_repo.path)
        assert first.returncode == 0, first.stderr
        store = Store(live_repo.path / "state" / "minitrade.duckdb", lock_timeout=10)

        def attempts() -> tuple[str | None, str | None, str | None]:
            with store.transaction() as con:
                applied, attempt = last_applied(con), last_attempt(con)
            assert attempt is not None
            return applied.commit_sha if applied else None, attempt.commit_sha, attempt.outcome

        assert attempts() == (good, good, "applied")

        live_repo.edit("plans/alt.yaml", "cash: 100000", "cash: 120000")
        killer = live_repo.commit("a commit whose load kills the daemon")  # valid: loading it would apply it
        killed = _daemon_once(live_repo.path, MINITRADE_FAILPOINT="commit-loading")
        assert killed.returncode == -signal.SIGKILL, killed.stderr
        assert attempts() == (good, killer, "loading"), "recorded before the load started"

        restarted = _daemon_once(live_repo.path)
        assert restarted.returncode == 0, restarted.stderr
        assert attempts() == (good, killer, "rejected"), "rejected, not loaded (it would have been applied)"
        with store.transaction() as con:
            attempt = last_attempt(con)
        assert attempt is not None and (attempt.error or "").startswith("the load of this commit did not finish")
        assert any(killer[:7] in p.title and "did not finish" in p.message for p in sink.posts), sink.posts

        again = _daemon_once(live_repo.path)
        assert again.returncode == 0 and attempts() == (good, killer, "rejected")
        assert sum("did not finish" in p.message for p in sink.posts) == 1, "notified once"

        live_repo.edit("plans/alt.yaml", "cash: 120000", "cash: 130000")
        fixed = live_repo.commit("the next commit loads as usual")
        assert _daemon_once(live_repo.path).returncode == 0
        assert attempts() == (fixed, fixed, "applied")


def test_a_load_that_raises_an_unexpected_error_is_a_rejection(live_repo) -> None:
    live_repo.edit("plans/alt.yaml", "cash: 100000", "cash: 120000")
    head = live_repo.commit("a commit whose load raises")
    done = _daemon_once(live_repo.path, MINITRADE_FAILPOINT="commit-loading:raise")
    assert "Traceback" not in done.stderr, done.stderr
    store = Store(live_repo.path / "state" / "minitrade.duckdb", lock_timeout=10)
    with store.transaction() as con:
        attempt = last_attempt(con)
        applied = last_applied(con)
    assert attempt is not None and (attempt.commit_sha, attempt.outcome) == (head, "rejected")
    assert (attempt.error or "").startswith("loading the commit failed: RuntimeError")
    assert applied is None
