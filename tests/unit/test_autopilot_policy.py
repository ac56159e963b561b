"""The autopilot's pure parts: Alertmanager's payload (property-based: any
bytes are a notification or one sentence, never a traceback) and its own
limits on top of the gate, rule by rule."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from console.autopilot.payload import PayloadError, parse, parse_time
from console.autopilot.policy import AutopilotPolicy, PastRollback, Reason, after_gate, before_gate
from console.gate import Objection, Outcome, Procedure, Rule, Verdict
from console.model import Action, Decision

NOW = datetime(2026, 12, 4, 3, 0, tzinfo=timezone.utc)


def alert(**overrides) -> dict:
    base = {"status": "firing", "labels": {"alertname": "AutoRollbackTrigger", "service": "order-service",
                                             "auto_rollback": "true"},
            "annotations": {"summary": "Auto-rollback triggered for order-service"},
            "startsAt": "2026-12-04T02:58:01.123456789Z", "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus/graph", "fingerprint": "c0ffee"}
    return {**base, **overrides}


def payload(*alerts: dict, **overrides) -> bytes:
    body = {"version": "4", "status": "firing", "receiver": "autopilot", "groupKey": "{}", "truncatedAlerts": 0,
            "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {}, "externalURL": "http://am",
            "alerts": list(alerts or [alert()])}
    return json.dumps({**body, **overrides}).encode()


# --- the payload -----------------------------------------------------------------


def test_alertmanagers_payload_parses():
    notification = parse(payload(alert(), alert(status="resolved", fingerprint="beef",
                                                endsAt="2026-12-04T03:00:00Z")))
    first, second = notification.alerts
    assert first.firing and first.name == "AutoRollbackTrigger" and first.label("service") == "order-service"
    assert first.starts_at == datetime(2026, 12, 4, 2, 58, 1, 123456, tzinfo=timezone.utc)
    assert first.ends_at is None  # Alertmanager's zero time: not ended
    assert first.key == ("c0ffee", "2026-12-04T02:58:01.123456+00:00")
    assert not second.firing and second.ends_at == datetime(2026, 12, 4, 3, 0, tzinfo=timezone.utc)


def test_the_same_alert_sent_again_has_the_same_key():
    again = parse(payload(alert(annotations={"summary": "changed"}, startsAt="2026-12-04T04:58:01.123456789+02:00")))
    assert again.alerts[0].key == parse(payload()).alerts[0].key


@pytest.mark.parametrize("body, words", [
    (b"not json", "not JSON"),
    (b"[]", "JSON object"),
    (payload(version="3"), "version 4"),
    (payload(status="pending"), "status must be firing or resolved"),
    (payload(alerts=[]), "non-empty list"),
    (payload(alert(labels={"service": 5})), "alerts[0].labels must map strings to strings"),
    (payload(alert(startsAt="yesterday")), "alerts[0].startsAt must be an RFC 3339 time"),
    (payload(alert(startsAt="2026-12-04T02:58:01")), "time zone"),
    (payload(alert(fingerprint="")), "fingerprint"),
    (payload(alert(status="maybe")), "alerts[0].status"),
])
def test_a_bad_payload_is_one_sentence(body, words):
    with pytest.raises(PayloadError) as caught:
        parse(body)
    assert words in str(caught.value)
    assert str(caught.value).endswith(".")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20)


def _mutated_alert():
    keys = st.sampled_from(["status", "labels", "annotations", "startsAt", "endsAt", "fingerprint"])
    return st.builds(lambda k, v: {**alert(), k: v}, keys, json_values)


@settings(max_examples=300, deadline=None)
@given(st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    _mutated_alert().map(lambda a: payload(a)),
    st.dictionaries(st.sampled_from(["version", "status", "receiver", "alerts"]), json_values)
      .map(lambda d: json.dumps({"version": "4", "status": "firing", **d}).encode()),
))
def test_any_bytes_are_a_notification_or_a_payload_error(body):
    try:
        notification = parse(body)
    except PayloadError as err:
        assert str(err).endswith(".")
        return
    assert notification.alerts and all(a.status in ("firing", "resolved") for a in notification.alerts)


def test_nanosecond_times_read_to_the_microsecond():
    assert parse_time("2026-12-04T02:58:01.1Z", "t") == datetime(2026, 12, 4, 2, 58, 1, 100000, tzinfo=timezone.utc)


# --- the autopilot's own limits ----------------------------------------------------------

POLICY = AutopilotPolicy(cooldown=timedelta(minutes=30), window=timedelta(minutes=10), max_rollbacks=1)


def test_paused_comes_first():
    refusal = before_gate("order-service", NOW, [], POLICY, paused="the file /run/pause exists")
    assert refusal.reason is Reason.PAUSED and refusal.level == 1
    assert "the file /run/pause exists" in refusal.sentence


def test_an_alert_again_within_the_cooldown_escalates_to_level_2():
    past = [PastRollback("order-service", NOW - timedelta(minutes=20))]
    refusal = before_gate("order-service", NOW, past, POLICY, alert_started=NOW - timedelta(minutes=1))
    assert refusal.reason is Reason.COOLDOWN and refusal.level == 2
    assert "02:40:00 UTC" in refusal.sentence and "did not fix it" in refusal.sentence
    later = before_gate("order-service", NOW + timedelta(minutes=11), past, POLICY)
    assert later is None


def test_a_second_bad_service_within_the_window_is_the_blast_radius():
    past = [PastRollback("order-service", NOW - timedelta(minutes=4))]
    refusal = before_gate("user-service", NOW, past, POLICY)
    assert refusal.reason is Reason.BLAST_RADIUS and refusal.level == 3
    assert "order-service" in refusal.sentence
    assert before_gate("user-service", NOW + timedelta(minutes=7), past, POLICY) is None
    roomier = AutopilotPolicy(window=timedelta(minutes=10), max_rollbacks=2)
    assert before_gate("user-service", NOW, past, roomier) is None


def test_an_alert_older_than_the_rollback_joins_it():
    past = [PastRollback("order-service", NOW - timedelta(minutes=1))]
    refusal = before_gate("order-service", NOW, past, POLICY, alert_started=NOW - timedelta(minutes=3))
    assert refusal.reason is Reason.JOINED


GO = Verdict(Outcome.GO)


@pytest.mark.parametrize("decision, verdict, reason", [
    (Decision(Action.ROLLBACK_NOW), GO, None),
    (Decision(Action.ROLLBACK_NOW), Verdict(Outcome.GO, procedure=Procedure.MIGRATION_PLAN), Reason.MIGRATION),
    (Decision(Action.FIX_FORWARD), Verdict(Outcome.GO, procedure=Procedure.PARTIAL), Reason.MIGRATION),
    (Decision(Action.INVESTIGATE), GO, Reason.RUNBOOK),
    (Decision(Action.ROLLBACK_NOW), Verdict(Outcome.NOTHING, (Objection(Rule.NOTHING_TO_CHANGE, "on it"),)),
     Reason.NOTHING),
    (Decision(Action.FIX_FORWARD), Verdict(Outcome.OVERRIDE, (
        Objection(Rule.MIGRATION, "0042 cannot be undone."), Objection(Rule.RUNBOOK, "fix forward."))), Reason.MIGRATION),
    (Decision(Action.HEALTHY), Verdict(Outcome.OVERRIDE, (Objection(Rule.RUNBOOK, "healthy."),)), Reason.RUNBOOK),
    (Decision(Action.ROLLBACK_NOW), Verdict(Outcome.OVERRIDE, (Objection(Rule.ROLLED_BACK_FROM, "was."),)), Reason.GATE),
    (Decision(Action.ROLLBACK_NOW), Verdict(Outcome.REFUSE, (Objection(Rule.LEASE, "alice is."),)), Reason.GATE),
])
def test_after_the_gate_only_the_plain_rollback_on_rollback_now(decision, verdict, reason):
    refusal = after_gate("order-service", decision, verdict)
    assert (refusal.reason if refusal else None) is reason
