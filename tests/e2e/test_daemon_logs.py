"""The one logging setup, seen from real processes: the daemon's log file, its formats and levels,
secrets masked, and `minitrade logs` reading, filtering and following it."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

from typer.testing import CliRunner

from minitrade.cli import app
from minitrade.testing.apprise_sink import AppriseSink
from tests.conftest import TradingRepo
from tests.live.conftest import PRESENT

# "time level logger [fields] message": ISO time with its UTC offset, a level name, a logger name
TEXT_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d (DEBUG|INFO|WARNING|ERROR) minitrade\.\S+ ")
TICK = "2013-01-03T15:45:00-05:00"
runner = CliRunner()


def daemon_once(repo: TradingRepo, *options: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`minitrade [options] daemon --once --at TICK` as a real process, at the tick's present."""
    done = subprocess.run([sys.executable, "-m", "minitrade", *options, "daemon", "--once", "--at", TICK,
                           "--repo", str(repo.path)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "MINITRADE_NOW": PRESENT, **(env or {})})
    assert done.returncode == 0, done.stderr
    return done


def log_file(repo: TradingRepo) -> Path:
    return repo.path / "state" / "logs" / "daemon.log"


def logs(repo: TradingRepo, *args: str) -> list[str]:
    result = runner.invoke(app, ["logs", *args, "--repo", str(repo.path)])
    assert result.exit_code == 0, result.output
    return result.output.splitlines()


def test_the_daemon_logs_every_decision_with_time_level_logger_and_plan(live_repo: TradingRepo) -> None:
    done = daemon_once(live_repo)
    lines = log_file(live_repo).read_text().splitlines()
    assert lines and all(TEXT_LINE.match(line) for line in lines), lines
    text = "\n".join(lines)
    head = live_repo.head
    for decision in [f"INFO minitrade.daemon daemon started on {live_repo.path}",
                     f"INFO minitrade.daemon [commit={head}] commit {head[:8]} attempted",
                     f"INFO minitrade.daemon [commit={head}] commit {head[:8]} applied: ",
                     "INFO minitrade.daemon [plan=alt run_id=alt-20130103T204500-", "tick 2013-01-03T15:45:00-05:00 "
                     "started as run alt-", "INFO minitrade.run [plan=alt run_id=alt-", "order alt.",
                     "run finished for 2013-01-03: 1 order(s)", "tick 2013-01-03T15:45:00-05:00 FINISHED",
                     "INFO minitrade.orders [plan=alt] order alt.", "pass finished: commit ",
                     "daemon stopped after 1 pass(es)"]:
        assert decision in text, f"{decision!r} not in the log:\n{text}"
    assert " DEBUG " not in text, "the daemon logs at info unless told otherwise"
    assert "tick 2013-01-03T15:45:00-05:00 FINISHED" in done.stderr, "the same lines reach stderr"

    # `minitrade logs` filters by plan and level, and reads what it wrote
    about_alt = logs(live_repo, "--plan", "alt")
    assert about_alt and all("[plan=alt" in line for line in about_alt)
    assert any("tick 2013-01-03T15:45:00-05:00 FINISHED" in line for line in about_alt)
    assert len(about_alt) < len(lines)
    assert logs(live_repo, "--plan", "no-such-plan") == []
    assert logs(live_repo, "--level", "warning") == [line for line in lines if " WARNING " in line or " ERROR " in line]
    assert logs(live_repo, "--since", "1h") == lines and logs(live_repo, "--since", "2999-01-01") == []

    # --log-level debug shows what info hides
    daemon_once(live_repo, "--log-level", "debug")
    debug = log_file(live_repo).read_text()
    assert "DEBUG minitrade.daemon pass started at" in debug


def test_json_log_lines_are_objects_with_plan_run_and_commit(live_repo: TradingRepo) -> None:
    daemon_once(live_repo, "--log-format", "json")
    docs = [json.loads(line) for line in log_file(live_repo).read_text().splitlines()]
    assert docs and all({"time", "level", "logger", "message"} <= d.keys() for d in docs)
    ticks = [d for d in docs if d["message"].startswith("plan alt: tick ")]
    assert ticks and all(d["plan"] == "alt" and d["run_id"].startswith("alt-") for d in ticks)
    assert any(d.get("commit") == live_repo.head and "attempted" in d["message"] for d in docs)

    shown = [json.loads(line) for line in logs(live_repo, "--json", "--plan", "alt")]
    assert shown and {d["plan"] for d in shown} == {"alt"}
    as_text = logs(live_repo, "--plan", "alt")  # a JSON file shown as text lines
    assert len(as_text) == len(shown) and all(TEXT_LINE.match(line) for line in as_text)


LEAKY = '''import os

import backtrader as bt


class Leaky(bt.Strategy):
    """Fails with the notifier's token in its message (user code can read the environment)."""

    def next(self):
        raise RuntimeError("token is " + os.environ["LOG_TEST_TOKEN"])
'''


def test_a_resolved_secret_never_reaches_the_log(live_repo: TradingRepo) -> None:
    secret = "tok-5f3a9c1e-never-logged"
    with AppriseSink() as sink:
        live_repo.edit("minitrade.yaml", "notifiers: {}", "notifiers:\n  phone:\n    urls: "
                       f"[\"json://127.0.0.1:{sink.port}/hook/${{LOG_TEST_TOKEN}}\"]\n    events: [run.failed]")
        live_repo.write("strategies/leaky.py", LEAKY)
        live_repo.edit("plans/alt.yaml", "strategies/alternate.py", "strategies/leaky.py")
        live_repo.commit("a notifier with a secret, a strategy that repeats it")
        done = daemon_once(live_repo, "--log-level", "debug", env={"LOG_TEST_TOKEN": secret})
    log = log_file(live_repo).read_text()
    # the commit's dry run fails with the token in its error: the rejection is logged, masked
    assert re.search(r"WARNING minitrade.daemon .* rejected: .*token is \*\*\*", log), log
    assert secret not in log
    assert secret not in "\n".join(line for line in done.stderr.splitlines() if TEXT_LINE.match(line))


def read_lines(process: subprocess.Popen[str]) -> queue.Queue[str]:
    """The process's stdout, line by line, on a queue (a thread blocks on the pipe, not the test)."""
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def wait_for_line(lines: queue.Queue[str], needle: str, timeout: float = 120.0) -> str:
    seen: list[str] = []
    while True:
        try:
            line = lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no line with {needle!r}; saw:\n{''.join(seen)}") from None
        seen.append(line)
        if needle in line:
            return line


def test_logs_follow_prints_what_a_running_daemon_writes(live_repo: TradingRepo) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    follow = subprocess.Popen([sys.executable, "-m", "minitrade", "logs", "-f", "--repo", str(live_repo.path)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    daemon = subprocess.Popen([sys.executable, "-m", "minitrade", "daemon", "--poll", "1", "--repo",
                               str(live_repo.path)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              env=env)
    try:
        lines = read_lines(follow)
        wait_for_line(lines, "daemon started on")  # the file did not exist when `logs -f` started
        wait_for_line(lines, "pass finished")
        live_repo.edit("plans/alt.yaml", "cash: 100000", "cash: 120000")
        second = live_repo.commit("more cash")
        assert "INFO minitrade.daemon" in wait_for_line(lines, f"commit {second[:8]} applied")
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.communicate(timeout=60)
        follow.send_signal(signal.SIGINT)  # Ctrl-C
        follow.communicate(timeout=30)
    assert daemon.returncode == 0
    assert follow.returncode == 130


def line(message: str, plan: str | None = None) -> str:
    return f"2026-11-25T15:45:00.000-05:00 INFO minitrade.daemon {f'[plan={plan}] ' if plan else ''}{message}\n"


def test_logs_reads_rotated_files_in_order_and_follows_across_a_rotation(tmp_path: Path) -> None:
    folder = tmp_path / "state" / "logs"
    folder.mkdir(parents=True)
    (folder / "daemon.log.2").write_text(line("oldest", "a"))
    (folder / "daemon.log.1").write_text(line("older", "b") + "Traceback (most recent call last):\n  boom\n")
    current = folder / "daemon.log"
    current.write_text(line("newest", "a"))
    args = ["logs", "--state-dir", str(tmp_path / "state")]
    shown = runner.invoke(app, args).output
    assert [m for m in ("oldest", "older", "boom", "newest") if m in shown] == ["oldest", "older", "boom", "newest"]
    assert "older" not in runner.invoke(app, [*args, "--plan", "a"]).output

    follow = subprocess.Popen([sys.executable, "-m", "minitrade", *args, "-f", "--plan", "a"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        lines = read_lines(follow)
        wait_for_line(lines, "newest")
        with current.open("a") as handle:  # what RotatingFileHandler does: a last line, rename, a new file
            handle.write(line("just before the rotation", "a"))
        current.rename(folder / "daemon.log.3")
        current.write_text(line("not mine", "b") + line("after the rotation", "a"))
        wait_for_line(lines, "just before the rotation")
        after = wait_for_line(lines, "after the rotation")
        assert after.startswith("2026-11-25T15:45:00.000-05:00 INFO minitrade.daemon [plan=a] ")
    finally:
        follow.terminate()
        out, _ = follow.communicate(timeout=30)
    assert "not mine" not in out
