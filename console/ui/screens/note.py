"""A one-line note for the incident timeline."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Input, Static


class NoteScreen(ModalScreen[str | None]):
    """Ask for a note; dismisses with the text, or None when cancelled."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="note.cancel")]

    def __init__(self, animate: bool = True, title: str = "Add a note to the timeline",
                 placeholder: str = "What did you see or do?") -> None:
        super().__init__()
        self.animate = animate
        self.title_text = title
        self.placeholder = placeholder

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(Content.styled(self.title_text, "bold"), classes="dialog-title")
            yield Static(
                Content.styled("Enter saves · Esc cancels · it is stored with your name and the time; no secrets", "$sev-muted"),
                markup=False,
            )
            yield Input(placeholder=self.placeholder, id="note-input", max_length=500)

    def on_mount(self) -> None:
        note = self.query_one(Input)
        note.cursor_blink = self.animate
        note.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip() or None)

    def action_cancel(self) -> None:
        """Close without writing anything."""
        self.dismiss(None)
