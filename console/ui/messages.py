"""Messages workers post to the app. Workers never touch widgets: they call
the session and post one of these; handlers on the app apply them to panes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.message import Message

from console.model import Event, Progress, RollbackPlan, ServiceView

if TYPE_CHECKING:
    from console.session import Session
    from console.store import OutboxEntry


def unsent_messages(session: Session) -> dict[str, list[OutboxEntry]]:
    """The unsent messages of every service with an open incident. Reads the
    store: call it in a worker thread, never on the UI's loop."""
    return {s: session.pending_messages(s) for s in session.services if session.incident_state(s) is not None}


def timeline_changed(session: Session) -> TimelineChanged:
    """The timeline and the unsent messages read now, for a worker to post."""
    return TimelineChanged(session.timeline(), unsent_messages(session))


def refreshed(session: Session, views: list[ServiceView]) -> Refreshed:
    """A refresh's views with the timeline and the unsent messages read now (in a worker)."""
    return Refreshed(views, session.timeline(), unsent_messages(session))


class Refreshed(Message):
    """One refresh cycle finished: fresh views for every service, the timeline
    and the unsent messages of each service with an open incident (read in the
    worker: the UI thread never waits on the store)."""

    def __init__(self, views: list[ServiceView], events: list[Event], pending: dict[str, list[OutboxEntry]]) -> None:
        super().__init__()
        self.views = views
        self.events = events
        self.pending = pending


class TimelineChanged(Message):
    """The timeline has new entries (a rollback step, a note), with the unsent
    messages as they stand now (read in the worker, like the events)."""

    def __init__(self, events: list[Event], pending: dict[str, list[OutboxEntry]]) -> None:
        super().__init__()
        self.events = events
        self.pending = pending

    def can_replace(self, message: Message) -> bool:
        # Only the newest timeline matters when updates arrive in a burst.
        return isinstance(message, TimelineChanged)


class PlanReady(Message):
    """A rollback plan was made and is ready to show the operator."""

    def __init__(self, plan: RollbackPlan) -> None:
        super().__init__()
        self.plan = plan


class RollbackProgress(Message):
    """One step of a running rollback, worded like `kubectl rollout status`."""

    def __init__(self, progress: Progress) -> None:
        super().__init__()
        self.progress = progress


class RollbackFinished(Message):
    """The rollback worker ended: `error` is an operator sentence when it
    failed; `skipped` when the plan had nothing to change."""

    def __init__(self, service: str, ok: bool, error: str | None = None, skipped: bool = False) -> None:
        super().__init__()
        self.service = service
        self.ok = ok
        self.error = error
        self.skipped = skipped


class OperationFailed(Message):
    """Planning or another operator action failed with a PlatformError sentence."""

    def __init__(self, what: str, error: str) -> None:
        super().__init__()
        self.what = what
        self.error = error
