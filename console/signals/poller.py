"""One refresh cycle for all services: metrics, health endpoint, pod counts and
rollout history, gathered concurrently under a bound, returned as frozen
Snapshots. A cycle never raises: every failure becomes a sentence in
`Snapshot.errors` (and the values it would have filled stay None).
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import httpx

from console.clock import Clock
from console.model import Health, Metrics, Point, Revision, Signals, Snapshot
from console.platforms.base import Platform, PlatformError
from console.signals import health as health_check
from console.signals.prometheus import PrometheusClient, SignalError

HISTORY_WINDOW = timedelta(minutes=30)
"""How far back the sparklines reach (filled by one range query at start)."""
HISTORY_STEP = timedelta(seconds=30)
"""Resolution of the sparkline history."""
BEFORE_DEPLOY_MARGIN = timedelta(minutes=1)
"""p95 "before the deploy" is read this long before the current revision was created."""


@dataclass
class ServiceSource:
    """What the poller needs to observe one service."""

    name: str
    platform: Platform | None
    error_rate_query: str | None = None
    latency_query: str | None = None
    health_url: str | None = None
    # Mutable per-service memory between cycles (history of points).
    error_history: deque[Point] = field(default_factory=lambda: deque(maxlen=240))
    latency_history: deque[Point] = field(default_factory=lambda: deque(maxlen=240))
    history_loaded: bool = False


@dataclass(frozen=True)
class PollSettings:
    refresh_interval: float = 5.0
    stale_after_intervals: float = 3.0
    health_timeout: float = 2.0
    health_json_path: str = "status"
    health_healthy_value: str = "healthy"
    latency_spike_factor: float = 2.0
    max_concurrency: int = 32


class Poller:
    """Runs refresh cycles; `cycle()` is guarded so two never overlap."""

    def __init__(
        self,
        sources: list[ServiceSource],
        clock: Clock,
        settings: PollSettings,
        prometheus: PrometheusClient | None,
    ) -> None:
        self.sources = sources
        self.clock = clock
        self.settings = settings
        self.prometheus = prometheus
        self._http: httpx.AsyncClient | None = None
        self._cycle_lock = asyncio.Lock()

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            limits = httpx.Limits(max_connections=self.settings.max_concurrency, max_keepalive_connections=self.settings.max_concurrency)
            self._http = httpx.AsyncClient(limits=limits, follow_redirects=False)
        return self._http

    async def cycle(self, only: str | None = None) -> list[Snapshot]:
        """One refresh of every service (or just `only`), concurrently, bounded."""
        async with self._cycle_lock:
            bound = asyncio.Semaphore(self.settings.max_concurrency)

            async def one(source: ServiceSource) -> Snapshot:
                async with bound:
                    return await self._snapshot(source)

            chosen = [s for s in self.sources if only is None or s.name == only]
            return list(await asyncio.gather(*(one(s) for s in chosen)))

    async def _snapshot(self, source: ServiceSource) -> Snapshot:
        errors: list[str] = []
        platform_part = asyncio.to_thread(self._platform_state, source)
        health_part = self._endpoint(source)
        (pods, history, platform_errors), endpoint = await asyncio.gather(platform_part, health_part)
        errors.extend(platform_errors)
        metrics = await self._metrics(source, history)
        if metrics.error:
            errors.append(metrics.error)
        now = self.clock.now()
        health = replace(pods, **endpoint, checked_at=now)
        stale = self._is_stale(metrics, now)
        return Snapshot(
            service=source.name,
            taken_at=now,
            metrics=metrics,
            health=health,
            history=tuple(history),
            signals=self._signals(metrics),
            stale=stale,
            errors=tuple(errors),
        )

    def _is_stale(self, metrics: Metrics, now: datetime) -> bool:
        if metrics.sampled_at is None:
            return metrics.error is not None
        limit = timedelta(seconds=self.settings.refresh_interval * self.settings.stale_after_intervals)
        return now - metrics.sampled_at > limit

    def _signals(self, metrics: Metrics) -> Signals:
        now_ms, before_ms = metrics.latency_p95_ms, metrics.latency_p95_before_ms
        if now_ms is None or not before_ms:
            return Signals()
        factor = now_ms / before_ms
        return Signals(latency_spike=factor >= self.settings.latency_spike_factor, latency_factor=factor)

    @staticmethod
    def _platform_state(source: ServiceSource) -> tuple[Health, list[Revision], list[str]]:
        if source.platform is None:
            return Health(), [], []
        errors: list[str] = []
        try:
            pods = source.platform.health()
        except PlatformError as err:
            pods, errors = Health(error=str(err)), [str(err)]
        try:
            history = source.platform.history()
        except PlatformError as err:
            history = []
            if str(err) not in errors:
                errors.append(str(err))
        return pods, history, errors

    async def _endpoint(self, source: ServiceSource) -> dict:
        if not source.health_url:
            return {}
        ok, status, latency = await health_check.check(
            self._client(),
            source.health_url,
            timeout=self.settings.health_timeout,
            json_path=self.settings.health_json_path,
            healthy_value=self.settings.health_healthy_value,
        )
        return {"endpoint_ok": ok, "endpoint_status": status, "endpoint_latency_ms": latency}

    async def _metrics(self, source: ServiceSource, history: list[Revision]) -> Metrics:
        prom = self.prometheus
        if prom is None or not (source.error_rate_query or source.latency_query):
            return Metrics()
        if not source.history_loaded:
            await self._load_history(source)
        current = next((r for r in history if r.current), None)
        before_at = current.created - BEFORE_DEPLOY_MARGIN if current and current.created else None
        try:
            error, latency, latency_before = await asyncio.gather(
                self._instant(source.error_rate_query),
                self._instant(source.latency_query),
                self._instant(source.latency_query, before_at) if before_at else _none(),
            )
        except SignalError as err:
            return Metrics(
                error_rate_history=tuple(source.error_history),
                latency_history=tuple(source.latency_history),
                error=str(err),
            )
        sampled = [p.at for p in (error, latency) if p is not None]
        if error is not None:
            _append(source.error_history, error)
        if latency is not None:
            _append(source.latency_history, Point(latency.at, latency.value * 1000))
        return Metrics(
            error_rate=error.value if error else None,
            latency_p95_ms=latency.value * 1000 if latency else None,
            latency_p95_before_ms=latency_before.value * 1000 if latency_before else None,
            error_rate_history=tuple(source.error_history),
            latency_history=tuple(source.latency_history),
            sampled_at=min(sampled) if sampled else None,
        )

    async def _instant(self, query: str | None, at: datetime | None = None) -> Point | None:
        if not query or self.prometheus is None:
            return None
        samples = await self.prometheus.query(query, at=at)
        values = [(value, when) for _labels, value, when in samples if value is not None and math.isfinite(value)]
        if not values:
            return None
        # A query should name one series; if it yields several, the worst one counts.
        value, when = max(values, key=lambda item: item[0])
        return Point(when, value)

    async def _load_history(self, source: ServiceSource) -> None:
        """Fill the sparklines with the last 30 minutes, once."""
        assert self.prometheus is not None
        end = self.clock.now()
        start = end - HISTORY_WINDOW
        step = HISTORY_STEP.total_seconds()
        for query, target, scale in (
            (source.error_rate_query, source.error_history, 1.0),
            (source.latency_query, source.latency_history, 1000.0),
        ):
            if not query:
                continue
            try:
                series = await self.prometheus.query_range(query, start, end, step)
            except SignalError:
                return  # the instant query reports the failure this cycle
            if series:
                _labels, points = max(series, key=lambda s: max((p.value for p in s[1]), default=0.0))
                target.extend(Point(p.at, p.value * scale) for p in points if math.isfinite(p.value))
        source.history_loaded = True

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        if self.prometheus is not None:
            await self.prometheus.aclose()


def _append(history: deque[Point], point: Point) -> None:
    if not history or point.at > history[-1].at:
        history.append(point)


async def _none() -> None:
    return None
