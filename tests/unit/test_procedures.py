"""The database procedures as pure state machines, and migration awareness."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from console import incident as incidents
from console.model import Event, Revision
from console.procedures import (
    DATA_CORRUPTION,
    MIGRATION_ROLLBACK,
    Migration,
    ProcedureError,
    Remedy,
    StepStatus,
    check_rollback,
    check_run,
    check_skip,
    fold,
    migration_facts,
    migrations_since_deploy,
    partial_rollback_target,
    rollback_target,
    schema_requirement,
    unknown_state_check,
    version_key,
)

T0 = datetime(2024, 7, 9, 11, 0, tzinfo=timezone.utc)


def _event(new: incidents.NewEvent, seconds: int = 0, actor: str = "op") -> Event:
    return Event(at=T0 + timedelta(seconds=seconds), kind=new.kind, text=new.text, actor=actor,
                 data=incidents.pairs(new.data))


def _started(step: str, n: int = 0, procedure: str = DATA_CORRUPTION) -> Event:
    return _event(incidents.step_started(procedure, step, step), n)


def _done(step: str, n: int = 0, procedure: str = DATA_CORRUPTION, result: str = "") -> Event:
    return _event(incidents.step_done(procedure, step, step, result), n)


def _failed(step: str, n: int = 0, procedure: str = DATA_CORRUPTION) -> Event:
    return _event(incidents.step_failed(procedure, step, step, "it broke"), n)


HISTORY = (
    Revision(1, ("r/app:4.8.0",), created=T0 - timedelta(days=30)),
    Revision(2, ("r/app:4.9.0",), created=T0 - timedelta(days=6)),
    Revision(3, ("r/app:5.0.0",), created=T0 - timedelta(minutes=4), current=True),
)


def test_a_fresh_corruption_response_starts_at_freezing_writes_and_runs_in_order():
    state = fold(DATA_CORRUPTION, [])
    assert not state.started and state.current.id == "freeze"
    assert [s.label for s in state.steps][:2] == ["1. IMMEDIATELY stop writes", "2. Assess damage"]
    with pytest.raises(ProcedureError, match="cannot run before step 1"):
        check_run(state, "assess")
    assert check_run(state, "freeze").id == "freeze"


def test_freezing_remembers_the_replica_count_until_writes_resume():
    events = [_started("freeze"), _event(incidents.writes_frozen(3), 1), _done("freeze", 2),
              _event(incidents.writes_frozen(0), 3)]  # a second freeze must not forget the 3
    state = fold(DATA_CORRUPTION, events)
    assert state.frozen_replicas == 3 and state.current.id == "assess"
    state = fold(DATA_CORRUPTION, events + [_event(incidents.writes_resumed(3), 4)])
    assert state.frozen_replicas is None


def test_restore_and_fix_script_are_alternatives():
    base = [_done("freeze"), _done("assess", 1)]
    state = fold(DATA_CORRUPTION, base)
    assert check_run(state, "fix").id == "fix"  # the restore does not block its alternative
    with pytest.raises(ProcedureError, match="step 3. Restore from backup if needed"):
        check_run(state, "verify")
    state = fold(DATA_CORRUPTION, base + [_done("fix", 2)])
    assert state.step("restore").status is StepStatus.NOT_NEEDED
    assert state.current.id == "verify"


def test_a_failure_leaves_the_procedure_at_the_failed_step_to_retry():
    state = fold(DATA_CORRUPTION, [_done("freeze"), _done("assess", 1), _started("restore", 2), _failed("restore", 3)])
    assert state.stopped.id == "restore" and state.stopped.error == "it broke"
    assert check_run(state, "restore").id == "restore"
    state = fold(DATA_CORRUPTION, [_done("freeze"), _done("assess", 1), _failed("restore", 3), _done("restore", 4)])
    assert state.stopped is None and state.current.id == "verify"


def test_an_interrupted_step_stays_current_and_can_run_again():
    state = fold(DATA_CORRUPTION, [_done("freeze"), _started("assess", 1)])
    assert state.current.id == "assess" and state.current.status is StepStatus.RUNNING
    assert check_run(state, "assess").id == "assess"


def test_a_skip_needs_a_reason_and_is_recorded():
    state = fold(DATA_CORRUPTION, [])
    with pytest.raises(ProcedureError, match="needs a reason"):
        check_skip(state, "freeze", " ")
    with pytest.raises(ValueError, match="needs a reason"):
        incidents.step_skipped(DATA_CORRUPTION, "freeze", "freeze", "")
    state = fold(DATA_CORRUPTION, [_event(incidents.step_skipped(DATA_CORRUPTION, "freeze", "1. stop", "read-only"))])
    assert state.step("freeze").status is StepStatus.SKIPPED and state.step("freeze").reason == "read-only"
    with pytest.raises(ProcedureError, match="already skipped"):
        check_skip(state, "freeze", "again")


def test_the_procedures_do_not_see_each_others_steps_and_a_finished_one_starts_over():
    steps = ("app_rollback", "migration_rollback", "integrity_check")
    events = [_done(s, i, MIGRATION_ROLLBACK) for i, s in enumerate(steps)]
    assert fold(MIGRATION_ROLLBACK, events).finished
    assert not fold(DATA_CORRUPTION, events).started
    again = fold(MIGRATION_ROLLBACK, events + [_started("app_rollback", 9, MIGRATION_ROLLBACK)])
    assert not again.finished and again.step("migration_rollback").status is StepStatus.PENDING


def test_only_migrations_after_the_previous_deploy_count_and_unknown_reversibility_is_not_reversible():
    migrations = [
        Migration("0041_add_index", T0 - timedelta(days=20), True),
        Migration("0042_split_address", T0 - timedelta(minutes=5)),  # pre-deploy job of revision 3
    ]
    since = migrations_since_deploy(migrations, HISTORY)
    assert [m.name for m in since] == ["0042_split_address"]
    facts = migration_facts(since)
    assert facts.migration_applied and facts.migration_reversible is None
    assert facts.migration_name == "0042_split_address (applied 2024-07-09 10:55 UTC)"
    mixed = migration_facts([Migration("a", T0, True), Migration("b", T0, False)])
    assert mixed.migration_reversible is False
    # Each named with what it is, the one that blocks first: "a, b: not reversible" said it of both.
    assert mixed.migration_name == ("b (applied 2024-07-09 11:00 UTC) [not reversible], "
                                    "a (applied 2024-07-09 11:00 UTC) [reversible]")
    assert migration_facts([Migration("a", T0, True)]).migration_reversible is True
    assert migration_facts([]).migration_applied is False
    assert migrations_since_deploy([Migration("0042", None)], HISTORY) == ()  # no time: cannot be placed


def test_migration_names_sort_naturally():
    assert version_key("0042_split") > version_key("0041_add")
    assert version_key("10_x") > version_key("9_x")
    assert version_key("20240709_a") > version_key("20240101_z")


def test_a_plain_rollback_past_an_irreversible_migration_is_blocked_with_three_options():
    since = [Migration("0042_split_address", T0 - timedelta(minutes=5), False)]
    check = check_rollback(rollback_target(HISTORY), since, {}, HISTORY)
    assert check.blocked and "data loss" in check.explanation and "is not reversible" in check.explanation
    assert [o.title.split(":")[0] for o in check.options] == ["Option 1", "Option 2", "Option 3"]
    assert not any(o.available for o in check.options)


def test_a_revision_that_needs_the_new_schema_is_the_partial_rollback_target():
    since = [Migration("0042_split_address", T0 - timedelta(minutes=5), False)]
    requirements = {"4.9.0": "0042_split_address", "1": "0039_init"}
    assert partial_rollback_target(HISTORY, requirements, "0042_split_address").number == 2
    assert not check_rollback(rollback_target(HISTORY), since, requirements, HISTORY).blocked
    check = check_rollback(rollback_target(HISTORY, 1), since, requirements, HISTORY)
    assert check.blocked and check.options[2].to_revision == 2
    assert not check_rollback(rollback_target(HISTORY), [Migration("x", T0, True)], {}, HISTORY).blocked


def test_a_revision_marked_with_its_schema_is_the_partial_target_unless_the_config_says_otherwise():
    since = [Migration("0042_split_address", T0 - timedelta(minutes=5), False)]
    marked = tuple(replace(r, schema="0042_split_address") if r.number == 2 else r for r in HISTORY)
    assert schema_requirement(marked[1], {}) == "0042_split_address"
    assert not check_rollback(rollback_target(marked), since, {}, marked).blocked
    assert check_rollback(rollback_target(marked, 1), since, {}, marked).options[2].to_revision == 2
    # The config wins over the release's own mark (an operator correcting a wrong label).
    correction = {"4.9.0": "0041_add_index"}
    assert schema_requirement(marked[1], correction) == "0041_add_index"
    assert check_rollback(rollback_target(marked), since, correction, marked).blocked


def test_an_unreadable_migration_state_blocks_with_the_reason_and_the_options():
    check = unknown_state_check("Cannot read the migration state of svc: psql failed.",
                                hotfix=Remedy(url="https://ci.example/hotfix"))
    assert check.blocked and check.migration is None
    assert check.explanation.startswith("Cannot read the migration state of svc: psql failed; a migration")
    assert "could lose data" in check.explanation
    assert check.options[0].url == "https://ci.example/hotfix" and check.options[2].to_revision is None


def test_blue_green_colours_go_back_to_the_other_colour_whatever_their_numbers():
    # Each colour's Deployment numbers its own revisions: blue may carry a higher number than live green.
    green = Revision(2, ("checkout:1.5.0",), created=T0 - timedelta(minutes=3), current=True, colour="green")
    blue = Revision(3, ("checkout:1.4.0",), created=T0 - timedelta(days=3), colour="blue")
    history = (blue, green)
    assert rollback_target(history) == blue
    assert rollback_target(history, 3) == blue
    assert rollback_target((blue, replace(green, number=3)), 3) is None  # both carry 3: not one revision
    since = migrations_since_deploy([Migration("0042_split_address", T0 - timedelta(days=1))], history)
    assert [m.name for m in since] == ["0042_split_address"]  # after blue went live, so crossed going back to it
    assert (blue.label, green.label) == ("blue · revision 3", "green · revision 2")
