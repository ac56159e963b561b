"""The Platform protocol every rollback target implements, its typed errors,
and the small frozen records of the runbook's step 4 (pods and their logs).

Platforms are synchronous: the official Kubernetes client is, and the UI runs
them in thread workers. Every error a platform raises is a `PlatformError`
whose `str()` is a sentence an operator can act on, never a traceback.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable, Iterator, Protocol, runtime_checkable

from console.clock import parse_rfc3339
from console.model import ApiCall, Health, Progress, Revision, RollbackPlan

ROLLOUT_TIMEOUT = 300.0
"""Seconds a rollback may take to become healthy before it is reported failed
(the default of config's `rollout_timeout`, which every caller passes on)."""


class PlatformError(Exception):
    """A platform operation failed; `str(err)` says what happened and what to do."""

    def __init__(self, sentence: str) -> None:
        super().__init__(sentence)
        self.sentence = sentence

    def __str__(self) -> str:
        return self.sentence


class Forbidden(PlatformError):
    """The credentials are missing, expired or lack the permission."""


class NotFound(PlatformError):
    """The service, deployment or revision does not exist."""


class Usage(PlatformError):
    """What was asked does not fit this platform (a quick rollback off Compose,
    a revision a canary cannot go to): the command's usage error, exit 2."""


class Conflict(PlatformError):
    """The target changed since the operator looked, or is in a state that
    forbids the change (a paused deployment)."""


class LeaseHeld(Conflict):
    """Another console holds the service's rollback lease: refused, nothing was changed."""


class Timeout(PlatformError):
    """The platform did not answer, or the rollout did not finish, in time."""


class Unavailable(PlatformError):
    """The platform's API cannot be reached or is failing."""


@dataclass(frozen=True)
class PodInfo:
    """One pod, as `kubectl get pods -l app=SERVICE` shows it."""

    name: str
    ready: bool
    # "2/2": ready containers out of all containers.
    ready_containers: str
    status: str
    restarts: int
    age: timedelta | None
    images: tuple[str, ...] = ()
    # The ReplicaSet (or task set, container ...) the pod belongs to.
    owner: str = ""
    created: datetime | None = None


@dataclass(frozen=True)
class PodLogs:
    """The last lines of one pod's log, as `kubectl logs -l app=SERVICE --tail=N`."""

    pod: str
    lines: tuple[str, ...]
    # Why the log could not be read, as a sentence; lines is then empty.
    error: str | None = None


@runtime_checkable
class Platform(Protocol):
    """A rollback target: Kubernetes, ECS, Compose, blue-green, canary."""

    name: str

    def history(self) -> list[Revision]:
        """What can be rolled back to, newest revision first."""

    def health(self) -> Health:
        """Pod or task counts (the health endpoint is the signals' job)."""

    def plan_rollback(self, to_revision: int | None = None) -> RollbackPlan:
        """A pure description of the rollback; changes nothing. `to_revision` is a
        number (a blue-green `model.ColourRevision` reaches only the blue-green
        platform: `Session.plan_rollback` refuses it for the others)."""

    def execute(self, plan: RollbackPlan, timeout: float = ROLLOUT_TIMEOUT) -> Iterator[Progress]:
        """Apply the plan and report progress until it finishes or fails."""

    def verify(self) -> Health:
        """Pods, tasks or containers healthy after a rollback."""


@dataclass(frozen=True)
class Routing:
    """Where a service's traffic goes: the live blue-green colour, or the
    canary's weights. The panes show it; platforms without a traffic switch
    have none."""

    # "blue-green" or "canary"
    kind: str
    # (colour or subset, percent of traffic), e.g. (("blue", 0), ("green", 100)).
    weights: tuple[tuple[str, int], ...]
    # Blue-green: the colour the Service selects now.
    active: str | None = None
    # The object that decides it: "service/checkout", "virtualservice/search".
    source: str = ""
    # Replicas per deployment behind the split, e.g. (("search-canary", 1),).
    replicas: tuple[tuple[str, int], ...] = ()

    def weight(self, name: str) -> int | None:
        """The percentage of traffic `name` (colour or subset) gets, None if unknown."""
        return next((w for n, w in self.weights if n == name), None)

    def __str__(self) -> str:
        return " / ".join(f"{name} {weight}" for name, weight in self.weights)


# --- optional capabilities: one Protocol each, one refusal sentence each ------------
# Callers check `isinstance(platform, Capability)`, or call `capable(...)`,
# never probe with getattr.


@runtime_checkable
class Scalable(Protocol):
    """A platform whose serving deployment can be scaled (freezing writes)."""

    def scale(self, replicas: int) -> int:
        """Set the replica count; returns the count it replaced."""

    def replicas(self) -> int:
        """The desired replica count now."""

    def scale_call(self, replicas: int, current: int) -> ApiCall:
        """The request `scale` makes, to show before it is made."""


@runtime_checkable
class Templated(Protocol):
    """A platform whose revisions have pod templates to show and compare."""

    def template(self, revision: int | None = None) -> dict:
        """The pod template of `revision` (the current one when None)."""


@runtime_checkable
class WithPods(Protocol):
    """A platform that lists its pods and reads their logs."""

    def pods(self) -> tuple[PodInfo, ...]:
        """`kubectl get pods -l ...`."""

    def logs(self, tail: int = 50) -> tuple[PodLogs, ...]:
        """`kubectl logs -l ... --tail=N`."""


@runtime_checkable
class Followed(Protocol):
    """A platform whose rollout can be followed after the fact (`kubectl rollout status`)."""

    def follow(self, timeout: float = ROLLOUT_TIMEOUT) -> Iterator[Progress]:
        """The rollout's progress from now until it is done or fails."""


@runtime_checkable
class Observable(Protocol):
    """A platform that reads health and history in one go (the refresh's call)."""

    def observe(self, history: bool = True) -> tuple[Health, list[Revision] | None]:
        """Health and, when asked, the history, from one read."""


@runtime_checkable
class ObservableAsync(Protocol):
    """An Observable whose refresh read runs on the cycle's event loop rather
    than in a thread (Kubernetes: one GET through aiohttp)."""

    async def observe_async(self, http: Any, blocking: Any) -> tuple[Health, object]:
        """Health from one read made with `http` (an aiohttp session), and that
        read, for `observe(True, known=read)`. `blocking(fn)` runs `fn` in a
        thread and awaits it."""

    def observe(self, history: bool = True, known: object = None) -> tuple[Health, list[Revision] | None]:
        """As Observable's, from `known` when given."""


@runtime_checkable
class QuickRollback(Protocol):
    """A platform with the runbook's quick rollback (Docker Compose: keep the
    previous container and start it)."""

    def quick_rollback_to_finish(self) -> str | None:
        """After a quick rollback, what the full rollback still has to do (None when nothing)."""


REFUSALS: dict[type, str] = {
    Scalable: "cannot scale from the console; do it by hand",
    Templated: "has no pod templates to show",
    WithPods: "does not list pods or read their logs",
    Followed: "cannot follow a rollout after the fact",
    Observable: "reads health and history separately",
    QuickRollback: "has no quick rollback (it is the Docker Compose procedure); roll it back the usual way",
}
"""The one sentence each capability's absence gives (after "The PLATFORM platform of SERVICE")."""


_OFFERED: dict[tuple[type, type], bool] = {}


def offers(platform: object, capability: type) -> bool:
    """`isinstance(platform, capability)` for a runtime-checkable protocol,
    worked out once per platform class: Python 3.11 lists the protocol's
    members at every such check (40-50 µs), and the refresh asks a few per
    service per cycle. A protocol is a set of methods, which a class has or
    has not: platforms never add them per instance."""
    key = (type(platform), capability)
    found = _OFFERED.get(key)
    if found is None:
        found = _OFFERED[key] = isinstance(platform, capability)
    return found


def lacks(platform: object, capability: type) -> str:
    """The sentence saying `platform` lacks `capability`."""
    kind = getattr(platform, "platform", None) or type(platform).__name__
    name = getattr(platform, "name", "the service")
    return f"The {kind} platform of {name} {REFUSALS[capability]}."


def capable(platform: object, capability: type):
    """`platform` if it has `capability`, else PlatformError with its one sentence."""
    if not isinstance(platform, capability):
        raise PlatformError(lacks(platform, capability))
    return platform


@runtime_checkable
class Routed(Protocol):
    """A platform with a traffic switch (blue-green) or split (canary)."""

    def routing(self) -> Routing:
        """Where the traffic goes now."""


@runtime_checkable
class Leased(Protocol):
    """A platform whose changes are serialised across consoles by a lease."""

    def rollback_lease(self, holder: str, ttl: float | None = None):  # -> lease.RollbackLease
        """The service's rollback lease, held by `holder` (`user@host`) while it is used."""


@runtime_checkable
class Owned(Protocol):
    """A platform whose service may be deployed by a GitOps owner (Argo CD, Flux)."""

    def owner(self):  # -> gitops.Owner | None
        """Who deploys the service from git, None when nothing does (read fresh)."""


@dataclass(frozen=True)
class Surroundings:
    """What the routing pane, the lease strip and the owner strip show of one
    service, read together: where its traffic goes, who holds its rollback
    lease (a `lease.LeaseHolder`), who deploys it from git (a `gitops.Owner`),
    whether the autopilot is paused in its namespace (a `lease.ClusterPause`).
    Each is None when the platform has none or nobody holds it; a read that
    failed leaves its sentence instead."""

    routing: Routing | None = None
    holder: object = None
    owner: object = None
    routing_error: str | None = None
    lease_error: str | None = None
    owner_error: str | None = None
    # The autopilot's kill switch in the service's namespace (a `lease.ClusterPause`); None when
    # there is none or it cannot be read (the strip then says nothing; the autopilot itself fails safe).
    paused: object = None


def read_surroundings(service: str, platform: Platform, operator: str) -> Surroundings:
    """Read `service`'s Surroundings from its platform (requests: call from a
    worker, or from the refresh process). `operator` is whose lease it would be."""
    routing = holder = owner = paused = None
    routing_error = lease_error = owner_error = None
    if offers(platform, Routed):
        try:
            routing = platform.routing()
        except PlatformError as err:
            routing_error = f"Cannot read where {service}'s traffic goes: {err}"
    if offers(platform, Leased):
        try:
            holder = platform.rollback_lease(operator).current()
        except PlatformError as err:
            lease_error = f"Cannot read the rollback lease of {service}: {err}"
        from console.platforms.lease import PauseLease

        try:
            paused = PauseLease.of(platform).read()
        except PlatformError:
            pass  # shown as not paused; a switch the autopilot cannot read stops it (autopilot.switch)
    if offers(platform, Owned):
        try:
            owner = platform.owner()
        except PlatformError as err:
            owner_error = f"Cannot read who deploys {service} from git: {err}"
    return Surroundings(routing, holder, owner, routing_error, lease_error, owner_error, paused)


@runtime_checkable
class Recorded(Protocol):
    """A platform whose objects carry the rollback records (annotations, tags):
    every console reads them, and writes its own with each rollback."""

    def provenance(self):  # -> provenance.Provenance
        """What the objects say about past rollbacks (console records, the
        rollout history's undos, who set a selector), read fresh."""

    def with_record(self, plan: RollbackPlan, record, existing=()) -> RollbackPlan:
        """`plan` whose change also writes `record` (a `provenance.RollbackRecord`,
        kept with the `existing` ones) on the object, in the same request where the
        platform allows it, so the change and its record never part."""


@runtime_checkable
class PlanRecorded(Protocol):
    """A Recorded platform whose plan's change is refused when its records changed since the plan's read."""

    def plan_provenance(self, plan: RollbackPlan):  # -> provenance.Provenance | None
        """The records read with `plan`, or None when they must be read fresh."""


@runtime_checkable
class Observed(Protocol):
    """A platform whose refresh reads (`observe`) also yield its provenance, at no extra request."""

    def recorded(self):  # -> provenance.Provenance | None
        """The provenance read with the last refresh that read the history (None before one)."""


def parse_time(value: str | None) -> datetime | None:
    """An RFC 3339 timestamp from the API as an aware datetime."""
    return parse_rfc3339(value)


# --- Kubernetes error translation -------------------------------------------
# Lives here rather than in kubernetes.py because the Istio-based platforms
# (blue-green, canary) talk to the same API and fail the same ways.


def describe_target(resource: str, name: str | None, namespace: str | None) -> str:
    """'deployments "order-service" in namespace "shop"' and shorter variants."""
    text = resource
    if name:
        text += f' "{name}"'
    if namespace:
        text += f' in namespace "{namespace}"'
    return text


def _server_message(exc: Exception) -> str:
    """The apiserver's own message from an ApiException body, if any."""
    body = getattr(exc, "body", None)
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str) and body:
        try:
            parsed = json.loads(body)
        except ValueError:
            return body.strip()[:300]
        if isinstance(parsed, dict) and parsed.get("message"):
            return str(parsed["message"])
    reason = getattr(exc, "reason", None)
    return str(reason) if reason else ""


def _exception_chain(exc: BaseException) -> list[BaseException]:
    """The exception and everything it wraps (urllib3 nests the real cause in
    `reason`, Python in `__cause__`/`__context__`)."""
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    chain: list[BaseException] = []
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        chain.append(current)
        for inner in (getattr(current, "reason", None), current.__cause__, current.__context__):
            if isinstance(inner, BaseException):
                stack.append(inner)
    return chain


def _connection_problem(exc: BaseException) -> str:
    """A short phrase for why a connection failed ("connection refused")."""
    chain = _exception_chain(exc)
    text = " ".join(str(item) for item in chain).lower()
    if "refused" in text:
        return "connection refused"
    if "name or service not known" in text or "nodename nor servname" in text or (
        "name resolution" in text
    ):
        return "the host name does not resolve"
    if "certificate" in text or "ssl" in text or "tls" in text:
        return "the TLS handshake failed (certificate not trusted or wrong CA in the kubeconfig)"
    if "timed out" in text or "timeout" in text:
        return "the connection timed out"
    if "reset" in text or "remotedisconnected" in text or "connection aborted" in text:
        return "the connection was reset"
    if "no route" in text or "unreachable" in text:
        return "no route to the host"
    return "the connection failed"


def kubernetes_error(
    exc: BaseException,
    *,
    verb: str,
    resource: str,
    name: str | None = None,
    namespace: str | None = None,
    server: str = "",
    timeout: float | None = None,
) -> PlatformError:
    """Translate a kubernetes-client ApiException or a urllib3 error into a
    typed PlatformError whose sentence names the verb, the object and what to do."""
    if isinstance(exc, PlatformError):
        return exc
    target = describe_target(resource, name, namespace)
    where = f" at {server}" if server else ""
    status = getattr(exc, "status", None)
    if isinstance(status, int) and status:
        message = _server_message(exc)
        detail = f" ({message})" if message else ""
        if status == 401:
            return Forbidden(
                f"Kubernetes{where} did not accept your credentials when trying to {verb} "
                f"{target} (Unauthorized): log in again or refresh the token in your kubeconfig."
            )
        if status == 403:
            return Forbidden(
                f"Kubernetes refused to {verb} {target} (Forbidden): your credentials lack "
                "that permission; ask a cluster admin or use a context that has it."
            )
        if status == 404:
            singular = resource[:-1] if resource.endswith("s") else resource
            missing = describe_target(singular.capitalize(), name, None)
            scope = f' in namespace "{namespace}"' if namespace else ""
            return NotFound(
                f"{missing} not found{scope}{where}: check the name and namespace in the "
                "console config and the kubeconfig context."
            )
        if status == 409:
            return Conflict(
                f"Kubernetes refused to {verb} {target} (Conflict): it changed while you were "
                f"looking{detail}; review the new state and try again."
            )
        if status == 422 or status == 400:
            return PlatformError(
                f"Kubernetes rejected the request to {verb} {target} (HTTP {status}){detail}; "
                "this is a bug in the console or an admission policy, tell the platform team."
            )
        if status == 504:
            return Timeout(
                f"Kubernetes{where} timed out trying to {verb} {target} (HTTP 504); "
                "try again, and check the cluster's health if it persists."
            )
        if status == 429 or status >= 500:
            return Unavailable(
                f"Kubernetes{where} failed to {verb} {target} (HTTP {status}){detail}; try again "
                "shortly, and escalate to the platform team if it persists."
            )
        return PlatformError(
            f"Kubernetes answered HTTP {status} when trying to {verb} {target}{detail}."
        )
    phrase = _connection_problem(exc)
    if any("ReadTimeout" in type(item).__name__ for item in _exception_chain(exc)) or (
        "read timed out" in str(exc).lower()
    ):
        limit = f" within {timeout:.1f} s" if timeout is not None else " in time"
        return Timeout(
            f"The Kubernetes API{where} did not answer{limit} when trying to {verb} {target}; "
            "check the connection (VPN) and the cluster's health, then try again."
        )
    return Unavailable(
        f"Cannot reach the Kubernetes API{where}: {phrase}. "
        "Check the kubeconfig context and VPN."
    )


_SHAPE_ERRORS = (AttributeError, KeyError, IndexError, TypeError, ValueError, RecursionError)


def shape_checked(backend: str, method: Callable) -> Callable:
    """`method` with a backend answer of the wrong shape (a number where an
    object belongs, a missing field) turned into an Unavailable sentence
    naming `backend`, never a traceback. Generators are checked as they run,
    coroutines as they are awaited."""
    import functools
    import inspect

    def problem(self: Any, exc: BaseException) -> Unavailable:
        where = getattr(self, "server", "") or ""
        return Unavailable(
            f"The {backend}{' at ' + where if where else ''} answered in an unexpected shape "
            f"({type(exc).__name__} reading it); check that the config points at a real {backend}."
        )

    if inspect.iscoroutinefunction(method):
        @functools.wraps(method)
        async def coroutine(self: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return await method(self, *args, **kwargs)
            except _SHAPE_ERRORS as exc:
                raise problem(self, exc) from None

        return coroutine

    if inspect.isgeneratorfunction(method):
        @functools.wraps(method)
        def generator(self: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return (yield from method(self, *args, **kwargs))
            except _SHAPE_ERRORS as exc:
                raise problem(self, exc) from None

        return generator

    @functools.wraps(method)
    def checked(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except _SHAPE_ERRORS as exc:
            raise problem(self, exc) from None

    return checked
