"""Keys, modals, themes and error handling of the app, on the bad-deploy
drill with the real Session (see test_app.py's fixture): each test drives the
app with Pilot and asserts on what the operator would see. RecordedSession
(ui_samples.py) is for the pixel snapshots only."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from support import wait_for
from test_app import DRILL_SPEED, bad_deploy, template_image  # noqa: F401 - fixture

from console.config import load
from console.drill import runner
from console.drill.scenario import parse_scenario
from console.session import Session
from console.store import Store
from console.ui.app import RollbackConsoleApp, build_app
from console.ui.panes.history import HistoryTable
from console.ui.panes.services import ServiceTable
from console.ui.screens.confirm import ConfirmQuitScreen, ConfirmRollbackScreen
from console.ui.screens.note import NoteScreen

pytestmark = pytest.mark.integration

SIZE = (140, 45)
SCENARIOS = Path(__file__).resolve().parents[2] / "console" / "drill" / "scenarios"


async def refreshed(pilot) -> None:
    """Wait for the first refresh to reach the panes."""
    await wait_for(pilot, lambda: bool(pilot.app.views), "the first refresh")
    await pilot.pause()


async def settle(pilot) -> None:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
    await pilot.pause()


def notifications(app: RollbackConsoleApp) -> list[str]:
    return [n.message for n in app._notifications]


def test_every_binding_has_an_id_and_a_description() -> None:
    classes = (RollbackConsoleApp, HistoryTable, ConfirmRollbackScreen, ConfirmQuitScreen, NoteScreen)
    for cls in classes:
        for binding in cls.BINDINGS:
            assert binding.id, f"{cls.__name__}: {binding.key} has no id"
            assert binding.description, f"{cls.__name__}: {binding.key} has no description"


async def test_question_mark_toggles_the_keys_panel(bad_deploy) -> None:
    _, session = bad_deploy
    app = build_app(session, animate=False)
    async with app.run_test(size=SIZE) as pilot:
        await refreshed(pilot)
        await pilot.press("question_mark")
        await pilot.pause()
        assert app.screen.query("HelpPanel")
        await pilot.press("question_mark")
        await pilot.pause()
        assert not app.screen.query("HelpPanel")


async def test_quit_asks_first_while_a_rollback_runs(bad_deploy) -> None:
    _, session = bad_deploy
    app = build_app(session, animate=False)
    async with app.run_test(size=SIZE) as pilot:
        await refreshed(pilot)
        app.rolling_back = "order-service"
        await pilot.press("q")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmQuitScreen)
        await pilot.press("n")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmQuitScreen)
        assert app.is_running
        await pilot.press("q")
        await pilot.pause()
        await pilot.press("y")
        await pilot.pause()
        assert not app.is_running


async def test_quit_without_a_rollback_closes_the_session(bad_deploy) -> None:
    _, session = bad_deploy
    app = build_app(session, animate=False)
    async with app.run_test(size=SIZE) as pilot:
        await refreshed(pilot)
        assert session._loop is not None  # the refreshes ran on the session's own loop
        await pilot.press("q")
        await pilot.pause()
    assert session._loop is None  # stopped with its clients closed


async def test_a_platform_error_is_a_notification_and_a_timeline_entry(bad_deploy) -> None:
    running, session = bad_deploy
    app = build_app(session, animate=False)
    async with app.run_test(size=SIZE) as pilot:
        await refreshed(pilot)
        # A row for a revision the cluster no longer has (the history moved on under the table):
        # the real platform refuses to plan it.
        app.query_one(HistoryTable).post_message(HistoryTable.RollbackToRequested(9))
        failed = "Planning the rollback of order-service failed: "
        await wait_for(pilot, lambda: any(failed in n for n in notifications(app)), "the planning failure")
        await settle(pilot)
        sentence = next(n for n in notifications(app) if failed in n)
        assert "revision 9" in sentence.lower(), sentence
        await wait_for(pilot, lambda: any(failed in e.text for e in app.events), "the failure in the timeline")
        assert not isinstance(app.screen, ConfirmRollbackScreen)
        assert not any("Traceback" in n for n in notifications(app))
        assert app.is_running
        assert template_image(running).endswith(":1.2.3")


async def test_cancelling_the_plan_changes_nothing(bad_deploy) -> None:
    running, session = bad_deploy
    app = build_app(session, animate=False)
    async with app.run_test(size=SIZE) as pilot:
        await refreshed(pilot)
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmRollbackScreen), "the plan")
        await pilot.press("n")
        await settle(pilot)
        assert not isinstance(app.screen, ConfirmRollbackScreen)
        assert app.last_progress is None and app.rolling_back is None  # cancelled: nothing ran
        assert "Rollback cancelled: nothing was changed." in notifications(app)
        assert template_image(running).endswith(":1.2.3")


async def test_the_quick_rollback_is_not_offered_for_kubernetes(bad_deploy) -> None:
    """R (the Docker Compose quick rollback) is neither shown nor run for a Deployment."""
    running, session = bad_deploy
    app = build_app(session, animate=False)
    async with app.run_test(size=SIZE) as pilot:
        await refreshed(pilot)
        assert "quick_rollback" not in {b.binding.action for b in app.active_bindings.values()}
        assert not any("Quick rollback" in c.title for c in app.get_system_commands(app.screen))
        await pilot.press("R")
        await settle(pilot)
        assert not isinstance(app.screen, ConfirmRollbackScreen)
        assert template_image(running).endswith(":1.2.3")


def two_services() -> object:
    """bad-deploy plus a quiet payment-service beside it."""
    data = yaml.safe_load((SCENARIOS / "bad-deploy.yaml").read_text())
    quiet = {**data["services"][0], "name": "payment-service", "label": "payment-service",
             "image": "registry.example.com/payment-service",
             "history": [{"version": "4.0.1", "age": "1d", "change_cause": "deploy 4.0.1"}],
             "versions": {"4.0.1": {"error_rate": 0.001, "latency_p95_ms": 180}}}
    data["services"].append(quiet)
    return parse_scenario(data)


async def test_several_services_sorted_by_severity_and_pinned(tmp_path: Path) -> None:
    """The failing service leads the table and the banner whatever the config's
    order; moving the cursor changes nothing until Enter pins; Enter again unpins."""
    scenario = two_services()
    # The quiet service first in the config: triage must still lead with the failing one.
    scenario = scenario.model_copy(update={"services": list(reversed(scenario.services))})
    running = runner.start(scenario, speed=DRILL_SPEED, directory=tmp_path / "drill")
    store = Store(tmp_path / "incidents.db")
    try:
        config = load(running.config_path).model_copy(update={"refresh_interval": 0.5})
        session = Session(config, store, clock=running.world.clock, operator="trainee@drill")
        assert session.services[0] == "payment-service"
        app = build_app(session, animate=False)
        async with app.run_test(size=SIZE) as pilot:
            services = app.query_one(ServiceTable)
            banner = app.query_one("DecisionBanner")
            await wait_for(pilot, lambda: banner.headline_text.startswith("ROLLBACK NOW"), "the failing service leads")
            assert app.selected == "order-service"
            assert services.visible() == ["order-service", "payment-service"]
            assert "1 of 2 services need action" in str(app.query_one("#title-left").render())
            await pilot.press("j")  # cursor onto the healthy service: the banner stays
            await pilot.pause()
            assert services.highlighted == "payment-service"
            assert app.selected == "order-service"
            await pilot.press("enter")  # pin it
            await wait_for(pilot, lambda: banner.headline_text == "HEALTHY", "the pinned service in the banner")
            assert services.pinned == "payment-service"
            assert "PINNED" in str(app.query_one("#banner-service").render())
            await pilot.press("slash", *"order", "enter")
            await wait_for(pilot, lambda: services.visible() == ["order-service"], "the filter")
            await pilot.press("slash", "escape")
            await wait_for(pilot, lambda: len(services.visible()) == 2, "the filter cleared")
            services.move_cursor(row=services.get_row_index("payment-service"))
            await pilot.press("enter")  # unpin: the most urgent leads again
            await wait_for(pilot, lambda: app.selected == "order-service", "the most urgent leads again")
            assert services.pinned is None
    finally:
        store.close()
        running.stop()


async def test_a_note_goes_into_the_timeline(bad_deploy) -> None:
    _, session = bad_deploy
    app = build_app(session, animate=False)
    async with app.run_test(size=SIZE) as pilot:
        await refreshed(pilot)
        await pilot.press("n")
        await pilot.pause()
        assert isinstance(app.screen, NoteScreen)
        await pilot.press(*"checked the logs", "enter")
        await wait_for(pilot, lambda: any(e.text == "checked the logs" for e in app.events), "the note")
        note = next(e for e in app.events if e.text == "checked the logs")
        assert note.kind == "note" and note.actor == "trainee@drill"
        # Stored before it is shown.
        stored = session.store.events(session.store.open_incident_for("order-service"))
        assert any(e.text == "checked the logs" for e in stored)


async def test_themes_come_from_files_and_switch(bad_deploy, tmp_path: Path) -> None:
    _, session = bad_deploy
    user_dir = tmp_path / "themes"
    user_dir.mkdir()
    (user_dir / "broken.yaml").write_text("name: broken\nprimary: not-a-colour\n")
    app = build_app(session, theme="high-contrast", animate=False, user_themes_dir=user_dir)
    async with app.run_test(size=SIZE) as pilot:
        await refreshed(pilot)
        assert set(app.available_themes) == {"default", "high-contrast", "light"}
        assert app.theme == "high-contrast"
        assert app.get_css_variables()["sev-critical"].lower() == "#ff7070"
        assert any("broken.yaml was skipped" in n for n in notifications(app))
        app.theme = "light"
        await pilot.pause()
        assert app.get_css_variables()["sev-critical"].lower() == "#c4001a"


async def test_an_unknown_theme_falls_back_to_the_default(bad_deploy) -> None:
    _, session = bad_deploy
    app = build_app(session, theme="no-such-theme", animate=False)
    async with app.run_test(size=SIZE) as pilot:
        await refreshed(pilot)
        assert app.theme == "default"
        assert any("'no-such-theme' was not found" in n for n in notifications(app))


async def test_roles_set_by_a_key_reach_every_console(bad_deploy, tmp_path: Path) -> None:
    """`o` sets the incident roles; they are stored, so a second console on the
    same store shows them too; the header shows time since impact and the roles."""
    running, session = bad_deploy
    app = build_app(session, animate=False)
    async with app.run_test(size=SIZE) as pilot:
        await refreshed(pilot)
        await pilot.press("o")
        await wait_for(pilot, lambda: isinstance(app.screen, NoteScreen), "the roles prompt")
        await pilot.press(*"ic=@alice comms=@bob ops=@carol", "enter")
        state = lambda: session.incident_state("order-service")  # noqa: E731
        await wait_for(pilot, lambda: state() is not None and state().role("operations") == "@carol", "the roles")
        header = app.query_one("#incident-header")
        await wait_for(pilot, lambda: "@alice" in str(header.render()), "the header")
        text = str(header.render())
        assert "Incident commander @alice" in text and "Comms @bob" in text and "impact " in text
    # Another console (a war-room screen) on the same store reads them back.
    other = Session(load(running.config_path), Store(session.store.path), clock=running.world.clock, operator="viewer")
    try:
        incident_id = other.store.open_incident_for("order-service")
        from console import incident as incidents

        rebuilt = incidents.rebuild(incident_id, other.store.events(incident_id, newest_first=False))
        assert rebuilt.roles == (("commander", "@alice"), ("comms", "@bob"), ("operations", "@carol"))
    finally:
        other.store.close()


async def test_shift_a_pauses_the_autopilot_for_everyone_and_records_it(bad_deploy) -> None:
    from console.autopilot.switch import autopilot_switch, cluster_pause

    _, session = bad_deploy
    app = build_app(session, animate=False)
    async with app.run_test(size=SIZE) as pilot:
        await refreshed(pilot)
        await pilot.press("A")
        await settle(pilot)
        switch = autopilot_switch(session)
        assert switch is not None and switch.paused and switch.by == session.operator
        # Also in the cluster, for an autopilot with a store of its own (console.autopilot.switch).
        assert any(text.startswith("AUTOPILOT PAUSED: it rolls nothing back, for everyone on this incident store "
                                   "and in the cluster (Lease rollback-console-autopilot-paused in shop)")
                   for text in notifications(app)), notifications(app)
        assert cluster_pause(session, session.services[0]).startswith(f"paused by {session.operator} at ")
        # And it stays on screen while paused (a forgotten pause is a missing safety net).
        strip = app.query_one("#autopilot-paused")
        await wait_for(pilot, lambda: strip.display, "the paused strip")
        text = str(strip.render())
        assert text.startswith(f"⏸ AUTOPILOT PAUSED: paused by {session.operator} at ")
        assert "(incident store and Lease shop/rollback-console-autopilot-paused)" in text  # said once
        assert text.count("paused by") == 1 and text.endswith("until resumed (A).")
        await pilot.press("A")
        await settle(pilot)
        assert autopilot_switch(session).paused is False
        assert cluster_pause(session, session.services[0]) is None
        await wait_for(pilot, lambda: not strip.display, "the paused strip hidden")
