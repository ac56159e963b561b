"""Provenance: who rolled a service back, from what, to what, when and why,
as the objects themselves record it. Pure: no I/O; the platforms read the
objects and hand the annotations, rollout history and managedFields here.

Three records are read (DESIGN.md, "First, do no harm"):

- the console's own: every console writes `ROLLBACKS_ANNOTATION` on the object
  it changes (Deployment, Service, VirtualService; tags on an ECS service),
  a JSON list of the last `KEEP` rollbacks (who, from, to, when, why, incident);
- Kubernetes' record of an undo: a reused ReplicaSet's
  `deployment.kubernetes.io/revision-history` lists the revision numbers it
  had before; it came back when the deployment stood on the revision just
  below its new number, so that revision (and any passed over between the
  target's old number and it) was rolled back from;
- the last manager of a Service's selector (`managedFields`): a person's
  `kubectl patch` shows as `kubectl-patch`, with the time.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone

from console.clock import parse_rfc3339

ROLLBACKS_ANNOTATION = "rollback-console.io/rollbacks"
"""The console's record on the object: a JSON list of `RollbackRecord.to_json()`, newest last."""
REVISION_HISTORY_ANNOTATION = "deployment.kubernetes.io/revision-history"
FIELD_MANAGER = "rollback-console"
"""The field manager the console's writes carry (the apiserver records it in managedFields)."""
KEEP = 10
"""How many rollbacks the record keeps (the newest): the annotation's list, and
the console's record tags on an ECS service (one tag each; well under AWS's 50
tags per resource, leaving room for the user's own tags)."""

CONSOLE = "console annotation"
ROLLOUT_HISTORY = "rollout history"
MANAGED_FIELDS = "managedFields"
INCIDENT = "incident timeline"


@dataclass(frozen=True)
class RollbackRecord:
    """One rollback of a service as a record on the object (or the timeline) says."""

    by: str
    from_versions: tuple[str, ...]
    to_versions: tuple[str, ...]
    # None when the record does not say (a reused ReplicaSet has no time): read as recent.
    at: datetime | None = None
    why: str = ""
    incident: str = ""
    source: str = CONSOLE
    # Versions passed over on the way (an undo from revision 5 to 3 passes 4).
    passed_over: tuple[tuple[str, ...], ...] = ()

    def sentence(self, service: str) -> str:
        """"alice@laptop rolled order-service back from 1.2.3 to 1.2.2 at 14:21 UTC, INC-...". """
        when = f" at {self.at.astimezone(timezone.utc):%H:%M} UTC" if self.at else " (time not recorded)"
        text = (f"{self.by} rolled {service} back from {_join(self.from_versions)} to "
                f"{_join(self.to_versions)}{when}")
        if self.incident:
            text += f", {self.incident}"
        if self.why:
            text += f" (reason: {self.why})"
        if self.source != CONSOLE:
            text += f" [from the {self.source}]"
        return text

    def to_json(self) -> dict:
        return {
            "by": self.by,
            "from": list(self.from_versions),
            "to": list(self.to_versions),
            "at": self.at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if self.at else None,
            "why": self.why,
            "incident": self.incident,
        }

    @property
    def key(self) -> tuple:
        return (self.by, self.from_versions, self.to_versions, self.at)


@dataclass(frozen=True)
class Provenance:
    """What the objects say about a service's past rollbacks."""

    records: tuple[RollbackRecord, ...] = ()
    # Versions whose pods never became ready (a rollout past its progress deadline).
    never_ready: tuple[tuple[str, ...], ...] = ()
    # Sentences about records that could not be read (a malformed annotation).
    problems: tuple[str, ...] = field(default=())

    def merged(self, other: Provenance) -> Provenance:
        return Provenance(
            merge(self.records, other.records),
            tuple(dict.fromkeys(self.never_ready + other.never_ready)),
            self.problems + other.problems,
        )


def _join(versions: Sequence[str]) -> str:
    return ", ".join(versions) or "?"


_time = parse_rfc3339


def decode(value: str | None) -> tuple[tuple[RollbackRecord, ...], tuple[str, ...]]:
    """The records of a `ROLLBACKS_ANNOTATION` value, and sentences for what could not be read."""
    if not value:
        return (), ()
    try:
        items = json.loads(value)
    except ValueError:
        return (), (f"The {ROLLBACKS_ANNOTATION} annotation is not JSON; it was ignored.",)
    if not isinstance(items, list):
        return (), (f"The {ROLLBACKS_ANNOTATION} annotation is not a list; it was ignored.",)
    records = []
    for item in items:
        if not isinstance(item, dict):
            continue
        records.append(RollbackRecord(
            by=str(item.get("by") or "someone"),
            from_versions=tuple(str(v) for v in item.get("from") or ()),
            to_versions=tuple(str(v) for v in item.get("to") or ()),
            at=_time(item.get("at")),
            why=str(item.get("why") or ""),
            incident=str(item.get("incident") or ""),
        ))
    return tuple(records), ()


def encode(existing: Iterable[RollbackRecord], new: RollbackRecord) -> str:
    """The annotation value with `new` appended (the newest `KEEP` kept)."""
    records = [r for r in merge(tuple(existing), ()) if r.source == CONSOLE] + [new]
    return json.dumps([r.to_json() for r in records[-KEEP:]], separators=(",", ":"))


def from_annotations(*annotation_maps: Mapping[str, str] | None) -> Provenance:
    """The console's records found on any of the objects' annotations (a
    Deployment and its ReplicaSets: the controller copies the annotation onto
    them, and an undo copies an old one back), merged."""
    records: list[RollbackRecord] = []
    problems: list[str] = []
    for annotations in annotation_maps:
        found, wrong = decode((annotations or {}).get(ROLLBACKS_ANNOTATION))
        records.extend(found)
        problems.extend(wrong)
    return Provenance(merge(tuple(records), ()), (), tuple(dict.fromkeys(problems)))


def merge(a: Sequence[RollbackRecord], b: Sequence[RollbackRecord]) -> tuple[RollbackRecord, ...]:
    """Both lists, duplicates dropped, oldest first (unknown times last: read as recent)."""
    seen: dict[tuple, RollbackRecord] = {}
    for record in (*a, *b):
        seen.setdefault(record.key, record)
    floor = datetime.min.replace(tzinfo=timezone.utc)
    return tuple(sorted(seen.values(), key=lambda r: (r.at is None, r.at or floor)))


@dataclass(frozen=True)
class ReplicaSetView:
    """What provenance needs of one ReplicaSet."""

    revision: int
    versions: tuple[str, ...]
    # Former revision numbers (`deployment.kubernetes.io/revision-history`).
    history: tuple[int, ...] = ()


def parse_revision_history(value: str | None) -> tuple[int, ...]:
    """"3,5" -> (3, 5); junk entries are skipped."""
    numbers = []
    for part in (value or "").split(","):
        part = part.strip()
        if part.isdigit():
            numbers.append(int(part))
    return tuple(numbers)


def undo_records(
    replica_sets: Sequence[ReplicaSetView],
    by: str = "kubectl rollout undo",
    current_at: datetime | None = None,
    current_revision: int | None = None,
) -> tuple[RollbackRecord, ...]:
    """Rollbacks that the rollout history shows: a ReplicaSet that got revision
    N back from an older number M came back while the deployment stood on
    revision N-1, so N-1 was rolled back from, and the revisions between M and
    N-1 were passed over. Each former number is one such move. `current_at`
    (from the Deployment's managedFields) dates the move that made
    `current_revision`; the others are undated (read as recent)."""
    by_number: dict[int, ReplicaSetView] = {}
    for rs in replica_sets:
        by_number[rs.revision] = rs
        for former in rs.history:
            by_number.setdefault(former, rs)
    records = []
    for rs in replica_sets:
        numbers = sorted((*rs.history, rs.revision))
        for old, new in zip(numbers, numbers[1:]):
            source = by_number.get(new - 1)
            if source is None or source is rs:
                continue
            passed = tuple(dict.fromkeys(
                by_number[n].versions for n in range(old + 1, new - 1)
                if n in by_number and by_number[n] is not rs and by_number[n].versions != rs.versions
            ))
            at = current_at if (new == rs.revision and rs.revision == current_revision) else None
            records.append(RollbackRecord(
                by=by, from_versions=source.versions, to_versions=rs.versions, at=at,
                why=f"revision {new - 1} → {new} (was revision {old})", source=ROLLOUT_HISTORY, passed_over=passed,
            ))
    return tuple(records)


def field_owner(managed_fields: Sequence[Mapping] | None, *path: str) -> tuple[str, datetime | None] | None:
    """The manager (and its time) of the field at `path` ("spec", "selector",
    "version") in an object's managedFields; None when none is recorded."""
    for entry in managed_fields or ():
        node = entry.get("fieldsV1") or {}
        for name in path:
            node = node.get(f"f:{name}") if isinstance(node, dict) else None
            if node is None:
                break
        else:
            return str(entry.get("manager") or "unknown"), _time(entry.get("time"))
    return None
