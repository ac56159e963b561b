"""The frame probe for a Textual app, on its own: `bench/app_probe.py` runs it
inside the measured process, so it imports nothing the console does not
(bench/common.py's HTTP client alone, urllib.request with http.client and the
email package, was 2 MB of that process and 10-15 ms of its start-up)."""

from __future__ import annotations

import time
from typing import Any, Callable


class FrameProbe:
    """Watches a Textual app's frames: wraps `app._display` (called for every
    compositor update, headless or not) and renders each update to terminal
    bytes as a real terminal driver would, then stamps it.

    `on_frame(t)` runs after each painted frame with its monotonic time."""

    def __init__(self, app: Any, on_frame: Callable[[float], None] | None = None) -> None:
        self.app = app
        self.frames: list[float] = []
        self.on_frame = on_frame
        self._original = app._display
        app._display = self._display

    def _display(self, screen: Any, renderable: Any) -> None:
        self._original(screen, renderable)
        if renderable is None or self.app._batch_count:
            return
        render = getattr(renderable, "render_segments", None)
        if render is not None and self.app.is_headless:
            render(self.app.console)  # the bytes a terminal would get: part of the frame's cost
        now = time.monotonic()
        self.frames.append(now)
        if self.on_frame is not None:
            self.on_frame(now)
