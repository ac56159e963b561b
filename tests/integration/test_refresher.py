"""The refresh cycle in its own process (console.refresher), against a drill
over HTTP: the same snapshots as the in-process poller, the console's clock
followed, a rollback's invalidation passed on, and a child that dies or is
orphaned handled."""

from __future__ import annotations

import os
import signal
from dataclasses import replace

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


@pytest.fixture
def drill(tmp_path):
    running = runner.start(load_scenario("bad-deploy"), speed=50, directory=tmp_path / "drill")
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
