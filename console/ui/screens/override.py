"""The gate's override dialog: a rollback the gate stops (the runbook does not
say ROLLBACK NOW, the target was rolled back from, never became ready, or
crosses a migration) goes ahead only when the operator types why, and, where
the config names Level 2 approvers, who approved it. Red; Cancel has the
focus, so Enter changes nothing."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.content import Content
from textual.widgets import Button, Input, Static

from console.gate import Verdict
from console.model import RollbackPlan

from .confirm import RefusedRollbackScreen


class OverrideScreen(RefusedRollbackScreen[tuple[str, str | None] | None]):
    """Why the gate stops the rollback, and the override: dismisses with
    (reason, approved_by) once a reason is typed (and an approver, when the
    config names them); None when cancelled."""

    BINDINGS = [Binding("escape", "cancel", "Do not roll back", id="override.cancel")]
    # Cancel has the focus whenever the dialog shows (Enter changes nothing), not the first input.
    AUTO_FOCUS = "#cancel"
    dialog_class = "-override"
    anyway_label = "Roll back anyway (enter)"
    anyway_id = "override-go"
    cancel_variant = "primary"

    def __init__(self, plan: RollbackPlan, verdict: Verdict, approvers: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.plan = plan
        self.verdict = verdict
        self.approvers = approvers

    def _versions(self) -> tuple[str, str]:
        plan = self.plan
        return (", ".join(plan.from_versions) or f"revision {plan.from_revision}",
                ", ".join(plan.to_versions) or plan.to_label)

    def headline(self) -> str:
        return f"Override: roll {self.plan.service} back to {self._versions()[1]}?"

    def target(self) -> tuple[str, str]:
        source, target = self._versions()
        return "Plan  ", f"{source}  →  {target}"

    def compose_body(self) -> ComposeResult:
        yield Static(Content.styled("The gate stops this rollback because:", "bold"), markup=False)
        for objection in self.verdict.objections:
            text = objection.sentence + "".join(f"\n  {option}" for option in objection.options)
            yield Static(Content.styled(text, "bold $sev-critical"), classes="objection", markup=False)
        yield Static("Type why you roll back anyway: it is recorded in the timeline with your name.",
                     markup=False)
        yield Input(placeholder="reason for the override (required)", id="override-reason")
        if self.approvers:
            yield Input(placeholder=f"approved by (Level 2: {', '.join(self.approvers)})", id="override-approver")

    def _answer(self) -> tuple[str, str | None] | None:
        reason = self.query_one("#override-reason", Input).value.strip()
        approver = None
        if self.approvers:
            approver = self.query_one("#override-approver", Input).value.strip() or None
            if approver not in self.approvers:
                return None
        return (reason, approver) if reason else None

    def on_input_changed(self, event: Input.Changed) -> None:
        self.query_one("#override-go", Button).disabled = self._answer() is None

    def on_input_submitted(self, event: Input.Submitted) -> None:
        answer = self._answer()
        if answer is not None:
            self.dismiss(answer)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "override-go":
            answer = self._answer()
            if answer is not None:
                self.dismiss(answer)
        else:
            self.dismiss(None)
