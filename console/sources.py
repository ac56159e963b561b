"""The sources a config names, built: each service's platform adapter, the
Prometheus client and the signal poller over them. The session builds them
in its process; the refresh process (console.refresher) builds the poller's
own copies in the child, from the same config, with the same code.

Builders import their client libraries lazily so start-up stays fast."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from console.clock import Clock
from console.config import ClusterConfig, Config, ServiceConfig
from console.platforms.base import Platform

if TYPE_CHECKING:
    from console.signals.poller import Poller


def _connection(config: Config, service: ServiceConfig, connections: dict):
    """The service's cluster connection, one per cluster shared by all its
    services: the kubeconfig is loaded and the API client built once."""
    from console.platforms.kubernetes import KubeConnection

    args = _cluster_args(config, service)
    key = (args["kubeconfig"], args["context"], args["timeout"])
    if key not in connections:
        connections[key] = KubeConnection(**args)
    return connections[key]


def _cluster_args(config: Config, service: ServiceConfig) -> dict:
    """kubeconfig, context and timeout of the service's `cluster:` entry."""
    cluster = config.clusters.get(service.cluster) if service.cluster else None
    return {
        "kubeconfig": cluster.kubeconfig if cluster else None,
        "context": cluster.context if cluster else None,
        "timeout": cluster.timeout if cluster else ClusterConfig().timeout,
    }


def _kubernetes(config: Config, service: ServiceConfig, clock: Clock, connections: dict) -> Platform:
    from console.platforms.kubernetes import KubernetesPlatform

    return KubernetesPlatform(
        service=service.name,
        namespace=service.namespace,
        deployment=service.deployment_name,
        clock=clock,
        connection=_connection(config, service, connections),
        gitops_hold=config.gitops.hold_seconds,
        argocd_namespace=config.gitops.argocd_namespace,
        gitops_method=config.gitops.method,
    )


def _blue_green(config: Config, service: ServiceConfig, clock: Clock, connections: dict) -> Platform:
    from console.platforms.bluegreen import BlueGreenPlatform

    return BlueGreenPlatform(
        service=service.name,
        namespace=service.namespace,
        service_object=service.service_name,
        colours=service.colour_deployments,
        selector_key=service.selector_key,
        verify_seconds=service.verify_seconds,
        clock=clock,
        connection=_connection(config, service, connections),
    )


def _canary(config: Config, service: ServiceConfig, clock: Clock, connections: dict) -> Platform:
    from console.platforms.canary import CanaryPlatform

    return CanaryPlatform(
        service=service.name,
        namespace=service.namespace,
        virtualservice=service.virtualservice,
        deployment=service.deployment_name,
        canary_deployment=service.canary_deployment_name,
        stable_subset=service.stable_subset,
        canary_subset=service.canary_subset,
        host=service.host,
        clock=clock,
        connection=_connection(config, service, connections),
    )


def _compose(config: Config, service: ServiceConfig, clock: Clock, connections: dict) -> Platform:
    from console.platforms.compose import ComposePlatform

    return ComposePlatform.from_config(service, clock=clock)


def _ecs(config: Config, service: ServiceConfig, clock: Clock, connections: dict) -> Platform:
    from console.platforms.ecs import EcsPlatform

    return EcsPlatform.from_config(service, clock=clock)


PLATFORM_BUILDERS: dict[str, Callable[[Config, ServiceConfig, Clock, dict], Platform]] = {
    "kubernetes": _kubernetes,
    "compose": _compose,
    "blue-green": _blue_green,
    "canary": _canary,
    "ecs": _ecs,
}
"""Platform name (a service's `platform:` in the config) -> builder. A new
platform adds its config model to config.py and one entry here; builders
import their client libraries lazily so start-up stays fast. The last
argument is the session's cluster connections, shared by the services of a
cluster (platforms without one ignore it)."""


def build_platform(config: Config, service: ServiceConfig, clock: Clock, connections: dict | None = None) -> Platform:
    """The platform adapter for one configured service. Services built with
    the same `connections` dict share one connection per cluster."""
    return PLATFORM_BUILDERS[service.platform](config, service, clock, {} if connections is None else connections)


def _prometheus(config: Config):
    if config.prometheus is None:
        return None
    from console.signals.prometheus import PrometheusClient

    prom = config.prometheus
    # Only https needs a TLS context (building one loads the CA bundle).
    https = prom.url.startswith("https://")
    return PrometheusClient(
        prom.url,
        timeout=prom.timeout,
        bearer_token=prom.bearer_token(),
        basic_auth=prom.basic_auth(),
        verify=(prom.ca_file or prom.tls_verify) if https else False,
    )


def build_poller(config: Config, platforms: dict[str, Platform], clock: Clock) -> Poller:
    """The signal poller over `platforms` (service name -> adapter) for the config's services."""
    from console.signals.poller import SIGNALS, PollSettings, Poller, ServiceSource

    sources = []
    for s in config.services:
        queries = config.queries_for(s)
        sources.append(
            ServiceSource(
                name=s.name,
                platform=platforms[s.name],
                queries={signal: getattr(queries, signal) for signal in SIGNALS} if config.prometheus else {},
                health_url=s.health_url,
            )
        )
    return Poller(sources, clock, PollSettings.from_config(config), _prometheus(config))
