"""The timeline pane wraps each event once per width: a new entry wraps only itself."""

from __future__ import annotations

from datetime import timedelta

from textual.app import App, ComposeResult
from ui_samples import NOW

from console import incident
from console.model import Event
from console.ui.panes import timeline as timeline_module
from console.ui.panes.timeline import TimelinePane


class _TimelineApp(App[None]):
    def compose(self) -> ComposeResult:
        yield TimelinePane(id="timeline")


async def test_a_new_event_wraps_only_itself_and_a_resize_wraps_all_again(monkeypatch) -> None:
    wrapped: list[str] = []
    real = timeline_module.event_lines

    def counting(event, width):
        wrapped.append(event.text)
        return real(event, width)

    monkeypatch.setattr(timeline_module, "event_lines", counting)
    old = [Event(NOW - timedelta(minutes=i), incident.NOTE, f"note {i}", "oncall") for i in range(1, 4)]
    app = _TimelineApp()
    async with app.run_test(size=(100, 20)) as pilot:
        pane = app.query_one(TimelinePane)
        await pilot.pause()
        pane.show(old)
        assert sorted(wrapped) == ["note 1", "note 2", "note 3"]
        wrapped.clear()
        newest = Event(NOW, incident.NOTE, "note 0", "oncall")
        pane.show([newest, *old])
        assert wrapped == ["note 0"]
        shown = str(pane.query_one("#timeline-lines").render())
        assert shown.index("note 0") < shown.index("note 1") < shown.index("note 3")
        wrapped.clear()
        await pilot.resize_terminal(60, 20)
        for _ in range(10):
            await pilot.pause()
            if len(wrapped) >= 4:
                break
        assert sorted(wrapped) == ["note 0", "note 1", "note 2", "note 3"]
