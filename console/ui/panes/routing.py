"""Where the traffic goes and who holds the rollback lease.

The routing pane shows a blue-green service's live colour or a canary's
weights; the lease strip names the console that is rolling the service back
right now, so a second operator in the war room sees it before pressing
anything. Both are read after every refresh (`Session.surroundings`: by the
refresh process, or by a thread worker without one) and hidden for platforms
without them.
"""

from __future__ import annotations

from textual.content import Content
from textual.message import Message
from textual.widgets import Static

from console.platforms.base import Routing

from ..updates import set_content, set_subtitle, set_title

BAR_WIDTH = 8
"""Characters of the weight bar at 100 %."""


class PlatformExtras(Message):
    """The routing and lease holder of one service, fetched by a worker.
    `error` and `lease_error` are operator sentences when reading them failed."""

    def __init__(self, service: str, routing: Routing | None, holder: object | None, error: str | None = None,
                 lease_error: str | None = None, owner: object | None = None, owner_error: str | None = None,
                 paused: object | None = None, store_switch: object | None = None) -> None:
        super().__init__()
        # The autopilot's kill switch: the Lease in the service's namespace
        # (`lease.ClusterPause`) and the incident store's (`journal.Switch`).
        self.paused = paused
        self.store_switch = store_switch
        # The GitOps owner (`console.gitops.Owner`), for the owner strip.
        self.owner = owner
        self.owner_error = owner_error
        self.service = service
        self.routing = routing
        self.holder = holder
        self.error = error
        self.lease_error = lease_error


def _bar(weight: int) -> str:
    filled = round(BAR_WIDTH * max(0, min(100, weight)) / 100)
    return "█" * filled + "░" * (BAR_WIDTH - filled)


def routing_content(routing: Routing) -> Content:
    """The live colour or the split, one line per colour or subset, then the replicas."""
    lines: list[Content] = []
    if routing.kind == "blue-green":
        live = routing.active or "none of the configured colours"
        lines.append(Content.assemble(("Live ", "$sev-muted"), (live, "bold")))
    else:
        lines.append(Content.styled("Weights", "$sev-muted"))
    for name, weight in routing.weights:
        style = "bold" if weight > 0 else "$sev-muted"
        lines.append(Content.assemble((f"{name:<6} ", style), (_bar(weight), style), (f" {weight:>3}%", style)))
    if routing.replicas:
        lines.append(Content.styled(
            "\n".join(f"{count} × {deployment}" for deployment, count in routing.replicas),
            "$sev-muted"))
    if routing.source:
        lines.append(Content.styled(f"from {routing.source}", "$sev-muted"))
    return Content("\n").join(lines)


PANE_WIDTH = (24, 36)
"""The routing pane's narrowest and widest widths in columns, border and padding included:
as wide as its longest line ("from service/order-service") within them."""


def pane_width(routing: Routing | None) -> int:
    """The routing pane's width for `routing` (the widest, for an error sentence, which wraps)."""
    narrowest, widest = PANE_WIDTH
    if routing is None:
        return widest
    longest = max((len(line) for line in routing_content(routing).plain.splitlines()), default=0)
    return max(narrowest, min(widest, longest + 4))


class RoutingPane(Static):
    """The live colour (blue-green) or the current weights (canary) of the selected service."""

    def show(self, routing: Routing | None, error: str | None = None) -> None:
        """Render `routing`; hidden when the platform has no traffic switch."""
        self.display = routing is not None or error is not None
        if routing is None and error is None:
            return
        set_title(self, "Traffic" if routing is None else ("Blue-green" if routing.kind == "blue-green" else "Canary"))
        if routing is None:
            set_content(self, Content.styled(error or "", "$sev-warning"))
            return
        set_content(self, routing_content(routing))
        set_subtitle(self, str(routing))


class LeaseStrip(Static):
    """One line naming another console's rollback lease on the selected service."""

    def show(self, holder: object | None, mine: bool) -> None:
        """Show who holds the lease (nothing when nobody does, or this console does)."""
        if holder is None or mine:
            self.display = False
            return
        self.display = True
        sentence = holder.sentence()  # type: ignore[attr-defined]
        if getattr(holder, "expired", False):
            set_content(self, Content.styled(
                f"⚠ {sentence}. The lease expired (its holder stopped renewing it): it may be taken over.",
                "$sev-warning"))
            return
        expires = getattr(holder, "expires", None)
        until = f" (lease renewed until {expires:%H:%M:%S} UTC)" if expires else ""
        set_content(self, Content.assemble(("⛔ ", "bold $sev-critical"), (f"{sentence}.{until}", "bold")))


class AutopilotStrip(Static):
    """One line while the autopilot is paused for the selected service (by the
    incident store's switch or the Lease in its namespace): nothing is rolled
    back automatically until someone resumes it, and a forgotten pause is a
    missing safety net."""

    def show(self, paused: object | None, store_switch: object | None) -> None:
        parts = []
        stored = store_switch if store_switch is not None and getattr(store_switch, "paused", False) else None
        if stored is not None and paused is not None and getattr(paused, "by", None) == stored.by:
            # One pause written in both places (the A key): said once, with both places.
            parts.append(paused.sentence(also_in_store=True))  # type: ignore[attr-defined]
        else:
            if stored is not None:
                parts.append(f"paused by {stored.by} at {stored.at:%H:%M:%S} UTC: {stored.reason} (incident store)")
            if paused is not None:
                parts.append(paused.sentence())  # type: ignore[attr-defined]
        self.display = bool(parts)
        if parts:
            set_content(self, Content.assemble(("⏸ AUTOPILOT PAUSED: ", "bold $sev-warning"), ("; ".join(parts), ""),
                                         (". It rolls nothing back until resumed (A).", "$sev-muted")))
