"""A local HTTP endpoint for Apprise's `json://` (and `form://`) notifications; records what arrived.

Point a notifier at `sink.url("hook")` (``json://127.0.0.1:PORT/hook``) and read `sink.posts`.
`sink.fail(status)` makes it answer with an error until `sink.recover()`, so tests and people
rehearsing can see how a failing notifier is handled. It imports nothing from minitrade, so a bug
in the sender cannot be mirrored here.

    with AppriseSink() as sink:
        ...  # send through apprise to sink.url()
        assert sink.posts[0].json["message"] == "..."
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs


@dataclass(frozen=True)
class Post:
    """One request as received: path, headers and the raw and decoded body."""

    path: str
    headers: dict[str, str]
    body: bytes
    json: dict[str, Any] | None = None
    form: dict[str, str] = field(default_factory=dict)

    @property
    def title(self) -> str:
        return str((self.json or self.form).get("title", ""))

    @property
    def message(self) -> str:
        return str((self.json or self.form).get("message", ""))

    @property
    def type(self) -> str:
        return str((self.json or self.form).get("type", ""))


class AppriseSink:
    """A ThreadingHTTPServer on 127.0.0.1, port chosen by the OS, recording POST bodies."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._lock = threading.Lock()
        self._posts: list[Post] = []
        self._fail_status: int | None = None
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> AppriseSink:
        self._thread = threading.Thread(target=self._server.serve_forever, name="apprise-sink",
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> AppriseSink:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # -- what tests use --------------------------------------------------------------------
    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def url(self, path: str = "", scheme: str = "json") -> str:
        """An Apprise URL that posts here, e.g. ``json://127.0.0.1:PORT/path``."""
        return f"{scheme}://127.0.0.1:{self.port}/{path.lstrip('/')}"

    @property
    def posts(self) -> list[Post]:
        with self._lock:
            return list(self._posts)

    def clear(self) -> None:
        with self._lock:
            self._posts.clear()

    def fail(self, status: int = 500) -> None:
        """Answer every request with `status` (still recording it) until `recover()`."""
        with self._lock:
            self._fail_status = status

    def recover(self) -> None:
        with self._lock:
            self._fail_status = None

    # -- the handler -----------------------------------------------------------------------
    def _record(self, post: Post) -> int:
        with self._lock:
            self._posts.append(post)
            return self._fail_status or 200

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                kind = (self.headers.get("Content-Type") or "").split(";")[0].strip()
                decoded: dict[str, Any] | None = None
                form: dict[str, str] = {}
                if kind == "application/json":
                    try:
                        loaded = json.loads(body.decode("utf-8"))
                        decoded = loaded if isinstance(loaded, dict) else {"value": loaded}
                    except (UnicodeDecodeError, json.JSONDecodeError):
                        decoded = None
                elif kind == "application/x-www-form-urlencoded":
                    form = {k: v[-1] for k, v in parse_qs(body.decode("utf-8")).items()}
                status = sink._record(Post(path=self.path, headers=dict(self.headers.items()),
                                           body=body, json=decoded, form=form))
                reply = b'{"ok": true}' if status < 400 else b'{"ok": false}'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:
                return  # keep test output quiet; the posts are the record

        return Handler


def closed_port_url(path: str = "", scheme: str = "json") -> str:
    """An Apprise URL to a port nothing listens on: a dead endpoint for failure tests."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"{scheme}://127.0.0.1:{port}/{path.lstrip('/')}"
