"""The TUI resumes the garbage collector that start-up paused (console/launch.py,
issue 17) once its first frame is painted."""

from __future__ import annotations

import gc

from ui_samples import RecordedSession

from console.ui.app import build_app


async def test_the_app_resumes_the_collector_after_its_first_frame() -> None:
    gc.disable()  # as the entry point (console/launch.py) leaves it
    try:
        app = build_app(RecordedSession(), animate=False)
        async with app.run_test(size=(140, 45)) as pilot:
            await pilot.pause()
            assert gc.isenabled()
    finally:
        gc.enable()
