"""The drill world's one HTTP server (127.0.0.1, a random port by default).

It serves, side by side:

- the Kubernetes REST API at the root (`kube_api.KubeApi`), so kubectl and the
  official client work against the drill unchanged;
- the Prometheus query API under `/prometheus` and a scrape target at
  `/metrics` (`prom_api.PromApi`);
- health endpoints `GET /health/NAME` (200 healthy / 503 unhealthy);
- the Amazon ECS API (`ecs_api.EcsApi`, AWS JSON 1.1) under `/ecs` and at
  `POST /` with an `X-Amz-Target: AmazonEC2ContainerServiceV20141113.*` header;
- a Slack webhook sink: `POST /slack/webhook/TOKEN` records the JSON body,
  `GET /slack/messages` lists what was recorded (tokens are never recorded
  nor logged);
- `GET /drill/state`: the scenario, simulated time, facts and notes.
- `GET /drill/requests`: the request log, as (method, path, status) lists.
- `POST /drill/control`: a trainer's control (pause, resume, speed, note,
  facts, outage), see `console/drill/control.py`.

Every request lands in `DrillServer.requests` as (method, path, status) so
benchmarks can count them; nothing is written to stderr per request.
"""

from __future__ import annotations

import json
import signal
import socket
import threading
import traceback
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

import yaml

from console.drill import migrations_api
from console.drill.ecs_api import EcsApi, is_ecs_request
from console.drill.kube_api import KubeApi, Response
from console.drill.prom_api import PromApi
from console.drill.world import World

IDLE_CONNECTION_TIMEOUT = 60.0
"""Seconds a kept-alive connection may sit idle before the server closes it."""
REQUEST_READ_TIMEOUT = 10.0
"""Seconds a client has to send the rest of a request (headers and body) once
its first line arrived: a client that trickles or stops half-way is cut off,
and its thread freed."""
MAX_BODY_BYTES = 8 * 1024 * 1024
"""The largest request body the drill accepts (413 beyond: a real apiserver's limit is 3 MiB)."""
SLACK_PREFIX = "/slack/webhook/"
REDACTED = "/slack/webhook/[redacted]"


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    # socketserver listens with a backlog of 5: a console opening tens of
    # connections at once (its first cycle) had the rest of its SYNs dropped
    # and retried a second later. Real API servers listen with the system's
    # maximum (Go's net/http: somaxconn), and so does the drill.
    request_queue_size = 4096

    def __init__(self, address: tuple[str, int], drill: DrillServer) -> None:
        self.drill = drill
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that goes away mid-request is normal (watch streams, timeouts).
        pass


class _BadRequest(Exception):
    """A request the HTTP layer cannot read: answered 4xx, the connection closed."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "drill-world"
    sys_version = ""
    timeout = IDLE_CONNECTION_TIMEOUT
    server: _HttpServer

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_OPTIONS(self) -> None:
        self._dispatch("OPTIONS")

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        finally:
            self._end_read_deadline()

    def parse_request(self) -> bool:
        # The first line arrived: the rest of the request must follow within
        # REQUEST_READ_TIMEOUT in total, or the connection is cut.
        from console.platforms import bounded

        self._read_deadline = bounded.bounded(REQUEST_READ_TIMEOUT)
        self._read_deadline.__enter__().track(self.connection)
        words = self.raw_requestline.decode("latin-1", "replace").split()
        if len(words) == 2:  # HTTP/0.9 ("GET /"): no headers would ever come
            self.close_connection = True
            self.request_version = "HTTP/1.1"
            self.command, self.path = words
            self.requestline = " ".join(words)
            self.send_error(400, "HTTP/0.9 is not supported: send an HTTP/1.x request")
            return False
        return super().parse_request()

    def _end_read_deadline(self) -> None:
        deadline = getattr(self, "_read_deadline", None)
        if deadline is not None:
            self._read_deadline = None
            deadline.__exit__(None, None, None)

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            data = bytearray()
            while True:
                line = self.rfile.readline(1024)
                try:
                    size = int(line.split(b";")[0].strip() or b"0", 16)
                except ValueError:
                    raise _BadRequest(400, "the chunk size is not a hexadecimal number") from None
                if size < 0:
                    raise _BadRequest(400, "the chunk size is negative")
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(data)
                if len(data) + size > MAX_BODY_BYTES:
                    raise _BadRequest(413, f"the request body is larger than {MAX_BODY_BYTES} bytes")
                chunk = self.rfile.read(size)
                if len(chunk) < size:
                    raise _BadRequest(400, "the request body ended early")
                data += chunk
                self.rfile.readline(1024)
        raw = self.headers.get("Content-Length")
        try:
            length = int(raw) if raw is not None else 0
        except ValueError:
            raise _BadRequest(400, "Content-Length is not a whole number") from None
        if length < 0:
            raise _BadRequest(400, "Content-Length is negative")
        if length > MAX_BODY_BYTES:
            raise _BadRequest(413, f"the request body is larger than {MAX_BODY_BYTES} bytes")
        body = self.rfile.read(length) if length > 0 else b""
        if len(body) < length:
            raise _BadRequest(400, "the request body ended before Content-Length bytes")
        return body

    def _dispatch(self, method: str) -> None:
        drill = self.server.drill
        split = urlsplit(self.path)
        path = split.path or "/"
        logged_path = REDACTED if path.startswith(SLACK_PREFIX) else path
        try:
            body = self._read_body()
        except (_BadRequest, OSError) as err:
            # Cut off by the read deadline, or unreadable: nothing was done; close the connection.
            self._end_read_deadline()
            self.close_connection = True
            status = err.status if isinstance(err, _BadRequest) else 408
            drill._log(method, logged_path, status)
            self._write(Response(status, {"Content-Type": "application/json", "Connection": "close"},
                                 json.dumps({"error": str(err) or "the request was not complete in time"}).encode()),
                        head=method == "HEAD")
            return
        self._end_read_deadline()
        try:
            query = parse_qs(split.query, keep_blank_values=True)
            headers = {k: v for k, v in self.headers.items()}
            response = drill.route(method, path, query, headers, body)
        except Exception:  # the drill answers 500 instead of dropping the connection
            drill.last_error = traceback.format_exc()
            response = Response(500, {"Content-Type": "application/json"}, json.dumps({"error": "the drill world failed on this request; see DrillServer.last_error"}).encode())
        drill._log(method, logged_path, response.status)
        if response.stream is not None:
            self._write_stream(response)
        else:
            self._write(response, head=method == "HEAD")

    def _write(self, response: Response, head: bool) -> None:
        body = response.body or b""
        lines = [f"HTTP/1.1 {response.status} {_reason(response.status)}"]
        headers = dict(response.headers)
        headers.setdefault("Content-Type", "application/json")
        headers["Content-Length"] = str(len(body))
        headers["Date"] = self.date_time_string()
        lines += [f"{k}: {v}" for k, v in headers.items()]
        payload = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (b"" if head else body)
        try:
            self.wfile.write(payload)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _write_stream(self, response: Response) -> None:
        stream = response.stream
        assert stream is not None
        headers = dict(response.headers)
        headers.setdefault("Content-Type", "application/json")
        headers["Transfer-Encoding"] = "chunked"
        headers["Date"] = self.date_time_string()
        head = f"HTTP/1.1 {response.status} {_reason(response.status)}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        try:
            self.wfile.write(head.encode("latin-1"))
            self.wfile.flush()
            for chunk in stream:
                if not chunk:
                    continue
                self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()


def _reason(status: int) -> str:
    return BaseHTTPRequestHandler.responses.get(status, ("",))[0] or "Unknown"


class DrillServer:
    """Serves a World over HTTP on `host:port` (port 0: a free one)."""

    def __init__(self, world: World, host: str = "127.0.0.1", port: int = 0) -> None:
        self.world = world
        self.kube = KubeApi(world)
        self.prom = PromApi(world)
        self.ecs = EcsApi(world)
        self.requests: list[tuple[str, str, int]] = []
        self.slack_messages: list[dict] = []
        self.last_error: str | None = None
        self._lock = threading.Lock()
        self._httpd = _HttpServer((host, port), self)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The base URL, e.g. http://127.0.0.1:43121 (no trailing slash)."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> DrillServer:
        """Serve in a background daemon thread; returns self."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1}, name="drill-server", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> DrillServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _log(self, method: str, path: str, status: int) -> None:
        with self._lock:
            self.requests.append((method, path, status))

    def clear_requests(self) -> None:
        """Forget the request log (benchmarks count from a clean slate)."""
        with self._lock:
            self.requests.clear()

    # -- routing -----------------------------------------------------------

    def route(self, method: str, path: str, query: dict[str, list[str]], headers: dict[str, str], body: bytes) -> Response:
        """Answer one request (the HTTP layer calls this; tests may too)."""
        if path == "/metrics" or path == "/prometheus" or path.startswith("/prometheus/"):
            return self.prom.handle(method, path, query, headers, body)
        if path.startswith("/health/"):
            return self._health(method, path[len("/health/"):])
        if path.startswith(migrations_api.PREFIX) and method in ("GET", "HEAD"):
            return _json(*migrations_api.ledger(self.world, path[len(migrations_api.PREFIX):].strip("/")))
        if path.startswith(SLACK_PREFIX):
            return self._slack_post(method, body)
        if path == "/slack/messages":
            with self._lock:
                return _json(200, {"messages": list(self.slack_messages)})
        if path == "/drill/state":
            self.world.advance()
            return _json(200, self.world.state())
        if path == "/drill/control":
            return self._control(method, body)
        if path == "/drill/requests":
            # Read-only: what was asked of the drill so far, e.g. to prove a rollback was issued once.
            with self._lock:
                return _json(200, {"requests": [list(r) for r in self.requests]})
        if is_ecs_request(method, path, headers):
            return self.ecs.handle(method, path, query, headers, body)
        return self.kube.handle(method, path, query, headers, body)

    def _control(self, method: str, body: bytes) -> Response:
        """A trainer's control (console.drill.control): 200 with what was done, 400 with why not."""
        from console.drill import control

        if method != "POST":
            return _json(405, {"error": "use POST with a JSON body, e.g. {\"action\": \"pause\"}"})
        try:
            return _json(200, control.apply(self.world, control.parse_body(body)))
        except control.ControlError as err:
            return _json(400, {"error": str(err)})

    def _health(self, method: str, name: str) -> Response:
        if method not in ("GET", "HEAD"):
            return _json(405, {"status": "error", "error": "use GET"})
        self.world.advance()
        status, body = self.world.health(name.strip("/"))
        return _json(status, body)

    def _slack_post(self, method: str, body: bytes) -> Response:
        if method != "POST":
            return Response(405, {"Content-Type": "text/plain"}, b"invalid_method")
        try:
            payload = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            return Response(400, {"Content-Type": "text/plain"}, b"invalid_payload")
        if not isinstance(payload, dict) or not (payload.get("text") or payload.get("blocks") or payload.get("attachments")):
            return Response(400, {"Content-Type": "text/plain"}, b"no_text")
        with self._lock:
            self.slack_messages.append({"received_at": datetime.now(timezone.utc).isoformat(), "drill_time": self.world.now.isoformat(), "payload": payload})
        return Response(200, {"Content-Type": "text/plain"}, b"ok")


def _json(status: int, data: Any) -> Response:
    return Response(status, {"Content-Type": "application/json"}, json.dumps(data).encode())


def write_kubeconfig(path: str | Path, server_url: str, namespace: str) -> Path:
    """Write a kubeconfig for the drill: cluster "drill" (plain http), user
    "drill-trainee", context "drill" with `namespace`, made current."""
    path = Path(path)
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [{"name": "drill", "cluster": {"server": server_url}}],
        "users": [{"name": "drill-trainee", "user": {"token": "drill-trainee"}}],
        "contexts": [{"name": "drill", "context": {"cluster": "drill", "user": "drill-trainee", "namespace": namespace}}],
        "current-context": "drill",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    path.chmod(0o600)
    return path


def serve_forever_until_signal(server: DrillServer, on_ready: Callable[[DrillServer], None] | None = None) -> None:
    """Serve until SIGINT or SIGTERM (the CLI's `drill --serve-only`), then stop.

    Must run in the main thread (signal handlers)."""
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.start()
        if on_ready is not None:
            on_ready(server)
        while not stop.wait(0.5):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        server.stop()
