"""Keys, modals, themes and error handling of the app, on fixed data
(`RecordedSession`, see ui_samples.py): each test drives the app with Pilot
and asserts on what the operator would see."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from ui_samples import RecordedSession

from console.model import Revision, ServiceView
from console.platforms.base import NotFound
from console.ui.app import RollbackConsoleApp, build_app
from console.ui.panes.history import HistoryTable
from console.ui.panes.services import ServiceList
from console.ui.screens.confirm import ConfirmQuitScreen, ConfirmRollbackScreen
from console.ui.screens.note import NoteScreen

SIZE = (140, 45)


async def refreshed(pilot) -> None:
    """Wait for the first refresh to reach the panes."""
    for _ in range(200):
        if pilot.app.views:
            break
        await pilot.pause(0.02)
    await pilot.app.workers.wait_for_complete()
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


async def test_question_mark_toggles_the_keys_panel() -> None:
    app = build_app(RecordedSession(), animate=False)
    async with app.run_test(size=SIZE) as pilot:
        await refreshed(pilot)
        await pilot.press("question_mark")
        await pilot.pause()
        assert app.screen.query("HelpPanel")
        await pilot.press("question_mark")
        await pilot.pause()
        assert not app.screen.query("HelpPanel")


async def test_quit_asks_first_while_a_rollback_runs() -> None:
    app = build_app(RecordedSession(), animate=False)
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


async def test_quit_without_a_rollback_closes_the_session() -> None:
    session = RecordedSession()
    app = build_app(session, animate=False)
    async with app.run_test(size=SIZE) as pilot:
        await refreshed(pilot)
        await pilot.press("q")
        await pilot.pause()
    assert session.closed


class PlanFails(RecordedSession):
    """The platform refuses to plan, as a Kubernetes NotFound would."""

    def plan_rollback(self, service: str, to_revision: int | None = None):
        raise NotFound('Revision 9 of deployments "order-service" does not exist: pick one from the rollout history.')


async def test_a_platform_error_is_a_notification_and_a_timeline_entry() -> None:
    app = build_app(PlanFails(), animate=False)
    async with app.run_test(size=SIZE) as pilot:
        await refreshed(pilot)
        await pilot.press("r")
        await settle(pilot)
        sentence = 'Revision 9 of deployments "order-service" does not exist'
        assert any(sentence in n for n in notifications(app))
        assert any(sentence in e.text for e in app.events)
        assert not isinstance(app.screen, ConfirmRollbackScreen)
        assert not any("Traceback" in n for n in notifications(app))
        assert app.is_running


async def test_confirming_runs_the_plan_and_reports_completion() -> None:
    app = build_app(RecordedSession(), animate=False)
    async with app.run_test(size=SIZE) as pilot:
        await refreshed(pilot)
        await pilot.press("r")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmRollbackScreen)
        await pilot.press("n")
        await settle(pilot)
        assert app.last_progress is None  # cancelled: nothing ran
        await pilot.press("r")
        await settle(pilot)
        await pilot.press("y")
        await settle(pilot)
        assert app.last_progress == 'deployment "order-service" successfully rolled out'
        assert app.rolling_back is None
        assert any("successfully rolled out" in n for n in notifications(app))


async def test_history_rows_are_updated_in_place_and_the_cursor_stays() -> None:
    session = RecordedSession()
    app = build_app(session, animate=False)
    async with app.run_test(size=SIZE) as pilot:
        await refreshed(pilot)
        history = app.query_one(HistoryTable)
        history.focus()
        await pilot.press("up")  # from the last row to revision 2
        assert history.cursor_row == 1
        await pilot.press("f5")
        await settle(pilot)
        assert history.cursor_row == 1 and history.row_count == 3

        # kubectl semantics after an undo: revision 2 becomes 4 and is current.
        view = session._views[0]
        snapshot = view.snapshot
        rev1, rev2, rev3 = snapshot.history
        history_after = (rev1, replace(rev3, current=False), Revision(4, rev2.images, rev2.change_cause,
                                                                       snapshot.taken_at + timedelta(seconds=30),
                                                                       current=True))
        session._views[0] = ServiceView(replace(snapshot, history=history_after), view.decision)
        await pilot.press("f5")
        await settle(pilot)
        assert [k.value for k in history.rows] == ["1", "3", "4"]
        assert history.get_cell("4", "current").plain == "●"
        assert history.get_cell("3", "current").plain == ""


async def test_several_services_show_badges_and_switch_the_panes() -> None:
    app = build_app(RecordedSession(("order-service", "payment-service")), animate=False)
    async with app.run_test(size=SIZE) as pilot:
        await refreshed(pilot)
        services = app.query_one(ServiceList)
        assert services.display
        assert "ROLLBACK NOW" in str(services.get_option("order-service").prompt)
        assert "HEALTHY" in str(services.get_option("payment-service").prompt)
        services.focus()
        await pilot.press("down")
        await pilot.pause()
        assert app.selected == "payment-service"
        assert app.query_one("DecisionBanner").headline_text == "HEALTHY"


async def test_a_note_goes_into_the_timeline() -> None:
    app = build_app(RecordedSession(), animate=False)
    async with app.run_test(size=SIZE) as pilot:
        await refreshed(pilot)
        await pilot.press("n")
        await pilot.pause()
        assert isinstance(app.screen, NoteScreen)
        await pilot.press(*"checked the logs", "enter")
        await settle(pilot)
        assert app.events[0].text == "checked the logs"
        assert app.events[0].kind == "note"


async def test_themes_come_from_files_and_switch(tmp_path: Path) -> None:
    user_dir = tmp_path / "themes"
    user_dir.mkdir()
    (user_dir / "broken.yaml").write_text("name: broken\nprimary: not-a-colour\n")
    app = build_app(RecordedSession(), theme="high-contrast", animate=False, user_themes_dir=user_dir)
    async with app.run_test(size=SIZE) as pilot:
        await refreshed(pilot)
        assert set(app.available_themes) == {"default", "high-contrast", "light"}
        assert app.theme == "high-contrast"
        assert app.get_css_variables()["sev-critical"].lower() == "#ff3030"
        assert any("broken.yaml was skipped" in n for n in notifications(app))
        app.theme = "light"
        await pilot.pause()
        assert app.get_css_variables()["sev-critical"].lower() == "#c4001a"


async def test_an_unknown_theme_falls_back_to_the_default() -> None:
    app = build_app(RecordedSession(), theme="no-such-theme", animate=False)
    async with app.run_test(size=SIZE) as pilot:
        await refreshed(pilot)
        assert app.theme == "default"
        assert any("'no-such-theme' was not found" in n for n in notifications(app))
