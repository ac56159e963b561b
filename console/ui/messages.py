"""Messages workers post to the app. Workers never touch widgets: they call
the session and post one of these; handlers on the app apply them to panes."""

from __future__ import annotations

from textual.message import Message

from console.model import Event, Progress, RollbackPlan, ServiceView


class Refreshed(Message):
    """One refresh cycle finished: fresh views for every service and the timeline."""

    def __init__(self, views: list[ServiceView], events: list[Event]) -> None:
        super().__init__()
        self.views = views
        self.events = events


class TimelineChanged(Message):
    """The timeline has new entries (a rollback step, a note)."""

    def __init__(self, events: list[Event]) -> None:
        super().__init__()
        self.events = events

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
