"""One revision of the rollout history: its pod template, and what differs
from the current one (`kubectl rollout history --revision=N` and a diff),
with the way to roll back to it from here."""

from __future__ import annotations

import difflib

import yaml
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Button, Static, TabbedContent, TabPane

from console.model import Revision
from console.platforms.base import PlatformError, Templated, lacks


def template_yaml(template: dict) -> str:
    """A pod template as kubectl prints it: block YAML, keys in the API's order."""
    return yaml.safe_dump(template, sort_keys=False, default_flow_style=False, allow_unicode=True, width=100)


def template_diff(current: dict, chosen: dict, current_label: str, chosen_label: str) -> list[str]:
    """A unified diff from the current template to the chosen one (what a rollback would change)."""
    return list(
        difflib.unified_diff(
            template_yaml(current).splitlines(),
            template_yaml(chosen).splitlines(),
            fromfile=current_label,
            tofile=chosen_label,
            lineterm="",
            n=3,
        )
    )


def diff_content(lines: list[str]) -> Content:
    """The diff with additions and removals coloured by the theme's severities."""
    if not lines:
        return Content.styled("No difference: this revision's pod template is the current one.", "$sev-muted")
    styled = []
    for line in lines:
        if line.startswith(("+++", "---")):
            styled.append(Content.styled(line, "bold"))
        elif line.startswith("@@"):
            styled.append(Content.styled(line, "$sev-info"))
        elif line.startswith("+"):
            styled.append(Content.styled(line, "$sev-ok"))
        elif line.startswith("-"):
            styled.append(Content.styled(line, "$sev-critical"))
        else:
            styled.append(Content(line))
    return Content("\n").join(styled)


class RevisionScreen(ModalScreen[Revision | None]):
    """A revision's pod template and its diff against the current revision.
    Dismisses with the revision number when the operator asks to roll back to it."""

    BINDINGS = [
        Binding("r", "roll_back", "Roll back to this", id="revision.rollback"),
        Binding("escape,q", "close", "Close", id="revision.close"),
    ]

    class Loaded(Message):
        """The templates arrived (or `error`, a sentence, says why they did not)."""

        def __init__(self, chosen: dict | None, current: dict | None, error: str | None = None) -> None:
            super().__init__()
            self.chosen = chosen
            self.current = current
            self.error = error

    def __init__(self, session, service: str, revision: Revision, current: Revision | None) -> None:
        super().__init__()
        self.session = session
        self.service = service
        self.revision = revision
        self.current = current
        self.diff_lines: list[str] = []

    def compose(self) -> ComposeResult:
        rev = self.revision
        with Vertical(id="dialog", classes="-revision"):
            mark = " (current)" if rev.current else ""
            yield Static(Content.styled(f"{self.service}: {rev.label}{mark}", "bold"), classes="dialog-title")
            facts = [
                Content.assemble(("Images   ", "$sev-muted"), ", ".join(rev.images) or "—"),
                Content.assemble(("Cause    ", "$sev-muted"), rev.change_cause or "—"),
                Content.assemble(("Created  ", "$sev-muted"),
                                 f"{rev.created:%Y-%m-%d %H:%M:%S} UTC" if rev.created else "—"),
            ]
            if rev.ref:
                facts.append(Content.assemble(("Object   ", "$sev-muted"), rev.ref))
            yield Static(Content("\n").join(facts), markup=False)
            with TabbedContent(initial="revision-diff"):
                against = f"Diff against {self.current.label}" if self.current else "Diff"
                with TabPane(against, id="revision-diff"):
                    with VerticalScroll(classes="revision-text"):
                        yield Static(Content.styled("Reading the pod templates…", "$sev-muted"), id="diff-text",
                                     markup=False)
                with TabPane("Pod template", id="revision-template"):
                    with VerticalScroll(classes="revision-text"):
                        yield Static(Content.styled("Reading the pod template…", "$sev-muted"), id="template-text",
                                     markup=False)
            with Horizontal(classes="buttons"):
                if not rev.current:
                    yield Button(f"Roll back to {rev.label} (r)", id="rollback", variant="error")
                yield Button("Close (esc)", id="close", variant="default")

    def on_mount(self) -> None:
        self.query_one("#close", Button).focus()
        self._load()

    @work(thread=True, exclusive=True, group="revision", exit_on_error=False)
    def _load(self) -> None:
        platform = None
        try:
            platform = self.session.platform(self.service)
        except PlatformError as err:
            self.post_message(self.Loaded(None, None, str(err)))
            return
        if not isinstance(platform, Templated):
            self.post_message(self.Loaded(None, None, lacks(platform, Templated)))
            return
        reader = platform.template
        try:
            # Blue-green: each colour numbers its own revisions, so read by colour (the live one is None).
            by_colour = getattr(platform, "colour_template", None)
            if self.revision.colour and by_colour is not None:
                chosen = by_colour(self.revision.colour)
            else:
                chosen = reader(self.revision.number)
            current = reader(self.current.number) if self.current and not self.current.colour else reader(None)
        except PlatformError as err:
            self.post_message(self.Loaded(None, None, str(err)))
            return
        self.post_message(self.Loaded(chosen, current))

    def on_revision_screen_loaded(self, message: Loaded) -> None:
        diff, template = self.query_one("#diff-text", Static), self.query_one("#template-text", Static)
        if message.error:
            diff.update(Content.styled(message.error, "$sev-warning"))
            template.update(Content.styled(message.error, "$sev-warning"))
            return
        current_label = f"{self.current.label} (current)" if self.current else "current"
        self.diff_lines = template_diff(message.current or {}, message.chosen or {}, current_label,
                                        self.revision.label)
        diff.update(diff_content(self.diff_lines))
        template.update(template_yaml(message.chosen or {}))

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "rollback":
            self.action_roll_back()
        else:
            self.dismiss(None)

    def action_roll_back(self) -> None:
        """Plan a rollback to this revision (the plan is shown before anything changes)."""
        if not self.revision.current:
            self.dismiss(self.revision)

    def action_close(self) -> None:
        """Close without planning anything."""
        self.dismiss(None)
