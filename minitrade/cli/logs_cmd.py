"""`minitrade logs`: read (and follow) the daemon's log file under the state dir."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

import typer

from minitrade.cli.app import (
    INTERRUPTED,
    REPO_OPTION,
    STATE_DIR_OPTION,
    LogLevel,
    app,
    handle_errors,
    repo_path,
)

FOLLOW_POLL_SECONDS = 0.2
_LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40, "CRITICAL": 50}
_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
Record = dict[str, Any]


@app.command("logs")
def logs_cmd(follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new lines (Ctrl-C stops)."),
             plan: str | None = typer.Option(None, "--plan", help="Only lines about this plan."),
             since: str | None = typer.Option(None, "--since", help="Only lines from this time on: an ISO time "
                                              "(without an offset: this machine's time) or an age such as 30m, 2h, 1d."),
             level: LogLevel | None = typer.Option(None, "--level", help="Only lines at this level or above.",
                                                   show_default=False),
             as_json: bool = typer.Option(False, "--json", help="One JSON object a line (whatever the file's format)."),
             state_dir: Path | None = STATE_DIR_OPTION,
             repo: Path | None = REPO_OPTION) -> None:
    """Show the daemon's log (<state_dir>/logs/daemon.log and its rotated files, oldest first).

    Each line is "time level logger [plan=... run_id=... commit=...] message"; --plan keeps the
    lines about one plan, --json prints one JSON object a line, -f follows the file as it grows
    (also across rotation) until Ctrl-C.

    Example: minitrade logs -f --plan sma-aapl --since 2h --level info
    """
    with handle_errors():
        wanted = _Filter(plan=plan, since=_since(since), level=_level(level))
        path = _state_dir(repo_path(repo, state_dir)) / "logs" / "daemon.log"
        show = _printer(as_json)
        if not follow and not path.exists():
            typer.echo(f"no daemon log at {path} (the daemon writes it once it runs)", err=True)
            return
        try:
            for record in _read(path, follow=follow):
                if wanted(record):
                    show(record)
        except KeyboardInterrupt:
            raise typer.Exit(INTERRUPTED) from None


def _state_dir(root: Path) -> Path:
    """--state-dir, else the repo's state dir read as `status` reads it (an invalid repo still has logs)."""
    from minitrade.statedir import locate

    return locate(root).state_dir


def _level(level: LogLevel | None) -> int:
    return 0 if level is None else _LEVELS[level.value.upper()]


def _since(text: str | None) -> datetime | None:
    """An ISO time or an age; log times are the machine's clock, so an age counts back from it."""
    if text is None:
        return None
    relative = _RELATIVE.match(text.strip())
    if relative:
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[relative[2]]
        return datetime.now().astimezone() - timedelta(**{unit: float(relative[1])})
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is neither an ISO time (2026-11-25T09:30) nor an age (30m, 2h, 1d)",
                                 param_hint="'--since'") from None
    return at if at.tzinfo is not None else at.astimezone()


@dataclass(frozen=True)
class _Filter:
    plan: str | None
    since: datetime | None
    level: int

    def __call__(self, record: Record) -> bool:
        if self.plan is not None and record.get("plan") != self.plan:
            return False
        if self.level and _LEVELS.get(str(record.get("level")), 0) < self.level:
            return False
        if self.since is not None:
            try:
                return datetime.fromisoformat(str(record["time"])) >= self.since
            except ValueError:
                return True
        return True


def _printer(as_json: bool) -> Callable[[Record], None]:
    from minitrade.logsetup import FIELDS

    def show(record: Record) -> None:
        if as_json:
            line = json.dumps(record, ensure_ascii=False)
        else:
            fields = " ".join(f"{k}={record[k]}" for k in FIELDS if record.get(k) is not None)
            line = f"{record['time']} {record['level']} {record.get('logger', '')} " \
                   + (f"[{fields}] " if fields else "") + str(record.get("message", ""))
            if record.get("traceback"):
                line += "\n" + str(record["traceback"])
        typer.echo(line)  # a pipe (`| grep`, a test) sees each line at once: typer.echo flushes

    return show


def _files(path: Path) -> list[Path]:
    """The rotated files oldest first (daemon.log.5 ... daemon.log.1), then the file being written."""
    rotated = sorted((p for p in path.parent.glob(path.name + ".*") if p.suffix[1:].isdigit()),
                     key=lambda p: int(p.suffix[1:]), reverse=True)
    return [*rotated, path]


def _read(path: Path, *, follow: bool) -> Iterator[Record]:
    """Every record of the log files in order; with `follow`, then the new ones as they are written."""
    group = _Grouper()
    for file in _files(path)[:-1]:
        with open(file, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                yield from group.feed(line)
    if not follow:
        if path.exists():
            with open(path, encoding="utf-8", errors="replace") as handle:
                for line in handle:
                    yield from group.feed(line)
        yield from group.flush()
        return
    yield from _follow(path, group)


def _follow(path: Path, group: _Grouper) -> Iterator[Record]:
    """Like `tail -F`: read to the end, then poll; a rotated (renamed) or truncated file is reopened."""
    handle: IO[str] | None = None
    partial = ""
    while True:
        if handle is None:
            try:
                handle = open(path, encoding="utf-8", errors="replace")  # noqa: SIM115 (kept across polls)
            except FileNotFoundError:
                time.sleep(FOLLOW_POLL_SECONDS)
                continue
        line = handle.readline()
        if line:
            partial += line
            if partial.endswith("\n"):
                yield from group.feed(partial)
                partial = ""
            continue
        yield from group.flush()  # a quiet moment: the last record is complete
        if _replaced(path, handle):
            for rest in handle.read().splitlines(keepends=True):  # written just before the rotation
                yield from group.feed(partial + rest)
                partial = ""
            yield from group.flush()
            handle.close()
            handle = None  # the rotated file was read to its end above; continue with the new one
            continue
        time.sleep(FOLLOW_POLL_SECONDS)


def _replaced(path: Path, handle: IO[str]) -> bool:
    """Whether `path` is no longer the file `handle` reads (rotated away) or was truncated."""
    try:
        now = os.stat(path)
    except FileNotFoundError:
        return False  # between the rename and the new file: keep reading the old one
    mine = os.fstat(handle.fileno())
    return now.st_ino != mine.st_ino or now.st_size < handle.tell()


class _Grouper:
    """Lines into records: a line that starts no record (a traceback) belongs to the one before."""

    def __init__(self) -> None:
        self._pending: Record | None = None

    def feed(self, line: str) -> Iterator[Record]:
        from minitrade.logsetup import parse_line

        record = parse_line(line)
        if record is None:
            if self._pending is not None and line.strip():
                key = "traceback" if "traceback" in self._pending or line.startswith("Traceback") else "message"
                self._pending[key] = (str(self._pending.get(key, "")) + "\n" + line.rstrip("\n")).lstrip("\n")
            return
        yield from self.flush()
        self._pending = record

    def flush(self) -> Iterator[Record]:
        if self._pending is not None:
            yield self._pending
            self._pending = None
