"""The facts the console cannot observe, declared by the operator (`f`)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Select, Static


from console.model import Facts

from ..widgets import MarkedCheckbox

# (Facts field, the runbook's words, what declaring it does to the decision)
FLAGS: tuple[tuple[str, str, str], ...] = (
    ("data_corruption", "Data corruption detected", "rollback now + freeze writes"),
    ("security_vulnerability", "Security vulnerability active", "rollback now"),
    ("migration_applied", "Database migration applied", "fix forward unless it is reversible"),
    ("minor_bug_workaround", "Minor bug, workaround exists", "hotfix"),
    ("external_service_issue", "External service issue", "wait for external fix"),
    ("infrastructure_issue", "Infrastructure issue", "escalate to Level 3 (SRE/Platform Team)"),
)
_REVERSIBLE = (("unknown (treated as not reversible)", "unknown"), ("reversible", "yes"), ("NOT reversible", "no"))


def parse_impact_time(text: str, now: datetime) -> datetime | None:
    """"now", "HH:MM" (UTC, today or yesterday, never in the future) or an ISO
    time as an aware UTC datetime; ValueError with a sentence otherwise."""
    text = text.strip()
    if not text:
        return None
    if text.lower() == "now":
        return now
    try:
        clock = datetime.strptime(text, "%H:%M")
    except ValueError:
        try:
            at = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a time: write HH:MM in UTC, 'now', or an ISO time.") from None
        return at if at.tzinfo else at.replace(tzinfo=timezone.utc)
    at = now.astimezone(timezone.utc).replace(hour=clock.hour, minute=clock.minute, second=0, microsecond=0)
    return at - timedelta(days=1) if at > now else at


class FactsScreen(ModalScreen[dict | None]):
    """Dismisses with the facts that changed ({field: value}), or None when cancelled."""

    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="facts.cancel"),
        Binding("ctrl+s", "save", "Save", id="facts.save"),
    ]

    def __init__(self, facts: Facts, now: datetime) -> None:
        super().__init__()
        self.facts = facts
        self.now = now

    def compose(self) -> ComposeResult:
        facts = self.facts
        with Vertical(id="dialog"):
            yield Static(Content.styled("Facts the console cannot observe", "bold"), classes="dialog-title")
            yield Static(Content.styled("Each change is stored in the timeline with your name and the time, "
                                        "and the decision follows it. Space toggles · Ctrl+S saves · Esc cancels",
                                        "$sev-muted"), markup=False)
            for name, words, effect in FLAGS:
                yield MarkedCheckbox(Content.assemble(words, (f"  → {effect}", "$sev-muted")), getattr(facts, name),
                               id=f"fact-{name}")
            with Horizontal(classes="field"):
                yield Static("Migration reversible?", classes="label", markup=False)
                current = {None: "unknown", True: "yes", False: "no"}[facts.migration_reversible]
                yield Select(_REVERSIBLE, value=current, allow_blank=False, id="fact-migration_reversible")
            with Horizontal(classes="field"):
                yield Static("Customer impact started at", classes="label", markup=False)
                since = facts.customer_impact_since
                yield Input(value=f"{since:%H:%M}" if since else "", placeholder="HH:MM UTC, or now",
                            id="fact-customer_impact_since")
            yield Static("", id="facts-error", markup=False)
            with Horizontal(classes="buttons"):
                yield Button("Save (ctrl+s)", id="save", variant="primary")
                yield Button("Cancel (esc)", id="cancel")

    def on_mount(self) -> None:
        self.query_one(Checkbox).focus()

    def changes(self) -> dict:
        """The facts that differ from the ones shown at open; ValueError for a bad time."""
        changed: dict = {}
        for name, _, _ in FLAGS:
            value = self.query_one(f"#fact-{name}", Checkbox).value
            if value != getattr(self.facts, name):
                changed[name] = value
        reversible = {"unknown": None, "yes": True, "no": False}[self.query_one("#fact-migration_reversible", Select).value]
        if reversible != self.facts.migration_reversible:
            changed["migration_reversible"] = reversible
        text = self.query_one("#fact-customer_impact_since", Input).value
        since = parse_impact_time(text, self.now)
        old = self.facts.customer_impact_since
        if (since is None) != (old is None) or (since and old and f"{since:%H:%M}" != f"{old:%H:%M}"):
            changed["customer_impact_since"] = since
        return changed

    def action_save(self) -> None:
        """Save the changed facts."""
        try:
            changed = self.changes()
        except ValueError as err:
            self.query_one("#facts-error", Static).update(Content.styled(str(err), "bold $sev-critical"))
            return
        self.dismiss(changed)

    def action_cancel(self) -> None:
        """Close without changing anything."""
        self.dismiss(None)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "save":
            self.action_save()
        else:
            self.action_cancel()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.action_save()
