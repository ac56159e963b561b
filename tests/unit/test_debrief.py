"""The drill debrief: the score's formula, table by table, from recorded events."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from console import incident
from console.drill.debrief import DECISION_POINTS, ON_TIME_POINTS, STEPS_POINTS, debrief, debrief_lines
from console.drill.scenario import load_scenario
from console.model import Event

T0 = datetime(2024, 1, 17, 14, 43, tzinfo=timezone.utc)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def event(seconds: float, new: incident.NewEvent, actor: str = "trainee@drill") -> Event:
    return Event(at(seconds), new.kind, new.text, actor, incident.pairs(new.data))


def choice(seconds: float, what: str) -> Event:
    return event(seconds, incident.NewEvent(incident.NOTE, f"Decision: {what}", {"choice": what, "reason": "drill"}))


def rollback(seconds: float) -> list[Event]:
    started = incident.NewEvent(incident.ROLLBACK_STARTED, "Rollback started", {"reason": "errors"})
    return [event(seconds, started), event(seconds + 40, incident.rollback_completed(), actor="console")]


def sent(seconds: float, kind: str) -> Event:
    return event(seconds, incident.message_sent(kind, kind.replace("_", " ").title()))


def test_the_right_rollback_on_time_with_every_step_scores_100():
    scenario = load_scenario("bad-deploy")  # rollback_now by 5m, no facts
    immediate = ["service-health-verified", "error-rate-dropping", "metrics-stabilizing", "team-notified"]
    events = [*rollback(60), sent(65, "rollback_in_progress"), sent(120, "rollback_complete")]
    events += [event(130, incident.checklist_ticked(item, item)) for item in immediate]
    result = debrief(scenario, T0, events, at(600))
    assert [s.name for s in result.steps if not s.done] == [], result.steps
    assert result.score == 100
    assert result.decided_action == "rollback_now" and result.seconds(result.decided_at) == 60
    assert result.seconds(result.mitigated_at) == 100


def test_a_late_decision_loses_on_time_points_in_proportion():
    scenario = load_scenario("bad-deploy")  # deadline t+300 s, window 300 s
    on_time = debrief(scenario, T0, rollback(299), at(900))
    half_late = debrief(scenario, T0, rollback(450), at(900))
    too_late = debrief(scenario, T0, rollback(700), at(900))
    assert on_time.on_time_points == ON_TIME_POINTS
    assert half_late.on_time_points == ON_TIME_POINTS // 2
    assert too_late.on_time_points == 0
    assert too_late.decision_points == DECISION_POINTS  # still the right call


def test_the_wrong_decision_scores_neither_decision_nor_time():
    scenario = load_scenario("minor-bug")  # hotfix by 2m
    result = debrief(scenario, T0, rollback(30), at(600))
    assert result.decided_action == "rollback_now" and not result.right_decision
    assert result.decision_points == 0 and result.on_time_points == 0
    # The fact the support team revealed at 1m was never declared.
    fact = next(s for s in result.steps if "minor bug workaround" in s.name)
    assert not fact.done and fact.detail == "not declared"


def test_the_first_decision_counts_and_facts_declared_earn_their_share():
    scenario = load_scenario("minor-bug")
    events = [
        event(70, incident.fact_set("minor_bug_workaround", True)),
        choice(90, "hotfix"),
        choice(200, "fix_forward"),
    ]
    result = debrief(scenario, T0, events, at(600))
    assert result.decided_action == "hotfix"
    assert result.score == DECISION_POINTS + ON_TIME_POINTS + STEPS_POINTS
    # Declared the other way round: the fact step is missed, the decision still counts.
    undeclared = debrief(scenario, T0, [event(70, incident.fact_set("minor_bug_workaround", False)), choice(90, "hotfix")], at(600))
    assert undeclared.score == DECISION_POINTS + ON_TIME_POINTS
    assert [s.detail for s in undeclared.steps] == ["declared False"]


def test_no_decision_is_right_only_when_the_runbook_expects_healthy():
    healthy = load_scenario("bad-deploy").model_copy(update={"expect": load_scenario("bad-deploy").expect.model_copy(update={"action": "healthy", "by": None})})
    assert debrief(healthy, T0, [], at(60)).score == 100
    missed = debrief(load_scenario("bad-deploy"), T0, [], at(600))
    assert missed.decided_action is None and missed.decision_points == 0
    # A rollback was expected: its two messages are steps, both missed.
    assert missed.steps_points == 0 and {s.name for s in missed.steps} == {
        "Message sent: Rollback in Progress", "Message sent: Rollback Complete"}


def test_data_corruption_calls_for_frozen_writes_and_the_machine_does_not_decide_for_the_trainee():
    scenario = load_scenario("data-corruption")
    console_choice = event(100, incident.NewEvent(incident.NOTE, "x", {"choice": "rollback"}), actor="console")
    result = debrief(scenario, T0, [console_choice], at(600))
    assert result.decided_action is None
    frozen = next(s for s in result.steps if s.name.startswith("Writes frozen"))
    assert not frozen.done
    later = debrief(scenario, T0, [event(100, incident.writes_frozen(3))], at(600))
    assert next(s for s in later.steps if s.name.startswith("Writes frozen")).done


def test_facts_revealed_after_the_end_are_not_asked_for():
    scenario = load_scenario("data-corruption")  # data_corruption revealed at 90 s
    result = debrief(scenario, T0, [], at(60))
    assert not any("data corruption" in s.name for s in result.steps)


@pytest.mark.parametrize("fmt_key", ["score", "expected", "decided", "time_to_mitigation_seconds", "steps"])
def test_the_debrief_as_data_and_lines_say_the_same(fmt_key):
    result = debrief(load_scenario("bad-deploy"), T0, rollback(60), at(600))
    data = result.to_data()
    assert fmt_key in data
    lines = debrief_lines(data)
    assert lines == result.lines()
    assert lines[0].startswith(f"**Score: {result.score} / 100**")
    assert any("Time to decision:** 1 min 00 s" in line for line in lines)
