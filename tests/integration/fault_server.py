"""A misbehaving HTTP server, one fault at a time, for the fault suite.

Every backend the console talks to (Kubernetes, Prometheus, health endpoints,
Slack, ECS) gets pointed at one of these and must answer with a sentence
naming the backend, within its time bound, having done nothing half-way:

- `silent`: accepts the connection, reads the request, never answers;
- `trickle`: answers 200 and then one byte of body every 0.1 s, forever;
- `trickle_headers`: sends the status line and headers one byte every 0.1 s;
- `garbage`: answers bytes that are not HTTP, then closes;
- `wrong_shape`: answers 200 with a JSON body of the wrong shape (`body`);
- `huge`: answers 200 with an endless JSON body, as fast as it can;
- `error500`: answers HTTP 500 with a short JSON body;
- `reset`: reads the request and resets the connection (RST).

It records the request heads it received (`requests`: request line and
headers), so a test can say that no change was sent.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

MODES = ("silent", "trickle", "trickle_headers", "garbage", "wrong_shape", "huge", "error500", "reset")


@dataclass
class FaultyServer:
    """One listening socket misbehaving in `mode`."""

    mode: str
    body: bytes = b"42"
    port: int = 0
    requests: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _conns: list[socket.socket] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def methods(self) -> list[str]:
        return [line.split(" ", 1)[0] for line in self.requests]

    def _serve(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(5)
            head = b""
            while b"\r\n\r\n" not in head and len(head) < 65536:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                head += chunk
            self.requests.append(head.decode("latin-1"))
            conn.settimeout(None)
            getattr(self, f"_{self.mode}")(conn)
        except OSError:
            pass
        finally:
            if self.mode != "silent":
                try:
                    conn.close()
                except OSError:
                    pass

    def _silent(self, conn: socket.socket) -> None:
        self._stop.wait()

    def _trickle(self, conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n")
        self._drip(conn, b'{"status": "' + b"x" * 99986 + b'"}')

    def _trickle_headers(self, conn: socket.socket) -> None:
        self._drip(conn, b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + b"X-Slow: " + b"y" * 5000 + b"\r\n\r\n{}")

    def _drip(self, conn: socket.socket, data: bytes) -> None:
        for i in range(len(data)):
            if self._stop.wait(0.1):
                return
            conn.sendall(data[i : i + 1])

    def _garbage(self, conn: socket.socket) -> None:
        conn.sendall(b"\x00\xff garbage \x13\x37 not http at all\r\n\r\n")

    def _wrong_shape(self, conn: socket.socket) -> None:
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
            + f"Content-Length: {len(self.body)}\r\n\r\n".encode()
            + self.body
        )

    def _huge(self, conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n")
        conn.sendall(b'{"metadata": {}, "items": ["')
        filler = b"z" * (1 << 20)
        while not self._stop.is_set():
            conn.sendall(filler)

    def _error500(self, conn: socket.socket) -> None:
        body = b'{"kind": "Status", "status": "Failure", "message": "internal error", "code": 500}'
        conn.sendall(
            b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\nConnection: close\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )

    def _reset(self, conn: socket.socket) -> None:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


@pytest.fixture
def faulty_server() -> Iterator:
    """`faulty_server(mode, body=b"...")` starts a misbehaving server; all are
    stopped at the end of the test."""
    servers: list[tuple[FaultyServer, socket.socket, threading.Thread]] = []

    def start(mode: str, body: bytes = b"42") -> FaultyServer:
        assert mode in MODES, mode
        server = FaultyServer(mode, body)
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        listener.settimeout(0.05)
        server.port = listener.getsockname()[1]

        def accept() -> None:
            while not server._stop.is_set():
                try:
                    conn, _ = listener.accept()
                except (TimeoutError, OSError):
                    continue
                server._conns.append(conn)
                threading.Thread(target=server._serve, args=(conn,), daemon=True).start()

        thread = threading.Thread(target=accept, daemon=True)
        thread.start()
        servers.append((server, listener, thread))
        return server

    yield start
    for server, listener, thread in servers:
        server._stop.set()
        thread.join(timeout=2)
        for conn in server._conns:
            try:
                conn.close()
            except OSError:
                pass
        listener.close()


def elapsed(started: float) -> float:
    """Seconds since `started` (time.monotonic())."""
    return time.monotonic() - started
