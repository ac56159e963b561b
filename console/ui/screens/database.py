"""Database Rollback Considerations in the console: the refusal to roll back
past a migration that cannot be undone (with the runbook's three options and
an explicit override), and the reversible-migration plan run step by step."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.content import Content
from textual.widgets import Button, Checkbox, Static

from console.model import RollbackPlan, target_label
from console.procedures import RollbackCheck

from ..widgets import MarkedCheckbox
from .confirm import RefusedRollbackScreen
from .procedure import ProcedureScreen

FIX_FORWARD = "fix_forward"
FEATURE_FLAG = "feature_flag"
PARTIAL = "partial"
OVERRIDE = "override"


class MigrationBlockedScreen(RefusedRollbackScreen[tuple[str, int | None] | None]):
    """Why a plain rollback is refused (data loss), the runbook's three options,
    and an override that must be ticked before it can be pressed.

    Dismisses with (choice, revision): ("partial", N) plans the rollback to
    revision N; ("fix_forward" | "feature_flag", None) records that decision;
    ("override", None) goes on to the plan; None closes.
    """

    BINDINGS = [
        Binding("escape,n", "cancel", "Do not roll back", id="blocked.cancel"),
    ]
    dialog_class = "-blocked"
    cancel_label = "Do not roll back (esc)"
    open_at_title = True

    def __init__(self, plan: RollbackPlan, check: RollbackCheck) -> None:
        super().__init__()
        self.plan = plan
        self.check = check

    def headline(self) -> str:
        return f"Rolling {self.plan.service} back could lose data"

    def target(self) -> tuple[str, str]:
        plan = self.plan
        return "Target  ", f"{plan.to_label} ({', '.join(plan.to_versions) or '?'})"

    def compose_body(self) -> ComposeResult:
        check = self.check
        migration = check.migration.name if check.migration else "the migration"
        yield Static(Content.styled(check.explanation, "bold $sev-critical"), id="blocked-why", markup=False)
        yield Static(Content.styled("The runbook's options (DO NOT roll back the migration):", "bold"), markup=False)
        for index, option in enumerate(check.options, 1):
            with Horizontal(classes="option"):
                yield Static(Content.assemble((option.title, "bold"), "\n", (option.detail, "$sev-muted")),
                             classes="option-text", markup=False)
                if index == 3:
                    label = f"Plan rollback to {target_label(option.to_revision)}" if option.to_revision else "Not available"
                    button = Button(label, id="option-partial", variant="primary")
                    button.disabled = not option.to_revision
                    yield button
                else:
                    yield Button("Record this decision", id=f"option-{index}", variant="default")
        yield MarkedCheckbox(f"I understand that rolling back past {migration} can lose data; roll back anyway",
                       id="override-ack")

    def on_checkbox_changed(self, event: Checkbox.Changed) -> None:
        self.query_one("#override", Button).disabled = not event.value

    def on_button_pressed(self, event: Button.Pressed) -> None:
        button = event.button.id
        if button == "option-partial":
            partial = self.check.options[2].to_revision if len(self.check.options) > 2 else None
            self.dismiss((PARTIAL, partial))
        elif button == "option-1":
            self.dismiss((FIX_FORWARD, None))
        elif button == "option-2":
            self.dismiss((FEATURE_FLAG, None))
        elif button == "override":
            if self.query_one("#override-ack", Checkbox).value:
                self.dismiss((OVERRIDE, None))
        else:
            self.dismiss(None)


class MigrationRollbackScreen(ProcedureScreen):
    """The runbook's "When Migration is Reversible": the application, then the
    migration rollback command, then the data integrity check, each shown first."""

    intro = ("The migration since the deploy is reversible: roll back the application first, then the migration, "
             "then verify data integrity. Each step is shown before it runs and its output is recorded; a failure "
             "stops the plan and escalates to Level 2. Enter or ctrl+r runs the highlighted step.")

    def step_starting(self, step_id: str) -> None:
        if step_id == "app_rollback":
            self.app.rolling_back = self.service

    def step_ended(self, step_id: str, ok: bool) -> None:
        if step_id == "app_rollback" and self.app.rolling_back == self.service:
            self.app.rolling_back = None
            if ok:
                self.app._rolled_back.add(self.service)
