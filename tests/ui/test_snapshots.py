"""Snapshots of the console's screens with frozen time and fixed data.

Regenerate after an intended visual change with
`pytest tests/ui/test_snapshots.py --snapshot-update`, then look at the SVGs
in tests/ui/__snapshots__/ before committing them.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from ui_samples import RecordedSession

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
