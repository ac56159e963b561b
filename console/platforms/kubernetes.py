"""Kubernetes Deployments: the runbook's `kubectl rollout history / undo /
status`, `kubectl get pods` and `kubectl logs`, through the official client.

Rollback follows kubectl's own semantics (polymorphichelpers/rollback.go):
undo without a revision goes to the second-newest revision, undo to the current
template is skipped, the patch is a JSON Patch that replaces the pod template
and the annotations. It goes one step further: the patch starts with a `test`
of the deployment's resourceVersion, so the console never rolls back a state
the operator did not see.

The `kubernetes` package takes about half a second to import, so it is imported
only when the first request is made; constructing a platform is cheap.
Objects are read as raw JSON (`_preload_content=False`): faster than the
client's model classes, and the pod template travels back into the patch
exactly as the server returned it.
"""

from __future__ import annotations

import asyncio
import copy
from dataclasses import replace
import json
import math
import pickle
import threading
import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Iterator

from console.clock import Clock, SystemClock
from console.model import SCHEMA_ANNOTATION, ApiCall, Health, Progress, Revision, RollbackPlan, image_tag
from console.platforms import bounded
from console.gitops import Owner as GitOpsOwner
from console.platforms.gitops import GitOpsOwners
from console.provenance import (
    FIELD_MANAGER,
    REVISION_HISTORY_ANNOTATION,
    ROLLBACKS_ANNOTATION,
    Provenance,
    ReplicaSetView,
    RollbackRecord,
    encode,
    field_owner,
    from_annotations,
    parse_revision_history,
    undo_records,
)
from console.platforms.base import (
    ROLLOUT_TIMEOUT,
    Conflict,
    NotFound,
    PlatformError,
    PodInfo,
    PodLogs,
    Timeout,
    Unavailable,
    describe_target,
    kubernetes_error,
    shape_checked,
    parse_time,
)

if TYPE_CHECKING:
    import ssl

    import aiohttp

    from console.platforms.lease import RollbackLease

Blocking = Callable[[Callable[[], Any]], Awaitable[Any]]
"""Runs a blocking call in a thread and awaits its result (the poller's `blocking`)."""

PLATFORM = "kubernetes"
REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
CHANGE_CAUSE_ANNOTATION = "kubernetes.io/change-cause"
POD_TEMPLATE_HASH_LABEL = "pod-template-hash"
JSON_PATCH = "application/json-patch+json"
API_TIMEOUT = 10.0
"""Seconds to wait for one Kubernetes API request (the default of a cluster's `timeout:`)."""
# kubectl's annotationsToSkip: kept from the deployment, never copied from the
# ReplicaSet being restored.
ANNOTATIONS_TO_SKIP = frozenset(
    {
        "kubectl.kubernetes.io/last-applied-configuration",
        "deployment.kubernetes.io/revision",
        "deployment.kubernetes.io/revision-history",
        "deployment.kubernetes.io/desired-replicas",
        "deployment.kubernetes.io/max-replicas",
        "deprecated.deployment.rollback.to",
    }
)
# A watch request stays open this long (seconds) at most before it is
# re-opened (never past the rollout's deadline): one watch follows a whole
# ordinary rollout, as kubectl's does.
WATCH_WINDOW_SECONDS = 60
# A rollout whose deployment has not changed for this long (wall seconds) is
# stalled: only then are its pods listed for a warning (image pull, crash
# loop, unschedulable), so a rollout that moves costs no pod lists.
STALL_SECONDS = 5.0
# A read this fresh (wall seconds) is reused once rather than made again: the
# refresh's deployment and ReplicaSets by the plan made right after it (the
# state the operator just saw; the patch's resourceVersion test still guards
# it), and the rollout's last watched state by the refresh right after it.
REUSE_SECONDS = 1.0
_plans_here = True
"""Whether this process plans rollbacks (see `refresh_only`)."""


def refresh_only() -> None:
    """This process only refreshes (the refresh process): its reads are never
    planned from, so the refresh's read is not kept for a plan (about 4 KB
    per service, 2 MB at 500 services, held from one refresh to the next)."""
    global _plans_here
    _plans_here = False
# Polling interval (wall seconds) when the API cannot watch.
POLL_INTERVAL_SECONDS = 0.5
# kubectl logs -l asks at most this many pods at once (--max-log-requests).
MAX_LOG_PODS = 5
# Seconds a rollback of a GitOps-owned service is watched after its owner
# reconciled (twice Argo CD's 5-second self-heal timeout); config `gitops.hold_seconds`.
GITOPS_HOLD_SECONDS = 10.0
# Container states kubectl rollout status warns about.
_WARN_REASONS = frozenset(
    {
        "ImagePullBackOff",
        "ErrImagePull",
        "CrashLoopBackOff",
        "CreateContainerConfigError",
        "CreateContainerError",
    }
)


def _prune(value: Any) -> Any:
    """Drop nulls and empty maps/lists, recursively: apimachinery's semantic
    equality treats nil and empty alike, so the comparison must too."""
    if isinstance(value, dict):
        pruned = {k: _prune(v) for k, v in value.items()}
        return {k: v for k, v in pruned.items() if v is not None and v != {} and v != []}
    if isinstance(value, list):
        return [_prune(v) for v in value]
    return value


def template_without_hash(template: dict) -> dict:
    """A pod template without the pod-template-hash label (a deep copy)."""
    result = copy.deepcopy(template or {})
    labels = (result.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(POD_TEMPLATE_HASH_LABEL, None)
    return result


def templates_equal(a: dict, b: dict) -> bool:
    """kubectl's equalIgnoreHash: equal pod templates, ignoring the hash label."""
    return _prune(template_without_hash(a)) == _prune(template_without_hash(b))


def template_images(template: dict) -> tuple[str, ...]:
    """The images of a pod template's containers, in order."""
    containers = ((template or {}).get("spec") or {}).get("containers") or []
    return tuple(c.get("image", "") for c in containers)


def revision_of(obj: dict) -> int | None:
    """The deployment.kubernetes.io/revision annotation as a number."""
    value = ((obj.get("metadata") or {}).get("annotations") or {}).get(REVISION_ANNOTATION)
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def label_selector(selector: dict | None) -> str:
    """A LabelSelector object rendered as a list-call label selector string."""
    selector = selector or {}
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In":
            parts.append(f"{key} in ({','.join(values)})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({','.join(values)})")
        elif op == "Exists":
            parts.append(str(key))
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts)


def deadline_exceeded(deployment: dict) -> str | None:
    """The lastUpdateTime of the deployment's ProgressDeadlineExceeded condition
    ("" when it has none), None when its rollout has not passed its deadline."""
    for condition in (deployment.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Progressing" and condition.get("reason") == "ProgressDeadlineExceeded":
            return str(condition.get("lastUpdateTime") or "")
    return None


def rollout_status(deployment: dict, stale_deadline: str | None = None) -> tuple[str, bool, bool]:
    """kubectl's DeploymentStatusViewer.Status: (message, done, failed).
    `stale_deadline`: the lastUpdateTime of a ProgressDeadlineExceeded
    condition left by the rollout before ours; that condition does not fail
    ours (the controller keeps it until the new rollout makes progress)."""
    name = deployment["metadata"]["name"]
    spec = deployment.get("spec") or {}
    status = deployment.get("status") or {}
    generation = deployment["metadata"].get("generation") or 0
    if generation > (status.get("observedGeneration") or 0):
        return "Waiting for deployment spec update to be observed...", False, False
    exceeded = deadline_exceeded(deployment)
    if exceeded is not None and (stale_deadline is None or exceeded != stale_deadline):
        return f'deployment "{name}" exceeded its progress deadline', True, True
    desired = spec.get("replicas")
    replicas = status.get("replicas") or 0
    updated = status.get("updatedReplicas") or 0
    available = status.get("availableReplicas") or 0
    prefix = f'Waiting for deployment "{name}" rollout to finish: '
    if desired is not None and updated < desired:
        return f"{prefix}{updated} out of {desired} new replicas have been updated...", False, False
    if replicas > updated:
        return f"{prefix}{replicas - updated} old replicas are pending termination...", False, False
    if available < updated:
        return f"{prefix}{available} of {updated} updated replicas are available...", False, False
    return f'deployment "{name}" successfully rolled out', True, False


class _Answered(Exception):
    """A non-2xx answer to `KubeConnection.get_async`, shaped as the client's
    ApiException is where `kubernetes_error` reads it."""

    def __init__(self, status: int, reason: str | None, body: bytes) -> None:
        super().__init__(f"HTTP {status}")
        self.status, self.reason, self.body = status, reason, body


def _tls_context(configuration: Any) -> ssl.SSLContext | bool:
    """aiohttp's `ssl=` for the kubeconfig's cluster, as the client's urllib3
    pool makes it: the cluster's CA (or the system's), the user's client
    certificate, no verification only when the kubeconfig says
    insecure-skip-tls-verify, no host name check when it says so."""
    import ssl

    if not configuration.verify_ssl:
        return False
    context = ssl.create_default_context(cafile=configuration.ssl_ca_cert or None)
    if configuration.assert_hostname is False:
        context.check_hostname = False
    if configuration.cert_file:
        context.load_cert_chain(configuration.cert_file, configuration.key_file or None)
    context.set_alpn_protocols(("http/1.1",))
    return context


TOKEN_REFRESH_SECONDS = 30.0
"""How long the refresh cycle's reads (`get_async`) use a token before its
kubeconfig hook is asked again; a token the server refuses meanwhile is
refreshed at once."""

POOL_SIZE = 32
"""Connections kept open to one API server: as many as the poller's platform
threads (its default bound), so a cycle over hundreds of services that share
one connection reuses them instead of opening and discarding new ones."""


class KubeConnection:
    """One kubeconfig context's API client, created on the first request and
    shared by everything that talks to that cluster: one service's objects
    (its deployments, its Service or VirtualService, its rollback lease), and
    every service of a config on that cluster (the session shares one per
    cluster)."""

    def __init__(self, kubeconfig: str | None = None, context: str | None = None, timeout: float = API_TIMEOUT) -> None:
        self.kubeconfig = kubeconfig
        self.context = context
        self.timeout = timeout
        self._lock = threading.Lock()
        self._client: Any = None
        self._route: tuple[str, ssl.SSLContext | bool] | None = None
        self._route_made = False
        self._auth: tuple[float, dict[str, str]] | None = None  # (monotonic time, headers) of get_async

    def api_client(self) -> Any:
        """The kubernetes ApiClient, loading the kubeconfig on first use."""
        with self._lock:
            if self._client is None:
                self._client = self._load_client()
            return self._client

    def _load_client(self) -> Any:
        from .kube_client import slim

        slim()  # the client without its 40 MB of generated models (kube_client.py)
        from kubernetes import config
        from kubernetes.client import Configuration
        from urllib3.util.retry import Retry

        # type.__call__ bypasses the client's "copy of the global default"
        # metaclass: this connection's settings must not leak into other clusters.
        configuration = type.__call__(Configuration)
        try:
            config.load_kube_config(
                config_file=self.kubeconfig,
                context=self.context,
                client_configuration=configuration,
                persist_config=False,
            )
        except Exception as exc:  # ConfigException, OSError, YAML errors: all mean "fix the config"
            where = self.kubeconfig or "~/.kube/config"
            context = f', context "{self.context}"' if self.context else ""
            raise Unavailable(
                f"Cannot load the Kubernetes configuration ({where}{context}): {str(exc).rstrip('.')}. "
                "Check the kubeconfig path and context in the console config."
            ) from None
        # One quick retry of a failed connect; never re-send a request that
        # reached the server, so a slow API costs one timeout, not four.
        configuration.retries = Retry(total=1, connect=1, read=0, status=0, redirect=0)
        configuration.connection_pool_maxsize = POOL_SIZE
        if not configuration.verify_ssl:
            # The kubeconfig's insecure-skip-tls-verify, the user's choice (kubectl honours it
            # silently): urllib3 would warn on stderr at every request, across the TUI's screen.
            import warnings

            from urllib3.exceptions import InsecureRequestWarning

            warnings.filterwarnings("ignore", category=InsecureRequestWarning)
        from kubernetes.client import ApiClient

        client = ApiClient(configuration=configuration)
        # Every request made inside `bounded()` gets a total deadline and a size cap.
        bounded.install(client.rest_client.pool_manager)
        return client

    @property
    def server(self) -> str:
        """The API server URL, for messages ("" before the config is loaded)."""
        return self._client.configuration.host if self._client is not None else ""

    def call(
        self, verb: str, resource: str, name: str | None, namespace: str | None, request: Callable[[], Any],
        read_body: bool = False,
    ) -> Any:
        """Run one request and translate its failure into a PlatformError
        (`read_body`: return the body, read within the same bounds). The
        whole exchange is bounded to `timeout` seconds (urllib3's own timeouts
        are per read: a trickling server would never trip them) and its
        answer to `bounded.MAX_RESPONSE_BYTES`."""
        with bounded.bounded(self.timeout) as bound:
            return self._bounded_call(verb, resource, name, namespace, request, bound, read_body)

    def _bounded_call(
        self, verb: str, resource: str, name: str | None, namespace: str | None, request: Callable[[], Any],
        bound: bounded.Bound, read_body: bool = False,
    ) -> Any:
        from .kube_client import slim

        slim()  # before the first import of `kubernetes` (kube_client.py)
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            response = request()
            return response.data if read_body else response
        except (ApiException, HTTPError, OSError) as exc:
            if bound.expired or bound.too_large:
                raise self._out_of_bounds(bound, verb, resource, name, namespace) from None
            raise kubernetes_error(
                exc,
                verb=verb,
                resource=resource,
                name=name,
                namespace=namespace,
                server=self.server,
                timeout=self.timeout,
            ) from None

    def _out_of_bounds(
        self, bound: bounded.Bound, verb: str, resource: str, name: str | None, namespace: str | None
    ) -> PlatformError:
        target = describe_target(resource, name, namespace)
        where = f" at {self.server}" if self.server else ""
        if bound.too_large:
            return Unavailable(
                f"The Kubernetes API{where} answered {verb} {target} with more than "
                f"{bound.max_bytes // (1024 * 1024)} MiB; the request was abandoned. Check that the "
                "kubeconfig points at an API server."
            )
        return Timeout(
            f"The Kubernetes API{where} did not answer within {bound.seconds:g} s when trying to {verb} "
            f"{target} (the whole answer must arrive in that time); the request was abandoned. Check the "
            "connection (VPN) and the cluster's health, then try again."
        )

    def json(
        self, verb: str, resource: str, name: str | None, namespace: str | None, request: Callable[[], Any]
    ) -> Any:
        """Run one request (`_preload_content=False`) and parse its JSON answer,
        the body read within the same total deadline and size cap. Kubernetes
        answers objects: anything else is an error sentence, not a traceback."""
        with bounded.bounded(self.timeout) as bound:
            data = self._bounded_call(verb, resource, name, namespace, request, bound, read_body=True)
        return self._parsed(data, verb, resource)

    def _parsed(self, data: bytes, verb: str, resource: str) -> dict:
        try:
            parsed = json.loads(data)
        except (ValueError, RecursionError):
            parsed = None
        if not isinstance(parsed, dict):
            raise Unavailable(
                f"The Kubernetes API at {self.server} answered {verb} {resource} with something "
                "that is not a JSON object; check that the kubeconfig points at an API server."
            )
        return parsed

    def request(
        self,
        method: str,
        path: str,
        *,
        verb: str,
        resource: str,
        name: str | None = None,
        namespace: str | None = None,
        body: Any = None,
        content_type: str | None = None,
        query: list[tuple[str, str]] | None = None,
    ) -> Any:
        """One raw REST request (any path, e.g. a VirtualService or a Lease)
        with the kubeconfig's credentials; the parsed JSON answer.

        Plans show their requests as ApiCalls; sending them through here sends
        exactly what was shown."""
        headers = {"Accept": "application/json"}
        if method in ("POST", "PUT", "PATCH") and not any(k == "fieldManager" for k, _ in query or ()):
            # The apiserver records who wrote what (managedFields): the console writes as itself.
            query = [*(query or ()), ("fieldManager", FIELD_MANAGER)]
        if content_type:
            headers["Content-Type"] = content_type
        client = self.api_client()
        return self.json(
            verb,
            resource,
            name,
            namespace,
            lambda: client.call_api(
                path,
                method,
                query_params=query or [],
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
                _preload_content=False,
                _return_http_data_only=True,
                _request_timeout=self.timeout,
            ),
        )

    # -- the refresh cycle's read, on its event loop -----------------------------

    async def get_async(
        self, http: aiohttp.ClientSession, blocking: Blocking, path: str, *, resource: str,
        name: str | None = None, namespace: str | None = None,
    ) -> dict:
        """`request("GET", path, ...)` for the refresh cycle, made on its event
        loop with `http` (aiohttp) rather than in a thread: the same URL,
        headers, credentials and TLS, the same total deadline and size cap,
        the same sentences when it fails. Through the client, a GET here cost
        about 1 ms of CPU while the cycle ran (0.5 ms alone), 70 % of the
        refresh process's idle CPU at 40 services (issue 17); through aiohttp a
        fraction of that. `blocking(fn)` runs `fn` in a thread: the first
        kubeconfig load and an exec/OIDC token refresh. A config that needs what
        only the client does (a proxy, another TLS server name, socket options)
        reads through `request` there."""
        client = self._client if self._client is not None else await blocking(self.api_client)
        route = self._async_route(client)
        if route is None:
            return await blocking(lambda: self.request("GET", path, verb="get", resource=resource, name=name,
                                                       namespace=namespace))
        url, tls_context = route[0] + path, route[1]
        where = ("get", resource, name, namespace)
        status, reason, body = await self._send(http, url, await self._headers(client, blocking), tls_context, where)
        if status == 401 and client.configuration.refresh_api_key_hook is not None:
            # The token as last refreshed has expired since: refreshed now, asked once more.
            headers = await self._headers(client, blocking, refresh=True)
            status, reason, body = await self._send(http, url, headers, tls_context, where)
        if not 200 <= status <= 299:
            raise kubernetes_error(_Answered(status, reason, body), verb="get", resource=resource, name=name,
                                   namespace=namespace, server=self.server, timeout=self.timeout)
        return self._parsed(body, "get", resource)

    async def _headers(self, client: Any, blocking: Blocking, refresh: bool = False) -> dict[str, str]:
        """`get_async`'s headers: the client's own and the kubeconfig's token.
        The token's refresh hook (an exec plugin or OIDC may run a command)
        runs in a thread, at most every TOKEN_REFRESH_SECONDS, and when the
        server refused the token: asked before every request, as the client
        asks it, it cost a thread's round trip per read."""
        now = time.monotonic()
        if refresh or self._auth is None or now - self._auth[0] >= TOKEN_REFRESH_SECONDS:
            configuration = client.configuration
            settings = (await blocking(configuration.auth_settings) if configuration.refresh_api_key_hook is not None
                        else configuration.auth_settings())
            headers = {"Accept": "application/json", "User-Agent": client.user_agent, **client.default_headers}
            auth = settings.get("BearerToken")
            if auth and auth.get("in") == "header" and auth.get("value"):
                headers[auth["key"]] = auth["value"]
            self._auth = (now, headers)
        return self._auth[1]

    async def _send(
        self, http: aiohttp.ClientSession, url: str, headers: dict[str, str], tls_context: ssl.SSLContext | bool,
        where: tuple[str, str, str | None, str | None],
    ) -> tuple[int, str | None, bytes]:
        """One GET within the total deadline and the size cap: status, reason, body."""
        import aiohttp

        verb, resource, name, namespace = where
        bound = bounded.Bound(self.timeout, bounded.MAX_RESPONSE_BYTES)
        try:
            async with asyncio.timeout(self.timeout):
                async with http.get(url, headers=headers, ssl=tls_context, allow_redirects=False) as response:
                    body = await bounded.read_capped(response.content, bound.max_bytes)
                    if body is None:
                        bound.too_large = True
                        raise self._out_of_bounds(bound, verb, resource, name, namespace)
                    return response.status, response.reason, body
        except TimeoutError:
            bound.expired = True
            raise self._out_of_bounds(bound, verb, resource, name, namespace) from None
        except aiohttp.ClientResponseError as exc:  # not an HTTP answer (a status is never raised for here)
            raise kubernetes_error(ConnectionError(f"not an HTTP answer: {exc.message}"), verb=verb,
                                   resource=resource, name=name, namespace=namespace, server=self.server) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise kubernetes_error(exc, verb=verb, resource=resource, name=name, namespace=namespace,
                                   server=self.server, timeout=self.timeout) from None

    def _async_route(self, client: Any) -> tuple[str, ssl.SSLContext | bool] | None:
        """The base URL and aiohttp's `ssl=` for `get_async`, made once; None
        when this config needs the client's own transport."""
        if self._route_made:
            return self._route
        configuration = client.configuration
        route: tuple[str, ssl.SSLContext | bool] | None = None
        if not (configuration.proxy or configuration.tls_server_name or configuration.socket_options
                or isinstance(configuration.assert_hostname, str)):
            base = configuration.host.rstrip("/")
            if base.lower().startswith("https://"):
                try:
                    route = (base, _tls_context(configuration))
                except (OSError, ValueError):  # a CA or certificate file it cannot load: the client says so, in its words
                    route = None
            elif base.lower().startswith("http://"):
                route = (base, True)
        self._route, self._route_made = route, True
        return route


class KubernetesPlatform:
    """One service's Deployment, rolled back the way `kubectl rollout undo` does."""

    platform = PLATFORM

    def __init__(
        self,
        service: str,
        namespace: str,
        deployment: str,
        kubeconfig: str | None = None,
        context: str | None = None,
        timeout: float = API_TIMEOUT,
        clock: Clock | None = None,
        connection: KubeConnection | None = None,
        gitops_hold: float = GITOPS_HOLD_SECONDS,
        argocd_namespace: str = "argocd",
        gitops_method: str = "pause",
    ) -> None:
        self.name = service
        self.namespace = namespace
        self.deployment = deployment
        self.connection = connection or KubeConnection(kubeconfig, context, timeout)
        self._timeout = self.connection.timeout
        self._clock: Clock = clock or SystemClock()
        # One-shot reusable reads (REUSE_SECONDS): (monotonic time, deployment[, replica sets]).
        # The refresh's read is kept pickled (see `observe`).
        self._reads_lock = threading.Lock()
        self._observed: tuple[float, bytes] | None = None
        self._followed: tuple[float, dict] | None = None
        # What the objects recorded in the read the last plan was made from (`plan_provenance`):
        # (monotonic time, resourceVersion, Provenance).
        self._planned: tuple[float, str | None, Provenance] | None = None
        # The GitOps owner (Argo CD, Flux) that would undo a rollback: paused first, then watched.
        self.owners = GitOpsOwners(self.connection, argocd_namespace)
        self.gitops_hold = gitops_hold
        self.gitops_method = gitops_method

    def _take(self, attribute: str) -> tuple | None:
        """Take (and forget) a reusable read if it is fresh enough."""
        with self._reads_lock:
            found = getattr(self, attribute)
            setattr(self, attribute, None)
        if found is not None and time.monotonic() - found[0] <= REUSE_SECONDS:
            return found
        return None

    # --- plumbing ------------------------------------------------------------

    def _api_client(self) -> Any:
        return self.connection.api_client()

    @property
    def server(self) -> str:
        """The API server URL, for messages ("" before the config is loaded)."""
        return self.connection.server

    def _apps(self) -> Any:
        from kubernetes.client import AppsV1Api

        return AppsV1Api(self._api_client())

    def _core(self) -> Any:
        from kubernetes.client import CoreV1Api

        return CoreV1Api(self._api_client())

    def _call(
        self, verb: str, resource: str, name: str | None, request: Callable[[], Any], read_body: bool = False
    ) -> Any:
        """Run one request and translate its failure into a PlatformError."""
        return self.connection.call(verb, resource, name, self.namespace, request, read_body)

    def _json(self, verb: str, resource: str, name: str | None, request: Callable[[], Any]) -> Any:
        return self.connection.json(verb, resource, name, self.namespace, request)

    async def observe_async(self, http: aiohttp.ClientSession, blocking: Blocking) -> tuple[Health, dict]:
        """`observe(history=False)` on the refresh cycle's event loop (see
        `KubeConnection.get_async`), and the deployment it read: pass it to
        `observe(True, known)` for the history from the same read."""
        followed = self._take("_followed")
        if followed is not None:
            deployment = followed[1]
        else:
            deployment = self._checked(await self.connection.get_async(
                http, blocking, self._deployment_path, resource="deployments", name=self.deployment,
                namespace=self.namespace,
            ))
        return self._health(deployment), deployment

    @property
    def _deployment_path(self) -> str:
        return f"/apis/apps/v1/namespaces/{self.namespace}/deployments/{self.deployment}"

    def _get_deployment(self) -> dict:
        return self._checked(self._read_deployment())

    def _checked(self, deployment: dict) -> dict:
        # A Deployment from an API server says what it is and carries its spec (replicas defaulted):
        # anything else is a wrong-shaped answer, not a deployment with no pods.
        metadata, spec = deployment.get("metadata"), deployment.get("spec")
        if deployment.get("kind", "Deployment") != "Deployment" or not isinstance(metadata, dict) \
                or metadata.get("name", self.deployment) != self.deployment or not isinstance(spec, dict) \
                or "replicas" not in spec:
            raise Unavailable(
                f"The Kubernetes API at {self.server} answered get deployments \"{self.deployment}\" with something "
                "that is not that Deployment; check that the kubeconfig points at an API server."
            )
        return deployment

    # The refresh's two reads are raw requests (the same GET as AppsV1Api's
    # read_namespaced_deployment and list_namespaced_replica_set): the generated
    # AppsV1Api module (0.8 MB of RSS in each process) loads only for a rollback.
    def _read_deployment(self) -> dict:
        return self.connection.request(
            "GET",
            self._deployment_path,
            verb="get",
            resource="deployments",
            name=self.deployment,
            namespace=self.namespace,
        )

    def _replica_sets(self, deployment: dict) -> list[dict]:
        """The ReplicaSets this deployment controls (kubectl's GetAllReplicaSets)."""
        selector = label_selector(deployment.get("spec", {}).get("selector"))
        listing = self.connection.request(
            "GET",
            f"/apis/apps/v1/namespaces/{self.namespace}/replicasets",
            verb="list",
            resource="replicasets",
            namespace=self.namespace,
            query=[("labelSelector", selector)],
        )
        uid = deployment["metadata"].get("uid")
        return [
            rs
            for rs in _items(listing)
            if any(
                ref.get("controller") and ref.get("uid") == uid
                for ref in rs["metadata"].get("ownerReferences") or []
            )
        ]

    def _pods(self, deployment: dict) -> list[dict]:
        selector = label_selector(deployment.get("spec", {}).get("selector"))
        listing = self._json(
            "list",
            "pods",
            None,
            lambda: self._core().list_namespaced_pod(
                self.namespace,
                label_selector=selector,
                _preload_content=False,
                _request_timeout=self._timeout,
            ),
        )
        return sorted(_items(listing), key=lambda p: p["metadata"]["name"])

    @staticmethod
    def _current_replica_set(deployment: dict, replica_sets: list[dict]) -> dict | None:
        template = deployment.get("spec", {}).get("template") or {}
        matching = [
            rs
            for rs in replica_sets
            if templates_equal(rs.get("spec", {}).get("template") or {}, template)
        ]
        # Several can match after a rollback to an identical template; the
        # controller adopts the oldest, so does kubectl's FindNewReplicaSet.
        matching.sort(key=lambda rs: rs["metadata"].get("creationTimestamp") or "")
        return matching[0] if matching else None

    # --- the Platform protocol ---------------------------------------------

    def history(self) -> list[Revision]:
        """`kubectl rollout history`: revisions newest first, the current one marked."""
        deployment = self._get_deployment()
        return self._history(deployment, self._replica_sets(deployment))

    def _history(self, deployment: dict, replica_sets: list[dict]) -> list[Revision]:
        current = self._current_replica_set(deployment, replica_sets)
        revisions = []
        for rs in replica_sets:
            number = revision_of(rs)
            if number is None:
                continue
            annotations = rs["metadata"].get("annotations") or {}
            template = rs.get("spec", {}).get("template") or {}
            # The release's schema mark: on the pod template (kept per revision), else on the ReplicaSet.
            template_annotations = (template.get("metadata") or {}).get("annotations") or {}
            schema = template_annotations.get(SCHEMA_ANNOTATION) or annotations.get(SCHEMA_ANNOTATION)
            revisions.append(
                Revision(
                    number=number,
                    images=template_images(template),
                    change_cause=annotations.get(CHANGE_CAUSE_ANNOTATION),
                    created=parse_time(rs["metadata"].get("creationTimestamp")),
                    current=current is not None and rs["metadata"]["uid"] == current["metadata"]["uid"],
                    ref=rs["metadata"]["name"],
                    schema=(str(schema).strip() or None) if schema else None,
                )
            )
        revisions.sort(key=lambda r: r.number, reverse=True)
        return revisions

    def template(self, revision: int | None = None) -> dict:
        """`kubectl rollout history --revision=N -o yaml`'s pod template (the
        deployment's current template when `revision` is None), without the
        pod-template-hash label so two templates compare like kubectl does."""
        deployment = self._get_deployment()
        if revision is None:
            return template_without_hash((deployment.get("spec") or {}).get("template") or {})
        for rs in self._replica_sets(deployment):
            if revision_of(rs) == revision:
                return template_without_hash((rs.get("spec") or {}).get("template") or {})
        raise NotFound(
            f"Revision {revision} of deployment/{self.deployment} not found in namespace "
            f'"{self.namespace}": pick one the rollout history lists.'
        )

    def health(self) -> Health:
        """Replica counts from the deployment's status (`kubectl get deployment`)."""
        return self._health(self._get_deployment())

    def observe(self, history: bool = True, known: dict | None = None) -> tuple[Health, list[Revision] | None]:
        """`health()` and, when asked, `history()` from ONE read of the
        deployment (the refresh cycle's call: one request fewer per service).
        History is None when not asked for. `known`: the deployment as
        `observe_async` read it, not read again."""
        deployment = known
        if deployment is None:
            followed = self._take("_followed")
            deployment = followed[1] if followed is not None else self._get_deployment()
        health = self._health(deployment)
        if not history:
            return health, None
        replica_sets = self._replica_sets(deployment)
        # Kept pickled: the parsed objects of every service weigh ~23 KB each in memory (12 MB
        # at 500 services, for a read a rollback plan reuses only within REUSE_SECONDS), the
        # pickle ~4 KB (issue 17, peak RSS); loading it back also hands the plan its own copy.
        kept = pickle.dumps((deployment, replica_sets), protocol=pickle.HIGHEST_PROTOCOL) if _plans_here else None
        with self._reads_lock:
            self._observed = (time.monotonic(), kept) if kept is not None else None
            # What the objects record, from the same reads: another console's or a person's rollback
            # shows in the timeline within one refresh.
            self._recorded = provenance_of(deployment, replica_sets)
        return health, self._history(deployment, replica_sets)

    def recorded(self) -> Provenance | None:
        """The provenance read with the last `observe` that read the history (None before one)."""
        with self._reads_lock:
            return getattr(self, "_recorded", None)

    def _health(self, deployment: dict) -> Health:
        status = deployment.get("status") or {}
        desired = _count(deployment.get("spec", {}).get("replicas"))
        updated = _count(status.get("updatedReplicas") or 0)
        failing = None
        if deadline_exceeded(deployment) is not None:
            # The condition the controller sets (kubectl rollout status's failure), read with the
            # deployment itself: the old ReplicaSet may go on serving, and the signals with it.
            revision = revision_of(deployment)
            failing = (f"the rollout of revision {revision if revision is not None else '?'} exceeded its progress deadline: {updated} of "
                       f"{desired} new pods")
        return Health(
            desired=desired,
            ready=_count(status.get("readyReplicas") or 0),
            updated=updated,
            available=_count(status.get("availableReplicas") or 0),
            checked_at=self._clock.now(),
            deployment_failing=failing,
        )

    def plan_rollback(self, to_revision: int | None = None) -> RollbackPlan:
        """`kubectl rollout undo [--to-revision=N]` as a plan; changes nothing."""
        observed = self._take("_observed")
        if observed is not None:
            deployment, replica_sets = pickle.loads(observed[1])
        else:
            deployment = self._get_deployment()
            replica_sets = self._replica_sets(deployment)
        ref = f"deployment/{self.deployment}"
        numbered = sorted(
            ((revision_of(rs), rs) for rs in replica_sets if revision_of(rs) is not None),
            key=lambda pair: pair[0],
            reverse=True,
        )
        listed = ", ".join(str(n) for n, _ in sorted(numbered, key=lambda pair: pair[0]))
        if not to_revision:
            if len(numbered) < 2:
                raise NotFound(
                    f"{ref} has no previous revision to roll back to (revisions: {listed or 'none'})."
                )
            target_number, target = numbered[1]
        else:
            match = [rs for n, rs in numbered if n == to_revision]
            if not match:
                raise NotFound(
                    f"revision {to_revision} not found in the history of {ref}; "
                    f"revisions: {listed or 'none'}"
                )
            target_number, target = to_revision, match[0]
        if deployment.get("spec", {}).get("paused"):
            raise Conflict(
                f"{ref} is paused and a paused deployment cannot be rolled back: resume it "
                f"first with 'kubectl rollout resume {ref}' and try again."
            )

        template = deployment.get("spec", {}).get("template") or {}
        # The patch tests this resourceVersion: the deployment before it is the one read here.
        self._planned_deadline = (deployment["metadata"].get("resourceVersion"), deadline_exceeded(deployment))
        with self._reads_lock:
            self._planned = (time.monotonic(), deployment["metadata"].get("resourceVersion"),
                             provenance_of(deployment, replica_sets))
        current = self._current_replica_set(deployment, replica_sets)
        from_revision = revision_of(current) if current is not None else revision_of(deployment)
        target_template = target.get("spec", {}).get("template") or {}
        resource_version = deployment["metadata"].get("resourceVersion")
        base = dict(
            service=self.name,
            platform=PLATFORM,
            from_revision=from_revision,
            to_revision=target_number,
            from_images=template_images(template),
            to_images=template_images(target_template),
            resource_version=resource_version,
        )
        if templates_equal(target_template, template):
            reason = f"skipped rollback (current template already matches revision {target_number})"
            return self._with_owner(RollbackPlan(**base, skip_reason=reason, summary=reason), deployment)

        annotations = {
            k: v
            for k, v in (deployment["metadata"].get("annotations") or {}).items()
            if k in ANNOTATIONS_TO_SKIP
        }
        annotations.update(
            {
                k: v
                for k, v in (target["metadata"].get("annotations") or {}).items()
                if k not in ANNOTATIONS_TO_SKIP
            }
        )
        patch = [
            {"op": "test", "path": "/metadata/resourceVersion", "value": resource_version},
            {"op": "replace", "path": "/spec/template", "value": template_without_hash(target_template)},
            {"op": "replace", "path": "/metadata/annotations", "value": annotations},
        ]
        path = f"/apis/apps/v1/namespaces/{self.namespace}/deployments/{self.deployment}"
        summary = (
            f"Roll back {ref} in namespace {self.namespace} from revision {from_revision} "
            f"({_versions(base['from_images'])}) to revision {target_number} "
            f"({_versions(base['to_images'])}), as `kubectl rollout undo {ref} "
            f"--to-revision={target_number}` would, refused if the deployment changed since "
            f"resourceVersion {resource_version}."
        )
        return self._with_owner(RollbackPlan(
            **base,
            calls=(ApiCall("PATCH", path, body=json.dumps(patch, indent=2)),),
            summary=summary,
        ), deployment)

    # --- GitOps: the owner that would undo the rollback ----------------------

    def owner(self) -> GitOpsOwner | None:
        """Who deploys this service from git (Argo CD, Flux), None when nothing does."""
        return self.owners.owner_of(self._get_deployment())

    def _with_owner(self, plan: RollbackPlan, deployment: dict) -> RollbackPlan:
        """The plan with its GitOps owner and, when that owner self-heals, the
        requests that pause it first (checked by a server-side dry run)."""
        owner = self.owners.owner_of(deployment)
        if owner is None:
            return plan
        if plan.skip_reason or not owner.self_healing:
            return replace(plan, owner=owner, summary=f"{plan.summary} The service is {owner.header()}.")
        owner = self.owners.check_pause(owner)
        calls = self.owners.pause_calls(owner)
        first = (f"{self.name} is {owner.header()}. First pause it" + (f" and its app-of-apps parent {owner.parent}" if owner.parent else "")
                 + f" ({owner.resume_hint().split(' (')[0]} turns it back on), or it puts "
                 f"{', '.join(plan.from_versions)} back. ")
        held = f" Then check, after {owner.kind} reconciles, that the rollback held."
        revision = self.owners.revision_call(owner) if self.gitops_method == "revision" else None
        if revision is not None:
            # Argo CD's own rollback: it deploys the previous synced revision itself.
            summary = (f"{first}Then sync it to its previous synced revision {owner.previous_revision[:12]}, as "
                       f"`argocd app rollback {owner.name}` would ({_versions(plan.from_images)} → "
                       f"{_versions(plan.to_images)} expected).{held}")
            return replace(plan, owner=owner, pre_calls=calls, calls=(revision,), summary=summary)
        return replace(plan, owner=owner, pre_calls=calls, summary=first + plan.summary + held)

    def _synced_by_owner(self, plan: RollbackPlan, deadline: datetime) -> dict:
        """Wait until the owner's sync has put the target's template on the Deployment."""
        while True:
            deployment = self._get_deployment()
            if template_images((deployment.get("spec") or {}).get("template") or {}) == plan.to_images:
                return deployment
            if self._clock.now() >= deadline:
                raise Timeout(f"{plan.owner.ref} did not sync {_versions(plan.to_images)} in time; look at its "
                              "sync status (`argocd app get`) and decide whether to wait or roll back by hand.")
            time.sleep(POLL_INTERVAL_SECONDS)

    def _by_owner(self, plan: RollbackPlan) -> bool:
        """The plan's change is the owner's own rollback (config `gitops.method: revision`)."""
        return bool(plan.calls) and "/deployments/" not in plan.calls[0].target

    def execute(self, plan: RollbackPlan, timeout: float = ROLLOUT_TIMEOUT) -> Iterator[Progress]:
        """Apply the plan's patch, then follow the rollout like `kubectl rollout
        status` until it succeeds, fails (progress deadline) or `timeout`
        seconds of the platform's clock pass (then Timeout is raised)."""
        if plan.platform != PLATFORM or plan.service != self.name:
            raise PlatformError(
                f"This plan is for {plan.platform} service {plan.service}, not for deployment/"
                f"{self.deployment}; plan the rollback again."
            )
        if plan.skip_reason:
            yield Progress(message=plan.skip_reason, at=self._clock.now(), done=True)
            return
        if len(plan.calls) != 1:
            raise PlatformError("This plan has no patch to apply; plan the rollback again.")
        deadline = self._clock.now() + timedelta(seconds=timeout)
        # A rollback of a rollout past its deadline: that condition is the old rollout's, not ours.
        stale = self._observed_deadline(plan)
        for line in self.owners.pause(plan.pre_calls):
            yield Progress(message=line, at=self._clock.now())
        if self._by_owner(plan):
            self.owners.send(plan.calls[0])
            patched = self._synced_by_owner(plan, deadline)
        else:
            patched = self._apply(plan)
        yield Progress(
            message=f"deployment.apps/{self.deployment} rolled back"
            + (f" by {plan.owner.ref} (sync to {plan.owner.previous_revision[:12]})" if self._by_owner(plan) else ""),
            at=self._clock.now(),
            desired=patched.get("spec", {}).get("replicas"),
        )
        last: Progress | None = None
        try:
            for last in self._follow(patched, deadline, stale if stale is not None else deadline_exceeded(patched)):
                if last.done and not last.failed and plan.owner is not None and plan.pre_calls:
                    yield replace(last, done=False)
                    last = self._held(plan, last)
                yield last
        except PlatformError as err:
            raise type(err)(
                f"The rollback of deployment/{self.deployment} was applied, but following its "
                f"progress failed: {err}"
            ) from None
        if last is None or not last.done:
            status = last.message if last else "unknown"
            raise Timeout(
                f"deployment/{self.deployment} did not finish rolling out within {timeout:g} s "
                f"(last status: {status}); check the pods (`kubectl get pods -l "
                f"{label_selector((patched.get('spec') or {}).get('selector')) or 'app=' + self.name}`) "
                "and decide whether to wait or escalate."
            )

    def _held(self, plan: RollbackPlan, done: Progress) -> Progress:
        """After the rollout: ask the owner to reconcile, wait for it, watch the
        Deployment for `gitops_hold` seconds; the final Progress, or Conflict
        when the owner put the old version back."""
        owner = plan.owner
        token = self.owners.request_reconcile(owner)
        if not self.owners.wait_reconciled(owner, token, self._timeout * 3):
            raise Timeout(f"{owner.ref} did not reconcile within {self._timeout * 3:g} s; check with "
                          f"`kubectl get deployment/{self.deployment} -n {self.namespace}` that the rollback held.")
        end = time.monotonic() + self.gitops_hold
        while True:
            images = template_images((self._get_deployment().get("spec") or {}).get("template") or {})
            if images != plan.to_images:
                raise Conflict(
                    f"{owner.ref} put {_versions(images)} back after the rollback: it was not paused. "
                    f"Pause it ({'argocd app set --sync-policy none' if owner.tool == 'argocd' else 'flux suspend'}) "
                    "and roll back again.")
            if time.monotonic() >= end:
                break
            time.sleep(POLL_INTERVAL_SECONDS)
        return replace(done, message=f"{done.message}; held: {owner.ref} reconciled and left "
                                     f"{_versions(plan.to_images)} running", at=self._clock.now(), done=True)

    # --- provenance: the rollbacks the objects record ------------------------

    def provenance(self) -> Provenance:
        """The console's records on the deployment and its ReplicaSets, the
        undos its rollout history shows, and the revision whose pods never
        became ready (the rollout past its progress deadline)."""
        deployment = self._get_deployment()
        return provenance_of(deployment, self._replica_sets(deployment))

    def plan_provenance(self, plan: RollbackPlan) -> Provenance | None:
        """What the objects recorded in the very read `plan` was made from, when
        the gate may take it instead of reading them again: the plan is this
        platform's last, made under REUSE_SECONDS ago, and its one change is the
        deployment PATCH that tests the resourceVersion read. A record written
        since (another console's rollback, a person's `rollout undo`) changed
        that version, and the API server refuses the PATCH: the console never
        acts on an older record than the change it sends. None otherwise (a
        GitOps owner paused first, the owner's own rollback, an older plan):
        read them fresh."""
        with self._reads_lock:
            planned = self._planned
        if planned is None or time.monotonic() - planned[0] > REUSE_SECONDS:
            return None
        _, version, found = planned
        if (plan.service != self.name or plan.pre_calls or len(plan.calls) != 1 or self._by_owner(plan)
                or not version or plan.resource_version != version or not _tests_version(plan.calls[0], version)):
            return None
        return found

    def with_record(self, plan: RollbackPlan, record: RollbackRecord, existing=()) -> RollbackPlan:
        """The plan whose patch also writes `record` into the deployment's
        ROLLBACKS_ANNOTATION (one request: the change and its record never part)."""
        if plan.skip_reason or len(plan.calls) != 1 or self._by_owner(plan):
            return plan
        patch = json.loads(plan.calls[0].body)
        for op in patch:
            if op.get("path") == "/metadata/annotations" and op.get("op") == "replace":
                value = dict(op.get("value") or {})
                value[ROLLBACKS_ANNOTATION] = encode(existing, record)
                op["value"] = value
        call = plan.calls[0]
        return replace(plan, calls=(ApiCall(call.method, call.target, body=json.dumps(patch, indent=2)),))

    def _observed_deadline(self, plan: RollbackPlan) -> str | None:
        """The ProgressDeadlineExceeded condition the deployment had before the patch (None: none)."""
        planned = getattr(self, "_planned_deadline", None)
        if planned is not None and planned[0] == plan.resource_version:
            return planned[1]
        try:
            return deadline_exceeded(self._get_deployment())
        except PlatformError:
            return None

    def _apply(self, plan: RollbackPlan) -> dict:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        patch = json.loads(plan.calls[0].body)
        with bounded.bounded(self._timeout) as bound:
            try:
                response = self._apps().patch_namespaced_deployment(
                    self.deployment,
                    self.namespace,
                    body=patch,
                    field_manager=FIELD_MANAGER,
                    _content_type=JSON_PATCH,
                    _preload_content=False,
                    _request_timeout=self._timeout,
                )
                data = response.data
            except (ApiException, HTTPError, OSError) as exc:
                if bound.expired or bound.too_large:
                    raise self.connection._out_of_bounds(
                        bound, "patch", "deployments", self.deployment, self.namespace
                    ) from None
                # A failed `test` op is HTTP 422 from a real apiserver (409 from
                # some); either way, if the version moved, that is the reason.
                if getattr(exc, "status", None) in (409, 422):
                    now_version = self._get_deployment()["metadata"].get("resourceVersion")
                    if now_version != plan.resource_version:
                        raise Conflict(
                            f"deployment/{self.deployment} changed since you looked (resourceVersion "
                            f"{plan.resource_version} → {now_version}); review the new state and "
                            "try again"
                        ) from None
                raise kubernetes_error(
                    exc,
                    verb="patch",
                    resource="deployments",
                    name=self.deployment,
                    namespace=self.namespace,
                    server=self.server,
                    timeout=self._timeout,
                ) from None
        try:
            patched = json.loads(data)
        except ValueError:
            patched = None
        if not isinstance(patched, dict):
            raise Unavailable(
                f"The Kubernetes API at {self.server} accepted the patch of deployment/{self.deployment} "
                "but answered with something that is not a JSON object; check the rollout with "
                f"`kubectl rollout status deployment/{self.deployment}`."
            )
        return patched

    def _follow(self, deployment: dict, deadline: datetime, stale_deadline: str | None = None) -> Iterator[Progress]:
        """Follow the rollout until it is done, fails or `deadline` passes.
        `stale_deadline`: a ProgressDeadlineExceeded condition (its lastUpdateTime)
        the rollout before this one left; it fails this rollout only once this
        rollout's own progress deadline (progressDeadlineSeconds from now) has passed."""
        last_message = None
        status_message, warning = None, None
        seconds = (deployment.get("spec") or {}).get("progressDeadlineSeconds")
        own_deadline = self._clock.now() + timedelta(seconds=int(seconds)) if seconds else None
        for current, quiet in self._updates(deployment, deadline):
            with self._reads_lock:
                self._followed = (time.monotonic(), current)
            inherited = stale_deadline if own_deadline is None or self._clock.now() < own_deadline else None
            message, done, failed = rollout_status(current, inherited)
            if message != status_message:
                status_message, warning = message, None  # it moved: an old warning is stale
            if quiet and not done:
                warning = self._pod_warning(current)
            if warning and not done:
                message = f"{message} (Warning: {warning})"
            if message != last_message:
                status = current.get("status") or {}
                yield Progress(
                    message=message,
                    at=self._clock.now(),
                    done=done,
                    failed=failed,
                    updated=status.get("updatedReplicas") or 0,
                    ready=status.get("readyReplicas") or 0,
                    desired=current.get("spec", {}).get("replicas"),
                )
                last_message = message
            if done:
                return

    def _updates(self, first: dict, deadline: datetime) -> Iterator[tuple[dict, bool]]:
        """The deployment as it changes until the deadline, each with whether
        it has been quiet for STALL_SECONDS: one watch on it (re-opened after a
        quiet spell or its window), falling back to polling if the API cannot
        watch."""
        from kubernetes import watch
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError, ReadTimeoutError

        yield first, False
        last = first
        version = first["metadata"].get("resourceVersion")
        watching = True
        while watching:
            remaining = (deadline - self._clock.now()).total_seconds()
            if remaining <= 0:
                return
            window = max(1, min(WATCH_WINDOW_SECONDS, math.ceil(remaining)))
            stream = watch.Watch()
            # The server ends a watch after its window; one that does not (or
            # trickles) is cut a request timeout later and polling takes over.
            window_bound = bounded.bounded(window + self._timeout)
            window_bound.__enter__()
            try:
                for event in stream.stream(
                    self._apps().list_namespaced_deployment,
                    self.namespace,
                    field_selector=f"metadata.name={self.deployment}",
                    resource_version=version,
                    timeout_seconds=window,
                    deserialize=False,
                    # A read that waits STALL_SECONDS for an event ends the
                    # request: the rollout is stalled, its pods are looked at.
                    _request_timeout=(self._timeout, min(window + self._timeout, STALL_SECONDS)),
                ):
                    # deserialize=False hands out the parsed JSON under "object".
                    obj = event.get("object") or event.get("raw_object") or {}
                    if event.get("type") == "DELETED":
                        raise NotFound(
                            f"deployment/{self.deployment} was deleted during the rollback."
                        )
                    if obj.get("kind") == "Status" or "metadata" not in obj:
                        continue
                    version = obj["metadata"].get("resourceVersion", version)
                    last = obj
                    yield obj, False
                    if self._clock.now() >= deadline:
                        stream.stop()
                        return
            except ApiException as exc:
                if exc.status == 410:
                    # The watch fell too far behind: relist, then watch from there.
                    current = self._get_deployment()
                    version = current["metadata"].get("resourceVersion")
                    last = current
                    yield current, False
                else:
                    watching = False
            except ReadTimeoutError:
                yield last, True  # quiet for STALL_SECONDS: look at the pods, watch again
                continue
            except (HTTPError, OSError, ValueError, KeyError, AttributeError, TypeError):
                # KeyError: the client's own handling of an ERROR event breaks
                # with deserialize=False; polling is the safe way on.
                watching = False
            finally:
                window_bound.__exit__(None, None, None)
        quiet_since = time.monotonic()
        while self._clock.now() < deadline:
            time.sleep(POLL_INTERVAL_SECONDS)
            current = self._get_deployment()
            if current["metadata"].get("resourceVersion") != last["metadata"].get("resourceVersion"):
                last, quiet_since = current, time.monotonic()
                yield current, False
            elif time.monotonic() - quiet_since >= STALL_SECONDS:
                quiet_since = time.monotonic()
                yield current, True
            else:
                yield current, False

    def _pod_warning(self, deployment: dict) -> str | None:
        """kubectl's appendWarning: what is wrong with a pod stuck in image
        pull, crash loop or scheduling; None when nothing is (or the pods
        cannot be read: the warning is a nicety, the status is what matters)."""
        try:
            pods = self._pods(deployment)
        except PlatformError:
            return None
        for pod in pods:
            for cond in (pod.get("status") or {}).get("conditions") or []:
                if (
                    cond.get("type") == "PodScheduled"
                    and cond.get("status") == "False"
                    and cond.get("reason") == "Unschedulable"
                ):
                    return cond.get("message", "")
            for cstatus in (pod.get("status") or {}).get("containerStatuses") or []:
                waiting = (cstatus.get("state") or {}).get("waiting") or {}
                if waiting.get("reason") in _WARN_REASONS:
                    return f"{waiting['reason']} - {waiting.get('message', '')}"
        return None

    def verify(self) -> Health:
        """The runbook's step 4 as counts: pods of the current template that
        exist (updated) and are ready, against the desired replicas."""
        deployment = self._get_deployment()
        current = self._current_replica_set(deployment, self._replica_sets(deployment))
        pods = [p for p in self._pods(deployment) if not p["metadata"].get("deletionTimestamp")]
        current_pods = [p for p in pods if current is not None and _owner(p) == current["metadata"]["name"]]
        status = deployment.get("status") or {}
        return Health(
            desired=deployment.get("spec", {}).get("replicas"),
            ready=sum(1 for p in current_pods if _pod_ready(p)),
            updated=len(current_pods),
            available=status.get("availableReplicas") or 0,
            checked_at=self._clock.now(),
        )

    def follow(self, timeout: float = ROLLOUT_TIMEOUT) -> Iterator[Progress]:
        """`kubectl rollout status`: the deployment's progress from now until it
        is rolled out or fails (progress deadline); Timeout is raised when
        `timeout` seconds of the platform's clock pass first."""
        deadline = self._clock.now() + timedelta(seconds=timeout)
        last: Progress | None = None
        for last in self._follow(self._get_deployment(), deadline):
            yield last
        if last is None or not last.done:
            status = last.message if last else "unknown"
            raise Timeout(
                f"deployment/{self.deployment} did not finish rolling out within {timeout:g} s "
                f"(last status: {status}); check the pods and decide whether to wait or escalate."
            )

    # --- freezing writes (the runbook's data-corruption steps 1 and 6) ------

    def replicas(self) -> int:
        """The deployment's desired replica count (`spec.replicas`)."""
        return int((self._get_deployment().get("spec") or {}).get("replicas", 1))

    def scale_call(self, replicas: int, current: int) -> ApiCall:
        """The request `scale` makes: a JSON Patch of the scale subresource whose
        `test` refuses it if the count moved away from `current` meanwhile."""
        patch = [
            {"op": "test", "path": "/spec/replicas", "value": current},
            {"op": "replace", "path": "/spec/replicas", "value": replicas},
        ]
        path = f"/apis/apps/v1/namespaces/{self.namespace}/deployments/{self.deployment}/scale"
        return ApiCall("PATCH", path, body=json.dumps(patch, indent=2))

    def scale(self, replicas: int) -> int:
        """`kubectl scale deployment/NAME --replicas=N`; returns the replica
        count it replaced (what resuming writes restores). Refused (Conflict)
        if someone changed the count between the read and the write."""
        before = self.replicas()
        call = self.scale_call(replicas, before)
        try:
            self.connection.request(
                call.method,
                call.target,
                verb="scale",
                resource="deployments",
                name=self.deployment,
                namespace=self.namespace,
                body=json.loads(call.body),
                content_type=JSON_PATCH,
            )
        except PlatformError as err:
            if type(err) in (PlatformError, Conflict):  # a failed `test` is 422 or 409
                now = self.replicas()
                if now != before:
                    raise Conflict(
                        f"deployment/{self.deployment} was scaled from {before} to {now} replicas by "
                        "someone else while the console was scaling it; look at it again and retry."
                    ) from None
            raise
        return before

    def rollback_lease(self, holder: str, ttl: float | None = None) -> RollbackLease:
        """The lease that lets one console at a time roll this service back."""
        from console.platforms.lease import DEFAULT_TTL_SECONDS, RollbackLease

        return RollbackLease(
            self.connection, self.namespace, self.name, holder, ttl or DEFAULT_TTL_SECONDS, self._clock
        )

    # --- the runbook's step 4 ----------------------------------------------

    def pods(self) -> tuple[PodInfo, ...]:
        """`kubectl get pods -l app=SERVICE`: name, ready, status, restarts, age."""
        deployment = self._get_deployment()
        now = self._clock.now()
        result = []
        for pod in self._pods(deployment):
            statuses = (pod.get("status") or {}).get("containerStatuses") or []
            containers = (pod.get("spec") or {}).get("containers") or []
            created = parse_time(pod["metadata"].get("creationTimestamp"))
            result.append(
                PodInfo(
                    name=pod["metadata"]["name"],
                    ready=_pod_ready(pod),
                    ready_containers=f"{sum(1 for s in statuses if s.get('ready'))}/{len(containers)}",
                    status=_pod_status(pod),
                    restarts=sum(int(s.get("restartCount") or 0) for s in statuses),
                    age=(now - created) if created else None,
                    images=tuple(c.get("image", "") for c in containers),
                    owner=_owner(pod),
                    created=created,
                )
            )
        return tuple(result)

    def logs(self, tail: int = 50) -> tuple[PodLogs, ...]:
        """`kubectl logs -l app=SERVICE --tail=N`: the last lines of each pod
        (at most MAX_LOG_PODS pods); one unreadable pod does not hide the others."""
        deployment = self._get_deployment()
        result = []
        for pod in self._pods(deployment)[:MAX_LOG_PODS]:
            name = pod["metadata"]["name"]
            containers = (pod.get("spec") or {}).get("containers") or []
            default = (pod["metadata"].get("annotations") or {}).get(
                "kubectl.kubernetes.io/default-container"
            ) or (containers[0]["name"] if containers else None)
            try:
                response = self._call(
                    "read the log of",
                    "pods",
                    name,
                    lambda: self._core().read_namespaced_pod_log(
                        name,
                        self.namespace,
                        container=default,
                        tail_lines=tail,
                        _preload_content=False,
                        _request_timeout=self._timeout,
                    ),
                    read_body=True,
                )
            except PlatformError as err:
                result.append(PodLogs(pod=name, lines=(), error=str(err)))
                continue
            text = response.decode("utf-8", "replace")
            result.append(PodLogs(pod=name, lines=tuple(text.splitlines())))
        return tuple(result)


# A wrong-shaped answer (a number where the deployment belongs) is a sentence naming the API.
for _method in ("history", "template", "health", "observe", "observe_async", "plan_rollback", "execute", "verify", "follow", "provenance",
                "replicas", "scale", "pods", "logs"):
    setattr(KubernetesPlatform, _method, shape_checked("Kubernetes API", getattr(KubernetesPlatform, _method)))
del _method


def _items(listing: dict) -> list:
    """The `items` of a list answer (ValueError when it has none: not a list answer)."""
    if "items" not in listing or not isinstance(listing["items"], (list, type(None))):
        raise ValueError("a list answer without an items list")
    return listing["items"] or []


def _count(value: Any, allow_none: bool = False) -> Any:
    """A replica count from the API: a whole number (ValueError otherwise,
    which `shape_checked` turns into a sentence)."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"a replica count is {type(value).__name__}, not a whole number")
    return value
def _tags(template: dict) -> tuple[str, ...]:
    return tuple(image_tag(i) for i in template_images(template))


def _tests_version(call: ApiCall, version: str) -> bool:
    """The call is a JSON patch whose first operation tests the resourceVersion `version`."""
    try:
        first = json.loads(call.body or "null")[0]
    except (ValueError, TypeError, IndexError, KeyError):
        return False
    return first == {"op": "test", "path": "/metadata/resourceVersion", "value": version}


def provenance_of(deployment: dict, replica_sets: list[dict]) -> Provenance:
    """`KubernetesPlatform.provenance` from objects already read."""
    recorded = from_annotations(
        (deployment.get("metadata") or {}).get("annotations"),
        *((rs.get("metadata") or {}).get("annotations") for rs in replica_sets),
    )
    views = []
    for rs in replica_sets:
        number = revision_of(rs)
        if number is None:
            continue
        annotations = rs["metadata"].get("annotations") or {}
        views.append(ReplicaSetView(number, _tags((rs.get("spec") or {}).get("template") or {}),
                                    parse_revision_history(annotations.get(REVISION_HISTORY_ANNOTATION))))
    owner = field_owner((deployment.get("metadata") or {}).get("managedFields"), "spec", "template")
    manager, at = owner if owner else ("kubectl rollout undo", None)
    current = KubernetesPlatform._current_replica_set(deployment, replica_sets)
    undos = undo_records(views, by=manager, current_at=at, current_revision=revision_of(current) if current else None)
    moves = {(r.from_versions, r.to_versions) for r in recorded.records}
    # The console's own rollbacks are recorded with who and why: keep those, not their echo in the history.
    undos = tuple(u for u in undos if not (u.by == FIELD_MANAGER and (u.from_versions, u.to_versions) in moves))
    never_ready: list[tuple[str, ...]] = []
    for condition in (deployment.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Progressing" and condition.get("reason") == "ProgressDeadlineExceeded":
            message = condition.get("message") or ""
            for rs in replica_sets:
                if f'"{rs["metadata"]["name"]}"' in message:
                    never_ready.append(_tags((rs.get("spec") or {}).get("template") or {}))
    return Provenance(recorded.records, tuple(never_ready), recorded.problems).merged(Provenance(undos))


def _versions(images: tuple[str, ...]) -> str:
    return ", ".join(image_tag(i) for i in images) or "no images"


def _owner(pod: dict) -> str:
    for ref in pod["metadata"].get("ownerReferences") or []:
        if ref.get("controller"):
            return ref.get("name", "")
    return ""


def _pod_ready(pod: dict) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


def _pod_status(pod: dict) -> str:
    """The STATUS column of `kubectl get pods`, simplified."""
    if pod["metadata"].get("deletionTimestamp"):
        return "Terminating"
    status = pod.get("status") or {}
    for cstatus in status.get("containerStatuses") or []:
        state = cstatus.get("state") or {}
        if state.get("waiting", {}).get("reason"):
            return state["waiting"]["reason"]
        if state.get("terminated", {}).get("reason"):
            return state["terminated"]["reason"]
    return status.get("reason") or status.get("phase") or "Unknown"
