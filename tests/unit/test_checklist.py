"""The Post-Rollback Checklist: the runbook's groups and words, deadlines from
the rollback's completion, ticks as events, and the console's own ticks."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from support import runbook_text

from console import checklist as cl
from console import incident as inc
from console.checklist import DEFAULT_CHECKLIST, Checklist, Observations, evaluate_checklist
from console.clock import FrozenClock
from console.comms import MessageKind
from console.model import Event, Health, Metrics, Point, RollbackPlan

T0 = datetime(2024, 1, 17, 14, 45, tzinfo=timezone.utc)
DONE = T0 + timedelta(minutes=4)  # the rollback completes here
ID = "INC-20240117-1445-order-service"

RUNBOOK_CHECKLIST = """\
## Post-Rollback Checklist

### Immediate (< 5 minutes)
- [ ] Service health verified
- [ ] Error rate dropping
- [ ] Metrics stabilizing
- [ ] Team notified

### Short-term (< 1 hour)
- [ ] Incident ticket created
- [ ] Stakeholders notified
- [ ] Logs preserved for investigation
- [ ] Deployment record updated

### Investigation (< 24 hours)
- [ ] Root cause identified
- [ ] Fix developed
- [ ] Fix tested in staging
- [ ] Deployment plan for fix

### Long-term
- [ ] RCA completed
- [ ] Preventive measures identified
- [ ] Monitoring improved (if needed)
- [ ] Runbook updated
"""

PLAN = RollbackPlan("order-service", "kubernetes", 3, 2,
                    ("registry.example.com/order-service:1.2.3",), ("registry.example.com/order-service:1.2.2",))
HEALTHY = Health(desired=3, ready=3, endpoint_ok=True, endpoint_status="healthy", checked_at=DONE + timedelta(seconds=10))


class Timeline:
    """Events at explicit times, round-tripped like the store does."""

    def __init__(self) -> None:
        self.clock = FrozenClock(T0)
        self.events: list[Event] = []
        self.add(inc.opened("order-service"))

    def add(self, new: inc.NewEvent, at: datetime | None = None, actor: str = "console") -> Timeline:
        self.events.append(Event(at or self.clock.now(), new.kind, new.text, actor=actor, data=inc.pairs(new.data)))
        return self

    def rolled_back(self) -> Timeline:
        return self.add(inc.rollback_started(PLAN), T0).add(inc.rollback_completed(), DONE)

    def state(self) -> inc.IncidentState:
        return inc.rebuild(ID, self.events)


def series(values: list[float], start: datetime, step: float = 15.0) -> tuple[Point, ...]:
    return tuple(Point(start + timedelta(seconds=i * step), v) for i, v in enumerate(values))


def test_default_checklist_is_the_runbooks():
    assert DEFAULT_CHECKLIST.markdown() == RUNBOOK_CHECKLIST
    assert [(g.name, g.deadline) for g in DEFAULT_CHECKLIST.groups] == [
        ("Immediate", timedelta(minutes=5)),
        ("Short-term", timedelta(hours=1)),
        ("Investigation", timedelta(hours=24)),
        ("Long-term", None),
    ]


def test_the_copy_matches_the_runbook():
    blocks = re.findall(r"```markdown\n(## Post-Rollback Checklist\n.*?)```", runbook_text(), re.S)
    assert blocks == [RUNBOOK_CHECKLIST]


def test_nothing_is_due_before_the_rollback_completes():
    state = Timeline().add(inc.rollback_started(PLAN), T0).state()
    status = evaluate_checklist(state, T0 + timedelta(hours=30), Observations(health=HEALTHY))
    assert all(s.due_at is None and not s.overdue for s in status.items)
    # Health seen mid-rollback describes a half-rolled-back service: no tick.
    assert not status.item("service-health-verified").done


def test_deadlines_count_from_completion_and_go_overdue_strictly_after():
    state = Timeline().rolled_back().state()
    at_deadline = evaluate_checklist(state, DONE + timedelta(minutes=5))
    immediate = at_deadline.item("team-notified")
    assert immediate.due_at == DONE + timedelta(minutes=5)
    assert not immediate.overdue
    later = evaluate_checklist(state, DONE + timedelta(minutes=5, seconds=1))
    assert later.item("team-notified").overdue
    assert not later.item("incident-ticket-created").overdue
    assert later.item("incident-ticket-created").due_at == DONE + timedelta(hours=1)
    assert later.item("root-cause-identified").due_at == DONE + timedelta(hours=24)
    long_term = evaluate_checklist(state, DONE + timedelta(days=30)).item("runbook-updated")
    assert long_term.due_at is None and not long_term.overdue
    assert {s.item.id for s in later.overdue} == {
        "service-health-verified", "error-rate-dropping", "metrics-stabilizing", "team-notified"}


def test_operator_ticks_and_unticks_are_folded_from_events():
    timeline = Timeline().rolled_back()
    timeline.add(cl.tick(DEFAULT_CHECKLIST, "incident-ticket-created"), DONE + timedelta(minutes=2), actor="alice")
    status = evaluate_checklist(timeline.state(), DONE + timedelta(hours=2))
    item = status.item("incident-ticket-created")
    assert (item.done, item.by, item.why, item.done_at, item.overdue) == (
        True, "alice", "", DONE + timedelta(minutes=2), False)
    assert not item.by_console
    timeline.add(cl.untick(DEFAULT_CHECKLIST, "incident-ticket-created"), DONE + timedelta(minutes=3), actor="alice")
    item = evaluate_checklist(timeline.state(), DONE + timedelta(hours=2)).item("incident-ticket-created")
    assert (item.done, item.by, item.overdue) == (False, None, True)


def test_console_ticks_health_from_a_verification_after_completion():
    state = Timeline().rolled_back().state()
    status = evaluate_checklist(state, DONE + timedelta(seconds=20), Observations(health=HEALTHY))
    item = status.item("service-health-verified")
    assert (item.done, item.by, item.why) == (True, "console", "health endpoint healthy and 3/3 pods ready")
    assert item.by_console and item.unrecorded
    for health in (
        Health(desired=3, ready=2, endpoint_ok=True),
        Health(desired=3, ready=3, endpoint_ok=False, endpoint_status="HTTP 503"),
        Health(desired=3, ready=3, endpoint_ok=True, checked_at=DONE - timedelta(seconds=1)),
        Health(desired=3, ready=3, endpoint_ok=True, error="the cluster did not answer"),
    ):
        assert not evaluate_checklist(state, DONE, Observations(health=health)).item("service-health-verified").done
    no_endpoint = evaluate_checklist(state, DONE, Observations(health=Health(desired=3, ready=3)))
    assert no_endpoint.item("service-health-verified").why == "3/3 pods ready (no health endpoint configured)"


def test_console_ticks_error_rate_dropping():
    state = Timeline().rolled_back().state()
    seen = Observations(metrics=Metrics(error_rate=0.001), before=Metrics(error_rate=0.08))
    item = evaluate_checklist(state, DONE, seen).item("error-rate-dropping")
    assert (item.done, item.why) == (True, "error rate 0.1 % down from 8.0 %")
    # Lower, but still a rate the runbook rolls back for: not dropping yet.
    still_bad = Observations(metrics=Metrics(error_rate=0.06), before=Metrics(error_rate=0.08))
    assert not evaluate_checklist(state, DONE, still_bad).item("error-rate-dropping").done
    higher = Observations(metrics=Metrics(error_rate=0.09), before=Metrics(error_rate=0.08))
    assert not evaluate_checklist(state, DONE, higher).item("error-rate-dropping").done


def test_error_rate_before_comes_from_history_when_not_given():
    state = Timeline().rolled_back().state()
    history = series([0.001, 0.08, 0.08], T0 - timedelta(seconds=30)) + series([0.02, 0.002], DONE)
    seen = Observations(metrics=Metrics(error_rate=0.002, error_rate_history=history))
    assert evaluate_checklist(state, DONE, seen).item("error-rate-dropping").why == "error rate 0.2 % down from 8.0 %"


def test_console_ticks_metrics_stabilizing_over_the_last_three_samples():
    state = Timeline().rolled_back().state()
    steady = Metrics(
        error_rate_history=series([0.08, 0.03, 0.0012, 0.001, 0.0011], DONE - timedelta(seconds=30)),
        latency_history=series([2000, 900, 260, 250, 245], DONE - timedelta(seconds=30)),
    )
    item = evaluate_checklist(state, DONE + timedelta(minutes=1), Observations(metrics=steady)).item(
        "metrics-stabilizing")
    assert (item.done, item.why) == (True, "error rate and p95 within 10 % over the last 3 samples")
    jumpy = Metrics(error_rate_history=steady.error_rate_history,
                    latency_history=series([2000, 900, 260, 250, 300], DONE - timedelta(seconds=30)))
    assert not evaluate_checklist(state, DONE, Observations(metrics=jumpy)).item("metrics-stabilizing").done
    # Two samples since completion are not three.
    short = Metrics(error_rate_history=series([0.001, 0.001], DONE), latency_history=series([250, 250], DONE))
    assert not evaluate_checklist(state, DONE, Observations(metrics=short)).item("metrics-stabilizing").done
    falling = Metrics(error_rate_history=series([0.04, 0.02, 0.01], DONE), latency_history=series([250] * 3, DONE))
    assert not evaluate_checklist(state, DONE, Observations(metrics=falling)).item("metrics-stabilizing").done


def test_team_notified_when_the_rollback_complete_message_was_sent():
    timeline = Timeline().rolled_back()
    kind = MessageKind.ROLLBACK_COMPLETE
    timeline.add(inc.message_failed(kind.value, kind.label, "Slack did not answer", outbox_id=1), DONE)
    assert not evaluate_checklist(timeline.state(), DONE).item("team-notified").done
    # The in-progress message does not notify the team of the completion.
    timeline.add(inc.message_sent(MessageKind.ROLLBACK_IN_PROGRESS.value, "Rollback in Progress"), DONE)
    assert not evaluate_checklist(timeline.state(), DONE).item("team-notified").done
    timeline.add(inc.message_sent(kind.value, kind.label, outbox_id=1), DONE + timedelta(seconds=5))
    item = evaluate_checklist(timeline.state(), DONE + timedelta(seconds=6)).item("team-notified")
    assert (item.done, item.by, item.why) == (True, "console", "Rollback Complete message sent to Slack")


def test_logs_preserved_when_the_timeline_was_exported():
    timeline = Timeline().rolled_back().add(inc.timeline_exported("/tmp/INC-1.md"), DONE)
    item = evaluate_checklist(timeline.state(), DONE).item("logs-preserved-for-investigation")
    assert (item.done, item.why) == (True, "timeline exported to /tmp/INC-1.md")


def test_console_ticks_are_recorded_once_and_then_stick():
    timeline = Timeline().rolled_back()
    status = evaluate_checklist(timeline.state(), DONE + timedelta(seconds=20), Observations(health=HEALTHY))
    (event,) = status.to_record()
    assert event.kind == inc.CHECKLIST_TICKED
    assert event.data == {"item": "service-health-verified", "why": "health endpoint healthy and 3/3 pods ready"}
    timeline.add(event, DONE + timedelta(seconds=20))
    # Recorded: it stays ticked even when the health observation is gone.
    after = evaluate_checklist(timeline.state(), DONE + timedelta(minutes=10))
    item = after.item("service-health-verified")
    assert (item.done, item.by, item.unrecorded, item.done_at) == (True, "console", False, DONE + timedelta(seconds=20))
    assert after.to_record() == []


def test_an_operators_untick_beats_the_console():
    timeline = Timeline().rolled_back()
    timeline.add(cl.untick(DEFAULT_CHECKLIST, "service-health-verified"), DONE, actor="alice")
    item = evaluate_checklist(timeline.state(), DONE, Observations(health=HEALTHY)).item("service-health-verified")
    assert not item.done


def test_from_items_keeps_known_rules_and_validates():
    custom = Checklist.from_items([
        ("Immediate", timedelta(minutes=2), ["Service health verified", "Pager acknowledged"]),
        ("Later", None, [("Blog post written", None)]),
    ])
    assert [(i.id, i.auto) for i in custom.items] == [
        ("service-health-verified", cl.HEALTH), ("pager-acknowledged", None), ("blog-post-written", None)]
    assert custom.group("Immediate").heading == "Immediate (< 2 minutes)"
    state = Timeline().rolled_back().state()
    status = evaluate_checklist(state, DONE + timedelta(minutes=3), Observations(health=HEALTHY), checklist=custom)
    assert status.item("service-health-verified").done
    assert status.item("pager-acknowledged").overdue
    with pytest.raises(ValueError, match="unknown auto-tick rule"):
        Checklist.from_items([("Now", None, [("Coffee", "caffeine")])])
    with pytest.raises(ValueError, match="unique"):
        Checklist.from_items([("Now", None, ["Coffee", "Coffee"])])


def test_ticks_survive_the_store(tmp_path):
    from console.store import Store

    with Store(tmp_path / "incidents.db") as store:
        incident_id = store.open_incident("order-service", T0)
        tick = cl.tick(DEFAULT_CHECKLIST, "stakeholders-notified")
        store.append(incident_id, tick.kind, tick.text, DONE, actor="alice", data=tick.data)
        state = inc.rebuild(incident_id, store.events(incident_id, newest_first=False))
    assert state.mark("stakeholders-notified") == inc.ChecklistMark("stakeholders-notified", True, DONE, "alice", "")
