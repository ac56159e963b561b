"""One refresh cycle for all services: metrics, health endpoint, pod counts and
rollout history, gathered concurrently under a bound, returned as frozen
Snapshots. A cycle never raises: every failure becomes a sentence in
`Snapshot.errors`, and the values it would have refreshed keep their last
known value with its old sample time (so they turn stale, visibly).

Cost per cycle, for N services:

- Metrics are batched: services sharing a query template whose only use of
  `$service` is a label matcher (`service="$service"`) are read with ONE query
  (`service=~"a|b|..."`) split by that label, plus one `timestamp()` query for
  the sample times. A template that aggregates the label away falls back to
  one query per service (bounded by `max_concurrency`).
- The p95 "before the deploy" is read once per deploy (it cannot change).
- The health endpoint and the pod counts are read every cycle (the health
  check over pooled keep-alive aiohttp connections: about 0.1 ms of CPU per
  check, so 500 endpoints cost ~0.1 s; see signals/health.py). A platform
  that can read its pod counts on this loop (ObservableAsync: Kubernetes, one
  GET through aiohttp) does; the others read in the platform threads. The
  rollout history is read every `rollout_history_every` cycles, and at once
  when the pod counts change (a rollout or a rollback is under way), in a
  platform thread.
- The sparkline history is loaded once with one range query per signal.
"""

from __future__ import annotations

import asyncio
import math
import re
import string
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from console.clock import Clock
from console.config import Config, HealthConfig, SignalsConfig
from console.decision import Thresholds
from console.model import Health, Metrics, Missing, Revision, Samples, Signals, Snapshot, Trail, epoch
from console.platforms.base import Observable, ObservableAsync, Observed, Platform, PlatformError, offers
from console.signals import health as health_check
from console.signals.prometheus import PrometheusClient, QueryRejected, Sample, SignalError

if TYPE_CHECKING:
    import aiohttp

ERROR_RATE, LATENCY, REQUEST_RATE, ROUTE_ERROR_RATE = "error_rate", "latency_p95", "request_rate", "route_error_rate"
SIGNALS = (ERROR_RATE, LATENCY, REQUEST_RATE, ROUTE_ERROR_RATE)
"""The per-service queries (names of `config.Queries` fields)."""
HISTORY_POINTS = 240
"""At most this many points per sparkline from the start-up range query."""

HISTORY_BATCH = 50
"""Services per start-up range query, one query after the other per signal.
One query for 500 services took the drill's query API past the 2 s timeout
on every cycle, so no sparkline got its history; and a range query's answer
is JSON, a list and two objects per point, all held at once until they
become arrays."""

_HEALTH_CLIENT, _PLATFORM_CLIENT = "health", "platform"
"""The poller's two pooled HTTP sessions: health checks, platform reads (ObservableAsync)."""

_DEFAULTS = SignalsConfig()
_HEALTH = HealthConfig()
# `label="$service"` (or ${service}): the one shape of template that batches.
_SERVICE_MATCHER = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)\s*=\s*"\$(?:service|\{service\})"')
_REGEX_SPECIAL = re.compile(r"([.^$*+?()\[\]{}|\\])")


@dataclass
class ServiceSource:
    """What the poller needs to observe one service, and its memory between cycles."""

    name: str
    platform: Platform | None
    queries: Mapping[str, str] = field(default_factory=dict)
    """Signal name (SIGNALS) -> PromQL template with `$service`; missing or empty: not read."""
    health_url: str | None = None
    error_history: Trail = field(default_factory=Trail)
    latency_history: Trail = field(default_factory=Trail)
    history_loaded: bool = False
    # Last good value and sample time per signal, carried forward when a query fails.
    last: dict[str, tuple[object, datetime | None]] = field(default_factory=dict)
    revisions: list[Revision] = field(default_factory=list)
    revisions_cycle: int | None = None
    pods_seen: tuple | None = None
    # (revision number, deployed at) -> p95 seconds before that deploy (None: no data).
    before_deploy: dict[tuple[tuple[str | None, int], datetime], float | None] = field(default_factory=dict)
    # Health checks failed in a row (0 after a healthy answer).
    endpoint_failures: int = 0
    # The current revision and when it became current, when this console saw it
    # change (a rollback makes an old ReplicaSet current again: its creation time
    # says nothing about when it went live).
    current_since: tuple[tuple[str | None, int], datetime | None] | None = None
    # When this console last changed the rollout (a rollback it ran), if it did.
    changed_at: datetime | None = None
    # When the platform last answered (pod counts), and when each signal last
    # had a value: the "since when" of a signal that went missing.
    pods_read_at: datetime | None = None
    good_at: dict[str, datetime] = field(default_factory=dict)

    def deployed_at(self, current: Revision, now: datetime) -> datetime | None:
        """When `current` went live: when this console changed the rollout (or
        saw it change), or its creation time if it was current when the console
        started."""
        # A blue-green switch changes the colour, not always the number (each colour numbers its own).
        which = (current.colour, current.number)
        if self.current_since is None:
            self.current_since = (which, current.created)
        elif self.current_since[0] != which:
            self.current_since = (which, self.changed_at or now)
        return self.current_since[1]

    def query(self, signal: str) -> str | None:
        """The rendered query for `signal`, None when not configured."""
        template = self.queries.get(signal)
        if not template:
            return None
        return string.Template(template).safe_substitute(service=self.name)


def _last_good_until(current: Revision, revisions: Iterable[Revision]) -> datetime | None:
    """When a rolled-back-to revision last stopped serving: the creation of the
    first revision made after it. The p95 just before then is the last good
    version's, the baseline to compare with; the p95 just before the rollback
    itself would be the bad version's. None when `current` is the newest."""
    if current.created is None:
        return None
    later = [r.created for r in revisions if not r.current and r.created is not None and r.created > current.created]
    return min(later) if later else None


@dataclass(frozen=True)
class PollSettings:
    """How the poller reads and judges signals (built from the config by `from_config`)."""

    refresh_interval: float = 5.0
    stale_after_intervals: float = 3.0
    # How often the queried series get a new sample (scrape / rule evaluation).
    sample_interval: float = 15.0
    health_timeout: float = _HEALTH.timeout
    health_json_path: str = _HEALTH.json_path
    health_healthy_value: str = _HEALTH.healthy_value
    health_failures_before_down: int = _HEALTH.failures_before_down
    thresholds: Thresholds = Thresholds()
    intermittent_window: timedelta = timedelta(minutes=_DEFAULTS.intermittent_window_minutes)
    intermittent_crossings: int = _DEFAULTS.intermittent_crossings
    before_deploy_margin: timedelta = timedelta(seconds=_DEFAULTS.before_deploy_margin_seconds)
    history_window: timedelta = timedelta(minutes=_DEFAULTS.history_minutes)
    rollout_history_every: int = _DEFAULTS.rollout_history_every
    max_concurrency: int = 32

    @classmethod
    def from_config(cls, config: Config) -> PollSettings:
        """The settings a config file asks for."""
        signals = config.signals
        return cls(
            refresh_interval=config.refresh_interval,
            stale_after_intervals=config.stale_after_intervals,
            sample_interval=config.prometheus.sample_interval if config.prometheus else cls.sample_interval,
            health_timeout=config.health.timeout,
            health_json_path=config.health.json_path,
            health_healthy_value=config.health.healthy_value,
            health_failures_before_down=config.health.failures_before_down,
            thresholds=config.decision_thresholds,
            intermittent_window=timedelta(minutes=signals.intermittent_window_minutes),
            intermittent_crossings=signals.intermittent_crossings,
            before_deploy_margin=timedelta(seconds=signals.before_deploy_margin_seconds),
            history_window=timedelta(minutes=signals.history_minutes),
            rollout_history_every=signals.rollout_history_every,
            max_concurrency=config.prometheus.max_concurrency if config.prometheus else 32,
        )

    @property
    def stale_after(self) -> timedelta:
        """Values older than this are stale: a number of intervals of whichever is
        slower, the console asking or the series getting new samples."""
        return timedelta(seconds=max(self.refresh_interval, self.sample_interval) * self.stale_after_intervals)

    @property
    def history_step(self) -> timedelta:
        """Resolution of the start-up history: the refresh interval, coarser
        when the window would need more than HISTORY_POINTS points."""
        return max(timedelta(seconds=self.refresh_interval), self.history_window / HISTORY_POINTS)


@dataclass
class _Reading:
    """What one signal's query said for one service this cycle."""

    value: object = None  # float, or ((route, rate), ...) for routes
    at: datetime | None = None
    error: str | None = None


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
        self.cycles = 0
        self._http: dict[str, aiohttp.ClientSession] = {}
        self._http_loop: asyncio.AbstractEventLoop | None = None
        self._threads: ThreadPoolExecutor | None = None
        self._cycle_lock = asyncio.Lock()
        self.history_in_background = False
        """True: cycles read instant values only and `load_history` fills the
        sparklines between them (the refresh process: the first values show
        before the 30-minute range queries)."""
        self._unbatchable: set[str] = set()
        # None: not known yet whether the server understands timestamp().
        self._timestamps: bool | None = None

    # -- shared clients ------------------------------------------------------

    def _client(self, kind: str = _HEALTH_CLIENT) -> aiohttp.ClientSession:
        # A pooled session belongs to the loop it was made on: a cycle on another
        # loop (a new worker) gets its own, the old one's connections die with its loop.
        loop = asyncio.get_running_loop()
        if self._http_loop is not loop:
            self._http, self._http_loop = {}, loop
        session = self._http.get(kind)
        if session is None:
            # Health checks honour the environment's proxy settings, as curl does; the
            # Kubernetes API is reached as the kubeconfig says, as its client does.
            session = self._http[kind] = health_check.new_session(
                self.settings.max_concurrency, environment_proxies=kind == _HEALTH_CLIENT
            )
        return session

    def _pool(self) -> ThreadPoolExecutor:
        # Platform clients are synchronous; the default executor has only
        # cpu+4 threads, too few for hundreds of services per cycle.
        if self._threads is None:
            self._threads = ThreadPoolExecutor(self.settings.max_concurrency, thread_name_prefix="platform")
        return self._threads

    # -- the cycle -----------------------------------------------------------

    def invalidate(self, service: str, changed_at: datetime | None = None) -> None:
        """Forget what is cached about `service`'s rollout history (this console
        changed it, starting at `changed_at`), so the next cycle reads it again
        and dates the new current revision from then."""
        for source in self.sources:
            if source.name == service:
                source.revisions_cycle = None
                source.changed_at = changed_at

    async def cycle(self, only: str | None = None) -> list[Snapshot]:
        """One refresh of every service (or just `only`), concurrently, bounded."""
        async with self._cycle_lock:
            chosen = [s for s in self.sources if only is None or s.name == only]
            bound = asyncio.Semaphore(self.settings.max_concurrency)
            loop = asyncio.get_running_loop()
            # Freshness is judged against when the cycle asked, not when its slowest
            # source answered: a slow platform call must not make fresh metrics stale.
            asked_at = self.clock.now()
            cycle = self.cycles
            self.cycles += 1

            reads = asyncio.Semaphore(self.settings.max_concurrency)  # as many as the platform threads

            async def platform(source: ServiceSource):
                if offers(source.platform, ObservableAsync):
                    async with reads:  # a read's deadline starts when it is sent, not while it queues
                        return await self._platform_state_async(source, cycle)
                return await loop.run_in_executor(self._pool(), self._platform_state, source, cycle)

            async def endpoint(source: ServiceSource):
                async with bound:
                    return await self._endpoint(source)

            platforms, endpoints, readings = await asyncio.gather(
                asyncio.gather(*(platform(s) for s in chosen)),
                asyncio.gather(*(endpoint(s) for s in chosen)),
                self._read_metrics(chosen, bound),
            )
            befores = await asyncio.gather(*(self._before_deploy(s, bound) for s in chosen))
            now = self.clock.now()
            return [
                self._snapshot(source, now, asked_at, state, endpoint_fields, readings.get(source.name, {}), before)
                for source, state, endpoint_fields, before in zip(chosen, platforms, endpoints, befores)
            ]

    def _snapshot(
        self,
        source: ServiceSource,
        now: datetime,
        asked_at: datetime,
        state: tuple[Health, list[str]],
        endpoint: dict,
        readings: dict[str, _Reading],
        before: tuple[float | None, str | None],
    ) -> Snapshot:
        pods, errors = state[0], list(state[1])
        metrics = self._metrics(source, readings, before)
        for problem in [r.error for r in readings.values()] + [before[1]]:
            if problem and problem not in errors:
                errors.append(problem)
        health = replace(pods, **endpoint, checked_at=now)
        if source.platform is not None and pods.error is None:
            source.pods_read_at = now
        return Snapshot(
            service=source.name,
            taken_at=now,
            metrics=metrics,
            health=health,
            history=tuple(source.revisions),
            signals=self._signals(source, metrics, now),
            stale=self._is_stale(metrics, asked_at),
            errors=tuple(errors),
            unavailable=self._unavailable(source, pods, readings, asked_at),
            provenance=source.platform.recorded() if offers(source.platform, Observed) else None,
        )

    def _unavailable(
        self, source: ServiceSource, pods: Health, readings: dict[str, _Reading], asked_at: datetime
    ) -> tuple[Missing, ...]:
        """The signals the decision needs that this cycle could not read fresh:
        the pod counts (when the service has a platform) and the error rate
        (when Prometheus and its query are configured)."""
        missing = []
        if source.platform is not None and pods.error is not None:
            missing.append(Missing("pod counts", source.pods_read_at, "no answer"))
        if self.prometheus is not None and source.query(ERROR_RATE):
            reading = readings.get(ERROR_RATE) or _Reading()
            if reading.error is not None:
                missing.append(Missing("error rate", source.good_at.get(ERROR_RATE), "query failed"))
            elif reading.value is None or reading.at is None:
                missing.append(Missing("error rate", source.good_at.get(ERROR_RATE), "no data"))
            elif asked_at - reading.at > self.settings.stale_after:
                missing.append(Missing("error rate", reading.at, "stale"))
        return tuple(missing)

    # -- platform and health endpoint ---------------------------------------

    def _platform_state(self, source: ServiceSource, cycle: int) -> tuple[Health, list[str]]:
        """Pod counts every cycle; rollout history when due or when the pods
        moved. Blocking: runs in a platform thread."""
        if source.platform is None:
            return Health(), []
        scheduled = self._history_due(source, cycle)
        # A platform that can read both from one request (Kubernetes: one GET of
        # the deployment, not two) says so with `observe`.
        revisions = None
        try:
            if offers(source.platform, Observable):
                pods, revisions = source.platform.observe(scheduled)
            else:
                pods = source.platform.health()
            errors: list[str] = []
        except Exception as err:
            pods, errors = _pods_failed(source, err)
        moved = self._moved(source, pods)
        if revisions is not None:
            source.revisions = revisions
            source.revisions_cycle = cycle
        elif scheduled or moved:
            try:
                source.revisions = source.platform.history()
                source.revisions_cycle = cycle
            except Exception as err:  # PlatformError, or an answer of an unexpected shape
                _history_failed(source, err, errors)
        return pods, errors

    async def _platform_state_async(self, source: ServiceSource, cycle: int) -> tuple[Health, list[str]]:
        """`_platform_state` for a platform whose read runs on this loop
        (ObservableAsync): the pod counts from that read, the rollout history
        (when due or when the pods moved) from the same read in a platform
        thread."""
        platform = source.platform
        loop = asyncio.get_running_loop()

        def blocking(call):
            return loop.run_in_executor(self._pool(), call)

        scheduled = self._history_due(source, cycle)
        known = None
        try:
            pods, known = await platform.observe_async(self._client(_PLATFORM_CLIENT), blocking)
            errors: list[str] = []
        except Exception as err:
            pods, errors = _pods_failed(source, err)
        if self._moved(source, pods) or scheduled:
            try:
                if known is not None:
                    _, source.revisions = await blocking(lambda: platform.observe(True, known))
                else:
                    source.revisions = await blocking(platform.history)
                source.revisions_cycle = cycle
            except Exception as err:
                _history_failed(source, err, errors)
        return pods, errors

    def _history_due(self, source: ServiceSource, cycle: int) -> bool:
        every = self.settings.rollout_history_every
        return source.revisions_cycle is None or cycle - source.revisions_cycle >= every

    @staticmethod
    def _moved(source: ServiceSource, pods: Health) -> bool:
        """Whether the pod counts differ from the last cycle's (a rollout or a rollback is under way)."""
        seen = (pods.desired, pods.updated, pods.ready, pods.available)
        moved = seen != source.pods_seen
        source.pods_seen = seen
        return moved

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
        source.endpoint_failures = 0 if ok else source.endpoint_failures + 1
        return {
            "endpoint_ok": ok,
            "endpoint_status": status,
            "endpoint_latency_ms": latency,
            "endpoint_failures": source.endpoint_failures,
            "endpoint_failures_down": self.settings.health_failures_before_down,
        }

    # -- metrics -------------------------------------------------------------

    async def _read_metrics(self, sources: list[ServiceSource], bound: asyncio.Semaphore) -> dict[str, dict[str, _Reading]]:
        """Every configured signal of every source: service -> signal -> reading."""
        out: dict[str, dict[str, _Reading]] = {s.name: {} for s in sources}
        if self.prometheus is None:
            return out
        groups: dict[tuple[str, str], list[ServiceSource]] = {}
        for source in sources:
            for signal in SIGNALS:
                template = source.queries.get(signal)
                if template:
                    groups.setdefault((signal, template), []).append(source)

        async def group(signal: str, template: str, members: list[ServiceSource]) -> None:
            label = _batch_label(template)
            if label and template not in self._unbatchable:
                try:
                    found = await self._batched(template, label, [m.name for m in members])
                except SignalError as err:
                    for member in members:
                        out[member.name][signal] = _Reading(error=str(err))
                    return
                if found is not None:
                    for member in members:
                        out[member.name][signal] = _reading(signal, found.get(member.name, []))
                    return
                self._unbatchable.add(template)  # the label was aggregated away

            async def single(member: ServiceSource) -> None:
                async with bound:
                    try:
                        samples = await self._with_times(member.query(signal) or "")
                        out[member.name][signal] = _reading(signal, samples)
                    except SignalError as err:
                        out[member.name][signal] = _Reading(error=str(err))

            await asyncio.gather(*(single(m) for m in members))

        # The history load runs beside the instant queries: a silent Prometheus costs one timeout, not two.
        unloaded = [] if self.history_in_background else [s for s in sources if not s.history_loaded]
        await asyncio.gather(
            self._load_history(unloaded, bound),
            *(group(sig, tpl, members) for (sig, tpl), members in groups.items()),
        )
        return out

    @property
    def history_pending(self) -> bool:
        """Some sparkline history is not loaded yet (or its load failed)."""
        return self.prometheus is not None and any(not s.history_loaded for s in self.sources)

    async def load_history(self) -> None:
        """With `history_in_background`: load the sparkline history of the
        services that lack it, between cycles (never during one)."""
        async with self._cycle_lock:
            bound = asyncio.Semaphore(self.settings.max_concurrency)
            await self._load_history([s for s in self.sources if not s.history_loaded], bound)

    async def _batched(self, template: str, label: str, names: list[str]) -> dict[str, list[tuple[Sample, datetime]]] | None:
        """One query for many services, split by `label`; None when a series
        lacks the label (the query aggregates it away and cannot be split)."""
        query = _batch_query(template, label, names)
        samples = await self._with_times(query)
        found: dict[str, list[tuple[Sample, datetime]]] = {}
        for sample, at in samples:
            owner = sample.labels.get(label)
            if owner is None:
                return None
            found.setdefault(owner, []).append((sample, at))
        return found

    async def _with_times(self, query: str) -> list[tuple[Sample, datetime]]:
        """Samples with their real sample times. An instant query's timestamp is
        the evaluation time; `timestamp(q)` gives when each value was sampled
        (for a selector of a stored series; for a computed expression it is the
        evaluation time, which is honest too: rate() over old data is empty)."""
        assert self.prometheus is not None
        if self._timestamps is False:
            return [(s, s.at) for s in await self.prometheus.query(query)]
        try:
            samples, stamps = await asyncio.gather(
                self.prometheus.query(query), self.prometheus.query(f"timestamp({query})")
            )
        except QueryRejected:
            if self._timestamps:
                raise
            # A query API without timestamp() (the drill's own): evaluation times it is.
            self._timestamps = False
            return [(s, s.at) for s in await self.prometheus.query(query)]
        self._timestamps = True
        times = {_key(s.labels): s.value for s in stamps}
        out = []
        for sample in samples:
            stamp = times.get(_key(sample.labels))
            try:
                at = sample.at if stamp is None or not math.isfinite(stamp) else datetime.fromtimestamp(stamp, sample.at.tzinfo)
            except (OverflowError, OSError, ValueError):  # a sample time no clock can show
                at = sample.at
            out.append((sample, min(at, sample.at)))
        return out

    async def _before_deploy(self, source: ServiceSource, bound: asyncio.Semaphore) -> tuple[float | None, str | None]:
        """p95 (seconds) a margin before the current revision went live, read once per deploy."""
        query = source.query(LATENCY)
        current = next((r for r in source.revisions if r.current), None)
        deployed_at = source.deployed_at(current, self.clock.now()) if current is not None else None
        if self.prometheus is None or not query or current is None or deployed_at is None:
            return None, None
        baseline_at = _last_good_until(current, source.revisions) or deployed_at
        key = ((current.colour, current.number), baseline_at)
        if key in source.before_deploy:
            return source.before_deploy[key], None
        async with bound:
            try:
                samples = await self.prometheus.query(query, at=baseline_at - self.settings.before_deploy_margin)
            except SignalError as err:
                return None, str(err)
        values = [s.value for s in samples if s.value is not None and math.isfinite(s.value)]
        source.before_deploy = {key: max(values) if values else None}
        return source.before_deploy[key], None

    async def _load_history(self, sources: list[ServiceSource], bound: asyncio.Semaphore) -> None:
        """Fill the sparklines with the last `history_window` at once (one range
        query per signal when batchable); a failure leaves them to the next cycle."""
        if not sources or self.prometheus is None:
            return
        end = self.clock.now()
        start = end - self.settings.history_window
        step = self.settings.history_step
        loaded: dict[str, bool] = {s.name: True for s in sources}

        async def fill(signal: str, template: str, members: list[ServiceSource], scale: float) -> None:
            label = _batch_label(template)
            target = (lambda s: s.error_history) if signal == ERROR_RATE else (lambda s: s.latency_history)
            if label and template not in self._unbatchable:
                for done in range(0, len(members), HISTORY_BATCH):
                    batch = members[done:done + HISTORY_BATCH]
                    try:
                        query = _batch_query(template, label, [m.name for m in batch])
                        series = await self.prometheus.query_range(query, start, end, step)
                    except SignalError:
                        for member in members[done:]:  # one failure, not one per batch: the next cycle tries again
                            loaded[member.name] = False
                        return
                    if not all(label in s.labels for s in series):
                        break  # the answers do not say whose they are: one query per service from here
                    by_owner: dict[str, list] = {}
                    for item in series:
                        by_owner.setdefault(item.labels[label], []).append(item)
                    for member in batch:
                        _extend(target(member), by_owner.get(member.name, []), scale)
                else:
                    return
                members = members[done:]

            async def single(member: ServiceSource) -> None:
                async with bound:
                    try:
                        series = await self.prometheus.query_range(member.query(signal) or "", start, end, step)
                    except SignalError:
                        loaded[member.name] = False
                        return
                _extend(target(member), series, scale)

            await asyncio.gather(*(single(m) for m in members))

        jobs = []
        for signal, scale in ((ERROR_RATE, 1.0), (LATENCY, 1000.0)):
            groups: dict[str, list[ServiceSource]] = {}
            for source in sources:
                if source.queries.get(signal):
                    groups.setdefault(source.queries[signal], []).append(source)
            jobs += [fill(signal, template, members, scale) for template, members in groups.items()]
        await asyncio.gather(*jobs)
        for source in sources:
            source.history_loaded = loaded[source.name]

    def _metrics(self, source: ServiceSource, readings: dict[str, _Reading], before: tuple[float | None, str | None]) -> Metrics:
        values: dict[str, object] = {}
        sampled: list[tuple[str, datetime]] = []
        error = None
        for signal in SIGNALS:
            reading = readings.get(signal)
            if reading is None:
                continue
            if reading.error is not None:
                # Keep showing the last value, with its old time: it turns stale.
                value, at = source.last.get(signal, (None, None))
                error = error or reading.error
            else:
                value, at = reading.value, reading.at
                source.last[signal] = (value, at)
                if value not in (None, ()) and at is not None:
                    source.good_at[signal] = at
            values[signal] = value
            if at is not None and value not in (None, ()):
                sampled.append((signal, at))
        times = dict(sampled)
        # Only values read this cycle extend the sparklines (carried ones are already there).
        fresh = {signal for signal, reading in readings.items() if reading.error is None and signal in times}
        if ERROR_RATE in fresh:
            source.error_history.append(epoch(times[ERROR_RATE]), float(values[ERROR_RATE]))  # type: ignore[arg-type]
        if LATENCY in fresh:
            source.latency_history.append(epoch(times[LATENCY]), float(values[LATENCY]) * 1000)  # type: ignore[arg-type]
        horizon = epoch(self.clock.now() - self.settings.history_window)
        source.error_history.drop_before(horizon)
        source.latency_history.drop_before(horizon)
        latency = values.get(LATENCY)
        before_s = before[0]
        return Metrics(
            error_rate=values.get(ERROR_RATE),  # type: ignore[arg-type]
            latency_p95_ms=latency * 1000 if isinstance(latency, float) else None,
            latency_p95_before_ms=before_s * 1000 if before_s is not None else None,
            request_rate=values.get(REQUEST_RATE),  # type: ignore[arg-type]
            route_error_rates=values.get(ROUTE_ERROR_RATE) or (),  # type: ignore[arg-type]
            error_rate_history=source.error_history.samples(),
            latency_history=source.latency_history.samples(),
            sampled_at=min(times.values()) if times else None,
            sampled=tuple(sorted(times.items())),
            error=error,
        )

    # -- judgement -----------------------------------------------------------

    def _is_stale(self, metrics: Metrics, asked_at: datetime) -> bool:
        """Stale when a query failed this cycle or any value was older than the
        limit when the cycle asked for it."""
        if metrics.error is not None:
            return True
        return any(asked_at - at > self.settings.stale_after for _, at in metrics.sampled)

    def _signals(self, source: ServiceSource, metrics: Metrics, now: datetime) -> Signals:
        t = self.settings.thresholds
        factor = None
        if metrics.latency_p95_ms is not None and metrics.latency_p95_before_ms:
            factor = metrics.latency_p95_ms / metrics.latency_p95_before_ms
        window_start = now - self.settings.intermittent_window
        crossings = count_crossings(metrics.error_rate_history.since(window_start).values, t.investigate_error_rate)
        return Signals(
            latency_spike=factor is not None and factor >= t.latency_spike_factor,
            latency_factor=factor,
            single_endpoint=single_failing_route(metrics.route_error_rates, t),
            intermittent=crossings >= self.settings.intermittent_crossings,
            crossings=crossings,
            history_loaded=source.history_loaded or self.prometheus is None or not source.query(ERROR_RATE),
        )

    async def aclose(self) -> None:
        """Close the HTTP clients and the platform threads."""
        if self._http_loop is asyncio.get_running_loop():
            for session in self._http.values():
                await session.close()
        self._http, self._http_loop = {}, None
        if self._threads is not None:
            self._threads.shutdown(wait=False, cancel_futures=True)
            self._threads = None
        if self.prometheus is not None:
            await self.prometheus.aclose()


def _pods_failed(source: ServiceSource, err: Exception) -> tuple[Health, list[str]]:
    """The pod counts a failed read leaves, and its sentence (the cycle never
    raises: an unexpected answer is a sentence too)."""
    problem = str(err) if isinstance(err, PlatformError) else _unexpected(source, "read the pod counts of", err)
    return Health(error=problem), [problem]


def _history_failed(source: ServiceSource, err: Exception, errors: list[str]) -> None:
    """A failed rollout-history read: said once, tried again next cycle."""
    source.revisions_cycle = None
    problem = str(err) if isinstance(err, PlatformError) else _unexpected(source, "read the rollout history of", err)
    if problem not in errors:
        errors.append(problem)


def _unexpected(source: ServiceSource, doing: str, err: BaseException) -> str:
    platform = getattr(source.platform, "platform", "platform")
    return (
        f"Could not {doing} {source.name} from its {platform} platform: it answered in an unexpected way "
        f"({type(err).__name__}); check that the config points at the right API."
    )


def count_crossings(values: Iterable[float], line: float) -> int:
    """How many times consecutive values change sides of `line` (at or above vs below)."""
    crossings, above = 0, None
    for value in values:
        now_above = value >= line
        if above is not None and now_above != above:
            crossings += 1
        above = now_above
    return crossings


def single_failing_route(routes: tuple[tuple[str, float], ...], thresholds: Thresholds) -> str | None:
    """The route failing above the rollback error rate while every other route
    stays below the investigate rate; None otherwise (a service-wide failure
    is the overall error rate's row, not this one)."""
    if len(routes) < 2:
        return None
    failing = [route for route, rate in routes if rate > thresholds.rollback_error_rate]
    fine = [route for route, rate in routes if rate < thresholds.investigate_error_rate]
    if len(failing) == 1 and len(fine) == len(routes) - 1:
        return failing[0]
    return None


def _batch_label(template: str) -> str | None:
    """The label a template selects its service by, when that is its only use
    of `$service` (one or more `label="$service"` matchers on the same label)."""
    labels = set(_SERVICE_MATCHER.findall(template))
    if len(labels) != 1:
        return None
    rest = _SERVICE_MATCHER.sub("", template)
    return None if "$service" in rest or "${service}" in rest else labels.pop()


def _batch_query(template: str, label: str, names: list[str]) -> str:
    """The template selecting every named service: `label=~"a|b|c"`."""
    alternatives = "|".join(_REGEX_SPECIAL.sub(r"\\\1", name) for name in sorted(set(names)))
    quoted = alternatives.replace("\\", "\\\\").replace('"', '\\"')
    return _SERVICE_MATCHER.sub(lambda _m: f'{label}=~"{quoted}"', template)


def _key(labels: Mapping[str, str]) -> frozenset:
    return frozenset((k, v) for k, v in labels.items() if k != "__name__")


def _reading(signal: str, samples: list[tuple[Sample, datetime]]) -> _Reading:
    """One service's samples of one signal as a reading."""
    good = [(s, at) for s, at in samples if s.value is not None and math.isfinite(s.value)]
    if signal == ROUTE_ERROR_RATE:
        routes: dict[str, float] = {}
        times = []
        for sample, at in good:
            route = sample.labels.get("route", "")
            routes[route] = max(routes.get(route, 0.0), float(sample.value))  # type: ignore[arg-type]
            times.append(at)
        return _Reading(tuple(sorted(routes.items())), min(times) if times else None)
    if not good:
        return _Reading()
    # A query should name one series per service; if it yields several, the worst counts.
    sample, at = max(good, key=lambda item: item[0].value)  # type: ignore[arg-type, return-value]
    return _Reading(float(sample.value), at)  # type: ignore[arg-type]


def _extend(history: Trail, series: list, scale: float) -> None:
    """Merge the worst series of a range query into a sparkline (display units);
    where both have a sample at the same time, the one already recorded stays."""
    if not series:
        return
    worst = max(series, key=lambda s: max(s.points.values, default=0.0))
    merged = dict(zip(worst.points.times, (value * scale for value in worst.points.values)))
    merged.update(zip(history.times, history.values))
    ordered = sorted(merged.items())
    history.replace(Samples([t for t, _ in ordered], [v for _, v in ordered]))
