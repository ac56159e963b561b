"""The drill's Amazon ECS API in the AWS JSON 1.1 protocol, so boto3 (with
`endpoint_url`) and the aws CLI (`--endpoint-url`) work against it unchanged.

A request is `POST /` (or `POST /ecs/`) with `X-Amz-Target:
AmazonEC2ContainerServiceV20141113.<Operation>` and a JSON body; an answer is
JSON, an error is `{"__type": "...", "message": "..."}` with AWS's HTTP status
(400 for client errors, 500 for ServerException). Requests must be signed
(an `Authorization` header), but any credentials are accepted: the drill's
access control is the scenario's `faults`. Credentials are never recorded.

Operations: DescribeClusters, ListServices, DescribeServices,
ListTaskDefinitions, DescribeTaskDefinition, RegisterTaskDefinition,
UpdateService, ListTasks, DescribeTasks, TagResource, UntagResource,
ListTagsForResource. As in AWS, DescribeServices returns a service's tags only
when asked (`include: ["TAGS"]`), and a resource has at most `MAX_TAGS` tags.
`EcsApi.operations` logs each request's operation name, in order (the server's
request log shows every ECS request as a POST to the same path).
"""

from __future__ import annotations

import json
import uuid
from typing import Any, Callable

from console.drill.ecs import ACCOUNT_ID, EcsError, EcsService, EcsWorld
from console.drill.kube_api import Response

TARGET_PREFIX = "AmazonEC2ContainerServiceV20141113."
CONTENT_TYPE = "application/x-amz-json-1.1"
MAX_RESULTS = 100
"""The largest page ListServices, ListTaskDefinitions and ListTasks return."""
MAX_TAGS = 50
"""AWS's limit of tags per resource (user-defined tags; TagResource beyond it fails)."""

# Injected faults: (HTTP status, AWS's message). {op} and {resource} are filled in.
FAULTS: dict[str, tuple[int, str]] = {
    "AccessDeniedException": (
        400,
        "User: arn:aws:sts::" + ACCOUNT_ID + ":assumed-role/drill-trainee/drill is not authorized to perform: "
        "ecs:{op} on resource: {resource} because no identity-based policy allows the ecs:{op} action",
    ),
    "ExpiredTokenException": (400, "The security token included in the request is expired"),
    "UnrecognizedClientException": (400, "The security token included in the request is invalid."),
    "ThrottlingException": (400, "Rate exceeded"),
    "ServerException": (500, "Service Unavailable. Please try again later."),
}


def is_ecs_request(method: str, path: str, headers: dict[str, str]) -> bool:
    """A request for this handler: anything under /ecs, or POST / with ECS's target header."""
    if path == "/ecs" or path.startswith("/ecs/"):
        return True
    return method == "POST" and path == "/" and _header(headers, "x-amz-target").startswith(TARGET_PREFIX)


def _header(headers: dict[str, str], name: str) -> str:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return ""


def _page(items: list[str], body: dict) -> tuple[list[str], str | None]:
    """One page of `items` from the request's nextToken/maxResults."""
    try:
        start = int(body.get("nextToken") or 0)
    except ValueError:
        raise EcsError("InvalidParameterException", "Invalid nextToken.") from None
    size = body.get("maxResults") or MAX_RESULTS
    if not isinstance(size, int) or not 1 <= size <= MAX_RESULTS:
        raise EcsError("InvalidParameterException", f"maxResults must be between 1 and {MAX_RESULTS}.")
    page = items[start : start + size]
    return page, (str(start + size) if start + size < len(items) else None)


class EcsApi:
    """Answers ECS API requests from a World's `ecs` state."""

    def __init__(self, world: Any) -> None:
        self.world = world
        self.ecs: EcsWorld = world.ecs
        self._operations: dict[str, Callable[[dict], dict]] = {
            "DescribeClusters": self._describe_clusters,
            "ListServices": self._list_services,
            "DescribeServices": self._describe_services,
            "ListTaskDefinitions": self._list_task_definitions,
            "DescribeTaskDefinition": self._describe_task_definition,
            "RegisterTaskDefinition": self._register_task_definition,
            "UpdateService": self._update_service,
            "ListTasks": self._list_tasks,
            "DescribeTasks": self._describe_tasks,
            "TagResource": self._tag_resource,
            "UntagResource": self._untag_resource,
            "ListTagsForResource": self._list_tags_for_resource,
        }
        # The operation of each request answered (or refused), in order: the drill's ECS request log.
        self.operations: list[str] = []

    def handle(self, method: str, path: str, query: dict, headers: dict[str, str], body: bytes) -> Response:
        """Answer one request."""
        if method != "POST":
            return _error("UnknownOperationException", "The ECS API takes POST requests.", 400)
        target = _header(headers, "x-amz-target")
        operation = target[len(TARGET_PREFIX):] if target.startswith(TARGET_PREFIX) else ""
        handler = self._operations.get(operation)
        with self.world.store.lock:
            self.operations.append(operation or target or "?")
        if handler is None:
            return _error("UnknownOperationException", f"The drill's ECS API does not serve {target or 'this request'}.", 400)
        if not _header(headers, "authorization"):
            return _error("MissingAuthenticationTokenException", "Missing Authentication Token", 400)
        try:
            request = json.loads(body.decode("utf-8") or "{}") if body else {}
        except (UnicodeDecodeError, json.JSONDecodeError):
            return _error("SerializationException", "The request body is not valid JSON.", 400)
        if not isinstance(request, dict):
            return _error("SerializationException", "The request body must be a JSON object.", 400)
        with self.world.store.lock:
            self.world.advance()
            fault = self.ecs.take_fault(operation)
            if fault is not None:
                status, message = FAULTS[fault.error]
                resource = self._resource_of(request)
                return _error(fault.error, fault.message or message.format(op=operation, resource=resource), status)
            try:
                return _ok(handler(request))
            except EcsError as err:
                return _error(err.code, err.message, err.status)

    def _resource_of(self, request: dict) -> str:
        cluster = str(request.get("cluster") or "default").rsplit("/", 1)[-1]
        service = request.get("service") or (request.get("services") or [None])[0]
        if service:
            return f"arn:aws:ecs:{self.ecs.region}:{ACCOUNT_ID}:service/{cluster}/{str(service).rsplit('/', 1)[-1]}"
        return self.ecs.cluster_arn(cluster)

    # -- operations --------------------------------------------------------

    def _describe_clusters(self, body: dict) -> dict:
        clusters, failures = [], []
        for reference in body.get("clusters") or ["default"]:
            name = str(reference).rsplit("/", 1)[-1]
            if name in self.ecs.clusters:
                clusters.append(self.ecs.cluster_json(name))
            else:
                failures.append({"arn": self.ecs.cluster_arn(name), "reason": "MISSING"})
        return {"clusters": clusters, "failures": failures}

    def _list_services(self, body: dict) -> dict:
        cluster = self.ecs.cluster(body.get("cluster"))
        arns = sorted(s.arn for s in self.ecs.services.values() if s.cluster == cluster and s.status == "ACTIVE")
        page, token = _page(arns, body)
        return {"serviceArns": page, **({"nextToken": token} if token else {})}

    def _describe_services(self, body: dict) -> dict:
        cluster = self.ecs.cluster(body.get("cluster"))
        names = body.get("services")
        if not isinstance(names, list) or not names:
            raise EcsError("InvalidParameterException", "Services cannot be empty.")
        if len(names) > 10:
            raise EcsError("InvalidParameterException", "At most 10 services can be described at once.")
        include = body.get("include") or []
        if not isinstance(include, list) or any(field != "TAGS" for field in include):
            raise EcsError("InvalidParameterException", "include can only contain TAGS.")
        services, failures = [], []
        for reference in names:
            name = str(reference).rsplit("/", 1)[-1]
            found: EcsService | None = self.ecs.services.get((cluster, name))
            if found is None:
                failures.append({"arn": f"arn:aws:ecs:{self.ecs.region}:{ACCOUNT_ID}:service/{cluster}/{name}", "reason": "MISSING"})
            else:
                described = self.ecs.service_json(found)
                if "TAGS" in include:  # AWS returns the tags only when asked
                    described["tags"] = _tag_list(found)
                services.append(described)
        return {"services": services, "failures": failures}

    def _list_task_definitions(self, body: dict) -> dict:
        prefix = body.get("familyPrefix")
        status = body.get("status") or "ACTIVE"
        if status not in ("ACTIVE", "INACTIVE", "DELETE_IN_PROGRESS"):
            raise EcsError("InvalidParameterException", f"Invalid status: {status}.")
        order = body.get("sort") or "ASC"
        if order not in ("ASC", "DESC"):
            raise EcsError("InvalidParameterException", f"Invalid sort: {order}.")
        # familyPrefix is a prefix, as in AWS: "order-service" also lists "order-service-worker".
        definitions = [
            d
            for family, revisions in sorted(self.ecs.families.items())
            if prefix is None or family.startswith(prefix)
            for d in revisions
            if d.status == status
        ]
        definitions.sort(key=lambda d: (d.family, d.revision), reverse=order == "DESC")
        page, token = _page([d.arn for d in definitions], body)
        return {"taskDefinitionArns": page, **({"nextToken": token} if token else {})}

    def _describe_task_definition(self, body: dict) -> dict:
        reference = body.get("taskDefinition")
        if not reference:
            raise EcsError("InvalidParameterException", "taskDefinition cannot be empty.")
        return {"taskDefinition": self.ecs.task_definition(str(reference)).to_json(), "tags": []}

    def _register_task_definition(self, body: dict) -> dict:
        family = body.get("family")
        containers = body.get("containerDefinitions")
        if not family or not isinstance(family, str):
            raise EcsError("InvalidParameterException", "Family cannot be empty.")
        if not isinstance(containers, list) or not containers:
            raise EcsError("ClientException", "Container list cannot be empty.")
        for container in containers:
            if not isinstance(container, dict) or not container.get("name") or not container.get("image"):
                raise EcsError("ClientException", "Container.name and Container.image should not be null or empty.")
        extra = {k: v for k, v in body.items() if k in ("cpu", "memory", "networkMode", "requiresCompatibilities", "executionRoleArn", "taskRoleArn")}
        definition = self.ecs.register_task_definition(family, containers, self.world.now, extra)
        return {"taskDefinition": definition.to_json(), "tags": body.get("tags") or []}

    def _update_service(self, body: dict) -> dict:
        service = body.get("service")
        if not service:
            raise EcsError("InvalidParameterException", "Service cannot be empty.")
        desired = body.get("desiredCount")
        if desired is not None and (not isinstance(desired, int) or desired < 0):
            raise EcsError("InvalidParameterException", "desiredCount must be a non-negative integer.")
        updated = self.ecs.update_service(
            body.get("cluster"),
            str(service),
            body.get("taskDefinition"),
            desired,
            self.world.now,
            force_new_deployment=bool(body.get("forceNewDeployment")),
        )
        return {"service": self.ecs.service_json(updated)}

    def _tagged_service(self, body: dict) -> EcsService:
        """The service a resourceArn names (the drill tags services only)."""
        arn = str(body.get("resourceArn") or "")
        for service in self.ecs.services.values():
            if service.arn == arn:
                return service
        raise EcsError("InvalidParameterException", f"The specified resource {arn or '(none)'} is not a service here.")

    def _tag_resource(self, body: dict) -> dict:
        service = self._tagged_service(body)
        tags = body.get("tags")
        if not isinstance(tags, list) or not tags:
            raise EcsError("InvalidParameterException", "Tags cannot be empty.")
        for tag in tags:
            key, value = (tag or {}).get("key"), (tag or {}).get("value", "")
            if not isinstance(key, str) or not 1 <= len(key) <= 128 or not isinstance(value, str) or len(value) > 256:
                raise EcsError("InvalidParameterException", "Tag keys are 1-128 characters, values at most 256.")
        merged = {**service.tags, **{t["key"]: t.get("value", "") for t in tags}}
        if len(merged) > MAX_TAGS:
            # Nothing is applied: the count includes the tags the resource has and the new ones.
            raise EcsError("InvalidParameterException",
                           f"Tag limit exceeded: a resource can have at most {MAX_TAGS} tags "
                           f"(it has {len(service.tags)}, and this request adds {len(merged) - len(service.tags)}).")
        service.tags = merged
        return {}

    def _untag_resource(self, body: dict) -> dict:
        service = self._tagged_service(body)
        keys = body.get("tagKeys")
        if not isinstance(keys, list) or not all(isinstance(k, str) and 1 <= len(k) <= 128 for k in keys):
            raise EcsError("InvalidParameterException", "tagKeys is a list of tag keys of 1-128 characters.")
        if len(keys) > MAX_TAGS:
            raise EcsError("InvalidParameterException", f"At most {MAX_TAGS} tag keys can be removed at once.")
        # A key the resource does not have is ignored, as in AWS.
        service.tags = {k: v for k, v in service.tags.items() if k not in keys}
        return {}

    def _list_tags_for_resource(self, body: dict) -> dict:
        return {"tags": _tag_list(self._tagged_service(body))}

    def _list_tasks(self, body: dict) -> dict:
        cluster = self.ecs.cluster(body.get("cluster"))
        service_name = body.get("serviceName")
        if service_name:
            self.ecs.service(cluster, str(service_name))
        desired = body.get("desiredStatus") or "RUNNING"
        if desired not in ("RUNNING", "PENDING", "STOPPED"):
            raise EcsError("InvalidParameterException", f"Invalid desiredStatus: {desired}.")
        family = body.get("family")
        started_by = body.get("startedBy")
        arns = [
            t.arn
            for t in self.ecs.tasks_of_cluster(cluster)
            if (not service_name or t.service == str(service_name).rsplit("/", 1)[-1])
            and (t.desired_status == desired if desired != "PENDING" else t.last_status == "PENDING")
            and (not family or t.task_definition.rsplit("/", 1)[-1].split(":")[0] == family)
            and (not started_by or t.deployment_id == started_by)
        ]
        page, token = _page(arns, body)
        return {"taskArns": page, **({"nextToken": token} if token else {})}

    def _describe_tasks(self, body: dict) -> dict:
        cluster = self.ecs.cluster(body.get("cluster"))
        references = body.get("tasks")
        if not isinstance(references, list) or not references:
            raise EcsError("InvalidParameterException", "Tasks cannot be empty.")
        if len(references) > 100:
            raise EcsError("InvalidParameterException", "At most 100 tasks can be described at once.")
        tasks, failures = [], []
        for reference in references:
            task_id = str(reference).rsplit("/", 1)[-1]
            task = self.ecs.tasks.get(task_id)
            if task is None or task.cluster != cluster:
                failures.append({"arn": f"arn:aws:ecs:{self.ecs.region}:{ACCOUNT_ID}:task/{cluster}/{task_id}", "reason": "MISSING"})
            else:
                tasks.append(task.to_json())
        return {"tasks": tasks, "failures": failures}


def _tag_list(service: EcsService) -> list[dict]:
    return [{"key": k, "value": v} for k, v in service.tags.items()]


def _ok(data: dict) -> Response:
    return Response(200, {"Content-Type": CONTENT_TYPE, "x-amzn-RequestId": str(uuid.uuid4())}, json.dumps(data).encode())


def _error(code: str, message: str, status: int) -> Response:
    body = json.dumps({"__type": code, "message": message}).encode()
    return Response(status, {"Content-Type": CONTENT_TYPE, "x-amzn-RequestId": str(uuid.uuid4())}, body)
