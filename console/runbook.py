"""The runbook's guided procedures that drive a session: `CorruptionResponse`
and `MigrationRollback` run the steps of console/procedures.py's state
machines against the service's database (console/database.py, a source) and
its platform, recording every step in the incident timeline before and after
it runs, so the procedure's state is the timeline's and survives a restart.
The application step of the migration plan asks the gate (console/gate.py)
first, like every rollback. `check_rollback` turns the last refresh's
migration state into the gate's migration check."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import replace, dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from console import incident as incidents
from console import procedures
from console.config import CommandOrLink
from console.database import POLL_INTERVAL_SECONDS, Backup, Database, DatabaseError
from console.model import ApiCall, Event, Progress, RollbackPlan
from console.platforms.base import PlatformError, Scalable, lacks
from console.procedures import (
    DATA_CORRUPTION,
    MIGRATION_ROLLBACK,
    ProcedureError,
    ProcedureState,
    StepState,
)

if TYPE_CHECKING:
    from console.session import Session


# --- running the procedures ------------------------------------------------------------------


@dataclass(frozen=True)
class StepPreview:
    """A step as it is shown before it runs."""

    step: StepState
    calls: tuple[ApiCall, ...]
    # The question to confirm ("" for a step that changes nothing).
    confirmation: str
    # Why it cannot run now, when it cannot.
    blocked: str | None = None


@dataclass(frozen=True)
class StepOutcome:
    """What running (or skipping) a step did, and where the procedure is now."""

    step: str
    ok: bool
    summary: str
    output: str
    state: ProcedureState


class _Runner:
    """What both procedures share: state from the timeline, recording, skipping."""

    procedure: str

    def __init__(self, session: Session, service: str) -> None:
        self.session = session
        self.service = service
        self._lock = threading.Lock()

    @property
    def title(self) -> str:
        return procedures.TITLES[self.procedure]

    def _events(self) -> list[Event]:
        return self.session.events(self.service)

    def state(self) -> ProcedureState:
        """The procedure's state, folded from the incident timeline."""
        return procedures.fold(self.procedure, self._events())

    def _record(self, event: incidents.NewEvent, actor: str | None = None) -> Event:
        return self.session.record(event, service=self.service, actor=actor)

    def _escalate(self, why: str) -> None:
        incident_id = self.session.incident_id(self.service)
        state = incidents.rebuild(incident_id, self._events())
        if state.escalated_to < procedures.ESCALATION_LEVEL:
            self._record(incidents.escalated(procedures.ESCALATION_LEVEL, why), actor="console")

    def preview(self, step_id: str, choice: str | None = None) -> StepPreview:
        """What the step will do, shown before it runs; changes nothing."""
        state = self.state()
        step = state.step(step_id)
        try:
            procedures.check_run(state, step_id)
            blocked = None
        except ProcedureError as err:
            blocked = str(err)
        try:
            calls, confirmation = self._plan(step, choice)
        except (DatabaseError, PlatformError, ProcedureError) as err:
            return StepPreview(step, (), "", blocked or str(err))
        return StepPreview(step, calls, confirmation, blocked)

    def skip(self, step_id: str, reason: str) -> StepOutcome:
        """Skip a step with a reason (recorded); never silently."""
        with self._lock:
            step = procedures.check_skip(self.state(), step_id, reason)
            self._record(incidents.step_skipped(self.procedure, step_id, step.label, reason))
            self._on_skip(step)
            return StepOutcome(step_id, True, f"skipped: {reason.strip()}", "", self.state())

    def _on_skip(self, step: StepState) -> None:
        """Hook for procedures that escalate when they start."""

    def run(self, step_id: str, choice: str | None = None,
            on_progress: Callable[[str], None] | None = None) -> StepOutcome:
        """Run one step: recorded before it runs, its output recorded after;
        a failure is recorded and leaves the procedure at this step."""
        with self._lock:
            state = self.state()
            step = procedures.check_run(state, step_id)
            calls, _ = self._plan(step, choice)
            self._record(incidents.step_started(self.procedure, step_id, step.label, [c.target for c in calls],
                                                choice or ""))
            self._on_start(step)
            try:
                ok, summary, output = self._execute(step, choice, on_progress or (lambda _: None))
            except (DatabaseError, PlatformError, ProcedureError) as err:
                ok, summary, output = False, str(err), ""
            if ok:
                self._record(incidents.step_done(self.procedure, step_id, step.label, summary, output), actor="console")
            else:
                self._record(incidents.step_failed(self.procedure, step_id, step.label, summary, output),
                             actor="console")
                self._on_failure(step, summary)
            return StepOutcome(step_id, ok, summary, output, self.state())

    def _on_start(self, step: StepState) -> None:
        """Hook: something to record when a step starts."""

    def _on_failure(self, step: StepState, error: str) -> None:
        """Hook: something to record when a step fails."""

    def _plan(self, step: StepState, choice: str | None) -> tuple[tuple[ApiCall, ...], str]:
        raise ProcedureError(f"{self.title} has no step {step.id!r}.")

    def _execute(self, step: StepState, choice: str | None, progress: Callable[[str], None]) -> tuple[bool, str, str]:
        raise ProcedureError(f"{self.title} has no step {step.id!r}.")

    # -- shared steps ------------------------------------------------------

    def _database(self) -> Database:
        return self.session.database(self.service)

    def _verify(self) -> tuple[bool, str, str]:
        verdict = self._database().verify()
        return verdict.ok, verdict.summary, verdict.output


def _scale_call(platform: Any, replicas: int) -> ApiCall:
    if isinstance(platform, Scalable):
        return platform.scale_call(replicas, platform.replicas())
    return ApiCall("scale", f"{platform.name} to {replicas} replicas")


def wait_for_ready(platform: Any, replicas: int, clock: Any, timeout: float) -> int:
    """Wait (on the platform's clock) until `replicas` pods are ready, or none
    are when `replicas` is 0; returns the ready count. Raises PlatformError on timeout."""
    deadline = clock.now() + timedelta(seconds=timeout)
    while True:
        health = platform.health()
        ready = health.ready or 0
        if (replicas == 0 and ready == 0) or (replicas > 0 and ready >= replicas):
            return ready
        if clock.now() >= deadline:
            raise PlatformError(
                f"{platform.name} has {ready} ready pods, not {replicas}, after {timeout:g} s; check the pods "
                f"(`kubectl get pods -l app={platform.name}`) and run the step again."
            )
        time.sleep(POLL_INTERVAL_SECONDS)


class CorruptionResponse(_Runner):
    """The runbook's Data Corruption Response for one service."""

    procedure = DATA_CORRUPTION

    def _on_start(self, step: StepState) -> None:
        # Running the response is declaring the corruption: the decision framework and the escalation follow it.
        if not self.session.facts(self.service).data_corruption:
            self.session.declare(self.service, "data_corruption", True)
        self._escalate("Data issue: data corruption response started")

    def _on_skip(self, step: StepState) -> None:
        self._on_start(step)

    def backups(self) -> list[Backup]:
        """Dumps the restore step can use, newest first."""
        return self._database().backups()

    def _plan(self, step: StepState, choice: str | None) -> tuple[tuple[ApiCall, ...], str]:
        platform = self.session.platform(self.service)
        if step.id == "freeze":
            return (_scale_call(platform, 0),), (
                f"Scale {self.service} to 0 replicas? Every write stops until step 6 resumes the service "
                "at its current replica count."
            )
        if step.id == "resume":
            replicas = self.state().frozen_replicas
            if replicas is None:
                return (), ""
            return (_scale_call(platform, replicas),), f"Scale {self.service} back to {replicas} replicas? Writes resume."
        db = self._database()
        if step.id == "assess":
            if not db.config.assess_sql:
                raise DatabaseError(f"No damage assessment query is configured for {self.service}: set database.assess_sql.")
            return (db.call(db.query_argv(db.config.assess_sql)),), ""
        if step.id == "restore":
            db.require_dsn("restore a backup")
            dump = self._dump(choice)
            return (db.call(db.restore_argv(dump)),), (
                f"Restore {db.describe()} from {dump}? pg_restore --clean drops and recreates every object in "
                "the dump: rows written since that backup are lost."
            )
        if step.id == "fix":
            script = db.config.fix_script
            if not script:
                raise DatabaseError(f"No data fix script is configured for {self.service}: set database.fix_script.")
            db.require_dsn("run the data fix script")
            return (db.call(db.script_argv(script)),), f"Run the data fix script {script} against {db.describe()} (in one transaction)?"
        if step.id == "verify":
            return (db.verify_call(),), ""
        return super()._plan(step, choice)

    def _dump(self, choice: str | None) -> str:
        if not choice:
            raise ProcedureError("Choose the backup to restore (a dump taken before the deploy): `--backup DUMP` "
                                 "(`--list-backups` lists them), or pick one in the console.")
        if not os.path.isfile(choice):
            raise DatabaseError(f"The backup {choice} does not exist or is not a file; choose another one.")
        return choice

    def _execute(self, step: StepState, choice: str | None, progress: Callable[[str], None]) -> tuple[bool, str, str]:
        platform = self.session.platform(self.service)
        clock = self.session.clock
        if step.id == "freeze":
            scale = _scaler(platform)
            before = scale(0)
            remembered = self.state().frozen_replicas
            if remembered is None:
                # Remember the count first: a crash now still knows what to restore.
                frozen = incidents.writes_frozen(before)
                metrics = self.session.metrics_now(self.service)
                if metrics:
                    # The bad version's numbers before the freeze: "was" in the Rollback Complete message.
                    frozen = replace(frozen, data={**frozen.data, "before": metrics})
                self._record(frozen, actor="console")
                remembered = before
            progress(f"Scaled {self.service} to 0 (was {before}); waiting for the pods to stop")
            wait_for_ready(platform, 0, clock, self._database_timeout())
            return True, f"writes stopped: 0 pods ready; {remembered} replicas to restore", ""
        if step.id == "resume":
            replicas = self.state().frozen_replicas
            if replicas is None:
                return True, "writes were not frozen by the console; nothing to scale", ""
            _scaler(platform)(replicas)
            progress(f"Scaled {self.service} to {replicas}; waiting for the pods to be ready")
            ready = wait_for_ready(platform, replicas, clock, self._database_timeout())
            self._record(incidents.writes_resumed(replicas), actor="console")
            return True, f"{ready} of {replicas} pods ready", ""
        db = self._database()
        if step.id == "assess":
            answer = db.query(db.config.assess_sql or "")
            return True, answer.summary(), answer.text
        if step.id == "restore":
            db.require_dsn("restore a backup")
            result = db.run(db.restore_argv(self._dump(choice)), timeout=db.config.restore_timeout)
            if not result.ok:
                return False, f"The restore failed: {result.failure()}", result.output
            return True, f"restored {db.name} from {Path(choice or '').name} in {result.seconds:.1f} s", result.output
        if step.id == "fix":
            db.require_dsn("run the data fix script")
            result = db.run(db.script_argv(db.config.fix_script or ""))
            if not result.ok:
                return False, f"The data fix script failed (nothing was changed): {result.failure()}", result.output
            return True, f"fix script ran in {result.seconds:.1f} s", result.output
        if step.id == "verify":
            return self._verify()
        return super()._execute(step, choice, progress)

    def _database_timeout(self) -> float:
        service = self.session.config.service(self.service)
        return service.database.timeout if service.database else 120.0


def _scaler(platform: Any) -> Callable[[int], int]:
    if not isinstance(platform, Scalable):
        raise PlatformError(f"{lacks(platform, Scalable)[:-1]}: stop writes by hand and skip this step with a reason.")
    return platform.scale


class MigrationRollback(_Runner):
    """The runbook's "When Migration is Reversible": application, then migration, then integrity."""

    procedure = MIGRATION_ROLLBACK

    def __init__(self, session: Session, service: str, to_revision=None, ask=None) -> None:
        super().__init__(session, service)
        self.to_revision = to_revision
        # The operator's ask (a `gate.Ask`, with an override when one was given): the gate is asked again
        # before the application step runs, which may be long after the plan was shown.
        self.ask = ask
        self._planned: RollbackPlan | None = None

    def _on_failure(self, step: StepState, error: str) -> None:
        self._escalate(f"Migration rollback stopped at step {step.label}: {error}")

    def _app_plan(self) -> RollbackPlan:
        if self._planned is None:
            self._planned = self.session.plan_rollback(self.service, self.to_revision)
        return self._planned

    def _plan(self, step: StepState, choice: str | None) -> tuple[tuple[ApiCall, ...], str]:
        if step.id == "app_rollback":
            plan = self._app_plan()
            if plan.skip_reason:
                return (), ""
            frm, to = ", ".join(plan.from_versions), ", ".join(plan.to_versions)
            return plan.calls, (
                f"Roll back the application {self.service} from {frm} ({plan.from_label}) to {to} "
                f"({plan.to_label})? The migration is rolled back next."
            )
        db = self._database()
        if step.id == "migration_rollback":
            if db.config.migration_rollback is None:
                raise DatabaseError(
                    f"No migration rollback command is configured for {self.service}: set database.migration_rollback."
                )
            names = self.session.migration_facts(self.service).migration_name or "the migration"
            return (db.call(db.config.migration_rollback),), f"Roll back {names}?"
        if step.id == "integrity_check":
            return (db.verify_call(),), ""
        return super()._plan(step, choice)

    def _execute(self, step: StepState, choice: str | None, progress: Callable[[str], None]) -> tuple[bool, str, str]:
        if step.id == "app_rollback":
            from console.gate import Ask, Outcome

            plan = self._app_plan()
            self._planned = None  # a retry plans again against the state then
            ask = self.ask or Ask(self.session.operator, self.to_revision)
            verdict = self.session.gate(plan, ask)
            if verdict.outcome is Outcome.NOTHING:
                return True, verdict.sentence, ""
            if verdict.outcome is not Outcome.GO:
                self.session.record_verdict(plan, verdict, ask)
                return False, f"The gate refuses the application rollback: {verdict.sentence}", ""
            last: Progress | None = None
            try:
                for last in self.session.execute(plan, reason="roll back the application before its migration"):
                    progress(last.message)
                    if last.failed:
                        return False, last.message, ""
            except PlatformError as err:
                return False, str(err), ""
            return True, last.message if last else "rolled back", ""
        if step.id == "migration_rollback":
            db = self._database()
            result = db.run(db.config.migration_rollback or [])
            if not result.ok:
                return False, f"The migration rollback failed: {result.failure()}", result.output
            return True, f"migration rolled back in {result.seconds:.1f} s", result.output
        if step.id == "integrity_check":
            return self._verify()
        return super()._execute(step, choice, progress)

    def run_all(self, confirm: Callable[[StepPreview], bool] | None = None,
                out: Callable[[str], None] = lambda _: None) -> StepOutcome | None:
        """Run the remaining steps in order, each shown (and confirmed, when
        `confirm` is given) before it runs; stops at the first failure or refusal.
        Returns the last outcome (None when nothing ran)."""
        outcome = None
        first = True
        while True:
            state = self.state()
            current = state.current
            if current is None:
                if not (first and state.finished):
                    break
                current = state.steps[0]  # a finished plan runs again from the start
            first = False
            preview = self.preview(current.id)
            out(f"Step {current.label}")
            for call in preview.calls:
                out(f"  {call}")
            if preview.blocked:
                out(f"  cannot run: {preview.blocked}")
                return outcome
            if confirm is not None and preview.confirmation and not confirm(preview):
                out("  not confirmed: the plan stops here (run it again to continue).")
                return outcome
            outcome = self.run(current.id, on_progress=lambda line: out(f"  {line}"))
            out(f"  {'done' if outcome.ok else 'FAILED'}: {outcome.summary}")
            for line in outcome.output.splitlines()[-20:]:
                out(f"    {line}")
            if not outcome.ok:
                return outcome
        return outcome


def check_rollback(session: Session, service: str, to_revision=None) -> procedures.RollbackCheck:
    """Would rolling `service` back to `to_revision` (default: the previous
    revision; a number or a blue-green `ColourRevision`) cross a migration that cannot be undone? From the migration state
    and history of the last refresh; not blocked when the service has no
    migration status source (the decision framework's facts still apply).

    Fails closed: when the status source is configured but its state could not
    be read (or was not read yet), the rollback is blocked with the reason, as
    an irreversible migration would be; `--force` (the UI's "roll back anyway")
    is the way past it once the operator has checked."""
    try:
        db = session.database(service).config
    except DatabaseError:
        return procedures.RollbackCheck(False)
    if db.migration_status is None:
        return procedures.RollbackCheck(False)
    view = session.view(service)
    state = session.migrations(service)
    hotfix, feature_flag = remedy(db.hotfix), remedy(db.feature_flag)
    if view is None or state is None:
        return procedures.unknown_state_check(
            f"The migration state of {service} has not been read yet (no refresh has completed)", hotfix, feature_flag)
    if state.error:
        return procedures.unknown_state_check(state.error, hotfix, feature_flag)
    history = view.snapshot.history
    since = procedures.migrations_since_deploy(state.migrations, history)
    return procedures.check_rollback(
        procedures.rollback_target(history, to_revision), since, db.schema_requirements, history,
        hotfix=hotfix, feature_flag=feature_flag,
    )


def remedy(config: CommandOrLink | None) -> procedures.Remedy | None:
    """A configured hotfix or feature flag as the procedures module takes it."""
    if config is None:
        return None
    return procedures.Remedy(tuple(config.command or ()), config.url)
