"""The HTTP receiver of Alertmanager's webhooks (standard library only).

    POST /alertmanager  Authorization: Bearer TOKEN, body: payload version 4
        401 missing or wrong token, 411 no Content-Length, 413 body too large,
        400 not a valid payload, 503 standby (not the leader: Alertmanager
        retries, and through a Service reaches the leader), 200 accepted.
    GET /healthz        200 "ok"
    GET /metrics        the autopilot's counters (Prometheus text format)

Every error is a JSON object with one sentence: {"error": "..."}. Nothing is
logged about the request's headers (the token).
"""

from __future__ import annotations

import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from console.autopilot.payload import PayloadError, parse
from console.autopilot.pilot import Autopilot

READ_TIMEOUT = 10.0
"""Seconds a client may take to send its request before the connection is closed."""


class _Handler(BaseHTTPRequestHandler):
    server: "Receiver"
    timeout = READ_TIMEOUT
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet, and never the headers
        pass

    def _answer(self, status: int, body: dict | str, content_type: str = "application/json") -> None:
        data = (json.dumps(body) if isinstance(body, dict) else body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        if status == 401:
            self.send_header("WWW-Authenticate", 'Bearer realm="rollback-console autopilot"')
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, sentence: str) -> None:
        self._answer(status, {"error": sentence})

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            self._answer(200, "ok\n", "text/plain")
        elif path == "/metrics":
            pilot = self.server.pilot
            self._answer(200, pilot.counters.render(pilot.is_leader()), "text/plain; version=0.0.4")
        else:
            self._error(404, "Not found: the autopilot answers POST /alertmanager, GET /healthz and GET /metrics.")

    def do_POST(self) -> None:  # noqa: N802
        try:
            self._post()
        except Exception:  # a bug must not become a traceback on the wire nor kill the server
            self.close_connection = True
            try:
                self._error(500, "The autopilot failed to handle this notification; see its log.")
            except OSError:
                pass

    def _post(self) -> None:
        if self.path.split("?", 1)[0] != "/alertmanager":
            self.close_connection = True
            self._error(404, "Not found: send Alertmanager's webhooks to POST /alertmanager.")
            return
        if not self._authorized():
            self.close_connection = True
            self._error(401, "Missing or wrong bearer token: set http_config.authorization in Alertmanager's receiver.")
            return
        length = self.headers.get("Content-Length")
        if length is None or not length.strip().isdigit():
            self.close_connection = True
            self._error(411, "A Content-Length header is required.")
            return
        size = int(length)
        if size > self.server.max_body_bytes:
            self.close_connection = True
            self._error(413, f"The body is larger than {self.server.max_body_bytes} bytes "
                             "(autopilot.max_body_bytes); send smaller notification groups.")
            return
        body = self.rfile.read(size)
        try:
            notification = parse(body)
        except PayloadError as err:
            self._error(400, str(err))
            return
        pilot = self.server.pilot
        if not pilot.is_leader():
            self._error(503, "This autopilot is on standby (another holds the lease); Alertmanager retries.")
            return
        accepted = pilot.accept(notification)
        self._answer(200, {"queued": accepted.queued, "duplicates": accepted.duplicates,
                           "ignored": accepted.ignored, "resolved": accepted.resolved})

    def _authorized(self) -> bool:
        header = self.headers.get("Authorization") or ""
        scheme, _, given = header.partition(" ")
        expected = self.server.token
        return (scheme.lower() == "bearer" and bool(given)
                and hmac.compare_digest(given.strip().encode(), expected.encode()))


class Receiver(ThreadingHTTPServer):
    """The autopilot's HTTP server; `serve_in_thread()` then `close()`."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 4096  # not socketserver's 5: a burst of notifications is not turned away for a second

    def __init__(self, address: tuple[str, int], pilot: Autopilot, token: str, max_body_bytes: int) -> None:
        super().__init__(address, _Handler)
        self.pilot = pilot
        self.token = token
        self.max_body_bytes = max_body_bytes
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def serve_in_thread(self) -> None:
        self._thread = threading.Thread(target=self.serve_forever, name="autopilot-http", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.shutdown()
        self.server_close()
