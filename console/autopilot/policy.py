"""The autopilot's own limits, on top of the gate. Pure: no I/O, the time is a parameter.

The gate (`console.gate`) decides whether a rollback may go ahead at all; the
autopilot asks it like every other path and adds no rule to it. What this
module adds is what only an unattended rollback needs, checked in this order:

1. The kill switch (config flag, file, the TUI's key recorded in the store,
   or the Lease in the service's namespace: console.autopilot.switch) ->
   refused: paused.
2. A cooldown per service: this service was rolled back automatically less
   than `cooldown` ago -> refused, escalate (the rollback did not fix it:
   "Rollback fails" is Level 2).
3. Blast radius: at most `max_rollbacks` automatic rollbacks per `window`
   across all services -> refused, escalate (several services bad at once
   points at the infrastructure: Level 3).
Then the gate, and after its GO:
4. Only the runbook's plain rollback: the console's own decision is
   ROLLBACK NOW and the procedure is the plain rollback. A migration (the
   three-step plan or a partial rollback) is Level 2 in the runbook; an
   override is never given by the autopilot.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from console.gate import Outcome, Procedure, Rule, Verdict
from console.model import Action, Decision

DEFAULT_COOLDOWN = timedelta(minutes=30)
DEFAULT_WINDOW = timedelta(minutes=10)
DEFAULT_MAX_ROLLBACKS = 1


class Reason(str, enum.Enum):
    """Why the autopilot did not roll back (the `reason` label of /metrics)."""

    PAUSED = "paused"
    COOLDOWN = "cooldown"
    BLAST_RADIUS = "blast_radius"
    MIGRATION = "migration"
    RUNBOOK = "runbook"
    GATE = "gate"
    NOTHING = "nothing_to_do"
    FAILED = "failed"
    JOINED = "joined"  # an alert that began before the automatic rollback it is part of


LEVELS = {
    Reason.PAUSED: 1,
    Reason.RUNBOOK: 1,
    Reason.NOTHING: 1,
    Reason.JOINED: 1,
    Reason.GATE: 2,
    Reason.COOLDOWN: 2,  # runbook: Level 2 when a "rollback fails"
    Reason.MIGRATION: 2,  # runbook: Level 2 for a "data issue"
    Reason.FAILED: 2,
    Reason.BLAST_RADIUS: 3,  # several services at once: an infrastructure issue
}
"""The runbook's escalation level each refusal implies."""


@dataclass(frozen=True)
class AutopilotPolicy:
    """The autopilot's limits; the config's `autopilot:` section overrides them."""

    cooldown: timedelta = DEFAULT_COOLDOWN
    window: timedelta = DEFAULT_WINDOW
    max_rollbacks: int = DEFAULT_MAX_ROLLBACKS


@dataclass(frozen=True)
class Refusal:
    reason: Reason
    sentence: str

    @property
    def level(self) -> int:
        return LEVELS[self.reason]


@dataclass(frozen=True)
class PastRollback:
    """An automatic rollback started earlier (from the autopilot's journal)."""

    service: str
    at: datetime


def before_gate(service: str, now: datetime, past: Iterable[PastRollback], policy: AutopilotPolicy,
                paused: str | None = None, alert_started: datetime | None = None) -> Refusal | None:
    """Rules 1-3: None when the autopilot may go on and ask the gate. An alert
    that began before this service's last automatic rollback is part of it
    (another rule on the same failure): JOINED, not a refusal to announce."""
    if paused:
        return Refusal(Reason.PAUSED, f"the autopilot is paused ({paused}); roll {service} back by hand if needed.")
    past = list(past)
    mine = [p.at for p in past if p.service == service]
    if alert_started is not None and mine and alert_started <= max(mine):
        return Refusal(Reason.JOINED, (
            f"this alert began before the automatic rollback of {service} at {max(mine):%H:%M:%S} UTC; "
            "it is part of that incident."))
    own = [p.at for p in past if p.service == service and now - p.at < policy.cooldown]
    if own:
        return Refusal(Reason.COOLDOWN, (
            f"{service} was rolled back automatically at {max(own):%H:%M:%S} UTC, less than "
            f"{_minutes(policy.cooldown)} ago, and is alerting again: the rollback did not fix it."))
    recent = [p for p in past if now - p.at < policy.window]
    if len(recent) >= policy.max_rollbacks:
        names = ", ".join(sorted({p.service for p in recent}))
        return Refusal(Reason.BLAST_RADIUS, (
            f"{len(recent)} automatic rollback{'s' if len(recent) != 1 else ''} ({names}) within the last "
            f"{_minutes(policy.window)} already; a second bad service at once points at something bigger "
            "than one deploy."))
    return None


def after_gate(service: str, decision: Decision, verdict: Verdict) -> Refusal | None:
    """Rule 4, and the gate's refusals as the autopilot reports them: None only
    for a GO of the plain rollback with the console's own ROLLBACK NOW."""
    if verdict.outcome is Outcome.NOTHING:
        return Refusal(Reason.NOTHING, verdict.sentence or f"nothing to roll back for {service}.")
    if verdict.outcome is not Outcome.GO or verdict.overridden:
        rules = {o.rule for o in verdict.objections}
        if Rule.MIGRATION in rules:
            return Refusal(Reason.MIGRATION, _joined(verdict))
        if rules == {Rule.RUNBOOK}:
            return Refusal(Reason.RUNBOOK, _joined(verdict))
        return Refusal(Reason.GATE, _joined(verdict))
    if verdict.procedure is not Procedure.ROLLBACK:
        return Refusal(Reason.MIGRATION, (
            f"the rollback of {service} is the {verdict.procedure.value} across a database migration, "
            "which the runbook leaves to people (Level 2)."))
    if decision.action is not Action.ROLLBACK_NOW:
        return Refusal(Reason.RUNBOOK, f"the console's own signals say {decision.headline}, not ROLLBACK NOW.")
    return None


def _joined(verdict: Verdict) -> str:
    return " ".join(o.sentence for o in verdict.objections) or verdict.outcome.value


def _minutes(duration: timedelta) -> str:
    minutes = duration.total_seconds() / 60
    return f"{minutes:g} minute{'s' if minutes != 1 else ''}"
