"""GitOps owners: who deploys a service from git, whether it would undo a
rollback, and what pausing it leaves to do (README "GitOps (Argo CD and Flux)").

Pure: no I/O. `platforms/kubernetes.py` reads the owner off the objects and
returns an `Owner`; the gate refuses a plain rollback of a self-healing owner
it cannot pause; the session records the pause (`incident.gitops_paused`) and
this module turns a recorded pause into checklist items with a deadline and,
past that deadline, an escalation that names the paused owner.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from console.checklist import Checklist, Group, Item, _slug
from console.incident import OwnerPause as Paused

ARGOCD = "argocd"
FLUX = "flux"
# How the rollback of a self-healing service goes (config `gitops.method`).
PAUSE = "pause"  # pause the owner the way its tools do, then `rollout undo`
REVISION = "revision"  # Argo CD: point the Application at the previous synced revision (`argocd app rollback`)
METHODS = (PAUSE, REVISION)

GROUP = "GitOps"
"""The checklist group the pause adds (due `max_paused` after the rollback completes)."""

DEFAULT_MAX_PAUSED = timedelta(hours=24)


@dataclass(frozen=True)
class Owner:
    """The Argo CD Application or Flux Kustomization that deploys a service."""

    tool: str  # ARGOCD or FLUX
    name: str
    namespace: str
    automated: bool = False  # Argo CD automated sync on (Flux: always reconciles unless suspended)
    self_heal: bool = False  # Argo CD selfHeal (Flux: drift is always corrected)
    suspended: bool = False  # Flux spec.suspend
    revision: str = ""  # the last synced (Argo CD) or applied (Flux) revision
    previous_revision: str = ""  # Argo CD: the synced revision before it (status.history)
    interval_seconds: float | None = None  # Flux spec.interval
    # Argo CD app-of-apps: the parent Application that owns this one ("" when none).
    parent: str = ""
    parent_self_heal: bool = False
    # Why the console cannot pause it ("" when it can): RBAC, a parent it cannot reach.
    pause_problem: str = ""
    # Flux: the Kustomization or HelmRelease.
    flux_kind: str = "Kustomization"

    @property
    def kind(self) -> str:
        return "Application" if self.tool == ARGOCD else self.flux_kind

    @property
    def ref(self) -> str:
        """"Argo CD Application argocd/order-service"."""
        tool = "Argo CD" if self.tool == ARGOCD else "Flux"
        return f"{tool} {self.kind} {self.namespace}/{self.name}"

    @property
    def self_healing(self) -> bool:
        """Would it put a `rollout undo` back?"""
        if self.tool == FLUX:
            return not self.suspended
        return self.automated and self.self_heal

    @property
    def policy(self) -> str:
        """Its sync policy in a few words: "automated, self-heal", "suspended" ..."""
        if self.tool == FLUX:
            return "suspended" if self.suspended else "reconciling (drift corrected)"
        if not self.automated:
            return "manual sync (automated off)"
        return "automated, self-heal" if self.self_heal else "automated, no self-heal"

    def header(self) -> str:
        """One line for the service's header and the plan."""
        # Flux says "main@sha1:<sha>", Argo CD the bare sha.
        revision = f", synced at {self.revision.rsplit(':', 1)[-1][:12]}" if self.revision else ""
        parent = f", managed by app-of-apps {self.parent}" if self.parent else ""
        return f"owned by {self.ref} ({self.policy}{revision}{parent})"

    def resume_hint(self) -> str:
        """How to turn it back on, in its own tool's words."""
        if self.tool == FLUX:
            return f"flux resume {self.flux_kind.lower()} {self.name} -n {self.namespace}"
        hint = f"argocd app set {self.namespace}/{self.name} --sync-policy automated --self-heal"
        if self.parent:
            hint += f" (and its parent {self.parent})"
        return hint


def pause_items(paused: Paused) -> tuple[Item, Item]:
    """The two things a pause leaves to do."""
    if paused.tool == FLUX:
        again = f"Resume {paused.ref} once the fix is merged ({paused.resume})"
    else:
        again = f"Re-enable automated sync of {paused.ref} once the fix is merged ({paused.resume})"
    # Flux says "main@sha1:<sha>", Argo CD the bare sha.
    commit = f" {paused.revision.rsplit(':', 1)[-1][:12]}" if paused.revision else ""
    fix = f"Revert or fix the commit{commit} in git, so {paused.ref} does not deploy it again"
    return Item(_slug(again), again, GROUP), Item(_slug(fix), fix, GROUP)


def with_pauses(checklist: Checklist, pauses: tuple[Paused, ...], max_paused: timedelta = DEFAULT_MAX_PAUSED) -> Checklist:
    """The checklist plus the items each pause adds (unchanged when nothing was paused)."""
    if not pauses:
        return checklist
    items = list(checklist.items)
    seen = {i.id for i in items}
    for paused in pauses:
        for item in pause_items(paused):
            if item.id not in seen:
                items.append(item)
                seen.add(item.id)
    groups = checklist.groups if any(g.name == GROUP for g in checklist.groups) \
        else checklist.groups + (Group(GROUP, max_paused),)
    return replace(checklist, groups=groups, items=tuple(items))


def pause_deadline(pauses: tuple[Paused, ...], resumed: set[str],
                   max_paused: timedelta = DEFAULT_MAX_PAUSED) -> datetime | None:
    """When the earliest owner still paused must be turned back on (None when none is paused)."""
    due = [p.at + max_paused for p in pauses if pause_items(p)[0].id not in resumed]
    return min(due) if due else None


def overdue_pause(pauses: tuple[Paused, ...], resumed: set[str], now: datetime,
                  max_paused: timedelta = DEFAULT_MAX_PAUSED) -> str:
    """Why the incident escalates because an owner stayed paused too long ("" when none did).
    `resumed`: the ids of the re-enable items already ticked."""
    for paused in pauses:
        again, _ = pause_items(paused)
        if again.id in resumed or now - paused.at <= max_paused:
            continue
        hours = max_paused.total_seconds() / 3600
        return (f"{paused.ref} has stayed paused for more than {hours:g} hours (since {paused.at:%Y-%m-%d %H:%M} UTC): "
                f"nothing deploys the service from git; re-enable it ({paused.resume}) or hand it over")
    return ""
