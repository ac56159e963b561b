"""The rollback gate: may this rollback go ahead, to what, and if not, why.

Pure: no I/O, the time comes in as a parameter. Every rollback path asks it
(the TUI's `r` and history rollbacks, headless `rollback`, Compose's quick
rollback, blue-green, canary, ECS, the database procedures) and none adds a
rule of its own. Its numbers live in `GatePolicy` (the defaults; the config's
`gate:` section overrides them) and nowhere else.

The rules, in order (the first that applies decides; README "The rollback gate"):

1. The platform has nothing to change (the target is what runs) -> NOTHING TO DO.
2. Another console holds the service's rollback lease -> REFUSE: wait for it.
2b. A GitOps owner (Argo CD, Flux) would undo the rollback and the console
   cannot pause it (RBAC, a parent it cannot reach) -> REFUSE: the rollback
   would not stick (README "GitOps (Argo CD and Flux)").
3. A quick rollback across a reversible migration -> REFUSE (usage): its
   three-step plan needs the full rollback.
4. This operator's own recent rollback brought the service to where it is,
   and a plain rollback (no target named) would move it again: straight back
   (a second `rollout undo`) or further back (ECS and Compose step to the
   revision before) -> NOTHING TO DO (`--to-revision` goes further).
5. Objections an override may pass, all reported together:
   a. the target is a version rolled back from (or passed over by an undo)
      within `rolled_back_window`, by anyone: the record names who, when, why;
   b. the target's pods never became ready;
   e. someone else's recent rollback brought the service to where it is, and
      a plain rollback would take it further back (two consoles, or a console
      and the autopilot, rolling back the same failure twice);
   c. the target crosses a migration that cannot be undone, or whose state is unknown;
   d. the decision is not ROLLBACK NOW (healthy, investigate, fix forward,
      hotfix, wait, or any other): a plain rollback does not follow the
      runbook. Except the runbook's partial rollback (FIX FORWARD and the
      target works with the new schema), and a plan that finishes a rollback
      that already went ahead (Compose's full rollback after the quick one).
   With objections the verdict is GO ONLY WITH OVERRIDE; the override is
   `force` plus a reason, plus `approved_by` one of `approvers` when the
   config names Level 2 approvers. Given in full, the verdict is GO with the
   objections listed as overridden (the caller records them).
6. Otherwise GO: the plain rollback, or the runbook's three-step plan when a
   reversible migration was applied since the deploy.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

from console.model import Action, ColourRevision, Decision, RollbackPlan
from console.provenance import Provenance, RollbackRecord


@dataclass(frozen=True)
class GatePolicy:
    """The gate's numbers and names. The config's `gate:` section overrides them."""

    rolled_back_window: timedelta = timedelta(hours=24)
    """A version rolled back from this recently is never the target of a plain rollback."""

    approvers: tuple[str, ...] = ()
    """Level 2 approvers (the runbook's Team Lead: "approve non-standard
    actions"). When set, an override also needs `approved_by` one of them."""

    def __post_init__(self) -> None:
        if self.rolled_back_window < timedelta(0):
            raise ValueError("gate.rolled_back_hours must not be negative: fix it in the config file.")


class Outcome(str, enum.Enum):
    GO = "go"
    NOTHING = "nothing to do"
    REFUSE = "refuse"
    OVERRIDE = "go only with override"


class Procedure(str, enum.Enum):
    """How a rollback that goes ahead runs."""

    ROLLBACK = "rollback"
    PARTIAL = "partial rollback"  # the runbook's option 3: a version that works with the new schema
    MIGRATION_PLAN = "reversible migration plan"  # application, then migration, then data check


class Rule(str, enum.Enum):
    NOTHING_TO_CHANGE = "nothing to change"
    LEASE = "rollback in flight elsewhere"
    QUICK_MIGRATION = "quick rollback across a reversible migration"
    OWN_ROLLBACK = "already rolled back here"
    ALREADY_ROLLED_BACK = "already rolled back by someone else"
    ROLLED_BACK_FROM = "rolled back from"
    NEVER_READY = "never became ready"
    MIGRATION = "irreversible migration"
    RUNBOOK = "runbook decision"
    GITOPS = "self-healing owner that cannot be paused"


@dataclass(frozen=True)
class Ask:
    """What the operator asked for."""

    operator: str
    # A revision number, or a blue-green colour (`model.ColourRevision`): an explicit target either way.
    to_revision: int | ColourRevision | None = None
    force: bool = False
    reason: str = ""
    approved_by: str | None = None
    quick: bool = False


@dataclass(frozen=True)
class MigrationView:
    """The migration check for the plan's target (`procedures.RollbackCheck`, plus the facts)."""

    blocked: bool = False
    explanation: str = ""
    # The migration the target crosses or works with, when one was applied since the deploy.
    migration: str | None = None
    # A migration known reversible was applied since the deploy.
    reversible_applied: bool = False
    # The runbook's options when blocked ("Option 1: Fix forward ...: run ...").
    options: tuple[str, ...] = ()


@dataclass(frozen=True)
class LeaseView:
    """Who holds the service's rollback lease."""

    holder: str
    expired: bool = False


@dataclass(frozen=True)
class GitOpsView:
    """The GitOps owner of the plan's service, when it would undo a plain rollback."""

    owner: str  # "Argo CD Application argocd/order-service"
    self_healing: bool = True
    # Why the console cannot pause it ("" when it can).
    pause_problem: str = ""


@dataclass(frozen=True)
class Objection:
    rule: Rule
    sentence: str
    # Alternatives the runbook offers here (shown under the sentence).
    options: tuple[str, ...] = ()
    record: RollbackRecord | None = None


@dataclass(frozen=True)
class Verdict:
    """The gate's answer."""

    outcome: Outcome
    objections: tuple[Objection, ...] = ()
    procedure: Procedure = Procedure.ROLLBACK
    # What an override still lacks (OVERRIDE only).
    missing: str = ""
    # The objections a complete override passed (GO only).
    overridden: tuple[Objection, ...] = ()
    # A refusal that is a usage error (exit 2), not the runbook's (exit 3).
    usage: bool = False

    @property
    def sentence(self) -> str:
        """The first objection, the one to lead with."""
        return self.objections[0].sentence if self.objections else ""

    @property
    def record(self) -> RollbackRecord | None:
        """The rollback record that is (part of) why, if any."""
        return next((o.record for o in (*self.objections, *self.overridden) if o.record is not None), None)


def recent(record: RollbackRecord, now: datetime, policy: GatePolicy) -> bool:
    """Within the window; a record without a time is read as recent (the safe reading)."""
    return record.at is None or now - record.at <= policy.rolled_back_window


def _rolled_back_from(plan: RollbackPlan, provenance: Provenance, now: datetime,
                      policy: GatePolicy) -> RollbackRecord | None:
    target = plan.to_versions
    if not target:
        return None
    hits = [r for r in provenance.records if recent(r, now, policy)
            and (r.from_versions == target or target in r.passed_over) and r.to_versions != target]
    # The newest dated record leads (undated ones come last in `merge` order).
    dated = [r for r in hits if r.at is not None]
    return (dated or hits)[-1] if hits else None


def _own_rollback(plan: RollbackPlan, provenance: Provenance, ask: Ask, now: datetime,
                  policy: GatePolicy) -> RollbackRecord | None:
    """This operator's recent rollback that brought the service to where it runs
    (a plain rollback from there would move it again), None without one."""
    if ask.to_revision is not None or plan.finishes:
        return None
    for record in reversed(provenance.records):
        if record.by == ask.operator and recent(record, now, policy) and record.to_versions == plan.from_versions:
            return record
    return None


def _further_back(plan: RollbackPlan, provenance: Provenance, ask: Ask, now: datetime,
                  policy: GatePolicy) -> RollbackRecord | None:
    """Someone else's recent rollback to where the service runs, which a plain
    rollback would take further back (straight back is rule 5a's)."""
    if ask.to_revision is not None or plan.finishes:
        return None
    for record in reversed(provenance.records):
        if (record.by != ask.operator and recent(record, now, policy) and record.to_versions == plan.from_versions
                and record.from_versions != plan.to_versions):
            return record
    return None


def _target_option(plan: RollbackPlan) -> str:
    """How to name a target on the command line: a blue-green service's is a colour."""
    return "--to-revision COLOUR (blue or green)" if plan.from_colour or plan.to_colour else "--to-revision N"


def _override_missing(ask: Ask, policy: GatePolicy) -> str:
    """What the override lacks, as a sentence ("" when it is complete)."""
    if not ask.force:
        return "an override: --force with a reason"
    if not ask.reason.strip():
        return "a reason for the override"
    if policy.approvers and ask.approved_by not in policy.approvers:
        names = ", ".join(policy.approvers)
        if ask.approved_by:
            return f"approval by a Level 2 approver ({names}); {ask.approved_by} is not one"
        return f"approval by a Level 2 approver: --approved-by one of {names}"
    return ""


def decide(
    service: str,
    decision: Decision,
    plan: RollbackPlan,
    provenance: Provenance,
    ask: Ask,
    now: datetime,
    migration: MigrationView = MigrationView(),
    lease: LeaseView | None = None,
    policy: GatePolicy = GatePolicy(),
    gitops: GitOpsView | None = None,
) -> Verdict:
    """May `plan` go ahead? The rules are the module docstring's list, in order."""
    # 1. Nothing to change.
    if plan.skip_reason:
        return Verdict(Outcome.NOTHING, (Objection(Rule.NOTHING_TO_CHANGE, plan.skip_reason),))

    # 2. One rollback at a time, across every console.
    if lease is not None and not lease.expired and lease.holder != ask.operator:
        return Verdict(Outcome.REFUSE, (Objection(
            Rule.LEASE,
            f"{lease.holder} is rolling {service} back right now; wait for it to finish and look again."),))

    # 2b. A rollback its GitOps owner puts back is not a rollback.
    if gitops is not None and gitops.self_healing and gitops.pause_problem:
        return Verdict(Outcome.REFUSE, (Objection(
            Rule.GITOPS,
            f"{gitops.owner} would put the bad version back, and it cannot be paused: {gitops.pause_problem}",
            ("Pause it yourself (Argo CD: argocd app set NAME --sync-policy none; Flux: flux suspend "
             "kustomization NAME), or revert the commit in git.",)),),)

    # 3. The quick rollback cannot run the migration's three steps.
    if ask.quick and migration.reversible_applied and not migration.blocked:
        return Verdict(Outcome.REFUSE, (Objection(
            Rule.QUICK_MIGRATION,
            "a reversible migration was applied since the deploy, and its plan (the application, then the "
            "migration, then the data check) uses the full rollback; run it again without --quick."),), usage=True)

    # 4. Our own rollback already got here: going straight back would undo it.
    own = _own_rollback(plan, provenance, ask, now, policy)
    if own is not None:
        return Verdict(Outcome.NOTHING, (Objection(
            Rule.OWN_ROLLBACK,
            f"{service} is already on the target {', '.join(own.to_versions)}: {own.sentence(service)}; "
            "nothing to do.", (f"Pass {_target_option(plan)} to roll back further.",), own),))

    # 5. What an override may pass.
    objections: list[Objection] = []
    target = ", ".join(plan.to_versions) or plan.to_label
    record = _rolled_back_from(plan, provenance, now, policy)
    if record is not None:
        objections.append(Objection(
            Rule.ROLLED_BACK_FROM,
            f"{target} was rolled back from: {record.sentence(service)}. Rolling back to it would re-deploy it.",
            (f"Pass {_target_option(plan)} to roll back to an older revision",), record))
    further = _further_back(plan, provenance, ask, now, policy)
    if further is not None:
        objections.append(Objection(
            Rule.ALREADY_ROLLED_BACK,
            f"{further.sentence(service)}, and a plain rollback now would take it further back, to {target}: "
            "rolling the same failure back twice.",
            (f"If {', '.join(further.to_versions)} fails too (the runbook's \"rollback fails\": Level 2), "
             f"choose the target: {_target_option(plan)}",), further))
    if plan.to_versions and plan.to_versions in provenance.never_ready:
        objections.append(Objection(
            Rule.NEVER_READY, f"the pods of {target} never became ready (its rollout passed its progress deadline)."))
    if migration.blocked:
        objections.append(Objection(Rule.MIGRATION, migration.explanation or "the target crosses a migration that "
                                    "cannot be undone; rolling back could cause data loss.", migration.options))
    partial = decision.action is Action.FIX_FORWARD and migration.migration is not None and not migration.blocked
    # A plan that finishes a rollback the gate already let through (Compose's full
    # rollback after the quick one) carries out that decision; it is not a new one.
    if decision.action is not Action.ROLLBACK_NOW and not partial and not plan.finishes:
        because = "; ".join(str(r) for r in decision.reasons)
        objections.append(Objection(
            Rule.RUNBOOK,
            f"the runbook says {decision.headline}" + (f" ({because})" if because else "") + ", not ROLLBACK NOW.",
            # The runbook's own alternatives; its "Rollback now" (after investigating) is what --force is for.
            tuple(("The runbook allows a rollback once you have investigated: --force with what you found"
                   if a == "Rollback now" else a) for a in decision.alternatives)))

    procedure = Procedure.ROLLBACK
    if partial:
        procedure = Procedure.PARTIAL
    elif migration.reversible_applied and not migration.blocked:
        procedure = Procedure.MIGRATION_PLAN
    if not objections:
        return Verdict(Outcome.GO, procedure=procedure)
    missing = _override_missing(ask, policy)
    if missing:
        return Verdict(Outcome.OVERRIDE, tuple(objections), procedure, missing=missing)
    return Verdict(Outcome.GO, procedure=procedure, overridden=tuple(objections))
