"""What the command line prints: colour only on a terminal (NO_COLOR honoured), progress lines when piped."""

from __future__ import annotations

import io
import os
import pty
import subprocess
import sys

from rich.console import Console
from typer.testing import CliRunner

from minitrade.cli import app
from minitrade.cli.progress import PlainProgress

GREEN = "\x1b[32m"


def plan_output(repo, *, terminal: bool, no_color: bool = False) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR", "TERM")}
    env.update({"TERM": "xterm-256color", "PYTHONWARNINGS": "ignore"})
    if no_color:
        env["NO_COLOR"] = "1"
    command = [sys.executable, "-m", "minitrade", "plan", "--repo", str(repo)]
    if not terminal:
        return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120).stdout
    leader, follower = pty.openpty()
    try:
        process = subprocess.Popen(command, stdout=follower, stderr=subprocess.DEVNULL, env=env)
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal closes when the process ends
                break
            if not chunk:
                break
            chunks.append(chunk)
        process.wait(timeout=120)
    finally:
        os.close(leader)
    return b"".join(chunks).decode()


def test_the_plan_diff_is_coloured_on_a_terminal_only_and_never_with_no_color(trading_repo) -> None:
    coloured = plan_output(trading_repo.path, terminal=True)
    assert f"{GREEN}+ plan sma-aapl" in coloured
    plain = plan_output(trading_repo.path, terminal=True, no_color=True)
    assert "+ plan sma-aapl" in plain and "\x1b[" not in plain
    piped = plan_output(trading_repo.path, terminal=False)
    assert "+ plan sma-aapl" in piped and "\x1b[" not in piped


def test_plain_progress_prints_each_tenth_of_the_work() -> None:
    out = io.StringIO()
    update = PlainProgress(Console(file=out, width=200), "replay", "sessions", every=3600)
    for done in range(1, 360):
        update(done, 359, f"day {done}")
    lines = out.getvalue().splitlines()
    assert len(lines) == 10
    assert lines[0] == "replay: 36/359 sessions (10%) day 36"
    assert lines[3] == "replay: 144/359 sessions (40%) day 144"
    assert lines[-1] == "replay: 359/359 sessions (100%) day 359"


def test_a_piped_replay_prints_progress_lines(trading_repo) -> None:
    result = CliRunner().invoke(app, ["replay", "--from", "2013-02-04", "--to", "2013-02-15", "sma-aapl",
                                      "--repo", str(trading_repo.path)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    # ten sessions: a line for each (every one is a tenth)
    assert [line for line in lines if line.startswith("replay: ")][-3:] == [
        "replay: 8/10 sessions (80%) 2013-02-13", "replay: 9/10 sessions (90%) 2013-02-14",
        "replay: 10/10 sessions (100%) 2013-02-15"]
