"""The incident timeline, newest first: what happened, when, and who did it."""

from __future__ import annotations

import json
import textwrap

from textual.containers import VerticalScroll
from textual.content import Content
from textual.widgets import Static

from console import incident
from console.model import Action, Event

from ..updates import set_content
from .format import SEVERITY, clock_time

# Label and theme variable per event kind; unknown kinds read as plain notes.
_KINDS: dict[str, tuple[str, str]] = {
    incident.INCIDENT_OPENED: ("OPENED", "sev-info"),
    incident.INCIDENT_CLOSED: ("CLOSED", "sev-ok"),
    incident.FACT_SET: ("FACT", "sev-info"),
    incident.DECISION: ("DECISION", "sev-info"),
    incident.ROLLBACK_STARTED: ("ROLLBACK", "sev-warning"),
    incident.ROLLBACK_PROGRESS: ("PROGRESS", "sev-muted"),
    incident.ROLLBACK_COMPLETED: ("COMPLETE", "sev-ok"),
    incident.ROLLBACK_FAILED: ("FAILED", "sev-critical"),
    incident.WRITES_FROZEN: ("FROZEN", "sev-critical"),
    incident.WRITES_RESUMED: ("RESUMED", "sev-ok"),
    incident.ESCALATED: ("ESCALATED", "sev-warning"),
    incident.NOTE: ("NOTE", "sev-info"),
    incident.CHECKLIST_TICKED: ("CHECKLIST", "sev-ok"),
    incident.CHECKLIST_UNTICKED: ("CHECKLIST", "sev-warning"),
    incident.MESSAGE_SENT: ("MESSAGE", "sev-ok"),
    incident.MESSAGE_FAILED: ("UNSENT", "sev-critical"),
    incident.TIMELINE_EXPORTED: ("EXPORTED", "sev-info"),
}
# Console-side kinds (errors the UI itself records).
ERROR = "error"
_KINDS[ERROR] = ("ERROR", "sev-critical")

_LABEL_WIDTH = max(len(label) for label, _ in _KINDS.values())


def _severity(event: Event) -> str:
    label_severity = _KINDS.get(event.kind, ("", "sev-info"))[1]
    if event.kind == incident.DECISION:
        # A decision is coloured like the banner that showed it.
        raw = dict(event.data).get("action")
        try:
            return SEVERITY[Action(json.loads(raw) if raw else "")]
        except (ValueError, TypeError):
            return label_severity
    return label_severity


def event_lines(event: Event, width: int) -> list[Content]:
    """One timeline entry: time, kind, then the text wrapped under itself
    (a hanging indent keeps the time column clean), the actor last."""
    label = _KINDS.get(event.kind, (event.kind.upper()[:_LABEL_WIDTH], "sev-info"))[0]
    text_style = "$sev-muted" if event.kind == incident.ROLLBACK_PROGRESS else ""
    prefix = Content.assemble(
        (clock_time(event.at), "$sev-muted"), "  ", (f"{label:<{_LABEL_WIDTH}}", f"bold ${_severity(event)}"), "  "
    )
    indent = prefix.cell_length
    if width - indent < 30:
        # Too narrow for a hanging indent: the header on its own line, the text under it.
        room = max(10, width)
        wrapped = textwrap.wrap(f"{event.text}  — {event.actor}", room, break_on_hyphens=False) or [""]
        return [prefix] + [Content.styled(chunk, text_style) for chunk in wrapped]
    room = width - indent
    actor = f"  — {event.actor}"
    wrapped = textwrap.wrap(event.text, room, break_long_words=True, break_on_hyphens=False) or [""]
    lines = [Content.assemble(prefix if i == 0 else " " * indent, (chunk, text_style)) for i, chunk in enumerate(wrapped)]
    if len(wrapped[-1]) + len(actor) <= room:
        lines[-1] = Content.assemble(lines[-1], (actor, "$sev-muted"))
    else:
        lines.append(Content.assemble(" " * indent, (actor.strip(), "$sev-muted")))
    return lines


class TimelinePane(VerticalScroll):
    """Newest first; keeps the scroll position when new entries arrive."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._events: list[Event] = []
        # Each event's lines at the width they were wrapped for: a new entry wraps only itself.
        self._lines: dict[tuple[Event, int], list[Content]] = {}

    def compose(self):
        yield Static("Nothing has happened yet.", id="timeline-lines", markup=False)

    def on_resize(self) -> None:
        # After the resize settles: an update made during layout keeps a stale height.
        self.call_after_refresh(self._render_events)

    def show(self, events: list[Event]) -> None:
        """Show these events (already newest first)."""
        if events == self._events:
            return
        self._events = list(events)
        self._render_events()

    def _render_events(self) -> None:
        lines = self.query_one("#timeline-lines", Static)
        if not self._events:
            set_content(lines, "Nothing has happened yet.")
            return
        width = max(1, self.scrollable_content_region.width)
        cache = {(e, width): self._lines.get((e, width)) or event_lines(e, width) for e in self._events}
        self._lines = cache
        set_content(lines, Content("\n").join(line for e in self._events for line in cache[(e, width)]))
