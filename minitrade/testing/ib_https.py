"""HTTPS plumbing of the fake IB gateway: TLS certificates, a threaded server, fault injection.

The handler asks the gateway object (duck-typed: `take_fault(method, path, body)` and
`dispatch(method, raw_path, body)`) for each answer, then applies the fault on the wire: a status
code, a dropped socket before or after the request was applied, a late answer, or a broken body.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import ssl
import subprocess
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

_FAULT_BODIES = {500: "Internal Server Error", 503: "Service Unavailable", 429: "Too Many Requests",
                 401: "not authenticated"}


def tls_material(directory: Path, ca_pem: Path) -> tuple[str, str]:
    """Write a server certificate for localhost/127.0.0.1 and the CA that signed it.

    trustme when installed (the test extra); otherwise a self-signed certificate from openssl,
    which is then its own CA. Returns (certificate chain file, private key file).
    """
    try:
        import trustme
    except ImportError:
        cert, key = directory / "server.pem", directory / "server.key"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                        "-out", str(cert), "-days", "30", "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                       check=True, capture_output=True)
        ca_pem.write_bytes(cert.read_bytes())
        return str(cert), str(key)
    ca = trustme.CA()
    leaf = ca.issue_cert("localhost", "127.0.0.1")
    ca.cert_pem.write_to_path(str(ca_pem))
    chain = directory / "server.pem"
    leaf.private_key_and_cert_chain_pem.write_to_path(str(chain))
    return str(chain), str(chain)


class TLSServer(ThreadingHTTPServer):
    """Threaded HTTP server doing the TLS handshake in each connection's own thread."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], context: ssl.SSLContext, gateway: Any) -> None:
        self.context, self.gateway = context, gateway
        super().__init__(address, _Handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        try:
            request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)   # headers and body go as 2 writes
            tls = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        try:
            self.RequestHandlerClass(tls, client_address, self)  # type: ignore[arg-type]
        except (ssl.SSLError, OSError):
            pass
        finally:
            tls.close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 30
    server: TLSServer

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if "application/x-www-form-urlencoded" in self.headers.get("Content-Type", ""):
            return {k: v[0] for k, v in parse_qs(raw.decode()).items()}
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            return raw.decode(errors="replace")

    def _serve(self, method: str) -> None:
        body = self._body()
        gateway = self.server.gateway
        path = re.sub(r"^/v1/(api|portal)", "", urlsplit(self.path).path).rstrip("/") or "/"
        fault = gateway.take_fault(method, path, body)
        if fault == "drop_before":
            return self._drop()
        if fault in ("500", "503", "429", "401"):
            code = int(fault)
            return self._send(code, json.dumps({"error": _FAULT_BODIES[code], "statusCode": code}).encode(),
                              "application/json")
        if fault == "no_bridge":    # the gateway's link to IB's servers is down: nothing reaches IB
            return self._send(400, json.dumps({"error": "Bad Request: no bridge", "statusCode": 400}).encode(),
                              "application/json")
        if fault == "html":
            return self._send(200, b"<html><body><h1>Service temporarily unavailable</h1></body></html>",
                              "text/html")
        if fault == "malformed":
            return self._send(200, b'{"orders": [', "application/json")
        status, payload, content_type = gateway.dispatch(method, self.path, body)
        if fault == "drop_after":
            return self._drop()
        if fault and fault.startswith("latency:"):
            time.sleep(float(fault.split(":", 1)[1]))
        if fault and fault.startswith("strip:") and isinstance(payload, list):  # rows missing a field
            field = fault.split(":", 1)[1]
            payload = [{k: v for k, v in row.items() if k != field} if isinstance(row, dict) else row
                       for row in payload]
        if content_type == "redirect":
            self.send_response(status)
            self.send_header("Location", str(payload))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        return self._send(status, data, content_type)

    def _send(self, status: int, data: bytes, content_type: str) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            self.close_connection = True

    def _drop(self) -> None:
        """Close the connection without a byte of response, as a crashed gateway or proxy would."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)
