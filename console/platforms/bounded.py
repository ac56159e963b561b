"""Total-time and size bounds for blocking HTTP requests made through urllib3
(the official Kubernetes client).

urllib3's timeouts are per phase and per read: a server that sends one byte a
second never trips a 10 s read timeout, so one request can last forever. A
`Bound` gives a request (or a few, made by one thread) a deadline for the
whole exchange and a cap on the bytes read: a watchdog thread shuts the
sockets down when the deadline passes (a blocked read then returns at once),
and the response reader refuses to read past the cap. The caller turns the
resulting connection error into its own sentence by asking `bound.expired`
and `bound.too_large`.

Install it on a urllib3 PoolManager with `install(pool_manager)`; requests
made outside a `Bound` behave exactly as before.

Requests made with aiohttp (the refresh cycle's) get their deadline from
`asyncio.timeout` and read their answer through `read_capped`.
"""

from __future__ import annotations

import functools
import socket
import threading
import time
from contextlib import contextmanager
from typing import Any, Iterator

MAX_RESPONSE_BYTES = 64 * 1024 * 1024
"""The most a backend's answer may weigh (64 MiB: a list of thousands of pods is a few MB)."""

_local = threading.local()
_lock = threading.Condition()
_active: set[Bound] = set()
_watchdog: threading.Thread | None = None


class ResponseTooLarge(OSError):
    """The answer passed the size cap (an OSError, so the HTTP client wraps it
    like any broken connection)."""


class Bound:
    """The deadline and the size cap of the requests one thread makes inside
    `bounded()`."""

    def __init__(self, seconds: float, max_bytes: int) -> None:
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds
        self.max_bytes = max_bytes
        self.read = 0
        self.expired = False
        self.too_large = False
        self.closed = False
        self._sockets: list[socket.socket] = []

    def track(self, sock: Any) -> None:
        """Cut `sock` when the deadline passes (at once if it already has)."""
        if sock is None:
            return
        with _lock:
            if not any(s is sock for s in self._sockets):
                self._sockets.append(sock)
            if self.expired:
                _cut(sock)

    def count(self, n: int) -> None:
        self.read += n
        if self.read > self.max_bytes:
            self.too_large = True
            raise ResponseTooLarge(f"the answer is larger than {self.max_bytes} bytes")


@contextmanager
def bounded(seconds: float, max_bytes: int | None = None) -> Iterator[Bound]:
    """Bound every request this thread makes inside the block (through a pool
    manager `install`ed here) to `seconds` in total and `max_bytes` read
    (default MAX_RESPONSE_BYTES)."""
    bound = Bound(seconds, max_bytes or MAX_RESPONSE_BYTES)
    previous = getattr(_local, "bound", None)
    _local.bound = bound
    with _lock:
        _active.add(bound)
        _start_watchdog()
        _lock.notify_all()
    try:
        yield bound
    finally:
        bound.closed = True
        # A generator may leave its bound after the caller's ended: never go back to a closed one.
        _local.bound = previous if previous is not None and not previous.closed else None
        # Under the lock: the watchdog never cuts a socket after its bound ended
        # (the connection may already serve someone else's request).
        with _lock:
            _active.discard(bound)
            bound._sockets.clear()


def current() -> Bound | None:
    """The bound of this thread's requests, if any."""
    bound = getattr(_local, "bound", None)
    return bound if bound is not None and not bound.closed else None


async def read_capped(content: Any, max_bytes: int) -> bytes | None:
    """An aiohttp response's body (`response.content`), read a piece at a
    time; None as soon as it passes `max_bytes` (the rest is not read)."""
    body = bytearray()
    while chunk := await content.read(65536):
        body += chunk
        if len(body) > max_bytes:
            return None
    return bytes(body)


def _cut(sock: Any) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _start_watchdog() -> None:
    global _watchdog
    if _watchdog is None or not _watchdog.is_alive():
        _watchdog = threading.Thread(target=_watch, name="request-deadlines", daemon=True)
        _watchdog.start()


def _watch() -> None:
    with _lock:
        while True:
            now = time.monotonic()
            waiting = [b for b in _active if not b.expired]
            for bound in waiting:
                if bound.deadline <= now:
                    bound.expired = True
                    for sock in bound._sockets:
                        _cut(sock)
            pending = [b.deadline for b in _active if not b.expired]
            _lock.wait(timeout=max(0.01, min(pending) - now) if pending else None)


class _CappedReader:
    """The socket file an http.client response reads from, counting bytes
    against the thread's bound."""

    def __init__(self, fp: Any, bound: Bound) -> None:
        self._fp = fp
        self._bound = bound

    def read(self, size: int | None = -1) -> bytes:
        if size is not None and size >= 0:
            data = self._fp.read(size)
            self._bound.count(len(data))
            return data
        # "Read to the end" in pieces, so an endless answer hits the cap.
        parts = []
        while chunk := self._fp.read(65536):
            self._bound.count(len(chunk))
            parts.append(chunk)
        return b"".join(parts)

    def read1(self, *args: Any) -> bytes:
        data = self._fp.read1(*args)
        self._bound.count(len(data))
        return data

    def readline(self, *args: Any) -> bytes:
        data = self._fp.readline(*args)
        self._bound.count(len(data))
        return data

    def readinto(self, buffer: Any) -> int:
        n = self._fp.readinto(buffer)
        self._bound.count(n or 0)
        return n

    def peek(self, *args: Any) -> bytes:
        return self._fp.peek(*args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fp, name)


@functools.cache
def _bounded_response() -> type:
    """http.client's response, reading through the thread's bound. Made on the
    first `install` (a client about to talk to a backend), so a process that
    only imports this module (the console's, before its first frame) does
    not load http.client and the email package for it."""
    import http.client

    class _BoundedResponse(http.client.HTTPResponse):
        def __init__(self, sock: Any, *args: Any, **kwargs: Any) -> None:
            super().__init__(sock, *args, **kwargs)
            bound = current()
            if bound is not None:
                bound.track(sock)
                self.fp = _CappedReader(self.fp, bound)

    return _BoundedResponse


def _connection_class(base: type) -> type:
    class Bounded(base):  # type: ignore[misc, valid-type]
        response_class = _bounded_response()

        def connect(self) -> None:
            super().connect()
            bound = current()
            if bound is not None:
                bound.track(self.sock)

    Bounded.__name__ = f"Bounded{base.__name__}"
    return Bounded


def install(pool_manager: Any) -> None:
    """Make `pool_manager`'s connections honour `bounded()` (new pools only:
    call it before the first request). Its own pool and connection classes
    (botocore's, say) are kept, only extended."""
    classes = {}
    for scheme, pool in list(pool_manager.pool_classes_by_scheme.items()):
        connection = _connection_class(pool.ConnectionCls)
        classes[scheme] = type(f"Bounded{pool.__name__}", (pool,), {"ConnectionCls": connection})
    pool_manager.pool_classes_by_scheme = classes
