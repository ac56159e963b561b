"""Small widgets shared by the console's screens."""

from __future__ import annotations

from textual.widgets import Checkbox


class MarkedCheckbox(Checkbox):
    """A checkbox whose state shows in its mark, not only its colour: `x` when
    on, blank when off (Textual's draws an X in both states)."""

    @property
    def BUTTON_INNER(self) -> str:  # noqa: N802 - overrides Textual's class constant
        return "x" if self.value else " "
