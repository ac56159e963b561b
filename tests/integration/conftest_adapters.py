"""Fixtures for the adapter tests (platforms/, signals/): a live drill world
served over HTTP, a server that accepts connections and never answers, and a
port nobody listens on. Registered once as a plugin by tests/conftest.py
(pytest does not collect this file as a conftest); import only its plain
helpers (DRILL_SPEED, start_drill, HangingServer), never its fixtures."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from support import require  # noqa: F401  (re-exported to the adapter tests)

# Fast enough that a 3-replica rollback (10 simulated seconds per pod) takes
# well under a second of wall time, slow enough that it is observable.
DRILL_SPEED = 100.0


def observe_on_a_loop(platform):
    """`platform.observe_async` as the refresh cycle calls it: on an event loop,
    with a session like the poller's and a thread pool for its blocking calls."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from console.signals import health

    async def run(threads):
        loop = asyncio.get_running_loop()
        http = health.new_session(4, environment_proxies=False)
        try:
            return await platform.observe_async(http, lambda call: loop.run_in_executor(threads, call))
        finally:
            await http.close()

    with ThreadPoolExecutor(2) as threads:
        return asyncio.run(run(threads))


def start_drill(speed: float = DRILL_SPEED, scenario: str = "bad-deploy"):
    """Start a shipped scenario's drill world (default: bad-deploy) on
    127.0.0.1 (skip/fail when the drill package is missing)."""
    try:
        from console.drill import runner
        from console.drill.scenario import load_scenario
    except ImportError as exc:  # the drill world is a component of its own
        require(False, f"the drill world cannot be imported: {exc}")
        raise
    return runner.start(load_scenario(scenario), speed=speed)


@pytest.fixture
def drill() -> Iterator:
    """A running bad-deploy drill (world, server, kubeconfig_path)."""
    running = start_drill()
    try:
        yield running
    finally:
        running.stop()


@dataclass
class HangingServer:
    """Accepts TCP connections and never answers them."""

    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
def hanging_server() -> Iterator[HangingServer]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.05)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            accepted.append(conn)  # held open, never read nor answered

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield HangingServer(listener.getsockname()[1])
    finally:
        stop.set()
        thread.join(timeout=2)
        for conn in accepted:
            conn.close()
        listener.close()


@pytest.fixture
def closed_port() -> int:
    """A local port with nothing listening (connections are refused)."""
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return port
