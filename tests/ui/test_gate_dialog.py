"""The gate in the TUI, with Pilot against a live drill: after FIX FORWARD
`r` opens the red override dialog with Cancel focused (Enter changes
nothing), and a reason typed takes it on to the plan; another console's
rollback, read from the deployment, is named in Bob's dialog."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from support import wait_for

from console.config import load
from console.drill import runner
from console.drill.scenario import load_scenario
from console.model import Action
from console.rollback import run_headless_rollback
from console.session import Session
from console.store import Store
from console.ui.app import build_app
from console.ui.screens.confirm import ConfirmRollbackScreen
from console.ui.screens.override import OverrideScreen

DRILL_SPEED = 20.0
SIZE = (140, 45)


@pytest.fixture
def bad_deploy(tmp_path: Path):
    running = runner.start(load_scenario("bad-deploy"), speed=DRILL_SPEED, directory=tmp_path / "drill")
    stores: list[Store] = []

    def session(operator: str) -> Session:
        store = Store(tmp_path / f"{operator}.db")  # each console its own state, as on two laptops
        stores.append(store)
        config = load(running.config_path).model_copy(update={"refresh_interval": 0.5})
        return Session(config, store, clock=running.world.clock, operator=operator)

    try:
        yield running, session
    finally:
        for store in stores:
            store.close()
        running.stop()


def image(running: runner.RunningDrill) -> str:
    with running.world.store.lock:
        deployment = running.world.store.get("deployments", "shop", "order-service")
        return deployment["spec"]["template"]["spec"]["containers"][0]["image"]


def dialog_text(app) -> str:
    return "\n".join(str(w.render()) for w in app.screen.query("Static"))


async def test_after_fix_forward_r_opens_the_red_override_dialog_with_cancel_focused(bad_deploy) -> None:
    running, make_session = bad_deploy
    session = make_session("trainee@drill")
    session.declare("order-service", "migration_applied", True)
    session.declare("order-service", "migration_reversible", False)
    app = build_app(session, animate=False)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.views.get("order-service") is not None
                       and app.views["order-service"].decision.action is Action.FIX_FORWARD, "FIX FORWARD")
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, OverrideScreen), "the override dialog")
        screen = app.screen
        assert "-override" in screen.query_one("#dialog").classes
        assert screen.focused.id == "cancel"
        text = dialog_text(app)
        assert "not reversible" in text and "DO NOT ROLL BACK: FIX FORWARD" in text
        # Enter on the focused Cancel changes nothing.
        await pilot.press("enter")
        await wait_for(pilot, lambda: not isinstance(app.screen, OverrideScreen), "the dialog to close")
        await wait_for(pilot, lambda: any("rollback refused" in e.text for e in app.events), "the refusal recorded")
        assert image(running).endswith(":1.2.3")

        # Again, and this time a reason typed: the override goes on to the plan, recorded.
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, OverrideScreen), "the override dialog again")
        assert app.screen.query_one("#override-go").disabled
        app.screen.query_one("#override-reason").focus()
        await pilot.press(*"schema checked")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmRollbackScreen), "the plan after the override")
        assert app.screen.plan.to_versions == ("1.2.2",)
        await wait_for(pilot, lambda: any("rollback override by trainee@drill" in e.text
                                          and "(reason: schema checked)" in e.text for e in app.events),
                       "the override in the timeline")
        await pilot.press("n")
        await pilot.press("q")
    assert image(running).endswith(":1.2.3")


async def test_bobs_console_names_alices_rollback_read_from_the_deployment(bad_deploy) -> None:
    running, make_session = bad_deploy
    alice = make_session("alice@laptop")
    out: list[str] = []
    code = await asyncio.to_thread(run_headless_rollback, alice, "order-service", reason="error rate 8%",
                                   confirm=None, timeout=60, out=out.append)
    assert code == 0, "\n".join(out)
    bob = make_session("bob@desk")
    app = build_app(bob, animate=False)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: "order-service" in app.views, "the first refresh")
        # Within one refresh, Bob's timeline names what Alice did, from the deployment's record.
        await wait_for(pilot, lambda: any(e.actor == "alice@laptop" and "rolled order-service back from 1.2.3 to "
                                          "1.2.2" in e.text for e in app.events), "Alice's rollback in the timeline")
        # The banner follows the cluster: what runs now is where Alice's rollback went.
        record = bob.cluster_rollback("order-service")
        assert record is not None and (record.by, record.to_versions) == ("alice@laptop", ("1.2.2",))
        if app.views["order-service"].decision.action is Action.ROLLBACK_NOW:  # the metrics may still lag
            assert "alice@laptop rolled back to 1.2.2 at" in str(app.query_one("#detail").render())
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, OverrideScreen), "the override dialog")
        text = dialog_text(app)
        assert "alice@laptop rolled order-service back from 1.2.3 to 1.2.2 at " in text
        assert alice.ticket("order-service") in text
        await pilot.press("escape")
        await pilot.press("q")
    assert image(running).endswith(":1.2.2")
