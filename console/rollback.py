"""The runbook's automated rollback script (`rollback.sh`) as a procedure the
headless command runs: check the decision framework, record the incident,
roll back, wait for the rollout, verify health.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from console.model import Action
from console.platforms.base import PlatformError
from console.session import Session

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_DO_NOT_ROLL_BACK = 3

DO_NOT_ROLL_BACK = (Action.FIX_FORWARD, Action.HOTFIX, Action.WAIT_EXTERNAL)


def run_headless_rollback(
    session: Session,
    service: str,
    *,
    reason: str,
    to_revision: int | None = None,
    dry_run: bool = False,
    confirm: Callable[[str], bool] | None = None,
    force: bool = False,
    timeout: float = 300.0,
    out: Callable[[str], None] = print,
) -> int:
    """Roll `service` back; returns the command's exit code."""
    return asyncio.run(_run(session, service, reason, to_revision, dry_run, confirm, force, timeout, out))


async def _run(session, service, reason, to_revision, dry_run, confirm, force, timeout, out) -> int:
    # One event loop for the whole command: the session's HTTP clients live on it.
    # The platform calls block it, which is fine here: nothing else runs.
    try:
        return await _procedure(session, service, reason, to_revision, dry_run, confirm, force, timeout, out)
    finally:
        await session.aclose()


async def _procedure(session, service, reason, to_revision, dry_run, confirm, force, timeout, out) -> int:
    view = (await session.refresh(only=service))[0]
    decision = view.decision
    out(f"Starting rollback for {service}")
    out(f"Reason: {reason}")
    out(f"Runbook: {decision.headline}" + (f" ({'; '.join(str(r) for r in decision.reasons)})" if decision.reasons else ""))
    if decision.action in DO_NOT_ROLL_BACK and not force:
        out(f"Not rolling back: the runbook says {decision.headline.lower()}.")
        for alternative in decision.alternatives:
            out(f"  - {alternative}")
        out("Pass --force to roll back anyway.")
        if not dry_run:
            session.note(f"{service}: headless rollback refused: {decision.headline}", service=service)
        return EXIT_DO_NOT_ROLL_BACK

    try:
        plan = session.plan_rollback(service, to_revision)
    except PlatformError as err:
        out(f"Cannot plan the rollback: {err}")
        return EXIT_FAILED
    if plan.skip_reason:
        out(plan.skip_reason)
    else:
        out(f"Plan: revision {plan.from_revision} → {plan.to_revision} "
            f"({', '.join(plan.from_versions)} → {', '.join(plan.to_versions)})")
        for call in plan.calls:
            out(str(call))
    if dry_run:
        out("Dry run: nothing was changed.")
        return EXIT_OK
    if plan.skip_reason is None and confirm is not None and not confirm(f"Roll back {service}?"):
        out("Aborted: nothing was changed.")
        return EXIT_FAILED

    try:
        for progress in session.execute(plan, reason=reason, timeout=timeout):
            out(progress.message)
            if progress.failed:
                return EXIT_FAILED
    except PlatformError as err:
        out(f"Rollback failed: {err}")
        return EXIT_FAILED

    after = (await session.refresh(only=service))[0]
    health = after.snapshot.health
    if health.completely_down or health.endpoint_ok is False:
        out(f"WARNING: Service not healthy after rollback ({health.endpoint_status or 'no ready pods'})")
        session.note(f"{service}: rollback complete but service unhealthy", service=service)
        return EXIT_FAILED
    out(f"Rollback of {service} complete. Service healthy.")
    return EXIT_OK
