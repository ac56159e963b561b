"""A drill's debrief: the runbook's expectation against what the trainee did, and the score."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Markdown, Static


class DebriefScreen(ModalScreen[None]):
    """Shows the debrief (Markdown lines from console.drill.debrief); any of Esc, Enter, q closes it."""

    BINDINGS = [
        Binding("escape,enter,q", "close", "Close", id="debrief.close"),
    ]

    def __init__(self, title: str, lines: list[str]) -> None:
        super().__init__()
        self.title_text = title
        self.lines = lines

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="dialog"):
            yield Static(Content.styled(self.title_text, "bold"), classes="dialog-title")
            yield Markdown("\n".join(self.lines), id="debrief-text")
            yield Static(Content.styled("Esc or Enter closes · the drill goes on until you quit; "
                                        "the record keeps the final debrief", "$sev-muted"), markup=False)

    def action_close(self) -> None:
        """Back to the drill."""
        self.dismiss(None)
