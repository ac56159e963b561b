"""A console session: the config turned into sources and platforms, refresh
cycles turned into decisions, and every step recorded in the incident store
before anyone sees it. The TUI and the headless commands both drive one.
"""

from __future__ import annotations

import asyncio
import getpass
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Coroutine, TypeVar

from console import gitops
from console import incident as incidents
from console.checklist import Checklist, ChecklistStatus, Observations, evaluate_checklist, tick, untick
from console import comms
from console.comms import Message, MessageKind, drill_marked, rollback_complete, rollback_in_progress
from console.clock import Clock, SystemClock
from console.config import Config
from console.decision import evaluate, urgency
from console.incident import NewEvent
from console.gate import Ask, GitOpsView, LeaseView, MigrationView, Verdict, decide as gate_decide, recent
from console.model import (
    Action, ColourRevision, Decision, Event, Facts, Metrics, Progress, Reason, RollbackPlan, ServiceView, Snapshot, Table,
    revision_label,
)
from console.platforms.base import (
    Followed, Leased, Platform, PlanRecorded, PlatformError, QuickRollback, Recorded, Surroundings, Usage, lacks,
    read_surroundings,
)
from console.provenance import INCIDENT, Provenance, RollbackRecord
from console.store import OutboxEntry, Store
from console.sources import build_platform, build_poller

if TYPE_CHECKING:
    import concurrent.futures

    # Imported where a service has a database (console.database brings in the
    # procedures and the command runner): not before the first frame (issue 17).
    from console.database import Database, MigrationState
    from console.procedures import MigrationFacts

    from console.runbook import CorruptionResponse, MigrationRollback
    from console.refresher import PollerProcess
    from console.signals.poller import Poller
    from console.slack import SendResult, SlackNotifier


T = TypeVar("T")


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _data_version(store: Store) -> int | None:
    """SQLite's `PRAGMA data_version` of the store's connection: it changes
    only when another connection commits (None when it cannot be read)."""
    database = getattr(store, "_db", None)
    if database is None:
        return None
    try:
        with store._lock:
            return database.execute("PRAGMA data_version").fetchone()[0]
    except Exception:  # a closed store: treat as changed, the next read reports it
        return None


def default_operator() -> str:
    """`user@host`, the name that goes in the timeline and on leases."""
    try:
        user = getpass.getuser()
    except Exception:  # no passwd entry in some containers
        user = "operator"
    return f"{user}@{socket.gethostname()}"


def colour_refusal(service: str, platform: str, to_revision) -> str | None:
    """Why `to_revision` cannot name a revision of `service` on `platform` (its
    config's `platform:`), as a sentence: a blue-green colour (`ColourRevision`)
    given for a service that has no colours. None when it can."""
    if isinstance(to_revision, ColourRevision) and platform != "blue-green":
        return (f"--to-revision {to_revision} names a blue-green colour, but {service} runs on {platform}, "
                f"which has no colours: give a revision number from its history (--to-revision N), or "
                f"leave --to-revision out to roll back to the previous revision.")
    return None


CHOICES: dict[str, str] = {
    "rollback": "Roll back",
    "keep_investigating": "Keep investigating",
    "fix_forward": "Fix forward",
    "hotfix": "Hotfix",
    "wait": "Wait for external fix",
}
"""The operator's decisions the timeline records with a reason (choice id -> the runbook's words)."""


@dataclass(frozen=True)
class Escalation:
    """Where the incident stands on the runbook's Rollback Escalation."""

    level: int
    role: str  # "Team Lead"
    why: str
    # When the level rises by time alone (customer impact passing the limit), None if it will not.
    next_at: datetime | None
    # Who to contact at this level, from the config.
    contacts: tuple[str, ...] = ()


def markdown_to_mrkdwn(text: str) -> str:
    """An operator-edited runbook message (Markdown) in Slack's mrkdwn: headings
    and **bold** become *bold*, "- " bullets become "•"."""
    lines = []
    for line in text.rstrip().splitlines():
        stripped = line.rstrip()
        if stripped.startswith("#"):
            stripped = "*" + stripped.lstrip("#").strip() + "*"
        elif stripped.startswith("- "):
            stripped = "• " + stripped[2:]
        lines.append(stripped.replace("**", "*"))
    return "\n".join(lines)


def _metric_words(metrics: dict) -> str:
    parts = []
    if "error_rate" in metrics:
        parts.append(f"error rate {metrics['error_rate'] * 100:.2f} %")
    if "latency_p95_ms" in metrics:
        parts.append(f"p95 {metrics['latency_p95_ms']:.0f} ms")
    return ", ".join(parts)


class Session:
    """Everything one console (TUI or headless) knows and does."""

    read_only = False
    """A viewer's session (`watch --viewer`, `web --follow`): `record` stores nothing."""

    def __init__(self, config: Config, store: Store, clock: Clock | None = None, operator: str | None = None,
                 refresh_process: PollerProcess | None = None) -> None:
        self.config = config
        self.store = store
        self.clock = clock or SystemClock()
        self.operator = operator or config.operator or default_operator()
        self.thresholds = config.decision_thresholds
        self.gate_policy = config.gate.policy()
        self.services: tuple[str, ...] = tuple(s.name for s in config.services)
        self.refresh_interval = config.refresh_interval
        connections: dict = {}
        self._platforms: dict[str, Platform] = {
            s.name: build_platform(config, s, self.clock, connections) for s in config.services
        }
        self._facts: dict[str, Facts] = {name: Facts() for name in self.services}
        self._views: dict[str, ServiceView] = {}
        self._lock = threading.Lock()
        self._databases: dict[str, Database] = {}
        with_database = [s for s in config.services if getattr(s, "database", None)]
        if with_database:
            from console.database import Database

            self._databases = {s.name: Database(s.name, s.database) for s in with_database}
        self._migrations: dict[str, MigrationState] = {}
        self._detected: dict[str, MigrationFacts] = {}
        # The guided incident: each service's open incident, rebuilt from the
        # store (so a restart resumes it) and kept current as events are recorded.
        self._states: dict[str, incidents.IncidentState] = {}
        self._before: dict[str, dict] = {}
        self._state_lock = threading.RLock()
        self._store_version = _data_version(store)
        for name in self.services:
            self._sync_state(name)
        # The session's own event loop (see `run`), started on first use.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None
        self._loop_lock = threading.Lock()
        # The refresh process when the caller started it before the session (cli.watch: its
        # first cycle then overlaps building the session too); else start_refresh_process.
        self._poller: Poller | PollerProcess | None = refresh_process
        self._poller_lock = threading.Lock()
        self._timeline: tuple[tuple, list[Event]] | None = None  # the last read, and the store's version then
        self.first_refresh: concurrent.futures.Future[list[ServiceView]] | None = None
        """The first refresh, started with the refresh process (the TUI shows its views first)."""
        # A drill (the scenario's name from the config): marked on messages and exports.
        self.drill: str | None = config.drill
        # Set by `rollback-console drill`: the drill's story and debrief (console.drill.record.DrillLink).
        self.drill_link: Any = None
        self._story_told = 0
        self._slack_lock = threading.Lock()
        # Each service's provenance as the gate last read it (the records a rollback keeps).
        self._provenance: dict[str, Provenance] = {}
        # Records of others' rollbacks already put in the timeline (keys), per service.
        self._seen_records: dict[str, set[str]] = {}

    @property
    def poller(self) -> Poller | PollerProcess:
        """The signal poller, built on first use: it brings in the HTTP clients
        (httpx takes a noticeable part of start-up), which the first frame does
        not need."""
        with self._poller_lock:
            if self._poller is None:
                self._poller = build_poller(self.config, self._platforms, self.clock)
            return self._poller

    async def _cycle(self, only: str | None) -> list[Snapshot]:
        """The poller's cycle. A refresh process that failed FALL_BACK_AFTER
        cycles in a row is given up for the poller in this process: the
        console goes on refreshing, slower keys rather than no signals."""
        from console.refresher import FALL_BACK_AFTER, PollerProcess, RefreshProcessError

        poller = self.poller
        try:
            return await poller.cycle(only)
        except RefreshProcessError as err:
            if not isinstance(poller, PollerProcess) or poller.failures < FALL_BACK_AFTER:
                raise
            await poller.aclose()
            with self._poller_lock:
                if self._poller is poller:
                    self._poller = build_poller(self.config, self._platforms, self.clock)
            raise RefreshProcessError(f"{err} It failed {poller.failures} cycles in a row: from now on the console "
                                      "refreshes in its own process.") from None

    @property
    def refreshes_elsewhere(self) -> bool:
        """The refresh cycle runs in the refresh process, not on this interpreter."""
        from console.refresher import PollerProcess

        return isinstance(self._poller, PollerProcess)

    def start_refresh_process(self) -> None:
        """Run the refresh cycle's poller in a child process from now on (the
        TUI does, before it builds its screens): the cycle's HTTP and parsing
        no longer compete with keys and frames for this interpreter, and the
        first cycle runs while the UI starts (see console.refresher)."""
        from console.refresher import PollerProcess

        with self._poller_lock:
            if self._poller is None:
                self._poller = PollerProcess(self.config, self.clock, max_age=self.refresh_interval)

    def begin_first_refresh(self) -> None:
        """Start the first refresh now, on the session's loop (the TUI does, right
        after `start_refresh_process`): the child's first cycle, then the decisions,
        run while the UI loads, and the UI shows their views in its first frame."""
        if self.first_refresh is None:
            self.first_refresh = asyncio.run_coroutine_threadsafe(self.refresh(), self._background_loop())

    # -- observing -------------------------------------------------------

    def platform(self, service: str) -> Platform:
        try:
            return self._platforms[service]
        except KeyError:
            raise PlatformError(f"no service named {service!r} in the config") from None

    def facts(self, service: str) -> Facts:
        return self._facts[service]

    def decide(self, snapshot: Snapshot) -> Decision:
        facts = self._facts[snapshot.service]
        if facts.investigation_started_at is None:
            # "Decide by" counts from the first INVESTIGATE verdict of this run, not from each refresh.
            since = incidents.investigate_since(self.incident_state(snapshot.service))
            if since is not None:
                facts = replace(facts, investigation_started_at=since)
        return evaluate(snapshot, facts, snapshot.taken_at, self.thresholds)

    async def refresh(self, only: str | None = None) -> list[ServiceView]:
        """One refresh cycle; decision changes are recorded before they are returned."""
        self._sync_if_written_elsewhere()
        snapshots = await self._cycle(only)
        snapshots = list(await asyncio.gather(*(self._with_migrations(s) for s in snapshots)))
        views = []
        for snapshot in snapshots:
            view = ServiceView(snapshot, self.decide(snapshot))
            self._note_change(self._views.get(snapshot.service), view)
            self._note_records(snapshot)
            self._views[snapshot.service] = view
            views.append(view)
            self._escalate(snapshot.service, snapshot.taken_at)
            self._record_checklist(snapshot.service, snapshot.taken_at)
        self._tell_story()
        return views

    def _tell_story(self) -> None:
        """A drill's notes revealed since the last refresh go into the timeline
        (actor "drill") of the most urgent service's incident."""
        link = self.drill_link
        if link is None:
            return
        story = link.story()
        if len(story) <= self._story_told:
            return
        views = list(self._views.values())
        service = max(views, key=lambda v: urgency(v.decision.action)).snapshot.service if views else None
        for index in range(self._story_told, len(story)):
            text = story[index][1]
            self.record(incidents.NewEvent(incidents.NOTE, f"DRILL: {text}", {"drill_note": index}),
                        service=service, actor="drill")
        self._story_told = len(story)
    def _note_records(self, snapshot: Snapshot) -> None:
        """Put in the timeline, once, each recent rollback another console, the
        autopilot or a person made on the service, as the objects record it
        (read with the refresh; the entry's actor is who did it)."""
        service, now, provenance = snapshot.service, snapshot.taken_at, snapshot.provenance
        if provenance is None:
            return
        seen = self._seen_records.setdefault(service, self._recorded_keys(service))
        for record in provenance.records:
            key = "|".join((record.by, ",".join(record.from_versions), ",".join(record.to_versions),
                            record.at.isoformat() if record.at else ""))
            if key in seen or record.by == self.operator or not recent(record, now, self.gate_policy):
                seen.add(key)
                continue
            seen.add(key)
            self.record(incidents.NewEvent(incidents.NOTE, record.sentence(service), {"record": key}),
                        service=service, actor=record.by)

    def cluster_rollback(self, service: str) -> RollbackRecord | None:
        """The newest recent rollback the objects record (by anyone) that brought
        the service to what it runs now, from the last refresh (no request): the
        banner follows the cluster, not this console's memory."""
        view = self._views.get(service)
        provenance = view.snapshot.provenance if view is not None else None
        current = view.snapshot.current_revision if view is not None else None
        if provenance is None or current is None:
            return None
        now = self.clock.now()
        hits = [r for r in provenance.records if r.to_versions == current.versions and recent(r, now, self.gate_policy)]
        return hits[-1] if hits else None

    def _recorded_keys(self, service: str) -> set[str]:
        """The records the open incident's timeline already mentions."""
        incident_id = self.store.open_incident_for(service)
        if incident_id is None:
            return set()
        return {str(incidents.payload(e).get("record")) for e in self.store.events(incident_id)
                if incidents.payload(e).get("record")}

    def view(self, service: str) -> ServiceView | None:
        return self._views.get(service)

    def _note_change(self, before: ServiceView | None, after: ServiceView) -> None:
        """Record a decision when its action changes (not the quiet healthy start)."""
        old = before.decision.action if before else None
        if old is None:
            # After a restart the last stored verdict is the one to compare with.
            state = self.incident_state(after.snapshot.service)
            old = state.decision.action if state is not None and state.decision else None
        new = after.decision
        if old is not None and old == new.action:
            return
        if old is None and new.action == Action.HEALTHY:
            return
        if self.read_only:
            return  # a viewer records nothing: the driving console records its verdicts
        # Checked again against the store in the write's own transaction: other
        # consoles (20 `status` runs at once) may have recorded this verdict already.
        service = after.snapshot.service
        event = incidents.decided(new)
        stored = self.store.append_if_changed(
            service, event.kind, event.text, at=self.clock.now(), key="action", actor="console", data=event.data,
            open_incident=new.action != Action.HEALTHY,
        )
        if stored is not None:
            self._apply(service, stored[0], stored[1])

    # -- the timeline ----------------------------------------------------

    def incident_id(self, service: str) -> str:
        """The open incident for `service`, opened now if there is none."""
        with self._lock:
            return self.store.ensure_open_incident(service, self.clock.now(),
                                                   prefix=self.config.incident.ticket_prefix)

    def record(self, event: NewEvent, service: str | None = None, actor: str | None = None) -> Event:
        """Store one timeline event in `service`'s incident (the first service's by
        default) and return it as stored: nothing is shown before it is stored."""
        service = service or self.services[0]
        if self.read_only:
            # A viewer writes nothing: the driving console records; this one reads the store.
            return Event(self.clock.now(), event.kind, event.text, actor=actor or self.operator,
                         data=incidents.pairs(event.data))
        incident_id = self.incident_id(service)
        stored = self.store.append(
            incident_id, event.kind, event.text, at=self.clock.now(), actor=actor or self.operator, data=event.data
        )
        self._apply(service, incident_id, stored)
        return stored

    def note(self, text: str, service: str | None = None, actor: str | None = None) -> Event:
        """A free-text timeline entry."""
        return self.record(incidents.note(text), service=service, actor=actor)

    def timeline(self, limit: int = 200) -> list[Event]:
        """Events of every open incident of this config's services, newest first."""
        version = self.store.version()
        cached = self._timeline
        if cached is not None and cached[0] == (version, limit):
            return list(cached[1])  # nothing was written since: every refresh asks
        events: list[Event] = []
        open_incidents = self.store.open_incidents(self.services)
        for incident_id in (open_incidents[s] for s in self.services if s in open_incidents):
            events.extend(self.store.events(incident_id, newest_first=True, limit=limit))
        events.sort(key=lambda e: e.at, reverse=True)
        self._timeline = ((version, limit), events[:limit])
        return list(events[:limit])

    # -- acting ----------------------------------------------------------

    def plan_rollback(self, service: str, to_revision: int | ColourRevision | None = None,
                      quick: bool = False) -> RollbackPlan:
        """Ask the platform what a rollback would change (no change is made).
        `to_revision`: a revision number, or a blue-green colour (`ColourRevision`,
        `--to-revision blue` or `blue:3`; other platforms refuse it with Usage).
        `quick`: the runbook's Docker Compose quick rollback (start the previous
        container); other platforms refuse it with a PlatformError."""
        platform = self.platform(service)
        refusal = colour_refusal(service, self.config.service(service).platform, to_revision)
        if refusal:
            raise Usage(refusal)
        if not quick:
            return platform.plan_rollback(to_revision)
        if not isinstance(platform, QuickRollback):
            raise Usage(lacks(platform, QuickRollback))
        return platform.plan_rollback(to_revision, quick=True)

    def _rollout_timeout(self, timeout: float | None) -> float:
        """The seconds a rollout may take: `timeout`, or the config's `rollout_timeout`."""
        return self.config.rollout_timeout if timeout is None else timeout

    def execute(self, plan: RollbackPlan, reason: str = "", timeout: float | None = None) -> Iterator[Progress]:
        """Run a plan, recording its start, every new progress line and its end;
        `timeout` (seconds) defaults to the config's `rollout_timeout`."""
        timeout = self._rollout_timeout(timeout)
        service = plan.service
        if plan.skip_reason:
            self.note(f"{service}: {plan.skip_reason}", service=service)
            yield Progress(message=plan.skip_reason, at=self.clock.now(), done=True)
            return
        platform = self.platform(service)
        # One rollback at a time per service across every console: the lease is
        # taken before anything is recorded or changed, renewed while the
        # rollback runs, and released after it, whatever happens.
        lease = self.rollback_lease(service)
        if lease is not None:
            try:
                lease.__enter__()
            except PlatformError as err:
                self.note(f"{service}: rollback not started: {err}", service=service, actor="console")
                raise
        rollout_started_at = self.clock.now()
        try:
            plan = self._with_record(plan, reason)
            started = incidents.rollback_started(plan)
            if reason:
                started = replace(started, text=f"{started.text} (reason: {reason})", data={**started.data, "reason": reason})
            before = self.metrics_now(service)
            if before:
                # The bad version's numbers, for the Rollback Complete message and the export.
                started = replace(started, data={**started.data, "before": before})
            self.record(started, service=service)
            last = None
            paused = not plan.pre_calls
            try:
                for progress in platform.execute(plan, timeout=timeout):
                    if not paused:
                        # The platform pauses the GitOps owner before anything else.
                        self._record_pause(plan)
                        paused = True
                    if lease is not None:
                        lease.renew_if_due()
                    if progress.message != last:
                        self.record(incidents.rollback_progress(progress), service=service, actor="console")
                        last = progress.message
                    if progress.failed:
                        self.record(incidents.rollback_failed(progress.message), service=service, actor="console")
                    elif progress.done:
                        to = ", ".join(plan.to_versions) or plan.to_label
                        self.record(incidents.rollback_completed(f"Rollback complete: {service} on {to}"), service=service, actor="console")
                    yield progress
            except PlatformError as err:
                self.record(incidents.rollback_failed(str(err)), service=service, actor="console")
                raise
        finally:
            # The rollout history changed under the poller's cache: read it next cycle.
            self.poller.invalidate(service, changed_at=rollout_started_at)
            if lease is not None:
                lost = lease.lost
                lease.__exit__(None, None, None)
                if lost:
                    self.note(f"{service}: {lost}", service=service, actor="console")

    def _record_pause(self, plan: RollbackPlan) -> None:
        """The timeline's record of a paused GitOps owner (checklist items and escalation follow from it)."""
        owner = plan.owner
        self.record(incidents.gitops_paused(owner.ref, owner.tool, owner.revision, owner.resume_hint(), owner.parent),
                    service=plan.service, actor="console")

    # -- the gate: may this rollback go ahead --------------------------------

    def provenance(self, service: str, plan: RollbackPlan | None = None) -> Provenance:
        """What the objects say about `service`'s past rollbacks (read fresh:
        call from a worker; or, for the gate, the read `plan` was made from when
        its change is refused should they have changed since, see
        `PlanRecorded`), plus the open incident's completed rollback (for
        platforms whose objects carry no record)."""
        platform = self.platform(service)
        found = platform.plan_provenance(plan) if plan is not None and isinstance(platform, PlanRecorded) else None
        if found is None:
            found = platform.provenance() if isinstance(platform, Recorded) else Provenance()
        state = self.incident_state(service)
        if state is not None and state.rollback.status is incidents.RollbackStatus.COMPLETED and state.rollback.to_versions:
            started = [e for e in self.events(service) if e.kind == incidents.ROLLBACK_STARTED]
            by = started[-1].actor if started else self.operator
            found = found.merged(Provenance((RollbackRecord(
                by, state.rollback.from_versions, state.rollback.to_versions, state.rollback.finished_at,
                state.rollback.reason, self.ticket(service), INCIDENT),)))
        self._provenance[service] = found
        return found

    def migration_view(self, service: str, plan: RollbackPlan) -> MigrationView:
        """The migration check for the plan's target, as the gate takes it: the
        configured migration source, else the facts declared or detected."""
        check = self.rollback_check(service, plan.target)
        facts = self.facts(service)
        blocked, explanation = check.blocked, check.explanation
        if not check.blocked and check.migration is None and facts.migration_applied and facts.migration_reversible is not True:
            from console.procedures import DATA_LOSS_RISK

            known = "not reversible" if facts.migration_reversible is False else "not known to be reversible"
            blocked = True
            explanation = (f"A migration applied since the deploy ({facts.migration_name or 'declared in the facts'}) "
                           f"is {known}. " + DATA_LOSS_RISK)
        return MigrationView(
            blocked=blocked,
            explanation=explanation,
            migration=check.migration.name if check.migration else None,
            reversible_applied=facts.migration_applied and facts.migration_reversible is True,
            options=tuple(f"{o.title}: {o.detail}" for o in check.options),
        )

    def gate(self, plan: RollbackPlan, ask: Ask, read_lease: bool = True) -> Verdict:
        """Ask the gate whether `plan` may go ahead (`console.gate.decide`), from
        the last refresh's decision, the objects' records (as the plan read them
        when its change is refused should they have changed since, else read
        again) and the lease. Makes requests: call from a worker.
        `read_lease=False` leaves the lease to the rollback's own atomic create
        (`execute`, LeaseHeld when another console holds it): only for a change
        sent at once after the gate, with no one asked in between."""
        service = plan.service
        view = self._views.get(service)
        decision = view.decision if view is not None else Decision(
            Action.INVESTIGATE, (Reason(Table.INVESTIGATE_FIRST, "No signals read yet", "refresh first"),))
        holder = self.lease_holder(service) if read_lease else None
        lease = LeaseView(holder.holder, holder.expired) if holder is not None else None
        owner = plan.owner
        gitops = GitOpsView(owner.ref, owner.self_healing, owner.pause_problem) if owner is not None else None
        return gate_decide(service, decision, plan, self.provenance(service, plan), ask, self.clock.now(),
                           self.migration_view(service, plan), lease, self.gate_policy, gitops)

    def record_verdict(self, plan: RollbackPlan, verdict: Verdict, ask: Ask) -> None:
        """Put a refusal, or an override with its reason and approver, in the timeline."""
        service = plan.service
        if verdict.overridden:
            approved = f", approved by {ask.approved_by}" if ask.approved_by else ""
            self.record(incidents.NewEvent(
                incidents.NOTE,
                f"{service}: rollback override by {ask.operator}{approved} (reason: {ask.reason.strip()}); "
                "overriding: " + " ".join(o.sentence for o in verdict.overridden),
                {"override": True, "reason": ask.reason.strip(), "approved_by": ask.approved_by or "",
                 "rules": [o.rule.value for o in verdict.overridden]}), service=service)
        elif verdict.objections and verdict.outcome.value in ("refuse", "go only with override"):
            self.record(incidents.NewEvent(
                incidents.NOTE, f"{service}: rollback refused: {verdict.sentence}",
                {"refused": True, "rules": [o.rule.value for o in verdict.objections]}), service=service)

    def plan_as_sent(self, plan: RollbackPlan, reason: str) -> RollbackPlan:
        """`plan` with the record `execute` writes in the same request (the
        rollback record annotation), for showing the exact request before it is
        sent: only the record's time differs, the moment it is sent. May read
        the platform's records: call from a worker."""
        return self._with_record(plan, reason)

    def _with_record(self, plan: RollbackPlan, reason: str) -> RollbackPlan:
        """The plan, writing this rollback's record on the object (platforms that keep one)."""
        platform = self.platform(plan.service)
        if not isinstance(platform, Recorded) or plan.skip_reason:
            return plan
        existing = self._provenance.get(plan.service)
        if existing is None:
            existing = self.provenance(plan.service)
        record = RollbackRecord(self.operator, plan.from_versions, plan.to_versions, self.clock.now(), reason,
                                self.ticket(plan.service))
        return platform.with_record(plan, record, existing.records)

    def rollback_lease(self, service: str):
        """The service's rollback lease held by this console's operator (a
        `platforms.lease.RollbackLease`, not yet acquired), None for platforms
        without one (Compose)."""
        platform = self.platform(service)
        if not isinstance(platform, Leased):
            return None
        return platform.rollback_lease(self.operator)

    def lease_holder(self, service: str):
        """Who is rolling `service` back right now (a `platforms.lease.LeaseHolder`,
        `expired` set when its holder stopped renewing it), None when nobody
        is or the platform has no lease. Makes a request: call from a worker."""
        lease = self.rollback_lease(service)
        return lease.current() if lease is not None else None

    def surroundings(self, service: str) -> Surroundings:
        """`service`'s routing, rollback-lease holder and git owner, for the panes
        (platforms.base.Surroundings). Makes requests: call from a worker. With
        a refresh process running, that process reads them between cycles: their
        requests and parsing stay off this interpreter (the UI's), which then
        loads no Kubernetes client until an action needs one. Read here when
        there is none, or when it fails."""
        from console.refresher import PollerProcess, RefreshProcessError

        poller = self._poller
        if isinstance(poller, PollerProcess):
            try:
                return poller.surroundings(service, self.operator)
            except RefreshProcessError:
                pass  # the next cycle says what happened to it; the panes read here meanwhile
        return read_surroundings(service, self.platform(service), self.operator)

    # -- the session's event loop ------------------------------------------

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run one of this session's coroutines on the session's own event loop
        (a daemon thread, started on first use) and wait for its result.

        The TUI calls this from thread workers: a refresh cycle (hundreds of
        requests and their parsing) then never holds up the UI's loop, and the
        HTTP clients live on this loop for the session's life. Headless
        commands may instead await the coroutines in `asyncio.run`."""
        return asyncio.run_coroutine_threadsafe(coro, self._background_loop()).result()

    def refresh_blocking(self, only: str | None = None) -> list[ServiceView]:
        """`refresh` on the session's loop, for a thread; cycles never overlap (the poller's lock)."""
        return self.run(self.refresh(only))

    def _background_loop(self) -> asyncio.AbstractEventLoop:
        with self._loop_lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="session-loop", daemon=True)
                thread.start()
                self._loop, self._loop_thread = loop, thread
            return self._loop

    async def aclose(self) -> None:
        """Close the HTTP clients and platform threads, on the loop they live on.
        A cycle still running on the session's loop is cancelled, so a thread
        waiting in `run` returns (with CancelledError) rather than hanging."""
        loop = self._loop
        if loop is None:
            if self._poller is not None:
                await self._poller.aclose()
            return
        if _running_loop() is loop:
            raise RuntimeError("Session.aclose() cannot run on the session's own loop; call close() from another thread.")
        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self._shutdown(), loop))
        self._stop_loop()

    def close(self) -> None:
        """`aclose` for callers without an event loop of their own (blocks)."""
        if self._loop is None:
            if self._poller is not None:
                asyncio.run(self._poller.aclose())
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result()
        self._stop_loop()

    async def _shutdown(self) -> None:
        current = asyncio.current_task()
        pending = [task for task in asyncio.all_tasks() if task is not current]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if self._poller is not None:
            await self._poller.aclose()

    def _stop_loop(self) -> None:
        with self._loop_lock:
            loop, thread = self._loop, self._loop_thread
            self._loop = self._loop_thread = None
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
        if not thread.is_alive():
            loop.close()

    def declare(self, service: str, name: str, value: object, actor: str | None = None) -> Facts:
        """Declare one fact (a `Facts` field) for a service; recorded in the timeline."""
        event = incidents.fact_set(name, value)
        facts = replace(self._facts[service], **{name: value})
        self.record(event, service=service, actor=actor)
        self._facts[service] = facts
        return facts

    # -- the guided incident (runbook: decision framework, escalation, messages, checklist) --

    def _sync_if_written_elsewhere(self) -> None:
        """Rebuild the cached incidents when another connection (another console,
        a headless run) wrote to the store since the last look. This session's
        own writes are folded in as they are made (`_apply`, `reload_incident`),
        so a quiet store costs one PRAGMA per cycle, not a read per service."""
        version = _data_version(self.store)
        if version is not None and version == self._store_version:
            return
        self._store_version = version
        for name in self.services:
            self._sync_state(name)

    def _sync_state(self, service: str) -> incidents.IncidentState | None:
        """Rebuild `service`'s open incident from the store (None when none is open)."""
        incident_id = self.store.open_incident_for(service)
        with self._state_lock:
            if incident_id is None:
                self._states.pop(service, None)
                self._before.pop(service, None)
                self._facts[service] = Facts()
                return None
            events = self.store.events(incident_id, newest_first=False)
            state = incidents.rebuild(incident_id, events)
            self._states[service] = state
            self._facts[service] = state.facts
            self._before.pop(service, None)
            for event in events:
                self._note_before(service, event)
            return state

    def _note_before(self, service: str, event: Event) -> None:
        """Keep the metrics of the incident's first mitigation (see `metrics_before`)."""
        if event.kind in (incidents.ROLLBACK_STARTED, incidents.WRITES_FROZEN) and service not in self._before:
            before = incidents.payload(event).get("before")
            if before:
                self._before[service] = before

    def _apply(self, service: str, incident_id: str, event: Event) -> None:
        """Fold one stored event into the cached incident state."""
        with self._state_lock:
            state = self._states.get(service)
            if state is None or state.id != incident_id:
                self._sync_state(service)
                return
            state = incidents.apply(state, event)
            self._states[service] = state
            self._facts[service] = state.facts
            self._note_before(service, event)

    def reload_incident(self, service: str) -> incidents.IncidentState | None:
        """Re-read the service's open incident from the store (after writes made around this
        session), and record the checklist ticks that follow from it (an export, a message)."""
        state = self._sync_state(service)
        self._record_checklist(service, self.clock.now())
        return state

    def incident_state(self, service: str) -> incidents.IncidentState | None:
        """The open incident of `service` as its timeline says (None when none is open)."""
        with self._state_lock:
            return self._states.get(service)

    def metrics_now(self, service: str) -> dict:
        """The last refresh's error rate and p95 of `service`, as stored with an event."""
        view = self._views.get(service)
        if view is None:
            return {}
        metrics = view.snapshot.metrics
        values = {"error_rate": metrics.error_rate, "latency_p95_ms": metrics.latency_p95_ms}
        return {k: v for k, v in values.items() if v is not None}

    def metrics_before(self, service: str) -> Metrics | None:
        """The metrics before the incident's first mitigation (writes frozen, or the
        rollback started): the bad version serving, not a service already scaled to 0."""
        before = self._before.get(service)
        return Metrics(**before) if before else None

    # investigation: the runbook's "Investigate 5 min, then decide"

    def investigate(self, service: str) -> datetime:
        """Start the investigation countdown (a no-op if one runs); returns its deadline."""
        started = self.facts(service).investigation_started_at
        if started is None:
            started = self.clock.now()
            self.declare(service, "investigation_started_at", started)
        return started + self.thresholds.investigate_window

    def investigation_deadline(self, service: str) -> datetime | None:
        """When the running investigation must end in a decision (None when none runs)."""
        started = self.facts(service).investigation_started_at
        return started + self.thresholds.investigate_window if started else None

    def end_investigation(self, service: str, why: str, actor: str | None = None) -> None:
        """Stop the countdown, saying why (a decision was taken, or a worse signal interrupted it)."""
        if self.facts(service).investigation_started_at is None:
            return
        self.record(incidents.note(f"Investigation ended: {why}"), service=service, actor=actor)
        self.declare(service, "investigation_started_at", None, actor=actor)

    def choose(self, service: str, choice: str, reason: str) -> Event:
        """Record an operator's decision with its reason: one of CHOICES. Keeping
        on investigating restarts the countdown; fix forward, hotfix and wait end it."""
        if choice not in CHOICES:
            raise ValueError(f"{choice!r} is not a decision the console knows; use one of {', '.join(CHOICES)}.")
        reason = reason.strip()
        if not reason:
            raise ValueError(f"{CHOICES[choice]} needs a reason: say why, it goes in the timeline and the RCA.")
        event = self.record(
            incidents.NewEvent(incidents.NOTE, f"Decision: {CHOICES[choice]} (reason: {reason})",
                               {"choice": choice, "reason": reason}),
            service=service,
        )
        if choice == "keep_investigating":
            # A fresh window from now: the countdown starts again.
            self.declare(service, "investigation_started_at", self.clock.now())
        elif choice != "rollback" and self.facts(service).investigation_started_at is not None:
            self.declare(service, "investigation_started_at", None)
        return event

    # escalation: the runbook's Rollback Escalation

    def set_roles(self, service: str, roles: dict[str, str]) -> None:
        """Record who holds which incident role (incident.ROLES); every console
        reading the store shows them."""
        for role, who in roles.items():
            self.record(incidents.role_set(role, who), service=service)

    def escalation(self, service: str, now: datetime | None = None) -> Escalation:
        """The level the incident is at, why, who to contact and when it rises by time alone."""
        now = now or self.clock.now()
        state = self.incident_state(service)
        if state is None:
            return Escalation(1, incidents.ESCALATION_ROLES[1], "No incident open", None,
                              tuple(self.config.escalation.contacts.get(1, ())))
        level, why, next_at = self._escalation_level(state, now)
        if state.escalated_to > level:
            level, why = state.escalated_to, f"Escalated earlier to level {state.escalated_to}"
        return Escalation(level, incidents.ESCALATION_ROLES[level], why, next_at,
                          tuple(self.config.escalation.contacts.get(level, ())))

    def _escalation_level(self, state: incidents.IncidentState, now: datetime) -> tuple[int, str, datetime | None]:
        """The runbook's escalation, raised to level 2 when a GitOps owner the
        console paused stays paused past `gitops.max_paused_hours`."""
        level, why, next_at = incidents.escalation_level(state, now, self.thresholds.customer_impact_escalation)
        resumed = {m.item for m in state.checklist if m.ticked}
        overdue = gitops.overdue_pause(state.paused_owners, resumed, now, self._max_paused)
        if overdue and level < 2:
            return 2, overdue, next_at
        if level < 2:
            # A paused owner raises the level by time alone too.
            due = gitops.pause_deadline(state.paused_owners, resumed, self._max_paused)
            if due is not None and (next_at is None or due < next_at):
                next_at = due
        return level, why, next_at

    def _escalate(self, service: str, now: datetime) -> None:
        state = self.incident_state(service)
        if state is None:
            return
        level, why, _ = self._escalation_level(state, now)
        if level > state.escalated_to:
            self.record(incidents.escalated(level, why), service=service, actor="console")

    # the post-rollback checklist

    @property
    def checklist_definition(self) -> Checklist:
        return self.config.incident.post_rollback_checklist()

    def checklist(self, service: str, now: datetime | None = None) -> ChecklistStatus | None:
        """Every checklist item now (None when no incident is open); pure, records nothing."""
        state = self.incident_state(service)
        if state is None:
            return None
        view = self._views.get(service)
        seen = Observations(
            health=view.snapshot.health if view else None,
            metrics=view.snapshot.metrics if view else None,
            before=self.metrics_before(service),
        )
        return evaluate_checklist(state, now or self.clock.now(), seen, self.checklist_for(service), self.thresholds)

    def checklist_for(self, service: str) -> Checklist:
        """The checklist of `service`'s incident: the configured one, plus the
        items a paused GitOps owner adds (`console.gitops.with_pauses`)."""
        state = self.incident_state(service)
        pauses = state.paused_owners if state is not None else ()
        return gitops.with_pauses(self.checklist_definition, pauses, self._max_paused)

    @property
    def _max_paused(self) -> timedelta:
        return timedelta(hours=self.config.gitops.max_paused_hours)

    def _record_checklist(self, service: str, now: datetime) -> None:
        """Record the ticks the console can make itself (actor "console", with why)."""
        status = self.checklist(service, now)
        if status is None:
            return
        for event in status.to_record():
            self.record(event, service=service, actor="console")

    def toggle_checklist(self, service: str, item_id: str) -> bool:
        """Tick an item, or untick it when it is done; returns whether it is done now."""
        status = self.checklist(service)
        if status is None:
            self.incident_id(service)
            status = self.checklist(service)
        done = status.item(item_id).done if status is not None else False
        checklist = self.checklist_for(service)
        event = untick(checklist, item_id) if done else tick(checklist, item_id)
        self.record(event, service=service)
        return not done

    # messages: the runbook's Communication During Rollback

    def ticket(self, service: str) -> str:
        """The incident ticket named in messages: the incident's own id, the one
        the export, the store and the timeline use (one id everywhere)."""
        return self.incident_id(service)

    def compose_message(self, service: str, kind: MessageKind, plan: RollbackPlan | None = None) -> Message:
        """The runbook's message `kind` filled from the incident and the latest signals."""
        state = self.incident_state(service) or incidents.new_state(self.incident_id(service), service, self.clock.now())
        view = self._views.get(service)
        now = self.clock.now()
        if kind is MessageKind.ROLLBACK_IN_PROGRESS:
            before = self.metrics_before(service) or (view.snapshot.metrics if view else None)
            eta = timedelta(minutes=self.config.incident.message_eta_minutes)
            return self._marked(rollback_in_progress(state, plan, self.operator, now, before=before, eta=eta,
                                                     likely=_likely_rollback(view)))
        if kind is MessageKind.ROLLBACK_COMPLETE:
            finished = state.rollback.finished_at
            return self._marked(rollback_complete(
                state, self.metrics_before(service), view.snapshot.metrics if view else None,
                view.snapshot.health if view else None, now, ticket=self.ticket(service),
                settles_at=finished + self.thresholds.rollback_settle if finished else None,
            ))
        metrics = view.snapshot.metrics if view else None
        current = view.snapshot.current_revision if view else None
        version = ", ".join(current.versions) if current is not None else None
        last = state.decision
        reason = "; ".join(last.reasons[:2]) if last and last.reasons else "see the incident timeline"
        if kind is MessageKind.FIX_FORWARD:
            return self._marked(comms.fix_forward(state, self.operator, now, reason=reason, version=version,
                                                  metrics=metrics))
        if kind is MessageKind.WAITING_EXTERNAL:
            return self._marked(comms.waiting_external(state, self.operator, now, reason=reason, version=version,
                                                       metrics=metrics))
        if kind is MessageKind.ESCALATION:
            level = self.escalation(service, now)
            return self._marked(comms.escalation(state, self.operator, now, level=level.level, role=level.role,
                                                 why=level.why, contacts=level.contacts))
        if kind is MessageKind.STATUS_UPDATE:
            decision = view.decision.headline if view else (last.action.headline if last else "unknown")
            every = self.config.incident.status_update_minutes
            return self._marked(comms.status_update(state, self.operator, now, decision=decision, metrics=metrics,
                                                    next_update=timedelta(minutes=every) if every else None))
        raise ValueError(f"{kind.label} is not one of the console's messages.")

    def _marked(self, message: Message) -> Message:
        """In a drill, the message marked as one (comms.drill_marked)."""
        return drill_marked(message) if self.drill else message

    @property
    def slack_channel(self) -> str:
        return self.config.slack.channel

    def _notifier(self) -> SlackNotifier | None:
        url = self.config.slack.webhook_url()
        if url is None:
            return None
        from console.slack import SlackNotifier  # httpx is imported when a message is sent, not at start-up

        return SlackNotifier(url, timeout=self.config.slack.timeout, retries=self.config.slack.retries)

    def slack_problem(self) -> str | None:
        """Why messages cannot be posted to Slack, as a sentence (None when they can)."""
        env = self.config.slack.webhook_url_env
        if env is None:
            return ("Slack is not configured (slack.webhook_url_env in the config): copy the message "
                    "and post it by hand.")
        if self.config.slack.webhook_url() is None:
            return (f"The environment variable {env} that holds the Slack webhook URL is not set: "
                    "export it and restart, or copy the message and post it by hand.")
        return None

    def send_message(self, service: str, kind: MessageKind, text: str | None = None,
                     plan: RollbackPlan | None = None) -> tuple[OutboxEntry | None, SendResult]:
        """Post a message to Slack: the composed one, or the operator's edit of it
        (`text`, Markdown). Kept in the outbox first, so a failed post is retried
        later and never lost. Never raises for Slack's failures."""
        message = self.compose_message(service, kind, plan)
        if text is not None and text.strip() != message.text.strip():
            message = Message(kind=kind, title=message.title, text=markdown_to_mrkdwn(text))
        message = self._marked(message)
        if kind is MessageKind.ROLLBACK_COMPLETE:
            after = self.metrics_now(service)
            if after:
                self.record(incidents.NewEvent(incidents.NOTE, "Metrics after the rollback: " + _metric_words(after),
                                               {"metrics_after": after}), service=service, actor="console")
        from console.slack import SendResult, deliver

        notifier = self._notifier()
        if notifier is None:
            return None, SendResult(ok=False, error=self.slack_problem())
        incident_id = self.incident_id(service)
        with self._slack_lock:  # a resend running meanwhile must not post this entry too
            entry, result = deliver(self.store, notifier, incident_id, message, self.clock, actor=self.operator)
        self.reload_incident(service)  # "Team notified" is recorded before anyone sees it ticked
        return entry, result

    def pending_messages(self, service: str) -> list[OutboxEntry]:
        """Messages of the open incident not sent yet (failed ones with their error)."""
        incident_id = self.store.open_incident_for(service)
        return self.store.outbox_pending(incident_id) if incident_id else []

    def resend_pending(self, service: str) -> list[tuple[OutboxEntry, SendResult]]:
        """Try the open incident's unsent messages again, oldest first."""
        from console.slack import resend_pending

        notifier = self._notifier()
        incident_id = self.store.open_incident_for(service)
        if notifier is None or incident_id is None:
            return []
        # One resend at a time (the message screen's and the app's periodic one):
        # the second reads the outbox after the first and never posts an entry twice.
        with self._slack_lock:
            results = resend_pending(self.store, notifier, self.clock, incident_id, actor="console")
        if results:
            self.reload_incident(service)
        return results

    # a rollback that was in flight when the console stopped

    def rollback_in_flight(self, service: str) -> bool:
        """True when the open incident's rollback started and never ended (a crash mid-rollback)."""
        state = self.incident_state(service)
        return state is not None and state.rollback.status is incidents.RollbackStatus.IN_PROGRESS

    def current_versions(self, service: str) -> tuple[str, ...]:
        """The versions the platform runs now (its current revision's image tags)."""
        current = next((r for r in self.platform(service).history() if r.current), None)
        return current.versions if current else ()

    def abandon_unsent_rollback(self, service: str) -> str | None:
        """End the rollback in flight that never reached the platform (the console
        stopped between recording its start and sending the change): recorded as
        failed, so it can be planned again; the sentence saying so. None when no
        rollback is in flight or the platform runs its target (it was sent: watch
        it, never issue it again). PlatformError when the platform cannot be read."""
        state = self.incident_state(service)
        if state is None or state.rollback.status is not incidents.RollbackStatus.IN_PROGRESS:
            return None
        target = state.rollback.to_versions
        current = self.current_versions(service)
        if not target or current == target:
            return None
        error = (f"the console stopped before the rollback reached the platform ({service} still runs "
                 f"{', '.join(current) or 'an unknown version'})")
        self.record(incidents.rollback_failed(error), service=service, actor="console")
        return error

    def resume_rollback(self, service: str, timeout: float | None = None) -> Iterator[Progress]:
        """Watch the rollback a crashed console left in flight, without issuing it
        again: follow the rollout on the platform and record its progress and end.
        When the platform never got the change (the crash came first), the
        rollback is recorded as failed so it can be planned again. `timeout`
        (seconds) defaults to the config's `rollout_timeout`."""
        timeout = self._rollout_timeout(timeout)
        state = self.incident_state(service)
        if state is None or state.rollback.status is not incidents.RollbackStatus.IN_PROGRESS:
            return
        rb = state.rollback
        self.note(f"{service}: resuming the watch of the rollback to {rb.to_label} "
                  "that was in flight when the console stopped (not issued again)", service=service, actor="console")
        platform = self.platform(service)
        target = rb.to_versions
        try:
            unsent = self.abandon_unsent_rollback(service)
            if unsent is not None:
                yield Progress(message=f"{unsent}; plan it again", at=self.clock.now(), failed=True)
                return
            last = None
            progresses = platform.follow(timeout=timeout) if isinstance(platform, Followed) else iter(
                [Progress(message="rollout state read from the platform", at=self.clock.now(), done=True)])
            for progress in progresses:
                if progress.message != last:
                    self.record(incidents.rollback_progress(progress), service=service, actor="console")
                    last = progress.message
                if progress.failed:
                    self.record(incidents.rollback_failed(progress.message), service=service, actor="console")
                elif progress.done:
                    to = ", ".join(target) or revision_label(rb.to_revision, rb.to_colour)
                    self.record(incidents.rollback_completed(f"Rollback complete: {service} on {to}"),
                                service=service, actor="console")
                yield progress
        except PlatformError as err:
            self.record(incidents.rollback_failed(str(err)), service=service, actor="console")
            raise

    # -- the database (runbook: Database Rollback Considerations) -------------

    def database(self, service: str) -> Database:
        """The service's database; DatabaseError when none is configured."""
        try:
            return self._databases[service]
        except KeyError:
            from console.database import DatabaseError

            raise DatabaseError(
                f"No database is configured for {service}: add a database: section to it in the config."
            ) from None

    def migrations(self, service: str) -> MigrationState | None:
        """The migration state read at the last refresh (None before, or without a migration status source)."""
        return self._migrations.get(service)

    def migration_facts(self, service: str) -> MigrationFacts:
        """What the last refresh detected about migrations since the deploy."""
        from console.procedures import MigrationFacts

        return self._detected.get(service, MigrationFacts())

    async def _with_migrations(self, snapshot: Snapshot) -> Snapshot:
        """Read the migration state and turn a migration applied since the deploy
        into facts (recorded when what is detected changes); a failure to read it
        becomes one of the snapshot's errors."""
        db = self._databases.get(snapshot.service)
        if db is None or db.config.migration_status is None:
            return snapshot
        from console.procedures import MigrationFacts, migration_facts, migrations_since_deploy

        state = await asyncio.to_thread(db.migration_state, snapshot.taken_at)
        self._migrations[snapshot.service] = state
        if state.error:
            return replace(snapshot, errors=snapshot.errors + (state.error,))
        detected = migration_facts(migrations_since_deploy(state.migrations, snapshot.history))
        if detected != self._detected.get(snapshot.service, MigrationFacts()):
            facts = self._facts[snapshot.service]
            for name, value in detected.items():
                if getattr(facts, name) != value:
                    self.record(incidents.fact_set(name, value), service=snapshot.service, actor="console")
            self._facts[snapshot.service] = replace(facts, **dict(detected.items()))
            self._detected[snapshot.service] = detected
        return snapshot

    def events(self, service: str) -> list[Event]:
        """The timeline of the service's open incident, oldest first (opened now if there is none)."""
        return self.store.events(self.incident_id(service), newest_first=False)

    def corruption_response(self, service: str) -> CorruptionResponse:
        """The runbook's Data Corruption Response for `service`, resumed from its timeline."""
        self.platform(service)
        from console.runbook import CorruptionResponse

        return CorruptionResponse(self, service)

    def migration_rollback(self, service: str, to_revision: int | ColourRevision | None = None,
                           ask: Ask | None = None) -> MigrationRollback:
        """The reversible-migration plan (application, migration, integrity check), resumed from its timeline.
        `ask`: the operator's ask as the gate saw it (an override included); the gate is asked again before
        the application step."""
        self.platform(service)
        from console.runbook import MigrationRollback

        return MigrationRollback(self, service, to_revision, ask)

    def rollback_check(self, service: str, to_revision: int | ColourRevision | None = None):
        """Whether a rollback to `to_revision` (default: the previous revision)
        crosses a migration that cannot be undone, with the runbook's three
        options when it does (a `procedures.RollbackCheck`; from the last refresh)."""
        from console.runbook import check_rollback

        return check_rollback(self, service, to_revision)

    def freeze_writes(self, service: str):
        """Step 1 of the corruption response: scale to 0, remembering the replica count."""
        return self.corruption_response(service).run("freeze")

    def resume_writes(self, service: str):
        """Step 6 of the corruption response: scale back to the remembered replica count."""
        return self.corruption_response(service).run("resume")


def _likely_rollback(view: ServiceView | None) -> tuple[str, str] | None:
    """The from and to of a plain rollback, read off the last refresh's history
    (the Rollback in Progress message offered before any plan: not "unknown")."""
    from console.model import versions_label
    from console.procedures import rollback_target

    history = view.snapshot.history if view is not None else ()
    current = next((r for r in history if r.current), None)
    if current is None:
        return None
    target = next((r for r in history if r.rollback_target), None) or rollback_target(history)
    if target is None:
        return None
    return (versions_label(current.versions, current.number, current.colour),
            versions_label(target.versions, target.number, target.colour))
