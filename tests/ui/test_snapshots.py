"""Snapshots of the console's screens with frozen time and fixed data.

Regenerate after an intended visual change with
`pytest tests/ui/test_snapshots.py --snapshot-update`, then look at the SVGs
in tests/ui/__snapshots__/ before committing them.
"""

from __future__ import annotations

import pytest
from ui_samples import RecordedSession

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
