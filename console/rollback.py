"""The runbook's automated rollback script (`rollback.sh`) as a procedure the
headless command runs: check the decision framework, record the incident,
roll back, wait for the rollout, verify health.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from console.comms import MessageKind
from console.gate import Ask, Outcome, Procedure, Verdict
from console.model import Decision, RollbackPlan, revision_change
from console.gitops import GROUP as GITOPS_GROUP
from console.platforms.base import LeaseHeld, NotFound, PlatformError, Usage
from console.exitcodes import EXIT_DO_NOT_ROLL_BACK, EXIT_FAILED, EXIT_OK, EXIT_USAGE
from console.session import Session

def run_headless_rollback(
    session: Session,
    service: str,
    *,
    reason: str,
    to_revision: int | None = None,
    dry_run: bool = False,
    confirm: Callable[[str], bool] | None = None,
    force: bool = False,
    timeout: float | None = None,
    out: Callable[[str], None] = print,
    quick: bool = False,
    approved_by: str | None = None,
) -> int:
    """Roll `service` back if the gate lets it (`console.gate`); returns the
    command's exit code: 0 done or nothing to do, 1 failed, 2 usage, 3 refused
    (the runbook says not to, or the target was rolled back from: `force` with
    `reason`, and `approved_by` where the config names approvers, overrides).
    `quick`: the Docker Compose quick rollback (start the previous container).
    `timeout`: seconds the rollout may take; default: the config's `rollout_timeout`."""
    return asyncio.run(_run(session, service, reason, to_revision, dry_run, confirm, force, timeout, out, quick,
                            approved_by))


async def _run(session, service, reason, to_revision, dry_run, confirm, force, timeout, out, quick=False,
               approved_by=None) -> int:
    # One event loop for the whole command: the session's HTTP clients live on it.
    # The platform calls block it, which is fine here: nothing else runs.
    try:
        return await _procedure(session, service, reason, to_revision, dry_run, confirm, force, timeout, out, quick,
                                approved_by)
    finally:
        await session.aclose()


async def rollback_procedure(
    session: Session,
    service: str,
    *,
    reason: str,
    dry_run: bool = False,
    timeout: float | None = None,
    out: Callable[[str], None] = print,
    vet: Callable[[RollbackPlan, Verdict, Decision], str | None] | None = None,
) -> int:
    """The same procedure on a session that stays open (the autopilot's: it
    awaits this on the session's loop, one rollback after the other), never
    forced. `vet(plan, verdict, decision)` sees every verdict of the gate; a
    sentence it returns stops a GO (recorded as a refusal, exit 3): a caller's
    own limits on top of the gate, never a way around it."""
    return await _procedure(session, service, reason, None, dry_run, None, False, timeout, out, vet=vet)


async def _procedure(session, service, reason, to_revision, dry_run, confirm, force, timeout, out, quick=False,
                     approved_by=None, vet=None) -> int:
    view = (await session.refresh(only=service))[0]
    decision = view.decision
    out(f"Starting rollback for {service}")
    out(f"Reason: {reason}")
    out(f"Runbook: {decision.headline}" + (f" ({'; '.join(str(r) for r in decision.reasons)})" if decision.reasons else ""))
    # Run twice, or again after a crash: never a second `rollout undo`, which
    # would toggle the service back to the bad version. One that never reached
    # the platform (the crash came between recording it and sending it) is
    # recorded as failed and planned again below, through the gate.
    if session.rollback_in_flight(service):
        state = session.incident_state(service)
        unsent = None
        if not dry_run:
            try:
                unsent = session.abandon_unsent_rollback(service)
            except PlatformError as err:
                out(f"A rollback of {service} is in flight in incident {state.id}, and the platform cannot be read: "
                    f"{err}")
                return EXIT_FAILED
        if unsent is not None:
            out(f"A rollback of {service} to {state.rollback.to_label} was recorded in incident {state.id}, "
                f"but {unsent}: planning it again.")
        else:
            out(f"A rollback of {service} to {state.rollback.to_label} "
                f"is already in flight in incident {state.id}: watching it, not issuing it again.")
            if dry_run:
                out("Dry run: nothing was changed.")
                return EXIT_OK
            try:
                for progress in session.resume_rollback(service, timeout=timeout):
                    out(progress.message)
                    if progress.failed:
                        return EXIT_FAILED
            except PlatformError as err:
                out(f"Rollback failed: {err}")
                return EXIT_FAILED
            return await _verify_and_report(session, service, out)
    try:
        plan = session.plan_rollback(service, to_revision, quick=quick)
    except PlatformError as err:
        out(f"Cannot plan the rollback: {err}")
        # No such revision, service or container: the command asked for something that is not there.
        return EXIT_USAGE if isinstance(err, (NotFound, Usage)) else EXIT_FAILED
    ask = Ask(session.operator, to_revision, force, reason, approved_by, quick)
    # Sent at once after the gate (--yes: no one is asked in between), the rollback's
    # atomic create of the lease is the check of who else is rolling back; a read of
    # it first would be one request more. A migration's steps run before the rollback
    # takes the lease: for them it is read first.
    at_once = confirm is None and vet is None and not dry_run
    try:
        verdict = session.gate(plan, ask, read_lease=not at_once)
        if at_once and verdict.procedure is Procedure.MIGRATION_PLAN:
            verdict = session.gate(plan, ask)
    except PlatformError as err:
        out(f"Cannot read what the cluster records about {service}'s rollbacks: {err}")
        return EXIT_FAILED
    stop = vet(plan, verdict, decision) if vet is not None else None
    if verdict.outcome is not Outcome.GO:
        return _not_going(session, plan, verdict, ask, dry_run, out)
    if stop:
        out(f"Not rolling back {service}: {stop}")
        if not dry_run:
            session.note(f"{service}: rollback refused: {stop}", service=service)
        return EXIT_DO_NOT_ROLL_BACK
    for objection in verdict.overridden:
        out(f"WARNING (--force): {objection.sentence}")
    if not dry_run and session.investigation_deadline(service) is not None:
        # As in the TUI: a rollback that goes ahead ends the investigation's countdown.
        session.end_investigation(service, f"a rollback of {service} was started (headless)")
    if verdict.overridden and not dry_run:
        session.record_verdict(plan, verdict, ask)
    if verdict.procedure is Procedure.PARTIAL:
        migration = session.migration_view(service, plan).migration
        out(f"Partial rollback: the target works with migration {migration} (the runbook's option 3).")
    reversible = verdict.procedure is Procedure.MIGRATION_PLAN
    out(f"Plan: {revision_change(plan.from_revision, plan.to_revision, plan.from_colour, plan.to_colour)} "
        f"({', '.join(plan.from_versions)} → {', '.join(plan.to_versions)})")
    if plan.summary:
        # Says what the numbers mean per platform (a blue-green "revision" is a colour).
        out(plan.summary)
    try:
        shown = session.plan_as_sent(plan, reason)  # with the rollback record the request carries
    except PlatformError:
        shown = plan  # the records could not be read: execute reads them again, and says so
    for call in (*shown.pre_calls, *shown.calls):  # pre_calls: pausing a GitOps owner first
        out(str(call))
    if dry_run:
        out("Dry run: nothing was changed.")
        return EXIT_OK
    if confirm is not None and not confirm(f"Roll back {service}?"):
        out("Aborted: nothing was changed.")
        return EXIT_FAILED

    if reversible:
        code = _reversible_plan(session, service, to_revision, confirm, out, ask)
        if code != EXIT_OK:
            return code
    else:
        try:
            announced = False
            for progress in session.execute(plan, reason=reason, timeout=timeout):
                out(progress.message)
                if not announced:
                    # The start is recorded and the change applied: tell the channel.
                    _post(session, service, MessageKind.ROLLBACK_IN_PROGRESS, out, plan)
                    announced = True
                if progress.failed:
                    return EXIT_FAILED
        except LeaseHeld as err:  # the gate's lease rule, answered by the lease's create
            out(f"Not rolling back {service}: {err}")
            return EXIT_DO_NOT_ROLL_BACK
        except PlatformError as err:
            out(f"Rollback failed: {err}")
            return EXIT_FAILED

    return await _verify_and_report(session, service, out)


def _not_going(session: Session, plan, verdict: Verdict, ask: Ask, dry_run: bool, out: Callable[[str], None]) -> int:
    """Say why the gate stops here (recorded unless a dry run); the exit code."""
    if verdict.outcome is Outcome.NOTHING:
        for objection in verdict.objections:
            out(objection.sentence)
            for option in objection.options:
                out(option)
        if not dry_run:
            session.note(f"{plan.service}: nothing to roll back: {verdict.sentence}", service=plan.service)
        return EXIT_OK
    out(f"Not rolling back {plan.service} to {', '.join(plan.to_versions) or plan.to_label}:")
    for objection in verdict.objections:
        out(f"  - {objection.sentence}")
        for option in objection.options:
            out(f"      {option}")
    if verdict.outcome is Outcome.OVERRIDE:
        out(f"Pass --force to roll back anyway (this needs {verdict.missing}); the override is recorded.")
    if not dry_run:
        session.record_verdict(plan, verdict, ask)
    return EXIT_USAGE if verdict.usage else EXIT_DO_NOT_ROLL_BACK


def _post(session: Session, service: str, kind: MessageKind, out: Callable[[str], None], plan=None) -> None:
    """Post one of the runbook's messages when a webhook is configured; a failure is
    reported and the message stays in the outbox (the console resends it)."""
    problem = session.slack_problem()
    if problem is not None:
        if session.config.slack.webhook_url_env is not None:
            # Configured, but its variable is unset: the channel hears nothing unless someone posts it.
            out(f"{kind.label} message not posted: {problem}")
        return
    _, result = session.send_message(service, kind, plan=plan)
    if result.ok:
        out(f"{kind.label} message posted to {session.slack_channel}.")
    else:
        out(f"{kind.label} message not posted: {result.error} It is kept and will be resent.")


async def _verify_and_report(session: Session, service: str, out: Callable[[str], None]) -> int:
    """The script's steps 4 and 5: verify, then the Rollback Complete message and the checklist."""
    after = (await session.refresh(only=service))[0]
    health = after.snapshot.health
    if health.completely_down or health.endpoint_ok is False:
        out(f"WARNING: Service not healthy after rollback ({health.endpoint_status or 'no ready pods'})")
        session.note(f"{service}: rollback complete but service unhealthy", service=service)
        return EXIT_FAILED
    out(f"Rollback of {service} complete. Service healthy.")
    _post(session, service, MessageKind.ROLLBACK_COMPLETE, out)
    status = session.checklist(service)
    if status is not None:
        due = [s.due_at for s in status.items if s.due_at is not None and not s.done]
        out(f"Post-rollback checklist: {status.done} of {len(status.items)} done"
            + (f"; next items due by {min(due):%H:%M} UTC." if due else "."))
        for item in status.items:
            if item.group.name == GITOPS_GROUP and not item.done:
                # A paused GitOps owner: what must not be forgotten, said at once.
                by = f" (due by {item.due_at:%Y-%m-%d %H:%M} UTC)" if item.due_at else ""
                out(f"  [ ] {item.item.text}{by}")
    return EXIT_OK


def _reversible_plan(session, service, to_revision, confirm, out, ask=None) -> int:
    """The runbook's order when the migration is reversible: the application
    first, then the migration rollback command, then the data integrity check."""
    from console.database import DatabaseError

    out("The migration since the deploy is reversible: the application first, then the migration, then the data check.")
    try:
        runner = session.migration_rollback(service, to_revision, ask)
    except (DatabaseError, PlatformError) as err:
        out(f"Cannot run the migration rollback plan: {err}")
        return EXIT_FAILED
    ask = None if confirm is None else (lambda preview: confirm(preview.confirmation))
    try:
        outcome = runner.run_all(confirm=ask, out=out)
    except (DatabaseError, PlatformError) as err:
        out(f"The migration rollback plan stopped: {err}")
        return EXIT_FAILED
    state = runner.state()
    if not state.finished:
        stopped = state.stopped or state.current
        out(f"The migration rollback plan stopped at step {stopped.label if stopped else '?'}; "
            "escalated to level 2 (Team Lead). Fix the cause and run the rollback again to resume.")
        return EXIT_FAILED
    if outcome is not None and not outcome.ok:
        return EXIT_FAILED
    return EXIT_OK
