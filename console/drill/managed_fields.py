"""`metadata.managedFields` the way the apiserver keeps it for Update
operations (POST, PUT, PATCH): the fields a write changed belong to its
field manager from then on, with the time of that write, and are taken from
every other manager. The manager is the request's `fieldManager` parameter,
else the User-Agent up to its first "/" (kubectl sends `kubectl-patch`,
`kubectl-rollout`, `kubectl-edit` ...; the Python client `OpenAPI-Generator`).

Simplified where nothing here reads the difference: a list is one field
(the apiserver keys list items with `k:`/`v:`), and the status subresource
is not tracked.
"""

from __future__ import annotations

from typing import Any

_SERVER_OWNED = frozenset({"resourceVersion", "generation", "uid", "creationTimestamp", "managedFields",
                           "namespace", "name", "selfLink"})


def manager_of(query: dict[str, list[str]], headers: dict[str, str]) -> str:
    """The write's field manager, as the apiserver names it."""
    given = (query.get("fieldManager") or [""])[0]
    if given:
        return given
    agent = headers.get("user-agent", "")
    return agent.split("/", 1)[0] or "unknown"


def _leaves(obj: Any, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    if isinstance(obj, dict) and obj:
        out: dict[tuple[str, ...], Any] = {}
        for key, value in obj.items():
            out.update(_leaves(value, prefix + (str(key),)))
        return out
    return {prefix: obj}


def _fields(obj: dict) -> dict[tuple[str, ...], Any]:
    tracked = {k: v for k, v in obj.items() if k not in ("status", "apiVersion", "kind")}
    metadata = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in _SERVER_OWNED}
    tracked["metadata"] = metadata
    return {path: value for path, value in _leaves(tracked).items() if path and path != ("metadata",)}


def _paths(fields_v1: dict, prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    paths: set[tuple[str, ...]] = set()
    for key, value in (fields_v1 or {}).items():
        name = key[2:] if key.startswith("f:") else key
        if isinstance(value, dict) and value:
            paths |= _paths(value, prefix + (name,))
        else:
            paths.add(prefix + (name,))
    return paths


def _render(paths: set[tuple[str, ...]]) -> dict:
    root: dict = {}
    for path in sorted(paths):
        node = root
        for name in path:
            node = node.setdefault(f"f:{name}", {})
    return root


def track(current: dict | None, updated: dict, manager: str, now: str, api_version: str) -> None:
    """Set `updated`'s managedFields after a write by `manager` at `now` (RFC 3339)."""
    before = _fields(current) if current is not None else {}
    after = _fields(updated)
    changed = {path for path in set(before) | set(after) if before.get(path, object()) != after.get(path, object())}
    removed = {path for path in before if path not in after}
    entries = [dict(e) for e in ((current or {}).get("metadata") or {}).get("managedFields") or []]
    kept = []
    mine: set[tuple[str, ...]] = set()
    for entry in entries:
        paths = _paths(entry.get("fieldsV1") or {})
        if entry.get("manager") == manager and entry.get("operation") == "Update":
            mine = paths - removed
            continue
        paths = {p for p in paths if p not in changed and not any(p[:len(c)] == c for c in changed)}
        if paths:
            kept.append({**entry, "fieldsV1": _render(paths)})
    mine = {p for p in (mine | changed) if p in after}
    if changed or current is None:
        entry = {"manager": manager, "operation": "Update", "apiVersion": api_version, "time": now,
                 "fieldsType": "FieldsV1", "fieldsV1": _render(mine)}
        kept.append(entry)
    elif mine:
        previous = next(e for e in entries if e.get("manager") == manager and e.get("operation") == "Update")
        kept.append({**previous, "fieldsV1": _render(mine)})
    updated.setdefault("metadata", {})["managedFields"] = kept
