"""The drill's GitOps controllers: Argo CD Applications, Flux Kustomizations and HelmReleases.

A service whose scenario entry has `gitops:` is owned by an Argo CD
`Application` (argoproj.io/v1alpha1) or a Flux `Kustomization`
(kustomize.toolkit.fluxcd.io/v1) or `HelmRelease` (helm.toolkit.fluxcd.io/v2), served through the Kubernetes API like any
object, so `kubectl get applications.argoproj.io` and `kubectl patch` work.

Every deploy the scenario makes of an owned service is a commit synced from
git: the controller records it in the owner's sync history (Argo CD
`status.history` and `status.sync.revision`, Flux `status.lastAppliedRevision`).
What git says is the desired state; a Deployment whose image or replicas differ
has drifted. While the owner self-heals (Argo CD: `spec.syncPolicy.automated`
with `selfHeal: true` and not `enabled: false`; Flux: not `spec.suspend`) the
controller puts the desired state back `self_heal_seconds` after the drift
appeared (default 5 s, Argo CD's self-heal timeout). A `kubectl rollout undo`
is such a drift. Paused, it leaves the drift alone and reports OutOfSync.

Argo CD's `spec.source.targetRevision` may name an earlier synced commit (as
`argocd app rollback` does): that commit's version is then the desired one.
An app-of-apps parent (`gitops.parent`) owns the child Application and heals
its spec the same way, so pausing the child alone does not last.

A refresh request (Argo CD's `argocd.argoproj.io/refresh` annotation, Flux's
`reconcile.fluxcd.io/requestedAt`) is answered once the controller has acted
on any pending drift: the annotation goes (Argo CD, `status.reconciledAt` set)
or `status.lastHandledReconcileAt` echoes it (Flux).
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable

from console.drill.objects import NotFound, ObjectStore, format_timestamp
from console.drill.scenario import GitOps, Scenario, Service

ARGO_TRACKING = "argocd.argoproj.io/tracking-id"
ARGO_INSTANCE = "app.kubernetes.io/instance"
ARGO_REFRESH = "argocd.argoproj.io/refresh"
FLUX_NAME = "kustomize.toolkit.fluxcd.io/name"
FLUX_NAMESPACE = "kustomize.toolkit.fluxcd.io/namespace"
HELM_NAME = "helm.toolkit.fluxcd.io/name"
HELM_NAMESPACE = "helm.toolkit.fluxcd.io/namespace"
FLUX_REQUESTED = "reconcile.fluxcd.io/requestedAt"
_CHANGE_CAUSE = "kubernetes.io/change-cause"
# Argo CD keeps this many entries of status.history (its default revisionHistoryLimit).
HISTORY_LIMIT = 10


@dataclass(frozen=True)
class Commit:
    """One commit of the service's deploy repository."""

    sha: str
    version: str
    cause: str


def self_healing(tool: str, owner: dict) -> bool:
    """Whether the owner would revert drift now."""
    spec = owner.get("spec") or {}
    if tool == "flux":
        return not spec.get("suspend", False)
    automated = (spec.get("syncPolicy") or {}).get("automated")
    return isinstance(automated, dict) and automated.get("enabled", True) is not False \
        and bool(automated.get("selfHeal"))


class GitOpsControllers:
    """Argo CD's application controller and Flux's kustomize-controller, for the
    scenario's owned services. `step(now)` runs inside the world's settle loop."""

    def __init__(self, scenario: Scenario, store: ObjectStore, clock_now: Any,
                 note: Callable[[str], None] | None = None) -> None:
        self.scenario = scenario
        self.store = store
        self._clock_now = clock_now
        # Tells the trainee (the drill state's notes) what the controller undid.
        self._note = note or (lambda text: None)
        self._events = 0
        self.owned: dict[str, Service] = {svc.name: svc for svc in scenario.services if svc.gitops is not None}
        self.commits: dict[str, list[Commit]] = {name: [] for name in self.owned}
        # When each drifted object (service name, or "parent:" + child) was first seen drifted.
        self._drift_since: dict[str, datetime] = {}
        # The child Applications' specs as their parent's git has them.
        self._child_specs: dict[str, dict] = {}

    # ----------------------------------------------------------- git commits

    def committed(self, svc: Service, version: str, cause: str, now: datetime, first: bool) -> None:
        """The scenario deployed `version` of an owned service: a commit, synced."""
        if svc.name not in self.owned:
            return
        commits = self.commits[svc.name]
        digest = hashlib.sha1(f"{self.scenario.seed}/{svc.name}/{len(commits)}/{version}".encode()).hexdigest()
        commits.append(Commit(digest, version, cause))
        gitops = svc.gitops
        assert gitops is not None
        if first:
            self._create_owner(svc, gitops)
            self._mark_owned(svc, gitops)
        self._record_sync(svc, gitops, commits[-1], now)

    def _ensure_namespace(self, name: str) -> None:
        try:
            self.store.get("namespaces", None, name, copy=False)
        except NotFound:
            self.store.create("namespaces", None, {
                "apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}},
                "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"},
            })

    def _source(self, svc: Service, gitops: GitOps) -> dict:
        return {"repoURL": gitops.repo, "path": gitops.path or f"apps/{svc.name}", "targetRevision": "HEAD"}

    def _create_owner(self, svc: Service, gitops: GitOps) -> None:
        name, ns = gitops.owner_name(svc), gitops.owner_namespace
        self._ensure_namespace(ns)
        if gitops.tool == "argocd":
            sync_policy: dict[str, Any] = {"syncOptions": ["CreateNamespace=true"]}
            if gitops.automated:
                sync_policy["automated"] = {"prune": True, "selfHeal": gitops.self_heal}
            spec = {
                "project": "default",
                "source": self._source(svc, gitops),
                "destination": {"server": "https://kubernetes.default.svc", "namespace": svc.namespace},
                "syncPolicy": sync_policy,
            }
            metadata: dict[str, Any] = {"name": name, "namespace": ns}
            if gitops.parent:
                metadata["labels"] = {ARGO_INSTANCE: gitops.parent}
                metadata["annotations"] = {ARGO_TRACKING: f"{gitops.parent}:argoproj.io/Application:{ns}/{name}"}
                self._child_specs[svc.name] = copy.deepcopy(spec)
                self._create_parent(svc, gitops)
            self.store.create("applications", ns, {
                "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
                "metadata": metadata, "spec": spec, "status": {},
            })
        elif gitops.owner_kind == "HelmRelease":
            self.store.create("helmreleases", ns, {
                "apiVersion": gitops.owner_api_version, "kind": "HelmRelease",
                "metadata": {"name": name, "namespace": ns},
                "spec": {
                    "interval": f"{int(gitops.interval // 60)}m{int(gitops.interval % 60)}s",
                    "chart": {"spec": {"chart": gitops.path or svc.name,
                                       "sourceRef": {"kind": "GitRepository", "name": "flux-system"}}},
                    "targetNamespace": svc.namespace,
                    "suspend": gitops.suspended,
                },
                "status": {},
            })
        else:
            self.store.create("kustomizations", ns, {
                "apiVersion": gitops.owner_api_version, "kind": "Kustomization",
                "metadata": {"name": name, "namespace": ns},
                "spec": {
                    "interval": f"{int(gitops.interval // 60)}m{int(gitops.interval % 60)}s",
                    "path": "./" + (gitops.path or f"apps/{svc.name}"),
                    "prune": True,
                    "sourceRef": {"kind": "GitRepository", "name": "flux-system"},
                    "targetNamespace": svc.namespace,
                    "suspend": gitops.suspended,
                },
                "status": {},
            })

    def _create_parent(self, svc: Service, gitops: GitOps) -> None:
        ns = gitops.owner_namespace
        try:
            self.store.get("applications", ns, gitops.parent or "", copy=False)
            return
        except NotFound:
            pass
        self.store.create("applications", ns, {
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
            "metadata": {"name": gitops.parent, "namespace": ns},
            "spec": {
                "project": "default",
                "source": {"repoURL": gitops.repo, "path": "apps", "targetRevision": "HEAD"},
                "destination": {"server": "https://kubernetes.default.svc", "namespace": ns},
                "syncPolicy": {"automated": {"prune": True, "selfHeal": True}},
            },
            "status": {"sync": {"status": "Synced"}, "health": {"status": "Healthy"}},
        })

    def _mark_owned(self, svc: Service, gitops: GitOps) -> None:
        deployment = self.store.get("deployments", svc.namespace, svc.name)
        metadata = deployment["metadata"]
        name = gitops.owner_name(svc)
        if gitops.tool == "argocd":
            metadata.setdefault("labels", {})[ARGO_INSTANCE] = name
            metadata.setdefault("annotations", {})[ARGO_TRACKING] = f"{name}:apps/Deployment:{svc.namespace}/{svc.name}"
        else:
            labels = (HELM_NAME, HELM_NAMESPACE) if gitops.owner_kind == "HelmRelease" else (FLUX_NAME, FLUX_NAMESPACE)
            metadata.setdefault("labels", {}).update({labels[0]: name, labels[1]: gitops.owner_namespace})
        self.store.update("deployments", svc.namespace, deployment, check_version=False)

    def _owner(self, svc: Service) -> dict | None:
        gitops = svc.gitops
        assert gitops is not None
        resource = gitops.owner_resource
        try:
            return self.store.get(resource, gitops.owner_namespace, gitops.owner_name(svc))
        except NotFound:
            return None  # deleted by someone: nothing owns the service any more

    def _record_sync(self, svc: Service, gitops: GitOps, commit: Commit, now: datetime) -> None:
        owner = self._owner(svc)
        if owner is None:
            return
        status = owner.setdefault("status", {})
        stamp = format_timestamp(now)
        if gitops.tool == "argocd":
            history = status.setdefault("history", [])
            history.append({
                "id": (history[-1]["id"] + 1) if history else 0,
                "revision": commit.sha,
                "deployedAt": stamp,
                "deployStartedAt": stamp,
                "source": {**owner["spec"]["source"]},
            })
            del history[:-HISTORY_LIMIT]
            status["sync"] = {"status": "Synced", "revision": commit.sha,
                              "comparedTo": {"source": {**owner["spec"]["source"]}}}
            status["health"] = {"status": "Healthy"}
            status["reconciledAt"] = stamp
            status["summary"] = {"images": [svc.image_of(commit.version)]}
        elif gitops.owner_kind == "HelmRelease":
            # The chart's version is the revision a HelmRelease applies (its app version here).
            status["lastAppliedRevision"] = status["lastAttemptedRevision"] = commit.version
            releases = status.setdefault("history", [])
            releases.insert(0, {"chartVersion": commit.version, "appVersion": commit.version,
                                "version": len(releases) + 1, "status": "deployed", "deployed": stamp,
                                "name": gitops.owner_name(svc), "namespace": svc.namespace})
            del releases[HISTORY_LIMIT:]
            status["conditions"] = [{
                "type": "Ready", "status": "True", "reason": "UpgradeSucceeded",
                "message": f"Helm upgrade succeeded for release {svc.namespace}/{gitops.owner_name(svc)}.v"
                           f"{len(releases)} with chart {gitops.path or svc.name}@{commit.version}",
                "lastTransitionTime": stamp,
            }]
        else:
            revision = f"main@sha1:{commit.sha}"
            status["lastAppliedRevision"] = revision
            status["lastAttemptedRevision"] = revision
            status["conditions"] = [{
                "type": "Ready", "status": "True", "reason": "ReconciliationSucceeded",
                "message": f"Applied revision: {revision}", "lastTransitionTime": stamp,
            }]
        resource = gitops.owner_resource
        self.store.update(resource, gitops.owner_namespace, owner, check_version=False)

    # ------------------------------------------------------------ controller

    def desired(self, svc: Service, owner: dict) -> Commit | None:
        """The commit the owner wants running: HEAD, or the one its targetRevision names."""
        commits = self.commits.get(svc.name) or []
        if not commits:
            return None
        target = str(((owner.get("spec") or {}).get("source") or {}).get("targetRevision") or "HEAD")
        if target in ("HEAD", "main", "master"):
            return commits[-1]
        for commit in reversed(commits):
            if len(target) >= 7 and commit.sha.startswith(target):
                return commit
        return commits[-1]  # an unknown revision: Argo CD would fail to sync; the drill keeps HEAD

    def _live(self, svc: Service) -> tuple[dict | None, str | None, int]:
        try:
            deployment = self.store.get("deployments", svc.namespace, svc.name, copy=False)
        except NotFound:
            return None, None, 0
        image = next((c.get("image") for c in deployment["spec"]["template"]["spec"]["containers"]
                      if c.get("name") == svc.container), None)
        return deployment, image, deployment["spec"].get("replicas", 1)

    def _drifted(self, key: str, now: datetime) -> datetime:
        if key not in self._drift_since:
            # Drift is written between two runs of the world: it happened at
            # the clock's now, which the run is catching up with.
            self._drift_since[key] = max(now, min(self._clock_now(), now + timedelta(minutes=1)))
        return self._drift_since[key]

    def step(self, now: datetime) -> None:
        """Reconcile every owner at simulated time `now`."""
        for svc in self.owned.values():
            gitops = svc.gitops
            assert gitops is not None
            if gitops.parent:
                self._heal_child(svc, gitops, now)
            owner = self._owner(svc)
            if owner is None:
                continue
            if gitops.tool == "argocd" and (owner.get("operation") or {}).get("sync"):
                owner = self._operate(svc, gitops, owner, now)
            commit = self.desired(svc, owner)
            deployment, image, replicas = self._live(svc)
            if commit is None or deployment is None:
                continue
            drift = image != svc.image_of(commit.version) or replicas != svc.replicas
            healing = self_healing(gitops.tool, owner)
            pending = False
            if not drift:
                self._drift_since.pop(svc.name, None)
            else:
                since = self._drifted(svc.name, now)
                if healing and now >= since + timedelta(seconds=gitops.self_heal_seconds):
                    self._healed(svc, gitops, image, commit, now)
                    self._apply(svc, commit)
                    self._record_sync(svc, gitops, commit, now)
                    self._drift_since.pop(svc.name, None)
                    owner = self._owner(svc) or owner
                    drift = False
                else:
                    pending = healing
            self._report(svc, gitops, owner, drift, pending, now)

    def _operate(self, svc: Service, gitops: GitOps, owner: dict, now: datetime) -> dict:
        """A sync operation (`argocd app sync --revision`, `argocd app rollback`):
        deploy that commit now, record it, and report the operation's result."""
        revision = str(owner["operation"]["sync"].get("revision") or "")
        commits = self.commits[svc.name]
        commit = next((c for c in reversed(commits) if revision and c.sha.startswith(revision)), None)
        stamp = format_timestamp(now)
        if commit is not None:
            self._apply(svc, commit)
            self._record_sync(svc, gitops, commit, now)
            owner = self._owner(svc) or owner
            result = {"phase": "Succeeded", "message": "successfully synced (all tasks run)",
                      "syncResult": {"revision": commit.sha}}
        else:
            result = {"phase": "Failed", "message": f"revision {revision!r} is not in the repository"}
        owner.pop("operation", None)
        owner.setdefault("status", {})["operationState"] = {
            **result, "operation": {"sync": {"revision": revision}}, "startedAt": stamp, "finishedAt": stamp}
        self.store.update("applications", gitops.owner_namespace, owner, check_version=False)
        self._drift_since.pop(svc.name, None)
        return self._owner(svc) or owner

    def next_wakeup(self, now: datetime) -> datetime | None:
        """When a pending self-heal is due."""
        times = []
        for key, since in self._drift_since.items():
            svc = self.owned.get(key.removeprefix("parent:"))
            if svc is None or svc.gitops is None:
                continue
            times.append(since + timedelta(seconds=svc.gitops.self_heal_seconds))
        future = [t for t in times if t > now]
        return min(future) if future else None

    def _healed(self, svc: Service, gitops: GitOps, image: str | None, commit: Commit, now: datetime) -> None:
        """Say what self-heal undid: a drill note and an Event on the owner, as the controllers emit one."""
        tool, kind = ("Argo CD" if gitops.tool == "argocd" else "Flux"), gitops.owner_kind
        ref = f"{kind} {gitops.owner_namespace}/{gitops.owner_name(svc)}"
        was = (image or "").rpartition(":")[2] or "?"
        self._note(f"{tool} {ref} reverted drift of deployment/{svc.name} ({was} is not what git says): "
                   f"{commit.version} is back. Pause it before rolling back.")
        self._events += 1
        stamp = format_timestamp(now)
        message = (f"Initiated automated sync to '{commit.sha}'" if gitops.tool == "argocd"
                   else f"Deployment/{svc.namespace}/{svc.name} configured (drift corrected)")
        self.store.create("events", gitops.owner_namespace, {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": f"{gitops.owner_name(svc)}.{self._events:016x}", "namespace": gitops.owner_namespace},
            "involvedObject": {"kind": kind, "namespace": gitops.owner_namespace, "name": gitops.owner_name(svc),
                               "apiVersion": gitops.owner_api_version},
            "reason": "OperationStarted" if gitops.tool == "argocd" else "ReconciliationSucceeded",
            "message": message, "type": "Normal", "count": 1,
            "firstTimestamp": stamp, "lastTimestamp": stamp,
            "source": {"component": {"Application": "argocd-application-controller",
                                     "Kustomization": "kustomize-controller",
                                     "HelmRelease": "helm-controller"}[gitops.owner_kind]},
        })

    def _apply(self, svc: Service, commit: Commit) -> None:
        """Sync: the Deployment as git has it (image, replicas, change cause)."""
        deployment = self.store.get("deployments", svc.namespace, svc.name)
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            if container.get("name") == svc.container:
                container["image"] = svc.image_of(commit.version)
        deployment["spec"]["replicas"] = svc.replicas
        deployment["metadata"].setdefault("annotations", {})[_CHANGE_CAUSE] = commit.cause
        self.store.update("deployments", svc.namespace, deployment, check_version=False)

    def _report(self, svc: Service, gitops: GitOps, owner: dict, drift: bool, pending: bool, now: datetime) -> None:
        """Sync status, and the answer to a refresh request once nothing is pending."""
        updated = copy.deepcopy(owner)
        status = updated.setdefault("status", {})
        annotations = updated["metadata"].get("annotations") or {}
        if gitops.tool == "argocd":
            status.setdefault("sync", {})["status"] = "OutOfSync" if drift else "Synced"
            if ARGO_REFRESH in annotations and not pending:
                del annotations[ARGO_REFRESH]
                status["reconciledAt"] = format_timestamp(now)
            resource = "applications"
        else:
            requested = annotations.get(FLUX_REQUESTED)
            if requested and not pending and status.get("lastHandledReconcileAt") != requested:
                status["lastHandledReconcileAt"] = requested
            resource = gitops.owner_resource
        if updated != owner:
            self.store.update(resource, gitops.owner_namespace, updated, check_version=False)

    def _heal_child(self, svc: Service, gitops: GitOps, now: datetime) -> None:
        """The app-of-apps parent heals the child Application's spec."""
        key = "parent:" + svc.name
        try:
            parent = self.store.get("applications", gitops.owner_namespace, gitops.parent or "", copy=False)
        except NotFound:
            return
        child = self._owner(svc)
        wanted = self._child_specs.get(svc.name)
        if child is None or wanted is None or child.get("spec") == wanted:
            self._drift_since.pop(key, None)
            return
        since = self._drifted(key, now)
        if self_healing("argocd", parent) and now >= since + timedelta(seconds=gitops.self_heal_seconds):
            child["spec"] = copy.deepcopy(wanted)
            self.store.update("applications", gitops.owner_namespace, child, check_version=False)
            self._drift_since.pop(key, None)
