"""Push webhooks for a remote-source daemon: a signed POST makes it fetch at once.

Signed the way GitHub signs them: header `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw
body with the shared secret>` (Gitea and Forgejo send the same header). Anything unsigned, wrongly
signed, too large or not a POST is refused and logged; nothing in a request is trusted beyond
"something was pushed": the daemon fetches and the pass decides, exactly as on its interval.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from pydantic import SecretStr

from minitrade.errors import ConfigError, ConfigIssue

log = logging.getLogger("minitrade.webhook")
MAX_BODY = 1 << 20  # GitHub caps payloads at 25 MB; a push of a trading repo is a few KB
SIGNATURE_HEADER = "X-Hub-Signature-256"


def parse_address(text: str) -> tuple[str, int]:
    """`HOST:PORT` (or `:PORT` for every interface) -> (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(ConfigIssue("--webhook", None, "", f"{text!r} is not HOST:PORT", "e.g. 127.0.0.1:8080"))
    return host.strip("[]") or "0.0.0.0", int(port)


def signature(secret: SecretStr, body: bytes) -> str:
    """The header value a sender computes for `body`."""
    return "sha256=" + hmac.new(secret.get_secret_value().encode(), body, hashlib.sha256).hexdigest()


def pushed_branch(body: bytes) -> str | None:
    """The branch a push event names (`ref: refs/heads/<branch>`), or None when it names none."""
    try:
        ref = json.loads(body).get("ref")
    except (ValueError, AttributeError):
        return None
    return ref.removeprefix("refs/heads/") if isinstance(ref, str) and ref.startswith("refs/heads/") else None


class WebhookServer:
    """A small HTTP server on its own thread; `on_push()` runs for each correctly signed push of `branch`."""

    def __init__(self, address: tuple[str, int], secret: SecretStr, branch: str,
                 on_push: Callable[[], None]) -> None:
        self._secret, self._branch, self._on_push = secret, branch, on_push
        self._server = ThreadingHTTPServer(address, self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="webhook", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()
        log.info("webhook listening on %s:%s", *self._server.server_address[:2])

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def accept(self, headers: dict[str, str], body: bytes) -> tuple[HTTPStatus, str]:
        """Judge one request: (status, short reason). Signature first, so nothing unsigned is parsed."""
        given = headers.get(SIGNATURE_HEADER.lower(), "")
        if not given:
            return HTTPStatus.UNAUTHORIZED, "unsigned request refused"
        if not hmac.compare_digest(given.encode(), signature(self._secret, body).encode()):
            return HTTPStatus.UNAUTHORIZED, "wrong signature refused"
        event = headers.get("x-github-event", "push")
        if event == "ping":
            return HTTPStatus.OK, "ping"
        branch = pushed_branch(body)
        if branch is not None and branch != self._branch:
            return HTTPStatus.ACCEPTED, f"push to {branch} ignored (following {self._branch})"
        self._on_push()
        return HTTPStatus.ACCEPTED, "push: fetching now"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY:
                    self._answer(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "payload too large")
                    return
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, reason = server.accept(headers, body)
                self._answer(status, reason)

            def do_GET(self) -> None:
                self._answer(HTTPStatus.METHOD_NOT_ALLOWED, "POST a push event")

            def _answer(self, status: HTTPStatus, reason: str) -> None:
                level = logging.INFO if status < 400 else logging.WARNING
                log.log(level, "webhook from %s: %s %s", self.client_address[0], int(status), reason)
                payload = (reason + "\n").encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: object) -> None:
                return  # every request is logged once by _answer, through the one logging setup

        return Handler
