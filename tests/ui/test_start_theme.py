"""The theme given at start-up (set before the app runs, without Textual's
watcher: issue 17) styles every widget as the same theme chosen while running."""

from __future__ import annotations

import pytest
from ui_samples import RecordedSession

from console.ui.app import build_app

SIZE = (140, 45)


def _looks(app) -> dict:
    """What a theme decides: the app's theme classes and every node's colours."""
    return {
        "theme": app.theme,
        "classes": sorted(c for c in app.classes if c.startswith("-")),
        "ansi": app.ansi_theme,
        "nodes": [(type(n).__name__, n.id, str(n.styles.background), str(n.styles.color),
                   str(n.styles.border_top)) for n in app.screen.walk_children(with_self=True)],
    }


@pytest.mark.parametrize("theme", ["light", "high-contrast"])
async def test_a_theme_given_at_start_looks_as_when_chosen_later(theme: str) -> None:
    started = build_app(RecordedSession(), theme=theme, animate=False)
    async with started.run_test(size=SIZE) as pilot:
        await pilot.pause()
        at_start = _looks(started)
        filters = [type(f).__name__ for f in started._filters]
    switched = build_app(RecordedSession(), animate=False)
    async with switched.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert _looks(switched)["theme"] == "default"
        switched.theme = theme
        await pilot.pause()
        later = _looks(switched)
        assert filters == [type(f).__name__ for f in switched._filters]
    assert at_start["theme"] == theme
    assert f"-theme-{theme}" in at_start["classes"]
    assert at_start == later
