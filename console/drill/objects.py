"""The drill world's object store: a tiny etcd plus apiserver storage layer.

Objects are plain JSON dicts shaped exactly as the Kubernetes API returns them,
so the REST layer (`kube_api`) can hand them out unchanged and the world's
controllers can read and write them the way real controllers do. Every write
bumps one global resource version (like an etcd revision) and appends a watch
event; watchers catch up with `events_since` and block in `wait_for_change`.
"""

from __future__ import annotations

import collections
import copy
import re
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Iterable

# How many watch events are kept; a watcher further behind gets 410 Gone and
# must relist, exactly as with a compacted etcd.
RETAINED_EVENTS = 5000


class StoreError(Exception):
    """Base of the store's errors; the message is the apiserver's sentence."""


class NotFound(StoreError):
    """The object does not exist (HTTP 404)."""


class AlreadyExists(StoreError):
    """An object with that name already exists (HTTP 409)."""


class Conflict(StoreError):
    """The object changed since the caller read it (HTTP 409)."""


class Gone(StoreError):
    """The requested resource version is older than the retained events (HTTP 410)."""


class InvalidSelector(StoreError, ValueError):
    """A label or field selector could not be parsed (HTTP 400)."""


@dataclass(frozen=True)
class WatchEvent:
    """One change to one object, as a watch stream reports it."""

    type: str  # "ADDED" | "MODIFIED" | "DELETED"
    resource: str
    object: dict
    resource_version: int


def format_timestamp(at: datetime) -> str:
    """RFC 3339 with seconds precision in UTC, as the apiserver writes times."""
    return at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_timestamp(text: str) -> datetime:
    """The inverse of `format_timestamp` (also accepts fractional seconds)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# ---------------------------------------------------------------------------
# Selectors

_SET_RE = re.compile(r"^\s*(!?)\s*([A-Za-z0-9_./-]+)\s+(in|notin)\s*\((.*)\)\s*$")
_EQ_RE = re.compile(r"^\s*([A-Za-z0-9_./-]+)\s*(==|!=|=)\s*([A-Za-z0-9_.-]*)\s*$")
_EXISTS_RE = re.compile(r"^\s*(!?)\s*([A-Za-z0-9_./-]+)\s*$")


def _split_requirements(selector: str) -> list[str]:
    """Split on commas that are not inside a set's parentheses."""
    parts, depth, current = [], 0, []
    for char in selector:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [part for part in parts if part.strip()]


def parse_label_selector(selector: str | None) -> Callable[[dict[str, str]], bool]:
    """Compile a label selector string (equality and set-based) to a predicate.

    Raises InvalidSelector with the apiserver's wording on a syntax error.
    """
    if not selector or not selector.strip():
        return lambda labels: True
    checks: list[Callable[[dict[str, str]], bool]] = []
    for requirement in _split_requirements(selector):
        if match := _SET_RE.match(requirement):
            negated, key, op, values_text = match.groups()
            if negated:
                raise InvalidSelector(f"unable to parse requirement: {requirement.strip()!r}")
            values = {v.strip() for v in values_text.split(",") if v.strip()}
            if op == "in":
                checks.append(lambda labels, k=key, vs=values: labels.get(k) in vs)
            else:
                checks.append(lambda labels, k=key, vs=values: labels.get(k) not in vs)
        elif match := _EQ_RE.match(requirement):
            key, op, value = match.groups()
            if op == "!=":
                checks.append(lambda labels, k=key, v=value: labels.get(k) != v)
            else:
                checks.append(lambda labels, k=key, v=value: k in labels and labels[k] == v)
        elif match := _EXISTS_RE.match(requirement):
            negated, key = match.groups()
            if negated:
                checks.append(lambda labels, k=key: k not in labels)
            else:
                checks.append(lambda labels, k=key: k in labels)
        else:
            raise InvalidSelector(
                f"unable to parse requirement: {requirement.strip()!r}: "
                "expected key=value, key!=value, key in (a,b), key notin (a,b), key or !key"
            )
    return lambda labels: all(check(labels or {}) for check in checks)


def label_selector_matches(selector: dict | None, labels: dict[str, str] | None) -> bool:
    """Does a structured LabelSelector (matchLabels/matchExpressions) select these labels?

    An empty selector selects everything, as in Kubernetes; None selects nothing.
    """
    if selector is None:
        return False
    labels = labels or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, op = expression.get("key"), expression.get("operator")
        values = set(expression.get("values") or [])
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def label_selector_string(selector: dict | None) -> str:
    """A structured LabelSelector written as a selector string (`a=b,c in (d)`)."""
    if not selector:
        return ""
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expression in selector.get("matchExpressions") or []:
        key, op = expression.get("key"), expression.get("operator")
        values = ",".join(sorted(expression.get("values") or []))
        parts.append(
            {
                "In": f"{key} in ({values})",
                "NotIn": f"{key} notin ({values})",
                "Exists": f"{key}",
                "DoesNotExist": f"!{key}",
            }.get(op, "")
        )
    return ",".join(part for part in parts if part)


def _field_value(obj: dict, path: str) -> str:
    value: Any = obj
    for part in path.split("."):
        if not isinstance(value, dict):
            return ""
        value = value.get(part)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def parse_field_selector(selector: str | None) -> Callable[[dict], bool]:
    """Compile a field selector (`metadata.name=x,status.phase!=Running`)."""
    if not selector or not selector.strip():
        return lambda obj: True
    checks: list[Callable[[dict], bool]] = []
    for requirement in _split_requirements(selector):
        match = re.match(r"^\s*([A-Za-z0-9_.]+)\s*(==|!=|=)\s*(.*?)\s*$", requirement)
        if not match:
            raise InvalidSelector(f"invalid field selector: {requirement.strip()!r}")
        path, op, value = match.groups()
        if op == "!=":
            checks.append(lambda obj, p=path, v=value: _field_value(obj, p) != v)
        else:
            checks.append(lambda obj, p=path, v=value: _field_value(obj, p) == v)
    return lambda obj: all(check(obj) for check in checks)


# ---------------------------------------------------------------------------
# Templates

# The label the deployment controller adds to a ReplicaSet's template.
POD_TEMPLATE_HASH_LABEL = "pod-template-hash"


def prune_empty(value: Any) -> Any:
    """Drop nulls, empty maps and empty lists, recursively.

    Clients that serialize Go structs (kubectl's rollback patch) send
    `creationTimestamp: null` and `resources: {}` where the world wrote nothing;
    the apiserver treats both as unset, and so must every comparison here.
    """
    if isinstance(value, dict):
        pruned = {k: prune_empty(v) for k, v in value.items()}
        return {k: v for k, v in pruned.items() if v not in (None, {}, [])}
    if isinstance(value, list):
        return [prune_empty(v) for v in value]
    return value


def canonical_template(template: dict | None) -> dict:
    """A pod template without the pod-template-hash label and without empty
    values: two templates are the same revision iff their canonical forms are
    equal (kubectl's `equalIgnoreHash`)."""
    # prune_empty builds new dicts and lists all the way down, so only the
    # labels map needs its own copy before the hash label is dropped.
    template = dict(template or {})
    metadata = template.get("metadata")
    if isinstance(metadata, dict) and metadata.get("labels"):
        labels = dict(metadata["labels"])
        labels.pop(POD_TEMPLATE_HASH_LABEL, None)
        template["metadata"] = {**metadata, "labels": labels}
    return prune_empty(template)


def clone(value: Any) -> Any:
    """A deep copy of a JSON document (dicts, lists, scalars): what
    `copy.deepcopy` returns for the store's objects, several times faster
    (no memo, no dispatch per atom). Anything else falls back to deepcopy."""
    kind = type(value)
    if kind is dict:
        return {k: clone(v) if type(v) in _CONTAINERS else v for k, v in value.items()}
    if kind is list:
        return [clone(v) if type(v) in _CONTAINERS else v for v in value]
    if kind in _ATOMS:
        return value
    return copy.deepcopy(value)


_ATOMS = frozenset({str, int, float, bool, type(None)})
_CONTAINERS = frozenset({dict, list, tuple, set})


# ---------------------------------------------------------------------------
# The store


def _name_of(obj: dict) -> str:
    return (obj.get("metadata") or {}).get("name") or ""


class ObjectStore:
    """Thread-safe storage of Kubernetes objects with a global resource version.

    Callers may hold `lock` across several operations (read-modify-write);
    every method takes it itself too (it is re-entrant).
    """

    def __init__(self, now: Callable[[], datetime], random_bits: Callable[[], int] | None = None) -> None:
        self._now = now
        # Source of uids and generated name suffixes: random by default, seeded
        # by the drill world so the same scenario and seed give the same objects.
        self._random_bits = random_bits or (lambda: uuid.uuid4().int)
        self.lock = threading.RLock()
        self._changed = threading.Condition(self.lock)
        self.resource_version = 1
        # resource -> (namespace or "", name) -> object
        self._objects: dict[str, dict[tuple[str, str], dict]] = collections.defaultdict(dict)
        # resource -> namespace or "" -> name -> the same objects: a namespaced
        # list must not walk (and sort) every namespace's objects.
        self._by_namespace: dict[str, dict[str, dict[str, dict]]] = collections.defaultdict(dict)
        self._events: collections.deque[WatchEvent] = collections.deque(maxlen=RETAINED_EVENTS)
        # Events at or below this version have been dropped from the window.
        self._compacted = 0

    def now(self) -> datetime:
        """The world's current time (the clock the store was built with)."""
        return self._now()

    # -- reads -------------------------------------------------------------

    def get(self, resource: str, namespace: str | None, name: str, *, copy: bool = True) -> dict:
        """A deep copy of one object; raises NotFound. `copy=False` returns the
        stored object itself, for callers that only read it (never mutate it)."""
        with self.lock:
            obj = self._objects[resource].get((namespace or "", name))
            if obj is None:
                raise NotFound(f'{resource} "{name}" not found')
            return clone(obj) if copy else obj

    def list(
        self,
        resource: str,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        *,
        copy: bool = True,
    ) -> tuple[list[dict], int]:
        """Matching objects (deep copies, sorted by namespace then name) and the
        resource version the list is consistent with. `copy=False` returns the
        stored objects themselves, for callers that only read them."""
        label_match = parse_label_selector(label_selector) if label_selector else None
        field_match = parse_field_selector(field_selector) if field_selector else None
        with self.lock:
            if namespace is None:
                candidates = [obj for _key, obj in sorted(self._objects[resource].items())]
            else:
                candidates = [obj for _name, obj in sorted(self._by_namespace[resource].get(namespace, {}).items())]
            items = [
                clone(obj) if copy else obj
                for obj in candidates
                if (label_match is None or label_match((obj.get("metadata") or {}).get("labels") or {}))
                and (field_match is None or field_match(obj))
            ]
            return items, self.resource_version

    def resources(self) -> Iterable[str]:
        """Resource names that have ever held an object."""
        with self.lock:
            return list(self._objects)

    # -- writes ------------------------------------------------------------

    def create(self, resource: str, namespace: str | None, obj: dict) -> dict:
        """Store a new object, filling in uid, resourceVersion, creationTimestamp
        and generation; `metadata.generateName` makes a unique name.

        Raises AlreadyExists."""
        obj = clone(obj)
        metadata = obj.setdefault("metadata", {})
        with self.lock:
            if not metadata.get("name"):
                prefix = metadata.get("generateName")
                if not prefix:
                    raise ValueError("name or generateName is required")
                while True:
                    candidate = prefix + f"{self._random_bits():032x}"[:5]
                    if (namespace or "", candidate) not in self._objects[resource]:
                        break
                metadata["name"] = candidate
            key = (namespace or "", metadata["name"])
            if key in self._objects[resource]:
                raise AlreadyExists(f'{resource} "{metadata["name"]}" already exists')
            if namespace:
                metadata["namespace"] = namespace
            else:
                metadata.pop("namespace", None)
            metadata["uid"] = str(uuid.UUID(int=self._random_bits() & ((1 << 128) - 1), version=4))
            metadata.setdefault("creationTimestamp", format_timestamp(self._now()))
            metadata["generation"] = 1
            metadata.pop("deletionTimestamp", None)
            self._commit("ADDED", resource, key, obj)
            return clone(obj)

    def update(
        self, resource: str, namespace: str | None, obj: dict, *, check_version: bool = True
    ) -> dict:
        """Replace an object. With `check_version`, a set metadata.resourceVersion
        that differs from the stored one raises Conflict. The generation moves
        when the spec changes (status-only changes leave it). Raises NotFound."""
        obj = clone(obj)
        metadata = obj.setdefault("metadata", {})
        name = metadata.get("name") or ""
        with self.lock:
            key = (namespace or "", name)
            current = self._objects[resource].get(key)
            if current is None:
                raise NotFound(f'{resource} "{name}" not found')
            current_meta = current["metadata"]
            wanted = metadata.get("resourceVersion")
            if check_version and wanted and str(wanted) != current_meta["resourceVersion"]:
                raise Conflict(
                    f'Operation cannot be fulfilled on {resource} "{name}": the object has '
                    "been modified; please apply your changes to the latest version and try again"
                )
            # Identity and bookkeeping belong to the server, not the writer.
            for field_name in ("uid", "creationTimestamp", "generation"):
                if field_name in current_meta:
                    metadata[field_name] = current_meta[field_name]
            if namespace:
                metadata["namespace"] = namespace
            if _spec_of(obj) != _spec_of(current):
                metadata["generation"] = int(current_meta.get("generation", 1)) + 1
            if _without_version(obj) == _without_version(current):
                # A no-op write keeps the resource version, as the apiserver does.
                return clone(current)
            self._commit("MODIFIED", resource, key, obj)
            return clone(obj)

    def delete(self, resource: str, namespace: str | None, name: str) -> dict:
        """Remove an object and return its last state. Raises NotFound."""
        with self.lock:
            key = (namespace or "", name)
            current = self._objects[resource].pop(key, None)
            if current is None:
                raise NotFound(f'{resource} "{name}" not found')
            self._by_namespace[resource].get(key[0], {}).pop(name, None)
            # A reader that took the stored object (copy=False) keeps what it saw:
            # the deleted state is a new object.
            current = clone(current)
            self.resource_version += 1
            current["metadata"]["resourceVersion"] = str(self.resource_version)
            self._append(WatchEvent("DELETED", resource, current, self.resource_version))
            return clone(current)

    def _commit(self, event_type: str, resource: str, key: tuple[str, str], obj: dict) -> None:
        self.resource_version += 1
        obj["metadata"]["resourceVersion"] = str(self.resource_version)
        self._objects[resource][key] = obj
        self._by_namespace[resource].setdefault(key[0], {})[key[1]] = obj
        self._append(WatchEvent(event_type, resource, clone(obj), self.resource_version))

    def _append(self, event: WatchEvent) -> None:
        if len(self._events) == self._events.maxlen:
            self._compacted = self._events[0].resource_version
        self._events.append(event)
        self._changed.notify_all()

    # -- watch -------------------------------------------------------------

    def events_since(self, resource_version: int, resource: str | None = None) -> list[WatchEvent]:
        """Events newer than `resource_version` (optionally of one resource),
        oldest first. Raises Gone if some of them are no longer retained."""
        with self.lock:
            if resource_version < self._compacted:
                raise Gone(
                    f"too old resource version: {resource_version} ({self._compacted + 1})"
                )
            return [
                event
                for event in self._events
                if event.resource_version > resource_version
                and (resource is None or event.resource == resource)
            ]

    def wait_for_change(self, resource_version: int, timeout: float) -> None:
        """Block until the store moves past `resource_version` or `timeout` passes."""
        with self._changed:
            self._changed.wait_for(lambda: self.resource_version > resource_version, timeout)


def _spec_of(obj: dict) -> Any:
    # Objects without a spec (endpoints, leases' peers...) version their data.
    if "spec" in obj:
        return obj["spec"]
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


def _without_version(obj: dict) -> dict:
    stripped = dict(obj)
    metadata = dict(obj.get("metadata") or {})
    metadata.pop("resourceVersion", None)
    stripped["metadata"] = metadata
    return stripped
