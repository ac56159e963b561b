"""Amazon ECS services: the runbook's AWS ECS procedure through boto3.

    aws ecs describe-services --cluster $CLUSTER --services $SERVICE
    aws ecs list-task-definitions --family-prefix $SERVICE
    aws ecs update-service --cluster $CLUSTER --service $SERVICE \\
        --task-definition $SERVICE:$PREVIOUS_REVISION
    aws ecs wait services-stable --cluster $CLUSTER --services $SERVICE

History is the ACTIVE revisions of the service's task definition family,
newest first, the one the service runs marked current. A rollback is one
UpdateService call; waiting uses the `services-stable` waiter's own test
(exactly one deployment, and runningCount == desiredCount) while reporting
each deployment's running/desired/pending counts and rolloutState, and gives
up after the stability deadline with a failed step rather than hanging. ECS's
deployment circuit breaker is taken into account: a plan says so when it has
already rolled the service back, and a rollback it stops is reported.

boto3 takes about half a second to import, so it is imported when the first
request is made. Throttling and transient failures are retried by botocore
(standard or adaptive mode, exponential backoff with jitter); what still
fails becomes a PlatformError whose sentence never contains a credential.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator

from console.clock import Clock, SystemClock
from console.model import ApiCall, Health, Progress, Revision, RollbackPlan, image_tag
from console.platforms import bounded
from console.platforms.base import ROLLOUT_TIMEOUT, Conflict, Forbidden, NotFound, PlatformError, Timeout, Unavailable, shape_checked
from console.provenance import KEEP, Provenance, RollbackRecord, decode, merge

from console.platforms.ecs_limits import MAX_ATTEMPTS, POLL_INTERVAL, REQUEST_TIMEOUT, STABILITY_DEADLINE

PLATFORM = "ecs"
HISTORY_LIMIT = 10
"""Task definition revisions shown (Kubernetes keeps 10 ReplicaSets by default)."""
TARGET = "AmazonEC2ContainerServiceV20141113"
"""The ECS API's X-Amz-Target prefix, shown in plans."""

_DENIED = {"AccessDeniedException", "AccessDenied", "UnauthorizedOperation", "UnauthorizedException"}
_EXPIRED = {"ExpiredTokenException", "ExpiredToken", "RequestExpired", "TokenRefreshRequired"}
_UNRECOGNISED = {
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "InvalidSignatureException",
    "SignatureDoesNotMatch",
    "MissingAuthenticationTokenException",
    "IncompleteSignature",
}
_THROTTLED = {
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "RequestThrottledException",
}


@dataclass(frozen=True)
class CredentialsEnv:
    """Names of the environment variables holding AWS credentials (never the values)."""

    access_key_id: str
    secret_access_key: str
    session_token: str | None = None


def parse_task_definition(reference: str) -> tuple[str, int | None]:
    """(family, revision) of a task definition ARN or `family:revision`."""
    text = reference.rsplit("/", 1)[-1]
    family, _, revision = text.partition(":")
    try:
        return family, int(revision)
    except ValueError:
        return family, None


def _short(reference: str) -> str:
    """`family:revision` of a task definition ARN."""
    return reference.rsplit("/", 1)[-1]


def _time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc) if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, timezone.utc)
    return None


def _deployment_line(deployment: dict) -> str:
    """`PRIMARY order-service:2 2/3 running, 1 pending (IN_PROGRESS)`."""
    text = (
        f"{deployment.get('status', '?')} {_short(deployment.get('taskDefinition', '?'))} "
        f"{deployment.get('runningCount', 0)}/{deployment.get('desiredCount', 0)} running"
    )
    if deployment.get("pendingCount"):
        text += f", {deployment['pendingCount']} pending"
    if deployment.get("failedTasks"):
        text += f", {deployment['failedTasks']} failed"
    if deployment.get("rolloutState"):
        text += f" ({deployment['rolloutState']})"
    return text


def stable(service: dict) -> bool:
    """The `services-stable` waiter's success test for one service."""
    return len(service.get("deployments") or []) == 1 and service.get("runningCount") == service.get("desiredCount")


def _primary(service: dict) -> dict:
    return next((d for d in service.get("deployments") or [] if d.get("status") == "PRIMARY"), {})


def _failing(primary: dict) -> str | None:
    """A sentence when the PRIMARY deployment is still rolling out and tasks of it
    have failed (the previous deployment's tasks go on serving meanwhile), else None."""
    failed = primary.get("failedTasks") or 0
    if not failed or primary.get("rolloutState") not in ("IN_PROGRESS", None):
        return None
    running, desired = primary.get("runningCount") or 0, primary.get("desiredCount") or 0
    return (f"the deployment of {_short(primary.get('taskDefinition', '?'))} is failing: {running} of {desired} "
            f"tasks running, {failed} failed")


class EcsPlatform:
    """One ECS service, rolled back to an earlier task definition revision."""

    platform = PLATFORM

    def __init__(
        self,
        name: str,
        cluster: str = "default",
        service: str | None = None,
        *,
        region: str | None = None,
        endpoint_url: str | None = None,
        profile: str | None = None,
        credentials_env: CredentialsEnv | None = None,
        timeout: float = REQUEST_TIMEOUT,
        max_attempts: int = MAX_ATTEMPTS,
        retry_mode: str = "standard",
        stability_deadline: float = STABILITY_DEADLINE,
        poll_interval: float = POLL_INTERVAL,
        clock: Clock | None = None,
    ) -> None:
        self.name = name
        self.cluster = cluster
        self.service = service or name
        self.region = region
        self.endpoint_url = endpoint_url
        self._profile = profile
        self._credentials_env = credentials_env
        self._timeout = timeout
        self._max_attempts = max_attempts
        self._retry_mode = retry_mode
        self.stability_deadline = stability_deadline
        self.poll_interval = poll_interval
        self._clock: Clock = clock or SystemClock()
        self._lock = threading.Lock()
        self._client: Any = None
        # Registered task definitions never change: (images, registeredAt) by ARN.
        self._definitions: dict[str, tuple[tuple[str, ...], datetime | None]] = {}
        # The records in the tags of the last DescribeServices (None before one): `recorded()`.
        self._recorded: Provenance | None = None

    @classmethod
    def from_config(cls, config: Any, clock: Clock | None = None) -> EcsPlatform:
        """The platform for one `platform: ecs` service of the config."""
        credentials = None
        if config.access_key_id_env and config.secret_access_key_env:
            credentials = CredentialsEnv(config.access_key_id_env, config.secret_access_key_env, config.session_token_env)
        return cls(
            config.name,
            config.cluster,
            config.service,
            region=config.region,
            endpoint_url=config.endpoint_url,
            profile=config.profile,
            credentials_env=credentials,
            timeout=config.timeout,
            max_attempts=config.max_attempts,
            retry_mode=config.retry_mode,
            stability_deadline=config.stability_deadline,
            poll_interval=config.poll_interval,
            clock=clock,
        )

    # --- plumbing ------------------------------------------------------------

    @property
    def where(self) -> str:
        """`service "order-service" on ECS cluster "shop" (us-east-1)`, for sentences."""
        region = f" ({self.region})" if self.region else ""
        return f'service "{self.service}" on ECS cluster "{self.cluster}"{region}'

    def _ecs(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = self._make_client()
            return self._client

    def _make_client(self) -> Any:
        import boto3
        from botocore.config import Config
        from botocore.exceptions import BotoCoreError

        keys: dict[str, str] = {}
        if self._credentials_env is not None:
            names = self._credentials_env
            missing = [n for n in (names.access_key_id, names.secret_access_key) if not os.environ.get(n)]
            if missing:
                raise Forbidden(
                    f"No AWS credentials for {self.where}: the environment variable"
                    f"{'s' if len(missing) > 1 else ''} {' and '.join(missing)} named in the console "
                    "config " + ("are" if len(missing) > 1 else "is") + " not set; export them and start the console again."
                )
            keys = {
                "aws_access_key_id": os.environ[names.access_key_id],
                "aws_secret_access_key": os.environ[names.secret_access_key],
            }
            if names.session_token and os.environ.get(names.session_token):
                keys["aws_session_token"] = os.environ[names.session_token]
        try:
            session = boto3.session.Session(profile_name=self._profile, region_name=self.region, **keys)
            config = Config(
                connect_timeout=self._timeout,
                read_timeout=self._timeout,
                retries={"mode": self._retry_mode, "max_attempts": self._max_attempts},
                user_agent_extra="rollback-console",
            )
            client = session.client("ecs", endpoint_url=self.endpoint_url, config=config)
            try:  # every call bounded in total time and size (bounded.py), not just per read
                bounded.install(client._endpoint.http_session._manager)
            except AttributeError:
                pass
            return client
        except BotoCoreError as exc:
            raise self._translate(exc, "connect to") from None

    def _call(self, operation: str, verb: str, **params: Any) -> dict:
        """One ECS API call; failures become PlatformErrors with sentences."""
        from botocore.exceptions import BotoCoreError, ClientError

        client = self._ecs()
        # Each attempt may take `timeout`; botocore retries inside the call.
        with bounded.bounded(self._timeout * self._max_attempts) as bound:
            try:
                answer = getattr(client, operation)(**params)
            except (ClientError, BotoCoreError) as exc:
                if bound.expired or bound.too_large:
                    raise self._out_of_bounds(bound, verb) from None
                raise self._translate(exc, verb) from None
        if not isinstance(answer, dict):
            raise Unavailable(f"The ECS API answered {operation} in an unexpected shape; check `endpoint_url` in the console config.")
        return answer

    def _out_of_bounds(self, bound: bounded.Bound, verb: str) -> PlatformError:
        endpoint = f" at {self.endpoint_url}" if self.endpoint_url else ""
        if bound.too_large:
            return Unavailable(
                f"The ECS API{endpoint} answered with more than {bound.max_bytes // (1024 * 1024)} MiB when trying "
                f"to {verb} {self.where}; the answer was refused. Check `endpoint_url` in the console config."
            )
        return Timeout(
            f"The ECS API{endpoint} did not answer within {bound.seconds:g} s when trying to {verb} {self.where} "
            "(all attempts together); check the network (VPN, proxy) and try again."
        )

    def _translate(self, exc: BaseException, verb: str) -> PlatformError:
        """A botocore error as a typed PlatformError. Only the error code and
        AWS's message are used: neither ever holds a credential."""
        from botocore.exceptions import (
            ClientError,
            ConnectTimeoutError,
            EndpointConnectionError,
            NoCredentialsError,
            NoRegionError,
            PartialCredentialsError,
            ProfileNotFound,
            ReadTimeoutError,
            TokenRetrievalError,
            UnauthorizedSSOTokenError,
        )

        where = self.where
        endpoint = f" at {self.endpoint_url}" if self.endpoint_url else ""
        if isinstance(exc, ClientError):
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            message = str(error.get("Message", "")).rstrip(".")
            operation = getattr(exc, "operation_name", "") or verb
            if code in _DENIED:
                return Forbidden(
                    f"AWS denied ecs:{operation} when trying to {verb} {where} (AccessDenied): the credentials "
                    f"in use lack that permission; ask for it, or use a profile or role that has it."
                )
            if code in _EXPIRED:
                how = f"`aws sso login --profile {self._profile}`" if self._profile else "your usual AWS login"
                return Forbidden(
                    f"The AWS credentials have expired ({code}) while trying to {verb} {where}: refresh them "
                    f"({how}) and try again."
                )
            if code in _UNRECOGNISED:
                return Forbidden(
                    f"AWS did not recognise the credentials ({code}) when trying to {verb} {where}: check the "
                    "profile or access key in use and that they belong to the right account, then try again."
                )
            if code in _THROTTLED:
                return Unavailable(
                    f"AWS throttled the ECS API ({code}) when trying to {verb} {where}, still after "
                    f"{self._max_attempts} attempts with backoff: wait a minute and try again; other tools "
                    "may be calling the API heavily in this account."
                )
            if code == "ClusterNotFoundException":
                return NotFound(
                    f'ECS cluster "{self.cluster}" not found{self._region_phrase()}: check `cluster` and `region` '
                    "in the console config (`aws ecs list-clusters` lists them)."
                )
            if code in ("ServiceNotFoundException", "ServiceNotActiveException"):
                state = "is not ACTIVE" if code == "ServiceNotActiveException" else "not found"
                return NotFound(
                    f'ECS service "{self.service}" {state} on cluster "{self.cluster}"{self._region_phrase()}: '
                    "check `service` and `cluster` in the console config (`aws ecs list-services --cluster "
                    f"{self.cluster}` lists them)."
                )
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
            detail = f" ({code}: {message})" if message else f" ({code})"
            if status >= 500 or code in ("ServerException", "ServiceUnavailableException", "InternalFailure"):
                return Unavailable(
                    f"The ECS API{endpoint} failed to {verb} {where}{detail}, still after {self._max_attempts} "
                    "attempts: try again shortly, and check the AWS Health Dashboard if it persists."
                )
            return PlatformError(f"ECS refused to {verb} {where}{detail}.")
        if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
            return Forbidden(
                f"No AWS credentials found for {where}: set a `profile` or the credential variable names in "
                "the console config (or AWS_PROFILE), log in, and try again."
            )
        if isinstance(exc, (TokenRetrievalError, UnauthorizedSSOTokenError)):
            return Forbidden(
                f"The AWS SSO session for profile {self._profile or '(default)'} has expired: run `aws sso login"
                f"{' --profile ' + self._profile if self._profile else ''}` and try again."
            )
        if isinstance(exc, ProfileNotFound):
            return Forbidden(
                f'The AWS profile "{self._profile}" does not exist in ~/.aws/config: fix `profile` in the console config.'
            )
        if isinstance(exc, NoRegionError):
            return PlatformError(
                f"No AWS region for {where}: set `region` in the console config (or AWS_REGION)."
            )
        if isinstance(exc, (ReadTimeoutError, ConnectTimeoutError)):
            return Timeout(
                f"The ECS API{endpoint} did not answer within {self._timeout:g} s when trying to {verb} {where}; "
                "check the network (VPN, proxy) and try again."
            )
        if isinstance(exc, EndpointConnectionError):
            return Unavailable(
                f"Cannot reach the ECS API{endpoint or ' endpoint'} to {verb} {where}: check the network (VPN, "
                "proxy), the region and `endpoint_url` in the console config."
            )
        return Unavailable(f"The ECS API call to {verb} {where} failed ({type(exc).__name__}); try again.")

    def _region_phrase(self) -> str:
        return f" in region {self.region}" if self.region else ""

    def _describe(self) -> dict:
        """DescribeServices for this service (NotFound when it is MISSING),
        with its tags (`include=["TAGS"]`): the rollback records every
        refresh reads at no extra request."""
        answer = self._call("describe_services", "describe", cluster=self.cluster, services=[self.service],
                            include=["TAGS"])
        services = answer.get("services") or []
        if not services:
            reason = next((f.get("reason") for f in answer.get("failures") or []), "MISSING")
            raise NotFound(
                f'ECS service "{self.service}" not found on cluster "{self.cluster}"{self._region_phrase()} '
                f"({reason}): check `service` and `cluster` in the console config (`aws ecs list-services "
                f"--cluster {self.cluster}` lists them)."
            )
        service = services[0]
        self._recorded = records_of(service.get("tags") or [])
        return service

    def _family_revisions(self, family: str) -> list[str]:
        """ARNs of the family's ACTIVE revisions, newest first (exactly this
        family: familyPrefix also matches longer family names)."""
        arns: list[str] = []
        token = None
        while True:
            params: dict[str, Any] = {"familyPrefix": family, "sort": "DESC", "status": "ACTIVE"}
            if token:
                params["nextToken"] = token
            page = self._call("list_task_definitions", "list the task definitions of", **params)
            arns.extend(a for a in page.get("taskDefinitionArns") or [] if parse_task_definition(a)[0] == family)
            token = page.get("nextToken")
            if not token or len(arns) >= HISTORY_LIMIT:
                break
        arns.sort(key=lambda a: parse_task_definition(a)[1] or 0, reverse=True)
        return arns

    def _definition(self, arn: str) -> tuple[tuple[str, ...], datetime | None]:
        cached = self._definitions.get(arn)
        if cached is None:
            answer = self._call("describe_task_definition", f"describe task definition {_short(arn)} of", taskDefinition=arn)
            definition = answer.get("taskDefinition") or {}
            images = tuple(c.get("image", "") for c in definition.get("containerDefinitions") or [])
            cached = (images, _time(definition.get("registeredAt")))
            self._definitions[arn] = cached
        return cached

    def _history(self, service: dict) -> list[Revision]:
        current = service.get("taskDefinition", "")
        family, _ = parse_task_definition(current)
        arns = self._family_revisions(family)[:HISTORY_LIMIT]
        if current and current not in arns:
            arns.append(current)  # an older (or deregistered) revision still runs: show it
        revisions = []
        for arn in arns:
            _, number = parse_task_definition(arn)
            if number is None:
                continue
            images, registered = self._definition(arn)
            revisions.append(
                Revision(number=number, images=images, created=registered, current=arn == current, ref=arn)
            )
        revisions.sort(key=lambda r: r.number, reverse=True)
        return revisions

    # --- the Platform protocol ---------------------------------------------

    def history(self) -> list[Revision]:
        """Task definition revisions of the service's family, newest first, current marked."""
        return self._history(self._describe())

    def health(self) -> Health:
        """Tasks running (in any deployment) against the desired count."""
        return self._health(primary_only=False)

    def verify(self) -> Health:
        """The PRIMARY deployment's running tasks against the desired count."""
        return self._health(primary_only=True)

    def _health(self, primary_only: bool) -> Health:
        service = self._describe()
        primary = _primary(service)
        return Health(
            desired=service.get("desiredCount"),
            ready=(primary if primary_only else service).get("runningCount") or 0,
            updated=(primary.get("runningCount") or 0) + (primary.get("pendingCount") or 0),
            available=service.get("runningCount") or 0,
            checked_at=self._clock.now(),
            deployment_failing=_failing(primary),
        )

    def circuit_breaker_rollback(self, service: dict) -> str | None:
        """A sentence when ECS's deployment circuit breaker has rolled this
        service back (a FAILED deployment beside the PRIMARY, or the PRIMARY
        started by a "rolling back" event), else None."""
        primary = _primary(service)
        failed = [d for d in service.get("deployments") or [] if d.get("rolloutState") == "FAILED" and d is not primary]
        if failed:
            reason = failed[0].get("rolloutStateReason") or "the deployment failed"
            return (
                f"ECS's deployment circuit breaker already rolled {self.service} back from "
                f"{_short(failed[0].get('taskDefinition', '?'))} to {_short(primary.get('taskDefinition', '?'))} "
                f"({reason.rstrip('.')})"
            )
        created = _time(primary.get("createdAt"))
        for event in service.get("events") or []:
            at = _time(event.get("createdAt"))
            message = str(event.get("message", ""))
            if "rolling back to deployment" in message and created and at and abs((at - created).total_seconds()) <= 5:
                return (
                    f"ECS's deployment circuit breaker already rolled {self.service} back to "
                    f"{_short(primary.get('taskDefinition', '?'))} at {at:%H:%M:%S} UTC ({message})"
                )
        return None

    def plan_rollback(self, to_revision: int | None = None) -> RollbackPlan:
        """UpdateService to the previous (or the chosen) revision; skipped when
        the service already runs it or the circuit breaker already rolled back."""
        service = self._describe()
        current_arn = service.get("taskDefinition", "")
        family, current_number = parse_task_definition(current_arn)
        history = self._history(service)
        current = next((r for r in history if r.current), None)
        primary = _primary(service)
        breaker = self.circuit_breaker_rollback(service) if to_revision is None else None
        if breaker:
            reason = f"skipped rollback: {breaker}; check the service before rolling back further"
            images = current.images if current else ()
            return RollbackPlan(
                service=self.name, platform=PLATFORM, from_revision=current_number, to_revision=current_number,
                from_images=images, to_images=images, resource_version=primary.get("id"),
                skip_reason=reason, summary=reason,
            )
        if to_revision is None:
            older = [r for r in history if current_number is not None and r.number < current_number]
            if not older:
                raise NotFound(
                    f"{self.where} runs {_short(current_arn)} and the family {family} has no earlier ACTIVE "
                    "revision to roll back to."
                )
            target = older[0]
        else:
            target = next((r for r in history if r.number == to_revision), None)
            if target is None:
                known = ", ".join(str(r.number) for r in history) or "none"
                raise NotFound(
                    f"Task definition {family}:{to_revision} is not an ACTIVE revision (revisions: {known}); "
                    "pick one of those."
                )
        base = dict(
            service=self.name,
            platform=PLATFORM,
            from_revision=current_number,
            to_revision=target.number,
            from_images=current.images if current else (),
            to_images=target.images,
            resource_version=primary.get("id"),
        )
        if target.current:
            reason = f"skipped rollback ({self.service} already runs {family}:{target.number})"
            return RollbackPlan(**base, skip_reason=reason, summary=reason)
        reference = f"{family}:{target.number}"
        request = {"cluster": self.cluster, "service": self.service, "taskDefinition": reference}
        endpoint = self.endpoint_url or (f"https://ecs.{self.region}.amazonaws.com" if self.region else "ECS")
        summary = (
            f"Roll back {self.where} from {_short(current_arn)} ({_versions(base['from_images'])}) to "
            f"{reference} ({_versions(target.images)}), as `aws ecs update-service --cluster {self.cluster} "
            f"--service {self.service} --task-definition {reference}` would, then wait until it is stable "
            f"(`aws ecs wait services-stable`); refused if a deployment started since deployment {primary.get('id')}."
        )
        return RollbackPlan(
            **base,
            calls=(ApiCall("POST", f"{endpoint} {TARGET}.UpdateService", body=json.dumps(request, indent=2)),),
            summary=summary,
        )

    # --- provenance: tags on the service ------------------------------------

    def provenance(self) -> Provenance:
        """The console's records in the service's tags (one tag per rollback,
        `TAG_PREFIX` + time: a tag value holds at most 256 characters), read
        fresh with the service's description (DescribeServices with its tags)."""
        return records_of(self._describe().get("tags") or [])

    def recorded(self) -> Provenance | None:
        """The records read with the last DescribeServices (the refresh's `health`
        and `history` make one each), None before one: at no extra request."""
        return self._recorded

    def with_record(self, plan: RollbackPlan, record: RollbackRecord, existing=()) -> RollbackPlan:
        """The plan with the record-writing requests after its UpdateService:
        UntagResource of the console's oldest record tags beyond the newest
        `KEEP` (the new one counted; other tags are never touched), then
        TagResource writing `record` on the service."""
        if plan.skip_reason or len(plan.calls) != 1:
            return plan
        value = _tag_value(record)
        key = record_key(record, value)
        endpoint = plan.calls[0].target.split(" ", 1)[0]
        service = self._describe()
        arn = service.get("serviceArn", "")
        calls = list(plan.calls)
        tags = service.get("tags") if isinstance(service.get("tags"), list) else []
        pruned = prunable([str(t.get("key", "")) for t in tags if isinstance(t, dict)], key)
        if pruned:
            body = {"resourceArn": arn, "tagKeys": pruned}
            calls.append(ApiCall("POST", f"{endpoint} {TARGET}.UntagResource", body=json.dumps(body, indent=2)))
        body = {"resourceArn": arn, "tags": [{"key": key, "value": value}]}
        calls.append(ApiCall("POST", f"{endpoint} {TARGET}.TagResource", body=json.dumps(body, indent=2)))
        return replace(plan, calls=tuple(calls))

    def _record(self, untag: ApiCall | None, tag: ApiCall) -> Progress:
        """Write the rollback's record, removing the oldest record tags first (so
        the new one fits AWS's 50 tags); a failure is said, not fatal (the
        rollback is applied)."""
        body = json.loads(tag.body)
        removed: list[str] = []
        try:
            if untag is not None:
                # Only the console's own record tags, whatever the plan says.
                removed = [k for k in json.loads(untag.body)["tagKeys"] if str(k).startswith(TAG_PREFIX)]
            if removed:
                self._call("untag_resource", "remove old rollback records from", resourceArn=body["resourceArn"],
                           tagKeys=removed)
            self._call("tag_resource", "tag", resourceArn=body["resourceArn"], tags=body["tags"])
        except PlatformError as err:
            return Progress(message=f"the rollback record was not written on the service's tags: {err}",
                            at=self._clock.now())
        message = f"rollback recorded in the service's tags ({body['tags'][0]['key']})"
        if removed:
            message += (f"; {len(removed)} older record tag{'s' if len(removed) > 1 else ''} removed "
                        f"(the newest {KEEP} are kept)")
        return Progress(message=message, at=self._clock.now())

    def execute(self, plan: RollbackPlan, timeout: float = ROLLOUT_TIMEOUT) -> Iterator[Progress]:
        """UpdateService, then wait like `aws ecs wait services-stable` (one
        deployment, running == desired), reporting the deployments as they
        change. After the stability deadline (the shorter of `timeout` and the
        configured one) the last step is a failed one: the rollout is stuck."""
        if plan.platform != PLATFORM or plan.service != self.name:
            raise PlatformError(
                f"This plan is for {plan.platform} service {plan.service}, not for ECS {self.where}; plan the rollback again."
            )
        if plan.skip_reason:
            yield Progress(message=plan.skip_reason, at=self._clock.now(), done=True)
            return
        if not plan.calls or not plan.calls[0].target.endswith(".UpdateService"):
            raise PlatformError("This plan has no UpdateService request; plan the rollback again.")
        request = json.loads(plan.calls[0].body)
        before = self._describe()
        if plan.resource_version and _primary(before).get("id") != plan.resource_version:
            raise Conflict(
                f"{self.where} changed since you looked: deployment {_primary(before).get('id')} "
                f"({_short(before.get('taskDefinition', '?'))}) replaced {plan.resource_version}; review the new "
                "state and plan the rollback again."
            )
        deadline_seconds = min(timeout, self.stability_deadline)
        deadline = self._clock.now() + timedelta(seconds=deadline_seconds)
        updated = self._call("update_service", "update", **request).get("service") or {}
        ours = _primary(updated)
        yield Progress(
            message=f"service {self.service} updated to task definition {request['taskDefinition']} "
            f"(deployment {ours.get('id', '?')})",
            at=self._clock.now(),
            desired=updated.get("desiredCount"),
        )
        untag = next((c for c in plan.calls[1:] if c.target.endswith(".UntagResource")), None)
        for call in plan.calls[1:]:
            if call.target.endswith(".TagResource"):
                yield self._record(untag, call)
        try:
            yield from self._wait(ours, request["taskDefinition"], deadline, deadline_seconds)
        except PlatformError as err:
            raise type(err)(
                f"The rollback of {self.where} was applied, but following its progress failed: {err}"
            ) from None

    def _wait(self, ours: dict, reference: str, deadline: datetime, seconds: float) -> Iterator[Progress]:
        last_message = None
        last_service: dict = {}
        transient: str | None = None
        while True:
            try:
                service = self._describe()
                transient = None
            except (Unavailable, Timeout) as err:
                service, transient = {}, str(err)
            if service:
                last_service = service
                status = service.get("status")
                if status in ("DRAINING", "INACTIVE"):
                    yield Progress(
                        message=f"service {self.service} is {status}: it is being deleted; the rollback cannot complete.",
                        at=self._clock.now(), done=True, failed=True,
                    )
                    return
                progress = self._progress(service, ours, reference)
                if progress.message != last_message or progress.done:
                    yield progress
                    last_message = progress.message
                if progress.done:
                    return
            if self._clock.now() >= deadline:
                lines = "; ".join(_deployment_line(d) for d in last_service.get("deployments") or []) or "unknown"
                also = f" (the last status check failed: {transient})" if transient else ""
                yield Progress(
                    message=(
                        f"service {self.service} did not become stable within {seconds:g} s (deployments: {lines}){also}: "
                        "the rollout looks stuck. Check the stopped tasks' reasons (`aws ecs describe-services "
                        f"--cluster {self.cluster} --services {self.service}`, events) and decide whether to wait or escalate."
                    ),
                    at=self._clock.now(), done=True, failed=True,
                    **_counts(last_service, ours),
                )
                return
            time.sleep(self.poll_interval)

    def _progress(self, service: dict, ours: dict, reference: str) -> Progress:
        deployments = service.get("deployments") or []
        mine = next((d for d in deployments if d.get("id") == ours.get("id")), None)
        primary = _primary(service)
        now = self._clock.now()
        counts = _counts(service, ours)
        lines = "; ".join(_deployment_line(d) for d in deployments)
        replaced = bool(primary) and primary.get("id") != ours.get("id")
        failed = mine is not None and mine.get("rolloutState") == "FAILED"
        if failed or (mine is None and replaced):
            reason = (mine or {}).get("rolloutStateReason") or _failure_event(service, ours.get("id", ""))
            because = f" ({reason.rstrip('.')})" if reason else ""
            if replaced and (failed or self.circuit_breaker_rollback(service)):
                message = (
                    f"ECS's deployment circuit breaker stopped the rollback to {reference}{because} and rolled the "
                    f"service back to {_short(primary.get('taskDefinition', '?'))}: the tasks of {reference} do not "
                    "start; check the stopped tasks' reasons before trying another revision."
                )
            elif failed:
                message = f"the rollback deployment to {reference} failed{because}; check the stopped tasks' reasons."
            else:
                message = (
                    f"another deployment replaced the rollback: the service now runs "
                    f"{_short(primary.get('taskDefinition', '?'))} (deployment {primary.get('id', '?')}); review it."
                )
            return Progress(message=message, at=now, done=True, failed=True, **counts)
        if stable(service):
            return Progress(
                message=(
                    f"service {self.service} has reached a steady state: {primary.get('runningCount', 0)}/"
                    f"{service.get('desiredCount', 0)} tasks of {_short(primary.get('taskDefinition', '?'))} running"
                ),
                at=now, done=True, **counts,
            )
        return Progress(message=f"Waiting for service {self.service} to become stable: {lines}", at=now, **counts)


def _failure_event(service: dict, deployment_id: str) -> str:
    """Why ECS says a deployment failed, from the service events ("" if it does not)."""
    marker = f"(deployment {deployment_id}) deployment failed: "
    for event in service.get("events") or []:
        message = str(event.get("message", ""))
        if marker in message:
            return message.split(marker, 1)[1]
    return ""


def _counts(service: dict, ours: dict) -> dict[str, int | None]:
    """Progress counts: our deployment's tasks against the desired count."""
    mine = next((d for d in service.get("deployments") or [] if d.get("id") == ours.get("id")), None) or {}
    return {
        "updated": (mine.get("runningCount") or 0) + (mine.get("pendingCount") or 0) if mine else None,
        "ready": mine.get("runningCount") if mine else None,
        "desired": service.get("desiredCount"),
    }


TAG_PREFIX = "rollback-console.io/rollback-"
"""The key prefix of the console's rollback records in an ECS service's tags."""


def records_of(tags: list[dict]) -> Provenance:
    """The console's records in a service's tags (those with `TAG_PREFIX`)."""
    records, problems = [], []
    for tag in tags if isinstance(tags, list) else ():
        if isinstance(tag, dict) and str(tag.get("key", "")).startswith(TAG_PREFIX):
            found, wrong = decode("[" + str(tag.get("value") or "") + "]")
            records.extend(found)
            problems.extend(wrong)
    return Provenance(merge(tuple(records), ()), (), tuple(problems))


def record_key(record: RollbackRecord, value: str) -> str:
    """A record tag's key: `TAG_PREFIX`, the record's time (so the keys sort by
    it) and a digest of the tag's value. Two records of the same second (two
    consoles, each not yet seeing the other's tag) then never share a key,
    where TagResource would keep only the last one written."""
    stamp = f"{record.at:%Y%m%dT%H%M%S}" if record.at else "unknown"
    return f"{TAG_PREFIX}{stamp}-{hashlib.sha256(value.encode()).hexdigest()[:8]}"


def prunable(keys: list[str], new_key: str) -> list[str]:
    """The console's record tags to remove before writing `new_key`: all but
    the newest `KEEP` - 1 others (oldest first; the keys end in the record's
    time, so they sort by it, and one without a time counts as oldest). Tags
    without `TAG_PREFIX` are never listed."""
    ours = sorted((k for k in keys if k.startswith(TAG_PREFIX) and k != new_key),
                  key=lambda k: (k[len(TAG_PREFIX):][:1].isdigit(), k))
    return ours[:max(len(ours) - (KEEP - 1), 0)]


def _tag_value(record: RollbackRecord) -> str:
    """The record as one tag value (at most 256 characters: the reason is shortened to fit)."""
    data = record.to_json()
    for length in (200, 100, 40, 0):
        data["why"] = record.why[:length]
        value = json.dumps(data, separators=(",", ":"))
        if len(value) <= 256:
            return value
    return json.dumps({**data, "why": "", "incident": ""}, separators=(",", ":"))[:256]


def _versions(images: tuple[str, ...]) -> str:
    return ", ".join(image_tag(i) for i in images) or "no images"


# A wrong-shaped answer (a list where the service belongs) is a sentence naming the API.
for _method in ("history", "health", "verify", "plan_rollback", "execute", "provenance"):
    setattr(EcsPlatform, _method, shape_checked("ECS API", getattr(EcsPlatform, _method)))
del _method
