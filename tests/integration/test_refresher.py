"""The refresh cycle in its own process (console.refresher), against a drill
over HTTP: the same snapshots as the in-process poller, the console's clock
followed, a rollback's invalidation passed on, and a child that dies or is
orphaned handled."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from support import wait_until

from console.config import load
from console.drill import runner
from console.drill.scenario import load_scenario
from console.model import Action
from console.refresher import PollerProcess, RefreshProcessError
from console.session import Session
from console.store import Store

pytestmark = pytest.mark.integration

SPEED = 50


@pytest.fixture
def drill(tmp_path):
    running = runner.start(load_scenario("bad-deploy"), speed=SPEED, directory=tmp_path / "drill")
    yield running
    running.stop()


def _session(running, tmp_path, name: str, remote: bool) -> Session:
    session = Session(load(running.config_path), Store(tmp_path / f"{name}.db"), clock=running.world.clock)
    if remote:
        session.start_refresh_process()
        assert isinstance(session.poller, PollerProcess)
    return session


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped) is not alive either.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split(")")[-1].split()[0] != "Z"


async def test_the_child_sees_what_the_in_process_poller_sees(drill, tmp_path):
    drill.world.clock.set_speed(0)  # both read the same world moment (the child's first cycle too)
    remote = _session(drill, tmp_path, "remote", remote=True)
    local = _session(drill, tmp_path, "local", remote=False)
    local.poller.history_in_background = True  # as the child's poller runs
    try:
        for _ in range(3):  # the first cycle, then the sparklines loaded between cycles
            [far] = await remote.refresh()
            [near] = await local.refresh()
            await local.poller.load_history()
        assert far.snapshot.taken_at == near.snapshot.taken_at == drill.world.clock.now()
        assert far.decision == near.decision
        assert far.decision.action == Action.ROLLBACK_NOW
        assert far.snapshot.history == near.snapshot.history
        # The health endpoint's own round trip differs between two requests; the rest is the same.
        assert replace(far.snapshot.health, endpoint_latency_ms=None) == replace(near.snapshot.health, endpoint_latency_ms=None)
        assert far.snapshot.metrics == near.snapshot.metrics  # sparklines included, rebuilt from changes
        assert len(far.snapshot.metrics.error_rate_history) > 10
        assert far.snapshot.provenance == near.snapshot.provenance
        assert far.snapshot.signals.history_loaded
        assert remote.poller.cycles == 3
    finally:
        await remote.aclose()
        await local.aclose()


async def test_a_rollback_is_seen_at_once_and_the_clock_followed(drill, tmp_path):
    session = _session(drill, tmp_path, "incidents", remote=True)
    try:
        [view] = await session.refresh()
        assert view.decision.action == Action.ROLLBACK_NOW
        assert view.snapshot.current_revision.number == 3
        # The first values come before the 30-minute history, and say so.
        # (a point per cycle so far, not the range query's hundreds)
        assert not view.snapshot.signals.history_loaded and len(view.snapshot.metrics.error_rate_history) < 5
        progress = list(session.execute(session.plan_rollback("order-service"), timeout=120))
        assert progress[-1].done and not progress[-1].failed
        drill.world.clock.advance(120)  # the console's clock jumps; the child follows it
        [view] = await session.refresh()
        # The rollout history was invalidated in the child: read at once, not at its next scheduled read.
        assert view.snapshot.current_revision.number == 4
        assert view.snapshot.current_revision.versions == ("1.2.2",)
        assert abs((view.snapshot.taken_at - drill.world.clock.now()).total_seconds()) < 60
        assert view.decision.action == Action.HEALTHY
    finally:
        await session.aclose()


async def test_a_killed_child_is_reported_and_the_next_cycle_starts_a_new_one(drill, tmp_path):
    session = _session(drill, tmp_path, "incidents", remote=True)
    try:
        await session.refresh()
        first = session.poller.pid
        os.kill(first, signal.SIGKILL)
        wait_until(lambda: not _alive(first), "the killed child is gone", timeout=10)
        with pytest.raises(RefreshProcessError, match="refresh process .*next refresh starts a new one"):
            await session.refresh()
        [view] = await session.refresh()
        assert session.poller.pid != first and session.poller.restarts == 1
        assert view.decision.action == Action.ROLLBACK_NOW
    finally:
        await session.aclose()


async def test_a_child_that_does_not_answer_in_time_is_stopped(drill, tmp_path):
    session = Session(load(drill.config_path), Store(tmp_path / "incidents.db"), clock=drill.world.clock)
    session._poller = PollerProcess(session.config, session.clock, max_age=0)
    try:
        await session.refresh()  # started and answering
        session.poller._timeout = 1.0
        stuck = session.poller.pid
        os.kill(stuck, signal.SIGSTOP)  # alive, answering nothing
        with pytest.raises(RefreshProcessError, match="did not answer within 1 s"):
            await session.refresh()
        wait_until(lambda: not _alive(stuck), "the stuck child was stopped", timeout=10)
    finally:
        await session.aclose()


FORKING_CONSOLE = r"""
import json, os, sys, threading, urllib.request
from datetime import datetime
from pathlib import Path
from console.clock import ScaledClock
from console.config import load
from console.session import Session
from console.store import Store

config_path, store_path, drill_url, speed = sys.argv[1:5]
with urllib.request.urlopen(f"{drill_url}/drill/state", timeout=10) as response:  # the drill's world clock
    clock = ScaledClock(datetime.fromisoformat(json.load(response)["now"]), float(speed))
assert threading.active_count() == 1, "the console must run no thread yet"
session = Session(load(config_path), Store(Path(store_path)), clock=clock)
session.start_refresh_process()
session.begin_first_refresh()
views = session.first_refresh.result(timeout=60)
poller = session.poller
child_cmdline = Path(f"/proc/{poller.pid}/cmdline").read_bytes()
print(json.dumps({
    "forked": poller.forked, "pid": poller.pid, "cycles": poller.cycles,
    "same_program": child_cmdline == Path("/proc/self/cmdline").read_bytes(),
    "actions": sorted(v.decision.action.value for v in views),
    "taken": [v.snapshot.taken_at.isoformat() for v in views],
}), flush=True)
sys.stdin.readline()  # the test ends this console by killing it
"""


def test_the_first_child_is_forked_from_a_console_without_threads(drill, tmp_path):
    """`watch` starts its refresh process before any thread runs: the child is
    forked (the same program, its modules and config already loaded) and its
    first cycle is the console's first refresh. When the console is killed the
    child, its pipe closed, exits too."""
    script = tmp_path / "forking_console.py"
    script.write_text(FORKING_CONSOLE)
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    console = subprocess.Popen([sys.executable, str(script), str(drill.config_path), str(tmp_path / "forked.db"),
                                drill.server.url, str(SPEED)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = console.stdout.readline()
        assert line, console.stderr.read()
        seen = json.loads(line)
        assert seen["forked"] and seen["same_program"]
        assert seen["cycles"] == 1
        assert seen["actions"] == [Action.ROLLBACK_NOW.value]
        child = seen["pid"]
        assert _alive(child)
    finally:
        console.kill()
        console.wait(10)
    wait_until(lambda: not _alive(child), "the forked child exited with its console", timeout=20)


def test_the_panes_surroundings_are_read_by_the_child(drill, tmp_path):
    """The routing, lease and owner the panes show are read by the refresh
    process between cycles: the same answer as a read in the console's process,
    another operator's lease included."""
    from console.platforms.base import read_surroundings

    session = _session(drill, tmp_path, "incidents", remote=True)
    try:
        session.refresh_blocking()
        alice = session.platform("order-service").rollback_lease("alice@laptop")
        alice.acquire()
        try:
            read = session.surroundings("order-service")
            assert session.poller.surroundings_read == 1
            assert read.holder is not None and read.holder.holder == "alice@laptop"
            here = read_surroundings("order-service", session.platform("order-service"), session.operator)
            # The same but for the moment each was read.
            assert replace(read, holder=replace(read.holder, seen_at=None)) == replace(here, holder=replace(here.holder, seen_at=None))
        finally:
            alice.release()
        assert session.surroundings("order-service").holder is None
        session.poller.close()
        # No refresh process (closed): read in the console's process.
        assert session.surroundings("order-service").lease_error is None
    finally:
        session.close()


LIGHT_CONSOLE = r"""
import json, sys
from pathlib import Path
from console.config import load
from console.session import Session
from console.store import Store

config_path, store_path = sys.argv[1:3]
session = Session(load(config_path), Store(Path(store_path)))
session.start_refresh_process()
views = session.refresh_blocking()
read = session.surroundings("order-service")
print(json.dumps({"views": len(views), "read_by_child": session.poller.surroundings_read,
                  "lease_read": read.lease_error is None,
                  "kubernetes_loaded": any(m == "kubernetes" or m.startswith("kubernetes.") for m in sys.modules)}))
session.poller.close()
"""


def test_a_console_with_a_refresh_process_loads_no_kubernetes_client(drill, tmp_path):
    """Refreshes and the panes' reads all run in the refresh process: the
    console's own process (the UI's) never loads the Kubernetes client (nor its
    requests, urllib3 and oauthlib) until an action needs it (issue 17's memory)."""
    script = tmp_path / "light_console.py"
    script.write_text(LIGHT_CONSOLE)
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, str(script), str(drill.config_path), str(tmp_path / "light.db")],
                         capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(root)})
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen == {"views": 1, "read_by_child": 1, "lease_read": True, "kubernetes_loaded": False}


def test_a_console_running_threads_starts_a_new_interpreter(drill, tmp_path):
    """Forking a process whose other threads may hold a lock could leave it held
    in the child forever: with the drill's server threads running here, the
    child is `python -m console.refresher`."""
    session = _session(drill, tmp_path, "incidents", remote=True)
    try:
        assert not session.poller.forked
        assert Path(f"/proc/{session.poller.pid}/cmdline").read_bytes().split(b"\0")[1:3] == [b"-m", b"console.refresher"]
    finally:
        session.poller.close()


def test_the_child_exits_when_the_console_is_gone(drill, tmp_path):
    session = _session(drill, tmp_path, "incidents", remote=True)
    child = session.poller._child
    # The console dying closes its end of the pipe: all the child ever sees of it.
    child.stdin.close()
    wait_until(lambda: child.poll() is not None, "the orphaned child exited", timeout=20)
    assert child.returncode == 0


async def test_closing_the_session_stops_the_child(drill, tmp_path):
    session = _session(drill, tmp_path, "incidents", remote=True)
    await session.refresh()
    pid = session.poller.pid
    await session.aclose()
    wait_until(lambda: not _alive(pid), "the child stopped with the session", timeout=10)


async def test_a_refresh_process_that_keeps_failing_is_given_up_for_the_console_s_own_poller(drill, tmp_path):
    from console.refresher import FALL_BACK_AFTER
    from console.signals.poller import Poller

    session = _session(drill, tmp_path, "incidents", remote=True)
    try:
        await session.refresh()
        process = session.poller
        process.command = ["/bin/false"]  # every new child dies at once
        os.kill(process.pid, signal.SIGKILL)
        wait_until(lambda: process._child.poll() is not None, "the killed child is gone", timeout=10)
        errors = []
        for _ in range(FALL_BACK_AFTER):
            with pytest.raises(RefreshProcessError) as caught:
                await session.refresh()
            errors.append(str(caught.value))
        assert "from now on the console refreshes in its own process" in errors[-1]
        assert all("from now on" not in e for e in errors[:-1])
        assert isinstance(session.poller, Poller) and not session.refreshes_elsewhere
        [view] = await session.refresh()  # refreshing goes on
        assert view.decision.action == Action.ROLLBACK_NOW
    finally:
        await session.aclose()


async def test_closing_does_not_wait_for_a_stopped_child(drill, tmp_path):
    session = _session(drill, tmp_path, "incidents", remote=True)
    await session.refresh()
    pid = session.poller.pid
    os.kill(pid, signal.SIGSTOP)  # answers nothing, reads nothing
    try:
        await session.aclose()  # asks, waits a few seconds, then stops it
        wait_until(lambda: not _alive(pid), "the stopped child was stopped for good", timeout=10)
    finally:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
