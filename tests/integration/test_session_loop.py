"""The session's own event loop: the TUI's refreshes run there (off the UI's
loop), are waited for from threads, and close cleanly; another console's
writes to the store still reach the incident state."""

from __future__ import annotations

import asyncio
import sys
import threading

import pytest

from console import incident
from console.config import load
from console.drill import runner
from console.drill.scenario import load_scenario
from console.model import Action
from console.session import Session
from console.store import Store

pytestmark = pytest.mark.integration


@pytest.fixture
def drill(tmp_path):
    running = runner.start(load_scenario("bad-deploy"), speed=50, directory=tmp_path / "drill")
    yield running, tmp_path
    running.stop()


def _session(running, tmp_path) -> Session:
    return Session(load(running.config_path), Store(tmp_path / "incidents.db"), clock=running.world.clock)


def test_a_refresh_from_a_thread_runs_on_the_sessions_loop_and_closes(drill):
    running, tmp_path = drill
    session = _session(running, tmp_path)
    seen: dict = {}
    original = session.refresh

    async def watched(only=None):
        seen["thread"] = threading.current_thread().name
        return await original(only)

    session.refresh = watched
    results: list = []
    worker = threading.Thread(target=lambda: results.append(session.refresh_blocking()))
    worker.start()
    worker.join(timeout=60)
    [view] = results[0]
    assert view.decision.action == Action.ROLLBACK_NOW
    assert seen["thread"] == "session-loop"
    [again] = session.refresh_blocking()  # the same loop and clients, a second time
    assert again.snapshot.service == "order-service"
    session.close()
    assert not any(t.name == "session-loop" for t in threading.enumerate())


async def test_closing_from_the_uis_loop_cancels_a_cycle_in_flight(drill):
    running, tmp_path = drill
    session = _session(running, tmp_path)
    started = threading.Event()
    original = session.refresh

    async def slow(only=None):
        started.set()
        await asyncio.sleep(30)
        return await original(only)

    session.refresh = slow
    outcome: list = []

    def wait_for_refresh() -> None:
        try:
            outcome.append(session.refresh_blocking())
        except BaseException as err:  # noqa: BLE001 - the point is what it raised
            outcome.append(err)

    worker = threading.Thread(target=wait_for_refresh)
    worker.start()
    assert await asyncio.to_thread(started.wait, 10)
    await session.aclose()  # as the app's on_unmount does
    await asyncio.to_thread(worker.join, 10)
    assert not worker.is_alive()
    assert isinstance(outcome[0], BaseException)  # cancelled, not left hanging


async def test_another_consoles_write_reaches_the_incident_state(drill):
    running, tmp_path = drill
    session = _session(running, tmp_path)
    try:
        await session.refresh()
        state = session.incident_state("order-service")
        assert state is not None and not state.facts.data_corruption
        with Store(tmp_path / "incidents.db") as other:  # another console, its own connection
            event = incident.fact_set("data_corruption", True)
            other.append(state.id, event.kind, event.text, running.world.clock.now(), data=event.data)
        await session.refresh()
        assert session.incident_state("order-service").facts.data_corruption is True
        assert session.facts("order-service").data_corruption is True
    finally:
        await session.aclose()


def test_starting_a_session_imports_no_http_client():
    import subprocess

    code = ("import sys, console.cli, console.session; "
            "print(sorted(m for m in ('httpx', 'console.slack', 'console.signals.poller') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr
