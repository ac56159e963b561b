"""The console's configuration: pydantic models (each field's docstring is the
config reference), `load(path) -> Config`, and `ConfigError`, whose message
names the file, the field path and what was expected.

Secrets never live in the file: tokens and webhook URLs are read from
environment variables whose *names* the file gives.
"""

from __future__ import annotations

import os
import string
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from console.decision import Thresholds


class ConfigError(Exception):
    """A configuration that cannot be used, with a sentence saying where and why."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class PrometheusConfig(_Model):
    """Where the console reads metrics."""

    url: str
    """Base URL of the Prometheus HTTP API, e.g. `http://prometheus:9090` (the console appends `/api/v1/query`)."""
    timeout: float = Field(2.0, gt=0)
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

    @field_validator("url")
    @classmethod
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

    @model_validator(mode="after")
    def _ordered(self) -> ThresholdsConfig:
        low, high = self.investigate_error_rate, self.rollback_error_rate
        if low is not None and high is not None and low >= high:
            raise ValueError("investigate_error_rate must be below rollback_error_rate")
        self.resolve()  # an override may clash with a runbook default; Thresholds says how
        return self

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
        return Thresholds(**overrides)


class HealthConfig(_Model):
    """How the runbook's `curl -s .../health | jq -r .status` check is done."""

    timeout: float = Field(2.0, gt=0)
    """Seconds before an unanswered health check counts as down."""
    json_path: str = "status"
    """Dotted path of the status field in the JSON answer."""
    healthy_value: str = "healthy"
    """The value of that field that means healthy."""


class ClusterConfig(_Model):
    """One Kubernetes API to talk to."""

    kubeconfig: str | None = None
    """Path to a kubeconfig file (relative paths are relative to this config file); default: $KUBECONFIG or ~/.kube/config."""
    context: str | None = None
    """The kubeconfig context to use; default: its current-context."""
    timeout: float = Field(10.0, gt=0)
    """Seconds to wait for one API request."""


class KubernetesService(_Model):
    """A service deployed as a Kubernetes Deployment."""

    platform: Literal["kubernetes"] = "kubernetes"
    name: str = Field(min_length=1)
    """The service's name, as people and Prometheus labels call it."""
    cluster: str | None = None
    """Name of an entry under `clusters:`; omit to use the default kubeconfig."""
    namespace: str = "default"
    """The namespace of the Deployment."""
    deployment: str | None = None
    """The Deployment's name; default: the service name."""
    health_url: str | None = None
    """URL of the service's health endpoint (the runbook's step 5)."""
    queries: Queries | None = None
    """Per-service PromQL overriding the top-level `queries`."""

    @property
    def deployment_name(self) -> str:
        return self.deployment or self.name


ServiceConfig = Annotated[KubernetesService, Field(discriminator="platform")]


class UiConfig(_Model):
    theme: str = "default"
    """Theme name: one shipped in themes/ (default, high-contrast, light) or a file in the user themes dir."""


class Config(_Model):
    """The whole configuration file."""

    refresh_interval: float = Field(5.0, ge=0.2)
    """Seconds between refresh cycles (a cycle never overlaps the previous one)."""
    stale_after_intervals: float = Field(3.0, gt=0)
    """Values older than this many refresh intervals are shown stale and never drive ROLLBACK NOW alone."""
    prometheus: PrometheusConfig | None = None
    """Where metrics come from; without it the console shows health and history only."""
    queries: Queries = Queries()
    """Default PromQL for every service."""
    thresholds: ThresholdsConfig = ThresholdsConfig()
    """Overrides of the runbook's decision thresholds."""
    health: HealthConfig = HealthConfig()
    """Health-check settings."""
    clusters: dict[str, ClusterConfig] = {}
    """Named Kubernetes connections that services refer to by `cluster:`."""
    services: list[ServiceConfig] = Field(min_length=1)
    """The services this console watches and can roll back."""
    ui: UiConfig = UiConfig()
    """Look and feel."""
    operator: str | None = None
    """Who is at the keyboard (shown in the timeline); default: $USER@host."""

    @model_validator(mode="before")
    @classmethod
    def _default_platform(cls, data: object) -> object:
        """`platform:` may be left out; it then means kubernetes."""
        if isinstance(data, dict) and isinstance(data.get("services"), list):
            data = dict(data)
            data["services"] = [
                {"platform": "kubernetes", **s} if isinstance(s, dict) and "platform" not in s else s
                for s in data["services"]
            ]
        return data

    @model_validator(mode="after")
    def _references(self) -> Config:
        names = [s.name for s in self.services]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"service names must be unique; repeated: {', '.join(dupes)}")
        for index, service in enumerate(self.services):
            if service.cluster is not None and service.cluster not in self.clusters:
                known = ", ".join(sorted(self.clusters)) or "none defined"
                raise ValueError(
                    f"services[{index}].cluster: {service.cluster!r} is not under clusters: ({known})"
                )
        return self

    @property
    def decision_thresholds(self) -> Thresholds:
        return self.thresholds.resolve()

    def service(self, name: str) -> ServiceConfig:
        for service in self.services:
            if service.name == name:
                return service
        known = ", ".join(s.name for s in self.services)
        raise ConfigError(f"no service named {name!r} in the config; known services: {known}")

    def queries_for(self, service: ServiceConfig) -> Queries:
        return service.queries or self.queries


def _location(loc: tuple[object, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif item in ("kubernetes",) and parts:  # discriminator tag, not a field
            continue
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts) or "(top level)"


def _explain(error: dict) -> str:
    kind = error.get("type", "")
    if kind == "missing":
        return "this field is required"
    if kind == "extra_forbidden":
        return "unknown field (check the spelling against config.example.yaml)"
    message = str(error.get("msg", "invalid value"))
    return message.removeprefix("Value error, ")


def parse(data: object, source: str = "<config>", base_dir: Path | None = None) -> Config:
    """Validate already-parsed YAML data; relative kubeconfig paths resolve against base_dir."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of settings at the top level, found {type(data).__name__}")
    try:
        config = Config.model_validate(data)
    except ValidationError as err:
        lines = [f"{source}: {_location(e['loc'])}: {_explain(e)}" for e in err.errors()]
        raise ConfigError("\n".join(lines)) from None
    if base_dir is not None:
        clusters = {
            name: cluster.model_copy(update={"kubeconfig": _resolve(cluster.kubeconfig, base_dir)})
            for name, cluster in config.clusters.items()
        }
        config = config.model_copy(update={"clusters": clusters})
    return config


def _resolve(path: str | None, base_dir: Path) -> str | None:
    """`~` expanded; relative paths taken relative to the config file's folder."""
    if path is None:
        return None
    expanded = Path(os.path.expanduser(path))
    return str(expanded if expanded.is_absolute() else (base_dir / expanded).resolve())


def load(path: str | os.PathLike[str]) -> Config:
    """Read and validate a config file; raises ConfigError naming what is wrong."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{file}: no such file; copy config.example.yaml there and edit it") from None
    except OSError as err:
        raise ConfigError(f"{file}: cannot read it: {err.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err)
        raise ConfigError(f"{file}:{where}: not valid YAML: {problem}") from None
    return parse(data, str(file), file.parent)
