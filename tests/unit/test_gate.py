"""The rollback gate, rule by rule and table by table, and the provenance it reads."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from console.gate import Ask, GatePolicy, GitOpsView, LeaseView, MigrationView, Outcome, Procedure, Rule, decide, recent
from console.model import Action, Decision, RollbackPlan
from console.provenance import (
    ROLLBACKS_ANNOTATION,
    ROLLOUT_HISTORY,
    Provenance,
    ReplicaSetView,
    RollbackRecord,
    decode,
    encode,
    field_owner,
    from_annotations,
    parse_revision_history,
    undo_records,
)

NOW = datetime(2026, 12, 4, 14, 30, tzinfo=timezone.utc)
ROLLBACK_NOW = Decision(Action.ROLLBACK_NOW)
ALICE = RollbackRecord("alice@laptop", ("1.2.3",), ("1.2.2",), NOW - timedelta(minutes=9), "errors 8%",
                       "INC-2026-1204-1421")


def plan(source: str = "1.2.2", target: str = "1.2.3", skip: str | None = None) -> RollbackPlan:
    return RollbackPlan("order-service", "kubernetes", 4, 3, (f"r/order-service:{source}",),
                        (f"r/order-service:{target}",), skip_reason=skip)


def ask(operator: str = "bob@desk", **kw) -> Ask:
    return Ask(operator, **kw)


def verdict(decision=ROLLBACK_NOW, the_plan=None, provenance=Provenance(), the_ask=None, **kw):
    return decide("order-service", decision, the_plan or plan(), provenance, the_ask or ask(), NOW, **kw)


# --- rules 1-4: the verdicts no override changes -----------------------------------

@pytest.mark.parametrize("rule, kwargs, outcome, usage", [
    (Rule.NOTHING_TO_CHANGE, {"the_plan": plan(skip="skipped rollback")}, Outcome.NOTHING, False),
    (Rule.LEASE, {"lease": LeaseView("carol@ops")}, Outcome.REFUSE, False),
    (Rule.GITOPS, {"gitops": GitOpsView("Argo CD Application argocd/order-service", True, "patch is forbidden")},
     Outcome.REFUSE, False),
    (Rule.QUICK_MIGRATION, {"the_ask": ask(quick=True, force=True, reason="x"),
                            "migration": MigrationView(reversible_applied=True)}, Outcome.REFUSE, True),
    (Rule.OWN_ROLLBACK, {"the_plan": plan("1.2.2", "1.2.3"), "provenance": Provenance((ALICE,)),
                         "the_ask": ask("alice@laptop")}, Outcome.NOTHING, False),
])
def test_rules_no_override_passes(rule, kwargs, outcome, usage):
    forced = dict(kwargs)
    result = verdict(**forced)
    assert (result.outcome, result.objections[0].rule, result.usage) == (outcome, rule, usage)
    if "the_ask" not in kwargs:  # forcing changes nothing either
        assert verdict(**forced, the_ask=ask(force=True, reason="x")).outcome is outcome


def test_a_gitops_owner_that_can_be_paused_or_does_not_heal_does_not_refuse():
    assert verdict(gitops=GitOpsView("Flux Kustomization flux-system/order-service", True, "")).outcome is Outcome.GO
    assert verdict(gitops=GitOpsView("Argo CD Application argocd/x", False, "forbidden")).outcome is Outcome.GO
    refused = verdict(gitops=GitOpsView("Argo CD Application argocd/x", True, "its parent shop-apps is not here"))
    assert "its parent shop-apps is not here" in refused.sentence


def test_an_expired_or_own_lease_does_not_refuse():
    assert verdict(lease=LeaseView("carol@ops", expired=True)).outcome is Outcome.GO
    assert verdict(lease=LeaseView("bob@desk")).outcome is Outcome.GO


def test_own_rollback_with_an_explicit_revision_is_judged_like_any_other():
    result = verdict(provenance=Provenance((ALICE,)), the_ask=ask("alice@laptop", to_revision=3))
    assert result.outcome is Outcome.OVERRIDE and result.objections[0].rule is Rule.ROLLED_BACK_FROM


def test_a_plain_rollback_after_ones_own_never_steps_further_back():
    """ECS and Compose plan the revision before the current one: after Alice's
    1.2.3 -> 1.2.2, her second plain rollback would go on to 1.2.1 (Kubernetes'
    would go straight back to 1.2.3). Either way: nothing to do."""
    further = verdict(the_plan=plan("1.2.2", "1.2.1"), provenance=Provenance((ALICE,)), the_ask=ask("alice@laptop"))
    assert further.outcome is Outcome.NOTHING and further.objections[0].rule is Rule.OWN_ROLLBACK
    assert "order-service is already on the target 1.2.2" in further.sentence
    chosen = verdict(the_plan=plan("1.2.2", "1.2.1"), provenance=Provenance((ALICE,)),
                     the_ask=ask("alice@laptop", to_revision=2))
    assert chosen.outcome is Outcome.GO


def test_someone_elses_rollback_is_not_stepped_past_without_an_override():
    """Bob's console (or the autopilot) seeing the same failure after Alice rolled
    back: a plain rollback would roll it back a second time, further."""
    further = verdict(the_plan=plan("1.2.2", "1.2.1"), provenance=Provenance((ALICE,)))
    assert further.outcome is Outcome.OVERRIDE
    assert [o.rule for o in further.objections] == [Rule.ALREADY_ROLLED_BACK]
    assert further.sentence.startswith("alice@laptop rolled order-service back from 1.2.3 to 1.2.2 at 14:21 UTC")
    assert "a plain rollback now would take it further back, to 1.2.1" in further.sentence
    assert verdict(the_plan=plan("1.2.2", "1.2.1"), provenance=Provenance((ALICE,)),
                   the_ask=ask(to_revision=2)).outcome is Outcome.GO
    assert verdict(the_plan=plan("1.2.2", "1.2.1"), provenance=Provenance((ALICE,)),
                   the_ask=ask(force=True, reason="1.2.2 fails too")).outcome is Outcome.GO


# --- rule 5: the objections an override passes ------------------------------------

@pytest.mark.parametrize("action", [a for a in Action if a is not Action.ROLLBACK_NOW])
def test_a_plain_rollback_is_refused_unless_the_runbook_says_rollback_now(action):
    decision = Decision(action, alternatives=("Deploy a hotfix",))
    result = verdict(decision)
    assert result.outcome is Outcome.OVERRIDE
    assert [o.rule for o in result.objections] == [Rule.RUNBOOK]
    assert f"the runbook says {action.headline}" in result.sentence
    assert result.objections[0].options == ("Deploy a hotfix",)
    assert result.missing == "an override: --force with a reason"


def test_any_decision_other_than_rollback_now_refuses_even_one_added_later():
    class Future:  # a decision value this module has never seen
        action = "signals_unavailable"
        headline = "SIGNALS UNAVAILABLE"
        reasons = ()
        alternatives = ()

    assert verdict(Future()).outcome is Outcome.OVERRIDE


@pytest.mark.parametrize("action", [Action.HEALTHY, Action.INVESTIGATE])
def test_finishing_a_rollback_that_already_went_ahead_is_not_a_new_decision(action):
    # Compose after --quick: the previous container serves 1.2.2, the file still names 1.2.3.
    finishing = RollbackPlan("order-service", "compose", 3, 2, ("r/order-service:1.2.3",), ("r/order-service:1.2.2",),
                             finishes="the quick rollback that left order-service_previous_container serving 1.2.2")
    assert verdict(Decision(action), the_plan=finishing).outcome is Outcome.GO
    # What an override may pass still counts: finishing towards a version rolled back from is refused.
    back = RollbackRecord("carol", ("1.2.2",), ("1.2.1",), NOW - timedelta(minutes=3))
    refused = verdict(Decision(action), the_plan=finishing, provenance=Provenance((back,)))
    assert [o.rule for o in refused.objections] == [Rule.ROLLED_BACK_FROM]


ROLLED_BACK_TABLE = [
    # (record, plan target, objection?)
    (ALICE, "1.2.3", True),  # Bob's console planning 1.2.2 -> 1.2.3 after Alice's rollback
    (ALICE, "1.2.1", False),  # an older target is not the one rolled back from
    (RollbackRecord("alice", ("1.2.3",), ("1.2.2",), NOW - timedelta(hours=25)), "1.2.3", False),  # outside 24 h
    (RollbackRecord("alice", ("1.2.3",), ("1.2.2",), None), "1.2.3", True),  # no time: read as recent
    (RollbackRecord("kubectl rollout undo", ("7.3.1",), ("7.2.0",), None, passed_over=(("7.3.0",),),
                    source=ROLLOUT_HISTORY), "7.3.0", True),  # passed over by the undo
]


@pytest.mark.parametrize("record, target, objects", ROLLED_BACK_TABLE)
def test_never_a_version_rolled_back_from_within_the_window(record, target, objects):
    result = verdict(the_plan=plan("1.2.2", target), provenance=Provenance((record,)))
    rules = [o.rule for o in result.objections]
    assert (Rule.ROLLED_BACK_FROM in rules) is objects
    if objects:
        assert result.outcome is Outcome.OVERRIDE and result.record == record


def test_the_refusal_names_who_rolled_back_what_and_when():
    result = verdict(provenance=Provenance((ALICE,)))
    assert ("alice@laptop rolled order-service back from 1.2.3 to 1.2.2 at 14:21 UTC, INC-2026-1204-1421"
            in result.sentence)


def test_the_window_comes_from_the_policy():
    old = RollbackRecord("alice", ("1.2.3",), ("1.2.2",), NOW - timedelta(hours=30))
    assert not recent(old, NOW, GatePolicy())
    assert recent(old, NOW, GatePolicy(rolled_back_window=timedelta(hours=48)))
    assert verdict(provenance=Provenance((old,)), policy=GatePolicy(timedelta(hours=48))).outcome is Outcome.OVERRIDE
    with pytest.raises(ValueError, match="rolled_back_hours"):
        GatePolicy(rolled_back_window=timedelta(hours=-1))


def test_never_a_revision_whose_pods_never_became_ready():
    result = verdict(provenance=Provenance(never_ready=(("1.2.3",),)))
    assert [o.rule for o in result.objections] == [Rule.NEVER_READY]


def test_an_irreversible_migration_objects_and_the_partial_rollback_goes():
    blocked = MigrationView(blocked=True, explanation="Migration 0042 is not reversible.", migration="0042")
    result = verdict(Decision(Action.FIX_FORWARD), migration=blocked)
    assert [o.rule for o in result.objections] == [Rule.MIGRATION, Rule.RUNBOOK]
    partial = verdict(Decision(Action.FIX_FORWARD), migration=MigrationView(migration="0042"))
    assert (partial.outcome, partial.procedure) == (Outcome.GO, Procedure.PARTIAL)
    # ROLLBACK NOW (a security hole) past a blocking migration still needs the override.
    assert verdict(migration=blocked).outcome is Outcome.OVERRIDE


def test_a_reversible_migration_runs_the_three_step_plan():
    result = verdict(migration=MigrationView(reversible_applied=True))
    assert (result.outcome, result.procedure) == (Outcome.GO, Procedure.MIGRATION_PLAN)


def test_every_objection_is_reported_together():
    result = verdict(Decision(Action.HEALTHY), provenance=Provenance((ALICE,), (("1.2.3",),)),
                     migration=MigrationView(blocked=True, explanation="x"))
    assert [o.rule for o in result.objections] == [Rule.ROLLED_BACK_FROM, Rule.NEVER_READY, Rule.MIGRATION, Rule.RUNBOOK]


# --- the override -------------------------------------------------------------

OVERRIDE_TABLE = [
    # (ask, approvers, outcome, missing contains)
    (ask(), (), Outcome.OVERRIDE, "--force with a reason"),
    (ask(force=True, reason="  "), (), Outcome.OVERRIDE, "a reason"),
    (ask(force=True, reason="customer escalation"), (), Outcome.GO, ""),
    (ask(force=True, reason="x"), ("dana@lead",), Outcome.OVERRIDE, "--approved-by one of dana@lead"),
    (ask(force=True, reason="x", approved_by="eve"), ("dana@lead",), Outcome.OVERRIDE, "eve is not one"),
    (ask(force=True, reason="x", approved_by="dana@lead"), ("dana@lead",), Outcome.GO, ""),
]


@pytest.mark.parametrize("the_ask, approvers, outcome, missing", OVERRIDE_TABLE)
def test_an_override_takes_force_a_reason_and_where_named_an_approver(the_ask, approvers, outcome, missing):
    result = verdict(Decision(Action.INVESTIGATE), the_ask=the_ask, policy=GatePolicy(approvers=approvers))
    assert result.outcome is outcome
    assert missing in result.missing
    if outcome is Outcome.GO:
        assert [o.rule for o in result.overridden] == [Rule.RUNBOOK]


def test_rollback_now_with_nothing_against_it_goes():
    assert verdict() .outcome is Outcome.GO


# --- provenance ---------------------------------------------------------------

def test_the_annotation_round_trips_and_keeps_the_newest():
    value = encode((), ALICE)
    (back,), problems = decode(value)
    assert back == ALICE and problems == ()
    many = value
    for minute in range(15):
        record = RollbackRecord("bot", ("a",), ("b",), NOW + timedelta(minutes=minute))
        many = encode(decode(many)[0], record)
    records, _ = decode(many)
    assert len(records) == 10 and records[-1].at == NOW + timedelta(minutes=14)


def test_a_malformed_annotation_is_a_sentence_not_a_crash():
    provenance = from_annotations({ROLLBACKS_ANNOTATION: "{not json"}, {ROLLBACKS_ANNOTATION: encode((), ALICE)})
    assert provenance.records == (ALICE,)
    assert provenance.problems and "not JSON" in provenance.problems[0]


def test_a_manual_undo_shows_in_the_revision_history():
    # ledger-api: 7.0.0 (1), 7.1.0 (2), 7.2.0 (3), 7.3.0 (4), 7.3.1 (5); `rollout undo --to-revision=3`
    # gives revision 3's ReplicaSet the number 6 and remembers 3.
    replica_sets = [
        ReplicaSetView(1, ("7.0.0",)), ReplicaSetView(2, ("7.1.0",)), ReplicaSetView(4, ("7.3.0",)),
        ReplicaSetView(5, ("7.3.1",)), ReplicaSetView(6, ("7.2.0",), parse_revision_history("3")),
    ]
    when = NOW - timedelta(minutes=2)
    (record,) = undo_records(replica_sets, by="kubectl-rollout", current_at=when, current_revision=6)
    assert (record.by, record.from_versions, record.to_versions, record.at) == ("kubectl-rollout", ("7.3.1",),
                                                                                ("7.2.0",), when)
    assert record.passed_over == (("7.3.0",),)
    # Plain `rollout undo` now would plan 6 -> 5: the gate refuses it.
    result = verdict(the_plan=plan("7.2.0", "7.3.1"), provenance=Provenance((record,)))
    assert result.objections[0].rule is Rule.ROLLED_BACK_FROM and "kubectl-rollout" in result.sentence


def test_an_ordinary_rollout_history_records_nothing():
    assert undo_records([ReplicaSetView(1, ("1",)), ReplicaSetView(2, ("2",)), ReplicaSetView(3, ("3",))]) == ()
    assert parse_revision_history("3, x,5") == (3, 5)


def test_the_manager_of_a_field_comes_from_managed_fields():
    fields = [
        {"manager": "rollback-console", "time": "2026-12-04T14:00:00Z", "fieldsV1": {"f:metadata": {}}},
        {"manager": "kubectl-patch", "time": "2026-12-04T14:25:00Z",
         "fieldsV1": {"f:spec": {"f:selector": {"f:version": {}}}}},
    ]
    assert field_owner(fields, "spec", "selector", "version") == ("kubectl-patch", NOW - timedelta(minutes=5))
    assert field_owner(fields, "spec", "replicas") is None


def test_the_way_further_names_a_colour_for_a_blue_green_service():
    from dataclasses import replace

    switched = replace(plan("1.2.2", "1.2.3"), from_colour="blue", to_colour="green")
    again = verdict(the_plan=switched, provenance=Provenance((ALICE,)), the_ask=ask("alice@laptop"))
    assert again.objections[0].options == ("Pass --to-revision COLOUR (blue or green) to roll back further.",)
    assert verdict(provenance=Provenance((ALICE,)), the_ask=ask("alice@laptop")).objections[0].options == (
        "Pass --to-revision N to roll back further.",)


def test_under_investigate_the_way_past_is_said_as_an_override_not_as_rollback_now():
    """INVESTIGATE FIRST's alternative is "Rollback now"; printed under a refusal
    as a way past, it read as if rolling back were what to do next."""
    result = verdict(Decision(Action.INVESTIGATE, alternatives=("Rollback now",)))
    assert result.objections[0].options == (
        "The runbook allows a rollback once you have investigated: --force with what you found",)
