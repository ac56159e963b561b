"""A guided procedure from console/procedures.py, step by step: the
reversible-migration plan and the data-corruption response share this screen.

Every step is shown before it runs (the runbook's command beside the exact
request or command the console will make, and the question to confirm), runs
in a thread worker, and its result and output come back from the timeline's
own record. A step is never skipped silently: skipping needs a reason. A
failed step stays current, so running it again resumes the procedure.
"""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Log, OptionList, Static
from textual.widgets.option_list import Option

from console.database import DatabaseError
from console.runbook import StepOutcome, StepPreview
from console.platforms.base import PlatformError
from console.procedures import ProcedureError, ProcedureState, StepState, StepStatus

from ..messages import timeline_changed
from .confirm import YesNoScreen, call_widgets

OUTPUT_LINES = 200
"""Lines of a step's output kept on screen (the timeline keeps all of it)."""

_MARKS = {
    StepStatus.PENDING: ("○", "$sev-muted"),
    StepStatus.RUNNING: ("◐", "bold $sev-info"),
    StepStatus.DONE: ("✓", "bold $sev-ok"),
    StepStatus.FAILED: ("✗", "bold $sev-critical"),
    StepStatus.SKIPPED: ("↷", "bold $sev-warning"),
    StepStatus.NOT_NEEDED: ("–", "$sev-muted"),
}

_FAILURES = (DatabaseError, PlatformError, ProcedureError)


def step_line(step: StepState, current: bool) -> Content:
    """"✓ 1. IMMEDIATELY stop writes  done" for the step list."""
    mark, style = _MARKS[step.status]
    status = step.status.value.replace("_", " ")
    return Content.assemble((f"{mark} ", style), (step.label, "bold" if current else ""), (f"  {status}", style))


def step_detail(step: StepState, preview: StepPreview | None) -> Content:
    """What the step did last and what it will do now."""
    lines = [Content.styled(step.label, "bold"),
             Content.assemble(("Runbook   ", "$sev-muted"), step.spec.runbook)]
    mark, style = _MARKS[step.status]
    when = f" at {step.at:%H:%M:%S} UTC" if step.at else ""
    who = f" by {step.actor}" if step.actor else ""
    lines.append(Content.assemble(("Status    ", "$sev-muted"), (f"{mark} {step.status.value.replace('_', ' ')}", style),
                                  f"{when}{who}"))
    if step.result:
        lines.append(Content.assemble(("Result    ", "$sev-muted"), step.result))
    if step.error:
        lines.append(Content.assemble(("Error     ", "$sev-muted"), (step.error, "$sev-critical")))
    if step.reason:
        lines.append(Content.assemble(("Skipped   ", "$sev-muted"), f"reason: {step.reason}"))
    if preview is not None:
        if preview.calls:
            lines.append(Content.styled("The console will run:", "bold"))
            for call in preview.calls:
                lines.append(Content.styled(f"  {call.method} {call.target}", "$sev-info"))
                if call.body:
                    lines.append(Content.styled("\n".join("    " + line for line in call.body.splitlines()), "$sev-muted"))
        if preview.confirmation:
            lines.append(Content.assemble(("Asks      ", "$sev-muted"), (preview.confirmation, "bold")))
        if preview.blocked:
            lines.append(Content.assemble(("Cannot run ", "$sev-muted"), (preview.blocked, "$sev-warning")))
    return Content("\n").join(lines)


class StepConfirmScreen(YesNoScreen):
    """The question a step asks before it changes something, with the exact calls."""

    BINDINGS = [
        Binding("y", "confirm", "Run the step", id="step.yes"),
        Binding("n,escape", "cancel", "Cancel", id="step.no"),
    ]

    def __init__(self, preview: StepPreview) -> None:
        super().__init__()
        self.preview = preview

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="-step"):
            yield Static(Content.styled(self.preview.step.label, "bold"), classes="dialog-title")
            yield Static(Content.styled(self.preview.confirmation, "bold"), id="step-question", markup=False)
            with VerticalScroll(id="plan-calls"):
                yield from call_widgets(self.preview.calls)
            with Horizontal(classes="buttons"):
                yield Button("Run (y)", id="confirm", variant="error")
                yield Button("Cancel (n / esc)", id="cancel", variant="default")


class ProcedureScreen(ModalScreen[None]):
    """A procedure's steps with their status; the highlighted step's preview,
    run (after confirming what it asks) or skip (with a reason)."""

    BINDINGS = [
        Binding("ctrl+r", "run_step", "Run step", id="procedure.run"),
        Binding("ctrl+s", "skip_step", "Skip with reason", id="procedure.skip"),
        Binding("escape", "close", "Close", id="procedure.close"),
    ]

    intro: str = ""

    class Loaded(Message):
        """The procedure's state (and the highlighted step's preview) as read from the timeline."""

        def __init__(self, state: ProcedureState | None, preview: StepPreview | None, extra: object = None,
                     error: str | None = None) -> None:
            super().__init__()
            self.state = state
            self.preview = preview
            self.extra = extra
            self.error = error

    class StepProgress(Message):
        def __init__(self, line: str) -> None:
            super().__init__()
            self.line = line

    class StepEnded(Message):
        def __init__(self, step: str, outcome: StepOutcome | None, error: str | None = None) -> None:
            super().__init__()
            self.step = step
            self.outcome = outcome
            self.error = error

    def __init__(self, session, service: str, runner) -> None:
        super().__init__()
        self.session = session
        self.service = service
        self.runner = runner
        self.state: ProcedureState | None = None
        self.preview: StepPreview | None = None
        self.selected: str | None = None
        self.running: str | None = None
        self.outcomes: list[StepOutcome] = []

    # -- layout ------------------------------------------------------------

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="-procedure"):
            yield Static(Content.styled(f"{self.runner.title}: {self.service}", "bold"), classes="dialog-title")
            if self.intro:
                yield Static(Content.styled(self.intro, "$sev-muted"), id="procedure-intro", markup=False)
            with Horizontal(id="procedure-body"):
                steps = OptionList(id="procedure-steps")
                steps.border_title = "Steps"
                yield steps
                with VerticalScroll(id="procedure-side"):
                    yield Static("", id="step-detail", markup=False)
                    yield from self.compose_choice()
            output = Log(id="step-output", highlight=False, max_lines=OUTPUT_LINES)
            output.border_title = "Output"
            yield output
            yield Input(placeholder="Reason to skip this step (a skip is recorded with it)", id="skip-reason",
                        max_length=300)
            with Horizontal(classes="buttons"):
                yield Button("Run step (ctrl+r)", id="run", variant="error")
                yield Button("Skip with reason (ctrl+s)", id="skip", variant="warning")
                yield Button("Close (esc)", id="close", variant="default")

    def compose_choice(self) -> ComposeResult:
        """Widgets a step needs to choose something (the corruption response's backup)."""
        yield from ()

    def on_mount(self) -> None:
        self.query_one("#skip-reason", Input).cursor_blink = self.app.animate
        self.query_one(OptionList).focus()
        self.reload()

    # -- reading -------------------------------------------------------------

    def choice(self) -> str | None:
        """What the selected step runs with (a backup path); None for most steps."""
        return None

    def reload(self, step_id: str | None = None) -> None:
        """Read the state and preview `step_id` (default: the step to do next)."""
        self._load(step_id, self.choice())

    @work(thread=True, exclusive=True, group="procedure-load", exit_on_error=False)
    def _load(self, step_id: str | None, choice: str | None) -> None:
        try:
            state = self.runner.state()
            target = step_id or (state.current.id if state.current else state.steps[0].id)
            extra = self.load_extra(target)
            preview = self.runner.preview(target, choice if choice is not None else self.default_choice(target, extra))
        except _FAILURES as err:
            self.post_message(self.Loaded(None, None, error=str(err)))
            return
        self.post_message(self.Loaded(state, preview, extra))

    def load_extra(self, step_id: str) -> object:
        """Anything else the step needs read in the worker (the backups list)."""
        return None

    def default_choice(self, step_id: str, extra: object) -> str | None:
        return None

    def on_procedure_screen_loaded(self, message: Loaded) -> None:
        if message.error:
            self.query_one("#step-detail", Static).update(Content.styled(message.error, "$sev-warning"))
            return
        self.state, self.preview = message.state, message.preview
        self.apply_extra(message.extra)
        self._render_steps()
        self._render_detail()

    def apply_extra(self, extra: object) -> None:
        """Show what `load_extra` read."""

    def _render_steps(self) -> None:
        state = self.state
        if state is None or self.preview is None:
            return
        steps = self.query_one(OptionList)
        current = state.current.id if state.current else None
        self.selected = self.preview.step.id
        highlighted = next(i for i, s in enumerate(state.steps) if s.id == self.selected)
        steps.set_options([Option(step_line(s, s.id == current), id=s.id) for s in state.steps])
        with steps.prevent(OptionList.OptionHighlighted):
            steps.highlighted = highlighted
        steps.border_subtitle = "finished" if state.finished else (
            f"stopped at {state.stopped.label}" if state.stopped else (f"next: {state.current.label}" if state.current else ""))

    def _render_detail(self) -> None:
        if self.state is None or self.preview is None:
            return
        step = self.state.step(self.preview.step.id)
        self.query_one("#step-detail", Static).update(step_detail(step, self.preview))
        log = self.query_one(Log)
        if self.running is None:
            log.clear()
            if step.output:
                log.write_lines(step.output.splitlines()[-OUTPUT_LINES:])
        skippable = not step.status.complete and self.running is None
        self.query_one("#skip", Button).disabled = not skippable
        self.query_one("#run", Button).disabled = self.running is not None or bool(self.preview.blocked)

    @on(OptionList.OptionSelected, "#procedure-steps")
    def _selected(self, event: OptionList.OptionSelected) -> None:
        # Enter on a step runs it; a step that changes something asks first.
        if event.option_id == self.selected:
            self.action_run_step()

    @on(OptionList.OptionHighlighted, "#procedure-steps")
    def _highlighted(self, event: OptionList.OptionHighlighted) -> None:
        if event.option_id and event.option_id != self.selected:
            self.selected = event.option_id
            self.reload(event.option_id)

    # -- acting ----------------------------------------------------------------

    def action_run_step(self) -> None:
        """Run the highlighted step, after confirming what it asks."""
        preview = self.preview
        if preview is None or self.running is not None:
            return
        if preview.blocked:
            self.notify(preview.blocked, title="Cannot run this step", severity="warning", timeout=10)
            return
        choice = self.choice()

        def answered(ok: bool | None) -> None:
            if ok:
                self._start(preview.step.id, choice)
            else:
                self.notify(f"{preview.step.label}: not run; nothing was changed.", timeout=4)

        if preview.confirmation:
            self.app.push_screen(StepConfirmScreen(preview), answered)
        else:
            self._start(preview.step.id, choice)

    def _start(self, step_id: str, choice: str | None) -> None:
        self.running = step_id
        log = self.query_one(Log)
        log.clear()
        log.write_line(f"running {self.state.step(step_id).label if self.state else step_id}…")
        self._render_detail()
        self.step_starting(step_id)
        self._run(step_id, choice)

    def step_starting(self, step_id: str) -> None:
        """Hook: the app's state while a step runs (a rollback in flight)."""

    def step_ended(self, step_id: str, ok: bool) -> None:
        """Hook: undo what step_starting did."""

    @work(thread=True, exclusive=True, group="procedure-run", exit_on_error=False)
    def _run(self, step_id: str, choice: str | None) -> None:
        try:
            outcome = self.runner.run(step_id, choice, on_progress=lambda line: self.post_message(self.StepProgress(line)))
        except _FAILURES as err:
            self.post_message(self.StepEnded(step_id, None, str(err)))
        else:
            self.post_message(self.StepEnded(step_id, outcome))
        self.app.post_message(timeline_changed(self.session))

    def on_procedure_screen_step_progress(self, message: StepProgress) -> None:
        self.query_one(Log).write_line(message.line)

    def on_procedure_screen_step_ended(self, message: StepEnded) -> None:
        self.running = None
        outcome = message.outcome
        log = self.query_one(Log)
        ok = outcome is not None and outcome.ok
        self.step_ended(message.step, ok)
        if outcome is None:
            log.write_line(f"not run: {message.error}")
            self.notify(message.error or "", title="Step not run", severity="error", timeout=15)
            self.reload(message.step)
            return
        self.outcomes.append(outcome)
        if outcome.ok:
            self.query_one("#skip-reason", Input).value = ""
        if outcome.output:
            log.write_lines(outcome.output.splitlines()[-OUTPUT_LINES:])
        log.write_line(f"{'done' if outcome.ok else 'FAILED'}: {outcome.summary}")
        if outcome.ok:
            self.notify(f"{self.state.step(message.step).label if self.state else message.step}: {outcome.summary}",
                        title=self.runner.title, timeout=8)
            following = outcome.state.current
            self.state = outcome.state
            self._load(following.id if following else message.step, None)
        else:
            self.notify(f"{outcome.summary}. The procedure stopped here: fix the cause and run the step again, "
                        "or skip it with a reason.", title="Step failed", severity="error", timeout=20)
            self.reload(message.step)
        self.app.call_later(self.app.request_refresh)

    def action_skip_step(self) -> None:
        """Skip the highlighted step with the reason typed below (never silently)."""
        if self.preview is None or self.running is not None:
            return
        reason = self.query_one("#skip-reason", Input).value.strip()
        if not reason:
            self.notify("Skipping a step needs a reason: type it in the box below the output, then skip again.",
                        title="Reason needed", severity="warning", timeout=10)
            self.query_one("#skip-reason", Input).focus()
            return
        self._skip(self.preview.step.id, reason)

    @work(thread=True, exclusive=True, group="procedure-run", exit_on_error=False)
    def _skip(self, step_id: str, reason: str) -> None:
        try:
            outcome = self.runner.skip(step_id, reason)
        except _FAILURES as err:
            self.post_message(self.StepEnded(step_id, None, str(err)))
            return
        self.post_message(self.StepEnded(step_id, outcome))
        self.app.post_message(timeline_changed(self.session))

    @on(Input.Submitted, "#skip-reason")
    def _reason_entered(self) -> None:
        self.action_skip_step()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "run":
            self.action_run_step()
        elif event.button.id == "skip":
            self.action_skip_step()
        else:
            self.action_close()

    def action_close(self) -> None:
        """Back to the console; the procedure stays where it is (its state is the timeline's)."""
        if self.running is not None:
            self.notify("A step is running: wait for it to finish before closing.", severity="warning", timeout=6)
            return
        self.dismiss(None)
