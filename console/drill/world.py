"""The drill world: a simulated cluster and its traffic, driven by a scenario.

`World` owns a clock (a ScaledClock whose speed factor lets drills and tests
run faster than real time), the object store the Kubernetes REST layer serves,
and level-triggered controllers that `advance()` runs up to the clock's now:

- the deployment controller (ReplicaSets per pod template, revisions, rolling
  updates, status and conditions) and the ReplicaSet controller (pods), both
  following the Kubernetes controllers' algorithms, because `kubectl rollout`
  and the console read exactly those fields;
- a kubelet stand-in that moves pods through ContainerCreating, Running,
  Ready, or CrashLoopBackOff / ImagePullBackOff as simulated time passes;
- the endpoints controller;
- a traffic model: what each service's users see (error rate, p95 latency,
  request rate, per-route errors, health endpoint) follows from the versions
  actually serving: ready pods behind the Service, or the Istio weights;
- Prometheus samples every 15 simulated seconds, prefilled from 30 minutes
  before the drill starts by simulating the scenario's history.

Simulation is event-driven: `advance()` steps from one moment where something
changes (a pod becoming ready, a crash, a timeline event, a progress deadline)
to the next, so the result depends only on the scenario, its seed and the
writes made and when, never on how often `advance()` is called.
"""

from __future__ import annotations

import bisect
import copy
import hashlib
import itertools
import json
import math
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from console.clock import Clock, ScaledClock
from console.drill.objects import (
    POD_TEMPLATE_HASH_LABEL,
    NotFound,
    ObjectStore,
    canonical_template,
    clone,
    format_timestamp,
    parse_timestamp,
)
from console.drill.ecs import EcsWorld
from console.drill.gitops import GitOpsControllers
from console.drill.scenario import Behaviour, Scenario, Service

SAMPLE_INTERVAL = 15.0
"""Seconds between Prometheus samples (a typical scrape interval)."""
PREFILL = timedelta(minutes=30)
"""How much metric history exists when the drill starts."""
RETAINED_SAMPLES = 4 * 60 * 12
"""Samples kept per service (12 simulated hours); older ones are dropped."""
POD_START_SECONDS = 2.0
"""From pod creation to a running container (image pulled, container created)."""
CRASH_AFTER_SECONDS = 5.0
"""How long a crash-looping container runs before it exits."""
BACKOFF_START, BACKOFF_MAX = 10.0, 300.0
"""The kubelet's CrashLoopBackOff delays: 10 s doubling up to 5 minutes."""
LOG_INTERVAL = 2.0
"""Simulated seconds between two request log lines of one pod."""
MAX_LOG_LINES = 1000
"""Log lines returned when no tail is asked for (the newest ones)."""
BLUE_GREEN_PREPARE = timedelta(minutes=5)
"""History: an environment (or canary) gets its pods this long before traffic moves to it."""
LATENCY_SIGMA = 0.5
"""Shape of the simulated latency distribution (log-normal)."""
HISTOGRAM_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
NODES = (("drill-node-1", "10.1.0.11"), ("drill-node-2", "10.1.0.12"), ("drill-node-3", "10.1.0.13"))
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_REVISION = "deployment.kubernetes.io/revision"
_REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
_DESIRED = "deployment.kubernetes.io/desired-replicas"
_MAX = "deployment.kubernetes.io/max-replicas"
_CHANGE_CAUSE = "kubernetes.io/change-cause"
# Deployment annotations the controller does not copy onto ReplicaSets.
_SKIP_ANNOTATIONS = {
    "kubectl.kubernetes.io/last-applied-configuration",
    _REVISION,
    _REVISION_HISTORY,
    _DESIRED,
    _MAX,
    "deprecated.deployment.rollback.to",
}
_CANARY_TRACKS = ("stable", "canary")


def _hash(*parts: Any) -> int:
    digest = hashlib.blake2b("\x1f".join(str(p) for p in parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def _unit(*parts: Any) -> float:
    """A deterministic number in [0, 1) from the parts."""
    return _hash(*parts) / 2**64


def _safe_encode(text: str) -> str:
    return "".join(_NAME_ALPHABET[ord(c) % len(_NAME_ALPHABET)] for c in text)


def pod_template_hash(template: dict) -> str:
    """The pod-template-hash label value: FNV-1a of the canonical template,
    encoded with the alphabet Kubernetes uses for generated names."""
    data = json.dumps(canonical_template(template), sort_keys=True, separators=(",", ":")).encode()
    value = 0x811C9DC5
    for byte in data:
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return _safe_encode(str(value))


def _tag(image: str) -> tuple[str, str]:
    """(repository, tag) of an image reference."""
    name = image.rsplit("/", 1)[-1]
    if "@" in image:
        return image.split("@", 1)[0], image.split("@", 1)[1]
    if ":" in name:
        repo, tag = image.rsplit(":", 1)
        return repo, tag
    return image, "latest"


def _resolve_int_or_percent(value: Any, total: int, round_up: bool) -> int:
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if text.endswith("%"):
        fraction = float(text[:-1]) / 100 * total
        return math.ceil(fraction - 1e-9) if round_up else math.floor(fraction + 1e-9)
    return int(text)


def _controller_uid(obj: dict) -> str | None:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return ref.get("uid")
    return None


def _revision(rs: dict) -> int:
    try:
        return int(((rs.get("metadata") or {}).get("annotations") or {}).get(_REVISION, "0"))
    except ValueError:
        return 0


def _selector_matches(selector: dict | None, labels: dict | None) -> bool:
    """A Service's plain map selector; an empty or missing one selects nothing here."""
    if not selector:
        return False
    labels = labels or {}
    return all(labels.get(k) == v for k, v in selector.items())


def _normal_cdf(z: float) -> float:
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


_Z95 = 1.6448536269514722


@dataclass(frozen=True)
class Sample:
    """What Prometheus would hold for one service at one scrape."""

    at: datetime
    error_rate: float
    # None when nothing serves (no successful requests to time).
    latency_p95_s: float | None
    request_rate: float
    route_error_rates: tuple[tuple[str, float], ...]
    down: bool
    # (median seconds, share) of the serving versions' latency distributions.
    latency_parts: tuple[tuple[float, float], ...] = ()


@dataclass
class _Counters:
    """Monotonic totals behind /metrics, integrated from the samples."""

    requests: dict[tuple[str, str], float] = field(default_factory=dict)  # (route, status) -> count
    buckets: list[float] = field(default_factory=lambda: [0.0] * len(HISTOGRAM_BUCKETS))
    count: float = 0.0
    total_seconds: float = 0.0


@dataclass(frozen=True)
class _Mix:
    """Who serves a service's traffic: (version or None for "no upstream", share)."""

    parts: tuple[tuple[str | None, float], ...]

    @property
    def down(self) -> bool:
        return all(version is None for version, _ in self.parts)


@dataclass(frozen=True)
class _PodTimes:
    """A pod's simulated lifecycle: what happens when, from its creation."""

    born: datetime
    behaviour: Behaviour | None  # None: the image cannot be pulled
    service: Service | None
    version: str


class World:
    """A simulated cluster, its services' traffic and a metrics history.

    Thread-safe: every public method takes `store.lock`.
    """

    def __init__(
        self,
        scenario: Scenario,
        *,
        speed: float = 1.0,
        start: datetime | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.scenario = scenario
        if start is None:
            start = scenario.start or (clock.now() if clock is not None else datetime.now(timezone.utc).replace(microsecond=0))
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        self.start = start
        self.clock: Clock = clock or ScaledClock(start, speed)
        self._stepping = False
        uids = itertools.count()
        self.store = ObjectStore(
            self._store_now,
            random_bits=lambda: _hash(scenario.seed, "uid", next(uids)) << 64 | _hash(scenario.seed, "uid-low", next(uids)),
        )
        self.facts: dict[str, Any] = scenario.facts.model_dump()
        self.notes: list[tuple[datetime, str]] = []
        # Trainer controls applied (console.drill.control), and the speed to resume at while paused.
        self.trainer_log: list[tuple[datetime, str]] = []
        self.paused_speed: float | None = None
        # Why simulated time may not be paused or sped up (None: it may).
        self.time_locked: str | None = None
        self.outages: dict[str, Any] = {}
        # Every outage window per service, [start, end) (end None while it lasts):
        # what a sample or a log line stamped at some time saw then.
        self._outage_spans: dict[str, list[list[Any]]] = {}
        self._by_image = {svc.image: svc for svc in scenario.services}
        self._known = {svc.name: scenario.known_versions(svc) for svc in scenario.services}
        self._pod_born: dict[tuple[str, str], datetime] = {}
        self._name_counter = 0
        self._used_ips: set[str] = set()
        self._samples: dict[str, deque[Sample]] = {
            svc.name: deque(maxlen=RETAINED_SAMPLES) for svc in scenario.services
        }
        self._counters: dict[str, _Counters] = {svc.name: _Counters() for svc in scenario.services}
        self._last_sample: dict[str, Sample] = {}
        self._settled_rv = -1
        self._wakeup: datetime | None = None
        # Amazon ECS services (kind ecs) live beside the Kubernetes objects.
        self.ecs = EcsWorld(scenario, on_change=self._ecs_changed)
        # Argo CD Applications and Flux Kustomizations owning services (scenario `gitops:`).
        self.gitops = GitOpsControllers(scenario, self.store, lambda: self.clock.now(),
                                        note=lambda text: self.notes.append((self._t, text)))

        actions = self._history_actions() + self._timeline_actions()
        actions.sort(key=lambda a: (a[0], a[1]))
        self._actions: list[tuple[datetime, int, Callable[[], None]]] = actions
        self._t = min(actions[0][0], start - PREFILL) if actions else start - PREFILL
        first_sample = math.ceil((start - PREFILL).timestamp() / SAMPLE_INTERVAL) * SAMPLE_INTERVAL
        self._next_sample = datetime.fromtimestamp(first_sample, timezone.utc)
        with self.store.lock:
            self._create_namespaces()
            self._run_until(start)

    @classmethod
    def from_scenario(cls, scenario: Scenario, *, speed: float = 1.0, start: datetime | None = None) -> World:
        """A world for `scenario` whose clock runs `speed` times faster than
        real time, starting at `start` (default: the scenario's start, or now)."""
        return cls(scenario, speed=speed, start=start)

    # ------------------------------------------------------------------ time

    def _store_now(self) -> datetime:
        if self._stepping:
            return self._t
        return max(self._t, self.clock.now())

    @property
    def now(self) -> datetime:
        """The world's simulated time (the time of the last `advance()`)."""
        return self._t

    def elapsed(self) -> float:
        """Simulated seconds since t=0 (negative before the start)."""
        return (self._t - self.start).total_seconds()

    def advance(self) -> None:
        """Run the controllers and the traffic model up to the clock's now.

        Cheap when nothing changed: no object was written and no pod, deadline
        or timeline event is due."""
        with self.store.lock:
            target = self.clock.now()
            if target <= self._t and self.store.resource_version == self._settled_rv:
                return
            target = max(target, self._t)
            if self.store.resource_version == self._settled_rv and (self._wakeup is None or self._wakeup > target):
                self._sample_until(target, inclusive=True)
                self._t = target
                return
            self._run_until(target)

    def _run_until(self, target: datetime) -> None:
        self._stepping = True
        try:
            while True:
                self._apply_due_actions()
                self._settle()
                self.ecs.step(self._t)
                wakeup = self._next_wakeup()
                end = target if wakeup is None or wakeup > target else wakeup
                if end <= self._t:
                    self._sample_until(self._t, inclusive=True)
                    break
                self._sample_until(end, inclusive=False)
                self._t = end
            self._wakeup = self._next_wakeup()
            self._settled_rv = self.store.resource_version
        finally:
            self._stepping = False

    def _ecs_changed(self) -> None:
        # An ECS write outside the controllers' loop: the next advance() must
        # run the simulation, not just sample (its wake-ups moved).
        self._settled_rv = -1

    def _apply_due_actions(self) -> None:
        while self._actions and self._actions[0][0] <= self._t:
            _, _, action = self._actions.pop(0)
            action()

    def _settle(self) -> None:
        for _ in range(100):
            before = self.store.resource_version
            self._collect_garbage()
            self._sync_pods()
            self._sync_replicasets()
            self._sync_deployments()
            self._sync_endpoints()
            self.gitops.step(self._t)
            if self.store.resource_version == before:
                return
        raise RuntimeError("drill world controllers did not settle")  # a controller bug, not an operator error

    def _next_wakeup(self) -> datetime | None:
        times: list[datetime] = []
        if self._actions:
            times.append(self._actions[0][0])
        pods, _ = self.store.list("pods", copy=False)
        for pod in pods:
            times.extend(self._pod_transitions(pod))
        deployments, _ = self.store.list("deployments", copy=False)
        for deployment in deployments:
            deadline = self._progress_deadline(deployment)
            if deadline is not None:
                times.append(deadline)
        gitops_wakeup = self.gitops.next_wakeup(self._t)
        if gitops_wakeup is not None:
            times.append(gitops_wakeup)
        ecs_wakeup = self.ecs.next_wakeup(self._t)
        if ecs_wakeup is not None:
            times.append(ecs_wakeup)
        future = [t for t in times if t > self._t]
        return min(future) if future else None

    # --------------------------------------------------------------- history

    def _history_actions(self) -> list[tuple[datetime, int, Callable[[], None]]]:
        """The scenario's rollout history as timed actions before t=0."""
        actions: list[tuple[datetime, int, Callable[[], None]]] = []
        order = 0

        def at(when: datetime, fn: Callable[[], None]) -> None:
            nonlocal order
            actions.append((when, order, fn))
            order += 1

        for svc in self.scenario.services:
            first = svc.history[0]
            if svc.kind == "ecs":
                for when, fn in self.ecs.history(svc, self.start):
                    at(when, fn)
            elif svc.kind == "deployment":
                at(self.start - timedelta(seconds=first.age), lambda s=svc, e=first: self._create_service_objects(s, e.version, e.cause))
                for entry in svc.history[1:]:
                    at(self.start - timedelta(seconds=entry.age), lambda s=svc, e=entry: self._set_image(s, s.name, e.version, e.cause))
            elif svc.kind == "blue-green":
                born = self.start - timedelta(seconds=first.age) - BLUE_GREEN_PREPARE
                at(born, lambda s=svc, e=first: self._create_service_objects(s, e.version, e.cause, live=e.environment))
                for i, entry in enumerate(svc.history):
                    when = self.start - timedelta(seconds=entry.age)
                    if i > 0:
                        at(when - BLUE_GREEN_PREPARE, lambda s=svc, e=entry: self._set_image(s, f"{s.name}-{e.environment}", e.version, e.cause))
                    at(when, lambda s=svc, e=entry: self._switch(s, e.environment))
            else:
                at(self.start - timedelta(seconds=first.age), lambda s=svc, e=first: self._create_service_objects(s, e.version, e.cause))
                for entry in svc.history[1:]:
                    when = self.start - timedelta(seconds=entry.age)
                    if (entry.track or "stable") == "stable":
                        at(when, lambda s=svc, e=entry: self._set_image(s, s.name, e.version, e.cause))
                    else:
                        at(when - BLUE_GREEN_PREPARE, lambda s=svc, e=entry: self._deploy_canary(s, e.version, e.cause))
                        at(when, lambda s=svc: self._set_canary_weight(s, s.canary_weight))
        return actions

    def _timeline_actions(self) -> list[tuple[datetime, int, Callable[[], None]]]:
        actions = []
        for i, event in enumerate(self.scenario.timeline):
            when = self.start + timedelta(seconds=event.at)
            actions.append((when, 1_000_000 + i, lambda e=event: self._apply_event(e)))
        return actions

    def apply_now(self, event: Any) -> None:
        """Apply a timeline event at the current simulated time (a trainer's
        injection): the world runs up to now first, then changes."""
        with self.store.lock:
            self.advance()
            self._apply_event(event)
            self._settled_rv = -1  # the next advance() runs the controllers
            self.advance()

    def _apply_event(self, event: Any) -> None:
        kind = event.kind
        if kind == "deploy":
            deploy = event.deploy
            svc = self.scenario.service(deploy.service)
            cause = deploy.change_cause or f"deploy {deploy.version}"
            if svc.kind == "blue-green":
                environment = deploy.environment or self._idle_environment(svc)
                self._set_image(svc, f"{svc.name}-{environment}", deploy.version, cause)
            elif svc.kind == "canary" and (deploy.track or "canary") == "canary":
                self._deploy_canary(svc, deploy.version, cause)
                self._set_canary_weight(svc, svc.canary_weight)
            elif svc.kind == "ecs":
                self.ecs.deploy(svc, deploy.version, self._t)
            else:
                self._set_image(svc, svc.name, deploy.version, cause)
        elif kind == "switch":
            self._switch(self.scenario.service(event.switch.service), event.switch.to)
        elif kind == "canary_weight":
            self._set_canary_weight(self.scenario.service(event.canary_weight.service), event.canary_weight.weight)
        elif kind == "facts":
            self.facts.update(event.facts)
        elif kind == "external_outage":
            outage = event.external_outage
            spans = self._outage_spans.setdefault(outage.service, [])
            if spans and spans[-1][1] is None:
                spans[-1][1] = self._t  # the last window ends here (a new one may start at once)
            if outage.active:
                self.outages[outage.service] = outage
                spans.append([self._t, None, outage])
            else:
                self.outages.pop(outage.service, None)
            self.facts["external_service_issue"] = bool(self.outages)
        if event.note is not None:
            self.notes.append((self._t, event.note))
        elif kind != "note":
            self.notes.append((self._t, self._describe(event)))

    @staticmethod
    def _describe(event: Any) -> str:
        if event.deploy:
            return f"{event.deploy.service} {event.deploy.version} deployed"
        if event.switch:
            return f"{event.switch.service} traffic switched to {event.switch.to}"
        if event.canary_weight:
            return f"{event.canary_weight.service} canary weight set to {event.canary_weight.weight} %"
        if event.external_outage:
            o = event.external_outage
            return f"{o.service}: {o.dependency} {'is failing' if o.active else 'recovered'}"
        return "facts changed: " + ", ".join(f"{k}={v}" for k, v in (event.facts or {}).items())

    # ------------------------------------------------------- object builders

    def _create_namespaces(self) -> None:
        for name in sorted({"default", "kube-system", *(svc.namespace for svc in self.scenario.services)}):
            self.store.create(
                "namespaces",
                None,
                {
                    "apiVersion": "v1",
                    "kind": "Namespace",
                    "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}},
                    "spec": {"finalizers": ["kubernetes"]},
                    "status": {"phase": "Active"},
                },
            )

    def _labels(self, svc: Service, extra: dict[str, str] | None = None) -> dict[str, str]:
        return {"app": svc.app_label, **(extra or {})}

    def _pod_spec(self, svc: Service, version: str) -> dict:
        return {
            "containers": [
                {
                    "name": svc.container,
                    "image": svc.image_of(version),
                    "imagePullPolicy": "IfNotPresent",
                    "ports": [{"name": "http", "containerPort": svc.port, "protocol": "TCP"}],
                    "readinessProbe": {
                        "httpGet": {"path": svc.health_path, "port": svc.port, "scheme": "HTTP"},
                        "periodSeconds": 5,
                        "timeoutSeconds": 1,
                        "successThreshold": 1,
                        "failureThreshold": 3,
                    },
                    "terminationMessagePath": "/dev/termination-log",
                    "terminationMessagePolicy": "File",
                }
            ],
            "dnsPolicy": "ClusterFirst",
            "restartPolicy": "Always",
            "schedulerName": "default-scheduler",
            "terminationGracePeriodSeconds": 30,
        }

    def _deployment(self, svc: Service, name: str, version: str, cause: str, replicas: int, extra_labels: dict[str, str]) -> dict:
        labels = self._labels(svc, extra_labels)
        strategy: dict[str, Any] = {"type": svc.strategy}
        if svc.strategy == "RollingUpdate":
            strategy["rollingUpdate"] = {"maxSurge": "25%", "maxUnavailable": "25%"}
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": svc.namespace, "labels": dict(labels), "annotations": {_CHANGE_CAUSE: cause}},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": dict(labels)},
                "template": {"metadata": {"labels": dict(labels)}, "spec": self._pod_spec(svc, version)},
                "strategy": strategy,
                "minReadySeconds": 0,
                "revisionHistoryLimit": svc.revision_history_limit,
                "progressDeadlineSeconds": svc.progress_deadline_seconds,
            },
            "status": {},
        }

    def _cluster_ip(self, svc: Service) -> str:
        value = _hash(self.scenario.seed, "svc", svc.namespace, svc.name)
        return f"10.96.{value % 250 + 1}.{(value >> 8) % 250 + 2}"

    def _create_service_objects(self, svc: Service, version: str, cause: str, live: str | None = None) -> None:
        """The Kubernetes objects of one service as they were first deployed."""
        ns = svc.namespace
        selector = self._labels(svc)
        if svc.kind == "deployment":
            self.store.create("deployments", ns, self._deployment(svc, svc.name, version, cause, svc.replicas, {}))
            self.gitops.committed(svc, version, cause, self._t, first=True)
        elif svc.kind == "blue-green":
            for colour in ("blue", "green"):
                self.store.create("deployments", ns, self._deployment(svc, f"{svc.name}-{colour}", version, cause, svc.replicas, {"version": colour}))
            selector = self._labels(svc, {"version": live or "blue"})
        else:
            self.store.create("deployments", ns, self._deployment(svc, svc.name, version, cause, svc.replicas, {"track": "stable"}))
            self.store.create("deployments", ns, self._deployment(svc, f"{svc.name}-canary", version, cause, 0, {"track": "canary"}))
            self.store.create(
                "virtualservices",
                ns,
                {
                    "apiVersion": "networking.istio.io/v1beta1",
                    "kind": "VirtualService",
                    "metadata": {"name": svc.name, "namespace": ns, "labels": {"app": svc.app_label}},
                    "spec": {"hosts": [svc.name], "http": [{"route": self._weights(svc, 0)}]},
                },
            )
        ip = self._cluster_ip(svc)
        self.store.create(
            "services",
            ns,
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": svc.name, "namespace": ns, "labels": {"app": svc.app_label}},
                "spec": {
                    "type": "ClusterIP",
                    "selector": selector,
                    "ports": [{"name": "http", "port": 80, "targetPort": svc.port, "protocol": "TCP"}],
                    "clusterIP": ip,
                    "clusterIPs": [ip],
                    "ipFamilies": ["IPv4"],
                    "ipFamilyPolicy": "SingleStack",
                    "sessionAffinity": "None",
                    "internalTrafficPolicy": "Cluster",
                },
                "status": {"loadBalancer": {}},
            },
        )

    @staticmethod
    def _weights(svc: Service, canary_weight: int) -> list[dict]:
        return [
            {"destination": {"host": svc.name, "subset": "stable"}, "weight": 100 - canary_weight},
            {"destination": {"host": svc.name, "subset": "canary"}, "weight": canary_weight},
        ]

    def _set_image(self, svc: Service, deployment_name: str, version: str, cause: str) -> None:
        deployment = self.store.get("deployments", svc.namespace, deployment_name)
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            if container["name"] == svc.container:
                container["image"] = svc.image_of(version)
        deployment["metadata"].setdefault("annotations", {})[_CHANGE_CAUSE] = cause
        self.store.update("deployments", svc.namespace, deployment, check_version=False)
        if deployment_name == svc.name:
            self.gitops.committed(svc, version, cause, self._t, first=False)

    def _deploy_canary(self, svc: Service, version: str, cause: str) -> None:
        self._set_image(svc, f"{svc.name}-canary", version, cause)
        deployment = self.store.get("deployments", svc.namespace, f"{svc.name}-canary")
        if not deployment["spec"].get("replicas"):
            deployment["spec"]["replicas"] = svc.canary_replicas
            self.store.update("deployments", svc.namespace, deployment, check_version=False)

    def _set_canary_weight(self, svc: Service, weight: int) -> None:
        vs = self.store.get("virtualservices", svc.namespace, svc.name)
        vs["spec"]["http"] = [{"route": self._weights(svc, weight)}]
        self.store.update("virtualservices", svc.namespace, vs, check_version=False)

    def _switch(self, svc: Service, environment: str | None) -> None:
        service = self.store.get("services", svc.namespace, svc.name)
        service["spec"]["selector"] = self._labels(svc, {"version": environment or "blue"})
        self.store.update("services", svc.namespace, service, check_version=False)

    def _idle_environment(self, svc: Service) -> str:
        service = self.store.get("services", svc.namespace, svc.name, copy=False)
        live = (service["spec"].get("selector") or {}).get("version")
        return "green" if live == "blue" else "blue"

    # ------------------------------------------------------------------ pods

    def _pod_times(self, pod: dict) -> _PodTimes:
        key = (pod["metadata"].get("namespace", ""), pod["metadata"]["name"])
        born = self._pod_born.get(key)
        if born is None:
            born = parse_timestamp(pod["metadata"]["creationTimestamp"])
            self._pod_born[key] = born
        containers = pod.get("spec", {}).get("containers") or [{}]
        repo, version = _tag(containers[0].get("image", ""))
        svc = self._by_image.get(repo)
        behaviour = None
        if svc is not None and version in self._known[svc.name]:
            behaviour = svc.behaviour(version) or Behaviour()
        return _PodTimes(born=born, behaviour=behaviour, service=svc, version=version)

    def _ready_after(self, times: _PodTimes) -> float:
        assert times.behaviour is not None
        if times.behaviour.ready_seconds is not None:
            return times.behaviour.ready_seconds
        return times.service.ready_seconds if times.service else 0.0

    def _crash_schedule(self, run_start: datetime, until: datetime) -> list[tuple[datetime, datetime]]:
        """(started, crashed) of each run of a crash-looping container up to `until`."""
        runs = []
        start = run_start
        backoff = BACKOFF_START
        while start <= until:
            crash = start + timedelta(seconds=CRASH_AFTER_SECONDS)
            runs.append((start, crash))
            start = crash + timedelta(seconds=backoff)
            backoff = min(backoff * 2, BACKOFF_MAX)
        return runs

    def _pod_transitions(self, pod: dict) -> list[datetime]:
        """Moments after now when this pod's status changes."""
        times = self._pod_times(pod)
        started = times.born + timedelta(seconds=POD_START_SECONDS)
        out = [started]
        if times.behaviour is None:
            return out
        if times.behaviour.ready:
            ready = times.born + timedelta(seconds=max(self._ready_after(times), 0.0))
            out.append(max(ready, started))
            return out
        runs = self._crash_schedule(started, self._t + timedelta(seconds=BACKOFF_MAX + CRASH_AFTER_SECONDS))
        for run_start, crash in runs:
            out.extend((run_start, crash))
        return out

    def _pod_state(self, pod: dict, at: datetime) -> dict[str, Any]:
        """Phase, readiness and container state of a pod at a moment."""
        times = self._pod_times(pod)
        started = times.born + timedelta(seconds=POD_START_SECONDS)
        state: dict[str, Any] = {"ready": False, "ready_since": None, "restarts": 0, "last": None}
        if at < started:
            state.update(phase="Pending", waiting=("ContainerCreating", None), running_since=None)
            return state
        if times.behaviour is None:
            image = (pod["spec"]["containers"] or [{}])[0].get("image", "")
            state.update(phase="Pending", waiting=("ImagePullBackOff", f'Back-off pulling image "{image}"'), running_since=None)
            return state
        if times.behaviour.ready:
            ready_at = max(times.born + timedelta(seconds=self._ready_after(times)), started)
            state.update(phase="Running", waiting=None, running_since=started)
            if at >= ready_at:
                state.update(ready=True, ready_since=ready_at)
            return state
        runs = self._crash_schedule(started, at)
        index = len(runs) - 1
        run_start, crash = runs[index]
        state["phase"] = "Running"
        if at < crash:
            state.update(waiting=None, running_since=run_start, restarts=index)
            if index:
                state["last"] = runs[index - 1]
        else:
            backoff = min(BACKOFF_START * 2**index, BACKOFF_MAX)
            name = pod["metadata"]["name"]
            container = pod["spec"]["containers"][0]["name"]
            state.update(
                waiting=("CrashLoopBackOff", f"back-off {int(backoff)}s restarting failed container={container} pod={name}_{pod['metadata'].get('namespace', '')}({pod['metadata'].get('uid', '')})"),
                running_since=None,
                restarts=index + 1,
                last=(run_start, crash),
            )
        return state

    def _pod_status(self, pod: dict, at: datetime) -> dict:
        times = self._pod_times(pod)
        state = self._pod_state(pod, at)
        born = format_timestamp(times.born)
        ready = state["ready"]
        ready_time = format_timestamp(state["ready_since"]) if ready else born
        if not ready and state["running_since"] is not None and state["restarts"]:
            ready_time = format_timestamp(state["running_since"])
        container = (pod["spec"].get("containers") or [{}])[0]
        name = container.get("name", "")
        not_ready = {"reason": "ContainersNotReady", "message": f"containers with unready status: [{name}]"}

        def condition(kind: str, status: bool, since: str, extra: dict | None = None) -> dict:
            out = {"type": kind, "status": "True" if status else "False", "lastProbeTime": None, "lastTransitionTime": since}
            if not status and extra:
                out.update(extra)
            return out

        container_status: dict[str, Any] = {
            "name": name,
            "image": container.get("image", ""),
            "imageID": "",
            "ready": ready,
            "restartCount": state["restarts"],
            "started": state["running_since"] is not None,
        }
        if state["phase"] != "Pending" or state["restarts"]:
            container_status["imageID"] = f"{_tag(container.get('image', ''))[0]}@sha256:{hashlib.sha256(container.get('image', '').encode()).hexdigest()}"
            container_status["containerID"] = "containerd://" + hashlib.sha256(f"{pod['metadata']['name']}/{state['restarts']}".encode()).hexdigest()
        if state["running_since"] is not None:
            container_status["state"] = {"running": {"startedAt": format_timestamp(state["running_since"])}}
        else:
            reason, message = state["waiting"]
            waiting = {"reason": reason}
            if message:
                waiting["message"] = message
            container_status["state"] = {"waiting": waiting}
        if state["last"] is not None:
            last_start, last_crash = state["last"]
            container_status["lastState"] = {
                "terminated": {
                    "exitCode": 1,
                    "reason": "Error",
                    "startedAt": format_timestamp(last_start),
                    "finishedAt": format_timestamp(last_crash),
                    "containerID": "containerd://" + hashlib.sha256(f"{pod['metadata']['name']}/{state['restarts'] - 1}".encode()).hexdigest(),
                }
            }
        else:
            container_status["lastState"] = {}
        status = {
            "phase": state["phase"],
            "conditions": [
                condition("Initialized", True, born),
                condition("Ready", ready, ready_time, not_ready),
                condition("ContainersReady", ready, ready_time, not_ready),
                condition("PodScheduled", True, born),
            ],
            "hostIP": pod.get("status", {}).get("hostIP", ""),
            "podIP": pod.get("status", {}).get("podIP", ""),
            "podIPs": pod.get("status", {}).get("podIPs", []),
            "startTime": born,
            "containerStatuses": [container_status],
            "qosClass": "BestEffort",
        }
        return status

    def _sync_pods(self) -> None:
        # Read the stored pods; copy only the ones this pass writes.
        pods, _ = self.store.list("pods", copy=False)
        for pod in pods:
            stored = pod
            if not pod.get("status", {}).get("podIP"):
                pod = clone(pod)
                self._assign(pod)
            status = self._pod_status(pod, self._t)
            if status != pod.get("status"):
                if pod is stored:
                    pod = clone(pod)
                pod["status"] = status
                self.store.update("pods", pod["metadata"]["namespace"], pod, check_version=False)

    def _assign(self, pod: dict) -> None:
        """Schedule a pod: a node and a pod IP, both derived from the seed."""
        name = pod["metadata"]["name"]
        node, host_ip = NODES[_hash(self.scenario.seed, "node", name) % len(NODES)]
        attempt = 0
        while True:
            value = _hash(self.scenario.seed, "ip", name, attempt)
            ip = f"10.0.{value % 254 + 1}.{(value >> 8) % 253 + 2}"
            if ip not in self._used_ips:
                break
            attempt += 1
        self._used_ips.add(ip)
        pod.setdefault("spec", {})["nodeName"] = pod["spec"].get("nodeName") or node
        pod.setdefault("status", {}).update(hostIP=host_ip, podIP=ip, podIPs=[{"ip": ip}])

    def _pod_ready(self, pod: dict) -> bool:
        for condition in pod.get("status", {}).get("conditions") or []:
            if condition.get("type") == "Ready":
                return condition.get("status") == "True"
        return False

    def _pod_available(self, pod: dict, min_ready_seconds: int) -> bool:
        state = self._pod_state(pod, self._t)
        if not state["ready"]:
            return False
        return self._t >= state["ready_since"] + timedelta(seconds=min_ready_seconds)

    # ------------------------------------------------------------ replicasets

    def _owned(self, resource: str, namespace: str, uid: str) -> list[dict]:
        items, _ = self.store.list(resource, namespace)
        return [item for item in items if _controller_uid(item) == uid]

    def _new_pod_name(self, rs_name: str, namespace: str) -> str:
        while True:
            self._name_counter += 1
            value = _hash(self.scenario.seed, "pod", rs_name, self._name_counter)
            suffix = "".join(_NAME_ALPHABET[(value >> (5 * i)) % len(_NAME_ALPHABET)] for i in range(5))
            name = f"{rs_name}-{suffix}"
            try:
                self.store.get("pods", namespace, name, copy=False)
            except NotFound:
                return name

    def _sync_replicasets(self) -> None:
        # Read-only views: a ReplicaSet is copied before its status is written, pods are only deleted.
        replicasets, _ = self.store.list("replicasets", copy=False)
        pods, _ = self.store.list("pods", copy=False)
        by_owner: dict[str, list[dict]] = {}
        for pod in pods:
            uid = _controller_uid(pod)
            if uid and not pod["metadata"].get("deletionTimestamp"):
                by_owner.setdefault(uid, []).append(pod)
        for rs in replicasets:
            ns = rs["metadata"]["namespace"]
            owned = by_owner.get(rs["metadata"]["uid"], [])
            wanted = int(rs["spec"].get("replicas", 1) or 0)
            if len(owned) < wanted:
                for _ in range(wanted - len(owned)):
                    owned.append(self._create_pod(rs))
            elif len(owned) > wanted:
                owned.sort(key=self._deletion_rank)
                for pod in owned[: len(owned) - wanted]:
                    self.store.delete("pods", ns, pod["metadata"]["name"])
                    self._pod_born.pop((ns, pod["metadata"]["name"]), None)
                    self._used_ips.discard(pod.get("status", {}).get("podIP", ""))
                owned = owned[len(owned) - wanted :]
            min_ready = int(rs["spec"].get("minReadySeconds") or 0)
            status: dict[str, Any] = {"replicas": len(owned)}
            labelled = len(owned)
            ready = sum(1 for p in owned if self._pod_ready(p))
            available = sum(1 for p in owned if self._pod_available(p, min_ready))
            if labelled:
                status["fullyLabeledReplicas"] = labelled
            if ready:
                status["readyReplicas"] = ready
            if available:
                status["availableReplicas"] = available
            status["observedGeneration"] = rs["metadata"].get("generation", 1)
            if status != rs.get("status"):
                rs = clone(rs)
                rs["status"] = status
                self.store.update("replicasets", ns, rs, check_version=False)

    def _deletion_rank(self, pod: dict) -> tuple:
        """Pods the ReplicaSet controller deletes first sort first: pending,
        then not ready, then the most recently created."""
        running = pod.get("status", {}).get("phase") == "Running"
        born = self._pod_times(pod).born
        return (running, self._pod_ready(pod), -born.timestamp())

    def _create_pod(self, rs: dict) -> dict:
        ns = rs["metadata"]["namespace"]
        template = copy.deepcopy(rs["spec"]["template"])
        name = self._new_pod_name(rs["metadata"]["name"], ns)
        metadata = template.get("metadata") or {}
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "generateName": rs["metadata"]["name"] + "-",
                "namespace": ns,
                "labels": dict(metadata.get("labels") or {}),
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "ReplicaSet",
                        "name": rs["metadata"]["name"],
                        "uid": rs["metadata"]["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": {**template.get("spec", {}), "serviceAccountName": "default", "enableServiceLinks": True, "priority": 0},
            "status": {"phase": "Pending"},
        }
        if metadata.get("annotations"):
            pod["metadata"]["annotations"] = dict(metadata["annotations"])
        self._pod_born[(ns, name)] = self._t
        self._assign(pod)
        pod["status"] = self._pod_status(pod, self._t)
        return self.store.create("pods", ns, pod)

    def _collect_garbage(self) -> None:
        """Delete objects whose controlling owner is gone (cascading deletion)."""
        # Read-only views: this only deletes, by name.
        owners = {
            "replicasets": {d["metadata"]["uid"] for d in self.store.list("deployments", copy=False)[0]},
            "pods": {r["metadata"]["uid"] for r in self.store.list("replicasets", copy=False)[0]},
        }
        for resource, alive in owners.items():
            for item in self.store.list(resource, copy=False)[0]:
                uid = _controller_uid(item)
                if uid and uid not in alive:
                    ns = item["metadata"]["namespace"]
                    self.store.delete(resource, ns, item["metadata"]["name"])
                    if resource == "pods":
                        self._pod_born.pop((ns, item["metadata"]["name"]), None)
                        self._used_ips.discard(item.get("status", {}).get("podIP", ""))

    # ------------------------------------------------------------ deployments

    def _sync_deployments(self) -> None:
        deployments, _ = self.store.list("deployments")
        for deployment in deployments:
            if deployment["metadata"].get("deletionTimestamp"):
                continue
            _DeploymentSync(self, deployment).run()

    def _progress_deadline(self, deployment: dict) -> datetime | None:
        """When the Progressing condition times out, if a rollout is under way."""
        deadline = deployment["spec"].get("progressDeadlineSeconds")
        if deadline is None or deployment["spec"].get("paused"):
            return None
        for condition in deployment.get("status", {}).get("conditions") or []:
            if condition.get("type") == "Progressing" and condition.get("reason") in ("NewReplicaSetCreated", "FoundNewReplicaSet", "ReplicaSetUpdated"):
                # Kubernetes compares with Before(now): one second later it has passed.
                return parse_timestamp(condition["lastUpdateTime"]) + timedelta(seconds=int(deadline) + 1)
        return None

    # -------------------------------------------------------------- endpoints

    def _sync_endpoints(self) -> None:
        services, _ = self.store.list("services", copy=False)
        pods, _ = self.store.list("pods", copy=False)
        present = {(e["metadata"]["namespace"], e["metadata"]["name"]): e for e in self.store.list("endpoints")[0]}
        wanted_keys = set()
        by_namespace: dict[str, list[dict]] = {}
        for pod in pods:
            by_namespace.setdefault(pod["metadata"].get("namespace"), []).append(pod)
        for service in services:
            ns, name = service["metadata"]["namespace"], service["metadata"]["name"]
            selector = service.get("spec", {}).get("selector")
            if not selector:
                continue
            wanted_keys.add((ns, name))
            ready, not_ready = [], []
            container_ports: dict[str, int] = {}
            for pod in by_namespace.get(ns, ()):
                if not _selector_matches(selector, pod["metadata"].get("labels")):
                    continue
                ip = pod.get("status", {}).get("podIP")
                if not ip or pod["metadata"].get("deletionTimestamp"):
                    continue
                for container in pod.get("spec", {}).get("containers") or []:
                    for port in container.get("ports") or []:
                        if port.get("name"):
                            container_ports[port["name"]] = port["containerPort"]
                address = {
                    "ip": ip,
                    "nodeName": pod["spec"].get("nodeName", ""),
                    "targetRef": {"kind": "Pod", "namespace": ns, "name": pod["metadata"]["name"], "uid": pod["metadata"]["uid"]},
                }
                (ready if self._pod_ready(pod) else not_ready).append(address)
            ports = []
            for port in service["spec"].get("ports") or []:
                target = port.get("targetPort", port.get("port"))
                if isinstance(target, str):
                    target = container_ports.get(target, port.get("port"))
                entry = {"port": target, "protocol": port.get("protocol", "TCP")}
                if port.get("name"):
                    entry["name"] = port["name"]
                ports.append(entry)
            endpoints = {
                "apiVersion": "v1",
                "kind": "Endpoints",
                "metadata": {"name": name, "namespace": ns, "labels": dict(service["metadata"].get("labels") or {})},
            }
            if ready or not_ready:
                subset: dict[str, Any] = {}
                if ready:
                    subset["addresses"] = sorted(ready, key=lambda a: a["ip"])
                if not_ready:
                    subset["notReadyAddresses"] = sorted(not_ready, key=lambda a: a["ip"])
                subset["ports"] = ports
                endpoints["subsets"] = [subset]
            current = present.get((ns, name))
            if current is None:
                self.store.create("endpoints", ns, endpoints)
            elif current.get("subsets") != endpoints.get("subsets") or current["metadata"].get("labels") != endpoints["metadata"]["labels"]:
                current["subsets"] = endpoints.get("subsets")
                if current["subsets"] is None:
                    current.pop("subsets")
                current["metadata"]["labels"] = endpoints["metadata"]["labels"]
                self.store.update("endpoints", ns, current, check_version=False)
        for key in set(present) - wanted_keys:
            self.store.delete("endpoints", key[0], key[1])

    # ---------------------------------------------------------------- traffic

    def _ready_versions(self, namespace: str, selector: dict) -> list[str]:
        pods, _ = self.store.list("pods", namespace, copy=False)
        versions = []
        for pod in pods:
            if _selector_matches(selector, pod["metadata"].get("labels")) and self._pod_ready(pod):
                versions.append(self._pod_times(pod).version)
        return versions

    def _mix(self, svc: Service) -> _Mix:
        """Which versions serve the service's requests right now, by share."""
        if svc.kind == "ecs":
            tasks = self.ecs.serving_versions(svc.name) or []
            if not tasks:
                return _Mix(((None, 1.0),))
            return _Mix(tuple((version, tasks.count(version) / len(tasks)) for version in sorted(set(tasks))))
        try:
            service = self.store.get("services", svc.namespace, svc.name, copy=False)
        except NotFound:
            return _Mix(((None, 1.0),))
        selector = service.get("spec", {}).get("selector") or {}
        routes: list[tuple[dict, float]] = [(selector, 1.0)]
        if svc.kind == "canary":
            try:
                vs = self.store.get("virtualservices", svc.namespace, svc.name, copy=False)
                destinations = ((vs.get("spec", {}).get("http") or [{}])[0]).get("route") or []
                weights = [(d.get("destination", {}).get("subset"), float(d.get("weight", 100 if len(destinations) == 1 else 0))) for d in destinations]
                total = sum(w for _, w in weights)
                if total > 0:
                    routes = [({**selector, "track": subset} if subset in _CANARY_TRACKS else selector, w / total) for subset, w in weights if w > 0]
            except NotFound:
                pass
        parts: list[tuple[str | None, float]] = []
        for route_selector, share in routes:
            versions = self._ready_versions(svc.namespace, route_selector)
            if not versions:
                parts.append((None, share))
                continue
            for version in sorted(set(versions)):
                parts.append((version, share * versions.count(version) / len(versions)))
        return _Mix(tuple(parts))

    def _behaviour(self, svc: Service, version: str) -> Behaviour:
        return svc.behaviour(version) or Behaviour()

    def _version_error(self, svc: Service, version: str, route: str, at: datetime) -> float:
        behaviour = self._behaviour(svc, version)
        if route in behaviour.routes:
            rate = behaviour.routes[route]
        elif behaviour.intermittent is not None:
            wave = behaviour.intermittent
            phase = _unit(self.scenario.seed, "phase", svc.name, version) * wave.period_s
            position = ((at - self.start).total_seconds() + phase) % wave.period_s
            rate = wave.high if position < wave.duty * wave.period_s else wave.low
        else:
            rate = behaviour.error_rate
        outage = self._outage_at(svc.name, at)
        if outage is not None:
            rate = 1 - (1 - rate) * (1 - outage.error_rate)
        return rate

    def _outage_at(self, service: str, at: datetime) -> Any:
        """The external outage `service` was in at `at` (None if none)."""
        for start, end, outage in reversed(self._outage_spans.get(service, ())):
            if start <= at and (end is None or at < end):
                return outage
        return None

    def _latency_parts(self, svc: Service, mix: _Mix) -> list[tuple[float, float]]:
        """(median seconds, share) of the serving versions' log-normal latencies."""
        parts = []
        outage = self.outages.get(svc.name)
        serving = sum(share for version, share in mix.parts if version is not None)
        for version, share in mix.parts:
            if version is None:
                continue
            p95 = self._behaviour(svc, version).latency_p95_ms
            if outage is not None:
                p95 = max(p95, outage.latency_p95_ms)
            parts.append((p95 / 1000.0 / math.exp(_Z95 * LATENCY_SIGMA), share / serving))
        return parts

    @staticmethod
    def _latency_cdf(parts: list[tuple[float, float]], seconds: float) -> float:
        if seconds <= 0:
            return 0.0
        return sum(share * _normal_cdf((math.log(seconds) - math.log(median)) / LATENCY_SIGMA) for median, share in parts)

    def _p95(self, parts: list[tuple[float, float]]) -> float | None:
        if not parts:
            return None
        medians = {median for median, _ in parts}
        if len(medians) == 1:
            return round(next(iter(medians)) * math.exp(_Z95 * LATENCY_SIGMA), 9)
        low, high = math.log(min(medians)), math.log(max(medians)) + 4 * LATENCY_SIGMA
        for _ in range(60):
            mid = (low + high) / 2
            if self._latency_cdf(parts, math.exp(mid)) < 0.95:
                low = mid
            else:
                high = mid
        return round(math.exp((low + high) / 2), 6)

    def _route_shares(self, svc: Service) -> list[tuple[str, float]]:
        total = sum(svc.routes.values())
        return [(route, share / total) for route, share in svc.routes.items()]

    def _measure(self, svc: Service, at: datetime) -> Sample:
        mix = self._mix(svc)
        route_errors = []
        for route, _ in self._route_shares(svc):
            error = 0.0
            for version, share in mix.parts:
                error += share * (1.0 if version is None else self._version_error(svc, version, route, at))
            route_errors.append((route, round(error, 9)))
        error_rate = round(sum(share * err for (_, share), (_, err) in zip(self._route_shares(svc), route_errors)), 9)
        request_rate = 0.0
        for version, share in mix.parts:
            rate = None if version is None else self._behaviour(svc, version).request_rate
            request_rate += share * (svc.request_rate if rate is None else rate)
        latency_parts = self._latency_parts(svc, mix)
        return Sample(
            at=at,
            error_rate=min(error_rate, 1.0),
            latency_p95_s=self._p95(latency_parts),
            latency_parts=tuple(latency_parts),
            request_rate=round(request_rate, 9),
            route_error_rates=tuple(route_errors),
            down=mix.down,
        )

    def _sample_until(self, end: datetime, inclusive: bool) -> None:
        """Record the samples due before `end` (state is constant until then)."""
        while self._next_sample < end or (inclusive and self._next_sample == end):
            at = self._next_sample
            for svc in self.scenario.services:
                sample = self._measure(svc, at)
                previous = self._last_sample.get(svc.name)
                if previous is not None:
                    self._integrate(svc, self._counters[svc.name], previous, SAMPLE_INTERVAL)
                self._last_sample[svc.name] = sample
                self._samples[svc.name].append(sample)
            self._next_sample = at + timedelta(seconds=SAMPLE_INTERVAL)

    def _integrate(self, svc: Service, counters: _Counters, sample: Sample, seconds: float) -> None:
        """Add the requests served for `seconds` at the sample's rates to the counters."""
        requests = sample.request_rate * seconds
        failed = "503" if sample.down else "500"
        for (route, share), (_, error) in zip(self._route_shares(svc), sample.route_error_rates):
            counters.requests[(route, "200")] = counters.requests.get((route, "200"), 0.0) + requests * share * (1 - error)
            counters.requests[(route, failed)] = counters.requests.get((route, failed), 0.0) + requests * share * error
        if sample.latency_parts:
            for i, le in enumerate(HISTOGRAM_BUCKETS):
                counters.buckets[i] += requests * self._latency_cdf(list(sample.latency_parts), le)
            counters.count += requests
            counters.total_seconds += requests * sum(share * median * math.exp(LATENCY_SIGMA**2 / 2) for median, share in sample.latency_parts)

    # ------------------------------------------------------------ public view

    def samples(self, service: str) -> list[Sample]:
        """The retained samples of a service, oldest first (empty if unknown)."""
        with self.store.lock:
            return list(self._samples.get(service, ()))

    def sample_at(self, service: str, at: datetime, lookback: timedelta = timedelta(minutes=5)) -> Sample | None:
        """The newest sample at or before `at` within `lookback` (Prometheus'
        staleness rule), or None."""
        with self.store.lock:
            series = self._samples.get(service)
            if not series:
                return None
            index = bisect.bisect_right(series, at, key=lambda s: s.at) - 1
            if index < 0:
                return None
            sample = series[index]
            return sample if at - sample.at <= lookback else None

    def service_names(self) -> list[str]:
        """The scenario's service names, in file order."""
        return [svc.name for svc in self.scenario.services]

    def counters(self) -> dict[str, _Counters]:
        """Request and latency totals per service up to now (for /metrics)."""
        with self.store.lock:
            out = {}
            for svc in self.scenario.services:
                total = copy.deepcopy(self._counters[svc.name])
                last = self._last_sample.get(svc.name)
                if last is not None and self._t > last.at:
                    self._integrate(svc, total, last, (self._t - last.at).total_seconds())
                out[svc.name] = total
            return out

    def route_shares(self, service: str) -> list[tuple[str, float]]:
        """The routes of a service and their share of its traffic."""
        return self._route_shares(self.scenario.service(service))

    def health(self, service: str) -> tuple[int, dict]:
        """The service's health endpoint right now: (HTTP status, JSON body).

        Unhealthy when nothing serves or when versions whose health check fails
        serve at least half of the traffic."""
        with self.store.lock:
            try:
                svc = self.scenario.service(service)
            except KeyError:
                return 404, {"status": "unknown", "error": f"no service called {service!r} in this drill"}
            mix = self._mix(svc)
            if mix.down:
                return 503, {"status": "unhealthy", "reason": "no ready pods behind the service"}
            failing = sum(share for version, share in mix.parts if version is None or not self._behaviour(svc, version).healthy)
            versions = sorted({v for v, _ in mix.parts if v is not None})
            if failing >= 0.5:
                return 503, {"status": "unhealthy", "versions": versions}
            return 200, {"status": "healthy", "versions": versions}

    def state(self) -> dict:
        """The drill's own state (scenario, time, facts, notes, expectation) as JSON data."""
        with self.store.lock:
            expect = self.scenario.expect
            return {
                "scenario": self.scenario.name,
                "description": self.scenario.description,
                "start": format_timestamp(self.start),
                "now": self._t.isoformat(),
                "elapsed_seconds": round(self.elapsed(), 3),
                "facts": dict(self.facts),
                "external_outages": {name: o.dependency for name, o in self.outages.items()},
                "notes": [{"at": format_timestamp(at), "text": text} for at, text in self.notes],
                "expect": {"action": expect.action, "by_seconds": expect.by},
                "services": self.service_names(),
                "speed": getattr(self.clock, "speed", None),
                "paused": self.paused_speed is not None,
                "trainer": [{"at": format_timestamp(at), "text": text} for at, text in self.trainer_log],
            }

    # ------------------------------------------------------------------- logs

    def pod_log(self, namespace: str, pod: str, container: str | None = None, tail_lines: int | None = None) -> str:
        """The log of a pod's current (or, while crash-looping, last) container.

        Raises objects.NotFound for an unknown pod and ValueError (the
        apiserver's 400 sentence) for an unknown container or one that has not
        started."""
        with self.store.lock:
            obj = self.store.get("pods", namespace, pod)
            containers = [c.get("name") for c in obj.get("spec", {}).get("containers") or []]
            if container is None:
                container = containers[0] if containers else ""
            if container not in containers:
                raise ValueError(f"container {container} is not valid for pod {pod}")
            times = self._pod_times(obj)
            state = self._pod_state(obj, self._t)
            if state["running_since"] is None and state["last"] is None:
                reason = state["waiting"][0] if state.get("waiting") else "ContainerCreating"
                raise ValueError(f'container "{container}" in pod "{pod}" is waiting to start: {reason}')
            if state["running_since"] is not None:
                run_start, run_end, crashed = state["running_since"], self._t, False
            else:
                run_start, run_end = state["last"]
                crashed = True
            lines = self._log_lines(obj, times, run_start, run_end, crashed)
            if tail_lines is not None:
                lines = lines[-tail_lines:] if tail_lines > 0 else []
            else:
                lines = lines[-MAX_LOG_LINES:]
            return "".join(line + "\n" for line in lines)

    def _log_lines(self, pod: dict, times: _PodTimes, run_start: datetime, run_end: datetime, crashed: bool) -> list[str]:
        svc = times.service
        behaviour = times.behaviour or Behaviour()
        name = pod["metadata"]["name"]
        service_name = svc.name if svc else name
        port = svc.port if svc else 8080

        def stamp(at: datetime) -> str:
            return at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"

        lines = [
            f"{stamp(run_start)} INFO  starting {service_name} {times.version}",
            f"{stamp(run_start + timedelta(milliseconds=40))} INFO  listening on :{port}",
        ]
        if not behaviour.ready:
            failing = run_start + timedelta(seconds=1)
            if failing <= run_end:
                lines.append(f"{stamp(failing)} ERROR {behaviour.log_error}")
            if crashed:
                lines.append(f"{stamp(run_end)} FATAL {behaviour.log_error}: exiting")
            return lines
        span = (run_end - run_start).total_seconds()
        count = int(span // LOG_INTERVAL)
        first = max(1, count - MAX_LOG_LINES + 1)
        routes = self._route_shares(svc) if svc else [("/", 1.0)]
        for i in range(first, count + 1):
            at = run_start + timedelta(seconds=i * LOG_INTERVAL)
            # Each line as it was written then: the outage of that moment, not of now.
            outage = self._outage_at(svc.name, at) if svc else None
            p95 = max(behaviour.latency_p95_ms, outage.latency_p95_ms) if outage is not None else behaviour.latency_p95_ms
            pick = _unit(self.scenario.seed, "route", name, i)
            route = routes[-1][0]
            acc = 0.0
            for candidate, share in routes:
                acc += share
                if pick < acc:
                    route = candidate
                    break
            method = "POST" if (i % 3 == 0 and route.count("/") == 1) else "GET"
            z = math.sqrt(2) * _inverse_erf(2 * _unit(self.scenario.seed, "latency", name, i) - 1)
            latency = p95 / math.exp(_Z95 * LATENCY_SIGMA) * math.exp(LATENCY_SIGMA * z)
            error = self._version_error(svc, times.version, route, at) if svc else behaviour.error_rate
            if _unit(self.scenario.seed, "error", name, i) < error:
                message = outage.dependency + " unavailable" if outage is not None else behaviour.log_error
                lines.append(f"{stamp(at)} ERROR {method} {route} 500 {latency:.0f}ms {message}")
            else:
                lines.append(f"{stamp(at)} INFO  {method} {route} 200 {latency:.0f}ms")
        return lines


def _inverse_erf(y: float) -> float:
    """Inverse error function (Giles' approximation), enough for log latencies."""
    y = min(max(y, -0.999999), 0.999999)
    w = -math.log((1.0 - y) * (1.0 + y))
    if w < 5.0:
        w -= 2.5
        p = 2.81022636e-08
        for c in (3.43273939e-07, -3.5233877e-06, -4.39150654e-06, 0.00021858087, -0.00125372503, -0.00417768164, 0.246640727, 1.50140941):
            p = c + p * w
    else:
        w = math.sqrt(w) - 3.0
        p = -0.000200214257
        for c in (0.000100950558, 0.00134934322, -0.00367342844, 0.00573950773, -0.0076224613, 0.00943887047, 1.00167406, 2.83297682):
            p = c + p * w
    return p * y


class _DeploymentSync:
    """One pass of the Kubernetes deployment controller over one Deployment
    (pkg/controller/deployment: sync, rolling, recreate, progress, history)."""

    def __init__(self, world: World, deployment: dict) -> None:
        self.world = world
        self.store = world.store
        self.d = deployment
        self.ns = deployment["metadata"]["namespace"]
        self.desired = int(deployment["spec"].get("replicas", 1))
        self.rolling = (deployment["spec"].get("strategy") or {}).get("type", "RollingUpdate") == "RollingUpdate"
        self.old_status = copy.deepcopy(deployment.get("status") or {})

    # -- helpers -----------------------------------------------------------

    def max_surge(self) -> int:
        if not self.rolling:
            return 0
        surge, _ = self._surge_unavailable()
        return surge

    def max_unavailable(self) -> int:
        if not self.rolling or self.desired == 0:
            return 0
        _, unavailable = self._surge_unavailable()
        return min(unavailable, self.desired)

    def _surge_unavailable(self) -> tuple[int, int]:
        params = (self.d["spec"].get("strategy") or {}).get("rollingUpdate") or {}
        surge = _resolve_int_or_percent(params.get("maxSurge", "25%"), self.desired, True)
        unavailable = _resolve_int_or_percent(params.get("maxUnavailable", "25%"), self.desired, False)
        if surge == 0 and unavailable == 0:
            unavailable = 1
        return surge, unavailable

    def scale(self, rs: dict, replicas: int) -> dict:
        if int(rs["spec"].get("replicas", 0)) == replicas and (rs["metadata"].get("annotations") or {}).get(_DESIRED) == str(self.desired):
            return rs
        rs["spec"]["replicas"] = replicas
        annotations = rs["metadata"].setdefault("annotations", {})
        annotations[_DESIRED] = str(self.desired)
        annotations[_MAX] = str(self.desired + self.max_surge())
        return self.store.update("replicasets", self.ns, rs, check_version=False)

    @staticmethod
    def spec_replicas(rs: dict | None) -> int:
        return int(rs["spec"].get("replicas", 0)) if rs else 0

    @staticmethod
    def status_of(rs: dict | None, key: str) -> int:
        return int((rs or {}).get("status", {}).get(key, 0) or 0)

    # -- the sync ----------------------------------------------------------

    def run(self) -> None:
        rss = self.world._owned("replicasets", self.ns, self.d["metadata"]["uid"])
        rss.sort(key=lambda rs: (rs["metadata"].get("creationTimestamp", ""), rs["metadata"]["name"]))
        canonical = canonical_template(self.d["spec"]["template"])
        new_rs = next((rs for rs in rss if canonical_template(rs["spec"]["template"]) == canonical), None)
        old_rss = [rs for rs in rss if rs is not new_rs]
        status = self.d.setdefault("status", {})
        self.check_paused_conditions(status)
        if self.d["spec"].get("paused"):
            self.finish(new_rs, old_rss, progress=False)
            return
        if self.rolling:
            new_rs = self.new_replicaset(new_rs, old_rss, create=True)
            self.reconcile_new(new_rs, old_rss)
            old_rss = self.reconcile_old(new_rs, old_rss)
        else:
            new_rs = self.new_replicaset(new_rs, old_rss, create=False)
            if any(self.spec_replicas(rs) > 0 for rs in old_rss):
                old_rss = [self.scale(rs, 0) if self.spec_replicas(rs) > 0 else rs for rs in old_rss]
            elif not any(self.status_of(rs, "replicas") > 0 for rs in old_rss):
                new_rs = self.new_replicaset(new_rs, old_rss, create=True)
                new_rs = self.scale(new_rs, self.desired)
        if self.complete(self.old_status):
            old_rss = self.cleanup(old_rss)
        self.finish(new_rs, old_rss, progress=True)

    def check_paused_conditions(self, status: dict) -> None:
        progressing = self.condition(status, "Progressing")
        if progressing is None:
            return
        paused = bool(self.d["spec"].get("paused"))
        if paused and progressing.get("reason") != "DeploymentPaused":
            self.set_condition(status, "Progressing", "Unknown", "DeploymentPaused", "Deployment is paused")
        elif not paused and progressing.get("reason") == "DeploymentPaused":
            self.set_condition(status, "Progressing", "Unknown", "DeploymentResumed", "Deployment is resumed")

    def new_replicaset(self, new_rs: dict | None, old_rss: list[dict], create: bool) -> dict | None:
        max_old = max((_revision(rs) for rs in old_rss), default=0)
        revision = max_old + 1
        if new_rs is not None:
            annotations = new_rs["metadata"].setdefault("annotations", {})
            before = dict(annotations)
            self.copy_annotations(annotations)
            current = _revision(new_rs)
            rollout_onto_reused = current < revision
            if current < revision:
                if current > 0:
                    history = annotations.get(_REVISION_HISTORY)
                    annotations[_REVISION_HISTORY] = f"{history},{current}" if history else str(current)
                annotations[_REVISION] = str(revision)
            annotations.setdefault(_DESIRED, str(self.desired))
            annotations.setdefault(_MAX, str(self.desired + self.max_surge()))
            if annotations != before or new_rs["spec"].get("minReadySeconds", 0) != self.d["spec"].get("minReadySeconds", 0):
                new_rs["spec"]["minReadySeconds"] = self.d["spec"].get("minReadySeconds", 0)
                new_rs = self.store.update("replicasets", self.ns, new_rs, check_version=False)
            self.set_revision(_revision(new_rs))
            status = self.d["status"]
            # A rollout onto a reused ReplicaSet starts its progress clock now, as a new
            # one does: the last rollout's "NewReplicaSetAvailable" was about another
            # ReplicaSet, and left standing (Recreate observes no step in between) a
            # crash-looping reused ReplicaSet would never reach ProgressDeadlineExceeded.
            if self.d["spec"].get("progressDeadlineSeconds") is not None and (
                self.condition(status, "Progressing") is None or rollout_onto_reused
            ):
                self.set_condition(status, "Progressing", "True", "FoundNewReplicaSet", f'Found new replica set "{new_rs["metadata"]["name"]}"')
            return new_rs
        if not create:
            return None
        template = copy.deepcopy(self.d["spec"]["template"])
        template_hash = pod_template_hash(template)
        template.setdefault("metadata", {}).setdefault("labels", {})[POD_TEMPLATE_HASH_LABEL] = template_hash
        selector = copy.deepcopy(self.d["spec"]["selector"])
        selector.setdefault("matchLabels", {})[POD_TEMPLATE_HASH_LABEL] = template_hash
        annotations: dict[str, str] = {}
        self.copy_annotations(annotations)
        annotations[_REVISION] = str(revision)
        annotations[_DESIRED] = str(self.desired)
        annotations[_MAX] = str(self.desired + self.max_surge())
        name = f"{self.d['metadata']['name']}-{template_hash}"
        rs = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": name,
                "namespace": self.ns,
                "labels": dict(template["metadata"]["labels"]),
                "annotations": annotations,
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "Deployment",
                        "name": self.d["metadata"]["name"],
                        "uid": self.d["metadata"]["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": {
                "replicas": self.new_rs_replicas(None, old_rss),
                "minReadySeconds": self.d["spec"].get("minReadySeconds", 0),
                "selector": selector,
                "template": template,
            },
            "status": {"replicas": 0},
        }
        created = self.store.create("replicasets", self.ns, rs)
        self.set_revision(revision)
        if self.d["spec"].get("progressDeadlineSeconds") is not None:
            self.set_condition(self.d["status"], "Progressing", "True", "NewReplicaSetCreated", f'Created new replica set "{name}"')
        return created

    def copy_annotations(self, target: dict[str, str]) -> None:
        for key, value in (self.d["metadata"].get("annotations") or {}).items():
            if key not in _SKIP_ANNOTATIONS:
                target[key] = value

    def set_revision(self, revision: int) -> None:
        annotations = self.d["metadata"].setdefault("annotations", {})
        annotations[_REVISION] = str(revision)

    def new_rs_replicas(self, new_rs: dict | None, old_rss: list[dict]) -> int:
        if not self.rolling:
            return self.desired
        current = sum(self.spec_replicas(rs) for rs in old_rss) + self.spec_replicas(new_rs)
        max_total = self.desired + self.max_surge()
        if current >= max_total:
            return self.spec_replicas(new_rs)
        scale_up = min(max_total - current, self.desired - self.spec_replicas(new_rs))
        return self.spec_replicas(new_rs) + max(scale_up, 0)

    def reconcile_new(self, new_rs: dict, old_rss: list[dict]) -> None:
        replicas = self.spec_replicas(new_rs)
        if replicas == self.desired:
            self.scale(new_rs, replicas)
            return
        if replicas > self.desired:
            self.scale(new_rs, self.desired)
            return
        self.scale(new_rs, self.new_rs_replicas(new_rs, old_rss))

    def reconcile_old(self, new_rs: dict, old_rss: list[dict]) -> list[dict]:
        new_rs = self.store.get("replicasets", self.ns, new_rs["metadata"]["name"], copy=False)  # read only
        old_pods = sum(self.spec_replicas(rs) for rs in old_rss)
        if old_pods == 0:
            return old_rss
        all_pods = old_pods + self.spec_replicas(new_rs)
        min_available = self.desired - self.max_unavailable()
        new_unavailable = self.spec_replicas(new_rs) - self.status_of(new_rs, "availableReplicas")
        max_scaled_down = all_pods - min_available - new_unavailable
        if max_scaled_down <= 0:
            return old_rss
        # First the old pods that are not available (they serve nobody).
        total = 0
        result = []
        for rs in old_rss:
            replicas = self.spec_replicas(rs)
            unhealthy = replicas - self.status_of(rs, "availableReplicas")
            if total >= max_scaled_down or replicas == 0 or unhealthy <= 0:
                result.append(rs)
                continue
            count = min(max_scaled_down - total, unhealthy)
            result.append(self.scale(rs, replicas - count))
            total += count
        old_rss = result
        # Then healthy old pods, as far as availability allows.
        available = sum(self.status_of(rs, "availableReplicas") for rs in old_rss) + self.status_of(new_rs, "availableReplicas")
        if available <= min_available:
            return old_rss
        to_scale = available - min_available
        scaled = 0
        result = []
        for rs in old_rss:
            replicas = self.spec_replicas(rs)
            if scaled >= to_scale or replicas == 0:
                result.append(rs)
                continue
            count = min(replicas, to_scale - scaled)
            result.append(self.scale(rs, replicas - count))
            scaled += count
        return result

    def cleanup(self, old_rss: list[dict]) -> list[dict]:
        limit = self.d["spec"].get("revisionHistoryLimit")
        limit = 10 if limit is None else int(limit)
        diff = len(old_rss) - limit
        if diff <= 0:
            return old_rss
        keep = list(old_rss)
        for rs in sorted(old_rss, key=_revision)[:diff]:
            if self.status_of(rs, "replicas") or self.spec_replicas(rs):
                continue
            self.store.delete("replicasets", self.ns, rs["metadata"]["name"])
            keep = [k for k in keep if k["metadata"]["name"] != rs["metadata"]["name"]]
        return keep

    # -- status ------------------------------------------------------------

    @staticmethod
    def condition(status: dict, kind: str) -> dict | None:
        return next((c for c in status.get("conditions") or [] if c.get("type") == kind), None)

    def set_condition(self, status: dict, kind: str, value: str, reason: str, message: str, *, keep_transition: bool = True) -> None:
        current = self.condition(status, kind)
        if current is not None and current.get("status") == value and current.get("reason") == reason:
            return
        now = format_timestamp(self.world._t)
        condition = {"type": kind, "status": value, "lastUpdateTime": now, "lastTransitionTime": now, "reason": reason, "message": message}
        if current is not None and current.get("status") == value and keep_transition:
            condition["lastTransitionTime"] = current["lastTransitionTime"]
        conditions = [c for c in status.get("conditions") or [] if c.get("type") != kind]
        conditions.append(condition)
        status["conditions"] = conditions

    def complete(self, status: dict) -> bool:
        return (
            int(status.get("updatedReplicas", 0)) == self.desired
            and int(status.get("replicas", 0)) == self.desired
            and int(status.get("availableReplicas", 0)) == self.desired
            and int(status.get("observedGeneration", 0)) >= int(self.d["metadata"].get("generation", 1))
        )

    def finish(self, new_rs: dict | None, old_rss: list[dict], progress: bool) -> None:
        names = [rs["metadata"]["name"] for rs in old_rss] + ([new_rs["metadata"]["name"]] if new_rs else [])
        current = []
        for name in names:
            try:
                current.append(self.store.get("replicasets", self.ns, name, copy=False))  # read only
            except NotFound:
                continue
        new_name = new_rs["metadata"]["name"] if new_rs else None
        new_current = next((rs for rs in current if rs["metadata"]["name"] == new_name), None)
        available = sum(self.status_of(rs, "availableReplicas") for rs in current)
        total_spec = sum(self.spec_replicas(rs) for rs in current)
        counts = {
            "observedGeneration": int(self.d["metadata"].get("generation", 1)),
            "replicas": sum(self.status_of(rs, "replicas") for rs in current),
            "updatedReplicas": self.status_of(new_current, "replicas"),
            "readyReplicas": sum(self.status_of(rs, "readyReplicas") for rs in current),
            "availableReplicas": available,
            "unavailableReplicas": max(total_spec - available, 0),
        }
        status = self.d["status"]
        new_status: dict[str, Any] = {k: v for k, v in counts.items() if v or k == "observedGeneration"}
        if status.get("collisionCount"):
            new_status["collisionCount"] = status["collisionCount"]
        new_status["conditions"] = [dict(c) for c in status.get("conditions") or []]
        if available >= self.desired - self.max_unavailable():
            self.set_condition(new_status, "Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability.")
        else:
            self.set_condition(new_status, "Available", "False", "MinimumReplicasUnavailable", "Deployment does not have minimum availability.")
        if progress:
            self.sync_progress(new_status, new_current)
        # Available first, then Progressing, as the apiserver returns them.
        order = {"Available": 0, "Progressing": 1, "ReplicaFailure": 2}
        new_status["conditions"].sort(key=lambda c: order.get(c["type"], 9))
        if new_status != self.old_status or self.d["metadata"] != self._stored_metadata():
            self.d["status"] = new_status
            self.store.update("deployments", self.ns, self.d, check_version=False)

    def _stored_metadata(self) -> dict:
        try:
            return self.store.get("deployments", self.ns, self.d["metadata"]["name"], copy=False)["metadata"]
        except NotFound:
            return {}

    def sync_progress(self, status: dict, new_rs: dict | None) -> None:
        if self.d["spec"].get("progressDeadlineSeconds") is None:
            return
        current = self.condition(status, "Progressing")
        complete_already = (
            int(status.get("replicas", 0)) == int(status.get("updatedReplicas", 0))
            and current is not None
            and current.get("reason") == "NewReplicaSetAvailable"
        )
        if complete_already:
            return
        name = new_rs["metadata"]["name"] if new_rs else ""
        if self.complete(status):
            self.set_condition(status, "Progressing", "True", "NewReplicaSetAvailable", f'ReplicaSet "{name}" has successfully progressed.')
        elif self.progressing(status):
            now = format_timestamp(self.world._t)
            condition = {"type": "Progressing", "status": "True", "lastUpdateTime": now, "lastTransitionTime": now, "reason": "ReplicaSetUpdated", "message": f'ReplicaSet "{name}" is progressing.'}
            if current is not None and current.get("status") == "True":
                condition["lastTransitionTime"] = current["lastTransitionTime"]
            status["conditions"] = [c for c in status["conditions"] if c.get("type") != "Progressing"] + [condition]
        elif self.timed_out(status):
            self.set_condition(status, "Progressing", "False", "ProgressDeadlineExceeded", f'ReplicaSet "{name}" has timed out progressing.')

    def progressing(self, status: dict) -> bool:
        old = self.old_status
        old_old = int(old.get("replicas", 0)) - int(old.get("updatedReplicas", 0))
        new_old = int(status.get("replicas", 0)) - int(status.get("updatedReplicas", 0))
        return (
            int(status.get("updatedReplicas", 0)) > int(old.get("updatedReplicas", 0))
            or new_old < old_old
            or int(status.get("readyReplicas", 0)) > int(old.get("readyReplicas", 0))
            or int(status.get("availableReplicas", 0)) > int(old.get("availableReplicas", 0))
        )

    def timed_out(self, status: dict) -> bool:
        current = self.condition(status, "Progressing")
        if current is None or current.get("reason") == "NewReplicaSetAvailable":
            return False
        if current.get("reason") == "ProgressDeadlineExceeded":
            return True
        deadline = int(self.d["spec"]["progressDeadlineSeconds"])
        since = parse_timestamp(current["lastUpdateTime"])
        return since + timedelta(seconds=deadline) < self.world._t

