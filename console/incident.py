"""An incident's lifecycle, event-sourced: the state is the fold of its timeline.

The store keeps every event as it happens; after a crash, `rebuild()` over the
stored events gives back the same state: facts, decisions, the rollback and
its times, the replica count to restore after writes were frozen, and the
escalation. Pure: no I/O, the time comes in with each event or as `now`.

Events are `model.Event`s. This module defines their vocabulary: the kinds
below and each kind's payload (a dict, stored as JSON; `model.Event.data`
carries it as sorted (key, JSON text) pairs, see `payload()`). The builders
(`opened()`, `fact_set()`, `decided()` ...) return a `NewEvent` so every
writer words and shapes events the same way.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timedelta
from typing import Any, Iterable, Mapping

from console.decision import Thresholds
from console.model import Action, Decision, Event, Facts, Progress, RollbackPlan, image_tag, versions_label

# --- event kinds (payload keys in the comments) ---------------------------------

INCIDENT_OPENED = "incident.opened"  # service, title
INCIDENT_CLOSED = "incident.closed"  # -
FACT_SET = "fact.set"  # name (a Facts field), value (JSON; datetimes as ISO text)
DECISION = "decision"  # action, reasons (list of text), deadline, freeze_writes, stale
ROLLBACK_STARTED = "rollback.started"  # from_revision, to_revision, from_versions, to_versions, platform
ROLLBACK_PROGRESS = "rollback.progress"  # message, updated, ready, desired
ROLLBACK_COMPLETED = "rollback.completed"  # -
ROLLBACK_FAILED = "rollback.failed"  # error
WRITES_FROZEN = "writes.frozen"  # replicas (the count to restore when writes resume)
WRITES_RESUMED = "writes.resumed"  # replicas
ESCALATED = "escalated"  # level, why
NOTE = "note"  # - (the text is the note)
CHECKLIST_TICKED = "checklist.ticked"  # item (a checklist item id), why (the console's reason, "" for an operator)
CHECKLIST_UNTICKED = "checklist.unticked"  # item
MESSAGE_SENT = "message.sent"  # message (comms kind), label, channel, outbox_id
MESSAGE_FAILED = "message.failed"  # message, label, channel, outbox_id, error
TIMELINE_EXPORTED = "timeline.exported"  # path
ROLE_SET = "role.set"  # role (one of ROLES), who ("" clears it)
GITOPS_PAUSED = "gitops.paused"  # ref, tool, revision, resume, parent (README "GitOps (Argo CD and Flux)")
# Guided database procedures (console/procedures.py folds them): procedure
# ("migration_rollback" or "data_corruption"), step (a step id), title, plus:
STEP_STARTED = "procedure.step.started"  # commands (what runs, as shown), choice (the backup, for a restore)
STEP_DONE = "procedure.step.done"  # output (trimmed), result (a short summary)
STEP_FAILED = "procedure.step.failed"  # error (the operator sentence), output (trimmed)
STEP_SKIPPED = "procedure.step.skipped"  # reason (required: a step is never skipped silently)

KINDS: tuple[str, ...] = (
    INCIDENT_OPENED,
    INCIDENT_CLOSED,
    FACT_SET,
    DECISION,
    ROLLBACK_STARTED,
    ROLLBACK_PROGRESS,
    ROLLBACK_COMPLETED,
    ROLLBACK_FAILED,
    WRITES_FROZEN,
    WRITES_RESUMED,
    ESCALATED,
    NOTE,
    CHECKLIST_TICKED,
    CHECKLIST_UNTICKED,
    MESSAGE_SENT,
    MESSAGE_FAILED,
    TIMELINE_EXPORTED,
    GITOPS_PAUSED,
    STEP_STARTED,
    STEP_DONE,
    STEP_FAILED,
    STEP_SKIPPED,
)

_FACT_FIELDS = {f.name for f in fields(Facts)}
_DATETIME_FACTS = {"customer_impact_since", "investigation_started_at"}


# --- payload encoding -------------------------------------------------------------


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (tuple, set, frozenset)):
        return list(value)
    raise TypeError(f"{type(value).__name__} cannot be stored in an event payload")


def to_json(data: Mapping[str, Any]) -> str:
    """A payload as JSON text (datetimes as ISO text, enums as their values)."""
    return json.dumps(dict(data), default=_json_default, sort_keys=True, ensure_ascii=False)


def pairs(data: Mapping[str, Any] | None) -> tuple[tuple[str, str], ...]:
    """A payload as `model.Event.data`: sorted (key, JSON text of the value)."""
    if not data:
        return ()
    plain = json.loads(to_json(data))
    return tuple((key, json.dumps(plain[key], sort_keys=True, ensure_ascii=False)) for key in sorted(plain))


def payload(event: Event) -> dict[str, Any]:
    """The payload of an event, the inverse of `pairs()`."""
    return {key: json.loads(text) for key, text in event.data}


def _time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) and value not in ("", "None") else None


def _fact_value(name: str, value: Any) -> Any:
    """A stored fact value as its `Facts` type (writers that stored str(value)
    are read back too: "True", "False", "None", ISO times)."""
    if value == "None":
        value = None
    if name in _DATETIME_FACTS:
        return _time(value)
    if name == "migration_name":
        return None if value is None else str(value)
    if isinstance(value, str):
        value = {"true": True, "false": False}.get(value.lower(), value)
    if name == "migration_reversible":
        return value if value is None else bool(value)
    return bool(value)


# --- building events --------------------------------------------------------------


@dataclass(frozen=True)
class NewEvent:
    """An event to append: its kind, its timeline text and its payload."""

    kind: str
    text: str
    data: dict[str, Any] = field(default_factory=dict)


def opened(service: str, title: str = "") -> NewEvent:
    """The first event of every incident."""
    return NewEvent(INCIDENT_OPENED, f"Incident opened for {service}" + (f": {title}" if title else ""),
                    {"service": service, "title": title})


def closed() -> NewEvent:
    """The incident is over."""
    return NewEvent(INCIDENT_CLOSED, "Incident closed")


def fact_set(name: str, value: Any) -> NewEvent:
    """The operator (or a source) declares a fact; `name` is a `Facts` field."""
    if name not in _FACT_FIELDS:
        raise ValueError(f"{name!r} is not a fact the console knows; use one of {sorted(_FACT_FIELDS)}.")
    label = name.replace("_", " ")
    if name == "migration_reversible":
        # Not a claim taken back: false is the finding that it cannot be undone, None that nobody knows.
        text = {True: "Fact: the migration is reversible", False: "Fact: the migration is NOT reversible",
                None: "Fact: the migration's reversibility is unknown (treated as not reversible)"}[value]
    elif isinstance(value, bool):
        text = f"Fact: {label}" if value else f"Fact withdrawn: {label}"
    elif value is None:
        text = f"Fact cleared: {label}"
    else:
        shown = value.strftime("%H:%M:%S UTC") if isinstance(value, datetime) else value
        text = f"Fact: {label} = {shown}"
    return NewEvent(FACT_SET, text, {"name": name, "value": value})


def decided(decision: Decision) -> NewEvent:
    """A new verdict of the decision framework (append it when the action changes)."""
    why = "; ".join(str(r) for r in decision.reasons)
    return NewEvent(
        DECISION,
        decision.headline + (f": {why}" if why else ""),
        {
            "action": decision.action.value,
            "reasons": [str(r) for r in decision.reasons],
            "deadline": decision.deadline,
            "freeze_writes": decision.freeze_writes,
            "stale": decision.stale,
        },
    )


def rollback_started(plan: RollbackPlan, reason: str = "") -> NewEvent:
    """The operator confirmed the plan and the rollback began (`reason`: why, in their words)."""
    frm = versions_label(plan.from_versions, plan.from_revision, plan.from_colour)
    to = versions_label(plan.to_versions, plan.to_revision, plan.to_colour)
    extra = {"reason": reason} if reason else {}
    if plan.from_colour or plan.to_colour:
        # Blue-green: the numbers are each colour's own Deployment's; the colour says whose.
        extra |= {"from_colour": plan.from_colour, "to_colour": plan.to_colour}
    return NewEvent(
        ROLLBACK_STARTED,
        f"Rollback started: {plan.service} {frm} -> {to}" + (f" (reason: {reason})" if reason else ""),
        {
            **extra,
            "platform": plan.platform,
            "from_revision": plan.from_revision,
            "to_revision": plan.to_revision,
            "from_versions": list(plan.from_versions),
            "to_versions": list(plan.to_versions),
        },
    )


def rollback_progress(progress: Progress) -> NewEvent:
    """One step of the running rollback, as the platform reported it."""
    return NewEvent(
        ROLLBACK_PROGRESS,
        progress.message,
        {"updated": progress.updated, "ready": progress.ready, "desired": progress.desired},
    )


def rollback_completed(message: str = "Rollback complete") -> NewEvent:
    """The rollback finished and the platform reports it healthy."""
    return NewEvent(ROLLBACK_COMPLETED, message)


def rollback_failed(error: str) -> NewEvent:
    """The rollback failed; `error` is the operator sentence."""
    return NewEvent(ROLLBACK_FAILED, f"Rollback failed: {error}", {"error": error})


def writes_frozen(replicas: int) -> NewEvent:
    """Writes stopped (scaled to 0); `replicas` is the count to restore later."""
    return NewEvent(WRITES_FROZEN, f"Writes frozen: scaled to 0 (was {replicas} replicas)", {"replicas": replicas})


def writes_resumed(replicas: int) -> NewEvent:
    """Service resumed after the data-corruption response."""
    return NewEvent(WRITES_RESUMED, f"Writes resumed: scaled to {replicas} replicas", {"replicas": replicas})


def escalated(level: int, why: str) -> NewEvent:
    """The incident was escalated to `level` (the runbook's Rollback Escalation)."""
    return NewEvent(ESCALATED, f"Escalated to level {level} ({ESCALATION_ROLES[level]}): {why}",
                    {"level": level, "why": why})


def note(text: str) -> NewEvent:
    """A free-text timeline entry."""
    return NewEvent(NOTE, text)


def checklist_ticked(item: str, text: str, why: str = "") -> NewEvent:
    """A Post-Rollback Checklist item is done. `item` is its id, `text` its
    runbook words; `why` says what the console saw when it ticked the item
    itself (record those with actor "console"), empty when an operator did."""
    return NewEvent(CHECKLIST_TICKED, f"Checklist: {text}" + (f" ({why})" if why else ""),
                    {"item": item, "why": why})


def checklist_unticked(item: str, text: str) -> NewEvent:
    """An operator took a tick back (the console will not tick the item again on its own)."""
    return NewEvent(CHECKLIST_UNTICKED, f"Checklist: {text} not done after all", {"item": item})


def message_sent(message: str, label: str, channel: str = "Slack", outbox_id: int | None = None) -> NewEvent:
    """A message went out. `message` is its comms kind, `label` its name
    without decoration ("Rollback Complete"), `channel` where it went."""
    return NewEvent(MESSAGE_SENT, f"{label} message sent to {channel}",
                    {"message": message, "label": label, "channel": channel, "outbox_id": outbox_id})


def message_failed(message: str, label: str, error: str, channel: str = "Slack",
                   outbox_id: int | None = None) -> NewEvent:
    """A message could not be sent (it stays in the outbox); `error` is the sentence."""
    return NewEvent(MESSAGE_FAILED, f"{label} message not sent to {channel}: {error}",
                    {"message": message, "label": label, "channel": channel, "outbox_id": outbox_id,
                     "error": error})


ROLES: dict[str, str] = {
    "commander": "Incident commander",
    "comms": "Comms",
    "operations": "Operations",
}
"""The incident roles a war room assigns (key -> the words shown)."""


def role_set(role: str, who: str) -> NewEvent:
    """`who` takes the incident role `role` (one of ROLES); an empty `who` clears it."""
    if role not in ROLES:
        raise ValueError(f"Unknown incident role {role!r}: use one of {', '.join(ROLES)}.")
    words = f"{ROLES[role]}: {who}" if who else f"{ROLES[role]}: nobody"
    return NewEvent(ROLE_SET, words, {"role": role, "who": who})


def parse_roles(text: str) -> dict[str, str]:
    """"ic=@alice comms=@bob ops=@carol" -> {"commander": "@alice", ...}; short
    names (ic, commander, comms, ops, operations) accepted. Raise ValueError
    with a sentence on anything else."""
    aliases = {"ic": "commander", "commander": "commander", "comms": "comms", "ops": "operations",
               "operations": "operations"}
    roles: dict[str, str] = {}
    for part in text.split():
        name, sep, who = part.partition("=")
        if not sep or name.lower() not in aliases:
            raise ValueError(f"{part!r} is not ROLE=WHO: write e.g. ic=@alice comms=@bob ops=@carol "
                             "(an empty WHO, as in ops=, clears the role).")
        roles[aliases[name.lower()]] = who
    if not roles:
        raise ValueError("Name at least one role: e.g. ic=@alice comms=@bob ops=@carol.")
    return roles


def gitops_paused(ref: str, tool: str, revision: str = "", resume: str = "", parent: str = "") -> NewEvent:
    """The console paused a GitOps owner so that a rollback sticks."""
    return NewEvent(GITOPS_PAUSED, f"{ref} paused so that the rollback sticks (turn it back on: {resume})",
                    {"ref": ref, "tool": tool, "revision": revision, "resume": resume, "parent": parent})


def timeline_exported(path: str) -> NewEvent:
    """The incident's timeline was written to `path` (logs preserved for investigation)."""
    return NewEvent(TIMELINE_EXPORTED, f"Timeline exported to {path}", {"path": path})


STEP_OUTPUT_LIMIT = 4000
"""Characters of a step's output kept in the timeline (the end, where errors are)."""


def _trimmed(output: str) -> str:
    return output if len(output) <= STEP_OUTPUT_LIMIT else "[...]\n" + output[-STEP_OUTPUT_LIMIT:]


def step_started(procedure: str, step: str, title: str, commands: Iterable[str] = (), choice: str = "") -> NewEvent:
    """A step of a guided database procedure began; `commands` are what it runs, as shown to the operator."""
    shown = list(commands)
    text = f"{title}: started" + (f" ({'; '.join(shown)})" if shown else "")
    return NewEvent(STEP_STARTED, text, {"procedure": procedure, "step": step, "title": title,
                                         "commands": shown, "choice": choice})


def step_done(procedure: str, step: str, title: str, result: str = "", output: str = "") -> NewEvent:
    """A step finished; `result` is a short summary, `output` what its commands printed."""
    return NewEvent(STEP_DONE, f"{title}: done" + (f" ({result})" if result else ""),
                    {"procedure": procedure, "step": step, "title": title, "result": result,
                     "output": _trimmed(output)})


def step_failed(procedure: str, step: str, title: str, error: str, output: str = "") -> NewEvent:
    """A step failed; the procedure stays at this step (it can be retried or skipped with a reason)."""
    return NewEvent(STEP_FAILED, f"{title}: failed: {error}",
                    {"procedure": procedure, "step": step, "title": title, "error": error,
                     "output": _trimmed(output)})


def step_skipped(procedure: str, step: str, title: str, reason: str) -> NewEvent:
    """The operator skipped a step; `reason` is required (never skipped silently)."""
    if not reason.strip():
        raise ValueError(f"Skipping {title!r} needs a reason; say why it is not needed.")
    return NewEvent(STEP_SKIPPED, f"{title}: skipped (reason: {reason.strip()})",
                    {"procedure": procedure, "step": step, "title": title, "reason": reason.strip()})


# --- state ------------------------------------------------------------------------------


class RollbackStatus(str, enum.Enum):
    NONE = "none"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"


@dataclass(frozen=True)
class RollbackState:
    """The incident's latest rollback attempt."""

    status: RollbackStatus = RollbackStatus.NONE
    from_revision: int | None = None
    to_revision: int | None = None
    from_versions: tuple[str, ...] = ()
    to_versions: tuple[str, ...] = ()
    started_at: datetime | None = None
    finished_at: datetime | None = None
    last_message: str = ""
    # Blue-green: the colours switched from and to (their revisions are their own Deployments').
    from_colour: str | None = None
    to_colour: str | None = None
    error: str | None = None
    # Why the operator rolled back, when they said so.
    reason: str = ""
    # How many attempts failed in this incident (a retry keeps the count).
    failures: int = 0

    @property
    def from_label(self) -> str:
        """What the rollback went from: the versions, with the colour for blue-green (`versions_label`)."""
        return versions_label(self.from_versions, self.from_revision, self.from_colour)

    @property
    def to_label(self) -> str:
        return versions_label(self.to_versions, self.to_revision, self.to_colour)

    def duration(self, now: datetime) -> timedelta | None:
        """How long it ran (or has been running)."""
        if self.started_at is None:
            return None
        return (self.finished_at or now) - self.started_at


@dataclass(frozen=True)
class Impact:
    """A span of customer impact: since when, and when it ended (None while it lasts)."""

    since: datetime
    ended_at: datetime | None = None

    def duration(self, now: datetime) -> timedelta:
        """How long it lasted, or has lasted so far."""
        return max(timedelta(0), (self.ended_at or now) - self.since)


@dataclass(frozen=True)
class DecisionRecord:
    """One verdict in the incident's decision history."""

    at: datetime
    action: Action
    reasons: tuple[str, ...] = ()
    deadline: datetime | None = None


@dataclass(frozen=True)
class ChecklistMark:
    """The latest tick (or untick) of one checklist item."""

    item: str
    ticked: bool
    at: datetime
    actor: str
    # What the console saw when it ticked the item itself ("" for an operator).
    why: str = ""


@dataclass(frozen=True)
class MessageRecord:
    """One attempt to send a message, as the timeline recorded it."""

    at: datetime
    message: str  # the comms kind
    label: str
    channel: str
    sent: bool
    outbox_id: int | None = None
    error: str | None = None


@dataclass(frozen=True)
class OwnerPause:
    """A GitOps owner (Argo CD Application, Flux Kustomization) the console paused."""

    at: datetime
    ref: str  # "Argo CD Application argocd/order-service"
    tool: str  # "argocd" or "flux"
    revision: str = ""  # the synced revision it would deploy again
    resume: str = ""  # how to turn it back on, in its own tool's words
    parent: str = ""  # the app-of-apps parent paused with it


@dataclass(frozen=True)
class IncidentState:
    """Everything the timeline says about one incident."""

    id: str
    service: str
    opened_at: datetime
    title: str = ""
    closed_at: datetime | None = None
    facts: Facts = field(default_factory=Facts)
    decisions: tuple[DecisionRecord, ...] = ()
    rollback: RollbackState = field(default_factory=RollbackState)
    # The replica count before writes were frozen, None when writes are not frozen.
    frozen_replicas: int | None = None
    # The highest level the incident was escalated to (1: the on-call engineer).
    escalated_to: int = 1
    # When the console first saw a problem (a decision other than HEALTHY),
    # reset by a HEALTHY decision; `Facts.customer_impact_since` overrides it.
    impact_seen_since: datetime | None = None
    # The latest impact the console saw end (a HEALTHY decision after a problem), kept for
    # the header after the escalation clock above was reset.
    impact_ended: Impact | None = None
    # The latest mark of each checklist item that was ever ticked or unticked, in first-mark order.
    checklist: tuple[ChecklistMark, ...] = ()
    # Every message sent or failed, oldest first.
    messages: tuple[MessageRecord, ...] = ()
    # Where the timeline was exported to, oldest first.
    exports: tuple[str, ...] = ()
    # Who holds each incident role, (role, who) in ROLES order; unset roles are absent.
    roles: tuple[tuple[str, str], ...] = ()

    def role(self, name: str) -> str | None:
        """Who holds the role `name` (one of ROLES), None when nobody does."""
        return dict(self.roles).get(name)
    # The GitOps owners the console paused to make a rollback stick, oldest first.
    paused_owners: tuple[OwnerPause, ...] = ()

    def mark(self, item: str) -> ChecklistMark | None:
        """The latest tick or untick of a checklist item, None if never touched."""
        return next((m for m in self.checklist if m.item == item), None)

    def sent(self, message: str) -> MessageRecord | None:
        """The latest successful send of a message kind, if any."""
        return next((m for m in reversed(self.messages) if m.sent and m.message == message), None)

    @property
    def decision(self) -> DecisionRecord | None:
        """The latest verdict."""
        return self.decisions[-1] if self.decisions else None

    @property
    def writes_frozen(self) -> bool:
        return self.frozen_replicas is not None

    @property
    def investigation_started_at(self) -> datetime | None:
        return self.facts.investigation_started_at

    @property
    def customer_impact_since(self) -> datetime | None:
        """Since when customers are affected: the operator's fact, else the first problem seen."""
        return self.facts.customer_impact_since or self.impact_seen_since


def new_state(incident_id: str, service: str, opened_at: datetime, title: str = "") -> IncidentState:
    """The state of a freshly opened incident."""
    return IncidentState(id=incident_id, service=service, opened_at=opened_at, title=title)


def apply(state: IncidentState, event: Event) -> IncidentState:
    """The state after one more event. Unknown kinds and unknown fact names
    are ignored, so a timeline written by a newer console still loads."""
    data = payload(event)
    kind = event.kind
    if kind == INCIDENT_OPENED:
        return replace(state, service=data.get("service", state.service), title=data.get("title", state.title),
                       opened_at=event.at)
    if kind == INCIDENT_CLOSED:
        return replace(state, closed_at=event.at)
    if kind == FACT_SET:
        # Canonical: {"name": field, "value": v}; also accepted: {field: v, ...}.
        changes = {data["name"]: data.get("value")} if "name" in data else data
        known = {name: _fact_value(name, value) for name, value in changes.items() if name in _FACT_FIELDS}
        return replace(state, facts=replace(state.facts, **known)) if known else state
    if kind == DECISION:
        action = Action(data["action"])
        record = DecisionRecord(event.at, action, tuple(data.get("reasons", ())), _time(data.get("deadline")))
        ended = state.impact_ended
        if action is Action.HEALTHY:
            impact = None
            if state.impact_seen_since is not None:
                ended = Impact(state.impact_seen_since, event.at)
        elif action is Action.SIGNALS_UNAVAILABLE:
            impact = state.impact_seen_since  # unknown neither starts nor ends an impact
        else:
            impact = state.impact_seen_since or event.at
        return replace(state, decisions=state.decisions + (record,), impact_seen_since=impact,
                       impact_ended=ended)
    if kind == ROLLBACK_STARTED:
        return replace(
            state,
            rollback=RollbackState(
                status=RollbackStatus.IN_PROGRESS,
                from_revision=data.get("from_revision"),
                to_revision=data.get("to_revision"),
                from_versions=tuple(data.get("from_versions") or map(image_tag, data.get("from_images", ()))),
                to_versions=tuple(data.get("to_versions") or map(image_tag, data.get("to_images", ()))),
                from_colour=data.get("from_colour"),
                to_colour=data.get("to_colour"),
                started_at=event.at,
                last_message=event.text,
                reason=str(data.get("reason") or ""),
                failures=state.rollback.failures,
            ),
        )
    if kind == ROLLBACK_PROGRESS:
        return replace(state, rollback=replace(state.rollback, last_message=event.text))
    if kind == ROLLBACK_COMPLETED:
        return replace(state, rollback=replace(state.rollback, status=RollbackStatus.COMPLETED,
                                               finished_at=event.at, last_message=event.text))
    if kind == ROLLBACK_FAILED:
        rb = state.rollback
        return replace(state, rollback=replace(rb, status=RollbackStatus.FAILED, finished_at=event.at,
                                               error=data.get("error", event.text), last_message=event.text,
                                               failures=rb.failures + 1))
    if kind == WRITES_FROZEN:
        # A second freeze must not overwrite the count with 0.
        if state.frozen_replicas is not None:
            return state
        return replace(state, frozen_replicas=int(data["replicas"]))
    if kind == WRITES_RESUMED:
        return replace(state, frozen_replicas=None)
    if kind == ROLE_SET:
        held = dict(state.roles)
        role, who = str(data.get("role", "")), str(data.get("who", "")).strip()
        if role not in ROLES:
            return state
        if who:
            held[role] = who
        else:
            held.pop(role, None)
        return replace(state, roles=tuple((r, held[r]) for r in ROLES if r in held))
    if kind == ESCALATED:
        return replace(state, escalated_to=max(state.escalated_to, int(data["level"])))
    if kind in (CHECKLIST_TICKED, CHECKLIST_UNTICKED):
        item = str(data.get("item", ""))
        if not item:
            return state
        mark = ChecklistMark(item, kind == CHECKLIST_TICKED, event.at, event.actor, str(data.get("why") or ""))
        if state.mark(item) is None:
            return replace(state, checklist=state.checklist + (mark,))
        return replace(state, checklist=tuple(mark if m.item == item else m for m in state.checklist))
    if kind in (MESSAGE_SENT, MESSAGE_FAILED):
        outbox_id = data.get("outbox_id")
        record = MessageRecord(
            at=event.at,
            message=str(data.get("message", "")),
            label=str(data.get("label", "")),
            channel=str(data.get("channel", "")),
            sent=kind == MESSAGE_SENT,
            outbox_id=int(outbox_id) if outbox_id is not None else None,
            error=data.get("error") if kind == MESSAGE_FAILED else None,
        )
        return replace(state, messages=state.messages + (record,))
    if kind == TIMELINE_EXPORTED:
        return replace(state, exports=state.exports + (str(data.get("path", "")),))
    if kind == GITOPS_PAUSED:
        pause = OwnerPause(event.at, str(data.get("ref", "")), str(data.get("tool", "")), str(data.get("revision", "")),
                           str(data.get("resume", "")), str(data.get("parent", "")))
        return replace(state, paused_owners=state.paused_owners + (pause,))
    return state


def rebuild(incident_id: str, events: Iterable[Event]) -> IncidentState:
    """The state of an incident from its whole timeline, oldest event first
    (the first one is INCIDENT_OPENED)."""
    events = list(events)
    if not events or events[0].kind != INCIDENT_OPENED:
        raise ValueError(f"The timeline of {incident_id} does not start with its opening; it cannot be rebuilt.")
    first = payload(events[0])
    state = new_state(incident_id, first.get("service", ""), events[0].at)
    for event in events:
        state = apply(state, event)
    return state


def customer_impact(state: IncidentState | None) -> Impact | None:
    """The incident's customer impact as the header shows it: the one under way (since the
    operator's `customer_impact_since`, else the first problem seen), else the latest one that
    ended when the signals were healthy again; None when none was seen.

    Unlike `IncidentState.customer_impact_since` (the escalation clock, which a HEALTHY decision
    resets), an ended impact is kept, with its end, so the operator sees how long it lasted."""
    if state is None:
        return None
    declared = state.facts.customer_impact_since
    if state.impact_seen_since is not None:
        return Impact(declared or state.impact_seen_since)
    ended = state.impact_ended
    if ended is not None and ended.ended_at is not None and (declared is None or declared <= ended.ended_at):
        return Impact(declared or ended.since, ended.ended_at)
    # Declared by the operator, and not seen to end since.
    return Impact(declared) if declared is not None else None


# --- escalation ----------------------------------------------------------------------------

ESCALATION_ROLES: dict[int, str] = {
    1: "On-call Engineer",
    2: "Team Lead",
    3: "SRE/Platform Team",
    4: "Management",
}


def escalation_level(
    state: IncidentState,
    now: datetime,
    customer_impact_limit: timedelta = Thresholds().customer_impact_escalation,
) -> tuple[int, str, datetime | None]:
    """The runbook's Rollback Escalation: who should be on this incident now.

    Returns (level 1..4, why in a sentence, when the level rises by time alone
    or None). The highest trigger wins:
    4 customer-impacting for more than `customer_impact_limit` (strictly);
    3 infrastructure issue; 2 rollback failed, data corruption, or a migration
    that is not known reversible (a data issue needing non-standard actions);
    1 the alert (the on-call engineer).
    """
    impact_since = state.customer_impact_since
    if impact_since is not None and now - impact_since > customer_impact_limit:
        minutes = int((now - impact_since).total_seconds() // 60)
        limit = int(customer_impact_limit.total_seconds() // 60)
        return 4, f"Customer-impacting for {minutes} min (more than {limit} min)", None

    next_at = impact_since + customer_impact_limit if impact_since is not None else None
    facts = state.facts
    if facts.infrastructure_issue:
        return 3, "Infrastructure issue", next_at
    if state.rollback.status is RollbackStatus.FAILED:
        return 2, f"Rollback failed: {state.rollback.error}", next_at
    if facts.data_corruption:
        return 2, "Data issue: data corruption detected", next_at
    if facts.migration_applied and facts.migration_reversible is not True:
        return 2, "Data issue: a migration that is not known reversible is applied", next_at
    return 1, "Alert", next_at


# --- where the incident is in its lifecycle (what the banner leads with) ---------------------


@dataclass(frozen=True)
class Phase:
    """What the banner says instead of the signals' verdict while a rollback
    runs or has just finished (the signals still describe the bad version)."""

    headline: str  # "ROLLING BACK", "VERIFYING", "ROLLED BACK (watching)"
    detail: str
    # Until when the phase lasts at the latest (None: while its condition holds).
    until: datetime | None = None


def rollback_phase(
    state: IncidentState | None,
    now: datetime,
    ready: int | None = None,
    desired: int | None = None,
    settle: timedelta = Thresholds().rollback_settle,
) -> Phase | None:
    """The lifecycle phase to show, None when the signals' decision applies.

    ROLLING BACK while the rollback is in progress; VERIFYING once it completed
    while pods are not all ready; ROLLED BACK (watching) until the signals are
    read over windows that start after the rollback (`settle` after it
    finished). A failed rollback shows the signals again (they are the truth)."""
    if state is None:
        return None
    rollback = state.rollback
    versions = " → ".join(", ".join(v) or "?" for v in (rollback.from_versions, rollback.to_versions))
    if rollback.status is RollbackStatus.IN_PROGRESS:
        step = rollback.last_message or "starting"
        return Phase("ROLLING BACK", f"{versions}: {step}")
    if rollback.status is not RollbackStatus.COMPLETED or rollback.finished_at is None:
        return None
    if desired and (ready or 0) < desired:
        return Phase("VERIFYING", f"{versions}: {ready or 0}/{desired} pods ready")
    settled_at = rollback.finished_at + settle
    if now < settled_at:
        left = int((settled_at - now).total_seconds())
        return Phase("ROLLED BACK (watching)",
                     f"{versions}: signals settle on windows after the rollback in {left // 60}:{left % 60:02d}",
                     until=settled_at)
    return None


def investigate_since(state: IncidentState | None) -> datetime | None:
    """When the runbook's current "investigate first" began: the first
    INVESTIGATE verdict of the latest run of them (the decide-by clock starts
    there, not when `i` is pressed). None when the latest verdict is not INVESTIGATE."""
    if state is None or not state.decisions or state.decisions[-1].action is not Action.INVESTIGATE:
        return None
    since = state.decisions[-1].at
    for record in reversed(state.decisions):
        if record.action is not Action.INVESTIGATE:
            break
        since = record.at
    return since


def status_update_due(state: IncidentState | None, now: datetime, every: timedelta | None) -> datetime | None:
    """When the next status update was due, if it is due now: `every` after the
    last message sent (any of them tells the channel where things stand), or
    after the incident opened. None when not due, no incident is open, or
    reminders are off (`every` None)."""
    if state is None or every is None or state.closed_at is not None:
        return None
    sent = [m.at for m in state.messages if m.sent]
    due = max(sent, default=state.opened_at) + every
    return due if now >= due else None
