"""The console as `watch` and `drill` run it: the refresh cycle in its own
process (console.refresher). The operator's whole path over the bad-deploy
drill: the first values before the sparkline history (and the pane saying
so), ROLLBACK NOW, the plan, the rollback, the banner moving on."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from support import wait_for
from textual.widgets import Static

from console.config import load
from console.drill import runner
from console.drill.scenario import load_scenario
from console.model import Action
from console.refresher import PollerProcess
from console.session import Session
from console.store import Store
from console.ui.app import build_app
from console.ui.messages import RollbackFinished
from console.ui.panes.banner import DecisionBanner
from console.ui.screens.confirm import ConfirmRollbackScreen

pytestmark = pytest.mark.integration

TIMEOUT = 120.0


@pytest.fixture
def drill(tmp_path: Path):
    """The bad-deploy drill, served, and a store for the console."""
    running = runner.start(load_scenario("bad-deploy"), speed=20.0, directory=tmp_path / "drill")
    store = Store(tmp_path / "incidents.db")
    yield running, store
    store.close()
    running.stop()


def _console(drill, refresh_interval: float) -> Session:
    """A session on the drill with its refresh process started, as `watch` starts it."""
    running, store = drill
    config = load(running.config_path).model_copy(update={"refresh_interval": refresh_interval})
    session = Session(config, store, clock=running.world.clock, operator="trainee@drill")
    session.start_refresh_process()
    return session


async def test_the_operators_path_with_the_refresh_process(drill) -> None:
    session = _console(drill, refresh_interval=0.5)
    child = session.poller
    assert isinstance(child, PollerProcess) and session.refreshes_elsewhere
    messages: list[object] = []
    app = build_app(session, animate=False)
    async with app.run_test(size=(140, 45), message_hook=messages.append) as pilot:
        banner = app.query_one(DecisionBanner)
        await wait_for(pilot, lambda: banner.headline_text == "ROLLBACK NOW", "the ROLLBACK NOW banner", timeout=TIMEOUT)
        caption = app.query_one("#error-rate-caption", Static)
        # The 30-minute history comes a cycle or two after the first values.
        await wait_for(pilot, lambda: app.views["order-service"].snapshot.signals.history_loaded,
                       "the sparkline history", timeout=TIMEOUT)
        await wait_for(pilot, lambda: "history loading" not in str(caption.render()), "the caption to drop the note")
        assert len(app.views["order-service"].snapshot.metrics.error_rate_history) > 10

        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmRollbackScreen), "the rollback plan")
        assert app.screen.plan.to_versions == ("1.2.2",)
        await pilot.press("y")
        finished = lambda: [m for m in messages if isinstance(m, RollbackFinished)]  # noqa: E731
        await wait_for(pilot, lambda: bool(finished()), "the rollback to finish", timeout=TIMEOUT)
        assert finished()[0].ok, finished()[0].error
        # The child was told the rollout changed: the new revision shows without waiting for its next history read.
        await wait_for(pilot, lambda: app.views["order-service"].snapshot.current_revision.versions == ("1.2.2",),
                       "the new revision in the refreshed view", timeout=TIMEOUT)
        await wait_for(pilot, lambda: app.views["order-service"].decision.action != Action.ROLLBACK_NOW,
                       "the decision to leave ROLLBACK NOW", timeout=TIMEOUT)
        pid = child.pid
        assert child.cycles > 3 and child.restarts == 0
    # The app closed the session, and with it the child.
    assert child._child is None and pid is not None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


async def test_the_first_refresh_runs_while_the_ui_loads_and_is_in_its_first_frame(drill) -> None:
    """`watch` starts the first refresh with the refresh process, before the UI
    loads: once it is done, the app shows its views as it mounts, without
    asking the child for another cycle first."""
    session = _console(drill, refresh_interval=30.0)
    session.begin_first_refresh()
    first = session.first_refresh
    [view] = first.result(timeout=TIMEOUT)
    app = build_app(session, animate=False)
    async with app.run_test(size=(140, 45)):
        # Mounted: the first refresh is on screen, and no other cycle was asked for.
        assert session.first_refresh is None
        assert app.views["order-service"] is view
        assert app.query_one(DecisionBanner).headline_text == "ROLLBACK NOW"
        assert session.poller.cycles == 1
