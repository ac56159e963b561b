"""The decision at the end of the investigation (or whenever `d` asks for it):
roll back, keep investigating, fix forward, hotfix or wait, each but the
rollback with a reason, and the current signals in view."""

from __future__ import annotations

from datetime import datetime

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static

from console.model import ServiceView

from ..panes.format import SEVERITY, millis, rate

# (choice id, button label, key) in the order offered.
OPTIONS: tuple[tuple[str, str, str], ...] = (
    ("rollback", "Roll back", "f2"),
    ("keep_investigating", "Keep investigating", "f3"),
    ("fix_forward", "Fix forward", "f4"),
    ("hotfix", "Hotfix", "f6"),
    ("wait", "Wait for external fix", "f7"),
)


class DecideScreen(ModalScreen[tuple[str, str] | None]):
    """Dismisses with (choice, reason), or None when closed without deciding.
    A reason is required for every choice but the rollback (whose reason is the
    runbook's row and goes into the rollback's confirmation)."""

    BINDINGS = [
        Binding("escape", "cancel", "Close", id="decide.cancel"),
        *(Binding(key, f"choose('{choice}')", label, id=f"decide.{choice}", priority=True)
          for choice, label, key in OPTIONS),
    ]

    def __init__(self, view: ServiceView | None, now: datetime, expired: bool) -> None:
        super().__init__()
        self.view = view
        self.now = now
        self.expired = expired

    def compose(self) -> ComposeResult:
        title = "5 minutes are up: decide" if self.expired else "Decide"
        with Vertical(id="dialog", classes="-decide"):
            yield Static(Content.styled(title, "bold"), classes="dialog-title")
            yield Static("", id="decide-signals", markup=False)
            yield Static(Content.styled("Why (required for all but the rollback; it goes in the timeline and the RCA):",
                                        "$sev-muted"), markup=False)
            yield Input(placeholder="e.g. the error rate is flat at 2 % and we found the cause", id="decide-reason",
                        max_length=300)
            yield Static("", id="decide-error", markup=False)
            with Horizontal(classes="buttons"):
                for choice, label, key in OPTIONS:
                    yield Button(f"{label} ({key.upper()})", id=f"choose-{choice}",
                                 variant="error" if choice == "rollback" else "default")
            yield Static(Content.styled("Type the reason, then press the key of the decision · esc closes "
                                        "(the console asks again while the time is up)", "$sev-muted"), markup=False)

    def on_mount(self) -> None:
        self.show_view(self.view)
        self.query_one(Input).focus()

    def show_view(self, view: ServiceView | None) -> None:
        """Keep the current signals in view while the operator decides."""
        self.view = view
        target = self.query_one("#decide-signals", Static)
        if view is None:
            target.update("No signals yet.")
            return
        m, h, d = view.snapshot.metrics, view.snapshot.health, view.decision
        lines = [
            Content.assemble(("Runbook now: ", "$sev-muted"), (d.headline, f"bold ${SEVERITY[d.action]}")),
            *(Content(f"  {reason}") for reason in d.reasons[:3]),
            Content.assemble(
                ("Error rate ", "$sev-muted"), (rate(m.error_rate), "bold"),
                ("   p95 ", "$sev-muted"), (millis(m.latency_p95_ms), "bold"),
                ("   pods ", "$sev-muted"), (f"{h.ready if h.ready is not None else '?'}/{h.desired if h.desired is not None else '?'} ready", "bold"),
            ),
        ]
        target.update(Content("\n").join(lines))

    def action_choose(self, choice: str) -> None:
        """Decide `choice` (with the reason typed above)."""
        reason = self.query_one(Input).value.strip()
        if choice != "rollback" and not reason:
            self.query_one("#decide-error", Static).update(
                Content.styled("Say why first: a decision without a reason cannot be reviewed in the RCA.",
                               "bold $sev-critical"))
            self.query_one(Input).focus()
            return
        self.dismiss((choice, reason))

    def action_cancel(self) -> None:
        """Close without deciding (the countdown stays expired and the console asks again)."""
        self.dismiss(None)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.action_choose(event.button.id.removeprefix("choose-"))
