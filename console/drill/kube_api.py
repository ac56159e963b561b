"""The Kubernetes REST API over the drill world's object store.

Faithful enough that the real `kubectl` and the official `kubernetes` Python
client work against it unchanged: legacy discovery, get/list/watch, Table
output for kubectl's printers, create/replace/delete, JSON, merge and
strategic-merge patches, the scale and status subresources, pods/log, and
Status objects for every error, worded as the apiserver words them.

The HTTP server (`server.py`) parses the request and calls `KubeApi.handle`;
the world's controllers run when `world.advance()` is called, which this module
does before every read and after every write (never while holding the store
lock, which the controllers take themselves).
"""

from __future__ import annotations

import copy
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Iterator

import yaml

from console.drill.objects import (
    AlreadyExists,
    Conflict,
    Gone,
    InvalidSelector,
    NotFound,
    ObjectStore,
    label_selector_matches,
    label_selector_string,
    parse_field_selector,
    parse_label_selector,
    parse_timestamp,
    format_timestamp,
)
from console.drill import managed_fields
from console.drill.scenario import MAX_REPLICAS

_log = logging.getLogger(__name__)

# The version this API claims to be (kubectl warns on a skew of more than one minor).
SERVER_VERSION = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0-drill",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2024-12-11T00:00:00Z",
    "goVersion": "go1.23.4",
    "compiler": "gc",
    "platform": "linux/amd64",
}

# How long a watch stays open when the client names no timeoutSeconds.
DEFAULT_WATCH_SECONDS = 1800
# How often an open watch lets the world's controllers run (wall seconds).
WATCH_POLL_SECONDS = 0.1

JSON = "application/json"
STANDARD_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass
class Response:
    """What the HTTP server writes back: a body, or a stream written chunked."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    stream: Iterator[bytes] | None = None


@dataclass(frozen=True)
class ResourceType:
    """One served resource, as discovery describes it."""

    group: str
    versions: tuple[str, ...]  # served versions, the preferred first
    name: str  # plural, lowercase: the store's key
    singular: str
    kind: str
    namespaced: bool = True
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()  # of "status", "scale", "log"
    # Built-in types accept strategic merge patch; custom resources do not.
    builtin: bool = True

    @property
    def group_resource(self) -> str:
        return f"{self.name}.{self.group}" if self.group else self.name

    @property
    def group_kind(self) -> str:
        return f"{self.kind}.{self.group}" if self.group else self.kind

    def api_version(self, version: str) -> str:
        return f"{self.group}/{version}" if self.group else version


RESOURCE_TYPES: tuple[ResourceType, ...] = (
    ResourceType("", ("v1",), "namespaces", "namespace", "Namespace", False, ("ns",), (), ("status",)),
    ResourceType("", ("v1",), "pods", "pod", "Pod", True, ("po",), ("all",), ("status", "log")),
    ResourceType("", ("v1",), "services", "service", "Service", True, ("svc",), ("all",), ("status",)),
    ResourceType("", ("v1",), "endpoints", "endpoints", "Endpoints", True, ("ep",)),
    ResourceType("", ("v1",), "events", "event", "Event", True, ("ev",)),
    ResourceType("", ("v1",), "configmaps", "configmap", "ConfigMap", True, ("cm",)),
    ResourceType(
        "apps", ("v1",), "deployments", "deployment", "Deployment", True, ("deploy",), ("all",),
        ("status", "scale"),
    ),
    ResourceType(
        "apps", ("v1",), "replicasets", "replicaset", "ReplicaSet", True, ("rs",), ("all",),
        ("status", "scale"),
    ),
    ResourceType("coordination.k8s.io", ("v1",), "leases", "lease", "Lease", True),
    ResourceType(
        "networking.istio.io", ("v1", "v1beta1"), "virtualservices", "virtualservice",
        "VirtualService", True, ("vs",), ("istio-io", "networking-istio-io"), ("status",), False,
    ),
    ResourceType(
        "networking.istio.io", ("v1", "v1beta1"), "destinationrules", "destinationrule",
        "DestinationRule", True, ("dr",), ("istio-io", "networking-istio-io"), ("status",), False,
    ),
    # GitOps owners (README "GitOps (Argo CD and Flux)"): Argo CD's Application
    # CRD has no subresources; Flux's Kustomization has status.
    ResourceType(
        "argoproj.io", ("v1alpha1",), "applications", "application", "Application", True,
        ("app", "apps"), (), (), False,
    ),
    ResourceType(
        "kustomize.toolkit.fluxcd.io", ("v1", "v1beta2"), "kustomizations", "kustomization", "Kustomization",
        True, ("ks",), (), ("status",), False,
    ),
    ResourceType(
        "helm.toolkit.fluxcd.io", ("v2", "v2beta2"), "helmreleases", "helmrelease", "HelmRelease",
        True, ("hr",), (), ("status",), False,
    ),
)


def _groups() -> dict[str, list[ResourceType]]:
    groups: dict[str, list[ResourceType]] = {}
    for rtype in RESOURCE_TYPES:
        groups.setdefault(rtype.group, []).append(rtype)
    return groups


GROUPS = _groups()


def find_resource(group: str, version: str, name: str) -> ResourceType | None:
    """The served resource `name` in group/version, if any."""
    for rtype in GROUPS.get(group, []):
        if rtype.name == name and version in rtype.versions:
            return rtype
    return None


def _group_versions() -> list[str]:
    """OpenAPI v3 names group versions as `api/v1` and `apis/GROUP/VERSION`."""
    names = []
    for group, rtypes in GROUPS.items():
        for version in rtypes[0].versions:
            names.append(f"apis/{group}/{version}" if group else f"api/{version}")
    return names


# Changes whenever the documents below change, so kubectl's cache notices.
OPENAPI_HASH = "drill-1"


def _openapi_v3(group_version: str) -> dict:
    """A minimal OpenAPI v3 document for one group version.

    kubectl reads it only to learn that PATCH accepts `fieldValidation`, so it
    validates server-side (which this API does by decoding) instead of
    downloading full schemas. It carries the PATCH operations and nothing else.
    """
    prefix, _, version = group_version.rpartition("/")
    group = prefix.split("/", 1)[1] if prefix.startswith("apis/") else ""
    paths = {}
    for rtype in GROUPS.get(group, []):
        if version not in rtype.versions:
            continue
        collection = f"/{group_version}/namespaces/{{namespace}}/{rtype.name}" if rtype.namespaced \
            else f"/{group_version}/{rtype.name}"
        paths[collection + "/{name}"] = {
            "patch": {
                "operationId": f"patch{rtype.kind}",
                "x-kubernetes-action": "patch",
                "x-kubernetes-group-version-kind": {"group": group, "version": version, "kind": rtype.kind},
                "parameters": [
                    {"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": True}}
                    for name in ("dryRun", "fieldManager", "fieldValidation", "force")
                ],
                "responses": {"200": {"description": "OK"}},
            }
        }
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": SERVER_VERSION["gitVersion"]},
        "paths": paths,
        "components": {"schemas": {}},
    }


# ---------------------------------------------------------------------------
# Errors


class ApiError(Exception):
    """An error the API answers with a Status object."""

    def __init__(self, code: int, reason: str, message: str, details: dict | None = None):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status(self) -> dict:
        """The error as a meta/v1 Status object."""
        status: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            status["details"] = self.details
        return status


def _details(rtype: ResourceType, name: str | None, **extra: Any) -> dict:
    details: dict[str, Any] = {}
    if name:
        details["name"] = name
    if rtype.group:
        details["group"] = rtype.group
    details["kind"] = rtype.name
    details.update(extra)
    return details


def not_found(rtype: ResourceType, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{rtype.group_resource} "{name}" not found', _details(rtype, name))


def already_exists(rtype: ResourceType, name: str) -> ApiError:
    return ApiError(
        409, "AlreadyExists", f'{rtype.group_resource} "{name}" already exists', _details(rtype, name)
    )


def conflict(rtype: ResourceType, name: str) -> ApiError:
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {rtype.group_resource} "{name}": the object has been '
        "modified; please apply your changes to the latest version and try again",
        _details(rtype, name),
    )


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def invalid(rtype: ResourceType, name: str, causes: list[tuple[str, str]]) -> ApiError:
    """A 422 naming each invalid field, as the apiserver's validation reports it."""
    text = "; ".join(f"{field_path}: {message}" for field_path, message in causes)
    if len(causes) > 1:
        text = "[" + ", ".join(f"{field_path}: {message}" for field_path, message in causes) + "]"
    return ApiError(
        422,
        "Invalid",
        f'{rtype.group_kind} "{name}" is invalid: {text}',
        {
            "name": name,
            **({"group": rtype.group} if rtype.group else {}),
            "kind": rtype.kind,
            "causes": [
                {"reason": "FieldValueInvalid", "message": message, "field": field_path}
                for field_path, message in causes
            ],
        },
    )


# ---------------------------------------------------------------------------
# Patches


class PatchError(Exception):
    """A patch that does not apply; `code` says how the apiserver answers it."""

    def __init__(self, message: str, code: int = 422):
        super().__init__(message)
        self.code = code


def _unescape_pointer(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def _pointer_tokens(pointer: str) -> list[str]:
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise PatchError(f"JSON pointer {pointer!r} must start with '/'", 400)
    return [_unescape_pointer(token) for token in pointer[1:].split("/")]


def _resolve_parent(doc: Any, tokens: list[str], op: str, path: str) -> tuple[Any, str]:
    target = doc
    for token in tokens[:-1]:
        if isinstance(target, dict):
            if token not in target:
                raise PatchError(f"{op} operation does not apply: doc is missing path: {path}")
            target = target[token]
        elif isinstance(target, list):
            index = _list_index(target, token, path, op, allow_end=False)
            target = target[index]
        else:
            raise PatchError(f"{op} operation does not apply: doc is missing path: {path}")
    return target, tokens[-1]


def _list_index(target: list, token: str, path: str, op: str, allow_end: bool) -> int:
    if token == "-" and allow_end:
        return len(target)
    if not token.isdigit():
        raise PatchError(f"{op} operation does not apply: invalid index {token!r} in {path}")
    index = int(token)
    limit = len(target) if allow_end else len(target) - 1
    if index > limit:
        raise PatchError(f"{op} operation does not apply: index out of range: {path}")
    return index


def _pointer_get(doc: Any, path: str, op: str) -> Any:
    target = doc
    for token in _pointer_tokens(path):
        if isinstance(target, dict) and token in target:
            target = target[token]
        elif isinstance(target, list) and token.isdigit() and int(token) < len(target):
            target = target[int(token)]
        else:
            raise PatchError(f"{op} operation does not apply: doc is missing path: {path}")
    return target


def _pointer_remove(doc: Any, path: str, op: str) -> Any:
    tokens = _pointer_tokens(path)
    if not tokens:
        raise PatchError(f"{op} operation does not apply: cannot remove the document root")
    parent, last = _resolve_parent(doc, tokens, op, path)
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"{op} operation does not apply: doc is missing key: {path}")
        return parent.pop(last)
    if isinstance(parent, list):
        return parent.pop(_list_index(parent, last, path, op, allow_end=False))
    raise PatchError(f"{op} operation does not apply: doc is missing path: {path}")


def _pointer_add(doc: Any, path: str, value: Any, op: str, replace: bool = False) -> Any:
    tokens = _pointer_tokens(path)
    if not tokens:
        return value
    parent, last = _resolve_parent(doc, tokens, op, path)
    if isinstance(parent, dict):
        if replace and last not in parent:
            raise PatchError(f"replace operation does not apply: doc is missing key: {path}")
        parent[last] = value
    elif isinstance(parent, list):
        if replace:
            parent[_list_index(parent, last, path, op, allow_end=False)] = value
        else:
            parent.insert(_list_index(parent, last, path, op, allow_end=True), value)
    else:
        raise PatchError(f"{op} operation does not apply: doc is missing path: {path}")
    return doc


def apply_json_patch(doc: Any, operations: Any) -> Any:
    """RFC 6902 JSON Patch. A failed `test` or a missing path raises PatchError."""
    if not isinstance(operations, list):
        raise PatchError("json: cannot unmarshal object into Go value of type jsonpatch.Patch", 400)
    doc = copy.deepcopy(doc)
    for operation in operations:
        if not isinstance(operation, dict) or "op" not in operation:
            raise PatchError("unexpected kind of JSON patch operation", 400)
        op, path = operation["op"], operation.get("path", "")
        if op == "add":
            doc = _pointer_add(doc, path, copy.deepcopy(operation.get("value")), op)
        elif op == "remove":
            _pointer_remove(doc, path, op)
        elif op == "replace":
            if path == "":
                doc = copy.deepcopy(operation.get("value"))
            else:
                doc = _pointer_add(doc, path, copy.deepcopy(operation.get("value")), op, replace=True)
        elif op == "move":
            value = _pointer_remove(doc, operation.get("from", ""), op)
            doc = _pointer_add(doc, path, value, op)
        elif op == "copy":
            value = copy.deepcopy(_pointer_get(doc, operation.get("from", ""), op))
            doc = _pointer_add(doc, path, value, op)
        elif op == "test":
            try:
                actual = _pointer_get(doc, path, op)
            except PatchError:
                actual = None
            if actual != operation.get("value"):
                raise PatchError(f"testing value {path} failed: test failed")
        else:
            raise PatchError(f"Unexpected kind: {op}", 400)
    return doc


def apply_merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON Merge Patch: maps merge, null deletes, everything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = apply_merge_patch(result.get(key), value)
    return result


# Patch merge keys of the list fields in the built-in types we serve; lists not
# named here are replaced whole, as for atomic lists in the Go types.
_MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "hostAliases": "ip",
    "conditions": "type",
    "ownerReferences": "uid",
    "topologySpreadConstraints": "topologyKey",
    "resourceClaims": "name",
    "schedulingGates": "name",
    "containerStatuses": "name",
    "initContainerStatuses": "name",
}
# Primitive lists merged as sets.
_SET_LISTS = {"finalizers"}


def _merge_key(field_name: str, items: list) -> str | None:
    if field_name == "ports":
        # Container ports merge on containerPort, service ports on port.
        for item in items:
            if isinstance(item, dict) and "containerPort" in item:
                return "containerPort"
        return "port"
    return _MERGE_KEYS.get(field_name)


def apply_strategic_merge_patch(original: Any, patch: Any) -> Any:
    """Strategic merge patch for the built-in types: lists of containers, env,
    ports, volumes... merge by their key; `$patch: delete|replace|merge`,
    `$setElementOrder/<list>`, `$deleteFromPrimitiveList/<list>` and `$retainKeys`
    are honoured; null deletes."""
    if not isinstance(patch, dict):
        raise PatchError("strategic merge patch must be a JSON object", 400)
    return _smp_map(original if isinstance(original, dict) else {}, patch)


def _smp_map(original: dict, patch: dict) -> dict:
    directive = patch.get("$patch")
    if directive == "replace":
        return _strip_directives({k: v for k, v in patch.items() if k != "$patch"})
    if directive == "delete":
        return {}
    result = copy.deepcopy(original)
    retain = patch.get("$retainKeys")
    orders = {k.split("/", 1)[1]: v for k, v in patch.items() if k.startswith("$setElementOrder/")}
    deletions = {
        k.split("/", 1)[1]: v for k, v in patch.items() if k.startswith("$deleteFromPrimitiveList/")
    }
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            current = result.get(key)
            result[key] = _smp_map(current if isinstance(current, dict) else {}, value)
        elif isinstance(value, list):
            result[key] = _smp_list(key, result.get(key), value)
        else:
            result[key] = value
    for key, removed in deletions.items():
        if isinstance(result.get(key), list):
            result[key] = [item for item in result[key] if item not in removed]
    for key, order in orders.items():
        if isinstance(result.get(key), list):
            result[key] = _order_by(key, result[key], order)
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _smp_list(field_name: str, original: Any, patch: list) -> list:
    original = original if isinstance(original, list) else []
    if any(isinstance(item, dict) and item.get("$patch") == "replace" for item in patch):
        return _strip_directives([i for i in patch if not (isinstance(i, dict) and "$patch" in i)])
    if field_name in _SET_LISTS:
        return original + [item for item in patch if item not in original]
    key = _merge_key(field_name, original + patch)
    if key is None or not all(isinstance(item, dict) for item in patch):
        return _strip_directives(patch)
    result = copy.deepcopy(original)
    for item in patch:
        position = next(
            (i for i, existing in enumerate(result)
             if isinstance(existing, dict) and existing.get(key) == item.get(key)),
            None,
        )
        if item.get("$patch") == "delete":
            if position is not None:
                result.pop(position)
            continue
        if position is None:
            result.append(_smp_map({}, item))
        else:
            result[position] = _smp_map(result[position], item)
    return result


def _order_by(field_name: str, items: list, order: list) -> list:
    key = _merge_key(field_name, items + order)
    if key is None:
        return items

    def identity(item: Any) -> Any:
        return item.get(key) if isinstance(item, dict) else item

    wanted = [identity(item) for item in order]
    ranked = [item for item in items if identity(item) in wanted]
    ranked.sort(key=lambda item: wanted.index(identity(item)))
    return ranked + [item for item in items if identity(item) not in wanted]


def _strip_directives(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_directives(v) for k, v in value.items() if not k.startswith("$")}
    if isinstance(value, list):
        return [_strip_directives(v) for v in value]
    return value


def drop_nulls(value: Any) -> Any:
    """Remove null values, recursively: to the Go types the apiserver decodes
    into, null and absent are the same (kubectl sends `creationTimestamp: null`)."""
    if isinstance(value, dict):
        return {k: drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [drop_nulls(v) for v in value]
    return value


# ---------------------------------------------------------------------------
# Tables (what kubectl prints)


def human_duration(seconds: float) -> str:
    """Kubernetes' HumanDuration: 45s, 3m12s, 15m, 5h30m, 3d4h, 2y..."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d{hours % 24}h" if hours % 24 else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        return f"{hours // 24 // 365}y{days}d" if days else f"{hours // 24 // 365}y"
    return f"{hours // 24 // 365}y"


def _age(obj: dict, now: datetime) -> str:
    created = (obj.get("metadata") or {}).get("creationTimestamp")
    if not created:
        return "<unknown>"
    return human_duration((now - parse_timestamp(created)).total_seconds())


def _column(name: str, kind: str = "string", priority: int = 0, fmt: str = "", description: str = "") -> dict:
    return {
        "name": name,
        "type": kind,
        "format": fmt,
        "description": description or f"{name} column.",
        "priority": priority,
    }


def _containers(obj: dict) -> list[dict]:
    return ((((obj.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers")) or []


def _workload_tail(obj: dict) -> list[Any]:
    containers = _containers(obj)
    return [
        ",".join(c.get("name", "") for c in containers),
        ",".join(c.get("image", "") for c in containers),
        label_selector_string((obj.get("spec") or {}).get("selector")) or "<none>",
    ]


def _pod_status_reason(pod: dict) -> str:
    metadata, status = pod.get("metadata") or {}, pod.get("status") or {}
    if metadata.get("deletionTimestamp"):
        return "Terminating"
    reason = status.get("reason") or status.get("phase") or "Unknown"
    for container in status.get("containerStatuses") or []:
        state = container.get("state") or {}
        if (state.get("waiting") or {}).get("reason"):
            reason = state["waiting"]["reason"]
        elif (state.get("terminated") or {}).get("reason"):
            reason = state["terminated"]["reason"]
    return reason


def _pod_cells(pod: dict, now: datetime) -> list[Any]:
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    statuses = status.get("containerStatuses") or []
    ready = sum(1 for c in statuses if c.get("ready"))
    total = len(spec.get("containers") or [])
    restarts = sum(int(c.get("restartCount") or 0) for c in statuses)
    return [
        pod["metadata"]["name"],
        f"{ready}/{total}",
        _pod_status_reason(pod),
        restarts,
        _age(pod, now),
        status.get("podIP") or "<none>",
        spec.get("nodeName") or "<none>",
        status.get("nominatedNodeName") or "<none>",
        "<none>",
    ]


def _service_cells(svc: dict, now: datetime) -> list[Any]:
    spec = svc.get("spec") or {}
    ports = ",".join(
        f"{p.get('port')}{':' + str(p['nodePort']) if p.get('nodePort') else ''}/{p.get('protocol', 'TCP')}"
        for p in spec.get("ports") or []
    )
    selector = ",".join(f"{k}={v}" for k, v in sorted((spec.get("selector") or {}).items()))
    ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    external = ",".join(i.get("ip") or i.get("hostname") or "" for i in ingress) or (
        "<pending>" if spec.get("type") == "LoadBalancer" else "<none>"
    )
    return [
        svc["metadata"]["name"],
        spec.get("type", "ClusterIP"),
        spec.get("clusterIP") or "<none>",
        external,
        ports or "<none>",
        _age(svc, now),
        selector or "<none>",
    ]


def format_endpoints(endpoints: dict, limit: int = 3) -> str:
    """kubectl's ENDPOINTS cell: `ip:port,...` with `+ N more...` past three."""
    addresses = []
    for subset in endpoints.get("subsets") or []:
        ports = subset.get("ports") or [{}]
        for address in subset.get("addresses") or []:
            for port in ports:
                addresses.append(
                    f"{address.get('ip')}:{port['port']}" if port.get("port") else str(address.get("ip"))
                )
    if not addresses:
        return "<none>"
    text = ",".join(addresses[:limit])
    if len(addresses) > limit:
        text += f" + {len(addresses) - limit} more..."
    return text


TableSpec = tuple[list[dict], Callable[[dict, datetime], list[Any]]]

_NAME = _column("Name", fmt="name", description="Name must be unique within a namespace.")
_AGE = _column("Age", description="CreationTimestamp is a timestamp representing the server time when this object was created.")
# The wide columns of deployments and replica sets, the cells of `_workload_tail`.
_WORKLOAD_TAIL = [
    _column("Containers", priority=1, description="Names of each container in the template."),
    _column("Images", priority=1, description="Images referenced by each container in the template."),
    _column("Selector", priority=1, description="Label selector for pods."),
]

TABLES: dict[str, TableSpec] = {
    "deployments": (
        [
            _NAME,
            _column("Ready", description="Number of the pod with ready state"),
            _column("Up-to-date", "integer", description="Total number of non-terminated pods targeted by this deployment that have the desired template spec."),
            _column("Available", "integer", description="Total number of available pods (ready for at least minReadySeconds) targeted by this deployment."),
            _AGE,
            *_WORKLOAD_TAIL,
        ],
        lambda d, now: [
            d["metadata"]["name"],
            f"{(d.get('status') or {}).get('readyReplicas', 0)}/{(d.get('spec') or {}).get('replicas', 1)}",
            (d.get("status") or {}).get("updatedReplicas", 0),
            (d.get("status") or {}).get("availableReplicas", 0),
            _age(d, now),
            *_workload_tail(d),
        ],
    ),
    "replicasets": (
        [
            _NAME,
            _column("Desired", "integer", description="Replicas is the number of desired replicas."),
            _column("Current", "integer", description="Replicas is the most recently observed number of replicas."),
            _column("Ready", "integer", description="The number of ready replicas for this replica set."),
            _AGE,
            *_WORKLOAD_TAIL,
        ],
        lambda rs, now: [
            rs["metadata"]["name"],
            (rs.get("spec") or {}).get("replicas", 1),
            (rs.get("status") or {}).get("replicas", 0),
            (rs.get("status") or {}).get("readyReplicas", 0),
            _age(rs, now),
            *_workload_tail(rs),
        ],
    ),
    "pods": (
        [
            _NAME,
            _column("Ready", description="The aggregate readiness state of this pod for accepting traffic."),
            _column("Status", description="The aggregate status of the containers in this pod."),
            _column("Restarts", description="The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."),
            _AGE,
            _column("IP", priority=1, description="IP address allocated to the pod."),
            _column("Node", priority=1, description="Name of the Node this pod is scheduled on."),
            _column("Nominated Node", priority=1, description="Name of the Node nominated by the scheduler."),
            _column("Readiness Gates", priority=1, description="Pod readiness gates."),
        ],
        _pod_cells,
    ),
    "services": (
        [
            _NAME,
            _column("Type", description="The type of the service."),
            _column("Cluster-IP", description="The cluster IP address of the service."),
            _column("External-IP", description="External IP addresses of the service."),
            _column("Port(s)", description="The ports exposed by the service."),
            _AGE,
            _column("Selector", priority=1, description="Route service traffic to pods with label keys and values matching this selector."),
        ],
        _service_cells,
    ),
    "endpoints": (
        [_NAME, _column("Endpoints", description="Endpoints of the service."), _AGE],
        lambda ep, now: [ep["metadata"]["name"], format_endpoints(ep), _age(ep, now)],
    ),
    "leases": (
        [_NAME, _column("Holder", description="The holder of the lease."), _AGE],
        lambda lease, now: [
            lease["metadata"]["name"],
            (lease.get("spec") or {}).get("holderIdentity") or "",
            _age(lease, now),
        ],
    ),
    "namespaces": (
        [_NAME, _column("Status", description="The status of the namespace."), _AGE],
        lambda ns, now: [
            ns["metadata"]["name"],
            (ns.get("status") or {}).get("phase", "Active"),
            _age(ns, now),
        ],
    ),
    "events": (
        [
            _column("Last Seen", description="Time since the event was last seen."),
            _column("Type", description="Type of this event."),
            _column("Reason", description="Why the action was taken."),
            _column("Object", description="The object this event is about."),
            _column("Message", description="A human-readable description of the status of this operation."),
        ],
        lambda ev, now: [
            human_duration((now - parse_timestamp(ev["lastTimestamp"])).total_seconds())
            if ev.get("lastTimestamp") else _age(ev, now),
            ev.get("type", "Normal"),
            ev.get("reason", ""),
            f"{(ev.get('involvedObject') or {}).get('kind', '').lower()}/"
            f"{(ev.get('involvedObject') or {}).get('name', '')}",
            ev.get("message", ""),
        ],
    ),
    "virtualservices": (
        [
            _NAME,
            _column("Gateways", description="The names of gateways and sidecars that should apply these routes"),
            _column("Hosts", description="The destination hosts to which traffic is being sent"),
            _AGE,
        ],
        lambda vs, now: [
            vs["metadata"]["name"],
            json.dumps((vs.get("spec") or {}).get("gateways") or []),
            json.dumps((vs.get("spec") or {}).get("hosts") or []),
            _age(vs, now),
        ],
    ),
    # The CRDs' additionalPrinterColumns.
    "applications": (
        [
            _NAME,
            _column("Sync Status", description="status.sync.status"),
            _column("Health Status", description="status.health.status"),
            _column("Revision", priority=10, description="status.sync.revision"),
            _column("Project", priority=10, description="spec.project"),
            _AGE,
        ],
        lambda app, now: [
            app["metadata"]["name"],
            ((app.get("status") or {}).get("sync") or {}).get("status", ""),
            ((app.get("status") or {}).get("health") or {}).get("status", ""),
            ((app.get("status") or {}).get("sync") or {}).get("revision", ""),
            (app.get("spec") or {}).get("project", ""),
            _age(app, now),
        ],
    ),
    # Flux's objects (Kustomization, HelmRelease): flux's own printer columns.
    **dict.fromkeys(("kustomizations", "helmreleases"), (
        [
            _NAME,
            _AGE,
            _column("Ready", description='status.conditions[?(@.type=="Ready")].status'),
            _column("Status", description='status.conditions[?(@.type=="Ready")].message'),
        ],
        lambda obj, now: [
            obj["metadata"]["name"],
            _age(obj, now),
            *_ready_condition(obj),
        ],
    )),
}


def _ready_condition(obj: dict) -> list[str]:
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return [condition.get("status", ""), condition.get("message", "")]
    return ["", ""]


_DEFAULT_TABLE: TableSpec = ([_NAME, _AGE], lambda obj, now: [obj["metadata"]["name"], _age(obj, now)])


def _wants_table(accept: str) -> bool:
    for media_range in accept.split(","):
        params = {}
        for part in media_range.split(";")[1:]:
            key, _, value = part.strip().partition("=")
            params[key] = value
        if params.get("as") == "Table" and params.get("g") == "meta.k8s.io":
            return True
    return False


def _accepts_json(accept: str) -> bool:
    if not accept:
        return True
    for media_range in accept.split(","):
        media_type = media_range.split(";")[0].strip()
        if media_type in ("application/json", "application/*", "*/*", "application/yaml", ""):
            return True
    return False


# ---------------------------------------------------------------------------
# Requests


@dataclass(frozen=True)
class Target:
    """What a resource path names."""

    rtype: ResourceType
    version: str
    namespace: str | None
    name: str | None
    subresource: str | None


def _first(query: dict[str, list[str]], key: str, default: str = "") -> str:
    values = query.get(key)
    return values[0] if values else default


def _int_param(query: dict[str, list[str]], key: str) -> int | None:
    text = _first(query, key)
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise bad_request(f"invalid value for {key}: {text!r} is not an integer") from None


def _json_response(status: int, obj: Any) -> Response:
    return Response(status, {"Content-Type": JSON}, json.dumps(obj, separators=(",", ":")).encode())


class KubeApi:
    """Answers Kubernetes REST requests from the world's object store."""

    def __init__(self, world: Any) -> None:
        self.world = world
        self.store: ObjectStore = world.store
        # (verb, resource) pairs RBAC denies, e.g. ("patch", "deployments/scale").
        self.forbidden: set[tuple[str, str]] = set()
        self._request = threading.local()

    # -- RBAC, simulated ---------------------------------------------------

    def forbid(self, verb: str, resource: str) -> None:
        """Deny `verb` ("get", "list", "watch", "create", "update", "patch",
        "delete") on `resource` ("deployments", "deployments/scale", "leases")
        with 403 Forbidden, worded as the apiserver's RBAC authorizer words it."""
        self.forbidden.add((verb, resource))

    def allow(self, verb: str, resource: str) -> None:
        """Undo `forbid`."""
        self.forbidden.discard((verb, resource))

    def _authorize(self, method: str, target: Target, query: dict[str, list[str]]) -> None:
        if not self.forbidden:
            return
        verb = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(method)
        if verb is None:
            watching = _first(query, "watch") in ("true", "1")
            verb = "watch" if watching else ("get" if target.name else "list")
        if verb == "delete" and target.name is None:
            verb = "deletecollection"
        resource = target.rtype.name + (f"/{target.subresource}" if target.subresource else "")
        if (verb, resource) not in self.forbidden:
            return
        what = f'{target.rtype.group_resource} "{target.name}"' if target.name else target.rtype.group_resource
        scope = f' in the namespace "{target.namespace}"' if target.namespace else " at the cluster scope"
        raise ApiError(
            403,
            "Forbidden",
            f'{what} is forbidden: User "drill-trainee" cannot {verb} resource "{resource}" in API group '
            f'"{target.rtype.group}"{scope}',
            _details(target.rtype, target.name),
        )

    # -- entry point -------------------------------------------------------

    def handle(
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        headers: dict[str, str],
        body: bytes,
    ) -> Response:
        """Answer one request; every error becomes a Status object."""
        headers = {k.lower(): v for k, v in headers.items()}
        # The write's field manager, for managedFields (one request per thread at a time).
        self._request.manager = managed_fields.manager_of(query, headers)
        try:
            return self._route(method.upper(), path, query, headers, body or b"")
        except ApiError as error:
            return _json_response(error.code, error.status())
        except (TypeError, AttributeError, KeyError, IndexError, ValueError, OverflowError, RecursionError) as error:
            # A body of the wrong shape that got past the checks: the client's
            # mistake (400, as the apiserver's decoder would say), not a server failure.
            _log.info("kube api: %s %s: malformed request: %r", method, path, error)
            return _json_response(400, bad_request(
                f"the request could not be applied: a field has the wrong type or shape ({type(error).__name__})"
            ).status())
        except Exception as error:  # noqa: BLE001 - a bug here must still answer like an apiserver
            _log.exception("kube api: %s %s failed", method, path)
            return _json_response(500, ApiError(
                500, "InternalError", f"Internal error occurred: {error}",
                {"causes": [{"message": str(error)}]},
            ).status())

    def _route(
        self, method: str, path: str, query: dict[str, list[str]], headers: dict[str, str], body: bytes
    ) -> Response:
        parts = [p for p in path.split("?")[0].strip("/").split("/") if p]
        if method == "HEAD":
            method = "GET"  # the server sends the headers only
        if method == "GET":
            discovery = self._discovery(parts, headers)
            if discovery is not None:
                return discovery
        if len(parts) >= 2 and parts[0] == "api" and parts[1] == "v1":
            group, version, rest = "", "v1", parts[2:]
        elif len(parts) >= 3 and parts[0] == "apis":
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise ApiError(404, "NotFound", "the server could not find the requested resource", {})
        target = self._target(group, version, rest)
        self._authorize(method, target, query)
        if not _accepts_json(headers.get("accept", "")):
            raise ApiError(
                406, "NotAcceptable",
                "only the following media types are accepted: application/json, application/yaml",
            )
        if method == "GET":
            return self._get(target, query, headers)
        if method == "POST":
            return self._create(target, query, body)
        if method == "PUT":
            return self._replace(target, query, body)
        if method == "PATCH":
            return self._patch(target, query, headers, body)
        if method == "DELETE":
            return self._delete(target, query, body)
        raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")

    def _target(self, group: str, version: str, rest: list[str]) -> Target:
        unknown = ApiError(404, "NotFound", "the server could not find the requested resource", {})
        namespace = None
        if len(rest) >= 3 and rest[0] == "namespaces" and rest[2] not in ("status", "finalize"):
            namespace, rest = rest[1], rest[2:]
        if not rest or len(rest) > 3:
            raise unknown
        rtype = find_resource(group, version, rest[0])
        if rtype is None:
            raise unknown
        name = rest[1] if len(rest) > 1 else None
        subresource = rest[2] if len(rest) > 2 else None
        if subresource and subresource not in rtype.subresources:
            raise unknown
        if rtype.namespaced and name and namespace is None:
            raise unknown
        if not rtype.namespaced and namespace is not None:
            raise unknown
        return Target(rtype, version, namespace, name, subresource)

    def _advance(self) -> None:
        self.world.advance()

    def _present(self, target: Target, obj: dict) -> dict:
        obj["apiVersion"] = target.rtype.api_version(target.version)
        obj["kind"] = target.rtype.kind
        return obj

    # -- discovery ---------------------------------------------------------

    def _discovery(self, parts: list[str], headers: dict[str, str]) -> Response | None:
        # Aggregated discovery (apidiscovery.k8s.io) is not offered: answering
        # application/json makes client-go fall back to the legacy documents.
        if parts in ([], ["healthz"], ["livez"], ["readyz"]):
            if parts:
                return Response(200, {"Content-Type": "text/plain; charset=utf-8"}, b"ok")
            paths = ["/api", "/api/v1", "/apis", "/healthz", "/livez", "/readyz", "/version"]
            for group, rtypes in GROUPS.items():
                if group:
                    paths.append(f"/apis/{group}")
                    paths.extend(f"/apis/{group}/{v}" for v in rtypes[0].versions)
            return _json_response(200, {"paths": sorted(paths)})
        if parts == ["version"]:
            return _json_response(200, SERVER_VERSION)
        if parts == ["api"]:
            address = headers.get("host", "127.0.0.1")
            return _json_response(200, {
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": address}],
            })
        if parts == ["apis"]:
            return _json_response(200, {
                "kind": "APIGroupList",
                "apiVersion": "v1",
                "groups": [self._api_group(group) for group in GROUPS if group],
            })
        if parts == ["api", "v1"]:
            return _json_response(200, self._resource_list("", "v1"))
        if len(parts) == 2 and parts[0] == "apis" and parts[1] in GROUPS:
            return _json_response(200, {"kind": "APIGroup", "apiVersion": "v1", **self._api_group(parts[1])})
        if len(parts) == 3 and parts[0] == "apis" and parts[1] in GROUPS:
            if parts[2] in GROUPS[parts[1]][0].versions:
                return _json_response(200, self._resource_list(parts[1], parts[2]))
        if parts == ["openapi", "v3"]:
            return _json_response(200, {"paths": {
                gv: {"serverRelativeURL": f"/openapi/v3/{gv}?hash={OPENAPI_HASH}"} for gv in _group_versions()
            }})
        if len(parts) >= 3 and parts[:2] == ["openapi", "v3"] and "/".join(parts[2:]) in _group_versions():
            return _json_response(200, _openapi_v3("/".join(parts[2:])))
        if parts and parts[0] == "openapi":
            # No OpenAPI v2: kubectl only wants it when v3 is missing.
            raise ApiError(404, "NotFound", "the server could not find the requested resource", {})
        return None

    @staticmethod
    def _api_group(group: str) -> dict:
        versions = GROUPS[group][0].versions
        return {
            "name": group,
            "versions": [{"groupVersion": f"{group}/{v}", "version": v} for v in versions],
            "preferredVersion": {"groupVersion": f"{group}/{versions[0]}", "version": versions[0]},
        }

    @staticmethod
    def _resource_list(group: str, version: str) -> dict:
        resources = []
        for rtype in GROUPS[group]:
            if version not in rtype.versions:
                continue
            entry: dict[str, Any] = {
                "name": rtype.name,
                "singularName": rtype.singular,
                "namespaced": rtype.namespaced,
                "kind": rtype.kind,
                "verbs": list(STANDARD_VERBS),
            }
            if rtype.short_names:
                entry["shortNames"] = list(rtype.short_names)
            if rtype.categories:
                entry["categories"] = list(rtype.categories)
            resources.append(entry)
            for sub in rtype.subresources:
                sub_entry: dict[str, Any] = {
                    "name": f"{rtype.name}/{sub}",
                    "singularName": "",
                    "namespaced": rtype.namespaced,
                    "kind": rtype.kind,
                    "verbs": ["get", "patch", "update"],
                }
                if sub == "scale":
                    sub_entry.update(group="autoscaling", version="v1", kind="Scale")
                elif sub == "log":
                    sub_entry.update(kind="Pod", verbs=["get"])
                resources.append(sub_entry)
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": f"{group}/{version}" if group else version,
            "resources": resources,
        }

    # -- reads -------------------------------------------------------------

    def _get(self, target: Target, query: dict[str, list[str]], headers: dict[str, str]) -> Response:
        table = _wants_table(headers.get("accept", ""))
        include = _first(query, "includeObject", "Metadata")
        if target.name is None:
            if _first(query, "watch").lower() in ("true", "1"):
                return self._watch(target, query, table, include)
            return self._list(target, query, table, include)
        self._advance()
        if target.subresource == "log":
            return self._pod_log(target, query)
        obj = self._read(target)
        if target.subresource == "scale":
            return _json_response(200, self._scale_of(obj))
        obj = self._present(target, obj)
        if table:
            return _json_response(200, self._table(target, [obj], include, obj["metadata"]["resourceVersion"]))
        return _json_response(200, obj)

    def _read(self, target: Target) -> dict:
        try:
            return self.store.get(target.rtype.name, target.namespace, target.name or "")
        except NotFound:
            raise not_found(target.rtype, target.name or "") from None

    def _list_items(self, target: Target, query: dict[str, list[str]]) -> tuple[list[dict], int]:
        try:
            return self.store.list(
                target.rtype.name,
                target.namespace,
                _first(query, "labelSelector") or None,
                _first(query, "fieldSelector") or None,
            )
        except InvalidSelector as error:
            raise bad_request(str(error)) from None

    def _list(self, target: Target, query: dict[str, list[str]], table: bool, include: str) -> Response:
        self._advance()
        items, resource_version = self._list_items(target, query)
        items = [self._present(target, item) for item in items]
        if table:
            return _json_response(200, self._table(target, items, include, str(resource_version)))
        return _json_response(200, {
            "kind": f"{target.rtype.kind}List",
            "apiVersion": target.rtype.api_version(target.version),
            "metadata": {"resourceVersion": str(resource_version)},
            "items": items,
        })

    def _table(
        self, target: Target, items: list[dict], include: str, resource_version: str | None,
        with_columns: bool = True,
    ) -> dict:
        columns, cells = TABLES.get(target.rtype.name, _DEFAULT_TABLE)
        now = self.store.now()
        rows = []
        for item in items:
            row: dict[str, Any] = {"cells": cells(item, now)}
            if include == "Object":
                row["object"] = item
            elif include != "None":
                row["object"] = {
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": item["metadata"],
                }
            rows.append(row)
        table: dict[str, Any] = {
            "kind": "Table",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": {"resourceVersion": resource_version} if resource_version else {},
            "columnDefinitions": columns if with_columns else [],
            "rows": rows,
        }
        return table

    # -- watch -------------------------------------------------------------

    def _watch(self, target: Target, query: dict[str, list[str]], table: bool, include: str) -> Response:
        if _first(query, "sendInitialEvents").lower() == "true":
            # Streaming lists are not offered; client-go then falls back to list+watch.
            raise invalid(target.rtype, "", [(
                "sendInitialEvents", "Forbidden: sendInitialEvents is not supported by this server",
            )])
        try:
            label_match = parse_label_selector(_first(query, "labelSelector") or None)
            field_match = parse_field_selector(_first(query, "fieldSelector") or None)
        except InvalidSelector as error:
            raise bad_request(str(error)) from None
        timeout = _int_param(query, "timeoutSeconds") or DEFAULT_WATCH_SECONDS
        start = _first(query, "resourceVersion")
        if start and not start.isdigit():
            raise bad_request(f"invalid resource version: {start!r}")
        self._advance()
        return Response(
            200,
            {"Content-Type": JSON},
            stream=self._watch_stream(target, start, timeout, label_match, field_match, table, include),
        )

    def _watch_stream(
        self,
        target: Target,
        start: str,
        timeout: int,
        label_match: Callable[[dict], bool],
        field_match: Callable[[dict], bool],
        table: bool,
        include: str,
    ) -> Iterator[bytes]:
        deadline = time.monotonic() + timeout
        resource = target.rtype.name
        first_table = [True]

        def matches(obj: dict) -> bool:
            if target.namespace and (obj.get("metadata") or {}).get("namespace") != target.namespace:
                return False
            return label_match((obj.get("metadata") or {}).get("labels") or {}) and field_match(obj)

        def line(event_type: str, obj: dict) -> bytes:
            obj = self._present(target, obj)
            if table:
                obj = self._table(target, [obj], include, None, with_columns=first_table[0])
                first_table[0] = False
            return json.dumps({"type": event_type, "object": obj}, separators=(",", ":")).encode() + b"\n"

        # What the watcher has seen, so an object leaving the selection is reported DELETED.
        visible: set[tuple[str, str]] = set()
        if start in ("", "0"):
            with self.store.lock:
                items, resource_version = self.store.list(resource, target.namespace)
            for item in items:
                if matches(item):
                    visible.add((item["metadata"].get("namespace", ""), item["metadata"]["name"]))
                    yield line("ADDED", item)
        else:
            resource_version = int(start)
            with self.store.lock:
                for item in self.store.list(resource, target.namespace)[0]:
                    if matches(item):
                        visible.add((item["metadata"].get("namespace", ""), item["metadata"]["name"]))
        while True:
            try:
                with self.store.lock:
                    events = self.store.events_since(resource_version, resource)
                    seen_up_to = self.store.resource_version
            except Gone as error:
                status = ApiError(410, "Expired", str(error)).status()
                yield json.dumps({"type": "ERROR", "object": status}).encode() + b"\n"
                return
            for event in events:
                metadata = event.object.get("metadata") or {}
                key = (metadata.get("namespace", ""), metadata.get("name", ""))
                obj = copy.deepcopy(event.object)
                if event.type == "DELETED":
                    if key in visible:
                        visible.discard(key)
                        yield line("DELETED", obj)
                elif matches(obj):
                    event_type = "MODIFIED" if key in visible else "ADDED"
                    visible.add(key)
                    yield line(event_type, obj)
                elif key in visible:
                    visible.discard(key)
                    yield line("DELETED", obj)
            resource_version = max(resource_version, seen_up_to)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self.store.wait_for_change(resource_version, min(WATCH_POLL_SECONDS, remaining))
            self._advance()

    # -- pods/log ----------------------------------------------------------

    def _pod_log(self, target: Target, query: dict[str, list[str]]) -> Response:
        pod = self._read(target)
        containers = [c.get("name") for c in (pod.get("spec") or {}).get("containers") or []]
        container = _first(query, "container")
        name = pod["metadata"]["name"]
        if not container:
            if len(containers) != 1:
                raise bad_request(
                    f"a container name must be specified for pod {name}, "
                    f"choose one of: [{' '.join(containers)}]"
                )
            container = containers[0]
        if container not in containers:
            raise bad_request(f"container {container} is not valid for pod {name}")
        tail = _int_param(query, "tailLines")
        try:
            text = self.world.pod_log(target.namespace, name, container, tail)
        except NotFound:
            raise not_found(target.rtype, name) from None
        except ValueError as error:
            # The world words its refusals as the apiserver does.
            raise bad_request(str(error)) from None
        if tail is not None and tail >= 0:
            lines = text.splitlines(keepends=True)
            text = "".join(lines[-tail:]) if tail else ""
        data = text.encode()
        limit = _int_param(query, "limitBytes")
        if limit is not None and limit >= 0:
            data = data[:limit]
        # follow=true ends after the current log: drill logs are generated, not tailed.
        return Response(200, {"Content-Type": "text/plain"}, data)

    # -- writes ------------------------------------------------------------

    def _decode(self, body: bytes, content_type: str = JSON) -> Any:
        try:
            if "yaml" in content_type:
                return yaml.safe_load(body.decode() or "{}")
            return json.loads(body.decode() or "null")
        except (ValueError, yaml.YAMLError) as error:
            raise bad_request(f"the body of the request could not be decoded: {error}") from None

    def _dry_run(self, query: dict[str, list[str]]) -> bool:
        dry = query.get("dryRun") or []
        if any(value != "All" for value in dry):
            raise bad_request(f"unsupported dry-run value {dry!r}: only All is supported")
        return bool(dry)

    def _create(self, target: Target, query: dict[str, list[str]], body: bytes) -> Response:
        if target.name is not None:
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
        obj = self._decode(body)
        check_object_shape(target.rtype, obj)
        obj = drop_nulls(obj)
        metadata = obj.setdefault("metadata", {})
        if target.namespace and metadata.get("namespace") not in (None, "", target.namespace):
            raise bad_request("the namespace of the provided object does not match the namespace sent on the request")
        if not metadata.get("name") and not metadata.get("generateName"):
            raise invalid(target.rtype, "", [("metadata.name", "Required value: name or generateName is required")])
        if target.namespace and self.store.list("namespaces")[0]:
            try:
                self.store.get("namespaces", None, target.namespace)
            except NotFound:
                raise ApiError(
                    404, "NotFound", f'namespaces "{target.namespace}" not found',
                    {"name": target.namespace, "kind": "namespaces"},
                ) from None
        obj = self._present(target, obj)
        _default(target.rtype, obj)
        if target.rtype.name in ("deployments", "replicasets"):
            obj["status"] = {}
        self._validate(target.rtype, obj, None)
        self._track(target, None, obj)
        if self._dry_run(query):
            return _json_response(201, obj)
        try:
            created = self.store.create(target.rtype.name, target.namespace, obj)
        except AlreadyExists:
            raise already_exists(target.rtype, metadata.get("name", "")) from None
        self._advance()
        return _json_response(201, self._present(target, created))

    def _replace(self, target: Target, query: dict[str, list[str]], body: bytes) -> Response:
        if target.name is None or target.subresource == "log":
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
        obj = self._decode(body)
        check_object_shape(target.rtype, obj)
        obj = drop_nulls(obj)
        name = (obj.get("metadata") or {}).get("name")
        if name and name != target.name:
            raise bad_request(
                f"the name of the object ({name}) does not match the name on the URL ({target.name})"
            )
        with self.store.lock:
            current = self._read(target)
            if target.subresource == "scale":
                wanted = (obj.get("metadata") or {}).get("resourceVersion")
                if wanted and wanted != current["metadata"]["resourceVersion"]:
                    raise conflict(target.rtype, target.name)
            result = self._update(target, current, obj, query)
        return self._updated(target, result)

    def _update(self, target: Target, current: dict, obj: dict, query: dict[str, list[str]]) -> dict:
        """Write `obj` (a Scale, or the object or its subresource) over `current`;
        the caller holds the store's lock."""
        if target.subresource == "scale":
            updated = self._apply_scale(target, current, obj)
        else:
            obj.setdefault("metadata", {})["name"] = target.name
            updated = self._merge_subresource(target, current, obj)
        return self._write(target, current, updated, query)

    def _updated(self, target: Target, result: dict) -> Response:
        """The answer to an update (PUT or PATCH), once the world has moved on."""
        self._advance()
        if target.subresource == "scale":
            return _json_response(200, self._scale_of(result))
        return _json_response(200, self._present(target, result))

    def _patch(
        self, target: Target, query: dict[str, list[str]], headers: dict[str, str], body: bytes
    ) -> Response:
        if target.name is None or target.subresource == "log":
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
        content_type = headers.get("content-type", "").split(";")[0].strip()
        accepted = [
            "application/json-patch+json",
            "application/merge-patch+json",
            "application/apply-patch+yaml",
        ]
        if target.rtype.builtin or target.subresource == "scale":
            accepted.append("application/strategic-merge-patch+json")
        if content_type not in accepted:
            raise ApiError(
                415, "UnsupportedMediaType",
                f"the body of the request was in an unknown format - accepted media types include: "
                f"{', '.join(accepted)}",
            )
        patch = self._decode(body, content_type)
        with self.store.lock:
            try:
                current = self.store.get(target.rtype.name, target.namespace, target.name)
            except NotFound:
                if content_type == "application/apply-patch+yaml" and target.subresource is None:
                    current = None
                else:
                    raise not_found(target.rtype, target.name) from None
            if current is None:
                return self._apply_create(target, query, patch)
            if target.subresource == "scale":
                document = self._scale_of(current)
            else:
                document = self._present(target, copy.deepcopy(current))
            try:
                if content_type == "application/json-patch+json":
                    patched = apply_json_patch(document, patch)
                elif content_type == "application/strategic-merge-patch+json" and target.subresource != "scale":
                    patched = apply_strategic_merge_patch(document, patch)
                else:
                    patched = apply_merge_patch(document, patch)
            except PatchError as error:
                if error.code == 400:
                    raise bad_request(str(error)) from None
                # The apiserver's answer to a patch that does not apply (a failed test op).
                raise ApiError(
                    422, "Invalid", "the server rejected our request due to an error in our request", {}
                ) from None
            if not isinstance(patched, dict):
                raise bad_request("the patched object is not an object")
            check_object_shape(target.rtype, patched)
            patched = drop_nulls(patched)
            if (patched.get("metadata") or {}).get("name", target.name) != target.name:
                raise invalid(target.rtype, target.name, [
                    ("metadata.name", f"Invalid value: {patched['metadata']['name']!r}: field is immutable"),
                ])
            wanted = (patched.get("metadata") or {}).get("resourceVersion")
            if wanted and wanted != current["metadata"]["resourceVersion"]:
                raise conflict(target.rtype, target.name)
            result = self._update(target, current, patched, query)
        return self._updated(target, result)

    def _apply_create(self, target: Target, query: dict[str, list[str]], obj: Any) -> Response:
        """Server-side apply of an object that does not exist yet creates it."""
        check_object_shape(target.rtype, obj)
        obj.setdefault("metadata", {})["name"] = target.name
        return self._create(target, query, json.dumps(obj).encode())

    def _merge_subresource(self, target: Target, current: dict, incoming: dict) -> dict:
        """The status subresource writes only status; the main resource writes
        everything but status (for types that have a status subresource)."""
        if target.subresource == "status":
            updated = copy.deepcopy(current)
            updated["status"] = incoming.get("status") or {}
            wanted = (incoming.get("metadata") or {}).get("resourceVersion")
            if wanted:
                updated["metadata"]["resourceVersion"] = wanted
            return updated
        updated = copy.deepcopy(incoming)
        if "status" in target.rtype.subresources and target.rtype.builtin:
            if "status" in current:
                updated["status"] = copy.deepcopy(current["status"])
            else:
                updated.pop("status", None)
        return updated

    def _write(self, target: Target, current: dict, updated: dict, query: dict[str, list[str]]) -> dict:
        self._present(target, updated)
        # Server-owned metadata is not the writer's to change.
        for key in ("uid", "creationTimestamp", "generation"):
            if key in current["metadata"]:
                updated["metadata"][key] = current["metadata"][key]
        if target.namespace:
            updated["metadata"]["namespace"] = target.namespace
        _default(target.rtype, updated)
        self._validate(target.rtype, updated, current)
        if target.subresource != "status":
            self._track(target, current, updated)
        if self._dry_run(query):
            return updated
        try:
            return self.store.update(target.rtype.name, target.namespace, updated)
        except Conflict:
            raise conflict(target.rtype, target.name or "") from None
        except NotFound:
            raise not_found(target.rtype, target.name or "") from None

    def _track(self, target: Target, current: dict | None, updated: dict) -> None:
        """managedFields as the apiserver keeps them for an Update by this request's manager."""
        manager = getattr(self._request, "manager", None) or "unknown"
        now = getattr(self.world, "now", None)  # a property of the world; a store-only test world has none
        if not isinstance(now, datetime):
            now = datetime.now(timezone.utc)
        managed_fields.track(current, updated, manager, format_timestamp(now),
                             target.rtype.api_version(target.version))

    def _delete(self, target: Target, query: dict[str, list[str]], body: bytes) -> Response:
        if target.subresource is not None:
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
        options = self._decode(body) if body.strip() else {}
        options = options if isinstance(options, dict) else {}
        propagation = options.get("propagationPolicy") or _first(query, "propagationPolicy") or "Background"
        if options.get("orphanDependents") is True:
            propagation = "Orphan"
        dry_run = self._dry_run(query) or options.get("dryRun") == ["All"]
        if target.name is None:
            items, _ = self._list_items(target, query)
            deleted = []
            for item in items:
                named = Target(target.rtype, target.version, item["metadata"].get("namespace"),
                               item["metadata"]["name"], None)
                deleted.append(self._delete_one(named, {}, propagation, dry_run))
            self._advance()
            return _json_response(200, {
                "kind": f"{target.rtype.kind}List",
                "apiVersion": target.rtype.api_version(target.version),
                "metadata": {"resourceVersion": str(self.store.resource_version)},
                "items": deleted,
            })
        obj = self._delete_one(target, options.get("preconditions") or {}, propagation, dry_run)
        self._advance()
        return _json_response(200, {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": _details(target.rtype, target.name, uid=obj["metadata"].get("uid")),
        })

    def _delete_one(self, target: Target, preconditions: dict, propagation: str, dry_run: bool) -> dict:
        with self.store.lock:
            current = self._read(target)
            for key in ("uid", "resourceVersion"):
                if preconditions.get(key) and preconditions[key] != current["metadata"].get(key):
                    raise ApiError(
                        409, "Conflict",
                        f"Precondition failed: {key.capitalize() if key == 'uid' else key} in precondition: "
                        f"{preconditions[key]}, {key} in object meta: {current['metadata'].get(key)}",
                        _details(target.rtype, target.name),
                    )
            if dry_run:
                return self._present(target, current)
            deleted = self.store.delete(target.rtype.name, target.namespace, target.name or "")
            if propagation != "Orphan":
                self._collect_dependents(deleted["metadata"].get("uid"))
            else:
                self._orphan_dependents(deleted["metadata"].get("uid"))
        return self._present(target, deleted)

    def _collect_dependents(self, uid: str | None) -> None:
        """The garbage collector, synchronously: dependents go with their owner."""
        if not uid:
            return
        for resource in list(self.store.resources()):
            for item in self.store.list(resource)[0]:
                owners = (item.get("metadata") or {}).get("ownerReferences") or []
                if any(owner.get("uid") == uid for owner in owners):
                    try:
                        gone = self.store.delete(resource, item["metadata"].get("namespace"), item["metadata"]["name"])
                    except NotFound:
                        continue
                    self._collect_dependents(gone["metadata"].get("uid"))

    def _orphan_dependents(self, uid: str | None) -> None:
        if not uid:
            return
        for resource in list(self.store.resources()):
            for item in self.store.list(resource)[0]:
                owners = (item.get("metadata") or {}).get("ownerReferences") or []
                if any(owner.get("uid") == uid for owner in owners):
                    item["metadata"]["ownerReferences"] = [o for o in owners if o.get("uid") != uid]
                    self.store.update(resource, item["metadata"].get("namespace"), item, check_version=False)

    # -- scale -------------------------------------------------------------

    def _scale_of(self, obj: dict) -> dict:
        metadata = obj["metadata"]
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                key: metadata[key]
                for key in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                if key in metadata
            },
            "spec": {"replicas": spec.get("replicas", 1)},
            "status": {
                "replicas": status.get("replicas", 0),
                "selector": label_selector_string(spec.get("selector")),
            },
        }

    def _apply_scale(self, target: Target, current: dict, scale: dict) -> dict:
        spec = scale.get("spec") if isinstance(scale, dict) else None
        replicas = (spec if isinstance(spec, dict) else {}).get("replicas", 0)
        if isinstance(replicas, int) and not isinstance(replicas, bool) and replicas > MAX_REPLICAS:
            raise invalid(_SCALE, target.name, [("spec.replicas", _too_many(replicas))])
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise ApiError(
                422, "Invalid",
                f'Scale.autoscaling "{target.name}" is invalid: spec.replicas: Invalid value: '
                f"{json.dumps(replicas)}: must be greater than or equal to 0",
                {"name": target.name, "group": "autoscaling", "kind": "Scale", "causes": [{
                    "reason": "FieldValueInvalid",
                    "message": f"Invalid value: {json.dumps(replicas)}: must be greater than or equal to 0",
                    "field": "spec.replicas",
                }]},
            )
        updated = copy.deepcopy(current)
        updated.setdefault("spec", {})["replicas"] = replicas
        return updated

    # -- validation --------------------------------------------------------

    def _validate(self, rtype: ResourceType, obj: dict, current: dict | None) -> None:
        name = (obj.get("metadata") or {}).get("name") or (obj.get("metadata") or {}).get("generateName", "")
        shape = _shape_causes(rtype, obj)
        if shape:
            # The world reads these fields every tick: a wrong type stored here would break it for everyone.
            raise invalid(rtype, str(name), shape)
        if rtype.name not in ("deployments", "replicasets"):
            return
        spec = obj.get("spec") or {}
        if not isinstance(spec, dict):
            raise invalid(rtype, name, [("spec", f"Invalid value: {_kind_of(spec)}: must be an object")])
        causes: list[tuple[str, str]] = []
        replicas = spec.get("replicas", 1)
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            causes.append(("spec.replicas", f"Invalid value: {json.dumps(replicas)}: must be greater than or equal to 0"))
        elif replicas > MAX_REPLICAS:
            causes.append(("spec.replicas", _too_many(replicas)))
        template = spec.get("template") or {}
        template_spec = template.get("spec") if isinstance(template, dict) else None
        if not isinstance(template, dict) or not isinstance(template.get("metadata") or {}, dict) \
                or not isinstance(template_spec or {}, dict):
            raise invalid(rtype, name, [("spec.template", "Invalid value: must be a pod template object")])
        containers = (template_spec or {}).get("containers")
        if containers is not None and (not isinstance(containers, list)
                                       or not all(isinstance(c, dict) for c in containers)):
            raise invalid(rtype, name, [("spec.template.spec.containers",
                                         f"Invalid value: {_kind_of(containers)}: must be a list of containers")])
        selector = spec.get("selector")
        if selector is not None and not isinstance(selector, dict):
            raise invalid(rtype, name, [("spec.selector", f"Invalid value: {_kind_of(selector)}: must be an object")])
        template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        if not selector or not (selector.get("matchLabels") or selector.get("matchExpressions")):
            causes.append(("spec.selector", "Required value"))
        elif not label_selector_matches(selector, template_labels):
            causes.append((
                "spec.template.metadata.labels",
                f"Invalid value: {json.dumps(template_labels)}: `selector` does not match template `labels`",
            ))
        if current is not None and (current.get("spec") or {}).get("selector") != selector:
            causes.append(("spec.selector", f"Invalid value: {json.dumps(selector)}: field is immutable"))
        containers = ((spec.get("template") or {}).get("spec") or {}).get("containers")
        if not containers:
            causes.append(("spec.template.spec.containers", "Required value"))
        else:
            for index, container in enumerate(containers):
                if not container.get("image"):
                    causes.append((f"spec.template.spec.containers[{index}].image", "Required value"))
        if causes:
            raise invalid(rtype, name, causes)


def _is_labels(value: Any) -> bool:
    return value is None or (isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()))


def _is_list_of_objects(value: Any) -> bool:
    return value is None or (isinstance(value, list) and all(isinstance(item, dict) for item in value))


def _shape_causes(rtype: ResourceType, obj: dict) -> list[tuple[str, str]]:
    """Fields the drill world reads, of the wrong type: labels and selectors
    must map text to text, containers be objects with text images, ports and
    routes be lists of objects, weights whole numbers."""
    causes: list[tuple[str, str]] = []
    metadata = obj.get("metadata") or {}
    for field in ("labels", "annotations"):
        if not _is_labels(metadata.get(field)):
            causes.append((f"metadata.{field}", "Invalid value: must map text to text"))
    spec = obj.get("spec") or {}
    if not isinstance(spec, dict):
        return causes
    if rtype.name in ("deployments", "replicasets"):
        selector = spec.get("selector")
        if isinstance(selector, dict) and not _is_labels(selector.get("matchLabels")):
            causes.append(("spec.selector.matchLabels", "Invalid value: must map text to text"))
        if isinstance(selector, dict) and not _is_list_of_objects(selector.get("matchExpressions")):
            causes.append(("spec.selector.matchExpressions", "Invalid value: must be a list of objects"))
        template = spec.get("template")
        if isinstance(template, dict):
            meta = template.get("metadata")
            if isinstance(meta, dict):
                for field in ("labels", "annotations"):
                    if not _is_labels(meta.get(field)):
                        causes.append((f"spec.template.metadata.{field}", "Invalid value: must map text to text"))
            pod = template.get("spec")
            if isinstance(pod, dict) and isinstance(pod.get("containers"), list):
                for index, container in enumerate(pod["containers"]):
                    if not isinstance(container, dict):
                        continue
                    for field in ("image", "name"):
                        if container.get(field) is not None and not isinstance(container.get(field), str):
                            causes.append((f"spec.template.spec.containers[{index}].{field}", "Invalid value: must be text"))
                    if not _is_list_of_objects(container.get("ports")) or not _is_list_of_objects(container.get("env")):
                        causes.append((f"spec.template.spec.containers[{index}]", "Invalid value: ports and env must be lists of objects"))
    elif rtype.name == "services":
        if not _is_labels(spec.get("selector")):
            causes.append(("spec.selector", "Invalid value: must map text to text"))
        if not _is_list_of_objects(spec.get("ports")):
            causes.append(("spec.ports", "Invalid value: must be a list of objects"))
    elif rtype.name == "virtualservices":
        http = spec.get("http")
        if not _is_list_of_objects(http):
            causes.append(("spec.http", "Invalid value: must be a list of objects"))
        else:
            for i, rule in enumerate(http or []):
                routes = rule.get("route")
                if not _is_list_of_objects(routes):
                    causes.append((f"spec.http[{i}].route", "Invalid value: must be a list of objects"))
                    continue
                for j, route in enumerate(routes or []):
                    destination, weight = route.get("destination"), route.get("weight")
                    if destination is not None and not (isinstance(destination, dict) and all(
                            isinstance(destination.get(k), (str, type(None))) for k in ("host", "subset"))):
                        causes.append((f"spec.http[{i}].route[{j}].destination", "Invalid value: must be an object of text"))
                    if weight is not None and (isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= 100):
                        causes.append((f"spec.http[{i}].route[{j}].weight", "Invalid value: must be a whole number from 0 to 100"))
    elif rtype.name == "destinationrules":
        if not _is_list_of_objects(spec.get("subsets")):
            causes.append(("spec.subsets", "Invalid value: must be a list of objects"))
    return causes



_SCALE = ResourceType("autoscaling", ("v1",), "scale", "scale", "Scale", True)


def _too_many(replicas: int) -> str:
    return (f"Invalid value: {replicas}: must be no more than {MAX_REPLICAS} "
            "(the drill world's admission limit on replicas per workload)")


def _kind_of(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number")


def check_object_shape(rtype: ResourceType, obj: Any) -> None:
    """An object's top-level shape, checked before anything is stored: an
    object, whose metadata, spec and status (when present) are objects. 422
    Invalid otherwise, as the apiserver's decoder would refuse it."""
    if not isinstance(obj, dict):
        raise bad_request("the body of the request must be an object")
    for field in ("metadata", "spec", "status"):
        if field in obj and obj[field] is not None and not isinstance(obj[field], dict):
            name = (obj.get("metadata") or {}).get("name", "") if isinstance(obj.get("metadata"), dict) else ""
            raise invalid(rtype, str(name), [(field, f"Invalid value: {_kind_of(obj[field])}: must be an object")])


def _default(rtype: ResourceType, obj: dict) -> None:
    """The apiserver's defaulting for the fields kubectl reads back."""
    if rtype.name == "deployments":
        spec = obj.setdefault("spec", {})
        spec.setdefault("replicas", 1)
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
        strategy = spec.setdefault("strategy", {"type": "RollingUpdate"})
        if strategy.get("type", "RollingUpdate") == "RollingUpdate":
            strategy["type"] = "RollingUpdate"
            rolling = strategy.setdefault("rollingUpdate", {})
            rolling.setdefault("maxUnavailable", "25%")
            rolling.setdefault("maxSurge", "25%")
    elif rtype.name == "replicasets":
        obj.setdefault("spec", {}).setdefault("replicas", 1)
    elif rtype.name == "services":
        spec = obj.setdefault("spec", {})
        spec.setdefault("type", "ClusterIP")
        for port in spec.get("ports") or []:
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port.get("port"))
