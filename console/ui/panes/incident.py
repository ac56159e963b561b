"""The guided incident on the main screen: the escalation strip (always
visible), the investigation countdown (large, for a shared screen) and the
post-rollback checklist."""

from __future__ import annotations

from datetime import datetime

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.message import Message
from textual.widgets import Digits, OptionList, Static
from textual.widgets.option_list import Option

from console.checklist import ChecklistStatus

from ..updates import set_content, set_digits, set_subtitle
from .format import clock_time

LEVEL_SEVERITY = {1: "sev-info", 2: "sev-warning", 3: "sev-warning", 4: "sev-critical"}


def until(at: datetime, now: datetime) -> str:
    """Time left until `at` as M:SS (H:MM:SS past an hour), 0:00 once passed."""
    seconds = max(0, int((at - now).total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def due_time(at: datetime, now: datetime) -> str:
    """A deadline as HH:MM:SS, with the day when it is not today ("Thu 18 Jan 14:44")."""
    if at.date() == now.date():
        return clock_time(at)
    return f"{at:%a %d %b %H:%M}"


class EscalationStrip(Static):
    """One line: the runbook's escalation level, why, who to contact, and when
    the next level comes by time alone."""

    def show(self, escalation, now: datetime, unsent: int = 0) -> None:
        """Render an `Escalation` (from the session) at `now`."""
        severity = LEVEL_SEVERITY.get(escalation.level, "sev-info")
        for level_severity in set(LEVEL_SEVERITY.values()):
            self.set_class(level_severity == severity, f"-{level_severity}")
        # Most important first: the line is cut at the screen's edge, the reason last.
        parts = [Content.styled(f" ESCALATION LEVEL {escalation.level} · {escalation.role} ", "bold reverse")]
        if escalation.contacts:
            parts.append(Content.assemble(("  contact ", "$sev-muted"), (", ".join(escalation.contacts), "bold")))
        if escalation.next_at is not None and escalation.level < 4:
            # Only customer impact raises the level by time alone (past its limit: Level 4).
            parts.append(Content.assemble(("  ·  Level 4 in ", "$sev-muted"), (until(escalation.next_at, now), "bold")))
        if unsent:
            parts.append(Content.styled(f"  ·  ⚠ {unsent} message{'s' if unsent != 1 else ''} not sent (m)",
                                        "bold $sev-critical"))
        parts.append(Content.styled(f"  ·  {escalation.why}", "$sev-muted"))
        set_content(self, Content.assemble(*parts))


class InvestigationCountdown(Horizontal):
    """The runbook's "Investigate 5 min, then decide", counting down in large digits."""

    def compose(self) -> ComposeResult:
        yield Digits("5:00", id="countdown-digits")
        with Vertical(id="countdown-text"):
            yield Static("INVESTIGATING", id="countdown-title", markup=False)
            yield Static("", id="countdown-caption", markup=False)

    def show(self, deadline: datetime | None, now: datetime) -> None:
        """Show the time left until `deadline`; hidden when no investigation runs."""
        self.display = deadline is not None
        if deadline is None:
            return
        expired = now >= deadline
        digits = self.query_one("#countdown-digits", Digits)
        set_digits(digits, until(deadline, now))
        digits.set_class(expired, "-sev-critical")
        digits.set_class(not expired, "-sev-warning")
        title = "TIME IS UP: DECIDE NOW" if expired else "INVESTIGATING: the runbook allows 5 minutes, then decide"
        set_content(self.query_one("#countdown-title", Static), Content.styled(title, "bold"))
        set_content(self.query_one("#countdown-caption", Static), Content.assemble(
            ("Decide by ", "$sev-muted"), (f"{clock_time(deadline)} UTC", "bold"),
            ("  ·  d decide now · r roll back · f facts", "$sev-muted"),
        ))


class ChecklistPane(OptionList):
    """The runbook's Post-Rollback Checklist: Enter or space toggles an item;
    items the console ticked say why; overdue items stand out."""

    BINDINGS = [Binding("space", "select", "Tick / untick", id="checklist.toggle")]

    class Toggled(Message):
        """The operator toggled one item."""

        def __init__(self, item_id: str) -> None:
            super().__init__()
            self.item_id = item_id

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.status: ChecklistStatus | None = None

    def show(self, status: ChecklistStatus | None, now: datetime, rolled_back: bool) -> None:
        """Render the checklist, keeping the highlighted item."""
        if status == self.status and self.option_count:
            return
        self.status = status
        highlighted = self.highlighted_option.id if self.highlighted_option is not None else None
        options: list[Option | None] = []
        if status is None:
            options.append(Option(Content.styled("No incident open: nothing to check yet.", "$sev-muted"), disabled=True))
        else:
            group = None
            for item in status.items:
                if item.group.name != group:
                    if group is not None:
                        options.append(None)
                    group = item.group.name
                    due = ""
                    if item.due_at is not None:
                        due = f"  due {due_time(item.due_at, now)} UTC"
                    elif item.group.deadline is not None and not rolled_back:
                        due = "  (deadline counts from the rollback's completion)"
                    options.append(Option(Content.assemble((item.group.heading, "bold"), (due, "$sev-muted")),
                                          id=f"group:{group}", disabled=True))
                options.append(Option(self._line(item), id=item.item.id))
        self.clear_options()
        self.add_options(options)
        if highlighted is not None:
            try:
                self.highlighted = self.get_option_index(highlighted)
            except Exception:  # the item is gone (a config change); keep the default
                pass
        done = status.done if status else 0
        total = len(status.items) if status else 0
        overdue = len(status.overdue) if status else 0
        set_subtitle(self, f"{done}/{total} done" + (f" · {overdue} OVERDUE" if overdue else "") + " · ↑↓ move · Space ticks")
        self.set_class(bool(overdue), "-overdue")

    @staticmethod
    def _line(item) -> Content:
        box = "[x]" if item.done else "[ ]"
        if item.overdue:
            return Content.assemble((f"{box} {item.item.text}", "bold $sev-critical"),
                                    ("  OVERDUE", "bold reverse $sev-critical"))
        if item.done and item.by_console:
            return Content.assemble((f"{box} {item.item.text}", "$sev-ok"),
                                    (f"  — console: {item.why}", "$sev-muted"))
        if item.done:
            return Content.assemble((f"{box} {item.item.text}", "$sev-ok"), (f"  — {item.by}", "$sev-muted"))
        return Content(f"{box} {item.item.text}")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if event.option.id and not event.option.id.startswith("group:"):
            self.post_message(self.Toggled(event.option.id))
