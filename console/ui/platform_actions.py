"""The app's keys and workers for the platform and database screens: a
revision's template and diff (v), pods and logs (p), freezing and resuming
writes (w), the data-corruption response (C), the routing and lease panes,
and the database checks in front of a rollback plan.

A mixin of `RollbackConsoleApp` (app.py keeps the main screen; this keeps
what issues 4 and 8 add to it). Like app.py, workers only call the session
and post messages; the handlers here touch the widgets.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from textual import work
from textual.css.query import NoMatches
from textual.message import Message

from console.gate import Ask, Outcome, Procedure, Rule, Verdict
from console.model import Revision, RollbackPlan
from console.platforms.base import PlatformError, Routing, Scalable

from .messages import OperationFailed, PlanReady, timeline_changed
from .panes.history import HistoryTable, rollback_number
from .panes.owner import OwnerStrip
from .panes.routing import AutopilotStrip, LeaseStrip, PlatformExtras
from .updates import set_content

if TYPE_CHECKING:
    from console.procedures import RollbackCheck
    from console.runbook import StepPreview


def _failures() -> tuple[type[Exception], ...]:
    """What a database or procedure worker reports to the operator. An except
    clause evaluates it only when something was raised: console.database and
    console.procedures are imported by the workers that use them, not before
    the first frame (issue 17)."""
    from console.database import DatabaseError
    from console.procedures import ProcedureError

    return (DatabaseError, PlatformError, ProcedureError)


# Each dialog's module is imported in the method that opens it: none of them
# is needed before the first frame (issue 17).


class Gated(Message):
    """The gate answered for a plan (`console.gate.Verdict`); `check` is the
    migration check when a migration is among its objections (its options)."""

    def __init__(self, plan: RollbackPlan, verdict: Verdict, ask: Ask, check: RollbackCheck | None = None) -> None:
        super().__init__()
        self.plan = plan
        self.verdict = verdict
        self.ask = ask
        self.check = check


class MigrationPlanReady(Message):
    """The rollback crosses a reversible migration: run the runbook's three-step plan."""

    def __init__(self, plan: RollbackPlan, to_revision: int | None, ask: Ask | None = None) -> None:
        super().__init__()
        self.plan = plan
        self.to_revision = to_revision
        self.ask = ask


class WritesReady(Message):
    """Freezing (or resuming) writes, previewed: the request and the replica count."""

    def __init__(self, service: str, preview: StepPreview, freeze: bool, replicas: int | None) -> None:
        super().__init__()
        self.service = service
        self.preview = preview
        self.freeze = freeze
        self.replicas = replicas


class CorruptionReady(Message):
    """The corruption response of `service`, read from its timeline; `declare` when it must be declared first."""

    def __init__(self, service: str, runner, declare: bool) -> None:
        super().__init__()
        self.service = service
        self.runner = runner
        self.declare = declare


class PlatformActions:
    """Keys, workers and handlers for issues 4 and 8 (mixed into the app)."""

    # The selected service's traffic switch as last read (None: its platform has none), or why it could not be.
    routing: Routing | None = None
    routing_error: str | None = None

    # -- routing and the rollback lease, after every refresh -------------------

    def _fetch_platform_extras(self) -> None:
        """Read the selected service's routing and lease holder (they make requests: a worker)."""
        self._platform_extras_worker(self.selected)

    @work(thread=True, exclusive=True, group="extras", exit_on_error=False)
    def _platform_extras_worker(self, service: str) -> None:
        from console.autopilot.journal import read_switch

        read = self.session.surroundings(service)
        store = getattr(self.session.store, "path", None)  # a recording (tests/ui/ui_samples.py) keeps none
        self.post_message(PlatformExtras(service, read.routing, read.holder, read.routing_error, read.lease_error,
                                         read.owner, read.owner_error, read.paused, read_switch(store) if store else None))

    def on_platform_extras(self, message: PlatformExtras) -> None:
        if message.service != self.selected:
            return
        try:
            strip = self.query_one(LeaseStrip)
        except NoMatches:
            return  # the app is shutting down
        self.routing = message.routing
        self.routing_error = message.error
        self.lease_holder = message.holder
        try:
            self.query_one(OwnerStrip).show(message.owner, message.owner_error)
            self.query_one(AutopilotStrip).show(message.paused, message.store_switch)
        except NoMatches:
            pass
        self._fit_to_size(self.size.width, self.size.height)  # shows the routing pane where it fits
        mine = self.rolling_back == message.service
        if message.lease_error and message.holder is None:
            strip.display = True
            set_content(strip, message.lease_error)
        else:
            strip.show(message.holder, mine)

    # -- issue 4: a revision's template and diff ------------------------------

    def action_revision(self) -> None:
        """Show the highlighted revision's pod template and its diff against the current one."""
        from .screens.revision import RevisionScreen
        try:
            revision = self.query_one(HistoryTable).highlighted_revision()
        except NoMatches:
            return
        if revision is None:
            self.notify("The rollout history is empty: nothing to show yet.", severity="warning", timeout=5)
            return
        view = self.views.get(self.selected)
        history = view.snapshot.history if view else ()
        current = next((r for r in history if r.current), None)
        service = self.selected

        def chosen(picked: Revision | None) -> None:
            if picked is not None:
                self._plan(service, rollback_number(picked))

        self.push_screen(RevisionScreen(self.session, service, revision, current), chosen)

    # -- issue 4: pods and logs ------------------------------------------------

    def action_pods(self) -> None:
        """Pods (ready, restarts, age), their last 50 log lines, the rollout status and the health endpoint."""
        from .screens.pods import PodsScreen
        self.push_screen(PodsScreen(self.session, self.selected))

    # -- the gate in front of every rollback ------------------------------------

    def _gate_plan(self, plan: RollbackPlan, ask: Ask) -> None:
        """In a worker: ask the gate about `plan` and post its answer (the
        migration check too when a migration is why, for the runbook's options)."""
        verdict = self.session.gate(plan, ask)
        check = None
        if any(o.rule is Rule.MIGRATION for o in verdict.objections):
            from console.database import DatabaseError

            try:
                check = self.session.rollback_check(plan.service, plan.target)
            except DatabaseError:
                check = None
        self.post_message(Gated(plan, verdict, ask, check))

    def on_gated(self, message: Gated) -> None:
        plan, verdict, ask = message.plan, message.verdict, message.ask
        service = plan.service
        if verdict.outcome is Outcome.NOTHING:
            if plan.skip_reason:
                self.post_message(PlanReady(plan))  # the skipped plan says why and offers only to close
                return
            options = "".join(f" {o}" for obj in verdict.objections for o in obj.options)
            self.notify(verdict.sentence + options, title="Nothing to roll back", severity="warning", timeout=15)
        elif verdict.outcome is Outcome.REFUSE:
            self.notify(f"Not rolling back {service}: {verdict.sentence}", title="Rollback refused",
                        severity="error", timeout=20)
            self._verdict_worker(plan, verdict, ask)
        elif verdict.outcome is Outcome.OVERRIDE:
            if message.check is not None and message.check.blocked:
                self._migration_blocked(plan, verdict, ask, message.check)
            else:
                self._ask_override(plan, verdict, ask)
        elif verdict.procedure is Procedure.MIGRATION_PLAN:
            self.post_message(MigrationPlanReady(plan, ask.to_revision, ask))
        else:
            self.post_message(PlanReady(plan))

    def _ask_override(self, plan: RollbackPlan, verdict: Verdict, ask: Ask) -> None:
        """The red override dialog: Cancel focused, the reason typed."""
        from .screens.override import OverrideScreen

        def answered(result: tuple[str, str | None] | None) -> None:
            if result is None:
                self.notify("Not rolled back: nothing was changed.", timeout=4)
                self._verdict_worker(plan, verdict, ask)
                return
            reason, approver = result
            self._override_worker(plan, replace(ask, force=True, reason=reason, approved_by=approver))

        approvers = self.session.gate_policy.approvers
        self.push_screen(OverrideScreen(plan, verdict, approvers), answered)

    @work(thread=True, exclusive=True, group="plan", exit_on_error=False)
    def _override_worker(self, plan: RollbackPlan, ask: Ask) -> None:
        verdict = self.session.gate(plan, ask)  # fresh: the cluster may have moved while the dialog was open
        if verdict.outcome is Outcome.GO and verdict.overridden:
            self.session.record_verdict(plan, verdict, ask)
            self.post_message(timeline_changed(self.session))
        self.post_message(Gated(plan, verdict, ask))

    @work(thread=True, group="record", exit_on_error=False)
    def _verdict_worker(self, plan: RollbackPlan, verdict: Verdict, ask: Ask) -> None:
        self.session.record_verdict(plan, verdict, ask)
        self.post_message(timeline_changed(self.session))

    def _migration_blocked(self, plan: RollbackPlan, verdict: Verdict, ask: Ask, check: RollbackCheck) -> None:
        """A migration that cannot be undone is in the way: the runbook's options first."""
        from .screens.database import FEATURE_FLAG, FIX_FORWARD, OVERRIDE, PARTIAL, MigrationBlockedScreen
        service = plan.service

        def answered(result: tuple[str, int | None] | None) -> None:
            if result is None:
                self.notify("Not rolled back: nothing was changed.", timeout=4)
                self._verdict_worker(plan, verdict, ask)
                return
            choice, revision = result
            if choice == PARTIAL and revision is not None:
                self._plan(service, revision)
            elif choice in (FIX_FORWARD, FEATURE_FLAG):
                index = 0 if choice == FIX_FORWARD else 1
                option = check.options[index]
                migration = check.migration.name if check.migration else "the migration"
                how = "deploy a hotfix that works with the new schema" if choice == FIX_FORWARD else \
                    "disable the feature that uses the new schema with its flag"
                self._decision_worker(service, "fix_forward", f"{migration} cannot be undone: {how}")
                self.notify(f"{option.title}: {option.detail}", title="Decision recorded", timeout=20)
            elif choice == OVERRIDE:
                self._ask_override(plan, verdict, ask)

        self.push_screen(MigrationBlockedScreen(plan, check), answered)

    @work(thread=True, group="record", exit_on_error=False)
    def _decision_worker(self, service: str, choice: str, reason: str) -> None:
        self.session.choose(service, choice, reason)
        self.post_message(timeline_changed(self.session))

    def on_migration_plan_ready(self, message: MigrationPlanReady) -> None:
        from .screens.database import MigrationRollbackScreen
        service = message.plan.service
        try:
            runner = self.session.migration_rollback(service, message.to_revision, message.ask)
        except _failures() as err:
            self.notify(str(err), title="Migration rollback", severity="error", timeout=15)
            return
        self.push_screen(MigrationRollbackScreen(self.session, service, runner), lambda _: self.request_refresh())

    # -- issue 8: freezing and resuming writes -----------------------------------

    def action_writes(self) -> None:
        """Freeze writes (scale to 0, the count remembered), or resume them when frozen."""
        self._writes_worker(self.selected)

    @work(thread=True, exclusive=True, group="writes", exit_on_error=False)
    def _writes_worker(self, service: str) -> None:
        try:
            response = self.session.corruption_response(service)
            frozen = response.state().frozen_replicas
            freeze = frozen is None
            preview = response.preview("freeze" if freeze else "resume")
            replicas = frozen
            if freeze:
                platform = self.session.platform(service)
                replicas = platform.replicas() if isinstance(platform, Scalable) else None
        except _failures() as err:
            self.post_message(OperationFailed(f"Reading the replica count of {service}", str(err)))
            return
        self.post_message(WritesReady(service, preview, freeze, replicas))

    def on_writes_ready(self, message: WritesReady) -> None:
        from .screens.corruption import WritesScreen
        preview = message.preview
        if preview.blocked:
            what = "Freezing" if message.freeze else "Resuming"
            self.notify(f"{what} writes to {message.service} cannot run yet: {preview.blocked} Press C to open the "
                        "data corruption response.", title="Writes", severity="warning", timeout=20)
            return

        def answered(ok: bool | None) -> None:
            if ok:
                self._writes_run_worker(message.service, message.freeze)
            else:
                self.notify("Nothing was scaled.", timeout=4)

        self.push_screen(WritesScreen(message.service, preview, message.freeze, message.replicas), answered)

    @work(thread=True, exclusive=True, group="writes", exit_on_error=False)
    def _writes_run_worker(self, service: str, freeze: bool) -> None:
        try:
            outcome = self.session.freeze_writes(service) if freeze else self.session.resume_writes(service)
        except _failures() as err:
            self.post_message(timeline_changed(self.session))
            self.post_message(OperationFailed("Freezing writes" if freeze else "Resuming writes", str(err)))
            return
        self.post_message(timeline_changed(self.session))
        what = "Writes frozen" if freeze else "Writes resumed"
        if outcome.ok:
            self.call_from_thread(self.notify, f"{service}: {outcome.summary}", title=what, timeout=12)
        else:
            self.call_from_thread(self.notify, f"{service}: {outcome.summary}. Press C to resume the response "
                                  "from this step.", title=f"{what}: failed", severity="error", timeout=20)
        self.call_from_thread(self.request_refresh)

    # -- issue 8: the data-corruption response ------------------------------------

    def action_corruption(self) -> None:
        """Open the data-corruption response (declaring the corruption first)."""
        self._corruption_worker(self.selected)

    @work(thread=True, exclusive=True, group="corruption", exit_on_error=False)
    def _corruption_worker(self, service: str) -> None:
        try:
            runner = self.session.corruption_response(service)
            started = runner.state().started
        except _failures() as err:
            self.post_message(OperationFailed(f"Opening the data corruption response of {service}", str(err)))
            return
        declared = bool(self.session.facts(service).data_corruption)
        self.post_message(CorruptionReady(service, runner, declare=not (declared or started)))

    def on_corruption_ready(self, message: CorruptionReady) -> None:
        from .screens.corruption import CorruptionScreen, DeclareCorruptionScreen
        if not message.declare:
            self.push_screen(CorruptionScreen(self.session, message.service, message.runner),
                             lambda _: self.request_refresh())
            return

        def answered(ok: bool | None) -> None:
            if ok:
                self._declare_corruption_worker(message.service, message.runner)
            else:
                self.notify("Nothing was declared.", timeout=4)

        self.push_screen(DeclareCorruptionScreen(message.service), answered)

    @work(thread=True, group="record", exit_on_error=False)
    def _declare_corruption_worker(self, service: str, runner) -> None:
        self.session.declare(service, "data_corruption", True)
        self.post_message(timeline_changed(self.session))
        self.post_message(CorruptionReady(service, runner, declare=False))
        # The escalation to Level 2 is recorded by the next refresh; run it now.
        self.call_from_thread(self.request_refresh)
