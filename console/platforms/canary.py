"""Canary services on Istio: a stable Deployment, a canary Deployment
(`NAME-canary`) and a VirtualService splitting traffic between the subsets
`stable` and `canary`. The runbook aborts a canary in two steps:

    kubectl patch virtualservice $SERVICE --type merge -p '<stable 100 / canary 0>'
    kubectl scale deployment $SERVICE-canary --replicas=0

The console sends the same merge patch, built from the VirtualService as read
(so routes the runbook's literal patch would drop, such as matches, retries
or timeouts, are kept; for the runbook's one-route VirtualService the result
is the same object) with its resourceVersion as a precondition, reads the
weights back, scales the canary to 0 with a guarded patch of the scale
subresource, and waits until the canary's pods are gone.
"""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from datetime import timedelta
from typing import Iterator

from console.clock import Clock, SystemClock
from console.model import ApiCall, Health, Progress, Revision, RollbackPlan, image_tag
from console.platforms.base import (
    ROLLOUT_TIMEOUT,
    Conflict,
    NotFound,
    PlatformError,
    PodInfo,
    PodLogs,
    Routing,
    Timeout,
    Usage,
)
from console.platforms.kubernetes import (
    API_TIMEOUT,
    CHANGE_CAUSE_ANNOTATION,
    JSON_PATCH,
    KubeConnection,
    KubernetesPlatform,
    label_selector,
    template_images,
)
from console.provenance import ROLLBACKS_ANNOTATION, Provenance, RollbackRecord, encode, from_annotations

PLATFORM = "canary"
MERGE_PATCH = "application/merge-patch+json"
ISTIO_API = "networking.istio.io/v1beta1"
"""Served by every Istio release that has VirtualServices (v1 only from 1.22)."""


class CanaryPlatform:
    """One canary service: stable and canary deployments behind an Istio VirtualService."""

    platform = PLATFORM

    def __init__(
        self,
        service: str,
        namespace: str,
        virtualservice: str | None = None,
        deployment: str | None = None,
        canary_deployment: str | None = None,
        stable_subset: str = "stable",
        canary_subset: str = "canary",
        host: str | None = None,
        kubeconfig: str | None = None,
        context: str | None = None,
        timeout: float = API_TIMEOUT,
        clock: Clock | None = None,
        connection: KubeConnection | None = None,
    ) -> None:
        self.name = service
        self.namespace = namespace
        self.virtualservice = virtualservice or service
        self.host = host or service
        self.stable_subset = stable_subset
        self.canary_subset = canary_subset
        self.connection = connection or KubeConnection(kubeconfig, context, timeout)
        self._clock: Clock = clock or SystemClock()
        self.stable = KubernetesPlatform(
            service, namespace, deployment or service, clock=self._clock, connection=self.connection
        )
        self.canary = KubernetesPlatform(
            service, namespace, canary_deployment or f"{service}-canary", clock=self._clock, connection=self.connection
        )
        # The provenance read with the last `history()` (None before one): `recorded()`.
        self._recorded: Provenance | None = None

    # --- the VirtualService ----------------------------------------------------

    @property
    def _vs_path(self) -> str:
        return f"/apis/{ISTIO_API}/namespaces/{self.namespace}/virtualservices/{self.virtualservice}"

    def _get_vs(self) -> dict:
        return self.connection.request(
            "GET",
            self._vs_path,
            verb="get",
            resource="virtualservices",
            name=self.virtualservice,
            namespace=self.namespace,
        )

    def _ours(self, destination: dict, subset: str) -> bool:
        host = destination.get("host") or ""
        return destination.get("subset") == subset and (host == self.host or host.startswith(self.host + "."))

    def _split(self, vs: dict) -> tuple[int, int]:
        """(stable, canary) weights of the first HTTP route that has our subsets."""
        for http in (vs.get("spec") or {}).get("http") or []:
            route = http.get("route") or []
            stable = canary = None
            for entry in route:
                destination = entry.get("destination") or {}
                # Istio: a single destination without a weight takes everything.
                weight = int(entry.get("weight", 100 if len(route) == 1 else 0))
                if self._ours(destination, self.stable_subset):
                    stable = (stable or 0) + weight
                elif self._ours(destination, self.canary_subset):
                    canary = (canary or 0) + weight
            if stable is not None or canary is not None:
                return stable or 0, canary or 0
        raise NotFound(
            f"virtualservice/{self.virtualservice} in namespace {self.namespace} has no route to the "
            f"{self.stable_subset}/{self.canary_subset} subsets of host {self.host}; check the "
            "VirtualService and the console config (host, subsets)."
        )

    def _aborted_http(self, vs: dict) -> list[dict]:
        """The VirtualService's HTTP routes with every canary weight moved to stable."""
        http = copy.deepcopy((vs.get("spec") or {}).get("http") or [])
        for entry in http:
            route = entry.get("route") or []
            canary = [d for d in route if self._ours(d.get("destination") or {}, self.canary_subset)]
            if not canary:
                continue
            stable = [d for d in route if self._ours(d.get("destination") or {}, self.stable_subset)]
            if not stable:
                raise PlatformError(
                    f"virtualservice/{self.virtualservice} has a route to the {self.canary_subset} subset "
                    f"without a {self.stable_subset} destination; the console cannot move its traffic "
                    "safely, edit the VirtualService by hand."
                )
            moved = sum(int(d.get("weight", 0)) for d in canary)
            for destination in canary:
                destination["weight"] = 0
            stable[0]["weight"] = int(stable[0].get("weight", 0)) + moved
        return http

    # --- the Platform protocol -------------------------------------------------

    def routing(self) -> Routing:
        """The current weights (stable, canary) and both deployments' replicas."""
        stable, canary = self._split(self._get_vs())
        return Routing(
            kind=PLATFORM,
            weights=((self.stable_subset, stable), (self.canary_subset, canary)),
            source=f"virtualservice/{self.virtualservice}",
            replicas=(
                (self.stable.deployment, self.stable.replicas()),
                (self.canary.deployment, self.canary.replicas()),
            ),
        )

    def history(self) -> list[Revision]:
        """The stable deployment's revisions, with the canary on top as the
        newest entry (current while it takes traffic). The records on the
        VirtualService and the stable deployment come with these reads: `recorded()`."""
        # `observe` reads the stable deployment and its ReplicaSets once, as `history` does, and keeps their records.
        _, stable = self.stable.observe()
        stable = stable or []
        canary_deployment = self.canary._get_deployment()
        vs = self._get_vs()
        weight = self._split(vs)[1]
        replicas = int((canary_deployment.get("spec") or {}).get("replicas", 1))
        template = (canary_deployment.get("spec") or {}).get("template") or {}
        running = next((r for r in self.canary.history() if r.current), None)
        top = max((r.number for r in stable), default=0) + 1
        canary = Revision(
            number=top,
            images=template_images(template),
            change_cause=(canary_deployment["metadata"].get("annotations") or {}).get(CHANGE_CAUSE_ANNOTATION),
            created=running.created if running else None,
            current=weight > 0 and replicas > 0,
            ref=f"canary (deployment/{self.canary.deployment}, {weight} % of traffic)",
        )
        on_stable = self.stable.recorded()
        found = from_annotations((vs.get("metadata") or {}).get("annotations"))
        self._recorded = found.merged(on_stable) if on_stable is not None else found
        return [canary, *stable]

    def health(self) -> Health:
        """Stable and canary pods together (both serve while the canary has weight)."""
        stable, canary = self.stable.health(), self.canary.health()
        return Health(
            desired=(stable.desired or 0) + (canary.desired or 0),
            ready=(stable.ready or 0) + (canary.ready or 0),
            updated=(stable.updated or 0) + (canary.updated or 0),
            available=(stable.available or 0) + (canary.available or 0),
            checked_at=self._clock.now(),
        )

    def plan_rollback(self, to_revision: int | None = None) -> RollbackPlan:
        """Abort the canary: stable 100 / canary 0, then the canary scaled to 0."""
        stable_history = self.stable.history()
        stable_current = next((r for r in stable_history if r.current), None)
        if to_revision and (stable_current is None or to_revision != stable_current.number):
            # What was asked does not fit a canary (aborted or not): a usage error, exit 2.
            raise Usage(
                f"A canary is rolled back by aborting it to the stable revision "
                f"({stable_current.number if stable_current else 'unknown'}); to roll the stable "
                f"deployment/{self.stable.deployment} back to revision {to_revision}, abort the canary "
                "first, then roll the stable deployment back with kubectl."
            )
        vs = self._get_vs()
        _, canary_weight = self._split(vs)
        canary_deployment = self.canary._get_deployment()
        canary_replicas = int((canary_deployment.get("spec") or {}).get("replicas", 1))
        resource_version = vs["metadata"].get("resourceVersion")
        base = dict(
            service=self.name,
            platform=PLATFORM,
            from_revision=max((r.number for r in stable_history), default=0) + 1,
            to_revision=stable_current.number if stable_current else None,
            from_images=template_images((canary_deployment.get("spec") or {}).get("template") or {}),
            to_images=stable_current.images if stable_current else (),
            resource_version=resource_version,
        )
        calls = []
        http = self._aborted_http(vs)
        if http != (vs.get("spec") or {}).get("http"):
            patch = {"metadata": {"resourceVersion": resource_version}, "spec": {"http": http}}
            calls.append(ApiCall("PATCH", self._vs_path, body=json.dumps(patch, indent=2)))
        if canary_replicas:
            calls.append(self.canary.scale_call(0, canary_replicas))
        if not calls:
            reason = (
                f"skipped abort (the canary of {self.name} already has weight 0 and 0 replicas)"
            )
            return RollbackPlan(**base, skip_reason=reason, summary=reason)
        scale = (f"then scale deployment/{self.canary.deployment} from {canary_replicas} to 0 replicas, as the "
                 f"runbook's `kubectl patch virtualservice` and `kubectl scale deployment {self.canary.deployment} "
                 "--replicas=0` would" if canary_replicas else
                 f"as the runbook's `kubectl patch virtualservice` would (deployment/{self.canary.deployment} "
                 "already has 0 replicas: nothing to scale)")
        summary = (
            f"Abort the canary of {self.name} in namespace {self.namespace} "
            f"({_versions(base['from_images'])}, {canary_weight} % of traffic) back to stable "
            f"({_versions(base['to_images'])}): set virtualservice/{self.virtualservice} to "
            f"{self.stable_subset} 100 / {self.canary_subset} 0 with a merge patch (refused if it changed "
            f"since resourceVersion {resource_version}), {scale}."
        )
        return RollbackPlan(**base, calls=tuple(calls), summary=summary)

    # --- provenance ------------------------------------------------------------

    def provenance(self) -> Provenance:
        """The console's records on the VirtualService, and what the stable
        deployment records (its undos, its own console records)."""
        vs = self._get_vs()
        return from_annotations((vs.get("metadata") or {}).get("annotations")).merged(self.stable.provenance())

    def recorded(self) -> Provenance | None:
        """The provenance read with the last `history()` (the refresh's, None
        before one): the VirtualService's records and the stable deployment's,
        from the reads the history made, at no extra request."""
        return self._recorded

    def with_record(self, plan: RollbackPlan, record: RollbackRecord, existing=()) -> RollbackPlan:
        """The plan whose VirtualService patch also writes `record` into its annotation
        (an abort that only scales the canary keeps no record on the object)."""
        calls = []
        for call in plan.calls:
            if call.target == self._vs_path:
                patch = json.loads(call.body)
                patch.setdefault("metadata", {}).setdefault("annotations", {})[ROLLBACKS_ANNOTATION] = \
                    encode(existing, record)
                call = ApiCall(call.method, call.target, body=json.dumps(patch, indent=2))
            calls.append(call)
        return replace(plan, calls=tuple(calls))

    def execute(self, plan: RollbackPlan, timeout: float = ROLLOUT_TIMEOUT) -> Iterator[Progress]:
        """Send the plan's patches in order, checking each took effect, then
        wait for the canary's pods to be gone."""
        if plan.platform != PLATFORM or plan.service != self.name:
            raise PlatformError(
                f"This plan is for {plan.platform} service {plan.service}, not for canary service "
                f"{self.name}; plan the rollback again."
            )
        if plan.skip_reason:
            yield Progress(message=plan.skip_reason, at=self._clock.now(), done=True)
            return
        if not plan.calls:
            raise PlatformError("This plan has nothing to apply; plan the rollback again.")
        deadline = self._clock.now() + timedelta(seconds=timeout)
        for call in plan.calls:
            if call.target == self._vs_path:
                yield self._set_weights(call, plan.resource_version)
            else:
                yield self._scale_canary(call)
        remaining = max((deadline - self._clock.now()).total_seconds(), 1.0)
        try:
            for step in self.canary.follow(remaining):
                if not step.done:
                    yield step
        except Timeout:
            try:
                selector = label_selector((self.canary._get_deployment().get("spec") or {}).get("selector"))
            except PlatformError:
                selector = ""
            raise Timeout(
                f"The canary of {self.name} gets no traffic now, but deployment/{self.canary.deployment} "
                f"still had pods after {timeout:g} s; check them with `kubectl get pods -n {self.namespace} -l "
                f"{selector or 'app=' + self.name}` before declaring the abort done."
            ) from None
        yield self._final_check()

    def _set_weights(self, call: ApiCall, resource_version: str | None) -> Progress:
        try:
            self.connection.request(
                "PATCH",
                call.target,
                verb="patch",
                resource="virtualservices",
                name=self.virtualservice,
                namespace=self.namespace,
                body=json.loads(call.body),
                content_type=MERGE_PATCH,
            )
        except Conflict:
            now = self._get_vs()["metadata"].get("resourceVersion")
            raise Conflict(
                f"virtualservice/{self.virtualservice} changed since you looked (resourceVersion "
                f"{resource_version} → {now}); review the new weights and try again"
            ) from None
        stable, canary = self._split(self._get_vs())
        if canary != 0:
            raise PlatformError(
                f"virtualservice/{self.virtualservice} was patched but still sends {canary} % to the "
                f"canary (read back: {self.stable_subset} {stable} / {self.canary_subset} {canary}); an "
                "admission webhook or controller may have changed it, set the weights by hand now."
            )
        return Progress(
            message=(
                f"virtualservice.networking.istio.io/{self.virtualservice} patched: "
                f"{self.stable_subset} {stable} / {self.canary_subset} {canary}"
            ),
            at=self._clock.now(),
        )

    def _scale_canary(self, call: ApiCall) -> Progress:
        before = json.loads(call.body)[0]["value"]
        try:
            self.connection.request(
                "PATCH",
                call.target,
                verb="scale",
                resource="deployments",
                name=self.canary.deployment,
                namespace=self.namespace,
                body=json.loads(call.body),
                content_type=JSON_PATCH,
            )
        except PlatformError as err:
            if type(err) in (PlatformError, Conflict):  # a failed `test`: the count moved
                now = self.canary.replicas()
                if now != before:
                    raise Conflict(
                        f"deployment/{self.canary.deployment} was scaled from {before} to {now} replicas "
                        "since you looked; the canary gets no traffic, review it and abort again."
                    ) from None
            raise
        return Progress(
            message=f"deployment.apps/{self.canary.deployment} scaled to 0",
            at=self._clock.now(),
            desired=0,
        )

    def _final_check(self) -> Progress:
        stable, canary = self._split(self._get_vs())
        deployment = self.canary._get_deployment()
        replicas = int((deployment.get("spec") or {}).get("replicas", 1))
        running = int((deployment.get("status") or {}).get("replicas") or 0)
        ok = canary == 0 and replicas == 0 and running == 0
        if ok:
            message = (
                f"Canary aborted: virtualservice/{self.virtualservice} routes {self.stable_subset} {stable} / "
                f"{self.canary_subset} {canary}, deployment/{self.canary.deployment} has 0 pods"
            )
        else:
            message = (
                f"Canary abort not complete: virtualservice/{self.virtualservice} routes "
                f"{self.stable_subset} {stable} / {self.canary_subset} {canary} and "
                f"deployment/{self.canary.deployment} wants {replicas} and has {running} pods; "
                "fix it by hand with the runbook's commands."
            )
        return Progress(message=message, at=self._clock.now(), done=True, failed=not ok, desired=0)

    def verify(self) -> Health:
        """The stable deployment's pods (all the traffic goes there after an abort)."""
        return self.stable.verify()

    # --- the runbook's step 4, freezing writes, the lease ---------------------

    def pods(self) -> tuple[PodInfo, ...]:
        """Stable and canary pods (`kubectl get pods -l app=SERVICE`)."""
        return self.stable.pods() + self.canary.pods()

    def logs(self, tail: int = 50) -> tuple[PodLogs, ...]:
        """The last lines of the stable and canary pods."""
        return self.stable.logs(tail) + self.canary.logs(tail)

    def template(self, revision: int | None = None) -> dict:
        """The pod template of `revision` as `history()` numbers it: the top
        number is the canary deployment's, the others the stable's revisions;
        None is what serves now (the canary while it is current)."""
        history = self.history()
        top = history[0]
        if revision is None:
            revision = top.number if top.current else next((r.number for r in history[1:] if r.current), None)
        if revision == top.number:
            return self.canary.template()
        return self.stable.template(revision)

    def replicas(self) -> int:
        """The stable deployment's desired replica count."""
        return self.stable.replicas()

    def scale_call(self, replicas: int, current: int) -> ApiCall:
        """The request `scale` makes on the stable deployment (scaling to 0
        also scales the canary to 0 with the same kind of request)."""
        return self.stable.scale_call(replicas, current)

    def scale(self, replicas: int) -> int:
        """Scale the stable deployment; scaling to 0 (freezing writes) takes the
        canary to 0 as well, since its pods write too. Returns the stable
        deployment's replaced count (what resuming restores; the canary stays
        at 0, as after an abort)."""
        before = self.stable.scale(replicas)
        if replicas == 0 and self.canary.replicas():
            self.canary.scale(0)
        return before

    def rollback_lease(self, holder: str, ttl: float | None = None):
        """The lease that lets one console at a time change this service."""
        return self.stable.rollback_lease(holder, ttl)


def _versions(images: tuple[str, ...]) -> str:
    return ", ".join(image_tag(i) for i in images) or "no images"


# A wrong-shaped answer is a sentence naming the API, never a traceback.
from console.platforms.base import shape_checked as _shape_checked  # noqa: E402

for _method in ('routing', 'history', 'health', 'plan_rollback', 'execute', 'verify', 'pods', 'logs', 'template', 'replicas', 'scale'):
    setattr(CanaryPlatform, _method, _shape_checked("Kubernetes API", getattr(CanaryPlatform, _method)))
del _method
