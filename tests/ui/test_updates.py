"""`set_content` (console/ui/updates.py): an update that keeps a widget's
size repaints it alone; one that may change the size asks for a layout; the
screen shows the new text either way."""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.content import Content
from textual.widgets import Static

from console.ui.updates import set_content


class _Panes(App[None]):
    CSS = "#auto { height: auto; } #fixed { height: 2; width: 30; }"

    def compose(self) -> ComposeResult:
        yield Static("checked 3s ago", id="auto", markup=False)
        yield Static("escalation level 1", id="fixed", markup=False)


def _shown(app: App, widget_id: str) -> str:
    widget = app.query_one(f"#{widget_id}", Static)
    return "\n".join(strip.text for strip in widget.render_lines(widget.region.reset_offset)).rstrip()


async def test_same_shape_repaints_without_layout_and_new_shape_reflows() -> None:
    app = _Panes()
    async with app.run_test(size=(60, 10)) as pilot:
        await pilot.pause()
        auto = app.query_one("#auto", Static)

        set_content(auto, "checked 4s ago")  # same width, same lines
        assert not auto._layout_required
        await pilot.pause()
        assert "checked 4s ago" in _shown(app, "auto")

        set_content(auto, Content("checked 12s ago\nstale"))  # one more line: the height changes
        assert auto._layout_required
        await pilot.pause()
        assert auto.size.height == 2
        assert "stale" in _shown(app, "auto")


async def test_a_fixed_size_widget_never_reflows_and_equal_content_is_skipped() -> None:
    app = _Panes()
    async with app.run_test(size=(60, 10)) as pilot:
        await pilot.pause()
        fixed = app.query_one("#fixed", Static)

        set_content(fixed, "escalation level 2 · contact the incident commander")
        assert not fixed._layout_required
        await pilot.pause()
        assert "level 2" in _shown(app, "fixed")

        before = fixed.content
        set_content(fixed, " ".join(["escalation level 2 ·", "contact the incident commander"]))
        assert fixed.content is before  # equal: not even repainted
