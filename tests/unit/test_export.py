"""The incident export (console/export.py) from a timeline written by hand:
Markdown for the ticket, JSON for tools, both with the timeline, metrics
before and after, messages as posted, checklist state and decisions with reasons."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from console import incident
from console.checklist import tick
from console.checklist import DEFAULT_CHECKLIST
from console.comms import slack_payload
from console.export import ExportError, export_incident, gather, record_export, render, resolve_incident, to_data
from console.incident import RollbackStatus
from console.model import Action, Decision, Reason, RollbackPlan, Table
from console.store import Store

T0 = datetime(2024, 1, 17, 14, 45, tzinfo=timezone.utc)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "incidents.db") as s:
        yield s


def add(store: Store, incident_id: str, event: incident.NewEvent, when: datetime, actor: str = "console") -> None:
    store.append(incident_id, event.kind, event.text, when, actor=actor, data=event.data)


@pytest.fixture
def recorded(store: Store) -> str:
    """order-service, 8 % errors, rolled back 1.2.3 -> 1.2.2 in 4 minutes, message sent, two ticks."""
    iid = store.open_incident("order-service", T0, title="deploy gone bad")
    decision = Decision(Action.ROLLBACK_NOW, (Reason(Table.ROLLBACK_IMMEDIATELY, "Error rate > 5%", "8.0 %"),))
    add(store, iid, incident.decided(decision), at(0))
    add(store, iid, incident.fact_set("customer_impact_since", at(-1)), at(0.5), actor="oncall@host")
    add(store, iid, incident.NewEvent(incident.NOTE, "Decision: Roll back (reason: errors above 5 %)",
                                      {"choice": "rollback", "reason": "errors above 5 %"}), at(0.6), actor="oncall@host")
    plan = RollbackPlan("order-service", "kubernetes", 3, 2, ("r/order-service:1.2.3",), ("r/order-service:1.2.2",))
    started = incident.rollback_started(plan, reason="Error rate spiked to 8%")
    started.data["before"] = {"error_rate": 0.08, "latency_p95_ms": 2000.0}
    add(store, iid, started, at(1), actor="oncall@host")
    add(store, iid, incident.NewEvent(incident.ROLLBACK_PROGRESS, 'deployment "order-service" successfully rolled out'), at(5))
    add(store, iid, incident.rollback_completed("Rollback complete: order-service on 1.2.2"), at(5))
    add(store, iid, incident.NewEvent(incident.NOTE, "Metrics after the rollback: error rate 0.10 %, p95 250 ms",
                                      {"metrics_after": {"error_rate": 0.001, "latency_p95_ms": 250.0}}), at(7))
    from console.comms import Message, MessageKind

    message = Message(MessageKind.ROLLBACK_COMPLETE, "✅ Rollback Complete", "## ✅ Rollback Complete\n",
                      fields=(("Service", "order-service"),), sections=(("Metrics", ("Error rate: 0.1% (was 8%)",)),))
    entry = store.outbox_add(iid, message.kind.value, message.label, slack_payload(message), at(7))
    store.outbox_mark_sent(entry.id, at(7))
    add(store, iid, incident.message_sent(message.kind.value, message.label, "Slack", entry.id), at(7))
    add(store, iid, incident.checklist_ticked("service-health-verified", "Service health verified",
                                              "health endpoint healthy and 3/3 pods ready"), at(6))
    add(store, iid, tick(DEFAULT_CHECKLIST, "incident-ticket-created"), at(8), actor="oncall@host")
    return iid


def test_json_holds_the_whole_record(store, recorded) -> None:
    data = json.loads(export_incident(store, recorded, "json", at(70)))
    assert data["incident"] == recorded and data["service"] == "order-service"
    assert data["rollback"]["status"] == RollbackStatus.COMPLETED.value
    assert (data["rollback"]["from_versions"], data["rollback"]["to_versions"]) == (["1.2.3"], ["1.2.2"])
    assert data["rollback"]["duration_seconds"] == 240
    assert data["rollback"]["reason"] == "Error rate spiked to 8%"
    assert data["metrics"] == {"before": {"error_rate": 0.08, "latency_p95_ms": 2000.0},
                               "after": {"error_rate": 0.001, "latency_p95_ms": 250.0}}
    decisions = data["decisions"]
    assert decisions[0]["kind"] == "runbook" and decisions[0]["reasons"] == ["Error rate > 5%: 8.0 %"]
    assert {"kind": "operator", "decision": "rollback", "by": "oncall@host"}.items() <= decisions[1].items()
    assert decisions[1]["reasons"] == ["errors above 5 %"]
    assert data["facts"]["customer_impact_since"] == at(-1).isoformat()
    assert data["messages"][0]["label"] == "Rollback Complete" and data["messages"][0]["sent"]
    assert "Error rate: 0.1% (was 8%)" in data["messages"][0]["text"]
    items = {i["item"]: i for i in data["checklist"]}
    assert items["Service health verified"]["done"] and items["Service health verified"]["by"] == "console"
    assert items["Incident ticket created"]["by"] == "oncall@host"
    # 70 minutes on: 65 after completion, the Short-term hour has passed.
    assert items["Stakeholders notified"]["overdue"] and not items["Root cause identified"]["overdue"]
    assert items["Metrics stabilizing"]["overdue"]  # Immediate, never ticked
    kinds = [e["kind"] for e in data["timeline"]]
    assert kinds[0] == incident.INCIDENT_OPENED and kinds.count(incident.ROLLBACK_COMPLETED) == 1
    assert all(e["at"].endswith("+00:00") for e in data["timeline"])
    # Customer impact since 14:44, now 15:55: more than 30 minutes -> Level 4.
    assert data["escalation"]["level"] == 4


def test_markdown_reads_like_the_ticket(store, recorded) -> None:
    text = export_incident(store, recorded, "md", at(70))
    assert text.startswith(f"# Incident {recorded}: order-service\n")
    assert "- **Version:** 1.2.3 → 1.2.2 (revision 3 → 2)" in text
    assert "- **Duration:** 4 minutes" in text
    assert "| Error rate | 8% | 0.1% |" in text and "| Latency p95 | 2000ms | 250ms |" in text
    assert "**Decision: Roll back (reason: errors above 5 %)** (oncall@host)" in text
    assert "### Rollback Complete (as posted)" in text
    assert "- [x] Service health verified (console: health endpoint healthy and 3/3 pods ready, 14:51:00)" in text
    assert "- [x] Incident ticket created (oncall@host, 14:53:00)" in text
    assert "- [ ] Stakeholders notified (OVERDUE since 15:50:00)" in text
    assert "| 2024-01-17 14:50:00 UTC | rollback.completed | console | Rollback complete: order-service on 1.2.2 |" in text
    assert "Level 4 (Management)" in text


def test_an_unsent_message_is_in_the_export(store, recorded) -> None:
    entry = store.outbox_add(recorded, "rollback_in_progress", "Rollback in Progress", {"text": "*🚨 Rollback*"}, at(9))
    store.outbox_mark_failed(entry.id, at(9), "Slack answered HTTP 500")
    add(store, recorded, incident.message_failed("rollback_in_progress", "Rollback in Progress",
                                                 "Slack answered HTTP 500", "Slack", entry.id), at(9))
    data = to_data(gather(store, recorded, at(10)))
    assert data["unsent_messages"] == [{"label": "Rollback in Progress", "attempts": 1,
                                        "last_error": "Slack answered HTTP 500", "text": "*🚨 Rollback*"}]
    text = render(gather(store, recorded, at(10)), "md")
    assert "Rollback in Progress: NOT sent to Slack: Slack answered HTTP 500" in text
    assert "### Rollback in Progress (NOT sent after 1 attempts: Slack answered HTTP 500)" in text


def test_recording_the_export_ticks_logs_preserved(store, recorded) -> None:
    record_export(store, recorded, "/tmp/INC.md", at(10))
    data = json.loads(export_incident(store, recorded, "json", at(11)))
    item = next(i for i in data["checklist"] if i["item"] == "Logs preserved for investigation")
    assert item["done"] and item["why"] == "timeline exported to /tmp/INC.md"


def test_which_incident(store, recorded) -> None:
    later = store.open_incident("payment-service", at(30))
    assert resolve_incident(store, None, latest=True) == later
    assert resolve_incident(store, recorded, latest=False) == recorded
    with pytest.raises(ExportError, match="There is no incident INC-nope"):
        resolve_incident(store, "INC-nope", latest=False)
    with pytest.raises(ExportError, match="--latest"):
        resolve_incident(store, None, latest=False)
    with pytest.raises(ExportError, match="not both"):
        resolve_incident(store, recorded, latest=True)
    with pytest.raises(ExportError, match="Unknown export format"):
        export_incident(store, recorded, "pdf", at(1))
