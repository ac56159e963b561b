"""Blue-green services: two Deployments (one per colour) behind one Service
whose selector picks the live colour. The runbook's procedure:

    kubectl get service $SERVICE -o jsonpath='{.spec.selector.version}'
    kubectl patch service $SERVICE -p '{"spec":{"selector":{"version":"blue"}}}'
    kubectl get endpoints $SERVICE

The console does the same patch (strategic merge, as kubectl's default, with
the Service's resourceVersion as a precondition), but refuses to switch to a
colour with no ready pods, and after the switch checks that the endpoints are
non-empty and are the target colour's pods; if they are not, it switches back
at once and says so.

A blue-green service's revisions are its colours, each numbered as its own
Deployment numbers it (the `deployment.kubernetes.io/revision` annotation that
`kubectl rollout history deployment/checkout-blue` shows), so "blue · revision 3"
in the console is revision 3 in kubectl. `plan_rollback()` without a number
switches to the other colour; with a number it switches to the colour whose
Deployment carries it, and refuses a number both colours carry (naming them and
the colour form to type); with a colour (`ColourRevision`: `--to-revision blue`
or `blue:3`) it switches to that colour, refusing a number the colour's
Deployment does not carry now (a switch cannot bring back an older revision).
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from datetime import timedelta
from typing import Iterator

from console.clock import Clock, SystemClock
from console.model import ApiCall, ColourRevision, Health, Progress, Revision, RollbackPlan, image_tag, revision_label
from console.platforms.base import ROLLOUT_TIMEOUT, Conflict, NotFound, PlatformError, PodInfo, PodLogs, Routing, Usage
from console.provenance import (
    FIELD_MANAGER,
    MANAGED_FIELDS,
    ROLLBACKS_ANNOTATION,
    Provenance,
    RollbackRecord,
    encode,
    field_owner,
    from_annotations,
)
from console.platforms.kubernetes import (
    API_TIMEOUT,
    parse_time,
    POLL_INTERVAL_SECONDS,
    KubeConnection,
    KubernetesPlatform,
    revision_of,
    template_images,
)

PLATFORM = "blue-green"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
VERIFY_SECONDS = 30.0
"""How long (platform clock seconds) the endpoints may take to follow a switch before it is undone."""
DEFAULT_COLOURS = ("blue", "green")


class BlueGreenPlatform:
    """One blue-green service: the Service's selector picks the live colour."""

    platform = PLATFORM

    def __init__(
        self,
        service: str,
        namespace: str,
        service_object: str | None = None,
        colours: dict[str, str] | None = None,
        selector_key: str = "version",
        kubeconfig: str | None = None,
        context: str | None = None,
        timeout: float = API_TIMEOUT,
        clock: Clock | None = None,
        connection: KubeConnection | None = None,
        verify_seconds: float = VERIFY_SECONDS,
    ) -> None:
        self.name = service
        self.namespace = namespace
        self.k8s_service = service_object or service
        self.colours: dict[str, str] = dict(colours or {c: f"{service}-{c}" for c in DEFAULT_COLOURS})
        if len(self.colours) < 2:
            raise PlatformError(f"blue-green service {service} needs at least two colours in the config.")
        self.selector_key = selector_key
        self.connection = connection or KubeConnection(kubeconfig, context, timeout)
        self.verify_seconds = verify_seconds
        self._clock: Clock = clock or SystemClock()
        self._recorded: Provenance | None = None
        self._decks = {
            colour: KubernetesPlatform(service, namespace, deployment, clock=self._clock, connection=self.connection)
            for colour, deployment in self.colours.items()
        }

    # --- reading -------------------------------------------------------------

    @property
    def _service_path(self) -> str:
        return f"/api/v1/namespaces/{self.namespace}/services/{self.k8s_service}"

    def _get_service(self) -> dict:
        return self.connection.request(
            "GET", self._service_path, verb="get", resource="services", name=self.k8s_service, namespace=self.namespace
        )

    def _selector(self, service: dict) -> dict[str, str]:
        return dict((service.get("spec") or {}).get("selector") or {})

    def _live(self, service: dict) -> str | None:
        """The colour the Service selects, None if it selects none of the configured ones."""
        colour = self._selector(service).get(self.selector_key)
        return colour if colour in self.colours else None

    def _number(self, colour: str | None) -> int | None:
        """The revision number colour's Deployment carries (its deployment.kubernetes.io/revision)."""
        return revision_of(self._deployment(colour)) if colour in self.colours else None

    def _colour(self, number: int) -> str:
        """The colour whose Deployment carries revision `number`: NotFound if none does,
        Usage (exit 2) if more than one does (the number alone does not say which)."""
        numbers = {colour: self._number(colour) for colour in self.colours}
        matching = [colour for colour, n in numbers.items() if n == number]
        listed = self._listed()
        if not matching:
            raise NotFound(f"{self.name} has no revision {number}; its colours are {listed}.")
        if len(matching) > 1:
            forms = " or ".join(f"--to-revision {ColourRevision(c, number)}" for c in matching)
            raise Usage(
                f"{self.name}: revision {number} is ambiguous: both {' and '.join(matching)} carry it "
                f"({listed}; each colour's Deployment numbers its own revisions). Choose the colour: {forms}; "
                f"or roll back without a revision number to switch to the other colour than the live one."
            )
        return matching[0]

    def _listed(self) -> str:
        return ", ".join(f"{c} = revision {n if n is not None else '?'}"
                         for c, n in ((c, self._number(c)) for c in self.colours))

    def _named_colour(self, wanted: ColourRevision) -> str:
        """The colour `wanted` names (`blue` or `blue:3`): Usage (exit 2) if the
        service has no such colour, or if the colour's Deployment does not carry
        the number now (the switch serves a colour as its Deployment is now)."""
        if wanted.colour not in self.colours:
            raise Usage(
                f"{self.name} has no colour {wanted.colour}; its colours are {self._listed()}. Type "
                f"--to-revision with one of them ({', '.join(self.colours)}), alone or with its number."
            )
        number = self._number(wanted.colour)
        if wanted.number is not None and number != wanted.number:
            now = revision_label(number, wanted.colour)
            raise Usage(
                f"{self.name}: {wanted.colour}'s Deployment is at revision {number if number is not None else '?'}, "
                f"not {wanted.number} ({self._listed()}). A blue-green rollback switches the traffic to a colour "
                f"as its Deployment is now; it cannot bring back an older revision of one colour. Type "
                f"--to-revision {ColourRevision(wanted.colour, number) if number is not None else wanted.colour} "
                f"to switch to {now}, or roll that colour's Deployment back first "
                f"(`kubectl rollout undo deployment/{self.colours[wanted.colour]} --to-revision={wanted.number}`)."
            )
        return wanted.colour

    def _colour_pods(self, service: dict, colour: str) -> list[dict]:
        """The pods the Service would select with `colour` live (not terminating)."""
        selector = {**self._selector(service), self.selector_key: colour}
        listing = self.connection.request(
            "GET",
            f"/api/v1/namespaces/{self.namespace}/pods",
            verb="list",
            resource="pods",
            namespace=self.namespace,
            query=[("labelSelector", ",".join(f"{k}={v}" for k, v in sorted(selector.items())))],
        )
        return [p for p in listing.get("items") or [] if not p["metadata"].get("deletionTimestamp")]

    def _endpoint_ips(self) -> list[str]:
        """The ready addresses of the Service's Endpoints (`kubectl get endpoints`)."""
        try:
            endpoints = self.connection.request(
                "GET",
                f"/api/v1/namespaces/{self.namespace}/endpoints/{self.k8s_service}",
                verb="get",
                resource="endpoints",
                name=self.k8s_service,
                namespace=self.namespace,
            )
        except NotFound:
            return []
        return sorted(
            address.get("ip", "")
            for subset in endpoints.get("subsets") or []
            for address in subset.get("addresses") or []
        )

    def _deployment(self, colour: str) -> dict:
        return self._decks[colour]._get_deployment()

    def active_colour(self) -> str | None:
        """The live colour (`kubectl get service -o jsonpath='{.spec.selector.version}'`)."""
        return self._live(self._get_service())

    # --- the Platform protocol -----------------------------------------------

    def routing(self) -> Routing:
        """The live colour and each colour's share (100 for the live one) and replicas."""
        service = self._get_service()
        live = self._live(service)
        replicas = tuple(
            (deployment, int((self._deployment(colour).get("spec") or {}).get("replicas", 1)))
            for colour, deployment in self.colours.items()
        )
        return Routing(
            kind=PLATFORM,
            weights=tuple((colour, 100 if colour == live else 0) for colour in self.colours),
            active=live,
            source=f"service/{self.k8s_service}",
            replicas=replicas,
        )

    def history(self) -> list[Revision]:
        """One entry per colour: what its deployment runs, the live one current."""
        service = self._get_service()
        live = self._live(service)
        revisions = []
        for colour, deployment in self.colours.items():
            running = next((r for r in self._decks[colour].history() if r.current), None)
            number = revision_of(self._deployment(colour))
            revisions.append(
                Revision(
                    number=number if number is not None else (running.number if running else 0),
                    images=running.images if running else template_images(
                        (self._deployment(colour).get("spec") or {}).get("template") or {}
                    ),
                    change_cause=running.change_cause if running else None,
                    created=running.created if running else None,
                    current=colour == live,
                    ref=f"{colour} (deployment/{deployment})",
                    colour=colour,
                )
            )
        by_colour = list(revisions)
        revisions.sort(key=lambda r: (r.created is not None, r.created), reverse=True)
        # Who switched the traffic, from the objects just read: the refresh shows it in every console's timeline.
        versions = {colour: revision.versions for colour, revision in zip(self.colours, by_colour)}
        self._recorded = self._provenance_of(service, lambda colour: versions.get(colour, ()))
        return revisions

    def health(self) -> Health:
        """The live colour's pod counts."""
        live = self._live(self._get_service())
        if live is None:
            return Health(error=self._unknown_live(self._get_service()))
        return self._decks[live].health()

    def _unknown_live(self, service: dict) -> str:
        value = self._selector(service).get(self.selector_key)
        shown = f"{self.selector_key}={value}" if value else f"no {self.selector_key} label"
        return (
            f"service/{self.k8s_service} selects {shown}, which is none of the configured colours "
            f"({', '.join(self.colours)}); check the Service and the console config."
        )

    def plan_rollback(self, to_revision: int | ColourRevision | None = None) -> RollbackPlan:
        """Switch to the other colour (or to the colour `to_revision` names: a
        `ColourRevision`, or a number one colour's Deployment carries): the
        runbook's `kubectl patch service`, refused if the target has no ready pods."""
        service = self._get_service()
        live = self._live(service)
        if isinstance(to_revision, ColourRevision):
            target = self._named_colour(to_revision)
        elif to_revision:
            target = self._colour(to_revision)
        else:
            others = [c for c in self.colours if c != live]
            if live is None or len(others) != 1:
                if live is None:
                    raise PlatformError(self._unknown_live(service) + " Choose the colour to switch to.")
                raise PlatformError(
                    f"{self.name} has {len(self.colours)} colours; choose the one to switch to "
                    f"({', '.join(others)})."
                )
            target = others[0]
        resource_version = service["metadata"].get("resourceVersion")
        base = dict(
            service=self.name,
            platform=PLATFORM,
            from_revision=self._number(live),
            to_revision=self._number(target),
            from_images=self._images(live),
            to_images=self._images(target),
            resource_version=resource_version,
            from_colour=live,
            to_colour=target,
        )
        if target == live:
            reason = f"skipped switch (service/{self.k8s_service} already sends traffic to {target})"
            return RollbackPlan(**base, skip_reason=reason, summary=reason)
        self._refuse_unready(service, target)
        patch = {
            "metadata": {"resourceVersion": resource_version},
            "spec": {"selector": {self.selector_key: target}},
        }
        summary = (
            f"{_label(live, base['from_revision'])} → {_label(target, base['to_revision'])}: "
            f"Switch service/{self.k8s_service} in namespace {self.namespace} from {live or 'none'} "
            f"({_versions(base['from_images'])}) to {target} ({_versions(base['to_images'])}), as "
            f"`kubectl patch service {self.k8s_service} -p "
            f"'{{\"spec\":{{\"selector\":{{\"{self.selector_key}\":\"{target}\"}}}}}}'` would, refused if the "
            f"Service changed since resourceVersion {resource_version}; then check that the endpoints "
            f"are {target}'s pods, switching back at once if they are not."
        )
        return RollbackPlan(
            **base,
            calls=(ApiCall("PATCH", self._service_path, body=json.dumps(patch, indent=2)),),
            summary=summary,
        )

    # --- provenance: who switched the traffic, and from what ------------------

    def provenance(self) -> Provenance:
        """The console's records on the Service, and the last switch made by
        anyone else: the manager of the selector's colour in the Service's
        managedFields (a person's `kubectl patch` shows as `kubectl-patch`),
        from the other colour to the live one, at that entry's time."""
        return self._provenance_of(self._get_service(), self._tags)

    def recorded(self) -> Provenance | None:
        """The provenance read with the last `history()` (None before one): the refresh's, at no extra request."""
        return self._recorded

    def _provenance_of(self, service: dict, tags) -> Provenance:
        """`provenance` from the Service already read; `tags(colour)` gives a colour's versions."""
        metadata = service.get("metadata") or {}
        found = from_annotations(metadata.get("annotations"))
        live = self._live(service)
        owner = field_owner(metadata.get("managedFields"), "spec", "selector", self.selector_key)
        others = [c for c in self.colours if c != live]
        if owner is None or live is None or len(others) != 1:
            return found
        manager, at = owner
        created = parse_time(metadata.get("creationTimestamp"))
        if manager == FIELD_MANAGER or at is None or (created is not None and at <= created):
            return found  # ours (recorded with who and why), or the selector the Service was created with
        switch = RollbackRecord(manager, tags(others[0]), tags(live), at,
                                f"service/{self.k8s_service} selector set to {self.selector_key}={live}",
                                source=MANAGED_FIELDS)
        return found.merged(Provenance((switch,)))

    def with_record(self, plan: RollbackPlan, record: RollbackRecord, existing=()) -> RollbackPlan:
        """The plan whose selector patch also writes `record` into the Service's annotation."""
        if plan.skip_reason or len(plan.calls) != 1:
            return plan
        patch = json.loads(plan.calls[0].body)
        patch.setdefault("metadata", {}).setdefault("annotations", {})[ROLLBACKS_ANNOTATION] = encode(existing, record)
        call = plan.calls[0]
        return replace(plan, calls=(ApiCall(call.method, call.target, body=json.dumps(patch, indent=2)),))

    def _tags(self, colour: str) -> tuple[str, ...]:
        return tuple(image_tag(i) for i in self._images(colour))

    def _images(self, colour: str | None) -> tuple[str, ...]:
        if colour is None:
            return ()
        return template_images((self._deployment(colour).get("spec") or {}).get("template") or {})

    def _refuse_unready(self, service: dict, target: str) -> list[dict]:
        """The target colour's ready pods; Conflict if there are none."""
        pods = self._colour_pods(service, target)
        ready = [p for p in pods if _pod_ready(p)]
        if not ready:
            deployment = self.colours[target]
            raise Conflict(
                f"Refusing to switch {self.name} to {target}: it has no ready pods ({len(pods)} pods, 0 "
                f"ready), so the switch would leave the service without endpoints. Scale up or fix "
                f"deployment/{deployment} (`kubectl get pods -l {self.selector_key}={target}`) and try again."
            )
        return ready

    def execute(self, plan: RollbackPlan, timeout: float = ROLLOUT_TIMEOUT) -> Iterator[Progress]:
        """Patch the Service's selector, then verify the endpoints are the target
        colour's pods; if they are not within the verify window, switch back."""
        if plan.platform != PLATFORM or plan.service != self.name:
            raise PlatformError(
                f"This plan is for {plan.platform} service {plan.service}, not for blue-green service "
                f"{self.name}; plan the rollback again."
            )
        if plan.skip_reason:
            yield Progress(message=plan.skip_reason, at=self._clock.now(), done=True)
            return
        if len(plan.calls) != 1 or plan.to_revision is None:
            raise PlatformError("This plan has no switch to apply; plan the rollback again.")
        # The colour the plan's patch selects: the revision number alone may be both colours'.
        target = (json.loads(plan.calls[0].body).get("spec") or {}).get("selector", {}).get(self.selector_key)
        if target not in self.colours:
            raise PlatformError("This plan switches to no configured colour; plan the rollback again.")
        if self._number(target) != plan.to_revision:
            raise Conflict(
                f"deployment/{self.colours[target]} changed since you looked (revision {plan.to_revision} → "
                f"{self._number(target)}); review the new state and try again"
            )
        service = self._get_service()
        previous = self._live(service)
        if service["metadata"].get("resourceVersion") != plan.resource_version:
            raise Conflict(
                f"service/{self.k8s_service} changed since you looked (resourceVersion "
                f"{plan.resource_version} → {service['metadata'].get('resourceVersion')}); review the new "
                "state and try again"
            )
        self._refuse_unready(service, target)  # again: pods may have gone since the plan
        switched = self._patch_selector(json.loads(plan.calls[0].body), plan.resource_version)
        desired = int((self._deployment(target).get("spec") or {}).get("replicas", 1))
        yield Progress(
            message=f"service/{self.k8s_service} patched: traffic switched from {previous or 'none'} to {target}",
            at=self._clock.now(),
            desired=desired,
        )
        deadline = self._clock.now() + timedelta(seconds=min(timeout, self.verify_seconds))
        seen: list[str] = []
        while True:
            ips = self._endpoint_ips()
            target_ips = {p["status"].get("podIP") for p in self._colour_pods(switched, target) if _pod_ready(p)}
            seen = ips
            if ips and set(ips) <= target_ips:
                yield Progress(
                    message=(
                        f"service/{self.k8s_service} now routes to {target}: {len(ips)} ready endpoints, "
                        f"all {target} pods ({', '.join(ips)})"
                    ),
                    at=self._clock.now(),
                    done=True,
                    ready=len(ips),
                    updated=len(target_ips),
                    desired=desired,
                )
                return
            if self._clock.now() >= deadline:
                break
            time.sleep(POLL_INTERVAL_SECONDS)
        yield self._switch_back(switched, previous, target, seen, desired)

    def _patch_selector(self, patch: dict, resource_version: str | None) -> dict:
        try:
            return self.connection.request(
                "PATCH",
                self._service_path,
                verb="patch",
                resource="services",
                name=self.k8s_service,
                namespace=self.namespace,
                body=patch,
                content_type=STRATEGIC_MERGE_PATCH,
            )
        except Conflict:
            now = self._get_service()["metadata"].get("resourceVersion")
            raise Conflict(
                f"service/{self.k8s_service} changed since you looked (resourceVersion {resource_version} → "
                f"{now}); review the new state and try again"
            ) from None

    def _switch_back(
        self, switched: dict, previous: str | None, target: str, seen: list[str], desired: int
    ) -> Progress:
        found = ", ".join(seen) if seen else "none"
        why = (
            f"the endpoints of service/{self.k8s_service} were not {target}'s ready pods within "
            f"{self.verify_seconds:g} s (ready endpoints: {found})"
        )
        if previous is None:
            return Progress(
                message=f"Switch to {target} failed: {why}; there is no previous colour to switch back to, "
                "check the Service and the pods now.",
                at=self._clock.now(),
                done=True,
                failed=True,
                desired=desired,
            )
        patch = {
            "metadata": {"resourceVersion": switched["metadata"].get("resourceVersion")},
            "spec": {"selector": {self.selector_key: previous}},
        }
        try:
            self._patch_selector(patch, switched["metadata"].get("resourceVersion"))
        except PlatformError as err:
            raise PlatformError(
                f"Switch to {target} failed ({why}) and switching back to {previous} failed too: {err} "
                f"Switch back by hand now: kubectl patch service {self.k8s_service} -p "
                f"'{{\"spec\":{{\"selector\":{{\"{self.selector_key}\":\"{previous}\"}}}}}}'"
            ) from None
        return Progress(
            message=f"Switch to {target} failed: {why}; switched traffic back to {previous} at once. "
            f"Check {target}'s pods before trying again.",
            at=self._clock.now(),
            done=True,
            failed=True,
            desired=desired,
        )

    def verify(self) -> Health:
        """The live colour's endpoints: ready endpoints that are its pods,
        against its deployment's desired replicas."""
        service = self._get_service()
        live = self._live(service)
        if live is None:
            return Health(error=self._unknown_live(service), checked_at=self._clock.now())
        pods = self._colour_pods(service, live)
        live_ips = {p["status"].get("podIP") for p in pods}
        endpoints = [ip for ip in self._endpoint_ips() if ip in live_ips]
        deployment = self._deployment(live)
        return Health(
            desired=int((deployment.get("spec") or {}).get("replicas", 1)),
            ready=len(endpoints),
            updated=len(pods),
            available=(deployment.get("status") or {}).get("availableReplicas") or 0,
            checked_at=self._clock.now(),
        )

    # --- the runbook's step 4, freezing writes, the lease ---------------------

    def _live_deck(self) -> KubernetesPlatform:
        service = self._get_service()
        live = self._live(service)
        if live is None:
            raise PlatformError(self._unknown_live(service))
        return self._decks[live]

    def pods(self) -> tuple[PodInfo, ...]:
        """The live colour's pods."""
        return self._live_deck().pods()

    def logs(self, tail: int = 50) -> tuple[PodLogs, ...]:
        """The last lines of the live colour's pods."""
        return self._live_deck().logs(tail)

    def template(self, revision: int | None = None) -> dict:
        """The pod template of the colour whose Deployment carries revision `revision` (the live colour's when None)."""
        if revision is None:
            return self._live_deck().template()
        return self._decks[self._colour(revision)].template()

    def colour_template(self, colour: str) -> dict:
        """The pod template `colour`'s Deployment runs (a number may be both colours')."""
        if colour not in self.colours:
            raise NotFound(f"{self.name} has no colour {colour}; its colours are {', '.join(self.colours)}.")
        return self._decks[colour].template()

    def replicas(self) -> int:
        """The live colour's desired replica count."""
        return self._live_deck().replicas()

    def scale_call(self, replicas: int, current: int) -> ApiCall:
        """The request `scale` makes on the live colour's deployment."""
        return self._live_deck().scale_call(replicas, current)

    def scale(self, replicas: int) -> int:
        """Scale the live colour's deployment (the one taking writes); returns the count it replaced."""
        return self._live_deck().scale(replicas)

    def rollback_lease(self, holder: str, ttl: float | None = None):
        """The lease that lets one console at a time switch this service."""
        return self._decks[next(iter(self.colours))].rollback_lease(holder, ttl)


def _label(colour: str | None, number: int | None) -> str:
    """"blue · revision 3" (`revision_label`), or "no colour" when the Service selects none."""
    return revision_label(number, colour) if colour is not None else "no colour"


def _versions(images: tuple[str, ...]) -> str:
    return ", ".join(image_tag(i) for i in images) or "no images"


def _pod_ready(pod: dict) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


# A wrong-shaped answer is a sentence naming the API, never a traceback.
from console.platforms.base import shape_checked as _shape_checked  # noqa: E402

for _method in ('routing', 'history', 'health', 'plan_rollback', 'execute', 'verify', 'pods', 'logs', 'template', 'colour_template', 'replicas', 'scale'):
    setattr(BlueGreenPlatform, _method, _shape_checked("Kubernetes API", getattr(BlueGreenPlatform, _method)))
del _method
