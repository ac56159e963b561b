"""The debrief of a drill: what the runbook expected against what the trainee
did, and a score out of 100.

Pure: it reads the drill's scenario and the timeline events its incidents
recorded, and takes the end of the drill as a parameter; no I/O, no clock.
The README's "Drill debrief and score" section documents the formula below:
change both together.

Score (out of 100)
------------------
- **Decision (50)**: the trainee's first decision is the scenario's
  `expect.action`. A decision is a rollback started, an investigation
  started, or a choice made with `d` (keep investigating, fix forward,
  hotfix, wait for the external fix). When the runbook expects `healthy`,
  deciding nothing (no rollback, no choice) is the right decision.
- **On time (20)**: the right decision by the deadline (t=0 + `expect.by`,
  or t=0 + DEFAULT_WINDOW without `by`) earns 20; later it loses points in
  proportion, reaching 0 one more window after the deadline. A wrong or
  missing decision earns none.
- **Runbook steps (30)**: shared equally by the steps that apply, each
  credited for the part done: every fact the scenario revealed declared
  with its value; after a rollback, the runbook's Rollback in Progress and
  Rollback Complete messages sent and the Immediate checklist items done;
  with data corruption, writes frozen. With no step applying, all 30.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from console import incident
from console.checklist import DEFAULT_CHECKLIST, Checklist
from console.drill.scenario import Scenario
from console.model import Event

DECISION_POINTS = 50
ON_TIME_POINTS = 20
STEPS_POINTS = 30
DEFAULT_WINDOW = timedelta(minutes=5)
"""The time a decision is given when the scenario has no `expect.by` (the
runbook's five-minute investigation window), and the time it takes a late
decision to lose all its on-time points."""

CHOICE_ACTIONS = {
    "rollback": "rollback_now",
    "keep_investigating": "investigate",
    "fix_forward": "fix_forward",
    "hotfix": "hotfix",
    "wait": "wait_external",
}
"""The operator's choices (session.CHOICES) as the runbook's actions."""

MACHINE_ACTORS = frozenset({"console", "drill", "trainer"})
"""Actors whose events are not the trainee's own decisions."""


@dataclass(frozen=True)
class Step:
    """One runbook step the drill called for, and how much of it was done (0..1)."""

    name: str
    credit: float
    detail: str = ""
    at: datetime | None = None

    @property
    def done(self) -> bool:
        return self.credit >= 1.0


@dataclass(frozen=True)
class Debrief:
    """The drill's debrief: expectation, what happened, steps and the score."""

    scenario: str
    started_at: datetime
    ended_at: datetime
    expected_action: str
    deadline: datetime
    decided_action: str | None
    decided_at: datetime | None
    decided_by: str | None
    mitigated_at: datetime | None
    steps: tuple[Step, ...]
    decision_points: int
    on_time_points: int
    steps_points: int
    notes: tuple[str, ...] = field(default=())

    @property
    def score(self) -> int:
        return self.decision_points + self.on_time_points + self.steps_points

    @property
    def right_decision(self) -> bool:
        return self.decided_action == self.expected_action

    def seconds(self, at: datetime | None) -> float | None:
        """Seconds from the drill's t=0 to `at`."""
        return None if at is None else round((at - self.started_at).total_seconds(), 1)

    def to_data(self) -> dict[str, Any]:
        """The debrief as plain data (the drill record and the JSON export)."""
        return {
            "scenario": self.scenario,
            "score": self.score,
            "out_of": DECISION_POINTS + ON_TIME_POINTS + STEPS_POINTS,
            "points": {"decision": self.decision_points, "on_time": self.on_time_points, "runbook_steps": self.steps_points},
            "expected": {"action": self.expected_action, "deadline": self.deadline.isoformat(),
                         "deadline_seconds": self.seconds(self.deadline)},
            "decided": {"action": self.decided_action, "at": self.decided_at.isoformat() if self.decided_at else None,
                        "by": self.decided_by},
            "time_to_decision_seconds": self.seconds(self.decided_at),
            "time_to_mitigation_seconds": self.seconds(self.mitigated_at),
            "started_at": self.started_at.isoformat(),
            "ended_at": self.ended_at.isoformat(),
            "steps": [{"step": s.name, "credit": round(s.credit, 3), "done": s.done, "detail": s.detail,
                       "at": s.at.isoformat() if s.at else None} for s in self.steps],
            "notes": list(self.notes),
        }

    def lines(self) -> list[str]:
        """The debrief as Markdown lines (the screen, the record, the export)."""
        return debrief_lines(self.to_data())


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    whole = int(round(seconds))
    return f"{whole // 60} min {whole % 60:02d} s" if whole >= 60 else f"{whole} s"


def _words(action: str | None) -> str:
    return "no decision" if action is None else action.replace("_", " ")


def debrief_lines(data: dict[str, Any]) -> list[str]:
    """Markdown lines for a debrief given as data (`Debrief.to_data()`), so a
    stored debrief renders the same as a fresh one."""
    expected, decided = data["expected"], data["decided"]
    verdict = "right" if decided["action"] == expected["action"] else "not what the runbook expects"
    lines = [
        f"**Score: {data['score']} / {data['out_of']}** (decision {data['points']['decision']}, "
        f"on time {data['points']['on_time']}, runbook steps {data['points']['runbook_steps']})",
        "",
        f"- **Expected:** {_words(expected['action'])} by t+{_duration(expected['deadline_seconds'])}",
        f"- **Decided:** {_words(decided['action'])}"
        + (f" at t+{_duration(data['time_to_decision_seconds'])}" if decided["at"] else "") + f" ({verdict})",
        f"- **Time to decision:** {_duration(data['time_to_decision_seconds'])}",
        f"- **Time to mitigation:** {_duration(data['time_to_mitigation_seconds'])}",
        "",
        "Runbook steps:",
    ]
    if not data["steps"]:
        lines.append("- none called for")
    for step in data["steps"]:
        mark = "x" if step["done"] else " "
        lines.append(f"- [{mark}] {step['step']}" + (f" ({step['detail']})" if step["detail"] else ""))
    lines += [f"- {note}" for note in data.get("notes", [])]
    return lines


# --- what happened -------------------------------------------------------------------


def _trainee(event: Event) -> bool:
    return event.actor not in MACHINE_ACTORS


def _first_decision(events: Sequence[Event]) -> tuple[str | None, datetime | None, str | None]:
    """The trainee's first decision: (runbook action, when, who)."""
    for event in events:
        data = incident.payload(event)
        if event.kind == incident.ROLLBACK_STARTED:
            return "rollback_now", event.at, event.actor
        if event.kind == incident.NOTE and data.get("choice") in CHOICE_ACTIONS and _trainee(event):
            return CHOICE_ACTIONS[data["choice"]], event.at, event.actor
        if (event.kind == incident.FACT_SET and data.get("name") == "investigation_started_at"
                and data.get("value") not in (None, "None") and _trainee(event)):
            return "investigate", event.at, event.actor
    return None, None, None


def _mitigated_at(events: Sequence[Event]) -> datetime | None:
    """When the incident was mitigated: a rollback completed, or else the
    runbook's verdict came back to healthy after being something else."""
    for event in events:
        if event.kind == incident.ROLLBACK_COMPLETED:
            return event.at
    unhealthy_seen = False
    for event in events:
        if event.kind != incident.DECISION:
            continue
        action = incident.payload(event).get("action")
        if action == "healthy" and unhealthy_seen:
            return event.at
        unhealthy_seen = unhealthy_seen or action != "healthy"
    return None


def revealed_facts(scenario: Scenario, start: datetime, until: datetime) -> list[tuple[str, Any, datetime]]:
    """Facts the scenario revealed by `until`: (name, value, when), the last
    value of each name (t=0 facts that are set, timeline facts, outages)."""
    found: dict[str, tuple[Any, datetime]] = {}
    for name, value in scenario.facts.model_dump().items():
        if value not in (False, None):
            found[name] = (value, start)
    for event in scenario.timeline:
        when = start + timedelta(seconds=event.at)
        if when > until:
            continue
        if event.facts:
            for name, value in event.facts.items():
                found[name] = (value, when)
        if event.external_outage is not None:
            found["external_service_issue"] = (event.external_outage.active, when)
    return [(name, value, when) for name, (value, when) in found.items()
            if not (value is False and when == start)]


def _fact_steps(scenario: Scenario, start: datetime, until: datetime, events: Sequence[Event]) -> list[Step]:
    steps = []
    for name, value, _when in revealed_facts(scenario, start, until):
        declared = [e for e in events if e.kind == incident.FACT_SET and incident.payload(e).get("name") == name]
        last = incident.payload(declared[-1]).get("value") if declared else None
        ok = bool(declared) and last == value
        label = name.replace("_", " ")
        steps.append(Step(f"Fact declared: {label} = {value}", 1.0 if ok else 0.0,
                          "" if ok else ("declared " + str(last) if declared else "not declared"),
                          declared[-1].at if ok else None))
    return steps


def _message_steps(events: Sequence[Event]) -> list[Step]:
    steps = []
    for kind, label in (("rollback_in_progress", "Rollback in Progress"), ("rollback_complete", "Rollback Complete")):
        sent = [e for e in events if e.kind == incident.MESSAGE_SENT and incident.payload(e).get("message") == kind]
        steps.append(Step(f"Message sent: {label}", 1.0 if sent else 0.0, "" if sent else "not sent",
                          sent[0].at if sent else None))
    return steps


def _checklist_step(events: Sequence[Event], checklist: Checklist) -> Step | None:
    immediate = [item for item in checklist.items if item.group == checklist.groups[0].name] if checklist.groups else []
    if not immediate:
        return None
    done: set[str] = set()
    for event in events:
        item = incident.payload(event).get("item")
        if event.kind == incident.CHECKLIST_TICKED:
            done.add(item)
        elif event.kind == incident.CHECKLIST_UNTICKED:
            done.discard(item)
    ids = {item.id for item in immediate}
    count = len(ids & done)
    return Step(f"Checklist: {checklist.groups[0].heading} items done", count / len(ids), f"{count} of {len(ids)}")


def debrief(
    scenario: Scenario,
    started_at: datetime,
    events: Iterable[Event],
    ended_at: datetime,
    checklist: Checklist = DEFAULT_CHECKLIST,
) -> Debrief:
    """Score a drill of `scenario` whose t=0 was `started_at` and which ended at
    `ended_at`, from the events its incidents recorded (any order)."""
    ordered = sorted((e for e in events if e.at <= ended_at), key=lambda e: e.at)
    expected = scenario.expect.action
    window = timedelta(seconds=scenario.expect.by) if scenario.expect.by else DEFAULT_WINDOW
    deadline = started_at + window
    action, decided_at, decided_by = _first_decision(ordered)
    if action is None and expected == "healthy":
        action = "healthy"  # nothing done is the right call on a healthy service
    right = action == expected

    decision_points = DECISION_POINTS if right else 0
    on_time_points = 0
    if right:
        if decided_at is None or decided_at <= deadline:
            on_time_points = ON_TIME_POINTS
        else:
            late = (decided_at - deadline) / window
            on_time_points = round(ON_TIME_POINTS * max(0.0, 1.0 - late))

    steps = _fact_steps(scenario, started_at, ended_at, ordered)
    rolled_back = any(e.kind == incident.ROLLBACK_STARTED for e in ordered)
    if rolled_back or expected == "rollback_now":
        steps += _message_steps(ordered)
    if any(e.kind == incident.ROLLBACK_COMPLETED for e in ordered):
        step = _checklist_step(ordered, checklist)
        if step is not None:
            steps.append(step)
    if any(name == "data_corruption" and value for name, value, _ in revealed_facts(scenario, started_at, ended_at)):
        frozen = [e for e in ordered if e.kind == incident.WRITES_FROZEN]
        steps.append(Step("Writes frozen (data corruption)", 1.0 if frozen else 0.0, "" if frozen else "writes kept flowing",
                          frozen[0].at if frozen else None))
    steps_points = STEPS_POINTS if not steps else round(STEPS_POINTS * sum(s.credit for s in steps) / len(steps))

    notes = []
    levels = [incident.payload(e).get("level", 1) for e in ordered if e.kind == incident.ESCALATED]
    if levels:
        top = max(levels)
        notes.append(f"Escalation reached level {top} ({incident.ESCALATION_ROLES.get(top, '?')}).")
    return Debrief(
        scenario=scenario.name,
        started_at=started_at,
        ended_at=ended_at,
        expected_action=expected,
        deadline=deadline,
        decided_action=action,
        decided_at=decided_at,
        decided_by=decided_by,
        mitigated_at=_mitigated_at(ordered),
        steps=tuple(steps),
        decision_points=decision_points,
        on_time_points=on_time_points,
        steps_points=steps_points,
        notes=tuple(notes),
    )
