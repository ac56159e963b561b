"""The runbook's "Database Rollback Considerations" as pure logic: which
migrations stand between the operator and a safe rollback, what to do when
one cannot be undone, and the two guided procedures as step state machines.

- The reversible-migration plan, in the runbook's order: roll back the
  application first, then the migration, then verify data integrity.
- The data-corruption response, the runbook's six steps: stop writes, assess
  damage, restore from backup OR run a data fix script, verify, resume.

A procedure's state is the fold of its incident's timeline (the
`procedure.step.*` events of console/incident.py, plus `writes.frozen` and
`writes.resumed` for the replica count), so it survives a restart. Steps run
in order; a step is never skipped silently (a skip needs a reason, recorded);
a failure leaves the procedure at the failed step, to retry or skip.

Pure: no I/O. console/database.py runs the steps and records the events.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone

from console import incident as incidents
from console.model import SCHEMA_ANNOTATION, ColourRevision, Event, Revision, older_revisions

MIGRATION_ROLLBACK = "migration_rollback"
DATA_CORRUPTION = "data_corruption"

ESCALATION_LEVEL = 2
"""Data issues go to the runbook's Level 2 (Team Lead: "Data issues, need for
non-standard actions") at once, and a failed migration rollback plan too."""


class ProcedureError(Exception):
    """A step cannot run (or be skipped) now; `str(err)` says why and what to do."""


@dataclass(frozen=True)
class StepSpec:
    """One step of a guided procedure, in the runbook's words."""

    id: str
    number: int
    title: str
    # The runbook's own command for this step, shown beside what the console will run.
    runbook: str
    # The step that can be done instead (restore from backup <-> data fix script).
    alternative: str | None = None


MIGRATION_STEPS: tuple[StepSpec, ...] = (
    StepSpec("app_rollback", 1, "Rollback application first", "kubectl rollout undo deployment/$SERVICE"),
    StepSpec("migration_rollback", 2, "Then rollback migration", "npm run db:migrate:rollback"),
    StepSpec("integrity_check", 3, "Verify data integrity", "npm run db:verify"),
)

CORRUPTION_STEPS: tuple[StepSpec, ...] = (
    StepSpec("freeze", 1, "IMMEDIATELY stop writes", "kubectl scale deployment/$SERVICE --replicas=0"),
    StepSpec("assess", 2, "Assess damage",
             'psql $DATABASE -c "SELECT COUNT(*) FROM affected_table WHERE corrupted_flag"'),
    StepSpec("restore", 3, "Restore from backup if needed", "pg_restore -d $DATABASE backup_before_deploy.dump",
             alternative="fix"),
    StepSpec("fix", 4, "Or run data fix script", "psql $DATABASE -f fix_corrupted_data.sql", alternative="restore"),
    StepSpec("verify", 5, "Verify fix", "npm run db:verify"),
    StepSpec("resume", 6, "Resume service", "kubectl scale deployment/$SERVICE --replicas=3"),
)

PROCEDURES: dict[str, tuple[StepSpec, ...]] = {
    MIGRATION_ROLLBACK: MIGRATION_STEPS,
    DATA_CORRUPTION: CORRUPTION_STEPS,
}

TITLES = {
    MIGRATION_ROLLBACK: "Migration rollback",
    DATA_CORRUPTION: "Data corruption response",
}


class StepStatus(str, enum.Enum):
    PENDING = "pending"
    # Started, no result recorded yet (after a restart: interrupted; it can be run again).
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"
    # Its alternative was done (the fix script after a restore, or the other way round).
    NOT_NEEDED = "not_needed"

    @property
    def complete(self) -> bool:
        return self in (StepStatus.DONE, StepStatus.SKIPPED, StepStatus.NOT_NEEDED)


@dataclass(frozen=True)
class StepState:
    """One step as the timeline tells it."""

    spec: StepSpec
    status: StepStatus = StepStatus.PENDING
    at: datetime | None = None
    actor: str = ""
    commands: tuple[str, ...] = ()
    choice: str = ""
    result: str = ""
    output: str = ""
    error: str = ""
    reason: str = ""

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def label(self) -> str:
        """"3. Restore from backup if needed"."""
        return f"{self.spec.number}. {self.spec.title}"


@dataclass(frozen=True)
class ProcedureState:
    """A guided procedure: every step's latest status, in order."""

    procedure: str
    steps: tuple[StepState, ...]
    # The replica count remembered when writes were frozen (None: not frozen).
    frozen_replicas: int | None = None

    @property
    def title(self) -> str:
        return TITLES[self.procedure]

    def step(self, step_id: str) -> StepState:
        for step in self.steps:
            if step.id == step_id:
                return step
        known = ", ".join(s.id for s in self.steps)
        raise ProcedureError(f"{self.title} has no step {step_id!r}; its steps are {known}.")

    @property
    def started(self) -> bool:
        return any(s.status is not StepStatus.PENDING for s in self.steps)

    @property
    def current(self) -> StepState | None:
        """The step to do next (a failed one stays current), None when finished."""
        return next((s for s in self.steps if not s.status.complete), None)

    @property
    def finished(self) -> bool:
        return self.started and self.current is None

    @property
    def stopped(self) -> StepState | None:
        """The failed step the procedure stopped at, if it did."""
        current = self.current
        return current if current is not None and current.status is StepStatus.FAILED else None

    def blocked_by(self, step_id: str) -> StepState | None:
        """The earlier step that must be done (or skipped with a reason) before
        `step_id` can run; None when it can run. A step's alternative never blocks it."""
        target = self.step(step_id)
        for step in self.steps:
            if step.id == step_id:
                return None
            if step.id == target.spec.alternative:
                continue
            if not step.status.complete:
                return step
        return None


def new_state(procedure: str) -> ProcedureState:
    """A procedure nobody started."""
    return ProcedureState(procedure, tuple(StepState(spec) for spec in PROCEDURES[procedure]))


def _with_alternatives(state: ProcedureState) -> ProcedureState:
    """A step whose alternative is done is not needed (unless it ran itself)."""
    done = {s.id for s in state.steps if s.status is StepStatus.DONE}
    steps = []
    for step in state.steps:
        alt = step.spec.alternative
        if alt in done and step.status in (StepStatus.PENDING, StepStatus.FAILED, StepStatus.SKIPPED):
            step = replace(step, status=StepStatus.NOT_NEEDED,
                           result=f"not needed: step {_number(state, alt)} was done instead")
        steps.append(step)
    return replace(state, steps=tuple(steps))


def _number(state: ProcedureState, step_id: str) -> int:
    return state.step(step_id).spec.number


_STEP_KINDS = {
    incidents.STEP_STARTED: StepStatus.RUNNING,
    incidents.STEP_DONE: StepStatus.DONE,
    incidents.STEP_FAILED: StepStatus.FAILED,
    incidents.STEP_SKIPPED: StepStatus.SKIPPED,
}


def fold(procedure: str, events: Iterable[Event]) -> ProcedureState:
    """The procedure's state from an incident's timeline, oldest event first.
    Starting the first step again after the procedure finished begins a new run."""
    raw = new_state(procedure)
    for event in events:
        if event.kind == incidents.WRITES_FROZEN and procedure == DATA_CORRUPTION:
            if raw.frozen_replicas is None:
                raw = replace(raw, frozen_replicas=int(incidents.payload(event)["replicas"]))
            continue
        if event.kind == incidents.WRITES_RESUMED and procedure == DATA_CORRUPTION:
            raw = replace(raw, frozen_replicas=None)
            continue
        status = _STEP_KINDS.get(event.kind)
        if status is None:
            continue
        data = incidents.payload(event)
        if data.get("procedure") != procedure:
            continue
        step_id = data.get("step")
        if step_id not in {s.id for s in raw.steps}:
            continue
        if status is StepStatus.RUNNING and step_id == raw.steps[0].id and _with_alternatives(raw).finished:
            raw = replace(new_state(procedure), frozen_replicas=raw.frozen_replicas)
        raw = replace(raw, steps=tuple(_applied(s, status, event, data) if s.id == step_id else s for s in raw.steps))
    return _with_alternatives(raw)


def _applied(step: StepState, status: StepStatus, event: Event, data: dict) -> StepState:
    base = dict(status=status, at=event.at, actor=event.actor)
    if status is StepStatus.RUNNING:
        return replace(step, **base, commands=tuple(data.get("commands") or ()), choice=str(data.get("choice") or ""),
                       result="", output="", error="", reason="")
    if status is StepStatus.DONE:
        return replace(step, **base, result=str(data.get("result") or ""), output=str(data.get("output") or ""),
                       error="")
    if status is StepStatus.FAILED:
        return replace(step, **base, error=str(data.get("error") or event.text), output=str(data.get("output") or ""))
    return replace(step, **base, reason=str(data.get("reason") or ""))


def check_run(state: ProcedureState, step_id: str) -> StepState:
    """The step, if it may run now; else ProcedureError saying which step comes first."""
    step = state.step(step_id)
    blocker = state.blocked_by(step_id)
    if blocker is not None:
        raise ProcedureError(
            f"{state.title}: step {step.label} cannot run before step {blocker.label} is done; "
            "do that step first, or skip it with a reason."
        )
    return step


def check_skip(state: ProcedureState, step_id: str, reason: str) -> StepState:
    """The step, if it may be skipped now with this reason; else ProcedureError."""
    step = check_run(state, step_id)
    if not reason or not reason.strip():
        raise ProcedureError(
            f"{state.title}: skipping step {step.label} needs a reason (it goes in the timeline); "
            "say why the step is not needed."
        )
    if step.status.complete:
        raise ProcedureError(f"{state.title}: step {step.label} is already {step.status.value.replace('_', ' ')}.")
    return step


# --- migrations ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Migration:
    """One applied migration, as the migration status source reports it."""

    name: str
    applied_at: datetime | None = None
    # None: the source does not say (the config's `reversible:` list may).
    reversible: bool | None = None

    def describe(self) -> str:
        """"0042_split_address (applied 2024-07-09 10:58 UTC)"."""
        if self.applied_at is None:
            return self.name
        return f"{self.name} (applied {self.applied_at.astimezone(timezone.utc):%Y-%m-%d %H:%M} UTC)"


def with_reversibility(migration: Migration, reversible_names: Iterable[str]) -> Migration:
    """The migration, marked reversible when the config lists it (the source's own word wins when it gives one)."""
    if migration.reversible is None and migration.name in set(reversible_names):
        return replace(migration, reversible=True)
    return migration


def migrations_since_deploy(migrations: Sequence[Migration], history: Sequence[Revision]) -> tuple[Migration, ...]:
    """The migrations a rollback to the previous revision would cross: those
    applied after the previous revision was deployed (a migration run by a
    pre-deploy job lands just before the new pods, so the current revision's
    own creation is too late a boundary). Newest first. Migrations without a
    time cannot be placed and are left out."""
    current = next((r for r in history if r.current), None)
    if current is None:
        return ()
    older = older_revisions(history, current)
    previous = max(older, key=lambda r: r.number) if older else None
    boundary = previous.created if previous is not None else None
    if boundary is None:
        return ()
    found = [m for m in migrations if m.applied_at is not None and m.applied_at > boundary]
    return tuple(sorted(found, key=lambda m: m.applied_at, reverse=True))


@dataclass(frozen=True)
class MigrationFacts:
    """What the migrations since the deploy say, as `model.Facts` fields."""

    migration_applied: bool = False
    migration_reversible: bool | None = None
    migration_name: str | None = None

    def items(self) -> tuple[tuple[str, object], ...]:
        return (
            ("migration_applied", self.migration_applied),
            ("migration_reversible", self.migration_reversible),
            ("migration_name", self.migration_name),
        )


def migration_facts(since_deploy: Sequence[Migration]) -> MigrationFacts:
    """The facts for the decision framework: applied, the newest one's name and
    time, reversible only when every one is (any known irreversible: False; else unknown)."""
    if not since_deploy:
        return MigrationFacts()
    flags = [m.reversible for m in since_deploy]
    if all(flag is True for flag in flags):
        reversible: bool | None = True
    elif any(flag is False for flag in flags):
        reversible = False
    else:
        reversible = None
    if len(set(flags)) > 1:
        # Mixed: the ones that block first, each saying what it is ("0041: not reversible" of both was wrong).
        word = {True: "reversible", False: "not reversible", None: "reversibility unknown"}
        ordered = sorted(since_deploy, key=lambda m: m.reversible is True)
        names = ", ".join(f"{m.describe()} [{word[m.reversible]}]" for m in ordered)
    else:
        names = ", ".join(m.describe() for m in since_deploy)
    return MigrationFacts(True, reversible, names)


def version_key(version: str) -> tuple:
    """Natural order of migration names: "0042_x" after "0041_y", "10" after "9"."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.findall(r"\d+|\D+", version))


def schema_requirement(revision: Revision, requirements: Mapping[str, str]) -> str | None:
    """The migration a revision needs: from the config by revision number, else
    by any of its image tags; else the release's own mark (the
    `model.SCHEMA_ANNOTATION` annotation or image label, in `revision.schema`).
    The config wins: it is how an operator corrects a wrong mark."""
    if str(revision.number) in requirements:
        return requirements[str(revision.number)]
    for tag in revision.versions:
        if tag in requirements:
            return requirements[tag]
    return revision.schema or None


def works_with_schema(revision: Revision, requirements: Mapping[str, str], migration: str) -> bool:
    """True when the revision is known to need `migration` or a later one (so it knows the new schema)."""
    needed = schema_requirement(revision, requirements)
    return needed is not None and version_key(needed) >= version_key(migration)


def blocking_migration(since_deploy: Sequence[Migration]) -> Migration | None:
    """The oldest migration since the deploy that is not known reversible:
    everything from it on cannot be rolled back safely."""
    blocking = [m for m in since_deploy if m.reversible is not True]
    return blocking[-1] if blocking else None


def partial_rollback_target(
    history: Sequence[Revision], requirements: Mapping[str, str], migration: str
) -> Revision | None:
    """The runbook's option 3: the newest revision older than the current one
    that works with the new schema (not the version before the migration)."""
    current = next((r for r in history if r.current), None)
    if current is None:
        return None
    older = sorted(older_revisions(history, current), key=lambda r: r.number, reverse=True)
    return next((r for r in older if works_with_schema(r, requirements, migration)), None)


@dataclass(frozen=True)
class Option:
    """One of the runbook's three options when a migration is not reversible."""

    title: str  # the runbook's words
    detail: str  # what the console can do for it here
    command: tuple[str, ...] = ()
    url: str | None = None
    to_revision: int | None = None

    @property
    def available(self) -> bool:
        return bool(self.command or self.url or self.to_revision)


DATA_LOSS_RISK = (
    "Rolling back past a migration that cannot be undone could cause data loss: the old version "
    "does not know the new schema (a dropped column, transformed data), and the migration itself "
    "must not be rolled back."
)


@dataclass(frozen=True)
class Remedy:
    """How to fix it forward: a command or a link (from the config)."""

    command: tuple[str, ...] = ()
    url: str | None = None


def irreversible_options(
    migration: str,
    hotfix: Remedy | None,
    feature_flag: Remedy | None,
    partial: Revision | None,
) -> tuple[Option, ...]:
    """The runbook's three options, with what this service's config offers for each."""

    def remedy_detail(remedy: Remedy | None, what: str) -> str:
        if remedy is None:
            return f"no {what} is configured for this service (database.{what.replace(' ', '_')} in the config)"
        parts = []
        if remedy.command:
            parts.append("run: " + " ".join(remedy.command))
        if remedy.url:
            parts.append(f"open: {remedy.url}")
        return "; ".join(parts)

    if partial is not None:
        versions = ", ".join(partial.versions) or "?"
        partial_detail = f"roll back to {partial.label} ({versions}), which works with {migration}"
    else:
        partial_detail = (
            f"no earlier revision is known to work with {migration}; mark releases with the migration "
            f"they need (database.schema_requirements in the config, or the {SCHEMA_ANNOTATION} annotation "
            "or image label)"
        )
    return (
        Option("Option 1: Fix forward - deploy a hotfix that works with the new schema",
               remedy_detail(hotfix, "hotfix"),
               command=tuple(hotfix.command) if hotfix else (), url=hotfix.url if hotfix else None),
        Option("Option 2: Feature flag - disable the feature using the new schema",
               remedy_detail(feature_flag, "feature flag"),
               command=tuple(feature_flag.command) if feature_flag else (),
               url=feature_flag.url if feature_flag else None),
        Option("Option 3: Partial rollback - to a version that works with the new schema",
               partial_detail, to_revision=partial.target if partial else None),
    )


def rollback_target(history: Sequence[Revision], to_revision: int | ColourRevision | None = None) -> Revision | None:
    """The revision a rollback goes to: `to_revision` (a blue-green colour, with
    its number or not, names exactly one), else the second-newest revision
    (what `kubectl rollout undo` picks)."""
    if isinstance(to_revision, ColourRevision):
        return next((r for r in history if r.colour == to_revision.colour
                     and to_revision.number in (None, r.number)), None)
    current = next((r for r in history if r.current), None)
    if current is not None and current.colour is not None:
        # Blue-green: the other colour (a number alone may be both colours').
        others = older_revisions(history, current)
        if to_revision is not None:
            others = [r for r in history if r.number == to_revision]
        return others[0] if len(others) == 1 else None
    if to_revision is not None:
        return next((r for r in history if r.number == to_revision), None)
    ordered = sorted(history, key=lambda r: r.number, reverse=True)
    return ordered[1] if len(ordered) > 1 else None


@dataclass(frozen=True)
class RollbackCheck:
    """Whether a rollback to a revision would cross a migration that cannot be undone."""

    blocked: bool
    migration: Migration | None = None
    options: tuple[Option, ...] = field(default=())
    explanation: str = ""


def check_rollback(
    to_revision: Revision | None,
    since_deploy: Sequence[Migration],
    requirements: Mapping[str, str],
    history: Sequence[Revision],
    hotfix: Remedy | None = None,
    feature_flag: Remedy | None = None,
) -> RollbackCheck:
    """A rollback to `to_revision` is blocked when a migration since the deploy
    is not known reversible and the target is not known to work with it."""
    migration = blocking_migration(since_deploy)
    if migration is None:
        return RollbackCheck(False)
    if to_revision is not None and works_with_schema(to_revision, requirements, migration.name):
        return RollbackCheck(False, migration)
    partial = partial_rollback_target(history, requirements, migration.name)
    known = "not reversible" if migration.reversible is False else "not known to be reversible"
    target = to_revision.label if to_revision is not None else "the previous revision"
    explanation = (
        f"Migration {migration.describe()} is {known}, and {target} is not known to work with it. "
        + DATA_LOSS_RISK
    )
    return RollbackCheck(
        True, migration, irreversible_options(migration.name, hotfix, feature_flag, partial), explanation
    )


UNKNOWN_SCHEMA = "the migrations applied now"


def unknown_state_check(why: str, hotfix: Remedy | None = None, feature_flag: Remedy | None = None) -> RollbackCheck:
    """A rollback is blocked when the migration state cannot be read (fail
    closed): a migration that cannot be undone may stand in the way, and
    nothing says which revision would work with it. `why` says what failed."""
    explanation = (
        f"{why.rstrip('. ')}; a migration that cannot be undone may have been applied since the deploy, and "
        "rolling back past it could lose data. Check the migration state, then roll back anyway only if no "
        "such migration was applied."
    )
    return RollbackCheck(True, None, irreversible_options(UNKNOWN_SCHEMA, hotfix, feature_flag, None), explanation)
