"""The service list: every watched service with its decision as a badge;
the highlighted one is what the other panes show."""

from __future__ import annotations

from textual.content import Content
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from console.decision import urgency
from console.model import Action, ServiceView

from .format import BADGE, SEVERITY


def service_prompt(name: str, view: ServiceView | None) -> Content:
    """The service name with its decision badge underneath."""
    if view is None:
        return Content.assemble((name, "bold"), "\n", ("  waiting…", "$sev-muted"))
    action = view.decision.action
    badge = f" {BADGE[action]} "
    return Content.assemble(
        (name, "bold"),
        "\n",
        (badge, f"bold reverse ${SEVERITY[action]}"),
        (" stale" if view.snapshot.stale else "", "$sev-warning"),
    )


class ServiceList(OptionList):
    """One option per service, id = service name, updated in place."""

    def __init__(self, services: tuple[str, ...], **kwargs) -> None:
        super().__init__(*(Option(service_prompt(s, None), id=s) for s in services), **kwargs)
        # What each prompt shows (action, stale): with hundreds of services a
        # cycle changes few badges, and only those are rebuilt and re-measured.
        self._badges: dict[str, tuple[Action, bool]] = {}

    def show(self, views: list[ServiceView]) -> None:
        """Refresh the badges (the order stays the config's, so keys don't jump)."""
        for view in views:
            name = view.snapshot.service
            badge = (view.decision.action, view.snapshot.stale)
            if self._badges.get(name) != badge:
                self._badges[name] = badge
                self.replace_option_prompt(name, service_prompt(name, view))
        urgent = sum(1 for v in views if urgency(v.decision.action) > urgency(Action.HEALTHY))
        self.border_subtitle = f"{urgent} need attention" if urgent else "all healthy"
