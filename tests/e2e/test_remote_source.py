"""The daemon following a remote (GitOps): its own clone under the state dir, fetched at an interval
or on a signed webhook, commits applied or rejected as locally, a force-push told, a failing fetch
told once and its recovery once, and the token nowhere. Real `git daemon`, git's smart HTTP, daemon
processes and the Apprise sink."""

from __future__ import annotations

import hashlib
import hmac
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from minitrade.store import Store
from minitrade.store.applied import last_applied, last_attempt
from minitrade.testing.apprise_sink import AppriseSink
from minitrade.testing.git_remote import GitDaemon, GitHttpHost, bare_copy, free_port
from tests.e2e.test_daemon_process import wait_for

TOKEN = "ghp_S3cretT0kenNeverWritten0123456789"


@pytest.fixture
def sink() -> Iterator[AppriseSink]:
    with AppriseSink() as running:
        yield running


@pytest.fixture
def remote(live_repo, sink, tmp_path):
    """The live repo (notifying the sink) pushed to a bare repository under tmp_path/remotes."""
    live_repo.edit("minitrade.yaml", "notifiers: {}", f"notifiers:\n  phone:\n    urls: ['{sink.url('phone')}']\n")
    live_repo.commit("notify the phone")
    base = tmp_path / "remotes"
    base.mkdir()
    bare = bare_copy(live_repo.path, base)
    live_repo.git("remote", "add", "origin", str(bare))
    return base


def daemon(url: str, state: Path, *extra: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "minitrade", "daemon", "--source", url, "--branch", "main",
                             "--interval", "1s", "--poll", "1", "--state-dir", str(state), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})


def stop(process: subprocess.Popen[str]) -> tuple[str, str]:
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    return out, err


def applied(state: Path) -> str | None:
    with Store(state / "minitrade.duckdb", lock_timeout=10).transaction() as con:
        row = last_applied(con)
    return row.commit_sha if row else None


def attempt(state: Path) -> tuple[str | None, str] | None:
    with Store(state / "minitrade.duckdb", lock_timeout=10).transaction() as con:
        row = last_attempt(con)
    return (row.commit_sha, row.outcome) if row else None


def titles(sink: AppriseSink) -> list[str]:
    return [p.title for p in sink.posts]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "minitrade", *args], capture_output=True, text=True, timeout=120)


def test_the_daemon_follows_a_branch_over_git_protocol(live_repo, remote, sink, tmp_path) -> None:
    state = tmp_path / "srv"
    with GitDaemon(remote) as host:
        process = daemon(host.url(), state)
        try:
            assert wait_for(lambda: applied(state) == live_repo.head), "the pushed head is applied"
            assert (state / "source" / "plans" / "alt.yaml").is_file(), "its own clone, under the state dir"

            live_repo.edit("plans/alt.yaml", "cash: 100000", "cash: 120000")
            good = live_repo.commit("more cash")
            live_repo.git("push", "-q", "origin", "main")
            assert wait_for(lambda: applied(state) == good), "a pushed commit is applied without a restart"

            live_repo.edit("plans/alt.yaml", "cash: 120000", "cash: -1")
            bad = live_repo.commit("broken")
            live_repo.git("push", "-q", "origin", "main")
            assert wait_for(lambda: attempt(state) == (bad, "rejected")), "an invalid push is rejected"
            assert applied(state) == good, "the last good state keeps running"

            live_repo.git("reset", "-q", "--hard", good)
            live_repo.edit("plans/alt.yaml", "cash: 120000", "cash: 130000")
            rewritten = live_repo.commit("rewritten history")
            live_repo.git("push", "-q", "--force", "origin", "main")
            assert wait_for(lambda: applied(state) == rewritten), "a force-push is applied like any change"
            assert wait_for(lambda: "force-push on main" in titles(sink)), titles(sink)

            # commands beside the daemon read its state and its clone with --state-dir
            status = cli("status", "--state-dir", str(state))
            assert status.returncode == 0, status.stderr
            assert f"Source: {host.url()}: head {rewritten[:8]}, applied {rewritten[:8]}, last fetch" in status.stdout
            orders = cli("orders", "--state-dir", str(state), "--json")
            assert orders.returncode == 0, orders.stderr
        finally:
            out, _err = stop(process)
    assert f"commit {bad[:8]}: rejected" in out
    assert titles(sink).count("force-push on main") == 1
    assert not (live_repo.path / "state").exists(), "the person's working tree is never the daemon's"


def test_a_failing_fetch_is_told_once_and_its_recovery_once(live_repo, remote, sink, tmp_path) -> None:
    state = tmp_path / "srv"
    host = GitDaemon(remote).start()
    process = daemon(host.url(), state)
    try:
        assert wait_for(lambda: applied(state) == live_repo.head)
        host.stop()  # the host goes away: fetches fail, retried with backoff (1 s, 2 s, 4 s...)
        assert wait_for(lambda: "fetch failing: main" in titles(sink))
        status = cli("status", "--state-dir", str(state))
        assert "fetch failing:" in status.stdout and "Daemon: running" in status.stdout, status.stdout
        live_repo.edit("plans/alt.yaml", "cash: 100000", "cash: 110000")
        later = live_repo.commit("pushed while the host was down")
        live_repo.git("push", "-q", "origin", "main")
        host = GitDaemon(remote, port=host.port).start()
        assert wait_for(lambda: applied(state) == later), "after recovery the new commit is applied"
        assert wait_for(lambda: "fetch works again: main" in titles(sink))
    finally:
        stop(process)
        host.stop()
    assert titles(sink).count("fetch failing: main") == 1
    assert titles(sink).count("fetch works again: main") == 1


def test_an_https_token_reaches_the_host_and_nowhere_else(live_repo, remote, tmp_path) -> None:
    state = tmp_path / "srv"
    with GitHttpHost(remote, TOKEN) as host:
        refused = cli("daemon", "--once", "--source", host.url(), "--state-dir", str(state))
        assert refused.returncode == 1, "without the token the fetch fails and --once says so"
        done = subprocess.run([sys.executable, "-m", "minitrade", "daemon", "--once", "--source", host.url(),
                               "--token", "${MINITRADE_GIT_TOKEN}", "--state-dir", str(state)],
                              capture_output=True, text=True, timeout=120,
                              env={**os.environ, "MINITRADE_GIT_TOKEN": TOKEN})
        assert done.returncode == 0, done.stderr
        assert applied(state) == live_repo.head
        assert host.authorizations, "the token went to the host as HTTP basic auth"
    for text in (refused.stdout, refused.stderr, done.stdout, done.stderr):
        assert TOKEN not in text
    for path in state.rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), f"the token was written to {path}"

    literal = cli("daemon", "--once", "--source", host.url(), "--token", TOKEN, "--state-dir", str(state))
    assert literal.returncode == 64 and "give a reference" in literal.stderr
    assert TOKEN not in literal.stderr + literal.stdout
    inline = cli("daemon", "--once", "--source", host.url().replace("http://", f"http://me:{TOKEN}@"),
                 "--state-dir", str(state))
    assert inline.returncode == 1 and "password or token in it" in inline.stderr
    assert TOKEN not in inline.stderr + inline.stdout


def post(port: int, body: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/", data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as e:
        return int(e.code)


def test_a_signed_webhook_fetches_at_once_and_a_wrongly_signed_one_is_refused(live_repo, remote, tmp_path) -> None:
    state, secret, port = tmp_path / "srv", "hook-secret-value", free_port()
    with GitDaemon(remote) as host:
        process = subprocess.Popen(
            [sys.executable, "-m", "minitrade", "daemon", "--source", host.url(), "--interval", "1h", "--poll", "1",
             "--state-dir", str(state), "--webhook", f"127.0.0.1:{port}",
             "--webhook-secret", "${MINITRADE_WEBHOOK_SECRET}"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "MINITRADE_WEBHOOK_SECRET": secret})
        try:
            assert wait_for(lambda: applied(state) == live_repo.head), "the first fetch is at start"
            live_repo.edit("plans/alt.yaml", "cash: 100000", "cash: 150000")
            pushed = live_repo.commit("pushed, then announced")
            live_repo.git("push", "-q", "origin", "main")
            body = b'{"ref": "refs/heads/main"}'
            good = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
            assert wait_for(lambda: post(port, body, {}) == 401), "unsigned: refused"
            assert post(port, body, {"X-Hub-Signature-256": "sha256=" + "0" * 64}) == 401
            assert post(port, body, {"X-Hub-Signature-256": good.replace("sha256=", "sha1=")}) == 401
            assert applied(state) != pushed, "nothing fetched for a refused request (interval is an hour)"
            other = b'{"ref": "refs/heads/feature"}'
            signed_other = "sha256=" + hmac.new(secret.encode(), other, hashlib.sha256).hexdigest()
            assert post(port, other, {"X-Hub-Signature-256": signed_other}) == 202
            assert post(port, body, {"X-Hub-Signature-256": good, "X-GitHub-Event": "push"}) == 202
            assert wait_for(lambda: applied(state) == pushed), "a signed push fetches at once"
        finally:
            stop(process)


def test_the_daemon_starts_on_a_broken_head_and_runs_the_applied_state(live_repo) -> None:
    applied_ok = cli("apply", "--yes", "--repo", str(live_repo.path))
    assert applied_ok.returncode == 0, applied_ok.stderr
    good = live_repo.head
    live_repo.edit("plans/alt.yaml", "cash: 100000", "cash: -1")
    bad = live_repo.commit("broken head")
    live_repo.write("minitrade.yaml", "timezone: [unclosed\n")  # and a half-edited, uncommitted file

    done = cli("daemon", "--once", "--repo", str(live_repo.path))
    assert "alt: run" in done.stdout and "finished" in done.stdout, done.stdout + done.stderr
    assert f"commit {bad[:8]}: rejected" in done.stdout
    state = live_repo.path / "state"
    assert applied(state) == good and attempt(state) == (bad, "rejected")


def test_once_exits_non_zero_when_its_pass_failed(live_repo) -> None:
    state = live_repo.path / "state"
    state.mkdir()
    (state / "minitrade.duckdb").write_bytes(b"this is not a DuckDB file" * 100)
    done = cli("daemon", "--once", "--repo", str(live_repo.path))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "the pass failed" in done.stderr
