"""The runbook's Data Corruption Response, guided: declaring it, its six
steps (console/runbook.py's `CorruptionResponse`) with a backup picker for
the restore, and freezing or resuming writes from the main screen."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.widgets import Button, Select, Static

from console.database import Backup, DatabaseError
from console.runbook import StepPreview

from .confirm import YesNoScreen, call_widgets
from .procedure import ProcedureScreen


def _size(size: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size} B"


def backup_label(backup: Backup) -> str:
    """"backup_before_deploy.dump  (12.3 KiB, 2024-07-09 10:40 UTC)"."""
    return f"{backup.name}  ({_size(backup.size)}, {backup.modified:%Y-%m-%d %H:%M} UTC)"


class DeclareCorruptionScreen(YesNoScreen):
    """Opening the response declares data corruption: escalation goes to Level 2 at once."""

    BINDINGS = [
        Binding("y", "declare", "Declare and start", id="corruption.declare"),
        Binding("n,escape", "cancel", "Cancel", id="corruption.cancel"),
    ]
    yes_button = "declare"

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="-declare"):
            yield Static(Content.styled(f"Declare data corruption for {self.service}?", "bold"), classes="dialog-title")
            yield Static(
                "The runbook's Data Corruption Response starts here: the fact is recorded in the timeline, the "
                "decision framework follows it, and escalation goes to Level 2 (Team Lead: data issues) at once. "
                "Then the six steps: stop writes, assess the damage, restore from a backup or run the fix script, "
                "verify, resume.",
                markup=False,
            )
            with Horizontal(classes="buttons"):
                yield Button("Declare and start (y)", id="declare", variant="error")
                yield Button("Cancel (n / esc)", id="cancel", variant="default")

    def action_declare(self) -> None:
        """Declare data corruption and open the response."""
        self.dismiss(True)


class CorruptionScreen(ProcedureScreen):
    """The six steps of the Data Corruption Response; the restore step picks its dump here."""

    intro = ("Escalated to Level 2 (data issue). Steps run in order; step 3 or step 4 is enough; a skip needs a "
             "reason; a failed step stops the response there, resumable. Enter or ctrl+r runs the highlighted step.")

    def __init__(self, session, service: str, runner) -> None:
        super().__init__(session, service, runner)
        self.backups: list[Backup] = []

    def compose_choice(self) -> ComposeResult:
        select: Select[str] = Select([], prompt="Choose the backup to restore", id="backup-select", allow_blank=True)
        select.display = False
        yield select
        yield Static("", id="backup-note", markup=False)

    def load_extra(self, step_id: str) -> object:
        if step_id != "restore":
            return None
        try:
            return self.runner.backups()
        except DatabaseError as err:
            return str(err)

    def default_choice(self, step_id: str, extra: object) -> str | None:
        if step_id == "restore" and isinstance(extra, list) and extra:
            return extra[0].path  # newest first
        return None

    def apply_extra(self, extra: object) -> None:
        select = self.query_one("#backup-select", Select)
        note = self.query_one("#backup-note", Static)
        restore = self.preview is not None and self.preview.step.id == "restore"
        select.display = restore and isinstance(extra, list) and bool(extra)
        note.display = restore
        if not restore:
            return
        if isinstance(extra, str):
            note.update(Content.styled(extra, "$sev-warning"))
            return
        backups = extra if isinstance(extra, list) else []
        if not backups:
            note.update(Content.styled("No backups found in the configured folder (database.backups.dir): put the "
                                       "dump taken before the deploy there, or run the fix script (step 4) instead.",
                                       "$sev-warning"))
            return
        note.update(Content.styled("Newest first. The restore names this database and dump before it runs.",
                                   "$sev-muted"))
        if [b.path for b in backups] != [b.path for b in self.backups]:
            self.backups = backups
            chosen = self.preview.calls and next((b.path for b in backups if b.path in self.preview.calls[0].target), None)
            with select.prevent(Select.Changed):
                select.set_options([(backup_label(b), b.path) for b in backups])
                select.value = chosen or backups[0].path

    def choice(self) -> str | None:
        if self.selected != "restore":
            return None
        select = self.query_one("#backup-select", Select)
        value = select.value
        return value if isinstance(value, str) else None

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "backup-select" and self.selected == "restore":
            self.reload("restore")


class WritesScreen(YesNoScreen):
    """Freeze writes (scale to 0, the count remembered) or resume them
    (scale back to it): the exact request and the replica count, before it runs."""

    BINDINGS = [
        Binding("y", "confirm", "Confirm", id="writes.yes"),
        Binding("n,escape", "cancel", "Cancel", id="writes.no"),
    ]

    def __init__(self, service: str, preview: StepPreview, freeze: bool, replicas: int | None) -> None:
        super().__init__()
        self.service = service
        self.preview = preview
        self.freeze = freeze
        self.replicas = replicas

    def compose(self) -> ComposeResult:
        count = "?" if self.replicas is None else str(self.replicas)
        with Vertical(id="dialog", classes="-writes"):
            if self.freeze:
                yield Static(Content.styled(f"Freeze writes to {self.service}: scale {count} → 0 replicas?", "bold"),
                             classes="dialog-title")
                yield Static(
                    f"Every write stops. The console remembers {count} replicas in the incident and restores "
                    f"exactly that when you resume (w again, or step 6 of the corruption response). This is step 1 "
                    "of the Data Corruption Response: data corruption is declared and escalation goes to Level 2.",
                    markup=False,
                )
            else:
                yield Static(Content.styled(f"Resume writes to {self.service}: scale 0 → {count} replicas?", "bold"),
                             classes="dialog-title")
                yield Static(f"{count} replicas is the count remembered when writes were frozen. Step 6 of the Data "
                             "Corruption Response.", markup=False)
            with VerticalScroll(id="plan-calls"):
                yield from call_widgets(self.preview.calls)
            with Horizontal(classes="buttons"):
                label = "Scale to 0 (y)" if self.freeze else f"Scale to {count} (y)"
                yield Button(label, id="confirm", variant="error" if self.freeze else "warning")
                yield Button("Cancel (n / esc)", id="cancel", variant="default")
