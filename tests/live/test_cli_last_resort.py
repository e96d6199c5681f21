"""No command prints a Python traceback: a bug of ours is one line naming it, exit 1; the traceback
goes to the log (`--log-level debug`). A real process, a real repo, a bug raised at a failpoint."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.live.conftest import PRESENT


def apply(repo: str, state: str) -> None:
    done = subprocess.run([sys.executable, "-m", "minitrade", "apply", "--yes", "--repo", repo, "--state-dir", state],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr


def test_an_internal_error_is_one_line_and_exit_1_with_the_traceback_only_in_the_debug_log(live_repo, tmp_path) -> None:
    repo = str(live_repo.path)
    apply(repo, str(tmp_path / "one"))
    env = {**os.environ, "MINITRADE_NOW": PRESENT, "MINITRADE_FAILPOINT": "submit-sent:raise"}
    run = [sys.executable, "-m", "minitrade", "run", "alt", "--repo", repo]
    done = subprocess.run([*run, "--state-dir", str(tmp_path / "one")], capture_output=True, text=True, timeout=300,
                          env=env)
    assert done.returncode == 1
    assert "internal error: RuntimeError: failpoint submit-sent" in done.stderr
    assert "This is a bug in minitrade" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout

    apply(repo, str(tmp_path / "two"))  # a tick that has run records nothing again: a fresh state for the rerun
    debug = subprocess.run([sys.executable, "-m", "minitrade", "--log-level", "debug", *run[3:], "--state-dir",
                            str(tmp_path / "two")], capture_output=True, text=True, timeout=300, env=env)
    assert debug.returncode == 1
    assert "Traceback" in debug.stderr and "internal error" in debug.stderr
