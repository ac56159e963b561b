"""Drill scenarios: YAML files that describe a simulated incident.

(The README's "Drills" section, from docs/drills.md, carries this reference
with an example: change both together.)

A scenario names the services of the drill world, their rollout history, how
each version behaves, what happens while the drill runs, and what the runbook
expects the trainee to do (for scoring). Shipped scenarios live in
`console/drill/scenarios/`; `load_scenario()` takes a shipped name
("bad-deploy") or a path to a file of your own.

Scenario file reference
=======================

Durations ("offsets", "ages") are a number of seconds or a string of
``<number><unit>`` parts with units ``s``, ``m``, ``h``, ``d`` ("90s", "2m",
"1h30m"). Versions are strings: quote them in YAML when they could read as a
number ("1.2", not 1.2); an unquoted number is refused ("quote it"), since YAML
has already changed it (1.10 reads as 1.1). Fields that apply to some kinds
of service only (the canary's, the Kubernetes Deployment's) are refused on
the others.

Top level
---------
``name`` (required)
    Short name shown in the drill header.
``description`` (default "")
    What the trainee is told when the drill starts.
``seed`` (default 0)
    Makes pod names, pod IPs, log lines and intermittent behaviour
    reproducible: the same scenario and seed give the same world.
``start`` (default: the wall-clock time when the drill starts)
    UTC datetime of t=0 ("2024-01-17T14:43:00Z"). Offsets and ages count from it.
    The console drill and tests use it; ``--serve-only`` always starts at the
    wall-clock time so kubectl, ``status`` and Prometheus see fresh data.
``services`` (required, at least one)
    The simulated services, see below.
``facts`` (default: all false)
    Facts true at t=0. Fields, all optional: ``data_corruption``,
    ``security_vulnerability``, ``migration_applied``,
    ``migration_reversible`` (true/false/null = unknown), ``migration_name``,
    ``minor_bug_workaround``, ``external_service_issue``,
    ``infrastructure_issue``. These are the fields of `console.model.Facts`.
``timeline`` (default [])
    Events applied when the drill clock passes ``at``, see below.
``expect`` (required)
    ``action``: what the runbook calls for, one of ``rollback_now``,
    ``investigate``, ``fix_forward``, ``hotfix``, ``wait_external``,
    ``healthy``; ``by`` (optional offset): the decision should be that action
    by then (at t=0 without ``by``). With several services, the most urgent
    service's decision counts. Facts revealed by then are assumed declared.
    ``row`` (optional): the runbook row the drill trains, in the runbook's
    words ("Error rate > 5%"); ``drill --list`` shows it.

Service
-------
``name`` (required)
    The service name: Prometheus ``service`` label, health path /health/NAME,
    Kubernetes Service name and (kind deployment) Deployment name.
``namespace`` (default "default")
``kind`` (default "deployment")
    ``deployment``: one Deployment NAME behind Service NAME.
    ``blue-green``: Deployments NAME-blue and NAME-green (labels app and
    ``version: blue|green``); the Service selector's ``version`` key picks
    the live one.
    ``canary``: Deployments NAME (track stable) and NAME-canary (track canary)
    behind an Istio VirtualService NAME whose route weights the subsets
    ``stable`` and ``canary``.
    ``ecs``: an Amazon ECS service NAME (no Kubernetes objects), served by the
    drill's ECS API; each history entry registers the next revision of the
    task definition family (revision 1 is the oldest entry) and updates the
    service to it; ``replicas`` is the desired count, a version's
    ``ready_seconds`` how long its tasks stay PENDING. See ``ecs`` below.
``replicas`` (default 3)
    Desired replicas of each Deployment (canary: of the stable one).
``canary_replicas`` (default 1), ``canary_weight`` (default 20)
    Canary only: replicas of NAME-canary and the canary subset's weight (%)
    once the canary is deployed (the stable subset gets the rest).
``container`` (default "app")
    Container name in the pod template.
``image`` (required)
    Image repository; a version's image is ``IMAGE:VERSION``.
``label`` (default: the service name)
    Value of the ``app`` label on Deployments, pods and the Service selector.
``port`` (default 8080)
    Container port; the Service listens on 80 and targets it.
``health_path`` (default "/health")
    Path of the readiness probe in the pod template.
``ready_seconds`` (default 10)
    Simulated seconds from pod creation to Ready (a version may override).
``strategy`` (default "RollingUpdate")
    ``RollingUpdate`` (maxSurge 25 %, maxUnavailable 25 %) or ``Recreate``.
``progress_deadline_seconds`` (default 600), ``revision_history_limit`` (default 10)
    Copied into the Deployment spec.
``ecs`` (kind ecs only; all fields optional)
    ``cluster`` (default "default"), ``family`` (default: the service name),
    ``region`` (default "us-east-1", used in ARNs), ``circuit_breaker``:
    ``{enable: false, rollback: false}`` (the deployment circuit breaker),
    ``faults``: a list of ``{operation, error, count?, message?}``: the ECS API
    answers ``operation`` (``UpdateService``, ..., or ``"*"`` for all) with
    ``error`` (``AccessDeniedException``, ``ExpiredTokenException``,
    ``UnrecognizedClientException``, ``ThrottlingException``,
    ``ServerException``), ``count`` times (default: always), for drills of
    denied permissions, expired credentials and throttling.
``gitops`` (kind deployment only; default: no owner)
    The Argo CD Application or Flux Kustomization that deploys the service
    from git and heals drift: ``tool`` (``argocd`` or ``flux``, required),
    ``name`` (default: the service name), ``namespace`` (default ``argocd`` /
    ``flux-system``), ``automated`` (default true; Argo CD only),
    ``self_heal`` (default true), ``suspended`` (default false; Flux only),
    ``self_heal_seconds`` (default 5: drift is reverted this long after it
    appears), ``interval`` (default 3m), ``repo``, ``path``, ``parent``
    (Argo CD only: an app-of-apps Application that heals this one). See the
    README's "GitOps (Argo CD and Flux)".
``request_rate`` (default 50)
    Requests per second when the serving versions do not say otherwise.
``routes`` (default {"/": 1.0})
    Route -> share of the traffic (shares are normalised to sum to 1). Only
    these routes are measured.
``history`` (required, at least one, oldest first)
    What was deployed before the drill: ``version``, ``age`` (how long
    before t=0 it went live), ``change_cause`` (default "deploy VERSION").
    Blue-green entries name the ``environment`` (blue|green) the version was
    deployed to; traffic switched to it at ``age`` (the environment's pods
    started 5 minutes earlier). Canary entries name the ``track``
    (stable|canary, default stable); a canary entry deploys NAME-canary and
    sets the weights at ``age``.
    The last entry is what is live at t=0.
``versions`` (default {})
    Version -> behaviour. A version named in the scenario but not listed here
    behaves healthily with the defaults below. An image tag the scenario never
    names (a typo at the console) fails to pull (ImagePullBackOff).

Version behaviour
-----------------
``error_rate`` (default 0.001)
    Fraction of failing requests on every route not listed in ``routes``.
``latency_p95_ms`` (default 250)
``request_rate`` (default: the service's)
``ready`` (default true)
    false: the container crashes after starting (CrashLoopBackOff, restart
    count growing) and never becomes Ready.
``healthy`` (default true)
    false: the health endpoint answers 503 while versions failing their health
    check serve at least half of the traffic (with no ready pod it answers 503 anyway).
``ready_seconds`` (default: the service's)
``routes`` (default {})
    Route -> error rate for routes (of the service's ``routes``) that fail
    differently: a single failing endpoint.
``intermittent`` (default none)
    ``period_s``, ``high``, ``low`` (error rates), ``duty`` (default 0.5:
    the fraction of each period at ``high``). Replaces ``error_rate`` with a
    square wave whose phase comes from the seed.
``log_error`` (default "request failed: internal error")
    The message of this version's error log lines (and crash message).

Timeline event
--------------
Every event has ``at`` (offset from t=0, not negative) and exactly one of
the kinds below; events at the same ``at`` apply in file order.

``deploy``: ``{service, version, change_cause?, environment?, track?}``
    Sets the image of the service's Deployment (blue-green: of the
    ``environment``'s Deployment, default the idle one; canary: ``track``
    default canary, which also sets the canary weight).
``switch``: ``{service, to: blue|green}``
    Blue-green: points the Service selector at that environment.
``canary_weight``: ``{service, weight}``
    Canary: sets the VirtualService weights (canary WEIGHT, stable 100-WEIGHT).
``facts``: a facts mapping as above
    Merged into the current facts (what the trainee learns then and should declare).
``external_outage``: ``{service, active, dependency?, error_rate?, latency_p95_ms?}``
    An external dependency fails (``active: true``; default error rate 0.12,
    p95 1500 ms) or recovers (``active: false``); also sets the fact ``external_service_issue``.
``note``: text
    Shown to the trainee (recorded in the drill state).
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from console.yamlfile import UnreadableFile, load_yaml, read_hand_written

SCENARIO_DIR = Path(__file__).with_name("scenarios")

_DURATION = re.compile(r"^\s*(?:(\d+(?:\.\d+)?)\s*([smhd])\s*)+$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd])")
_UNIT_SECONDS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}

ACTIONS = ("rollback_now", "investigate", "fix_forward", "hotfix", "wait_external", "healthy")

KIND_ONLY_FIELDS: dict[str, tuple[str, ...]] = {
    "canary_replicas": ("canary",),
    "canary_weight": ("canary",),
    "strategy": ("deployment", "blue-green", "canary"),
    "progress_deadline_seconds": ("deployment", "blue-green", "canary"),
    "revision_history_limit": ("deployment", "blue-green", "canary"),
    "label": ("deployment", "blue-green", "canary"),
    "health_path": ("deployment", "blue-green", "canary"),
}
"""Service fields that only mean something for some kinds: given on another
kind they are refused, never silently ignored."""


class ScenarioError(Exception):
    """A scenario could not be loaded; str() is a sentence naming the file,
    the field and what was expected."""


def parse_duration(value: Any) -> float:
    """Seconds from a number or a string such as "90s", "2m", "1h30m", "-5m"."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 90, \"90s\", \"2m\" or \"1h30m\"")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        sign = -1.0 if text.startswith("-") else 1.0
        text = text.lstrip("+-")
        if re.fullmatch(r"\d+(\.\d+)?", text):
            return sign * float(text)
        if _DURATION.match(text):
            return sign * sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text))
    raise ValueError("expected a duration such as 90, \"90s\", \"2m\" or \"1h30m\"")


def _version_str(value: Any) -> Any:
    """Versions are strings: a number is refused, because YAML has already
    changed it (`1.10` reads as 1.1, `1.0` as 1.0, `010` as 8)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        written = getattr(value, "source", "") or str(value)
        raise ValueError(
            f"the version {written} reads as the number {value!r} in YAML: quote it (\"{written}\") "
            "so it stays the version you wrote"
        )
    return value


MAX_REPLICAS = 100
"""The most replicas one workload may have in the drill world, in a scenario or
asked for by kubectl (an admission limit: a real cluster has quotas), so
`--replicas=100000` is refused at once instead of simulating 100 000 pods."""


def _at(path: str, message: str) -> str:
    """A model validator's message about one of the model's fields: the error
    then names `path` (relative to the model), not the model itself."""
    return f"@{path}@ {message}"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Intermittent(_Model):
    """An error rate that oscillates between `high` and `low`."""

    period_s: float = Field(gt=0)
    high: float = Field(ge=0, le=1)
    low: float = Field(ge=0, le=1)
    duty: float = Field(default=0.5, gt=0, lt=1)


class Behaviour(_Model):
    """How one version behaves when it serves traffic."""

    error_rate: float = Field(default=0.001, ge=0, le=1)
    latency_p95_ms: float = Field(default=250.0, gt=0)
    request_rate: float | None = Field(default=None, ge=0)
    ready: bool = True
    healthy: bool = True
    ready_seconds: float | None = Field(default=None, ge=0)
    routes: dict[str, float] = Field(default_factory=dict)
    intermittent: Intermittent | None = None
    log_error: str = "request failed: internal error"

    @field_validator("routes")
    @classmethod
    def _route_rates(cls, routes: dict[str, float]) -> dict[str, float]:
        for route, rate in routes.items():
            if not 0 <= rate <= 1:
                raise ValueError(f"route {route!r} error rate must be between 0 and 1")
        return routes


class HistoryEntry(_Model):
    """One past deploy, oldest first in `Service.history`."""

    version: str
    age: float
    change_cause: str | None = None
    environment: Literal["blue", "green"] | None = None
    track: Literal["stable", "canary"] | None = None

    _v = field_validator("version", mode="before")(_version_str)

    @field_validator("age", mode="before")
    @classmethod
    def _age(cls, value: Any) -> float:
        seconds = parse_duration(value)
        if seconds < 0:
            raise ValueError("age must not be negative (it is how long before t=0)")
        return seconds

    @property
    def cause(self) -> str:
        return self.change_cause or f"deploy {self.version}"


EcsFaultError = Literal[
    "AccessDeniedException",
    "ExpiredTokenException",
    "UnrecognizedClientException",
    "ThrottlingException",
    "ServerException",
]


class EcsFault(_Model):
    """An error the drill's ECS API answers an operation with."""

    operation: str = Field(pattern=r"^(\*|[A-Z][A-Za-z]+)$")
    error: EcsFaultError
    count: int | None = Field(default=None, ge=1)
    message: str | None = None


class EcsCircuitBreaker(_Model):
    """ECS's deployment circuit breaker (deploymentConfiguration.deploymentCircuitBreaker)."""

    enable: bool = False
    rollback: bool = False


class EcsSettings(_Model):
    """Where an `ecs` service lives and how its deployments behave."""

    cluster: str = Field(default="default", pattern=r"^[A-Za-z0-9_-]{1,255}$")
    family: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,255}$")
    region: str = Field(default="us-east-1", pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")
    circuit_breaker: EcsCircuitBreaker = Field(default_factory=EcsCircuitBreaker)
    faults: list[EcsFault] = Field(default_factory=list)

    def family_name(self, service: Service) -> str:
        """The task definition family (default: the service name)."""
        return self.family or service.name


class GitOps(_Model):
    """The GitOps controller that owns a service (README "GitOps (Argo CD and Flux)").

    Argo CD: an Application NAME in NAMESPACE (default `argocd`) whose sync
    policy is automated (with `self_heal`) unless `automated` is false; the
    Deployment carries the `argocd.argoproj.io/tracking-id` annotation and the
    `app.kubernetes.io/instance` label. `parent` names an app-of-apps
    Application that owns this Application and heals it too.
    Flux: a Kustomization (or, with `kind: HelmRelease`, a HelmRelease) NAME
    in NAMESPACE (default `flux-system`), suspended when `suspended`; the
    Deployment carries the `kustomize.toolkit.fluxcd.io/name|namespace` (or
    `helm.toolkit.fluxcd.io/name|namespace`) labels.
    Every deploy of the service (its history and timeline) is a commit the
    controller synced from git.
    """

    tool: Literal["argocd", "flux"]
    # Flux's object: a Kustomization (default) or a HelmRelease (its helm-controller).
    kind: Literal["Kustomization", "HelmRelease"] | None = None
    name: str | None = Field(default=None, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    namespace: str | None = Field(default=None, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    automated: bool = True
    self_heal: bool = True
    suspended: bool = False
    # Argo CD's self-heal timeout (its default): drift of an owned object is reverted this long after it appears.
    self_heal_seconds: float = Field(default=5.0, ge=0)
    # The reconcile interval (Flux spec.interval; Argo CD's timeout.reconciliation).
    interval: float = Field(default=180.0, gt=0)
    repo: str = "https://git.example.com/platform/deploy.git"
    path: str | None = None
    parent: str | None = Field(default=None, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")

    @field_validator("self_heal_seconds", "interval", mode="before")
    @classmethod
    def _seconds(cls, value: Any) -> float:
        return parse_duration(value)

    @model_validator(mode="after")
    def _fits_tool(self) -> GitOps:
        if self.tool == "flux" and self.parent is not None:
            raise ValueError("parent (an app-of-apps Application) is for tool argocd")
        if self.tool == "flux" and not self.automated:
            raise ValueError("automated is Argo CD's; a Flux Kustomization is paused with suspended: true")
        if self.tool == "argocd" and self.kind is not None:
            raise ValueError("kind (Kustomization or HelmRelease) is for tool flux; Argo CD's is an Application")
        return self

    @property
    def owner_kind(self) -> str:
        """The owner's kind: Application, Kustomization or HelmRelease."""
        return "Application" if self.tool == "argocd" else (self.kind or "Kustomization")

    @property
    def owner_resource(self) -> str:
        """The owner's resource name in the API (applications, kustomizations, helmreleases)."""
        return self.owner_kind.lower() + "s"

    @property
    def owner_api_version(self) -> str:
        return {"Application": "argoproj.io/v1alpha1", "Kustomization": "kustomize.toolkit.fluxcd.io/v1",
                "HelmRelease": "helm.toolkit.fluxcd.io/v2"}[self.owner_kind]

    def owner_name(self, service: Service) -> str:
        return self.name or service.name

    @property
    def owner_namespace(self) -> str:
        return self.namespace or ("argocd" if self.tool == "argocd" else "flux-system")


class Service(_Model):
    """One simulated service and the platform objects behind it."""

    name: str = Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    namespace: str = Field(default="default", pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    kind: Literal["deployment", "blue-green", "canary", "ecs"] = "deployment"
    replicas: int = Field(default=3, ge=0, le=MAX_REPLICAS)
    canary_replicas: int = Field(default=1, ge=0, le=MAX_REPLICAS)
    canary_weight: int = Field(default=20, ge=0, le=100)
    container: str = "app"
    image: str
    label: str | None = None
    port: int = Field(default=8080, gt=0, lt=65536)
    health_path: str = "/health"
    ready_seconds: float = Field(default=10.0, ge=0)
    strategy: Literal["RollingUpdate", "Recreate"] = "RollingUpdate"
    progress_deadline_seconds: int = Field(default=600, gt=0)
    revision_history_limit: int = Field(default=10, ge=0)
    request_rate: float = Field(default=50.0, ge=0)
    routes: dict[str, float] = Field(default_factory=lambda: {"/": 1.0})
    history: list[HistoryEntry] = Field(min_length=1)
    versions: dict[str, Behaviour] = Field(default_factory=dict)
    ecs: EcsSettings = Field(default_factory=EcsSettings)
    gitops: GitOps | None = None

    @field_validator("versions", mode="before")
    @classmethod
    def _version_keys(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {_version_str(k): v for k, v in value.items()}
        return value

    @field_validator("routes")
    @classmethod
    def _shares(cls, routes: dict[str, float]) -> dict[str, float]:
        if not routes:
            raise ValueError("at least one route is needed")
        if any(share < 0 for share in routes.values()) or sum(routes.values()) <= 0:
            raise ValueError("route shares must be non-negative and not all zero")
        return routes

    @model_validator(mode="after")
    def _history_fits_kind(self) -> Service:
        for i, entry in enumerate(self.history):
            if self.kind == "blue-green" and entry.environment is None:
                raise ValueError(_at(f"history[{i}]", "needs an environment (blue or green) for a blue-green service"))
            if self.kind != "blue-green" and entry.environment is not None:
                raise ValueError(_at(f"history[{i}].environment",
                                     f"only blue-green services take one, and this one is {self.kind}: remove it"))
            if self.kind != "canary" and entry.track is not None:
                raise ValueError(_at(f"history[{i}].track",
                                     f"only canary services take one, and this one is {self.kind}: remove it"))
        for i in range(1, len(self.history)):
            older, newer = self.history[i - 1].age, self.history[i].age
            if newer >= older:
                raise ValueError(_at(
                    "history", f"must be oldest first, each entry younger than the one before (ages decreasing): "
                               f"entry {i} is {newer:g} s old and entry {i - 1} {older:g} s"))
        if self.kind == "canary" and (self.history[0].track or "stable") != "stable":
            raise ValueError(_at("history[0].track", "the first entry of a canary service must be a stable deploy"))
        if self.kind != "ecs" and "ecs" in self.model_fields_set:
            raise ValueError(_at("ecs", f"ecs settings are for services of kind ecs, and this one is {self.kind}"))
        for field, kinds in KIND_ONLY_FIELDS.items():
            if field in self.model_fields_set and self.kind not in kinds:
                raise ValueError(_at(field,
                    f"applies to services of kind {' or '.join(kinds)}, and this one is {self.kind}: "
                    f"remove {field} or change the kind"
                ))
        for version, behaviour in self.versions.items():
            for route in behaviour.routes:
                if route not in self.routes:
                    raise ValueError(_at(
                        f'versions["{version}"].routes',
                        f"{route!r} is not one of the service's routes ({', '.join(map(repr, self.routes))}): "
                        "name one of them, or add it to the service's routes"))
        if self.gitops is not None and self.kind != "deployment":
            raise ValueError(_at("gitops", f"gitops owners are for services of kind deployment, and this one is {self.kind}"))
        return self

    @property
    def app_label(self) -> str:
        return self.label or self.name

    def behaviour(self, version: str) -> Behaviour | None:
        """The behaviour of a version the scenario knows, None for an unknown tag."""
        if version in self.versions:
            return self.versions[version]
        if version in self.known_versions:
            return Behaviour()
        return None

    @property
    def known_versions(self) -> set[str]:
        return {entry.version for entry in self.history} | set(self.versions)

    def image_of(self, version: str) -> str:
        return f"{self.image}:{version}"


class Facts(_Model):
    """Facts as the scenario states them (the fields of console.model.Facts)."""

    data_corruption: bool = False
    security_vulnerability: bool = False
    migration_applied: bool = False
    migration_reversible: bool | None = None
    migration_name: str | None = None
    minor_bug_workaround: bool = False
    external_service_issue: bool = False
    infrastructure_issue: bool = False


class DeployEvent(_Model):
    service: str
    version: str
    change_cause: str | None = None
    environment: Literal["blue", "green"] | None = None
    track: Literal["stable", "canary"] | None = None

    _v = field_validator("version", mode="before")(_version_str)


class SwitchEvent(_Model):
    service: str
    to: Literal["blue", "green"]


class CanaryWeightEvent(_Model):
    service: str
    weight: int = Field(ge=0, le=100)


class OutageEvent(_Model):
    service: str
    active: bool
    dependency: str = "an external dependency"
    error_rate: float = Field(default=0.12, ge=0, le=1)
    latency_p95_ms: float = Field(default=1500.0, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _yaml_on(cls, data: Any) -> Any:
        # YAML 1.1 reads a key `on` as the boolean true: accept it as `active`.
        if isinstance(data, dict):
            data = {("active" if key is True or key == "on" else key): value for key, value in data.items()}
        return data


class TimelineEvent(_Model):
    """Something that happens when the drill clock passes `at`."""

    at: float
    deploy: DeployEvent | None = None
    switch: SwitchEvent | None = None
    canary_weight: CanaryWeightEvent | None = None
    facts: dict[str, Any] | None = None
    external_outage: OutageEvent | None = None
    note: str | None = None

    @field_validator("at", mode="before")
    @classmethod
    def _at(cls, value: Any) -> float:
        seconds = parse_duration(value)
        if seconds < 0:
            raise ValueError("at must not be negative (history belongs in the services' history)")
        return seconds

    @field_validator("facts")
    @classmethod
    def _facts(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            Facts(**value)  # validates names and types
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> TimelineEvent:
        kinds = [k for k in ("deploy", "switch", "canary_weight", "facts", "external_outage", "note") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError("an event needs exactly one of deploy, switch, canary_weight, facts, external_outage, note")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in ("deploy", "switch", "canary_weight", "facts", "external_outage", "note") if getattr(self, k) is not None)


class Expect(_Model):
    """What the runbook expects the trainee to do."""

    action: Literal["rollback_now", "investigate", "fix_forward", "hotfix", "wait_external", "healthy"]
    by: float | None = None
    row: str | None = None

    @field_validator("row")
    @classmethod
    def _row(cls, value: str | None) -> str | None:
        from console.decision import ROWS_BY_CONDITION

        if value is not None and value not in ROWS_BY_CONDITION:
            raise ValueError(f"row must be a condition of the runbook's decision tables: {', '.join(ROWS_BY_CONDITION)}")
        return value

    @field_validator("action", mode="before")
    @classmethod
    def _action(cls, value: Any) -> Any:
        if value not in ACTIONS:
            raise ValueError(f"expect.action must be one of the runbook's actions: {', '.join(ACTIONS)}")
        return value

    @field_validator("by", mode="before")
    @classmethod
    def _by(cls, value: Any) -> float | None:
        if value is None:
            return None
        seconds = parse_duration(value)
        if seconds < 0:
            raise ValueError("by must not be negative (it is an offset from t=0)")
        return seconds


class Scenario(_Model):
    """A whole drill: services, history, behaviour, timeline, expectation."""

    name: str
    description: str = ""
    seed: int = 0
    start: datetime | None = None
    services: list[Service] = Field(min_length=1)
    facts: Facts = Field(default_factory=Facts)
    timeline: list[TimelineEvent] = Field(default_factory=list)
    expect: Expect

    @field_validator("start")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)

    @model_validator(mode="after")
    def _references(self) -> Scenario:
        first: dict[str, int] = {}
        for j, service in enumerate(self.services):
            if service.name in first:
                raise ValueError(_at(f"services[{j}].name", f"{service.name!r} is already the name of "
                                                            f"services[{first[service.name]}]; service names must be unique"))
            first[service.name] = j
        by_name = {s.name: s for s in self.services}
        known = ", ".join(by_name)
        for i, event in enumerate(self.timeline):
            target = getattr(event, event.kind)
            service_name = getattr(target, "service", None)
            if service_name is None:
                continue
            where = f"timeline[{i}].{event.kind}"
            service = by_name.get(service_name)
            if service is None:
                raise ValueError(_at(f"{where}.service", f"{service_name!r} is not in services ({known}): name one of them"))
            if event.switch and service.kind != "blue-green":
                raise ValueError(_at(f"{where}.service", f"switches {service_name!r}, which is {service.kind}, not blue-green"))
            if event.canary_weight and service.kind != "canary":
                raise ValueError(_at(f"{where}.service",
                                     f"sets a canary weight on {service_name!r}, which is {service.kind}, not canary"))
            if event.deploy and event.deploy.environment is not None and service.kind != "blue-green":
                raise ValueError(_at(f"{where}.environment",
                                     f"{service_name!r} is {service.kind}: only blue-green deploys name an environment"))
            if event.deploy and event.deploy.track is not None and service.kind != "canary":
                raise ValueError(_at(f"{where}.track", f"{service_name!r} is {service.kind}: only canary deploys name a track"))
        return self

    def service(self, name: str) -> Service:
        """The service called `name` (KeyError if there is none)."""
        return self.services_by_name[name]

    @cached_property
    def services_by_name(self) -> dict[str, Service]:
        """The services by name (names are unique): the world looks a service up
        for every series of every query, thousands of times a cycle at 1,000 services."""
        return {service.name: service for service in self.services}

    def known_versions(self, service: Service) -> set[str]:
        """Every version the scenario names for `service`, timeline included."""
        versions = service.known_versions
        for event in self.timeline:
            if event.deploy and event.deploy.service == service.name:
                versions.add(event.deploy.version)
        return versions


def story_line(scenario: Scenario) -> str:
    """The scenario's story in one line: the first sentence of its description."""
    text = " ".join(scenario.description.split())
    if not text:
        return "(no description)"
    end = re.search(r"[.!?](\s|$)", text)
    return text[: end.start() + 1] if end else text


_FIELD_NAMES = frozenset(
    name for model in (Intermittent, Behaviour, HistoryEntry, EcsFault, EcsCircuitBreaker, EcsSettings, GitOps, Service,
                       Facts, DeployEvent, SwitchEvent, CanaryWeightEvent, OutageEvent, TimelineEvent, Expect, Scenario)
    for name in model.model_fields
)
"""Every field a scenario may name, for "did you mean" on an unknown one."""


def list_scenarios() -> list[str]:
    """Names of the shipped scenarios, sorted."""
    folder = resources.files("console.drill") / "scenarios"
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def _resolve(name_or_path: str | Path) -> Path:
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml") or candidate.exists() or "/" in str(name_or_path):
        return candidate
    return SCENARIO_DIR / f"{name_or_path}.yaml"


def _field_path(loc: tuple[Any, ...]) -> str:
    """`services[0].versions["1.2.3"].error_rate`: a version key (dots of its own) in quotes."""
    out = ""
    after_versions = False
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif after_versions:
            out += f'["{part}"]'
        else:
            out += ("." if out else "") + str(part)
        after_versions = part in ("versions", "routes") and not after_versions
    return out or "(top level)"


_DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


def explain_error(error: dict) -> str:
    """One error of a scenario in words a trainer reads: unknown fields with the
    nearest known one, patterns said in words, no library jargon."""
    kind, loc = error.get("type", ""), tuple(error.get("loc") or ())
    if kind == "extra_forbidden":
        name = str(loc[-1]) if loc else "?"
        if "facts" in loc:
            known = [f for f in Facts.model_fields]
            return f"unknown fact {name!r}; the facts are {', '.join(known)}"
        import difflib

        near = difflib.get_close_matches(name, sorted(_FIELD_NAMES), n=1, cutoff=0.75)
        hint = f" (did you mean {near[0]}?)" if near else ""
        return f"unknown field{hint}; the fields are in the README's \"Scenario files\""
    if kind == "string_pattern_mismatch":
        pattern = (error.get("ctx") or {}).get("pattern", "")
        if pattern == _DNS_LABEL:
            return "must be a lower-case DNS label: letters a-z, digits and '-', starting and ending with a letter or digit"
    if kind == "too_short":
        return "give at least one"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"expected a mapping of fields, found {type(error.get('input')).__name__}"
    if kind == "missing":
        return "field required"
    message = str(error.get("msg", "invalid value"))
    message = message.removeprefix("Value error, ")
    return message[0].lower() + message[1:] if message and not message.startswith("@") else message


MAX_SCENARIO_BYTES = 4 * 1024 * 1024
"""A scenario file larger than this (4 MiB) is refused unread (a 1,000-service scenario is about 200 KiB)."""


def load_scenario(name_or_path: str | Path) -> Scenario:
    """Load and validate a scenario by shipped name ("bad-deploy") or path.

    Raises ScenarioError with a sentence naming the file, the field and the
    expectation when the file is missing, not YAML, or not a valid scenario.
    """
    path = _resolve(name_or_path)
    if not path.exists():
        shipped = ", ".join(list_scenarios())
        raise ScenarioError(
            f"Scenario {str(name_or_path)!r} was not found: give a path to a YAML file or one of the shipped names ({shipped})."
        )
    try:
        data = load_yaml(read_hand_written(path, MAX_SCENARIO_BYTES, "scenario"), keep_number_text=True)
    except UnreadableFile as exc:
        raise ScenarioError(f"Scenario file {path}: {exc}.") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "a syntax error"
        raise ScenarioError(f"Scenario file {path} is not valid YAML{where}: {problem}; fix it and try again.") from None
    except OSError as exc:
        raise ScenarioError(f"Scenario file {path} could not be read ({exc.strerror}): check the path and its permissions.") from None
    return parse_scenario(data, source=str(path))


def _plain(value: Any) -> Any:
    """A number read with its source text, shown as the plain number."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    return value


def parse_scenario(data: Any, source: str = "<scenario>") -> Scenario:
    """Validate already-parsed YAML data (see `load_scenario`)."""
    if not isinstance(data, dict):
        raise ScenarioError(f"Scenario file {source} must be a mapping of fields (name, services, expect ...) at the top level.")
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = tuple(first["loc"])
        message = explain_error(first)
        if message.startswith("@"):  # a model validator naming one of the model's fields (`_at`)
            path, _, message = message[1:].partition("@ ")
            field = _field_path(loc) if loc else ""
            field = (field + ("" if path.startswith("[") else ".") + path) if field else path
        else:
            field = _field_path(loc)
        got = first.get("input")
        quiet = (first["type"] in ("missing", "extra_forbidden") or isinstance(got, (dict, list)) or "quote it" in message
                 or first["type"].startswith("value_error"))
        got_text = "" if quiet else f" (got {_plain(got)!r})"
        more = len(exc.errors()) - 1
        extra = f"; {more} more problem{'s' if more > 1 else ''} after this one" if more else ""
        raise ScenarioError(
            f"Scenario file {source}, field {field}: {message[0].lower() + message[1:]}{got_text}{extra}. Fix the file and load it again."
        ) from None
