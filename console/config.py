"""The console's configuration: frozen models checked by console.schema (each
field's docstring is the config reference), `load(path) -> Config`, and
`ConfigError`, whose message names the file, the field path and what was expected.

Secrets never live in the file: tokens and webhook URLs are read from
environment variables whose *names* the file gives.
"""

import dataclasses
import math
import os
import string
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal, Union

import yaml

from console.decision import Thresholds
from console.platforms.base import ROLLOUT_TIMEOUT
from console.platforms.ecs_limits import MAX_ATTEMPTS, POLL_INTERVAL, REQUEST_TIMEOUT, STABILITY_DEADLINE
from console.platforms.kubernetes import API_TIMEOUT
from console.schema import Field, Invalid, Model, Tagged, field_check, location
from console.signals import HEALTH_TIMEOUT, QUERY_TIMEOUT
from console.yamlfile import UnreadableFile, load_yaml, read_hand_written


class ConfigError(Exception):
    """A configuration that cannot be used, with a sentence saying where and why."""


MAX_PROBLEMS_SHOWN = 10
"""At most this many problems are listed for one config (the first ones, then a count)."""
MAX_CONFIG_BYTES = 1024 * 1024
"""A config file larger than this (1 MiB) is refused unread: no hand-written config comes close."""

class _Model(Model):
    """A section of the config (console.schema: frozen, checked field by field;
    a field named `*_env` holds an environment variable's name, never a secret)."""


class PrometheusConfig(_Model):
    """Where the console reads metrics."""

    url: str
    """Base URL of the Prometheus HTTP API, e.g. `http://prometheus:9090` (the console appends `/api/v1/query`)."""
    timeout: float = Field(QUERY_TIMEOUT, gt=0)
    """Seconds to wait for one query before the value is reported missing."""
    bearer_token_env: str | None = None
    """Name of an environment variable holding a bearer token (never put the token itself in this file)."""
    basic_auth_user: str | None = None
    """User name for HTTP basic auth."""
    basic_auth_password_env: str | None = None
    """Name of an environment variable holding the basic-auth password."""
    tls_verify: bool = True
    """Verify the server's TLS certificate."""
    ca_file: str | None = None
    """A CA bundle to verify the server's certificate with."""
    max_concurrency: int = Field(32, ge=1)
    """How many queries one refresh cycle may have in flight at once."""
    sample_interval: float = Field(15.0, gt=0)
    """Seconds between new samples of the queried series: your scrape interval, or the
    recording rules' evaluation interval when that is longer. A value counts as stale
    when older than `stale_after_intervals` times the longer of this and `refresh_interval`
    (a series only changes this often, however often the console asks)."""

    @field_check("url")
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("expected an http:// or https:// URL")
        return value.rstrip("/")

    def bearer_token(self) -> str | None:
        """The token from the environment, if one is configured and set."""
        return os.environ.get(self.bearer_token_env) if self.bearer_token_env else None

    def basic_auth(self) -> tuple[str, str] | None:
        if not self.basic_auth_user:
            return None
        password = os.environ.get(self.basic_auth_password_env or "", "")
        return (self.basic_auth_user, password)


class Queries(_Model):
    """PromQL per signal. `$service` is replaced by the service's name."""

    error_rate: str = 'service:error_rate:ratio{service="$service"}'
    """Fraction of failing requests (0.08 is 8 %). Convention without recording rules:
    `sum(rate(http_requests_total{service="$service",status=~"5.."}[2m])) / sum(rate(http_requests_total{service="$service"}[2m]))`."""
    latency_p95: str = 'service:latency_p95:seconds{service="$service"}'
    """95th percentile latency in SECONDS. Convention without recording rules:
    `histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket{service="$service"}[5m])))`."""
    request_rate: str = 'service:request_rate:rps{service="$service"}'
    """Requests per second. Convention without recording rules:
    `sum by (service) (rate(http_requests_total{service="$service"}[2m]))`. Empty: not read."""
    route_error_rate: str = 'service_route:error_rate:ratio{service="$service"}'
    """Fraction of failing requests per route: one series per route, with a `route` label
    (the "single endpoint failing" row). Convention without recording rules:
    `sum by (service, route) (rate(http_requests_total{service="$service",status=~"5.."}[2m])) / sum by (service, route) (rate(http_requests_total{service="$service"}[2m]))`.
    Empty: not read.

    Queries whose only use of `$service` is a label matcher (`service="$service"`) and
    that keep that label in their result (`sum by (service)`, not `sum`) are read for
    all services at once, one query per cycle: the fast path for hundreds of services."""

    def render(self, name: str, service: str) -> str:
        """The query `name` for `service`."""
        return string.Template(getattr(self, name)).safe_substitute(service=service)


class ThresholdsConfig(_Model):
    """Overrides of the runbook's numbers. Leave a field out to keep the runbook's value."""

    rollback_error_rate: float | None = Field(None, gt=0, le=1)
    """Error rate above which the runbook says rollback now (runbook: 0.05, i.e. 5 %)."""
    investigate_error_rate: float | None = Field(None, gt=0, le=1)
    """Error rate from which the runbook says investigate first (runbook: 0.01, i.e. 1 %)."""
    investigate_minutes: float | None = Field(None, gt=0)
    """How long to investigate before deciding (runbook: 5 minutes)."""
    latency_spike_factor: float | None = Field(None, gt=1)
    """p95 now divided by p95 before the deploy that counts as a latency spike."""
    rollback_settle_minutes: float | None = Field(None, gt=0)
    """After a completed rollback, minutes the banner shows ROLLED BACK (watching) before
    trusting the signals again: the longest window of your queries (default 2)."""

    def _after(self) -> None:
        low, high = self.investigate_error_rate, self.rollback_error_rate
        if low is not None and high is not None and low >= high:
            raise ValueError("investigate_error_rate must be below rollback_error_rate")
        self.resolve()  # an override may clash with a runbook default; Thresholds says how

    def resolve(self) -> Thresholds:
        """The decision thresholds: the runbook's defaults with these overrides."""
        overrides: dict[str, object] = {}
        if self.rollback_error_rate is not None:
            overrides["rollback_error_rate"] = self.rollback_error_rate
        if self.investigate_error_rate is not None:
            overrides["investigate_error_rate"] = self.investigate_error_rate
        if self.investigate_minutes is not None:
            overrides["investigate_window"] = timedelta(minutes=self.investigate_minutes)
        if self.latency_spike_factor is not None:
            overrides["latency_spike_factor"] = self.latency_spike_factor
        if self.rollback_settle_minutes is not None:
            overrides["rollback_settle"] = timedelta(minutes=self.rollback_settle_minutes)
        return Thresholds(**overrides)


class HealthConfig(_Model):
    """How the runbook's `curl -s .../health | jq -r .status` check is done."""

    timeout: float = Field(HEALTH_TIMEOUT, gt=0)
    """Seconds before an unanswered health check counts as down."""
    json_path: str = "status"
    """Dotted path of the status field in the JSON answer."""
    healthy_value: str = "healthy"
    """The value of that field that means healthy."""
    failures_before_down: int = Field(2, ge=1)
    """Failed checks in a row after which a failing endpoint counts as "service
    completely down" while the platform still reports ready pods (with no ready
    pods, one failure is enough)."""


class ClusterConfig(_Model):
    """One Kubernetes API to talk to."""

    kubeconfig: str | None = None
    """Path to a kubeconfig file (relative paths are relative to this config file); default: $KUBECONFIG or ~/.kube/config."""
    context: str | None = None
    """The kubeconfig context to use; default: its current-context."""
    timeout: float = Field(API_TIMEOUT, gt=0)
    """Seconds to wait for one API request."""


Argv = Annotated[list[str], Field(min_length=1)]
"""A command as an argv list (`["npm", "run", "db:migrate:rollback"]`): run
without a shell, so no value is ever interpolated into a command line."""


class CommandOrSql(_Model):
    """Either a command (argv list) or a SQL query against the service's database; exactly one."""

    command: Argv | None = None
    """The command to run, as an argv list (no shell). It runs with the
    database's PG* environment variables set (PGHOST, PGPORT, PGUSER,
    PGPASSWORD, PGDATABASE), so `psql` and most Postgres tools connect without
    the DSN on the command line."""
    sql: str | None = None
    """A SQL query run with `psql` against the DSN in `database.dsn_env`."""
    url: str | None = None
    """migration_status only: an HTTP(S) URL answering JSON, either Spring Boot
    Actuator's `/actuator/flyway` shape (`contexts.*.flywayBeans.*.migrations`,
    applied ones have `installedOn`) or a list of objects with name, applied_at,
    reversible. Read with the database's `timeout`."""

    def _after(self) -> None:
        if sum(v is not None for v in (self.command, self.sql, self.url)) != 1:
            raise ValueError("give exactly one of command (an argv list), sql or url")


class CommandOrLink(_Model):
    """Either a command (argv list) the console runs, or a link it shows; at least one."""

    command: Argv | None = None
    """The command to run, as an argv list (no shell)."""
    url: str | None = None
    """A link the operator opens (a pipeline, a feature-flag page)."""

    def _after(self) -> None:
        if self.command is None and self.url is None:
            raise ValueError("give a command (an argv list), a url, or both")


class BackupsConfig(_Model):
    """Where the backups taken before deploys are (the runbook's `backup_before_deploy.dump`)."""

    dir: str
    """Folder holding the dumps (relative paths are relative to this config file)."""
    glob: str = "*.dump"
    """Which files in it are dumps (`pg_dump -Fc` custom-format archives), newest first by modification time."""


class DatabaseConfig(_Model):
    """A service's database: how the console learns its migration state, rolls
    a migration back, and runs the data-corruption response."""

    dsn_env: str | None = None
    """Name of an environment variable holding the database's DSN
    (`postgresql://user:password@host:5432/db` or `host=... dbname=...`); never put the DSN itself here."""
    migration_status: CommandOrSql | None = None
    """How to learn the applied migrations. `sql`: rows of (name, applied_at
    [, reversible]), newest first, e.g. `SELECT version, applied_at FROM
    schema_migrations ORDER BY applied_at DESC LIMIT 20`. `command`: JSON
    (objects with name, applied_at, reversible) or text whose last non-empty
    line is the newest migration's name."""
    reversible: list[str] = []
    """Migrations known to be reversible (their down migration loses no data).
    A migration not listed, and not marked reversible by the status source, is
    treated as not reversible: the safe reading."""
    migration_rollback: Argv | None = None
    """The migration rollback command (the runbook's `npm run db:migrate:rollback`), as an argv list."""
    verify: CommandOrSql | None = None
    """The data integrity check (the runbook's `npm run db:verify`). A command
    passes when it exits 0; a query passes when it finds nothing: no rows, or
    a first value of 0 or false (write it to count or list the bad rows)."""
    assess_sql: str | None = None
    """The damage assessment query of the data-corruption response (the
    runbook's `SELECT COUNT(*) FROM affected_table WHERE corrupted_flag`); its result is shown."""
    fix_script: str | None = None
    """A data fix script run with `psql -f` in one transaction (relative paths are relative to this config file)."""
    backups: BackupsConfig | None = None
    """Where to find the dumps to restore with `pg_restore`."""
    feature_flag: CommandOrLink | None = None
    """How to disable the feature that uses the new schema (the runbook's option 2 when a migration is not reversible)."""
    hotfix: CommandOrLink | None = None
    """How to fix forward: a command that fast-tracks a hotfix, or a link to the pipeline (option 1)."""
    schema_requirements: dict[str, str] = {}
    """Which migration each release needs, image tag (or revision number) ->
    migration name: `{"1.2.3": "0042_split_address"}`. A release needing the
    newest applied migration works with the new schema: the target of a
    partial rollback (option 3)."""
    timeout: float = Field(120.0, gt=0)
    """Seconds one command or query may run before it is stopped and the step fails."""
    restore_timeout: float = Field(3600.0, gt=0)
    """Seconds a `pg_restore` may run before it is stopped and the step fails."""


class _ServiceBase(_Model):
    """What every service entry has, whatever its platform."""

    name: str = Field(min_length=1)
    """The service's name, as people and Prometheus labels call it."""
    health_url: str | None = None
    """URL of the service's health endpoint (the runbook's step 5)."""
    queries: Queries | None = None
    """Per-service PromQL overriding the top-level `queries`."""
    database: DatabaseConfig | None = None
    """The service's database: migration awareness and the data-corruption response."""


class _OnKubernetes(_ServiceBase):
    """A service on a Kubernetes cluster: a Deployment, blue-green or canary."""

    cluster: str | None = None
    """Name of an entry under `clusters:`; omit to use the default kubeconfig."""


class KubernetesService(_OnKubernetes):
    """A service deployed as a Kubernetes Deployment."""

    platform: Literal["kubernetes"] = "kubernetes"
    """`kubernetes` (the default): rolled back like `kubectl rollout undo`."""
    namespace: str = "default"
    """The namespace of the Deployment."""
    deployment: str | None = None
    """The Deployment's name; default: the service name."""

    @property
    def deployment_name(self) -> str:
        return self.deployment or self.name


class ComposeService(_ServiceBase):
    """A service run by Docker Compose on one host (the runbook's Docker Compose procedure)."""

    platform: Literal["compose"]
    """`compose`: this entry is a Docker Compose service."""
    compose_file: str = Field(min_length=1)
    """Path of the compose file whose `image:` line a rollback edits (relative paths are relative to this config file)."""
    project_name: str | None = None
    """The Compose project name (`docker compose -p`); default: Compose's own (the compose file's folder name, or COMPOSE_PROJECT_NAME)."""
    service: str | None = None
    """The service's key under `services:` in the compose file; default: the service name."""
    compose_command: Argv = ["docker", "compose"]
    """The Compose command as an argv list: `["docker", "compose"]` (Compose v2 plugin) or `["docker-compose"]` (standalone binary)."""
    docker_command: Argv = ["docker"]
    """The Docker CLI as an argv list, for `docker image ls`, `docker start` and `docker container inspect`."""
    docker_host: str | None = None
    """The engine to talk to (sets DOCKER_HOST for every command), e.g. `unix:///run/docker.sock` or `ssh://deploy@host`; default: the environment's."""
    registry: str | None = None
    """Base URL of the image registry (`http://127.0.0.1:5000`, `https://registry.example.com`): its `/v2/REPO/tags/list` adds tags to the history and to the candidates for the previous version (with `docker login`'s credentials when the Docker config has them). Omit it to use only the compose file's git history, the engine's images and the console's own record."""
    registry_timeout: float = Field(5.0, gt=0)
    """Seconds to wait for the registry's tag list."""
    command_timeout: float = Field(30.0, gt=0)
    """Seconds a quick command (`ps`, `logs`, `image ls`, `start`) may run before it is stopped and reported."""
    deploy_timeout: float = Field(600.0, gt=0)
    """Seconds `docker compose pull` and `docker compose up -d` may run (pulling a large image is slow)."""
    previous_container: str | None = None
    """The container the quick rollback starts (the runbook's `${SERVICE}_previous_container`); default: `SERVICE_previous_container`."""

    @property
    def compose_service(self) -> str:
        return self.service or self.name

    @property
    def previous_container_name(self) -> str:
        return self.previous_container or f"{self.compose_service}_previous_container"


class BlueGreenService(_OnKubernetes):
    """A blue-green service: one Deployment per colour behind one Kubernetes
    Service whose selector picks the live colour (the runbook's Blue-Green procedure)."""

    platform: Literal["blue-green"]
    """`blue-green`: this entry is a blue-green pair of Deployments."""
    namespace: str = "default"
    """The namespace of the Service and the Deployments."""
    service: str | None = None
    """The Kubernetes Service whose selector is switched; default: the service name."""
    selector_key: str = Field("version", min_length=1)
    """The Service selector's label that names the colour (`kubectl get service -o jsonpath='{.spec.selector.version}'`)."""
    colours: dict[str, str] | None = None
    """Colour -> its Deployment, in order (colour 1, colour 2); default: `{blue: NAME-blue, green: NAME-green}`."""
    verify_seconds: float = Field(30.0, gt=0)
    """Seconds the endpoints may take to become the target colour's pods before the switch is undone."""

    @field_check("colours")
    def _two_colours(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is not None and len(value) < 2:
            raise ValueError("name at least two colours (colour: deployment)")
        return value

    @property
    def service_name(self) -> str:
        return self.service or self.name

    @property
    def colour_deployments(self) -> dict[str, str]:
        return dict(self.colours or {"blue": f"{self.name}-blue", "green": f"{self.name}-green"})


class CanaryService(_OnKubernetes):
    """A canary service on Istio: a stable Deployment, a canary Deployment and a
    VirtualService splitting traffic between their subsets (the runbook's Canary procedure)."""

    platform: Literal["canary"]
    """`canary`: this entry is an Istio canary."""
    namespace: str = "default"
    """The namespace of the VirtualService and the Deployments."""
    virtualservice: str | None = None
    """The Istio VirtualService splitting the traffic; default: the service name."""
    host: str | None = None
    """The destination host of the routes in the VirtualService (the stable host); default: the service name."""
    stable_subset: str = Field("stable", min_length=1)
    """The DestinationRule subset of the stable pods."""
    canary_subset: str = Field("canary", min_length=1)
    """The DestinationRule subset of the canary pods."""
    deployment: str | None = None
    """The stable Deployment; default: the service name."""
    canary_deployment: str | None = None
    """The canary Deployment, scaled to 0 by an abort; default: `NAME-canary`."""

    @property
    def deployment_name(self) -> str:
        return self.deployment or self.name

    @property
    def canary_deployment_name(self) -> str:
        return self.canary_deployment or f"{self.name}-canary"


class EcsService(_ServiceBase):
    """A service on Amazon ECS (the runbook's AWS ECS procedure): rolled back by
    pointing it at an earlier revision of its task definition family."""

    platform: Literal["ecs"]
    """`ecs`: this entry is an Amazon ECS service."""
    cluster: str = Field("default", min_length=1)
    """The ECS cluster's name or ARN (`aws ecs ... --cluster`); this is not a key of `clusters:`."""
    service: str | None = None
    """The ECS service's name; default: the service name."""
    region: str | None = None
    """The AWS region, e.g. `us-east-1`; default: the profile's region or $AWS_REGION."""
    endpoint_url: str | None = None
    """The ECS API endpoint, for a VPC endpoint or the drill (`http://127.0.0.1:PORT/ecs`); default: AWS's regional endpoint."""
    profile: str | None = None
    """A profile from ~/.aws/config (SSO, assume-role ...); default: the AWS SDK's credential chain (environment, profile, instance role)."""
    access_key_id_env: str | None = None
    """Name of an environment variable holding an access key id (never put the key itself in this file); goes with `secret_access_key_env`."""
    secret_access_key_env: str | None = None
    """Name of an environment variable holding the secret access key."""
    session_token_env: str | None = None
    """Name of an environment variable holding a session token (temporary credentials)."""
    timeout: float = Field(REQUEST_TIMEOUT, gt=0)
    """Seconds to wait for one ECS API request (connect, and read)."""
    max_attempts: int = Field(MAX_ATTEMPTS, ge=1, le=20)
    """Attempts per request, the first included, when AWS throttles or fails transiently (retried with exponential backoff)."""
    retry_mode: Literal["standard", "adaptive"] = "standard"
    """botocore's retry mode: `standard`, or `adaptive` (also slows the client down while AWS throttles)."""
    stability_deadline: float = Field(STABILITY_DEADLINE, gt=0)
    """Seconds to wait for the service to become stable after a rollback before reporting the rollout stuck
    (`aws ecs wait services-stable` gives up after 600); a shorter `rollout_timeout` (or `rollback --timeout`) wins."""
    poll_interval: float = Field(POLL_INTERVAL, gt=0)
    """Seconds between two DescribeServices calls while waiting for stability."""

    def _after(self) -> None:
        if (self.access_key_id_env is None) != (self.secret_access_key_env is None):
            raise ValueError("give both access_key_id_env and secret_access_key_env, or neither")
        if self.profile and self.access_key_id_env:
            raise ValueError("give a profile or credential variables, not both")


ServiceConfig = Annotated[
    Union[KubernetesService, ComposeService, BlueGreenService, CanaryService, EcsService], Tagged("platform")
]


class SignalsConfig(_Model):
    """How the runbook's softer signals are derived from the metrics."""

    intermittent_window_minutes: float = Field(10.0, gt=0)
    """Window in which crossings of the investigate error rate (the runbook's 1 %) are counted."""
    intermittent_crossings: int = Field(3, ge=2)
    """This many crossings of that line within the window count as "Intermittent errors"."""
    before_deploy_margin_seconds: float = Field(60.0, ge=0)
    """The p95 "before the deploy" is read this many seconds before the current revision was created."""
    history_minutes: float = Field(30.0, gt=0)
    """How far back the sparklines reach; one range query fills them when the console starts."""
    rollout_history_every: int = Field(5, ge=1)
    """Read the rollout history every this many refresh cycles (pod counts and metrics:
    every cycle); a change in the pod counts re-reads it at once."""


class SlackConfig(_Model):
    """Where the runbook's messages go: a Slack incoming webhook."""

    webhook_url_env: str | None = None
    """Name of the environment variable holding the incoming-webhook URL (the URL is
    the credential: never put it in this file). Unset: messages are only previewed and copied."""
    channel: str = "#incidents"
    """The channel the webhook posts to, as people call it (shown in the console and the timeline)."""
    timeout: float = Field(5.0, gt=0)
    """Seconds to wait for Slack to answer one post."""
    retries: int = Field(3, ge=0, le=10)
    """How many times a failed post is retried at once (with backoff) before it is
    kept in the outbox as failed; the console retries kept messages later."""

    def webhook_url(self) -> str | None:
        """The webhook URL from the environment, None when not configured or not set."""
        return os.environ.get(self.webhook_url_env) or None if self.webhook_url_env else None


class EscalationConfig(_Model):
    """Who to contact at each of the runbook's escalation levels."""

    contacts: dict[Literal[1, 2, 3, 4], list[str]] = {}
    """Level (1 on-call engineer, 2 team lead, 3 SRE/platform team, 4 management) ->
    names, chat handles or pager targets, shown beside the level: `{2: ["@team-lead", "pager: shop-leads"]}`."""
    customer_impact_minutes: float | None = Field(None, gt=0)
    """Customer impact lasting longer than this many minutes escalates to Level 4
    (omit for the runbook's 30 minutes)."""


class GateConfig(_Model):
    """The rollback gate's numbers and names (README "The rollback gate")."""

    rolled_back_hours: float = Field(24.0, ge=0)
    """A version rolled back from within this many hours is never the target of a
    rollback without an override (runbook default of the console: 24)."""
    approvers: list[str] = []
    """Level 2 approvers (the runbook's Team Lead: "approve non-standard actions").
    When set, an override (`rollback --force`, the TUI's override dialog) also
    needs `--approved-by` one of these names."""

    def policy(self):
        """The gate's policy (`console.gate.GatePolicy`)."""
        from console.gate import GatePolicy

        return GatePolicy(timedelta(hours=self.rolled_back_hours), tuple(self.approvers))


class LeaderElectionConfig(_Model):
    """Two autopilots (two replicas), one acting: the one holding a Kubernetes Lease."""

    cluster: str
    """The `clusters:` entry whose API holds the Lease."""
    namespace: str = "default"
    """Namespace of the Lease `rollback-console-autopilot`."""
    lease_seconds: float = Field(15.0, ge=2)
    """The Lease's duration: a standby takes over this long after the leader stops renewing it."""


class AutopilotConfig(_Model):
    """The automated rollback trigger: `rollback-console autopilot` receives
    Alertmanager's webhooks and rolls back through the gate (README "Autopilot")."""

    listen: str = Field("127.0.0.1:9095", pattern=r"^[^:\s]*:[0-9]{1,5}$")
    """HOST:PORT the receiver listens on (`/alertmanager`, `/healthz`, `/metrics`)."""
    token_env: str = Field(min_length=1)
    """Name of the environment variable holding the bearer token Alertmanager sends
    (`http_config.authorization.credentials`); never put the token itself in this file."""
    label: str = "auto_rollback"
    """Only alerts with this label set to `label_value` act."""
    label_value: str = "true"
    """The value of `label` that asks for an automatic rollback (the runbook's `auto_rollback: "true"`)."""
    service_label: str = "service"
    """The alert label naming the service (a service's `name` or its `deployment`)."""
    namespace_label: str = "namespace"
    """The alert label that tells services of the same name apart by namespace."""
    cooldown_minutes: float = Field(30.0, ge=0)
    """A service rolled back automatically is not rolled back again automatically for this many minutes (it escalates)."""
    window_minutes: float = Field(10.0, ge=0)
    """Blast radius: at most `max_rollbacks` automatic rollbacks across all services within this many minutes."""
    max_rollbacks: int = Field(1, ge=1)
    """How many automatic rollbacks the window allows; a further bad service escalates instead."""
    paused: bool = False
    """Kill switch: the autopilot records and announces alerts and rolls nothing back."""
    pause_file: str | None = None
    """Kill switch: while this file exists the autopilot is paused (`touch` it to stop it)."""
    max_body_bytes: int = Field(1_048_576, ge=1024)
    """A webhook body larger than this is refused with 413."""
    operator: str = "autopilot"
    """The actor the timeline, the rollback records and the messages name."""
    leader_election: LeaderElectionConfig | None = None
    """Run two autopilots, one acting; omit for a single one."""

    def cooldown(self) -> timedelta:
        return timedelta(minutes=self.cooldown_minutes)

    def window(self) -> timedelta:
        return timedelta(minutes=self.window_minutes)

    def token(self) -> str | None:
        """The bearer token from the environment (None when the variable is unset or empty)."""
        return os.environ.get(self.token_env) or None

    def host_port(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host or "127.0.0.1", int(port)
class GitOpsConfig(_Model):
    """Services deployed by Argo CD or Flux (README "GitOps (Argo CD and Flux)")."""

    hold_seconds: float = Field(10.0, ge=0)
    """After rolling back a service whose owner self-heals (paused first), how long
    the console watches, once the owner reconciled, that the rollback held
    (default 10: twice Argo CD's 5-second self-heal timeout)."""
    max_paused_hours: float = Field(24.0, gt=0)
    """An owner the console paused is due to be turned back on within this many
    hours of the rollback (the checklist's GitOps group); past it, the incident
    escalates to level 2 naming the paused owner."""
    argocd_namespace: str = "argocd"
    """The namespace of Argo CD's Applications when the tracking annotation does not name one."""
    method: Literal["pause", "revision"] = "pause"
    """How a service whose Argo CD Application self-heals is rolled back: `pause`
    (pause it, then `kubectl rollout undo`), or `revision` (pause it, then sync it
    to the previous revision of its `status.history`, as `argocd app rollback`
    does). Flux owners are always paused, then rolled back."""


class ChecklistGroupConfig(_Model):
    """One group of the post-rollback checklist."""

    name: str = Field(min_length=1)
    """The group's heading ("Immediate")."""
    deadline_minutes: float | None = Field(None, gt=0)
    """Minutes after the rollback completes by which the group is due; omit for no deadline."""
    items: list[str] = Field(min_length=1)
    """The items, in the runbook's words. An item worded like a default item keeps
    the console's automatic tick (e.g. "Service health verified")."""


class IncidentConfig(_Model):
    """Incident records and messages."""

    ticket_prefix: str = Field("INC", min_length=1, pattern=r"^[A-Za-z0-9_-]+$")
    """Prefix of the incident id (PREFIX-YYYYMMDD-HHMM-SERVICE): the one id the messages,
    the export and the timeline all name."""
    message_eta_minutes: float = Field(5.0, gt=0)
    """The ETA the Rollback in Progress message announces (runbook: 5 minutes)."""
    status_update_minutes: float | None = Field(30.0, gt=0)
    """How often the console reminds you to post a Status Update (m offers it) while an
    incident is open; null turns the reminder off."""
    checklist: list[ChecklistGroupConfig] | None = None
    """The post-rollback checklist; omit it for the runbook's four groups
    (Immediate < 5 min, Short-term < 1 h, Investigation < 24 h, Long-term)."""
    store: str | None = None
    """The incident database this config's consoles and commands share (a relative path
    is relative to this file's folder); default: the XDG state dir's incidents.db. A
    drill's written config names its own (DIR/drill-incidents.db), out of the real one."""

    def _after(self) -> None:
        self.post_rollback_checklist()  # duplicate groups or items raise ValueError here

    def post_rollback_checklist(self):
        """The checklist to use (`console.checklist.Checklist`)."""
        from console.checklist import DEFAULT_CHECKLIST, Checklist

        if self.checklist is None:
            return DEFAULT_CHECKLIST
        return Checklist.from_items(
            (g.name, timedelta(minutes=g.deadline_minutes) if g.deadline_minutes else None, g.items)
            for g in self.checklist
        )


class UiConfig(_Model):
    theme: str = "default"
    """Theme name: one shipped in themes/ (default, high-contrast, light) or a file in the user themes dir."""
    refresh_process: bool = True
    """Run the refresh cycle (Prometheus, health checks, platform reads) in a
    child process, so keys and frames never wait for it. `false` runs it in
    the console's own process (one process, slower keys during a cycle)."""


class WebConfig(_Model):
    """`rollback-console web`: the console served to browsers."""

    host: str = "127.0.0.1"
    """Address to listen on. Anything but a loopback address also needs
    `allow_remote: true` and a token (`token_env`)."""
    port: int = Field(8000, ge=1, le=65535)
    """Port to listen on (`--port` overrides it)."""
    allow_remote: bool = False
    """Allow a non-loopback `host` (the war room's wall screen on another machine)."""
    token_env: str = "ROLLBACK_CONSOLE_WEB_TOKEN"
    """Environment variable holding the token browsers must present (`?token=...` once;
    a cookie after) when `host` is not loopback. Never written in the config itself."""
    public_url: str | None = None
    """The URL browsers use to reach the server, when it differs from http://HOST:PORT
    (behind a proxy)."""

    def is_loopback(self) -> bool:
        """True for 127.0.0.0/8, ::1 and localhost."""
        import ipaddress

        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    def _after(self) -> None:
        if not self.is_loopback() and not self.allow_remote:
            raise ValueError(f"host {self.host!r} is not a loopback address: set web.allow_remote: true "
                             "to serve the console beyond this machine (a token is then required)")


class Config(_Model):
    """The whole configuration file."""

    refresh_interval: float = Field(5.0, ge=0.2)
    """Seconds between refresh cycles (a cycle never overlaps the previous one)."""
    stale_after_intervals: float = Field(3.0, gt=0)
    """Values older than this many refresh intervals (or sample intervals, `prometheus.sample_interval`,
    when those are longer) are shown stale and never drive ROLLBACK NOW alone."""
    prometheus: PrometheusConfig | None = None
    """Where metrics come from; without it the console shows health and history only."""
    queries: Queries = Queries()
    """Default PromQL for every service."""
    thresholds: ThresholdsConfig = ThresholdsConfig()
    """Overrides of the runbook's decision thresholds."""
    health: HealthConfig = HealthConfig()
    """Health-check settings."""
    signals: SignalsConfig = SignalsConfig()
    """Windows and counts for the derived signals (intermittent errors, latency before the deploy)."""
    clusters: dict[str, ClusterConfig] = {}
    """Named Kubernetes connections that services refer to by `cluster:`."""
    services: list[ServiceConfig] = Field(min_length=1)
    """The services this console watches and can roll back."""
    ui: UiConfig = UiConfig()
    """Look and feel."""
    web: WebConfig = WebConfig()
    """The web view (`rollback-console web`): address, remote access and its token."""
    slack: SlackConfig = SlackConfig()
    """Where the runbook's messages are posted."""
    escalation: EscalationConfig = EscalationConfig()
    """Who to contact at each escalation level."""
    gate: GateConfig = GateConfig()
    """The rollback gate: how long a version rolled back from stays off limits, who approves overrides."""
    gitops: GitOpsConfig = GitOpsConfig()
    """Argo CD and Flux owners: how long a rollback is watched, how long an owner may stay paused."""
    incident: IncidentConfig = IncidentConfig()
    """Incident ticket, message defaults and the post-rollback checklist."""
    autopilot: AutopilotConfig | None = None
    """The automated rollback trigger (Alertmanager webhooks); omit to run without it."""
    operator: str | None = None
    """Who is at the keyboard (shown in the timeline); default: $USER@host."""
    rollout_timeout: float = Field(ROLLOUT_TIMEOUT, gt=0)
    """Seconds a rollback may take to become healthy before it is reported failed
    (the console's and `rollback`'s default; `rollback --timeout` overrides it)."""
    drill: str | None = None
    """Set by `rollback-console drill` in the configs it writes: the drill scenario's name. A
    console on such a config is a drill: DRILL in its header, on every message it posts and in
    its exports. Leave it out for real systems."""

    def _after(self) -> None:
        names = [s.name for s in self.services]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"service names must be unique; repeated: {', '.join(dupes)}")
        for index, service in enumerate(self.services):
            # Kubernetes-based services name a `clusters:` entry; an ECS cluster is AWS's own name.
            cluster = service.cluster if isinstance(service, _OnKubernetes) else None
            if cluster is not None and cluster not in self.clusters:
                known = ", ".join(sorted(self.clusters)) or "none defined"
                raise ValueError(
                    f"services[{index}].cluster: {cluster!r} is not under clusters: ({known})"
                )
        election = self.autopilot.leader_election if self.autopilot else None
        if election is not None and election.cluster not in self.clusters:
            known = ", ".join(sorted(self.clusters)) or "none defined"
            raise ValueError(f"autopilot.leader_election.cluster: {election.cluster!r} is not under clusters: ({known})")

    @property
    def decision_thresholds(self) -> Thresholds:
        thresholds = self.thresholds.resolve()
        if self.escalation.customer_impact_minutes is not None:
            thresholds = dataclasses.replace(
                thresholds, customer_impact_escalation=timedelta(minutes=self.escalation.customer_impact_minutes)
            )
        return thresholds

    def service(self, name: str) -> ServiceConfig:
        for service in self.services:
            if service.name == name:
                return service
        known = ", ".join(s.name for s in self.services)
        raise ConfigError(f"no service named {name!r} in the config; known services: {known}")

    def queries_for(self, service: ServiceConfig) -> Queries:
        return service.queries or self.queries


def parse(data: object, source: str = "<config>", base_dir: Path | None = None) -> Config:
    """Validate already-parsed YAML data; relative kubeconfig paths resolve against base_dir."""
    if not isinstance(data, dict):
        found = "an empty file" if data is None else f"a {type(data).__name__}"
        raise ConfigError(f"{source}: expected a mapping of settings at the top level, found {found}; "
                          "start from config.example.yaml")
    try:
        config = Config.validate(data)
    except Invalid as err:
        problems = err.problems
        lines = [f"{source}: {location(where)}: {what}" for where, what in problems[:MAX_PROBLEMS_SHOWN]]
        if err.more:
            lines.append(f"{source}: and more problems like these (checking stopped after {len(problems)})")
        elif len(problems) > MAX_PROBLEMS_SHOWN:
            lines.append(f"{source}: and {len(problems) - MAX_PROBLEMS_SHOWN} more problems like these")
        raise ConfigError("\n".join(lines)) from None
    if base_dir is not None:
        clusters = {
            name: cluster.model_copy(update={"kubeconfig": _resolve(cluster.kubeconfig, base_dir)})
            for name, cluster in config.clusters.items()
        }
        config = config.model_copy(update={"clusters": clusters})
        config = config.model_copy(update={"services": [_resolve_database(s, base_dir) for s in config.services]})
        config = config.model_copy(update={"services": [_resolve_compose_file(s, base_dir) for s in config.services]})
        if config.incident.store:
            incident = config.incident.model_copy(update={"store": _resolve(config.incident.store, base_dir)})
            config = config.model_copy(update={"incident": incident})
    return config


def _resolve_compose_file(service: ServiceConfig, base_dir: Path) -> ServiceConfig:
    """A Compose service whose compose file is relative to the config file's folder."""
    if not isinstance(service, ComposeService):
        return service
    return service.model_copy(update={"compose_file": _resolve(service.compose_file, base_dir)})


def _resolve_database(service: ServiceConfig, base_dir: Path) -> ServiceConfig:
    """A service whose database fix script and backups folder are relative to the config file's folder."""
    db = service.database
    if db is None:
        return service
    update: dict[str, object] = {"fix_script": _resolve(db.fix_script, base_dir)}
    if db.backups is not None:
        update["backups"] = db.backups.model_copy(update={"dir": _resolve(db.backups.dir, base_dir)})
    return service.model_copy(update={"database": db.model_copy(update=update)})


def _resolve(path: str | None, base_dir: Path) -> str | None:
    """`~` expanded; relative paths taken relative to the config file's folder."""
    if path is None:
        return None
    expanded = Path(os.path.expanduser(path))
    return str(expanded if expanded.is_absolute() else (base_dir / expanded).resolve())


def read_config_text(file: Path, limit: int = MAX_CONFIG_BYTES, what: str = "config") -> str:
    """The text of a hand-written file, read safely (yamlfile.read_hand_written);
    ConfigError with one sentence otherwise."""
    try:
        return read_hand_written(file, limit, what)
    except FileNotFoundError:
        raise ConfigError(f"{file}: no such file; copy config.example.yaml there and edit it") from None
    except UnreadableFile as err:
        raise ConfigError(f"{file}: {err}") from None


def load(path: str | os.PathLike[str]) -> Config:
    """Read and validate a config file; raises ConfigError naming what is wrong."""
    file = Path(path)
    text = read_config_text(file)
    try:
        data = load_yaml(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err)
        raise ConfigError(f"{file}:{where}: not valid YAML: {problem}") from None
    except RecursionError:
        raise ConfigError(f"{file}: nested too deeply to be a config; check the file") from None
    _refuse_non_finite(data, str(file))
    return parse(data, str(file), file.parent)


def _refuse_non_finite(data: object, source: str, where: str = "", seen: set[int] | None = None) -> None:
    """Infinity or NaN anywhere (`.inf`, `.nan`) is refused, naming the field:
    every number in a config is finite, and an infinite one fails later, mid-rollback.
    A collection shared through YAML aliases is looked at once (a "billion
    laughs" document is a handful of shared lists)."""
    seen = set() if seen is None else seen
    if isinstance(data, float) and not math.isfinite(data):
        raise ConfigError(f"{source}: {where or '(top level)'}: {data} is not a finite number; give a number")
    if isinstance(data, (dict, list)):
        if id(data) in seen:
            return
        seen.add(id(data))
    if isinstance(data, dict):
        for key, value in data.items():
            _refuse_non_finite(value, source, f"{where}.{key}" if where else str(key), seen)
    elif isinstance(data, list):
        for index, value in enumerate(data):
            _refuse_non_finite(value, source, f"{where}[{index}]", seen)


def check_kubeconfigs(config: Config, source: str) -> None:
    """Every kubeconfig the config names exists, and holds the context it names
    (the command line checks this after `load`: a config about a cluster this
    machine cannot reach is a usage error, exit 2, before anything is done)."""
    for name, cluster in config.clusters.items():
        field = f"clusters.{name}"
        if cluster.kubeconfig is None:
            continue
        path = Path(cluster.kubeconfig)
        if not path.is_file():
            raise ConfigError(
                f"{source}: {field}.kubeconfig: {path} does not exist or is not a file; "
                "fix the path (relative paths are relative to the config file)"
            )
        if cluster.context is None:
            continue
        try:
            kube = load_yaml(read_config_text(path, what="kubeconfig"))
        except ConfigError as err:
            raise ConfigError(f"{source}: {field}.kubeconfig: {err}") from None
        except (yaml.YAMLError, RecursionError):
            raise ConfigError(f"{source}: {field}.kubeconfig: {path} is not valid YAML; fix or replace it") from None
        contexts = kube.get("contexts") if isinstance(kube, dict) else None
        names = [c.get("name") for c in contexts if isinstance(c, dict)] if isinstance(contexts, list) else []
        if cluster.context not in names:
            known = ", ".join(str(n) for n in names) or "none"
            raise ConfigError(
                f"{source}: {field}.context: {path} has no context {cluster.context!r} (it has: {known}); "
                "fix the context name"
            )
