"""The one logging setup: every command calls `configure` once; the daemon adds its rotating file.

Lines are "time level logger message" (ISO time with UTC offset), or with `--log-format json`
one JSON object a line (`time`, `level`, `logger`, `message`, and `plan`, `run_id`, `commit` when
the record carries them as `extra`). In text lines those fields stand in brackets before the
message (`[plan=spy-sma run_id=...]`), so `minitrade logs --plan` can read both formats.

Levels apply to minitrade's own loggers (`minitrade.*`); other libraries stay at warning, so
`--log-level debug` shows minitrade's reasoning, not every HTTP connection of a dependency.
Every handler carries `RedactSecrets`: a secret resolved anywhere in the process (credentials
remembers each value it resolves) is replaced by *** before the line is written, also in tracebacks.

Modules only do `log = logging.getLogger("minitrade.<area>")`; nothing else installs handlers.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

LEVELS = ("debug", "info", "warning", "error")
FORMATS = ("text", "json")
FIELDS = ("plan", "run_id", "commit")   # `extra` fields a record may carry, in this order
LOG_FILE = Path("logs") / "daemon.log"  # under the state dir
MAX_BYTES = 10 * 1024 * 1024
BACKUPS = 5
MASK = "***"
_OURS = "_minitrade_handler"            # marks the handlers this module installed (replaced on reconfigure)


@dataclass(frozen=True)
class LogOptions:
    """The global `--log-level` and `--log-format` of this invocation."""

    level: str = "warning"
    fmt: str = "text"


_current = LogOptions()


def current() -> LogOptions:
    """The options `configure` was last called with (the daemon's file uses the same)."""
    return _current


def iso_time(created: float) -> str:
    """A record's time: local ISO 8601 with its UTC offset, to the millisecond."""
    return datetime.fromtimestamp(created).astimezone().isoformat(timespec="milliseconds")


def _known_secrets() -> list[str]:
    """Every secret value resolved in this process so far, longest first."""
    if "minitrade.credentials" not in sys.modules:  # nothing resolved one yet; importing it costs start-up
        return []
    from minitrade.credentials import resolved_values

    return sorted(resolved_values(), key=len, reverse=True)


class RedactSecrets(logging.Filter):
    """Replace every known secret value in a record (message, arguments, traceback) by ***."""

    def filter(self, record: logging.LogRecord) -> bool:
        values = _known_secrets()
        if not values:
            return True
        message = record.getMessage()
        clean = _redact(message, values)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = _redact(record.exc_text, values)
        return True


def _redact(text: str, values: list[str]) -> str:
    for value in values:
        text = text.replace(value, MASK)
    return text


class TextFormatter(logging.Formatter):
    """`2026-11-25T15:45:00.123-05:00 INFO minitrade.daemon [plan=spy-sma] tick started ...`.

    Without `tracebacks` an exception's traceback is left out: a person at a terminal gets one line
    (the log file, and stderr at debug level, keep them)."""

    def __init__(self, *, tracebacks: bool = True) -> None:
        super().__init__()
        self.tracebacks = tracebacks

    def format(self, record: logging.LogRecord) -> str:
        fields = " ".join(f"{k}={v}" for k, v in _fields(record).items())
        line = f"{iso_time(record.created)} {record.levelname} {record.name} " \
               + (f"[{fields}] " if fields else "") + record.getMessage()
        trace = self._trace(record)
        return f"{line}\n{trace}" if trace else line

    def _trace(self, record: logging.LogRecord) -> str:
        if not self.tracebacks:
            return ""
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        return record.exc_text or ""


class JsonFormatter(TextFormatter):
    """One JSON object a line, for log shippers."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {"time": iso_time(record.created), "level": record.levelname,
                               "logger": record.name, "message": record.getMessage(), **_fields(record)}
        trace = self._trace(record)
        if trace:
            doc["traceback"] = trace
        return json.dumps(doc, ensure_ascii=False, default=str)


def _fields(record: logging.LogRecord) -> dict[str, str]:
    found = {k: getattr(record, k, None) for k in FIELDS}
    return {k: str(v).replace(" ", "_") for k, v in found.items() if v is not None}


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is at the time (a test runner swaps it between invocations)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def _formatter(fmt: str, *, tracebacks: bool) -> logging.Formatter:
    return JsonFormatter(tracebacks=tracebacks) if fmt == "json" else TextFormatter(tracebacks=tracebacks)


def _install(handler: logging.Handler, options: LogOptions, *, tracebacks: bool = True) -> None:
    handler.setLevel(options.level.upper())
    handler.setFormatter(_formatter(options.fmt, tracebacks=tracebacks))
    handler.addFilter(RedactSecrets())
    setattr(handler, _OURS, True)
    logging.getLogger().addHandler(handler)


def configure(level: str = "warning", fmt: str = "text") -> None:
    """Log to stderr at `level` in `fmt`; replaces whatever an earlier call installed."""
    global _current
    _current = LogOptions(level, fmt)
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, _OURS, False)]:
        root.removeHandler(handler)
        handler.close()
    # below warning, minitrade's own loggers must let the records through; the handlers filter the rest
    ours = logging.getLogger("minitrade")
    ours.setLevel(level.upper() if logging.getLevelName(level.upper()) < logging.WARNING else logging.NOTSET)
    _install(_Stderr(), _current, tracebacks=level.lower() == "debug")


def configure_daemon_logging(state_dir: Path, level: str | None = None, fmt: str | None = None) -> Path:
    """Also write `<state_dir>/logs/daemon.log` (rotated at 10 MB, 5 kept), in the same format; returns it."""
    from logging.handlers import RotatingFileHandler  # only the daemon needs it (CLI start-up stays cheap)

    options = LogOptions(level or _current.level, fmt or _current.fmt)
    if options != _current:
        configure(options.level, options.fmt)
    path = state_dir / LOG_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    _install(RotatingFileHandler(path, maxBytes=MAX_BYTES, backupCount=BACKUPS, encoding="utf-8"), options)
    return path


_HEADER = re.compile(r"^(?P<time>\d{4}-\d\d-\d\dT\S+) (?P<level>DEBUG|INFO|WARNING|ERROR|CRITICAL) (?P<logger>\S+) "
                     r"(?:\[(?P<fields>(?:plan|run_id|commit)=[^\]]*)\] )?(?P<message>.*)$")


def parse_line(line: str) -> dict[str, Any] | None:
    """The record a log line starts (either format), or None for a continuation line (a traceback)."""
    text = line.rstrip("\n")
    if text.startswith("{"):
        try:
            doc = json.loads(text)
        except ValueError:
            return None
        return doc if isinstance(doc, dict) and {"time", "level", "message"} <= doc.keys() else None
    match = _HEADER.match(text)
    if match is None:
        return None
    record: dict[str, Any] = {"time": match["time"], "level": match["level"], "logger": match["logger"],
                              "message": match["message"]}
    for pair in (match["fields"] or "").split():
        key, _, value = pair.partition("=")
        record[key] = value
    return record
