"""Incident state as the fold of its timeline, and the runbook's escalation."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from console import incident as inc
from console.clock import FrozenClock
from console.decision import evaluate
from console.model import Action, Decision, Event, Facts, Metrics, Progress, RollbackPlan, Snapshot

T0 = datetime(2024, 1, 17, 14, 45, tzinfo=timezone.utc)
ID = "INC-20240117-1445-order-service"


class Timeline:
    """Events as the store would hand them back (payload round-tripped through JSON)."""

    def __init__(self, clock: FrozenClock) -> None:
        self.clock = clock
        self.events: list[Event] = []

    def add(self, new: inc.NewEvent, after: float = 0) -> Event:
        self.clock.advance(after)
        event = Event(self.clock.now(), new.kind, new.text, data=inc.pairs(new.data))
        self.events.append(event)
        return event

    def state(self) -> inc.IncidentState:
        return inc.rebuild(ID, self.events)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(T0)


@pytest.fixture
def tl(clock) -> Timeline:
    t = Timeline(clock)
    t.add(inc.opened("order-service", "error rate 8 %"))
    return t


PLAN = RollbackPlan(
    service="order-service",
    platform="kubernetes",
    from_revision=3,
    to_revision=2,
    from_images=("registry.example.com/order-service:1.2.3",),
    to_images=("registry.example.com/order-service:1.2.2",),
)


def test_opened_incident_state(tl):
    s = tl.state()
    assert (s.id, s.service, s.title, s.opened_at) == (ID, "order-service", "error rate 8 %", T0)
    assert s.rollback.status is inc.RollbackStatus.NONE
    assert s.facts == Facts() and s.decisions == () and s.closed_at is None


def test_rebuild_refuses_a_timeline_without_its_opening():
    with pytest.raises(ValueError, match="does not start with its opening"):
        inc.rebuild(ID, [Event(T0, inc.NOTE, "hello")])


def test_payload_round_trips_through_event_data():
    data = {"b": 1, "a": [1, "x"], "when": T0, "none": None, "flag": True}
    event = Event(T0, inc.NOTE, "n", data=inc.pairs(data))
    assert [k for k, _ in event.data] == ["a", "b", "flag", "none", "when"]
    assert inc.payload(event) == {"b": 1, "a": [1, "x"], "when": T0.isoformat(), "none": None, "flag": True}


def test_facts_are_set_and_withdrawn(tl):
    tl.add(inc.fact_set("migration_applied", True))
    tl.add(inc.fact_set("migration_reversible", False))
    tl.add(inc.fact_set("migration_name", "0042_drop_column"))
    tl.add(inc.fact_set("investigation_started_at", T0 + timedelta(minutes=1)))
    tl.add(inc.fact_set("external_service_issue", True))
    tl.add(inc.fact_set("external_service_issue", False))
    f = tl.state().facts
    assert f == Facts(
        migration_applied=True,
        migration_reversible=False,
        migration_name="0042_drop_column",
        investigation_started_at=T0 + timedelta(minutes=1),
    )
    assert tl.state().investigation_started_at == T0 + timedelta(minutes=1)
    assert tl.events[-1].text == "Fact withdrawn: external service issue"
    # Reversibility false is a finding, not a claim taken back.
    assert [inc.fact_set("migration_reversible", v).text for v in (True, False, None)] == [
        "Fact: the migration is reversible", "Fact: the migration is NOT reversible",
        "Fact: the migration's reversibility is unknown (treated as not reversible)"]


def test_unknown_fact_is_refused_when_written_and_ignored_when_read(tl):
    with pytest.raises(ValueError, match="not a fact"):
        inc.fact_set("moon_phase", True)
    tl.add(inc.NewEvent(inc.FACT_SET, "from the future", {"name": "moon_phase", "value": True}))
    tl.add(inc.NewEvent("kind.from.the.future", "?"))
    assert tl.state().facts == Facts()


def test_decision_history(tl):
    snapshot = Snapshot("order-service", T0, metrics=Metrics(error_rate=0.08))
    decision = evaluate(snapshot, Facts(), T0)
    tl.add(inc.decided(decision), after=5)
    assert tl.events[-1].text == "ROLLBACK NOW: Error rate > 5%: 8.0 %"
    s = tl.state()
    assert s.decision == inc.DecisionRecord(T0 + timedelta(seconds=5), Action.ROLLBACK_NOW, ("Error rate > 5%: 8.0 %",))
    assert len(s.decisions) == 1


def test_rollback_lifecycle_completed(tl, clock):
    tl.add(inc.rollback_started(PLAN), after=60)
    s = tl.state()
    assert s.rollback.status is inc.RollbackStatus.IN_PROGRESS
    assert (s.rollback.from_revision, s.rollback.to_revision) == (3, 2)
    assert (s.rollback.from_versions, s.rollback.to_versions) == (("1.2.3",), ("1.2.2",))
    assert s.rollback.started_at == T0 + timedelta(seconds=60)
    assert tl.events[-1].text == "Rollback started: order-service 1.2.3 -> 1.2.2"

    progress = Progress("Waiting for deployment rollout to finish: 1 of 3 updated replicas are available...",
                        clock.now(), updated=1, ready=1, desired=3)
    tl.add(inc.rollback_progress(progress), after=30)
    assert tl.state().rollback.last_message.startswith("Waiting for deployment")

    tl.add(inc.rollback_completed(), after=210)
    rb = tl.state().rollback
    assert rb.status is inc.RollbackStatus.COMPLETED
    assert rb.finished_at == T0 + timedelta(seconds=300)
    assert rb.duration(clock.now()) == timedelta(minutes=4)


def test_failed_rollback_then_retry_keeps_the_failure_count(tl):
    tl.add(inc.rollback_started(PLAN), after=10)
    tl.add(inc.rollback_failed("The rollout did not finish within 300 s."), after=300)
    s = tl.state()
    assert s.rollback.status is inc.RollbackStatus.FAILED
    assert s.rollback.error == "The rollout did not finish within 300 s."
    assert s.rollback.failures == 1
    tl.add(inc.rollback_started(PLAN), after=10)
    s = tl.state()
    assert s.rollback.status is inc.RollbackStatus.IN_PROGRESS
    assert s.rollback.error is None and s.rollback.failures == 1


def test_freeze_writes_remembers_the_replica_count(tl):
    tl.add(inc.writes_frozen(3))
    tl.add(inc.writes_frozen(0))  # a second freeze sees 0 replicas and must not win
    s = tl.state()
    assert s.writes_frozen and s.frozen_replicas == 3
    tl.add(inc.writes_resumed(3))
    assert not tl.state().writes_frozen


def test_close_and_notes(tl):
    tl.add(inc.note("Paged the DBA"), after=1)
    tl.add(inc.closed(), after=1)
    assert tl.state().closed_at == T0 + timedelta(seconds=2)


# --- escalation -------------------------------------------------------------------------


def test_level_1_on_the_alert(tl, clock):
    assert inc.escalation_level(tl.state(), clock.now()) == (1, "Alert", None)


def test_level_2_when_rollback_fails(tl, clock):
    tl.add(inc.rollback_started(PLAN))
    tl.add(inc.rollback_failed("The API server refused the patch."))
    level, why, _ = inc.escalation_level(tl.state(), clock.now())
    assert (level, why) == (2, "Rollback failed: The API server refused the patch.")


@pytest.mark.parametrize(
    "facts",
    [
        [("data_corruption", True)],
        [("migration_applied", True)],
        [("migration_applied", True), ("migration_reversible", False)],
    ],
)
def test_level_2_on_a_data_issue(tl, clock, facts):
    for name, value in facts:
        tl.add(inc.fact_set(name, value))
    level, why, _ = inc.escalation_level(tl.state(), clock.now())
    assert level == 2 and why.startswith("Data issue")


def test_reversible_migration_is_not_a_data_issue(tl, clock):
    tl.add(inc.fact_set("migration_applied", True))
    tl.add(inc.fact_set("migration_reversible", True))
    assert inc.escalation_level(tl.state(), clock.now())[0] == 1


def test_level_3_on_infrastructure_issue_beats_level_2(tl, clock):
    tl.add(inc.fact_set("data_corruption", True))
    tl.add(inc.fact_set("infrastructure_issue", True))
    assert inc.escalation_level(tl.state(), clock.now())[:2] == (3, "Infrastructure issue")


def test_level_4_after_more_than_30_minutes_of_customer_impact(tl, clock):
    tl.add(inc.fact_set("customer_impact_since", T0))
    state = tl.state()
    assert inc.escalation_level(state, T0 + timedelta(minutes=10)) == (1, "Alert", T0 + timedelta(minutes=30))
    # Exactly 30 minutes is not yet "> 30 min".
    assert inc.escalation_level(state, T0 + timedelta(minutes=30))[0] == 1
    clock.advance(30 * 60 + 1)
    level, why, next_at = inc.escalation_level(state, clock.now())
    assert (level, next_at) == (4, None)
    assert why == "Customer-impacting for 30 min (more than 30 min)"


def test_customer_impact_limit_is_a_parameter(tl):
    tl.add(inc.fact_set("customer_impact_since", T0))
    assert inc.escalation_level(tl.state(), T0 + timedelta(minutes=11), timedelta(minutes=10))[0] == 4


def test_impact_clock_starts_at_the_first_problem_and_stops_when_healthy(tl, clock):
    bad = evaluate(Snapshot("order-service", T0, metrics=Metrics(error_rate=0.08)), Facts(), T0)
    good = evaluate(Snapshot("order-service", T0, metrics=Metrics(error_rate=0.001)), Facts(), T0)
    tl.add(inc.decided(bad), after=60)
    tl.add(inc.decided(bad), after=60)  # a repeat does not restart the clock
    assert tl.state().customer_impact_since == T0 + timedelta(seconds=60)
    assert inc.escalation_level(tl.state(), T0 + timedelta(minutes=31, seconds=1))[0] == 4
    tl.add(inc.decided(good), after=60)
    assert tl.state().customer_impact_since is None
    assert inc.escalation_level(tl.state(), T0 + timedelta(hours=2))[0] == 1


def test_an_impact_that_ended_keeps_its_length_while_the_escalation_clock_resets(tl, clock):
    bad = evaluate(Snapshot("order-service", T0, metrics=Metrics(error_rate=0.08)), Facts(), T0)
    good = evaluate(Snapshot("order-service", T0, metrics=Metrics(error_rate=0.001)), Facts(), T0)
    assert inc.customer_impact(tl.state()) is None
    tl.add(inc.decided(bad), after=60)
    assert inc.customer_impact(tl.state()) == inc.Impact(T0 + timedelta(seconds=60))
    assert inc.customer_impact(tl.state()).duration(T0 + timedelta(minutes=5)) == timedelta(minutes=4)
    tl.add(inc.decided(bad), after=600)
    tl.add(inc.decided(good), after=240)
    ended = T0 + timedelta(minutes=15)
    impact = inc.customer_impact(tl.state())
    assert impact == inc.Impact(T0 + timedelta(seconds=60), ended)
    # Ended: the length no longer grows with the clock; the escalation clock is reset.
    assert impact.duration(T0 + timedelta(hours=3)) == timedelta(minutes=14)
    assert tl.state().customer_impact_since is None
    assert inc.escalation_level(tl.state(), T0 + timedelta(hours=3))[0] == 1
    # Unknown signals neither end nor start one; a new problem starts a new impact.
    unknown = Decision(Action.SIGNALS_UNAVAILABLE, ("Prometheus did not answer",))
    tl.add(inc.decided(unknown), after=60)
    assert inc.customer_impact(tl.state()) == impact
    tl.add(inc.decided(bad), after=60)
    assert inc.customer_impact(tl.state()) == inc.Impact(ended + timedelta(minutes=2))


def test_the_operators_impact_start_is_kept_when_the_impact_ends(tl):
    bad = evaluate(Snapshot("order-service", T0, metrics=Metrics(error_rate=0.08)), Facts(), T0)
    good = evaluate(Snapshot("order-service", T0, metrics=Metrics(error_rate=0.001)), Facts(), T0)
    tl.add(inc.fact_set("customer_impact_since", T0 - timedelta(minutes=20)))
    assert inc.customer_impact(tl.state()) == inc.Impact(T0 - timedelta(minutes=20))
    tl.add(inc.decided(bad), after=60)
    tl.add(inc.decided(good), after=540)
    assert inc.customer_impact(tl.state()) == inc.Impact(T0 - timedelta(minutes=20), T0 + timedelta(minutes=10))
    # Declared after the signals recovered: an impact the console did not see end.
    tl.add(inc.fact_set("customer_impact_since", T0 + timedelta(minutes=11)), after=120)
    assert inc.customer_impact(tl.state()) == inc.Impact(T0 + timedelta(minutes=11))


def test_operator_declared_impact_wins_over_the_first_problem_seen(tl):
    bad = evaluate(Snapshot("order-service", T0, metrics=Metrics(error_rate=0.08)), Facts(), T0)
    tl.add(inc.decided(bad), after=600)
    tl.add(inc.fact_set("customer_impact_since", T0 - timedelta(minutes=25)))
    assert tl.state().customer_impact_since == T0 - timedelta(minutes=25)
    assert inc.escalation_level(tl.state(), T0 + timedelta(minutes=6))[0] == 4


def test_escalated_event_records_the_highest_level(tl):
    tl.add(inc.escalated(3, "Infrastructure issue"))
    tl.add(inc.escalated(2, "Rollback failed"))
    assert tl.state().escalated_to == 3
    assert tl.events[1].text == "Escalated to level 3 (SRE/Platform Team): Infrastructure issue"


def test_facts_written_as_a_mapping_of_strings_are_read_back_typed(tl):
    # The shape Session.with_facts writes: several facts, values as str(value).
    data = {
        "data_corruption": "True",
        "migration_reversible": "None",
        "migration_name": "0042_drop_column",
        "customer_impact_since": str(T0),
        "external_service_issue": "False",
    }
    tl.add(inc.NewEvent(inc.FACT_SET, "order-service: facts", data))
    assert tl.state().facts == Facts(
        data_corruption=True, migration_name="0042_drop_column", customer_impact_since=T0
    )


def test_rollback_started_with_images_gives_versions(tl):
    data = {"from_revision": 3, "to_revision": 2,
            "from_images": ["registry.example.com/order-service:1.2.3"],
            "to_images": ["registry.example.com/order-service:1.2.2"]}
    tl.add(inc.NewEvent(inc.ROLLBACK_STARTED, "started", data))
    rb = tl.state().rollback
    assert (rb.from_versions, rb.to_versions) == (("1.2.3",), ("1.2.2",))


def test_the_banner_follows_the_rollback_through_its_phases(clock: FrozenClock) -> None:
    """ROLLING BACK with its step, VERIFYING until the pods are ready, ROLLED BACK
    (watching) until the signals' windows start after it, then the signals again."""
    timeline = Timeline(clock)
    timeline.add(inc.opened("order-service"))
    assert inc.rollback_phase(timeline.state(), clock.now()) is None
    timeline.add(inc.rollback_started(PLAN))
    timeline.add(inc.rollback_progress(Progress("1 of 3 updated replicas are available", clock.now())), after=5)
    phase = inc.rollback_phase(timeline.state(), clock.now(), 1, 3)
    assert phase.headline == "ROLLING BACK" and "1 of 3 updated" in phase.detail
    timeline.add(inc.rollback_completed(), after=20)
    settle = timedelta(minutes=2)
    assert inc.rollback_phase(timeline.state(), clock.now(), 2, 3, settle).headline == "VERIFYING"
    watching = inc.rollback_phase(timeline.state(), clock.now(), 3, 3, settle)
    assert watching.headline == "ROLLED BACK (watching)" and watching.until == clock.now() + settle
    assert "2:00" in watching.detail
    clock.advance(settle.total_seconds())
    assert inc.rollback_phase(timeline.state(), clock.now(), 3, 3, settle) is None


def test_decide_by_counts_from_the_first_investigate_verdict(clock: FrozenClock) -> None:
    timeline = Timeline(clock)
    timeline.add(inc.opened("order-service"))
    timeline.add(inc.decided(Decision(Action.ROLLBACK_NOW)))
    assert inc.investigate_since(timeline.state()) is None
    first = timeline.add(inc.decided(Decision(Action.INVESTIGATE)), after=30)
    timeline.add(inc.decided(Decision(Action.INVESTIGATE, stale=True)), after=60)
    assert inc.investigate_since(timeline.state()) == first.at


def test_roles_are_set_cleared_and_parsed(clock: FrozenClock) -> None:
    timeline = Timeline(clock)
    timeline.add(inc.opened("order-service"))
    for role, who in inc.parse_roles("ic=@alice comms=@bob ops=@carol").items():
        timeline.add(inc.role_set(role, who))
    state = timeline.state()
    assert state.roles == (("commander", "@alice"), ("comms", "@bob"), ("operations", "@carol"))
    timeline.add(inc.role_set("operations", ""))
    assert timeline.state().role("operations") is None and timeline.state().role("commander") == "@alice"
    with pytest.raises(ValueError, match="ROLE=WHO"):
        inc.parse_roles("boss=@dave")
    with pytest.raises(ValueError, match="Unknown incident role"):
        inc.role_set("boss", "@dave")
