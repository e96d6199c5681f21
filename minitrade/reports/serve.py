"""`minitrade serve`: the report site over HTTP on 127.0.0.1 only, with the standard library's server.

Pages reload themselves after each publish (`assets/live.js` polls `version.txt`), so a browser
left open on a plan shows the latest run without a server framework. Only files under the site's
folder are served (http.server refuses paths that leave it); `version.txt` and pages are sent with
`Cache-Control: no-store` so a reload always gets the new files.

    server = site_server(Path("state/reports"), port=8000)
    server.serve_forever()
"""

from __future__ import annotations

import logging
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from minitrade.errors import ConfigError, ConfigIssue

HOST = "127.0.0.1"  # never another interface: the site shows positions and P&L
log = logging.getLogger("minitrade.report")


class _Handler(SimpleHTTPRequestHandler):
    """Static files of the site; no directory listings, no caching, access lines at debug level."""

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        super().end_headers()

    def list_directory(self, path: Any) -> None:
        self.send_error(404, "not found")
        return None

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("serve: %s %s", self.address_string(), format % args)


def site_server(folder: Path, *, port: int = 8000) -> ThreadingHTTPServer:
    """A server of `folder` bound to 127.0.0.1:`port` (0: any free port; see `server.server_address`)."""
    if not (folder / "index.html").is_file():
        raise ConfigError(ConfigIssue(str(folder), None, "", "no report site here yet",
                                      "run `minitrade report` (or let the daemon run a plan) first"))
    handler = partial(_Handler, directory=str(folder))
    try:
        return ThreadingHTTPServer((HOST, port), handler)
    except OSError as e:
        raise ConfigError(ConfigIssue("--port", None, "", f"cannot listen on {HOST}:{port}: {e.strerror or e}",
                                      "choose another port, e.g. --port 8001")) from e
