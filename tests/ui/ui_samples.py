"""Deterministic data for UI snapshots: the bad-deploy moment, frozen.

`RecordedSession` replays fixed `ServiceView`s through the whole interface the
app uses on `console.session.Session`, so a snapshot shows exactly the same
screen on every machine: no incident is open, and what the recording cannot
do answers with neutral values (nothing pending, no routing, no lease, no
migration) or a sentence. It is used for pixels only; behaviour tests
(test_app.py, test_app_keys.py, ...) run the real Session against the drill
world.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Iterator

from dataclasses import replace

from console import incident
from console.checklist import DEFAULT_CHECKLIST, Checklist
from console.clock import FrozenClock
from console.comms import Message, MessageKind
from console.database import Backup, DatabaseError
from console.decision import Thresholds, evaluate
from console.gate import Ask, GatePolicy, Verdict, decide
from console.provenance import Provenance
from console.platforms.base import PlatformError
from console import procedures
from console.procedures import MigrationFacts, ProcedureError, ProcedureState, RollbackCheck, StepStatus
from console.runbook import StepPreview
from console.session import Escalation
from console.slack import SendResult
from console.model import (
    ApiCall,
    Event,
    Facts,
    Health,
    Metrics,
    Point,
    Progress,
    Revision,
    RollbackPlan,
    ServiceView,
    Signals,
    Snapshot,
)

NOW = datetime(2024, 1, 17, 14, 45, 0, tzinfo=timezone.utc)
IMAGE = "registry.example.com/order-service:{}"


def _history(now: datetime) -> tuple[Revision, ...]:
    return (
        Revision(1, (IMAGE.format("1.2.1"),), "deploy 1.2.1", now - timedelta(days=9), ref="order-service-6b7c9d8f51"),
        Revision(2, (IMAGE.format("1.2.2"),), "deploy 1.2.2", now - timedelta(days=2, hours=3), ref="order-service-7d4f8b9c62"),
        Revision(3, (IMAGE.format("1.2.3"),), "deploy 1.2.3", now - timedelta(minutes=2), current=True, ref="order-service-5f6d7c8b73"),
    )


def bad_deploy_snapshot(now: datetime = NOW) -> Snapshot:
    """order-service two minutes after 1.2.3: 8 % errors, p95 ~2000 ms."""
    error_points = tuple(
        Point(now - timedelta(minutes=29 - i), 0.001 if i < 27 else (0.05 if i == 27 else 0.08)) for i in range(30)
    )
    latency_points = tuple(
        Point(now - timedelta(minutes=29 - i), 250.0 + (i % 3) * 4 if i < 27 else 2000.0) for i in range(30)
    )
    return Snapshot(
        service="order-service",
        taken_at=now,
        metrics=Metrics(
            error_rate=0.08,
            latency_p95_ms=2000.0,
            latency_p95_before_ms=250.0,
            request_rate=120.0,
            error_rate_history=error_points,
            latency_history=latency_points,
            sampled_at=now,
        ),
        health=Health(
            desired=3, ready=3, updated=3, available=3,
            endpoint_ok=True, endpoint_status="healthy", endpoint_latency_ms=12.0, checked_at=now,
        ),
        history=_history(now),
        signals=Signals(latency_spike=True, latency_factor=8.0),
    )


def healthy_snapshot(service: str, now: datetime = NOW) -> Snapshot:
    """A quiet service next to the burning one."""
    points = tuple(Point(now - timedelta(minutes=29 - i), 0.002) for i in range(30))
    return Snapshot(
        service=service,
        taken_at=now,
        metrics=Metrics(error_rate=0.002, latency_p95_ms=180.0, latency_p95_before_ms=175.0,
                        error_rate_history=points, sampled_at=now),
        health=Health(desired=2, ready=2, updated=2, available=2, endpoint_ok=True,
                      endpoint_status="healthy", endpoint_latency_ms=8.0, checked_at=now),
        history=(Revision(7, (f"registry.example.com/{service}:4.0.1",), "deploy 4.0.1",
                          now - timedelta(days=1), current=True),),
    )


def sample_views(now: datetime = NOW, services: tuple[str, ...] = ("order-service",)) -> list[ServiceView]:
    """Views as Session.refresh returns them, decided by the real decision framework."""
    views = []
    for service in services:
        snapshot = bad_deploy_snapshot(now) if service == "order-service" else healthy_snapshot(service, now)
        views.append(ServiceView(snapshot, evaluate(snapshot, Facts(), now, Thresholds())))
    return views


def sample_plan() -> RollbackPlan:
    """What the Kubernetes platform plans for order-service 3 -> 2."""
    body = (
        '[{"op": "test", "path": "/metadata/resourceVersion", "value": "4711"},\n'
        ' {"op": "replace", "path": "/spec/template", "value": {"...": "revision 2 template"}}]'
    )
    return RollbackPlan(
        service="order-service",
        platform="kubernetes",
        from_revision=3,
        to_revision=2,
        from_images=(IMAGE.format("1.2.3"),),
        to_images=(IMAGE.format("1.2.2"),),
        calls=(ApiCall("PATCH", "/apis/apps/v1/namespaces/shop/deployments/order-service", body),),
        resource_version="4711",
        summary="kubectl rollout undo deployment/order-service --to-revision=2",
    )


class RecordedPlatform:
    """What the recording says about the platform: its kind, nothing more
    (the revision and pods screens then say what it cannot show)."""

    platform = "kubernetes"

    def __init__(self, name: str) -> None:
        self.name = name


class RecordedSession:
    """Replays fixed views with a frozen clock (see the module docstring)."""

    # No incident is ever open in a recording, so nothing reaches a store (export stops before it).
    store = None
    slack_channel = "#incidents"
    # Not a drill: no DRILL mark, no story, no debrief.
    drill = None
    drill_link = None
    # The recording is replayed in this process.
    refreshes_elsewhere = False
    first_refresh = None  # nothing runs before the UI

    def __init__(self, services: tuple[str, ...] = ("order-service",), now: datetime = NOW) -> None:
        self.clock = FrozenClock(now)
        self.services = services
        self.refresh_interval = 3600.0  # one refresh: the screen must not change under the camera
        self.thresholds = Thresholds()
        self.operator = "oncall@drill"
        self._views = sample_views(now, services)
        self._events = [
            Event(now - timedelta(seconds=5), incident.DECISION,
                  "order-service: ROLLBACK NOW (Error rate > 5%: 8.0 %; Latency spike: p95 2000 ms, 8.0× the 250 ms before)",
                  data=(("action", '"rollback_now"'),)),
            Event(now - timedelta(minutes=2), incident.INCIDENT_OPENED, "order-service: deploy gone bad"),
        ]
        self._facts: dict[str, Facts] = {}
        self.closed = False

    async def refresh(self, only: str | None = None) -> list[ServiceView]:
        return list(self._views)

    def refresh_blocking(self, only: str | None = None) -> list[ServiceView]:
        return list(self._views)

    def platform(self, service: str) -> RecordedPlatform:
        return RecordedPlatform(service)

    def timeline(self, limit: int = 200) -> list[Event]:
        return self._events[:limit]

    def record(self, event, service: str | None = None, actor: str | None = None) -> Event:
        stored = Event(self.clock.now(), event.kind, event.text, actor or self.operator)
        self._events.insert(0, stored)
        return stored

    def note(self, text: str, service: str | None = None, actor: str | None = None) -> Event:
        return self.record(incident.note(text), service=service, actor=actor)

    # The guided incident, as a session with no incident open yet sees it.

    def incident_state(self, service: str):
        return None

    def facts(self, service: str) -> Facts:
        return self._facts.get(service, Facts())

    def declare(self, service: str, name: str, value: object, actor: str | None = None) -> Facts:
        facts = self._facts[service] = replace(self.facts(service), **{name: value})
        self.record(incident.fact_set(name, value), service=service, actor=actor)
        return facts

    def investigate(self, service: str):
        return self.declare(service, "investigation_started_at", self.clock.now()).investigation_started_at

    def end_investigation(self, service: str, why: str, actor: str | None = None) -> None:
        self._facts.pop(service, None)

    def choose(self, service: str, choice: str, reason: str) -> Event:
        return self.record(incident.note(f"Decision: {choice} (reason: {reason})"), service=service)

    def escalation(self, service: str, now=None) -> Escalation:
        return Escalation(1, incident.ESCALATION_ROLES[1], "Alert", None, ("@oncall",))

    def investigation_deadline(self, service: str):
        return None

    def rollback_in_flight(self, service: str) -> bool:
        return False

    def resume_rollback(self, service: str, timeout: float | None = None) -> Iterator[Progress]:
        return iter(())

    def pending_messages(self, service: str) -> list:
        return []

    def checklist(self, service: str, now=None):
        return None

    @property
    def checklist_definition(self) -> Checklist:
        return DEFAULT_CHECKLIST

    def toggle_checklist(self, service: str, item_id: str) -> bool:
        return False

    def reload_incident(self, service: str) -> None:
        return None

    def slack_problem(self) -> str | None:
        return "Slack is not configured in this recording."

    def compose_message(self, service: str, kind: MessageKind, plan: RollbackPlan | None = None) -> Message:
        return Message(kind=kind, title=kind.label, text=f"## {kind.label}\n\n**Service:** {service}")

    def send_message(self, service: str, kind: MessageKind, text: str | None = None, plan=None):
        return None, SendResult(ok=False, error=self.slack_problem())

    def resend_pending(self, service: str) -> list:
        return []

    routing = None  # a blue-green or canary service's traffic switch (platforms.base.Routing), when recorded

    def surroundings(self, service: str):
        from console.platforms.base import Surroundings

        return Surroundings(routing=self.routing)

    def lease_holder(self, service: str):
        return None

    def rollback_check(self, service: str, to_revision: int | None = None) -> RollbackCheck:
        return RollbackCheck(blocked=False)

    gate_policy = GatePolicy()

    def cluster_rollback(self, service: str):
        return None  # the recording keeps no rollback records

    def gate(self, plan: RollbackPlan, ask: Ask) -> Verdict:
        """The real (pure) gate over the recorded decision; the recording keeps no rollback records."""
        view = next(v for v in self._views if v.snapshot.service == plan.service)
        return decide(plan.service, view.decision, plan, Provenance(), ask, self.clock.now(), policy=self.gate_policy)

    def record_verdict(self, plan: RollbackPlan, verdict: Verdict, ask: Ask) -> None:
        self.note(f"{plan.service}: rollback {verdict.outcome.value}: {verdict.sentence}", service=plan.service)

    def migration_facts(self, service: str) -> MigrationFacts:
        return MigrationFacts()

    def _no_database(self, service: str, *args):
        raise DatabaseError(f"No database is configured for {service} in this recording.")

    corruption_response = migration_rollback = freeze_writes = resume_writes = _no_database

    def plan_as_sent(self, plan: RollbackPlan, reason: str) -> RollbackPlan:
        return plan  # a recording writes no record

    def plan_rollback(self, service: str, to_revision: int | None = None, quick: bool = False) -> RollbackPlan:
        if quick:
            raise PlatformError(f"Quick rollback is the Docker Compose procedure; {service} runs on kubernetes.")
        return sample_plan()

    def execute(self, plan: RollbackPlan, reason: str = "", timeout: float | None = None) -> Iterator[Progress]:
        yield Progress("deployment \"order-service\" successfully rolled out", self.clock.now(), done=True)

    async def aclose(self) -> None:
        self.closed = True


# -- the guided procedures, recorded -----------------------------------------------------------

SCALE_PATH = "/apis/apps/v1/namespaces/shop/deployments/order-service/scale"


def scale_call(replicas: int) -> ApiCall:
    """The scale request the Kubernetes platform makes to freeze or resume writes."""
    return ApiCall("PATCH", SCALE_PATH, f'{{"spec": {{"replicas": {replicas}}}}}')


def corruption_state(now: datetime = NOW) -> ProcedureState:
    """The corruption response one minute after writes were frozen (3 replicas remembered): step 2 is next."""
    state = procedures.new_state(procedures.DATA_CORRUPTION)
    freeze = replace(state.steps[0], status=StepStatus.DONE, at=now - timedelta(minutes=1), actor="oncall@drill",
                     commands=(f"PATCH {SCALE_PATH}",), result="scaled order-service 3 -> 0 replicas",
                     output="deployment.apps/order-service scaled\n0/0 pods running")
    return replace(state, steps=(freeze,) + state.steps[1:], frozen_replicas=3)


class RecordedProcedure:
    """A guided procedure's runner as the procedure screens read it: a fixed
    state and, for each step, the calls and question `console.runbook` would
    show. Nothing runs: run and skip refuse with a sentence."""

    def __init__(self, state: ProcedureState, calls: dict[str, tuple[ApiCall, ...]],
                 questions: dict[str, str], backups: tuple[Backup, ...] = ()) -> None:
        self._state = state
        self._calls = calls
        self._questions = questions
        self._backups = list(backups)

    @property
    def title(self) -> str:
        return self._state.title

    def state(self) -> ProcedureState:
        return self._state

    def preview(self, step_id: str, choice: str | None = None) -> StepPreview:
        step = self._state.step(step_id)
        before = self._state.blocked_by(step_id)
        blocked = f"Do {before.label} first (or skip it with a reason)." if before else None
        return StepPreview(step, self._calls.get(step_id, ()), self._questions.get(step_id, ""), blocked)

    def backups(self) -> list[Backup]:
        return list(self._backups)

    def run(self, step_id: str, choice: str | None = None, on_progress=None):
        raise ProcedureError("This recording runs nothing.")

    def skip(self, step_id: str, reason: str):
        raise ProcedureError("This recording skips nothing.")


def corruption_runner(now: datetime = NOW) -> RecordedProcedure:
    """The data corruption response for order-service, step 2 (assess) highlighted."""
    psql = "psql --no-psqlrc -h 127.0.0.1 -U shop shop -c"
    return RecordedProcedure(
        corruption_state(now),
        {"freeze": (scale_call(0),),
         "assess": (ApiCall("exec", f'{psql} "SELECT COUNT(*) FROM orders WHERE corrupted_flag"'),),
         "verify": (ApiCall("exec", "npm run db:verify"),),
         "resume": (scale_call(3),)},
        {"freeze": "Scale order-service to 0 replicas? Every write stops until step 6 resumes the service "
                   "at its current replica count.",
         "resume": "Scale order-service back to 3 replicas? Writes resume."},
        backups=(Backup("/srv/backups/backup_before_deploy.dump", 12_634, now - timedelta(minutes=5)),),
    )


def migration_runner() -> RecordedProcedure:
    """The reversible-migration plan for order-service: step 1 (the application) next."""
    plan = sample_plan()
    return RecordedProcedure(
        procedures.new_state(procedures.MIGRATION_ROLLBACK),
        {"app_rollback": plan.calls,
         "migration_rollback": (ApiCall("exec", "npm run db:migrate:rollback"),),
         "integrity_check": (ApiCall("exec", "npm run db:verify"),)},
        {"app_rollback": "Roll back the application order-service from 1.2.3 (revision 3) to 1.2.2 (revision 2)? "
                         "The migration is rolled back next.",
         "migration_rollback": "Roll back 0042_split_address?"},
    )


def blocked_check(now: datetime = NOW) -> RollbackCheck:
    """A rollback to revision 2 crossing an irreversible migration; revision 1 is no better,
    a hotfix command is configured, no feature flag."""
    migration = procedures.Migration("0042_split_address", now - timedelta(minutes=3), reversible=False)
    history = _history(now)
    return procedures.check_rollback(history[1], (migration,), {}, history,
                                     hotfix=procedures.Remedy(url="https://runbooks.example.com/order-service/hotfix"))
