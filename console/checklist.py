"""The runbook's Post-Rollback Checklist: its four groups, their deadlines
counted from the rollback's completion, its items in the runbook's words, and
which items the console can tick itself from what it observes.

Pure: no I/O. The ticks an operator (or the console) made are events in the
incident's timeline (`incident.checklist_ticked` / `checklist_unticked`),
folded into `IncidentState.checklist`; `evaluate_checklist()` combines them
with the current observations into one status per item. An operator's untick
wins over the console: it does not tick that item again on its own.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from console.comms import MessageKind
from console.decision import Thresholds, percent
from console.incident import IncidentState, NewEvent, RollbackStatus, checklist_ticked, checklist_unticked
from console.model import Health, Metrics

CONSOLE = "console"
"""The actor name of everything the console does by itself."""


@dataclass(frozen=True)
class Group:
    """One group of the checklist and how long after the rollback it is due."""

    name: str
    # None: no deadline (the runbook's Long-term group).
    deadline: timedelta | None = None

    @property
    def heading(self) -> str:
        """The runbook's heading: "Immediate (< 5 minutes)"."""
        if self.deadline is None:
            return self.name
        return f"{self.name} (< {_span(self.deadline)})"


def _span(deadline: timedelta) -> str:
    seconds = int(deadline.total_seconds())
    for unit, size in (("hour", 3600), ("minute", 60)):
        if seconds % size == 0 and seconds >= size:
            n = seconds // size
            return f"{n} {unit}" + ("" if n == 1 else "s")
    return f"{seconds} seconds"


@dataclass(frozen=True)
class Item:
    """One checklist item."""

    id: str
    text: str  # the runbook's words
    group: str  # a Group name
    # The auto-tick rule (a key of AUTO_RULES), None if only an operator can tick it.
    auto: str | None = None


# --- auto-tick rules -------------------------------------------------------------------------

HEALTH = "health"
ERROR_RATE_DROPPING = "error_rate_dropping"
METRICS_STABLE = "metrics_stable"
TEAM_NOTIFIED = "team_notified"
LOGS_PRESERVED = "logs_preserved"

AUTO_RULES: tuple[str, ...] = (HEALTH, ERROR_RATE_DROPPING, METRICS_STABLE, TEAM_NOTIFIED, LOGS_PRESERVED)


@dataclass(frozen=True)
class StabilityRule:
    """When the console calls metrics stable ("Metrics stabilizing")."""

    samples: int = 3
    """How many of the latest samples (taken after the rollback completed) must agree."""

    spread: float = 0.10
    """The largest relative spread (max - min over max) allowed among those samples."""

    error_rate_floor: float = 0.001
    """Error-rate differences below this (0.1 percentage point) count as equal:
    relative spread means nothing around 0 %."""


# --- the checklist ---------------------------------------------------------------------------


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


@dataclass(frozen=True)
class Checklist:
    """Groups in order and their items in order."""

    groups: tuple[Group, ...]
    items: tuple[Item, ...]

    def __post_init__(self) -> None:
        names = [g.name for g in self.groups]
        if len(set(names)) != len(names):
            raise ValueError("Checklist group names must be unique.")
        ids = [i.id for i in self.items]
        if len(set(ids)) != len(ids):
            raise ValueError("Checklist items must be unique within the checklist.")
        for item in self.items:
            if item.group not in names:
                raise ValueError(f"Checklist item {item.text!r} names an unknown group {item.group!r}.")
            if item.auto is not None and item.auto not in AUTO_RULES:
                raise ValueError(
                    f"Checklist item {item.text!r} names an unknown auto-tick rule {item.auto!r}; "
                    f"use one of {', '.join(AUTO_RULES)}."
                )

    @classmethod
    def from_items(
        cls,
        groups: Iterable[tuple[str, timedelta | None, Sequence[str | tuple[str, str | None]]]],
    ) -> Checklist:
        """A checklist from plain data (what a config file holds): groups in
        order as (name, deadline or None, items); an item is its text, or
        (text, auto rule or None). Item ids are the text's slug, so ticks
        survive a reworded config only when the words stay the same. A plain
        text item that matches a default item's words keeps that item's rule."""
        known = {item.text: item.auto for item in DEFAULT_ITEMS}
        made_groups, made_items = [], []
        for name, deadline, items in groups:
            made_groups.append(Group(name, deadline))
            for entry in items:
                text, auto = (entry, known.get(entry)) if isinstance(entry, str) else entry
                made_items.append(Item(_slug(text), text, name, auto))
        return cls(tuple(made_groups), tuple(made_items))

    def group(self, name: str) -> Group:
        return next(g for g in self.groups if g.name == name)

    def item(self, item_id: str) -> Item:
        """One item by id (KeyError when the checklist has none)."""
        for item in self.items:
            if item.id == item_id:
                return item
        raise KeyError(item_id)

    def items_of(self, group: str) -> tuple[Item, ...]:
        return tuple(i for i in self.items if i.group == group)

    def markdown(self) -> str:
        """The checklist as the runbook prints it (unticked)."""
        blocks = ["## Post-Rollback Checklist"]
        for group in self.groups:
            blocks.append(f"### {group.heading}\n" + "\n".join(f"- [ ] {i.text}" for i in self.items_of(group.name)))
        return "\n\n".join(blocks) + "\n"


_DEFAULT_DATA: tuple[tuple[str, timedelta | None, tuple[tuple[str, str | None], ...]], ...] = (
    ("Immediate", timedelta(minutes=5), (
        ("Service health verified", HEALTH),
        ("Error rate dropping", ERROR_RATE_DROPPING),
        ("Metrics stabilizing", METRICS_STABLE),
        ("Team notified", TEAM_NOTIFIED),
    )),
    ("Short-term", timedelta(hours=1), (
        ("Incident ticket created", None),
        ("Stakeholders notified", None),
        ("Logs preserved for investigation", LOGS_PRESERVED),
        ("Deployment record updated", None),
    )),
    ("Investigation", timedelta(hours=24), (
        ("Root cause identified", None),
        ("Fix developed", None),
        ("Fix tested in staging", None),
        ("Deployment plan for fix", None),
    )),
    ("Long-term", None, (
        ("RCA completed", None),
        ("Preventive measures identified", None),
        ("Monitoring improved (if needed)", None),
        ("Runbook updated", None),
    )),
)

DEFAULT_GROUPS: tuple[Group, ...] = tuple(Group(name, deadline) for name, deadline, _ in _DEFAULT_DATA)
DEFAULT_ITEMS: tuple[Item, ...] = tuple(
    Item(_slug(text), text, name, auto) for name, _, items in _DEFAULT_DATA for text, auto in items
)
DEFAULT_CHECKLIST = Checklist(DEFAULT_GROUPS, DEFAULT_ITEMS)
"""The runbook's checklist, as the console uses it unless the config says otherwise."""


# --- evaluation ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Observations:
    """What the console sees now, for the auto-tick rules."""

    # The latest post-rollback verification (pods and health endpoint).
    health: Health | None = None
    # The latest metrics, with their recent history.
    metrics: Metrics | None = None
    # The metrics before the rollback (the bad version); when absent, the
    # error-rate history before the rollback started stands in.
    before: Metrics | None = None


@dataclass(frozen=True)
class ItemStatus:
    """One checklist item now."""

    item: Item
    group: Group
    done: bool
    # Who ticked it: an operator's name or "console"; None when not done.
    by: str | None = None
    # What the console saw when it ticked the item ("" for an operator's tick).
    why: str = ""
    done_at: datetime | None = None
    # When it is due (rollback completion + the group's deadline); None before
    # the rollback completes and for groups without a deadline.
    due_at: datetime | None = None
    overdue: bool = False
    # True when the console ticks it now but no event records that yet.
    unrecorded: bool = False

    @property
    def by_console(self) -> bool:
        return self.by == CONSOLE


@dataclass(frozen=True)
class ChecklistStatus:
    """The whole checklist now."""

    items: tuple[ItemStatus, ...] = field(default_factory=tuple)

    def item(self, item_id: str) -> ItemStatus:
        return next(s for s in self.items if s.item.id == item_id)

    @property
    def done(self) -> int:
        return sum(1 for s in self.items if s.done)

    @property
    def overdue(self) -> tuple[ItemStatus, ...]:
        return tuple(s for s in self.items if s.overdue)

    def to_record(self) -> list[NewEvent]:
        """Events for the ticks the console made that the timeline does not hold
        yet: record them (actor "console") so they survive a restart."""
        return [checklist_ticked(s.item.id, s.item.text, s.why) for s in self.items if s.unrecorded]


def evaluate_checklist(
    state: IncidentState,
    now: datetime,
    observations: Observations | None = None,
    checklist: Checklist = DEFAULT_CHECKLIST,
    thresholds: Thresholds | None = None,
    stability: StabilityRule | None = None,
) -> ChecklistStatus:
    """Every item's status at `now`: done (by whom, why), when due, overdue.

    Deadlines count from the rollback's completion; before it completes
    nothing is due and the console ticks nothing from metrics or health
    (they would describe the half-rolled-back service).
    """
    observations = observations or Observations()
    thresholds = thresholds or Thresholds()
    stability = stability or StabilityRule()
    completed = state.rollback.finished_at if state.rollback.status is RollbackStatus.COMPLETED else None
    statuses = []
    for item in checklist.items:
        group = checklist.group(item.group)
        due_at = completed + group.deadline if completed is not None and group.deadline is not None else None
        mark = state.mark(item.id)
        if mark is not None:
            done, by, why, at, unrecorded = mark.ticked, (mark.actor if mark.ticked else None), mark.why, mark.at, False
            if not mark.ticked:
                at = None
        else:
            why = _auto(item.auto, state, completed, observations, thresholds, stability) if item.auto else ""
            done = bool(why)
            by, at, unrecorded = (CONSOLE, now, True) if done else (None, None, False)
        overdue = not done and due_at is not None and now > due_at
        statuses.append(ItemStatus(item, group, done, by, why, at, due_at, overdue, unrecorded))
    return ChecklistStatus(tuple(statuses))


def _auto(
    rule: str,
    state: IncidentState,
    completed: datetime | None,
    seen: Observations,
    thresholds: Thresholds,
    stability: StabilityRule,
) -> str:
    """Why the console ticks the item by `rule`, "" if it does not."""
    if rule == TEAM_NOTIFIED:
        for kind in (MessageKind.ROLLBACK_COMPLETE, MessageKind.COMPLETE_HEALTHY, MessageKind.COMPLETE_UNHEALTHY):
            sent = state.sent(kind.value)
            if sent is not None:
                return f"{sent.label} message sent to {sent.channel}"
        return ""
    if rule == LOGS_PRESERVED:
        return f"timeline exported to {state.exports[-1]}" if state.exports else ""
    if completed is None:
        return ""
    if rule == HEALTH:
        return _health(seen.health, completed)
    if rule == ERROR_RATE_DROPPING:
        return _dropping(state, seen, completed, thresholds)
    if rule == METRICS_STABLE:
        return _stable(seen.metrics, completed, stability)
    return ""


def _health(health: Health | None, completed: datetime) -> str:
    if health is None or health.error:
        return ""
    if health.checked_at is not None and health.checked_at < completed:
        return ""
    if not health.desired or health.ready != health.desired:
        return ""
    pods = f"{health.ready}/{health.desired} pods ready"
    if health.endpoint_ok is True:
        return f"health endpoint healthy and {pods}"
    if health.endpoint_ok is None:
        return f"{pods} (no health endpoint configured)"
    return ""


def _dropping(state: IncidentState, seen: Observations, completed: datetime, thresholds: Thresholds) -> str:
    metrics = seen.metrics
    if metrics is None or metrics.error_rate is None or metrics.error:
        return ""
    if metrics.sampled_at is not None and metrics.sampled_at < completed:
        return ""
    before = seen.before.error_rate if seen.before is not None else None
    if before is None:
        started = state.rollback.started_at
        earlier = metrics.error_rate_history.until(started).values if started is not None else ()
        before = earlier[-1] if earlier else None
    now = metrics.error_rate
    # Dropping: below where it was, and no longer at a rate the runbook rolls back for.
    if before is None or not now < before or now > thresholds.rollback_error_rate:
        return ""
    return f"error rate {percent(now)} down from {percent(before)}"


def _stable(metrics: Metrics | None, completed: datetime, rule: StabilityRule) -> str:
    if metrics is None:
        return ""
    errors = list(metrics.error_rate_history.since(completed).values[-rule.samples:])
    latencies = list(metrics.latency_history.since(completed).values[-rule.samples:])
    if len(errors) < rule.samples or len(latencies) < rule.samples:
        return ""
    if not _within(errors, rule.spread, rule.error_rate_floor) or not _within(latencies, rule.spread, 0.0):
        return ""
    return f"error rate and p95 within {rule.spread * 100:.0f} % over the last {rule.samples} samples"


def _within(values: Sequence[float], spread: float, floor: float) -> bool:
    low, high = min(values), max(values)
    return high - low <= floor or high - low <= spread * high


def tick(checklist: Checklist, item_id: str) -> NewEvent:
    """An operator's tick of one item (record it with the operator as actor)."""
    item = checklist.item(item_id)
    return checklist_ticked(item.id, item.text)


def untick(checklist: Checklist, item_id: str) -> NewEvent:
    """An operator's untick of one item."""
    item = checklist.item(item_id)
    return checklist_unticked(item.id, item.text)

