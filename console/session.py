"""A console session: the config turned into sources and platforms, refresh
cycles turned into decisions, and every step recorded in the incident store
before anyone sees it. The TUI and the headless commands both drive one.
"""

from __future__ import annotations

import getpass
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace

from console import incident as incidents
from console.clock import Clock, SystemClock
from console.config import Config, ServiceConfig
from console.decision import evaluate
from console.incident import NewEvent
from console.model import Action, Decision, Event, Facts, Progress, RollbackPlan, ServiceView, Snapshot
from console.platforms.base import Platform, PlatformError
from console.signals.poller import PollSettings, Poller, ServiceSource
from console.store import Store


def default_operator() -> str:
    """`user@host`, the name that goes in the timeline and on leases."""
    try:
        user = getpass.getuser()
    except Exception:  # no passwd entry in some containers
        user = "operator"
    return f"{user}@{socket.gethostname()}"


def _kubernetes(config: Config, service: ServiceConfig, clock: Clock) -> Platform:
    from console.platforms.kubernetes import KubernetesPlatform

    cluster = config.clusters.get(service.cluster) if service.cluster else None
    return KubernetesPlatform(
        service=service.name,
        namespace=service.namespace,
        deployment=service.deployment_name,
        kubeconfig=cluster.kubeconfig if cluster else None,
        context=cluster.context if cluster else None,
        timeout=cluster.timeout if cluster else 10.0,
        clock=clock,
    )


PLATFORM_BUILDERS: dict[str, Callable[[Config, ServiceConfig, Clock], Platform]] = {
    "kubernetes": _kubernetes,
}
"""Platform name (a service's `platform:` in the config) -> builder. A new
platform adds its config model to config.py and one entry here; builders
import their client libraries lazily so start-up stays fast."""


def build_platform(config: Config, service: ServiceConfig, clock: Clock) -> Platform:
    """The platform adapter for one configured service."""
    return PLATFORM_BUILDERS[service.platform](config, service, clock)


def _prometheus(config: Config):
    if config.prometheus is None:
        return None
    from console.signals.prometheus import PrometheusClient

    prom = config.prometheus
    return PrometheusClient(
        prom.url,
        timeout=prom.timeout,
        bearer_token=prom.bearer_token(),
        basic_auth=prom.basic_auth(),
        verify=prom.ca_file or prom.tls_verify,
    )


class Session:
    """Everything one console (TUI or headless) knows and does."""

    def __init__(self, config: Config, store: Store, clock: Clock | None = None, operator: str | None = None) -> None:
        self.config = config
        self.store = store
        self.clock = clock or SystemClock()
        self.operator = operator or config.operator or default_operator()
        self.thresholds = config.decision_thresholds
        self.services: tuple[str, ...] = tuple(s.name for s in config.services)
        self.refresh_interval = config.refresh_interval
        self._platforms: dict[str, Platform] = {
            s.name: build_platform(config, s, self.clock) for s in config.services
        }
        self._facts: dict[str, Facts] = {name: Facts() for name in self.services}
        self._views: dict[str, ServiceView] = {}
        self._lock = threading.Lock()
        sources = []
        for s in config.services:
            queries = config.queries_for(s)
            sources.append(
                ServiceSource(
                    name=s.name,
                    platform=self._platforms[s.name],
                    error_rate_query=queries.render("error_rate", s.name) if config.prometheus else None,
                    latency_query=queries.render("latency_p95", s.name) if config.prometheus else None,
                    health_url=s.health_url,
                )
            )
        self.poller = Poller(
            sources,
            self.clock,
            PollSettings(
                refresh_interval=config.refresh_interval,
                stale_after_intervals=config.stale_after_intervals,
                health_timeout=config.health.timeout,
                health_json_path=config.health.json_path,
                health_healthy_value=config.health.healthy_value,
                latency_spike_factor=self.thresholds.latency_spike_factor,
                max_concurrency=config.prometheus.max_concurrency if config.prometheus else 32,
            ),
            _prometheus(config),
        )

    # -- observing -------------------------------------------------------

    def platform(self, service: str) -> Platform:
        try:
            return self._platforms[service]
        except KeyError:
            raise PlatformError(f"no service named {service!r} in the config") from None

    def facts(self, service: str) -> Facts:
        return self._facts[service]

    def decide(self, snapshot: Snapshot) -> Decision:
        return evaluate(snapshot, self._facts[snapshot.service], snapshot.taken_at, self.thresholds)

    async def refresh(self, only: str | None = None) -> list[ServiceView]:
        """One refresh cycle; decision changes are recorded before they are returned."""
        snapshots = await self.poller.cycle(only)
        views = []
        for snapshot in snapshots:
            view = ServiceView(snapshot, self.decide(snapshot))
            self._note_change(self._views.get(snapshot.service), view)
            self._views[snapshot.service] = view
            views.append(view)
        return views

    def view(self, service: str) -> ServiceView | None:
        return self._views.get(service)

    def _note_change(self, before: ServiceView | None, after: ServiceView) -> None:
        """Record a decision when its action changes (not the quiet healthy start)."""
        old = before.decision if before else None
        new = after.decision
        if old is not None and old.action == new.action:
            return
        if old is None and new.action == Action.HEALTHY:
            return
        self.record(incidents.decided(new), service=after.snapshot.service, actor="console")

    # -- the timeline ----------------------------------------------------

    def incident_id(self, service: str) -> str:
        """The open incident for `service`, opened now if there is none."""
        with self._lock:
            found = self.store.open_incident_for(service)
            if found:
                return found
            return self.store.open_incident(service, self.clock.now())

    def record(self, event: NewEvent, service: str | None = None, actor: str | None = None) -> Event:
        """Store one timeline event in `service`'s incident (the first service's by
        default) and return it as stored: nothing is shown before it is stored."""
        incident_id = self.incident_id(service or self.services[0])
        return self.store.append(
            incident_id, event.kind, event.text, at=self.clock.now(), actor=actor or self.operator, data=event.data
        )

    def note(self, text: str, service: str | None = None, actor: str | None = None) -> Event:
        """A free-text timeline entry."""
        return self.record(incidents.note(text), service=service, actor=actor)

    def timeline(self, limit: int = 200) -> list[Event]:
        """Events of every open incident of this config's services, newest first."""
        events: list[Event] = []
        for service in self.services:
            incident_id = self.store.open_incident_for(service)
            if incident_id:
                events.extend(self.store.events(incident_id, newest_first=True, limit=limit))
        events.sort(key=lambda e: e.at, reverse=True)
        return events[:limit]

    # -- acting ----------------------------------------------------------

    def plan_rollback(self, service: str, to_revision: int | None = None) -> RollbackPlan:
        """Ask the platform what a rollback would change (no change is made)."""
        return self.platform(service).plan_rollback(to_revision)

    def execute(self, plan: RollbackPlan, reason: str = "", timeout: float = 300.0) -> Iterator[Progress]:
        """Run a plan, recording its start, every new progress line and its end."""
        service = plan.service
        if plan.skip_reason:
            self.note(f"{service}: {plan.skip_reason}", service=service)
            yield Progress(message=plan.skip_reason, at=self.clock.now(), done=True)
            return
        started = incidents.rollback_started(plan)
        if reason:
            started = replace(started, text=f"{started.text} (reason: {reason})", data={**started.data, "reason": reason})
        self.record(started, service=service)
        last = None
        try:
            for progress in self.platform(service).execute(plan, timeout=timeout):
                if progress.message != last:
                    self.record(incidents.rollback_progress(progress), service=service, actor="console")
                    last = progress.message
                if progress.failed:
                    self.record(incidents.rollback_failed(progress.message), service=service, actor="console")
                elif progress.done:
                    to = ", ".join(plan.to_versions) or f"revision {plan.to_revision}"
                    self.record(incidents.rollback_completed(f"Rollback complete: {service} on {to}"), service=service, actor="console")
                yield progress
        except PlatformError as err:
            self.record(incidents.rollback_failed(str(err)), service=service, actor="console")
            raise

    async def aclose(self) -> None:
        await self.poller.aclose()

    def declare(self, service: str, name: str, value: object) -> Facts:
        """Declare one fact (a `Facts` field) for a service; recorded in the timeline."""
        event = incidents.fact_set(name, value)
        facts = replace(self._facts[service], **{name: value})
        self.record(event, service=service)
        self._facts[service] = facts
        return facts
