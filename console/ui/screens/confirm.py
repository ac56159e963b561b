"""Confirmation modals: the rollback plan before anything changes, the red
layout of a rollback the console refuses unless overridden, and quitting
while a rollback runs."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from console.model import ApiCall, RollbackPlan, revision_cell


def _arrow(before: str, after: str) -> Content:
    return Content.assemble((before, "bold $sev-critical"), "  →  ", (after, "bold $sev-ok"))


def _join(items: tuple[str, ...] | tuple[int, ...]) -> str:
    return ", ".join(str(i) for i in items) or "—"


def call_widgets(calls: Iterable[ApiCall]) -> ComposeResult:
    """The exact requests or commands, one line each, with its body beneath."""
    for call in calls:
        yield Static(Content.styled(f"{call.method} {call.target}", "bold $sev-info"), markup=False)
        if call.body:
            yield Static(call.body, classes="call-body", markup=False)


class YesNoScreen(ModalScreen[bool]):
    """A question before something changes: y or the `yes_button` answers yes;
    n, esc or Cancel (focused first, so enter changes nothing) answers no."""

    yes_button = "confirm"

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == self.yes_button)

    def action_confirm(self) -> None:
        """Go ahead."""
        self.dismiss(True)

    def action_cancel(self) -> None:
        """Change nothing."""
        self.dismiss(False)


Answer = TypeVar("Answer")


class RefusedRollbackScreen(ModalScreen[Answer]):
    """The red layout of a rollback the console refuses unless overridden (the gate's
    override, a migration that could lose data): the title, the plan's target on one
    line, why it is refused (`compose_body`), and an action bar whose "anyway" button
    stays disabled until the operator has done what the dialog asks (typed a reason,
    ticked an acknowledgement). Cancel has the focus, so Enter changes nothing; it and
    esc dismiss with None."""

    dialog_class = ""
    anyway_label = "Roll back anyway"
    anyway_id = "override"
    cancel_label = "Cancel (esc)"
    cancel_variant = "default"
    # A long body: focusing Cancel scrolls it down to the button; open at the title instead
    # (the buttons are docked, in sight).
    open_at_title = False

    plan: RollbackPlan

    def headline(self) -> str:
        """The dialog's title: what would be rolled back (each dialog says it its way)."""
        return f"Roll {self.plan.service} back anyway?"

    def target(self) -> tuple[str, str]:
        """The plan's one line: (label, what it goes to)."""
        return "Target  ", self.plan.to_label

    def compose_body(self) -> ComposeResult:
        """Why it is refused and what the operator must do to go ahead (each dialog's own)."""
        yield from ()

    def compose(self) -> ComposeResult:
        label, value = self.target()
        with Vertical(id="dialog", classes=self.dialog_class):
            yield Static(Content.styled(self.headline(), "bold"), classes="dialog-title")
            yield Static(Content.assemble((label, "$sev-muted"), value), markup=False)
            yield from self.compose_body()
            with Horizontal(classes="buttons"):
                anyway = Button(self.anyway_label, id=self.anyway_id, variant="error")
                anyway.disabled = True
                yield anyway
                yield Button(self.cancel_label, id="cancel", variant=self.cancel_variant)

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()
        if self.open_at_title:
            self.call_after_refresh(self.query_one("#dialog").scroll_home, animate=False)

    def action_cancel(self) -> None:
        """Close: nothing is rolled back."""
        self.dismiss(None)


class ConfirmRollbackScreen(ModalScreen[bool]):
    """Shows a rollback plan: revisions, images and the exact API calls.
    A skipped plan says why and offers only to close.

    Confirmed, it calls `on_confirm(self)` at once (the app starts the
    rollback) and stays, unchanged, until the app calls `sent()` once the
    platform has the change (or the rollback ended before); then it dismisses
    True. Nothing is repainted while the change is being sent: the screen
    beneath was repainted by the UI thread while the rollback's thread sent
    it, and held that thread back by 20-30 ms. Should sending take longer
    than `SENDING_NOTICE` seconds, the dialog says the change is being sent."""

    SENDING_NOTICE = 0.2

    BINDINGS = [
        Binding("y", "confirm", "Roll back", id="confirm.yes"),
        Binding("a", "confirm_and_announce", "Roll back and post Rollback in Progress", id="confirm.announce"),
        Binding("n,escape", "cancel", "Cancel", id="confirm.no"),
    ]

    def __init__(self, plan: RollbackPlan, reason: str = "",
                 on_confirm: Callable[[ConfirmRollbackScreen], None] | None = None) -> None:
        super().__init__()
        self.plan = plan
        self.reason = reason
        self._on_confirm = on_confirm
        # Set when the operator also wants the runbook's "Rollback in Progress" posted.
        self.announce = False
        self.sending = False
        """Confirmed: the rollback has started and the change is on its way."""
        self._sent = False

    def compose(self) -> ComposeResult:
        plan = self.plan
        with Vertical(id="dialog", classes="-skipped" if plan.skip_reason else "-plan"):
            if plan.skip_reason:
                yield Static(Content.styled(f"Nothing to roll back for {plan.service}", "bold"), classes="dialog-title")
                yield Static(Content.assemble("Skipped: ", (plan.skip_reason, "bold")), markup=False)
                yield Static(
                    Content.styled("No change will be made. The timeline records that the rollback was skipped.", "$sev-muted"),
                    markup=False,
                )
                with Horizontal(classes="buttons"):
                    yield Button("Close (esc)", id="cancel", variant="default")
                return
            yield Static(Content.styled(f"Roll back {plan.service}?", "bold"), classes="dialog-title")
            if self.reason:
                yield Static(Content.assemble("Because  ", (self.reason, "bold $sev-critical")), markup=False)
            yield Static(
                Content.assemble("Revision ", _arrow(revision_cell(plan.from_revision, plan.from_colour) or "?",
                                                     revision_cell(plan.to_revision, plan.to_colour) or "?")),
                markup=False,
                id="plan-revisions",
            )
            yield Static(
                Content.assemble("Version  ", _arrow(_join(plan.from_versions), _join(plan.to_versions))),
                markup=False,
                id="plan-versions",
            )
            yield Static(
                Content.styled(f"From     {_join(plan.from_images)}\nTo       {_join(plan.to_images)}", "$sev-muted"),
                markup=False,
            )
            if plan.summary:
                yield Static(plan.summary, markup=False)
            yield Static(
                Content.styled(f"The console will make {'this call' if len(plan.pre_calls) + len(plan.calls) == 1 else 'these calls'} ({plan.platform}):", "bold"),
                markup=False,
            )
            with VerticalScroll(id="plan-calls"):
                yield from call_widgets((*plan.pre_calls, *plan.calls))  # pre_calls: pausing a GitOps owner
            if plan.resource_version and "resourceVersion" not in plan.summary:
                yield Static(
                    Content.styled(
                        f"Refused if the target changed since you looked (resourceVersion {plan.resource_version}).",
                        "$sev-muted",
                    ),
                    markup=False,
                )
            sending = Static(Content.styled("Sending the change…", "bold $sev-info"), markup=False, id="sending")
            sending.display = False
            yield sending
            with Horizontal(classes="buttons"):
                yield Button("Roll back (y)", id="confirm", variant="error")
                yield Button("Roll back + post (a)", id="announce", variant="warning",
                             tooltip="Roll back and post the runbook's Rollback in Progress message")
                yield Button("Cancel (n / esc)", id="cancel", variant="default")

    def on_mount(self) -> None:
        # The operator pressed r deliberately and reads the plan: Enter confirms.
        self.query_one("#confirm" if not self.plan.skip_reason else "#cancel", Button).focus()
        # The plan opens at its top: which service, which revisions (a long plan
        # scrolls its calls, never the title out of sight; the title is docked too).
        self.call_after_refresh(self.query_one("#dialog").scroll_home, animate=False)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "announce":
            self.action_confirm_and_announce()
        elif event.button.id == "confirm":
            self.action_confirm()
        else:
            self.action_cancel()

    def action_confirm(self) -> None:
        """Roll back (only when there is something to roll back)."""
        self._confirm(announce=False)

    def action_confirm_and_announce(self) -> None:
        """Roll back and post the runbook's "Rollback in Progress" message at once."""
        self._confirm(announce=True)

    def _confirm(self, announce: bool) -> None:
        if self.plan.skip_reason or self.sending:
            return  # a second key does not start a second rollback
        self.sending, self.announce = True, announce
        if self._on_confirm is None:
            self.dismiss(True)
            return
        self._on_confirm(self)
        self.set_timer(self.SENDING_NOTICE, self._still_sending)

    def _still_sending(self) -> None:
        if self.is_attached and not self._sent:
            for button in self.query(Button):
                button.disabled = True
            self.query_one("#sending").display = True

    def sent(self) -> None:
        """The platform has the change (or the rollback ended first): close,
        now or when a screen pushed over this one meanwhile is gone."""
        self._sent = True
        if self.is_attached and self.app.screen is self:
            self.dismiss(True)

    def on_screen_resume(self) -> None:
        if self._sent:
            self.dismiss(True)

    def action_cancel(self) -> None:
        """Close without changing anything (not once the change is on its way)."""
        if not self.sending:
            self.dismiss(False)


class ConfirmQuitScreen(ModalScreen[bool]):
    """Quitting while a rollback runs stops the console watching it."""

    BINDINGS = [
        Binding("y", "quit_anyway", "Quit anyway", id="quit.yes"),
        Binding("n,escape", "stay", "Stay", id="quit.no"),
    ]

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(Content.styled(f"A rollback of {self.service} is running", "bold"), classes="dialog-title")
            yield Static(
                "If you quit, the rollout goes on in the cluster but nobody here watches it, "
                "and the timeline stops recording its progress. Check it afterwards with "
                f"kubectl rollout status deployment/{self.service}.",
                markup=False,
            )
            with Horizontal(classes="buttons"):
                yield Button("Stay (n / esc)", id="stay", variant="primary")
                yield Button("Quit anyway (y)", id="quit", variant="error")

    def on_mount(self) -> None:
        self.query_one("#stay", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "quit")

    def action_quit_anyway(self) -> None:
        """Quit the console."""
        self.dismiss(True)

    def action_stay(self) -> None:
        """Keep watching the rollback."""
        self.dismiss(False)
