"""A Deployment's GitOps owner, read from the cluster, paused the way its own
tools pause it, and asked whether a rollback held (README "GitOps (Argo CD and Flux)").

A source: it makes requests through the cluster's `KubeConnection` and returns
frozen data (`console.gitops.Owner`).

- Argo CD: the Deployment's `argocd.argoproj.io/tracking-id` annotation
  ("APP:GROUP/KIND:NS/NAME", APP may be "NAMESPACE_APP"), else its
  `app.kubernetes.io/instance` label when an Application of that name exists.
  Paused with `spec.syncPolicy.automated.enabled: false` (Argo CD 3), falling
  back to removing `automated` (what `argocd app set --sync-policy none`
  does) when the server dropped the field; an app-of-apps parent (the
  Application's own tracking) is paused first, or the parent would re-enable it.
- Flux: the `kustomize.toolkit.fluxcd.io/name|namespace` or
  `helm.toolkit.fluxcd.io/name|namespace` labels; paused with `spec.suspend: true`
  (`flux suspend`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

from console.gitops import ARGOCD, FLUX, Owner
from console.model import ApiCall
from console.platforms.base import Forbidden, NotFound, PlatformError

ARGO_TRACKING = "argocd.argoproj.io/tracking-id"
ARGO_INSTANCE = "app.kubernetes.io/instance"
ARGO_REFRESH = "argocd.argoproj.io/refresh"
FLUX_REQUESTED = "reconcile.fluxcd.io/requestedAt"
MERGE_PATCH = "application/merge-patch+json"
_FLUX_KINDS = {
    "kustomize.toolkit.fluxcd.io": ("Kustomization", "kustomize.toolkit.fluxcd.io/v1", "kustomizations"),
    "helm.toolkit.fluxcd.io": ("HelmRelease", "helm.toolkit.fluxcd.io/v2", "helmreleases"),
}
ARGO_PAUSE = {"spec": {"syncPolicy": {"automated": {"enabled": False}}}}
ARGO_PAUSE_FALLBACK = {"spec": {"syncPolicy": {"automated": None}}}
FLUX_PAUSE = {"spec": {"suspend": True}}
# Seconds between reads while waiting for a refresh to be handled or watching that a rollback holds.
POLL_SECONDS = 0.25


def _path(owner_resource: str, api_version: str, namespace: str, name: str) -> str:
    return f"/apis/{api_version}/namespaces/{namespace}/{owner_resource}/{name}"


def application_path(namespace: str, name: str) -> str:
    return _path("applications", "argoproj.io/v1alpha1", namespace, name)


def marks(obj: dict, argocd_namespace: str = "argocd") -> tuple[str, str, str, str] | None:
    """(tool, kind, namespace, name) of the owner an object's marks name, None when none does."""
    metadata = obj.get("metadata") or {}
    labels = metadata.get("labels") or {}
    annotations = metadata.get("annotations") or {}
    for group, (kind, _, _) in _FLUX_KINDS.items():
        name, namespace = labels.get(f"{group}/name"), labels.get(f"{group}/namespace")
        if name and namespace:
            return FLUX, kind, namespace, name
    tracking = annotations.get(ARGO_TRACKING)
    if tracking and ":" in tracking:
        app = tracking.split(":", 1)[0]
        namespace, _, name = app.rpartition("_")
        return ARGOCD, "Application", namespace or argocd_namespace, name
    if labels.get(ARGO_INSTANCE):
        return ARGOCD, "Application", argocd_namespace, labels[ARGO_INSTANCE]
    return None


def _seconds(interval: str | None) -> float | None:
    """A Go duration ("3m0s", "10m", "1h") in seconds."""
    if not interval:
        return None
    total, number = 0.0, ""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0}
    for char in interval:
        if char.isdigit() or char == ".":
            number += char
        elif char in units and number:
            total += float(number) * units[char]
            number = ""
        else:
            return None
    return total or None


class GitOpsOwners:
    """Reads and pauses the owners of one cluster's Deployments."""

    def __init__(self, connection: Any, argocd_namespace: str = "argocd") -> None:
        self.connection = connection
        self.argocd_namespace = argocd_namespace

    def _get(self, path: str, resource: str, name: str, namespace: str) -> dict:
        return self.connection.request("GET", path, verb="get", resource=resource, name=name, namespace=namespace)

    def _patch(self, call: ApiCall, resource: str, name: str, namespace: str, dry_run: bool = False) -> dict:
        return self.connection.request(
            "PATCH", call.target, verb="patch", resource=resource, name=name, namespace=namespace,
            body=json.loads(call.body), content_type=MERGE_PATCH, query=[("dryRun", "All")] if dry_run else None)

    # --- reading -------------------------------------------------------------

    def owner_of(self, deployment: dict) -> Owner | None:
        """The owner of `deployment`, None when nothing owns it (or the instance
        label names no Application: Helm sets that label too)."""
        found = marks(deployment, self.argocd_namespace)
        if found is None:
            return None
        tool, kind, namespace, name = found
        if tool == FLUX:
            return self._flux(kind, namespace, name)
        by_tracking = ARGO_TRACKING in ((deployment.get("metadata") or {}).get("annotations") or {})
        try:
            app = self._get(application_path(namespace, name), "applications", name, namespace)
        except (NotFound, Forbidden) as err:
            if not by_tracking:
                return None  # the instance label alone: Helm sets it too
            # Tracked by an Application the console cannot see: the safe reading is that it self-heals.
            why = "is not in this cluster (managed by another Argo CD?)" if isinstance(err, NotFound) \
                else f"cannot be read ({err})"
            return Owner(ARGOCD, name, namespace, automated=True, self_heal=True,
                         pause_problem=f"its Application {namespace}/{name} {why}")
        return self._argo(app, namespace, name)

    def _flux(self, kind: str, namespace: str, name: str) -> Owner:
        group = next(g for g, (k, _, _) in _FLUX_KINDS.items() if k == kind)
        _, api_version, resource = _FLUX_KINDS[group]
        try:
            obj = self._get(_path(resource, api_version, namespace, name), resource, name, namespace)
        except (NotFound, Forbidden) as err:
            return Owner(FLUX, name, namespace, flux_kind=kind, pause_problem=f"it cannot be read: {err}")
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        return Owner(FLUX, name, namespace, suspended=bool(spec.get("suspend")),
                     revision=str(status.get("lastAppliedRevision") or ""),
                     interval_seconds=_seconds(spec.get("interval")), flux_kind=kind)

    def _argo(self, app: dict, namespace: str, name: str) -> Owner:
        spec, status = app.get("spec") or {}, app.get("status") or {}
        automated = (spec.get("syncPolicy") or {}).get("automated")
        on = isinstance(automated, dict) and automated.get("enabled", True) is not False
        history = [h.get("revision", "") for h in status.get("history") or []]
        owner = Owner(ARGOCD, name, namespace, automated=on, self_heal=on and bool(automated.get("selfHeal")),
                      revision=str((status.get("sync") or {}).get("revision") or ""),
                      previous_revision=history[-2] if len(history) >= 2 else "")
        parent = marks(app, self.argocd_namespace)
        if parent is None or parent[0] != ARGOCD:
            return owner
        _, _, parent_ns, parent_name = parent
        try:
            parent_app = self._get(application_path(parent_ns, parent_name), "applications", parent_name, parent_ns)
        except (NotFound, Forbidden) as err:
            return replace(owner, parent=f"{parent_ns}/{parent_name}", parent_self_heal=True,
                           pause_problem=f"its app-of-apps parent {parent_ns}/{parent_name} cannot be reached ({err})")
        parent_owner = self._argo_policy(parent_app)
        return replace(owner, parent=f"{parent_ns}/{parent_name}", parent_self_heal=parent_owner)

    @staticmethod
    def _argo_policy(app: dict) -> bool:
        automated = ((app.get("spec") or {}).get("syncPolicy") or {}).get("automated")
        return isinstance(automated, dict) and automated.get("enabled", True) is not False \
            and bool(automated.get("selfHeal"))

    # --- pausing -------------------------------------------------------------

    def pause_calls(self, owner: Owner) -> tuple[ApiCall, ...]:
        """The requests that pause a self-healing owner, its parent first; () when it does not heal."""
        if not owner.self_healing:
            return ()
        if owner.tool == FLUX:
            group = next(g for g, (k, _, _) in _FLUX_KINDS.items() if k == owner.kind)
            _, api_version, resource = _FLUX_KINDS[group]
            return (ApiCall("PATCH", _path(resource, api_version, owner.namespace, owner.name),
                            json.dumps(FLUX_PAUSE)),)
        calls = []
        if owner.parent and owner.parent_self_heal:
            parent_ns, _, parent_name = owner.parent.partition("/")
            calls.append(ApiCall("PATCH", application_path(parent_ns, parent_name), json.dumps(ARGO_PAUSE)))
        calls.append(ApiCall("PATCH", application_path(owner.namespace, owner.name), json.dumps(ARGO_PAUSE)))
        return tuple(calls)

    @staticmethod
    def _names(call: ApiCall) -> tuple[str, str, str]:
        parts = call.target.strip("/").split("/")
        return parts[-2], parts[-1], parts[-3]  # resource, name, namespace

    def check_pause(self, owner: Owner) -> Owner:
        """The owner with `pause_problem` set when a server-side dry run of its
        pause is refused (RBAC's 403, a parent that went away)."""
        if owner.pause_problem or not owner.self_healing:
            return owner
        for call in self.pause_calls(owner):
            resource, name, namespace = self._names(call)
            try:
                self._patch(call, resource, name, namespace, dry_run=True)
            except PlatformError as err:
                return replace(owner, pause_problem=str(err))
        return owner

    def pause(self, calls: tuple[ApiCall, ...]) -> Iterator[str]:
        """Send the pause calls; after each, read the object back and, if
        automated sync is still on (an Argo CD before 3.0 drops `enabled`),
        remove `automated` instead. Yields one line per owner paused."""
        for call in calls:
            resource, name, namespace = self._names(call)
            result = self._patch(call, resource, name, namespace)
            if resource == "applications" and self._argo_policy(result):
                fallback = ApiCall("PATCH", call.target, json.dumps(ARGO_PAUSE_FALLBACK))
                result = self._patch(fallback, resource, name, namespace)
                if self._argo_policy(result):
                    raise PlatformError(f"Application {namespace}/{name} still syncs automatically after the "
                                        "pause; pause it with `argocd app set --sync-policy none` and try again.")
            what = "automated sync off" if resource == "applications" else "suspended"
            yield f"{resource[:-1]}.{call.target.split('/')[2]}/{name} in {namespace}: {what}"

    def revision_call(self, owner: Owner) -> ApiCall | None:
        """Argo CD's own rollback (`argocd app rollback`): a sync operation to the
        previous revision of `status.history`; None when there is none."""
        if owner.tool != ARGOCD or not owner.previous_revision:
            return None
        body = {"operation": {"initiatedBy": {"username": "rollback-console"},
                              "sync": {"revision": owner.previous_revision}}}
        return ApiCall("PATCH", application_path(owner.namespace, owner.name), json.dumps(body, indent=2))

    def send(self, call: ApiCall) -> dict:
        """Send one of the owner's calls (a merge patch)."""
        resource, name, namespace = self._names(call)
        return self._patch(call, resource, name, namespace)

    # --- did it hold ---------------------------------------------------------

    def request_reconcile(self, owner: Owner) -> str:
        """Ask the owner to compare now (Argo CD's refresh, Flux's requestedAt); the token asked with."""
        token = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        if owner.tool == ARGOCD:
            body = {"metadata": {"annotations": {ARGO_REFRESH: "normal"}}}
            path = application_path(owner.namespace, owner.name)
            resource = "applications"
        else:
            body = {"metadata": {"annotations": {FLUX_REQUESTED: token}}}
            group = next(g for g, (k, _, _) in _FLUX_KINDS.items() if k == owner.kind)
            _, api_version, resource = _FLUX_KINDS[group]
            path = _path(resource, api_version, owner.namespace, owner.name)
        self.connection.request("PATCH", path, verb="patch", resource=resource, name=owner.name,
                                namespace=owner.namespace, body=body, content_type=MERGE_PATCH)
        return token

    def reconciled(self, owner: Owner, token: str) -> bool:
        """Has the owner handled the reconcile asked with `token`? (A suspended
        Flux object never reconciles: it counts as handled.)"""
        if owner.tool == ARGOCD:
            app = self._get(application_path(owner.namespace, owner.name), "applications", owner.name, owner.namespace)
            return ARGO_REFRESH not in ((app.get("metadata") or {}).get("annotations") or {})
        group = next(g for g, (k, _, _) in _FLUX_KINDS.items() if k == owner.kind)
        _, api_version, resource = _FLUX_KINDS[group]
        obj = self._get(_path(resource, api_version, owner.namespace, owner.name), resource, owner.name,
                        owner.namespace)
        return bool((obj.get("spec") or {}).get("suspend")) \
            or (obj.get("status") or {}).get("lastHandledReconcileAt") == token

    def wait_reconciled(self, owner: Owner, token: str, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while True:
            if self.reconciled(owner, token):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(POLL_SECONDS)
