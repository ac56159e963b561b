"""Snapshots of the console's screens with frozen time and fixed data.

Regenerate after an intended visual change with
`pytest tests/ui/test_snapshots.py --snapshot-update`, then look at the SVGs
in tests/ui/__snapshots__/ before committing them.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from ui_samples import RecordedSession, blocked_check, corruption_runner, migration_runner, sample_plan

from console.decision import Thresholds, evaluate
from console.model import Facts, ServiceView, Signals
from console.session import Escalation
from console.ui.app import build_app

WAR_ROOM = (140, 45)
LAPTOP = (120, 40)


async def _first_refresh(pilot) -> None:
    """Wait until the first refresh has reached the panes."""
    app = pilot.app
    for _ in range(100):
        if app.views:
            break
        await pilot.pause(0.02)
    await pilot.pause()
    await app.workers.wait_for_complete()
    await pilot.pause()


def test_main_screen_bad_deploy(snap_compare):
    """Bad deploy: ROLLBACK NOW banner, 8 % error rate above the 5 % line, history with revision 3 current."""
    app = build_app(RecordedSession(), animate=False)
    assert snap_compare(app, terminal_size=WAR_ROOM, run_before=_first_refresh)


@pytest.mark.parametrize("theme", ["high-contrast", "light"])
def test_main_screen_themes(snap_compare, theme):
    """The same screen in the other shipped themes (colours only from theme variables)."""
    app = build_app(RecordedSession(), theme=theme, animate=False)
    assert snap_compare(app, terminal_size=WAR_ROOM, run_before=_first_refresh)


def test_several_services_laptop(snap_compare):
    """Three services: the service list with decision badges, on a smaller terminal."""
    app = build_app(RecordedSession(("order-service", "payment-service", "cart-service")), animate=False)
    assert snap_compare(app, terminal_size=LAPTOP, run_before=_first_refresh)


@pytest.mark.parametrize("size", [WAR_ROOM, LAPTOP, (200, 50)])
def test_blue_green_routing_beside_the_signals_or_below(snap_compare, size):
    """A blue-green service's routing pane (three services, so the service table is
    shown): in the signals row once the table has narrowed for it (140 and 200 columns),
    beside the rollout history where even then error rate and latency would lose their
    width (120). Error rate and latency keep their width."""
    from console.platforms.base import Routing

    session = RecordedSession(("order-service", "payment-service", "cart-service"))
    session.routing = Routing("blue-green", (("blue", 0), ("green", 100)), active="green",
                              source="service/order-service",
                              replicas=(("order-service-blue", 3), ("order-service-green", 3)))
    app = build_app(session, animate=False)

    async def routed(pilot) -> None:
        await _first_refresh(pilot)
        for _ in range(100):
            if app.routing is not None:
                break
            await pilot.pause(0.02)
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=routed)


def test_rollback_confirmation(snap_compare):
    """`r` shows the plan: revision 3 -> 2, 1.2.3 -> 1.2.2 and the exact PATCH with its body."""

    async def press_r(pilot) -> None:
        await _first_refresh(pilot)
        await pilot.press("r")
        for _ in range(100):
            if pilot.app.screen.__class__.__name__ == "ConfirmRollbackScreen":
                break
            await pilot.pause(0.02)
        await pilot.pause()

    app = build_app(RecordedSession(), animate=False)
    assert snap_compare(app, terminal_size=WAR_ROOM, run_before=press_r)


class IncidentRecording(RecordedSession):
    """The same moment, three minutes into an investigation, escalated to the
    team lead, with the previous rollback's checklist open (a war-room screen)."""

    def __init__(self) -> None:
        super().__init__()
        from datetime import timedelta

        from console import incident
        from console.checklist import evaluate_checklist
        from console.model import Event

        t = self.clock.now()
        # 3 % errors: the runbook says investigate (at 8 % the countdown would be interrupted).
        snapshot = self._views[0].snapshot
        snapshot = replace(snapshot, metrics=replace(snapshot.metrics, error_rate=0.03), signals=Signals())
        started = t - timedelta(minutes=1, seconds=43)
        facts = Facts(investigation_started_at=started)
        self._views = [ServiceView(snapshot, evaluate(snapshot, facts, t, Thresholds()))]
        state = incident.new_state("INC-20240117-1430-order-service", "order-service", t - timedelta(minutes=15))
        for minutes, event in ((-14, incident.rollback_completed()),
                               (-13, incident.checklist_ticked("service-health-verified", "Service health verified",
                                                               "health endpoint healthy and 3/3 pods ready"))):
            state = incident.apply(state, Event(t + timedelta(minutes=minutes), event.kind, event.text,
                                                data=incident.pairs(event.data)))
        self._status = evaluate_checklist(state, t)
        self._deadline = started + Thresholds().investigate_window
        self._escalation = Escalation(2, "Team Lead", "Rollback failed: deployment/order-service timed out",
                                      t + timedelta(minutes=12, seconds=5), ("@team-lead", "pager: shop-leads"))

    def escalation(self, service, now=None):
        return self._escalation

    def investigation_deadline(self, service):
        return self._deadline

    def checklist(self, service, now=None):
        return self._status


def test_incident_war_room(snap_compare):
    """Escalation strip (level 2, contacts, time to level 4), the countdown in
    large digits, and the checklist with an overdue item and a console tick."""

    async def show_checklist(pilot) -> None:
        await _first_refresh(pilot)
        await pilot.press("c")
        await pilot.pause()

    app = build_app(IncidentRecording(), animate=False)
    assert snap_compare(app, terminal_size=WAR_ROOM, run_before=show_checklist)


# -- every size from a laptop split to a war-room wall: the main screen and each dialog ----------

SIZES = {"80x24": (80, 24), "120x40": (120, 40), "200x60": (200, 60)}
FLEET = ("order-service", "payment-service", "cart-service", "search-service", "auth-service")


@pytest.mark.parametrize("size", sorted(SIZES))
def test_main_screen_at_every_size(snap_compare, size):
    """Five services sorted by severity, the banner leading with the failing one;
    at 80x24 the compact layout (h switches to history and timeline)."""
    app = build_app(RecordedSession(FLEET), animate=False)
    assert snap_compare(app, terminal_size=SIZES[size], run_before=_first_refresh)


@pytest.mark.parametrize("size", sorted(SIZES))
def test_history_and_timeline_on_a_small_screen(snap_compare, size):
    """`h` brings the history and the timeline to a compact screen (a no-op on large ones)."""

    async def press_h(pilot) -> None:
        await _first_refresh(pilot)
        await pilot.press("h")
        await pilot.pause()

    app = build_app(RecordedSession(FLEET), animate=False)
    assert snap_compare(app, terminal_size=SIZES[size], run_before=press_h)


def _open_by_key(key: str, screen: str):
    async def run_before(pilot) -> None:
        await _first_refresh(pilot)
        await pilot.press(key)
        for _ in range(200):
            if pilot.app.screen.__class__.__name__ == screen:
                break
            await pilot.pause(0.02)
        assert pilot.app.screen.__class__.__name__ == screen
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()

    return run_before


def _open_pushed(make):
    async def run_before(pilot) -> None:
        await _first_refresh(pilot)
        screen = make()
        pilot.app.push_screen(screen)
        await pilot.pause()
        # A procedure screen reads its state in a worker: wait for it to land.
        await screen.workers.wait_for_complete()
        await pilot.pause()
        await pilot.pause()

    return run_before


def _quit_while_rolling_back():
    from console.ui.screens.confirm import ConfirmQuitScreen

    return ConfirmQuitScreen("order-service")


def _debrief():
    from console.ui.screens.debrief import DebriefScreen

    lines = [f"{i:2d}. the runbook step and what the trainee did at 14:{30 + i:02d}" for i in range(1, 30)]
    return DebriefScreen("bad-deploy drill: debrief", lines)


def _freeze_writes():
    from console.ui.screens.corruption import WritesScreen

    return WritesScreen("order-service", corruption_runner().preview("freeze"), freeze=True, replicas=3)


def _declare_corruption():
    from console.ui.screens.corruption import DeclareCorruptionScreen

    return DeclareCorruptionScreen("order-service")


def _corruption_response():
    from console.ui.screens.corruption import CorruptionScreen

    return CorruptionScreen(RecordedSession(), "order-service", corruption_runner())


def _migration_rollback():
    from console.ui.screens.database import MigrationRollbackScreen

    return MigrationRollbackScreen(RecordedSession(), "order-service", migration_runner())


def _migration_blocked():
    from console.ui.screens.database import MigrationBlockedScreen

    return MigrationBlockedScreen(sample_plan(), blocked_check())


def _step_confirm():
    from console.ui.screens.procedure import StepConfirmScreen

    return StepConfirmScreen(migration_runner().preview("app_rollback"))


DIALOGS = {
    "rollback-confirm": _open_by_key("r", "ConfirmRollbackScreen"),
    "decide": _open_by_key("d", "DecideScreen"),
    "facts": _open_by_key("f", "FactsScreen"),
    "messages": _open_by_key("m", "MessageScreen"),
    "note": _open_by_key("n", "NoteScreen"),
    "pods": _open_by_key("p", "PodsScreen"),
    "revision": _open_by_key("v", "RevisionScreen"),
    "quit-while-rolling-back": _open_pushed(_quit_while_rolling_back),
    "debrief": _open_pushed(_debrief),
    "freeze-writes": _open_pushed(_freeze_writes),
    "declare-corruption": _open_pushed(_declare_corruption),
    "corruption-response": _open_pushed(_corruption_response),
    "migration-rollback": _open_pushed(_migration_rollback),
    "migration-blocked": _open_pushed(_migration_blocked),
    "step-confirm": _open_pushed(_step_confirm),
}


@pytest.mark.parametrize("size", sorted(SIZES))
@pytest.mark.parametrize("dialog", sorted(DIALOGS))
def test_every_dialog_at_every_size(snap_compare, dialog, size):
    """Each dialog keeps its action bar (keys on the buttons) in sight; its body scrolls."""
    app = build_app(RecordedSession(), animate=False)
    assert snap_compare(app, terminal_size=SIZES[size], run_before=DIALOGS[dialog])


def test_override_dialog_after_fix_forward(snap_compare):
    """After FIX FORWARD, `r` opens the gate's override dialog: red, the runbook's reason, the reason to type,
    Cancel focused."""
    session = RecordedSession()
    facts = Facts(migration_applied=True, migration_reversible=False, migration_name="0042_split_address")
    session._views = [ServiceView(v.snapshot, evaluate(v.snapshot, facts, v.snapshot.taken_at, Thresholds()))
                      for v in session._views]

    async def press_r(pilot) -> None:
        await _first_refresh(pilot)
        await pilot.press("r")
        for _ in range(100):
            if pilot.app.screen.__class__.__name__ == "OverrideScreen":
                break
            await pilot.pause(0.02)
        await pilot.pause()

    app = build_app(session, animate=False)
    assert snap_compare(app, terminal_size=WAR_ROOM, run_before=press_r)


@pytest.mark.parametrize("size", sorted(SIZES))
def test_override_dialog_at_every_size(snap_compare, size):
    """The gate's red override dialog keeps Cancel and the override button in sight at every size."""
    session = RecordedSession()
    facts = Facts(migration_applied=True, migration_reversible=False, migration_name="0042_split_address")
    session._views = [ServiceView(v.snapshot, evaluate(v.snapshot, facts, v.snapshot.taken_at, Thresholds()))
                      for v in session._views]
    app = build_app(session, animate=False)
    assert snap_compare(app, terminal_size=SIZES[size], run_before=_open_by_key("r", "OverrideScreen"))
