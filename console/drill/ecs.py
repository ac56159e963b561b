"""The drill world's Amazon ECS: clusters, services, task definitions, and
deployments that progress over simulated time the way ECS's rolling update
does, so that `aws ecs wait services-stable` and boto3's `services_stable`
waiter succeed (or time out) against it as they would against AWS.

The model follows what DescribeServices shows during a real deployment:

- UpdateService with a new task definition makes a new PRIMARY deployment
  (rolloutState IN_PROGRESS); the previous PRIMARY becomes ACTIVE.
- The scheduler launches the PRIMARY's tasks as far as `maximumPercent`
  (200 %) allows; a task is PENDING until its version's start time has passed,
  then RUNNING. Tasks of a version that cannot start (the scenario's
  `ready: false`) stop with "Essential container in task exited" before they
  ever count as RUNNING; an image the
  scenario never names stops with CannotPullContainerError. Failed tasks are
  replaced, and counted in the deployment's `failedTasks`; once a deployment
  has lost as many tasks as it wants, relaunches are throttled (10 s doubling
  up to 15 minutes), as ECS does.
- Old tasks are stopped as new ones run, never dropping below
  `minimumHealthyPercent` (100 %) of the desired count; a stopping task drains
  for TASK_STOP_SECONDS, then is STOPPED. An ACTIVE deployment with no tasks
  left disappears from the list.
- The PRIMARY is COMPLETED once it is the only deployment and runs the desired
  count (the same condition the waiter checks).
- With the deployment circuit breaker on, a deployment whose failed tasks reach
  the threshold (half the desired count, at least 3, at most 200) is FAILED;
  with `rollback`, ECS starts a new PRIMARY on the last COMPLETED task
  definition and says so in the service events.

Everything is a function of the scenario, its seed and the writes made and
when: `step(now)` applies what is due, `next_wakeup()` says when the next task
changes state, so the world's event-driven loop can jump between them.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable

from console.drill.scenario import Behaviour, EcsFault, Scenario, Service

ACCOUNT_ID = "123456789012"
"""The AWS account every drill ARN belongs to (the documentation's example account)."""
TASK_PULL_SECONDS = 2.0
"""From launch to the image pulled: an unknown image fails to pull after this long."""
TASK_STOP_SECONDS = 5.0
"""From a stop request to STOPPED (load balancer deregistration, SIGTERM, exit)."""
ESSENTIAL_EXIT_SECONDS = 5.0
"""How long the essential container of a version that cannot start (`ready: false`) runs before it exits."""
RELAUNCH_BACKOFF_START, RELAUNCH_BACKOFF_MAX = 10.0, 900.0
"""Once a deployment has lost as many tasks as it wants, ECS throttles new
launches: a delay from 10 s doubling with each failure, up to 15 minutes."""
STOPPED_TASK_RETENTION = timedelta(hours=1)
"""ECS shows stopped tasks for about an hour; older ones are forgotten."""
SERVICE_EVENTS_KEPT = 100
"""DescribeServices returns the newest 100 service events."""
CIRCUIT_BREAKER_MIN, CIRCUIT_BREAKER_MAX, CIRCUIT_BREAKER_FACTOR = 3, 200, 0.5
"""The circuit breaker's failed-task threshold: half the desired count, at least 3, at most 200."""
DRILL_CREDENTIAL_ENV = {
    "ROLLBACK_DRILL_AWS_ACCESS_KEY_ID": "drill-access-key",
    "ROLLBACK_DRILL_AWS_SECRET_ACCESS_KEY": "drill-secret-key",
}
"""Environment variables (names -> dummy values) a drill console signs its ECS requests with."""


class EcsError(Exception):
    """An ECS API error: the `__type` and message AWS would answer with."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def _hash(*parts: Any) -> int:
    import hashlib

    digest = hashlib.blake2b("\x1f".join(str(p) for p in parts).encode(), digest_size=16).digest()
    return int.from_bytes(digest, "big")


def _epoch(at: datetime | None) -> float | None:
    return None if at is None else round(at.timestamp(), 3)


def image_version(image: str) -> tuple[str, str]:
    """(repository, tag) of an image reference ("latest" without a tag)."""
    name = image.rsplit("/", 1)[-1]
    if ":" in name:
        repo, tag = image.rsplit(":", 1)
        return repo, tag
    return image, "latest"


@dataclass
class TaskDefinition:
    family: str
    revision: int
    containers: list[dict]
    registered_at: datetime
    region: str
    extra: dict = field(default_factory=dict)
    status: str = "ACTIVE"

    @property
    def arn(self) -> str:
        return f"arn:aws:ecs:{self.region}:{ACCOUNT_ID}:task-definition/{self.family}:{self.revision}"

    @property
    def essential_image(self) -> str:
        essential = [c for c in self.containers if c.get("essential", True)] or self.containers
        return essential[0].get("image", "") if essential else ""

    def to_json(self) -> dict:
        """The task definition as DescribeTaskDefinition returns it."""
        data = {
            "taskDefinitionArn": self.arn,
            "family": self.family,
            "revision": self.revision,
            "containerDefinitions": [dict(c) for c in self.containers],
            "status": self.status,
            "registeredAt": _epoch(self.registered_at),
            "registeredBy": f"arn:aws:iam::{ACCOUNT_ID}:role/deployer",
            "compatibilities": ["EC2", "FARGATE"],
            "requiresCompatibilities": ["FARGATE"],
            "networkMode": "awsvpc",
            "cpu": "256",
            "memory": "512",
            "volumes": [],
            "placementConstraints": [],
        }
        data.update(self.extra)
        return data


@dataclass
class Deployment:
    id: str
    task_definition: str
    desired: int
    created_at: datetime
    updated_at: datetime
    status: str = "PRIMARY"
    rollout_state: str = "IN_PROGRESS"
    rollout_reason: str = ""
    failed_tasks: int = 0
    # No launches before this (the scheduler's throttle after repeated failures).
    next_launch_at: datetime | None = None


@dataclass
class Task:
    id: str
    cluster: str
    service: str
    deployment_id: str
    task_definition: str
    image: str
    created_at: datetime
    # When the task reaches RUNNING (None: it never does) and when it stops by itself.
    running_at: datetime | None
    fails_at: datetime | None
    fail_code: str = ""
    fail_reason: str = ""
    serves: bool = False
    last_status: str = "PENDING"
    desired_status: str = "RUNNING"
    started_at: datetime | None = None
    stopping_at: datetime | None = None
    stop_at: datetime | None = None
    stopped_at: datetime | None = None
    stop_code: str = ""
    stopped_reason: str = ""
    region: str = "us-east-1"
    container: str = "app"

    @property
    def arn(self) -> str:
        return f"arn:aws:ecs:{self.region}:{ACCOUNT_ID}:task/{self.cluster}/{self.id}"

    @property
    def live(self) -> bool:
        """Counted by the scheduler: not stopped and not asked to stop."""
        return self.desired_status == "RUNNING" and self.last_status != "STOPPED"

    def to_json(self) -> dict:
        """The task as DescribeTasks returns it."""
        name = self.container
        container_status = self.last_status if self.last_status in ("PENDING", "RUNNING", "STOPPED") else "RUNNING"
        container = {
            "containerArn": f"arn:aws:ecs:{self.region}:{ACCOUNT_ID}:container/{self.cluster}/{self.id}/{_hash(self.id, 'c') % 10**12:012d}",
            "taskArn": self.arn,
            "name": name,
            "image": self.image,
            "lastStatus": container_status,
            "healthStatus": "UNKNOWN",
        }
        if self.last_status == "STOPPED" and self.stop_code == "EssentialContainerExited":
            container["exitCode"] = 1
        if self.stop_code == "TaskFailedToStart":
            container["reason"] = self.stopped_reason
        data: dict[str, Any] = {
            "taskArn": self.arn,
            "clusterArn": f"arn:aws:ecs:{self.region}:{ACCOUNT_ID}:cluster/{self.cluster}",
            "taskDefinitionArn": self.task_definition,
            "group": f"service:{self.service}",
            "startedBy": self.deployment_id,
            "launchType": "FARGATE",
            "lastStatus": self.last_status,
            "desiredStatus": self.desired_status,
            "healthStatus": "UNKNOWN",
            "createdAt": _epoch(self.created_at),
            "cpu": "256",
            "memory": "512",
            "availabilityZone": f"{self.region}{'abc'[_hash(self.id) % 3]}",
            "containers": [container],
            "version": {"PENDING": 1, "RUNNING": 2}.get(self.last_status, 3),
        }
        if self.started_at is not None:
            data["startedAt"] = _epoch(self.started_at)
        if self.stopping_at is not None:
            data["stoppingAt"] = _epoch(self.stopping_at)
        if self.stopped_at is not None:
            data["stoppedAt"] = _epoch(self.stopped_at)
            data["executionStoppedAt"] = _epoch(self.stopped_at)
        if self.stop_code:
            data["stopCode"] = self.stop_code
        if self.stopped_reason:
            data["stoppedReason"] = self.stopped_reason
        return data


@dataclass
class EcsService:
    cluster: str
    name: str
    scenario: Service
    desired: int
    task_definition: str
    created_at: datetime
    circuit_breaker: bool
    rollback: bool
    region: str
    deployments: list[Deployment] = field(default_factory=list)
    events: deque = field(default_factory=lambda: deque(maxlen=SERVICE_EVENTS_KEPT))
    status: str = "ACTIVE"
    minimum_healthy_percent: int = 100
    maximum_percent: int = 200
    # The task definition of the newest deployment that COMPLETED (the circuit breaker's rollback target).
    last_completed: str | None = None
    steady_announced: bool = False
    # Resource tags (TagResource / UntagResource / ListTagsForResource), key -> value.
    tags: dict = field(default_factory=dict)

    @property
    def arn(self) -> str:
        return f"arn:aws:ecs:{self.region}:{ACCOUNT_ID}:service/{self.cluster}/{self.name}"

    @property
    def primary(self) -> Deployment:
        return self.deployments[0]


class EcsWorld:
    """The ECS part of a drill world. Not locked itself: the World's lock
    (`store.lock`) guards it, as it guards the Kubernetes objects."""

    def __init__(self, scenario: Scenario, on_change: Callable[[], None] = lambda: None) -> None:
        services = [s for s in scenario.services if s.kind == "ecs"]
        self.seed = scenario.seed
        self.region = services[0].ecs.region if services else "us-east-1"
        self.clusters: dict[str, datetime] = {}
        self.families: dict[str, list[TaskDefinition]] = {}
        self.services: dict[tuple[str, str], EcsService] = {}
        self.tasks: dict[str, Task] = {}
        # [fault, remaining count or None for "until cleared"]
        self.faults: list[list[Any]] = [[fault, fault.count] for s in services for fault in s.ecs.faults]
        self._known = {s.name: scenario.known_versions(s) for s in services}
        self._counter = 0
        self._on_change = on_change

    # ------------------------------------------------------------ identity

    def _next(self, *parts: Any) -> int:
        self._counter += 1
        return _hash(self.seed, self._counter, *parts)

    def cluster_arn(self, name: str) -> str:
        """The ARN of the cluster called `name`."""
        return f"arn:aws:ecs:{self.region}:{ACCOUNT_ID}:cluster/{name}"

    # -------------------------------------------------------- the scenario

    def history(self, svc: Service, start: datetime) -> list[tuple[datetime, Callable[[], None]]]:
        """The service's past deploys as timed actions: the first registers
        revision 1 and creates the service, each later one registers the next
        revision and updates the service to it."""
        settings = svc.ecs
        actions: list[tuple[datetime, Callable[[], None]]] = []
        for index, entry in enumerate(svc.history):
            when = start - timedelta(seconds=entry.age)

            def act(entry=entry, first=index == 0, when=when) -> None:
                definition = self.register_task_definition(
                    settings.family_name(svc), [self._container(svc, entry.version)], when
                )
                if first:
                    self.create_service(svc, definition.arn, when)
                else:
                    self.update_service(settings.cluster, svc.name, definition.arn, None, when)

            actions.append((when, act))
        return actions

    def deploy(self, svc: Service, version: str, now: datetime) -> None:
        """A timeline deploy: register a revision with `version` and roll it out."""
        settings = svc.ecs
        definition = self.register_task_definition(settings.family_name(svc), [self._container(svc, version)], now)
        self.update_service(settings.cluster, svc.name, definition.arn, None, now)

    @staticmethod
    def _container(svc: Service, version: str) -> dict:
        return {
            "name": svc.container,
            "image": svc.image_of(version),
            "essential": True,
            "cpu": 0,
            "portMappings": [{"containerPort": svc.port, "hostPort": svc.port, "protocol": "tcp"}],
            "environment": [],
            "mountPoints": [],
            "volumesFrom": [],
        }

    # ------------------------------------------------------------- lookups

    def cluster(self, name: str | None) -> str:
        """The cluster's short name from a name or ARN; ClusterNotFoundException if unknown."""
        short = (name or "default").rsplit("/", 1)[-1]
        if short not in self.clusters:
            raise EcsError("ClusterNotFoundException", "Cluster not found.")
        return short

    def service(self, cluster: str | None, name: str) -> EcsService:
        """One ACTIVE-or-draining service; ServiceNotFoundException if unknown."""
        short = self.cluster(cluster)
        found = self.services.get((short, name.rsplit("/", 1)[-1]))
        if found is None:
            raise EcsError("ServiceNotFoundException", "Service not found.")
        return found

    def task_definition(self, reference: str) -> TaskDefinition:
        """By ARN, `family:revision` or `family` (its latest ACTIVE revision)."""
        text = reference.rsplit("/", 1)[-1] if reference.startswith("arn:") else reference
        family, _, revision = text.partition(":")
        revisions = self.families.get(family, [])
        if revision:
            for definition in revisions:
                if str(definition.revision) == revision:
                    return definition
        else:
            active = [d for d in revisions if d.status == "ACTIVE"]
            if active:
                return active[-1]
        raise EcsError("ClientException", "Unable to describe task definition.")

    def take_fault(self, operation: str) -> EcsFault | None:
        """The injected error for this operation, if one is due (counted down)."""
        for entry in self.faults:
            fault, remaining = entry
            if fault.operation not in ("*", operation) or remaining == 0:
                continue
            if remaining is not None:
                entry[1] = remaining - 1
            return fault
        return None

    def inject_fault(self, operation: str, error: str, count: int | None = None, message: str | None = None) -> None:
        """Make the ECS API answer `operation` ("*": every one) with `error`,
        `count` times (None: until cleared)."""
        self.faults.append([EcsFault(operation=operation, error=error, count=count, message=message), count])

    def clear_faults(self) -> None:
        self.faults.clear()

    # -------------------------------------------------------------- writes

    def register_task_definition(self, family: str, containers: list[dict], now: datetime, extra: dict | None = None) -> TaskDefinition:
        """A new revision of `family` (revisions start at 1 and only grow)."""
        revisions = self.families.setdefault(family, [])
        definition = TaskDefinition(
            family=family,
            revision=(revisions[-1].revision + 1) if revisions else 1,
            containers=[dict(c) for c in containers],
            registered_at=now,
            region=self.region,
            extra=dict(extra or {}),
        )
        revisions.append(definition)
        self._on_change()
        return definition

    def create_service(self, svc: Service, task_definition: str, now: datetime) -> EcsService:
        """CreateService for a scenario service (its cluster is created with it)."""
        settings = svc.ecs
        self.clusters.setdefault(settings.cluster, now)
        service = EcsService(
            cluster=settings.cluster,
            name=svc.name,
            scenario=svc,
            desired=svc.replicas,
            task_definition=task_definition,
            created_at=now,
            circuit_breaker=settings.circuit_breaker.enable,
            rollback=settings.circuit_breaker.rollback,
            region=self.region,
        )
        self.services[(settings.cluster, svc.name)] = service
        self._new_deployment(service, task_definition, now)
        self._on_change()
        return service

    def update_service(
        self,
        cluster: str | None,
        name: str,
        task_definition: str | None,
        desired: int | None,
        now: datetime,
        force_new_deployment: bool = False,
    ) -> EcsService:
        """UpdateService: a new deployment when the task definition changes (or
        is forced); a new desired count applies to the PRIMARY."""
        service = self.service(cluster, name)
        if service.status != "ACTIVE":
            raise EcsError("ServiceNotActiveException", "Service was not ACTIVE.")
        if task_definition is not None:
            arn = self.task_definition(task_definition).arn
            if self.task_definition(arn).status != "ACTIVE":
                raise EcsError("ClientException", f"TaskDefinition is inactive: {arn}")
        else:
            arn = service.task_definition
        if desired is not None:
            service.desired = desired
            service.primary.desired = desired
            service.primary.updated_at = now
        if arn != service.task_definition or force_new_deployment:
            service.task_definition = arn
            self._new_deployment(service, arn, now)
        self.step(now)
        self._on_change()
        return service

    def _new_deployment(self, service: EcsService, task_definition: str, now: datetime) -> Deployment:
        deployment = Deployment(
            id=f"ecs-svc/{self._next('deployment', service.name) % 10**19:019d}",
            task_definition=task_definition,
            desired=service.desired,
            created_at=now,
            updated_at=now,
        )
        for old in service.deployments:
            if old.status == "PRIMARY":
                old.status = "ACTIVE"
                old.updated_at = now
        service.deployments.insert(0, deployment)
        service.steady_announced = False
        return deployment

    def _event(self, service: EcsService, message: str, now: datetime) -> None:
        digits = f"{self._next('event') % 16**32:032x}"
        event_id = f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"
        service.events.appendleft({"id": event_id, "createdAt": _epoch(now), "message": f"(service {service.name}) {message}"})

    # ---------------------------------------------------------- simulation

    def _behaviour(self, service: EcsService, image: str) -> Behaviour | None:
        svc = service.scenario
        repo, version = image_version(image)
        if repo != svc.image or version not in self._known.get(svc.name, set()):
            return None
        return svc.behaviour(version) or Behaviour()

    def _launch(self, service: EcsService, deployment: Deployment, now: datetime) -> None:
        definition = self.task_definition(deployment.task_definition)
        image = definition.essential_image
        behaviour = self._behaviour(service, image)
        task_id = f"{self._next('task', service.name) % 16**32:032x}"
        task = Task(
            id=task_id,
            cluster=service.cluster,
            service=service.name,
            deployment_id=deployment.id,
            task_definition=deployment.task_definition,
            image=image,
            created_at=now,
            running_at=None,
            fails_at=None,
            region=self.region,
            container=next((c.get("name", "app") for c in definition.containers if c.get("image") == image), "app"),
        )
        if behaviour is None:
            task.fails_at = now + timedelta(seconds=TASK_PULL_SECONDS)
            task.fail_code = "TaskFailedToStart"
            task.fail_reason = (
                f"CannotPullContainerError: pull image manifest has been retried 5 time(s): "
                f"failed to resolve ref {image}: not found"
            )
        else:
            ready = behaviour.ready_seconds if behaviour.ready_seconds is not None else service.scenario.ready_seconds
            if behaviour.ready:
                task.running_at = now + timedelta(seconds=max(ready, 0.0))
                task.serves = True
            else:
                # The container exits while starting: the task never counts as RUNNING,
                # so a deployment of it can never look stable.
                task.fails_at = now + timedelta(seconds=TASK_PULL_SECONDS + ESSENTIAL_EXIT_SECONDS)
                task.fail_code = "EssentialContainerExited"
                task.fail_reason = "Essential container in task exited"
        self.tasks[task_id] = task

    def _stop(self, task: Task, now: datetime, reason: str) -> None:
        task.desired_status = "STOPPED"
        task.stopping_at = now
        task.stop_at = now + timedelta(seconds=TASK_STOP_SECONDS)
        task.stop_code = task.stop_code or "ServiceSchedulerInitiated"
        task.stopped_reason = task.stopped_reason or reason
        if task.last_status in ("PENDING", "PROVISIONING"):
            task.stop_at = now  # never started: nothing to drain
        else:
            task.last_status = "DEACTIVATING"

    def _advance_tasks(self, now: datetime) -> bool:
        changed = False
        for task in list(self.tasks.values()):
            if task.last_status == "STOPPED":
                if task.stopped_at is not None and now - task.stopped_at > STOPPED_TASK_RETENTION:
                    del self.tasks[task.id]
                continue
            if task.desired_status == "STOPPED":
                if task.stop_at is not None and now >= task.stop_at:
                    task.last_status, task.stopped_at = "STOPPED", task.stop_at
                    changed = True
                continue
            if task.last_status == "PENDING" and task.running_at is not None and now >= task.running_at:
                task.last_status, task.started_at = "RUNNING", task.running_at
                changed = True
            if task.fails_at is not None and now >= task.fails_at:
                task.last_status, task.desired_status = "STOPPED", "STOPPED"
                task.stopped_at = task.stopping_at = task.fails_at
                task.stop_code, task.stopped_reason = task.fail_code, task.fail_reason
                service = self.services.get((task.cluster, task.service))
                if service is not None:
                    for deployment in service.deployments:
                        if deployment.id == task.deployment_id:
                            deployment.failed_tasks += 1
                            over = deployment.failed_tasks - max(deployment.desired, 1)
                            if over >= 0:
                                delay = min(RELAUNCH_BACKOFF_START * 2 ** min(over, 20), RELAUNCH_BACKOFF_MAX)
                                deployment.next_launch_at = task.fails_at + timedelta(seconds=delay)
                    # ECS's own wording once a deployment's tasks keep failing; the task's reason beside it.
                    self._event(service, f"is unable to consistently start tasks successfully: task {task.id} stopped: "
                                         f"{task.fail_reason}.", task.fails_at)
                changed = True
        return changed

    def _tasks_of(self, service: EcsService, deployment: Deployment | None = None) -> list[Task]:
        return [
            t
            for t in self.tasks.values()
            if t.cluster == service.cluster
            and t.service == service.name
            and (deployment is None or t.deployment_id == deployment.id)
        ]

    def _schedule(self, service: EcsService, now: datetime) -> bool:
        changed = False
        primary = service.primary
        desired = service.desired
        throttled = primary.next_launch_at is not None and now < primary.next_launch_at
        if primary.rollout_state != "FAILED" and not throttled:
            live_all = [t for t in self._tasks_of(service) if t.live]
            live_primary = [t for t in live_all if t.deployment_id == primary.id]
            room = math.floor(desired * service.maximum_percent / 100) - len(live_all)
            wanted = desired - len(live_primary)
            for _ in range(max(0, min(room, wanted))):
                self._launch(service, primary, now)
                changed = True
            if len(live_primary) > desired:
                for task in sorted(live_primary, key=lambda t: (t.last_status == "RUNNING", t.created_at))[: len(live_primary) - desired]:
                    self._stop(task, now, "Scaling activity initiated by (deployment %s)" % primary.id)
                    changed = True
        if primary.rollout_state == "FAILED":
            return changed  # a failed deployment without rollback leaves the old tasks serving
        # Stop old tasks: the ones not running at once, running ones as far as
        # minimumHealthyPercent allows, oldest first.
        minimum = math.ceil(desired * service.minimum_healthy_percent / 100)
        primary_running = sum(1 for t in self._tasks_of(service, primary) if t.live and t.last_status == "RUNNING")
        old = [t for d in service.deployments[1:] for t in self._tasks_of(service, d) if t.live]
        running_old = sorted((t for t in old if t.last_status == "RUNNING"), key=lambda t: (t.created_at, t.id))
        reason = f"Scaling activity initiated by (deployment {primary.id})"
        for task in old:
            if task.last_status != "RUNNING":
                self._stop(task, now, reason)
                changed = True
        excess = len(running_old) if primary_running >= desired else primary_running + len(running_old) - minimum
        for task in running_old[: max(0, excess)]:
            self._stop(task, now, reason)
            changed = True
        return changed

    def _settle_deployments(self, service: EcsService, now: datetime) -> bool:
        changed = False
        primary = service.primary
        # The circuit breaker.
        threshold = min(CIRCUIT_BREAKER_MAX, max(CIRCUIT_BREAKER_MIN, math.ceil(CIRCUIT_BREAKER_FACTOR * service.desired)))
        if service.circuit_breaker and primary.rollout_state == "IN_PROGRESS" and primary.failed_tasks >= threshold:
            primary.rollout_state = "FAILED"
            primary.rollout_reason = "ECS deployment circuit breaker: tasks failed to start."
            primary.updated_at = now
            self._event(service, f"(deployment {primary.id}) deployment failed: tasks failed to start.", now)
            for task in self._tasks_of(service, primary):
                if task.live:
                    self._stop(task, now, f"Deployment {primary.id} failed")
            if service.rollback and service.last_completed and service.last_completed != primary.task_definition:
                target = service.last_completed
                service.task_definition = target
                rollback = self._new_deployment(service, target, now)
                self._event(service, f"rolling back to deployment {rollback.id}.", now)
            changed = True
            primary = service.primary
        # Deployments with nothing left disappear.
        kept = [service.deployments[0]]
        for deployment in service.deployments[1:]:
            if any(t.last_status != "STOPPED" for t in self._tasks_of(service, deployment)):
                kept.append(deployment)
            else:
                changed = True
        service.deployments = kept
        running = sum(1 for t in self._tasks_of(service, primary) if t.last_status == "RUNNING" and t.desired_status == "RUNNING")
        if primary.rollout_state == "IN_PROGRESS" and len(service.deployments) == 1 and running == service.desired:
            primary.rollout_state = "COMPLETED"
            primary.rollout_reason = f"ECS deployment {primary.id} completed."
            primary.updated_at = now
            service.last_completed = primary.task_definition
            self._event(service, f"(deployment {primary.id}) deployment completed.", now)
            changed = True
        if len(service.deployments) == 1 and running == service.desired and not service.steady_announced:
            service.steady_announced = True
            self._event(service, "has reached a steady state.", now)
        return changed

    def step(self, now: datetime) -> None:
        """Apply everything due at or before `now` (idempotent at one moment)."""
        for _ in range(100):
            changed = self._advance_tasks(now)
            for service in self.services.values():
                if service.status != "ACTIVE":
                    continue
                changed = self._schedule(service, now) or changed
                changed = self._settle_deployments(service, now) or changed
            if not changed:
                return
        raise RuntimeError("the drill's ECS scheduler did not settle")  # a scheduler bug, not an operator error

    def next_wakeup(self, now: datetime) -> datetime | None:
        """The next moment after `now` when a task changes state by itself."""
        times = []
        for task in self.tasks.values():
            if task.last_status == "STOPPED":
                continue
            if task.desired_status == "STOPPED":
                times.append(task.stop_at)
                continue
            if task.last_status == "PENDING" and task.running_at is not None:
                times.append(task.running_at)
            if task.fails_at is not None:
                times.append(task.fails_at)
        for service in self.services.values():
            if service.deployments and service.primary.next_launch_at is not None:
                times.append(service.primary.next_launch_at)
        future = [t for t in times if t is not None and t > now]
        return min(future) if future else None

    # -------------------------------------------------------------- views

    def serving_versions(self, service: str) -> list[str] | None:
        """One image tag per task that serves traffic (RUNNING, healthy, not
        draining); None when no ECS service has that name."""
        found = [s for s in self.services.values() if s.name == service]
        if not found:
            return None
        return [
            image_version(t.image)[1]
            for t in self._tasks_of(found[0])
            if t.serves and t.last_status == "RUNNING" and t.desired_status == "RUNNING"
        ]

    def deployment_json(self, service: EcsService, deployment: Deployment) -> dict:
        """One entry of DescribeServices' `deployments`, counts from the tasks."""
        tasks = [t for t in self._tasks_of(service, deployment) if t.desired_status == "RUNNING"]
        data = {
            "id": deployment.id,
            "status": deployment.status,
            "taskDefinition": deployment.task_definition,
            "desiredCount": deployment.desired if deployment.status == "PRIMARY" else 0,
            "pendingCount": sum(1 for t in tasks if t.last_status == "PENDING"),
            "runningCount": sum(1 for t in tasks if t.last_status == "RUNNING"),
            "failedTasks": deployment.failed_tasks,
            "createdAt": _epoch(deployment.created_at),
            "updatedAt": _epoch(deployment.updated_at),
            "launchType": "FARGATE",
            "platformVersion": "1.4.0",
            "platformFamily": "Linux",
            "rolloutState": deployment.rollout_state,
            "rolloutStateReason": deployment.rollout_reason or f"ECS deployment {deployment.id} in progress.",
            "networkConfiguration": {"awsvpcConfiguration": {"subnets": ["subnet-0drill"], "securityGroups": ["sg-0drill"], "assignPublicIp": "DISABLED"}},
        }
        if deployment.status != "PRIMARY":
            data["desiredCount"] = sum(1 for t in tasks if t.live)
        return data

    def service_json(self, service: EcsService) -> dict:
        """The service as DescribeServices and UpdateService return it."""
        deployments = [self.deployment_json(service, d) for d in service.deployments]
        return {
            "serviceArn": service.arn,
            "serviceName": service.name,
            "clusterArn": self.cluster_arn(service.cluster),
            "loadBalancers": [],
            "serviceRegistries": [],
            "status": service.status,
            "desiredCount": service.desired,
            "runningCount": sum(d["runningCount"] for d in deployments),
            "pendingCount": sum(d["pendingCount"] for d in deployments),
            "launchType": "FARGATE",
            "platformVersion": "LATEST",
            "platformFamily": "Linux",
            "taskDefinition": service.task_definition,
            "deploymentConfiguration": {
                "deploymentCircuitBreaker": {"enable": service.circuit_breaker, "rollback": service.rollback},
                "maximumPercent": service.maximum_percent,
                "minimumHealthyPercent": service.minimum_healthy_percent,
            },
            "deployments": deployments,
            "roleArn": f"arn:aws:iam::{ACCOUNT_ID}:role/aws-service-role/ecs.amazonaws.com/AWSServiceRoleForECS",
            "events": list(service.events),
            "createdAt": _epoch(service.created_at),
            "placementConstraints": [],
            "placementStrategy": [],
            "networkConfiguration": {"awsvpcConfiguration": {"subnets": ["subnet-0drill"], "securityGroups": ["sg-0drill"], "assignPublicIp": "DISABLED"}},
            "schedulingStrategy": "REPLICA",
            "deploymentController": {"type": "ECS"},
            "createdBy": f"arn:aws:iam::{ACCOUNT_ID}:role/deployer",
            "enableECSManagedTags": False,
            "propagateTags": "NONE",
            "enableExecuteCommand": False,
        }

    def cluster_json(self, name: str) -> dict:
        """The cluster as DescribeClusters returns it."""
        services = [s for s in self.services.values() if s.cluster == name and s.status == "ACTIVE"]
        tasks = [t for t in self.tasks.values() if t.cluster == name and t.last_status != "STOPPED"]
        return {
            "clusterArn": self.cluster_arn(name),
            "clusterName": name,
            "status": "ACTIVE",
            "registeredContainerInstancesCount": 0,
            "runningTasksCount": sum(1 for t in tasks if t.last_status == "RUNNING"),
            "pendingTasksCount": sum(1 for t in tasks if t.last_status == "PENDING"),
            "activeServicesCount": len(services),
            "statistics": [],
            "tags": [],
            "settings": [{"name": "containerInsights", "value": "disabled"}],
            "capacityProviders": ["FARGATE", "FARGATE_SPOT"],
            "defaultCapacityProviderStrategy": [],
        }

    def tasks_of_cluster(self, cluster: str) -> list[Task]:
        """The cluster's tasks (stopped ones for an hour), oldest first."""
        return sorted((t for t in self.tasks.values() if t.cluster == cluster), key=lambda t: (t.created_at, t.id))
