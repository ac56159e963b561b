"""The runbook's messages, compared line by line with the runbook itself."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from support import runbook_text

from console import comms
from console import incident as inc
from console.comms import MessageKind
from console.decision import evaluate
from console.model import Event, Facts, Health, Metrics, RollbackPlan, Snapshot

T0 = datetime(2024, 1, 17, 14, 45, tzinfo=timezone.utc)
ID = "INC-20240117-1445-order-service"
IMAGE = "registry.example.com/order-service:{}"

BEFORE = Metrics(error_rate=0.08, latency_p95_ms=2000.0)
AFTER = Metrics(error_rate=0.001, latency_p95_ms=250.0)
HEALTHY = Health(desired=3, ready=3, updated=3, available=3, endpoint_ok=True, endpoint_status="healthy")
IMPACT = ("Order creation may fail intermittently", "No data loss expected")


# The runbook's two examples, copied here so the comparison runs where the
# seed runbook is absent (CI); `test_the_copies_match_the_runbook` keeps them honest.
IN_PROGRESS_EXAMPLE = """\
## 🚨 Rollback in Progress

**Service:** order-service
**Version:** 1.2.3 → 1.2.2
**Reason:** Error rate spiked to 8%
**Started:** 2024-01-17 14:45 UTC
**ETA:** 5 minutes

**Impact:**
- Order creation may fail intermittently
- No data loss expected

**Actions:**
- Rollback initiated by @engineer
- Monitoring metrics
- Will update when complete"""

COMPLETE_EXAMPLE = """\
## ✅ Rollback Complete

**Service:** order-service
**Rolled back to:** 1.2.2
**Duration:** 4 minutes
**Status:** Service healthy

**Metrics:**
- Error rate: 0.1% (was 8%)
- Latency p95: 250ms (was 2000ms)

**Next Steps:**
- Incident ticket: INC-2024-0117
- RCA scheduled for tomorrow
- Do not re-deploy 1.2.3 without fix"""


def repaired(text: str) -> str:
    """The seed runbook was saved as UTF-8 read back as cp1252 ("ðŸš¨" for
    🚨). Undo that; its ⚠️ lost the last byte of its variation selector on
    the way, which comes back too."""
    raw = bytearray()
    for char in text:
        try:
            raw += char.encode("cp1252")
        except UnicodeEncodeError:
            raw += char.encode("utf-8")
    return raw.decode("utf-8", errors="replace").replace("⚠\ufffd", "⚠️")


@pytest.fixture(scope="module")
def runbook() -> str:
    return repaired(runbook_text())


def example(runbook: str, heading: str) -> list[str]:
    """The lines of the runbook's markdown block that starts with `heading`,
    trailing spaces dropped (the runbook has them on one line only)."""
    for block in re.findall(r"```markdown\n(.*?)```", runbook, re.S):
        if block.startswith(heading):
            return [line.rstrip() for line in block.rstrip("\n").split("\n")]
    raise AssertionError(f"no markdown block starting {heading!r} in the runbook")


def lines(message: comms.Message) -> list[str]:
    return [line.rstrip() for line in message.text.rstrip("\n").split("\n")]


def state_of(*new_events: tuple[inc.NewEvent, float]) -> inc.IncidentState:
    events, at = [], T0
    for new, after in ((inc.opened("order-service"), 0.0), *new_events):
        at += timedelta(seconds=after)
        events.append(Event(at, new.kind, new.text, data=inc.pairs(new.data)))
    return inc.rebuild(ID, events)


PLAN = RollbackPlan(
    service="order-service",
    platform="kubernetes",
    from_revision=3,
    to_revision=2,
    from_images=(IMAGE.format("1.2.3"),),
    to_images=(IMAGE.format("1.2.2"),),
)


def bad_deploy_decision() -> inc.NewEvent:
    snapshot = Snapshot("order-service", T0, metrics=BEFORE)
    return inc.decided(evaluate(snapshot, Facts(), T0))


def test_the_runbook_is_readable_with_its_emoji(runbook):
    assert "## 🚨 Rollback in Progress" in runbook
    assert "**Version:** 1.2.3 → 1.2.2" in runbook
    assert '"⚠️ Rollback complete but service unhealthy"' in runbook


def test_the_copies_match_the_runbook(runbook):
    assert example(runbook, "## 🚨 Rollback in Progress") == IN_PROGRESS_EXAMPLE.split("\n")
    assert example(runbook, "## ✅ Rollback Complete") == COMPLETE_EXAMPLE.split("\n")


def test_rollback_in_progress_matches_the_runbook():
    state = state_of((bad_deploy_decision(), 0), (inc.rollback_started(PLAN), 0))
    message = comms.rollback_in_progress(state, PLAN, "engineer", T0 + timedelta(seconds=30),
                                         before=BEFORE, impact=IMPACT)
    assert lines(message) == IN_PROGRESS_EXAMPLE.split("\n")
    assert message.kind is MessageKind.ROLLBACK_IN_PROGRESS
    assert message.title == "🚨 Rollback in Progress"
    assert message.field("Version") == "1.2.3 → 1.2.2"
    assert message.field("Reason") == "Error rate spiked to 8%"
    assert dict(message.sections)["Actions"][0] == "Rollback initiated by @engineer"


def test_rollback_complete_matches_the_runbook():
    state = state_of(
        (inc.rollback_started(PLAN), 0),
        (inc.rollback_completed(), 4 * 60 + 10),
    )
    message = comms.rollback_complete(state, BEFORE, AFTER, HEALTHY, T0 + timedelta(minutes=6),
                                      ticket="INC-2024-0117")
    assert lines(message) == COMPLETE_EXAMPLE.split("\n")
    assert message.field("Duration") == "4 minutes"
    assert message.field("Status") == "Service healthy"


def test_field_lines_end_in_markdown_hard_breaks():
    state = state_of((inc.rollback_started(PLAN), 0))
    text = comms.rollback_in_progress(state, PLAN, "engineer", T0, impact=IMPACT).text
    assert "**Service:** order-service  \n**Version:**" in text
    # The last field of the group ends its paragraph: no break needed.
    assert "**ETA:** 5 minutes\n\n**Impact:**" in text


def test_in_progress_without_a_plan_uses_the_incident_and_defaults():
    state = state_of((inc.rollback_started(PLAN, reason="Checkout failing for EU customers"), 0))
    message = comms.rollback_in_progress(state, None, "alice@laptop", T0 + timedelta(minutes=1))
    assert message.field("Version") == "1.2.3 → 1.2.2"
    assert message.field("Reason") == "Checkout failing for EU customers"
    assert message.field("Started") == "2024-01-17 14:45 UTC"  # the rollback's start, not now
    assert dict(message.sections)["Impact"] == (
        "Requests to order-service may fail intermittently",
        "No data loss expected",
    )
    assert "Rollback initiated by @alice" in message.text


def test_reason_falls_back_to_the_decision_when_not_the_error_rate():
    down = Snapshot("order-service", T0, health=Health(desired=3, ready=0))
    state = state_of((inc.decided(evaluate(down, Facts(), T0)), 0), (inc.rollback_started(PLAN), 0))
    assert comms.rollback_reason(state, BEFORE).startswith("Service completely down")


def test_impact_warns_about_data_when_the_facts_say_so():
    state = state_of((inc.fact_set("data_corruption", True), 0), (inc.writes_frozen(3), 0))
    assert comms.default_impact(state)[1] == "Data corruption detected: writes are frozen"


def test_complete_before_the_signals_settle_says_the_numbers_still_include_the_bad_version():
    """Right after the rollout the error-rate window still holds the bad version's
    requests (5.6 % "after" a rollback of 8 %): the message says so, with when
    the numbers are the rollback's own, instead of passing them off as the result."""
    state = state_of((inc.rollback_started(PLAN), 0), (inc.rollback_completed(), 240))
    finished = T0 + timedelta(seconds=240)
    early = comms.rollback_complete(state, BEFORE, Metrics(error_rate=0.056, latency_p95_ms=900.0), HEALTHY,
                                    finished + timedelta(seconds=20), settles_at=finished + timedelta(minutes=2))
    rate_line, latency_line = dict(early.sections)["Metrics"]
    assert rate_line.startswith("Error rate: 5.6% (was 8%) (still read over windows that include 1.2.3; settled from ")
    assert "still read over windows that include 1.2.3" in latency_line
    settled = comms.rollback_complete(state, BEFORE, AFTER, HEALTHY, finished + timedelta(minutes=3),
                                      settles_at=finished + timedelta(minutes=2))
    assert "still read" not in "".join(dict(settled.sections)["Metrics"])


def test_complete_says_what_is_unknown_and_unhealthy():
    state = state_of((inc.rollback_started(PLAN), 0), (inc.rollback_completed(), 20))
    degraded = Health(desired=3, ready=2, endpoint_ok=False, endpoint_status="HTTP 503")
    message = comms.rollback_complete(state, Metrics(error_rate=0.08), Metrics(), degraded,
                                      T0 + timedelta(minutes=1))
    assert message.field("Duration") == "20 seconds"
    assert message.field("Status") == "Service unhealthy: 2/3 pods ready, health endpoint HTTP 503"
    assert dict(message.sections)["Metrics"] == ("Error rate: unknown (was 8%)", "Latency p95: unknown")
    # Without a ticket, the console's incident id is the ticket.
    assert dict(message.sections)["Next Steps"][0] == f"Incident ticket: {ID}"


@pytest.mark.parametrize(
    ("fraction", "text"),
    [(0.08, "8%"), (0.001, "0.1%"), (0.0125, "1.25%"), (0.0, "0%"), (1.0, "100%"), (0.05, "5%")],
)
def test_rates_are_written_the_runbook_way(fraction, text):
    assert comms.rate(fraction) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0 seconds"), (1, "1 second"), (29, "29 seconds"), (30, "1 minute"), (89, "1 minute"),
     (90, "2 minutes"), (250, "4 minutes"), (300, "5 minutes")],
)
def test_durations(seconds, text):
    assert comms.minutes(timedelta(seconds=seconds)) == text


def test_script_notices_match_the_runbook(runbook):
    script = re.search(r"```bash\n#!/bin/bash\n# rollback.sh\n(.*?)```", runbook, re.S).group(1)
    notices = re.findall(r'slack-notify "#incidents" "(.*?)"', script)
    started = comms.rolling_back("order-service", "Error rate spiked to 8%")
    assert notices[0].replace("$SERVICE", "order-service").replace("$REASON", "Error rate spiked to 8%") == started.text
    assert notices[1] == comms.rollback_done("order-service", Health(desired=3, ready=1)).text
    assert notices[2].replace("$SERVICE", "order-service") == comms.rollback_done("order-service", HEALTHY).text
    assert comms.rollback_done("order-service", HEALTHY).kind is MessageKind.COMPLETE_HEALTHY
    assert comms.rollback_done("order-service", None).kind is MessageKind.COMPLETE_UNHEALTHY


def test_slack_payload_uses_mrkdwn():
    state = state_of((inc.rollback_started(PLAN), 0), (inc.rollback_completed(), 240))
    message = comms.rollback_complete(state, BEFORE, AFTER, HEALTHY, T0, ticket="INC-2024-0117")
    payload = comms.slack_payload(message)
    assert payload["text"].split("\n") == [
        "*✅ Rollback Complete*",
        "",
        "*Service:* order-service",
        "*Rolled back to:* 1.2.2",
        "*Duration:* 4 minutes",
        "*Status:* Service healthy",
        "",
        "*Metrics:*",
        "• Error rate: 0.1% (was 8%)",
        "• Latency p95: 250ms (was 2000ms)",
        "",
        "*Next Steps:*",
        "• Incident ticket: INC-2024-0117",
        "• RCA scheduled for tomorrow",
        "• Do not re-deploy 1.2.3 without fix",
    ]
    assert "**" not in payload["text"] and "##" not in payload["text"]
    assert [b["type"] for b in payload["blocks"]] == ["section"] * 4
    assert all(b["text"]["type"] == "mrkdwn" for b in payload["blocks"])
    assert payload["blocks"][0]["text"]["text"] == "*✅ Rollback Complete*"


def test_slack_escapes_its_control_characters():
    notice = comms.rolling_back("order-service", "p95 > 2s & <errors>")
    assert comms.slack_payload(notice) == {"text": "🚨 Rolling back order-service: p95 &gt; 2s &amp; &lt;errors&gt;"}


def test_messages_are_frozen():
    notice = comms.rolling_back("order-service", "x")
    with pytest.raises(AttributeError):
        notice.text = "changed"  # type: ignore[misc]


def test_a_drill_marks_every_message_once():
    from console.comms import DRILL_MARK, Message, MessageKind, drill_marked

    templated = Message(MessageKind.ROLLBACK_COMPLETE, "✅ Rollback Complete", "## ✅ Rollback Complete\n\n**Service:** api\n",
                        fields=(("Service", "api"),))
    marked = drill_marked(templated)
    assert marked.title == f"{DRILL_MARK} ✅ Rollback Complete"
    assert marked.text.startswith(f"## {DRILL_MARK} ✅ Rollback Complete\n") and "**Service:** api" in marked.text
    assert drill_marked(marked) == marked
    notice = drill_marked(Message(MessageKind.ROLLING_BACK, "Rolling back api", "Rolling back api to 1.2.2"))
    assert notice.text == f"{DRILL_MARK} Rolling back api to 1.2.2"
    # An operator's edit that dropped the mark gets it back.
    edited = drill_marked(Message(MessageKind.ROLLBACK_COMPLETE, marked.title, "all good now"))
    assert edited.text == f"{DRILL_MARK} all good now"


# -- the other paths of an incident: fix forward, waiting, escalation, status updates ------------

T_OPEN = datetime(2024, 1, 17, 14, 45, tzinfo=timezone.utc)


def _open_state() -> inc.IncidentState:
    state = inc.new_state(ID, "order-service", T_OPEN)
    return inc.apply(state, Event(T_OPEN + timedelta(minutes=1), inc.DECISION, "decided",
                                  data=inc.pairs({"action": "investigate", "reasons": ["Error rate 1-5%: 3.0 %"]})))


def test_every_path_has_its_message_signed_and_naming_the_incident() -> None:
    state, now = _open_state(), T_OPEN + timedelta(minutes=20)
    messages = [
        comms.fix_forward(state, "trainee", now, reason="migration 0042 cannot be undone", version="1.2.3",
                          metrics=Metrics(error_rate=0.0603333)),
        comms.waiting_external(state, "trainee", now, reason="payment provider outage", version="1.2.3"),
        comms.escalation(state, "trainee", now, level=2, role="Team Lead", why="Rollback failed",
                         contacts=("@team-lead",)),
        comms.status_update(state, "trainee", now, decision="INVESTIGATE FIRST", metrics=BEFORE,
                            next_update=timedelta(minutes=30)),
    ]
    for message in messages:
        assert message.field("Incident") == ID, message.text
        assert "@trainee" in message.text and "@root" not in message.text
        assert "unknown → unknown" not in message.text
    fix, wait, escalate, status = messages
    assert fix.kind is MessageKind.FIX_FORWARD and fix.field("Running") == "1.2.3"
    assert "6.03%" in fix.text or "6.0%" in fix.text
    assert wait.field("Reason") == "payment provider outage"
    assert escalate.field("Level") == "2 · Team Lead" and escalate.field("Contacts") == "@team-lead"
    assert status.field("Impact for") == "19 minutes"
    assert "Next update in 30 minutes" in status.text


def test_a_status_update_is_due_every_interval_after_the_last_message() -> None:
    state, every = _open_state(), timedelta(minutes=30)
    assert inc.status_update_due(state, T_OPEN + timedelta(minutes=29), every) is None
    assert inc.status_update_due(state, T_OPEN + timedelta(minutes=30), every) == T_OPEN + every
    sent_at = T_OPEN + timedelta(minutes=31)
    state = inc.apply(state, Event(sent_at, inc.MESSAGE_SENT, "sent",
                                   data=inc.pairs({"message": "status_update", "label": "Status Update",
                                                   "channel": "Slack"})))
    assert inc.status_update_due(state, T_OPEN + timedelta(minutes=45), every) is None
    assert inc.status_update_due(state, sent_at + every, every) == sent_at + every
    assert inc.status_update_due(state, sent_at + every, None) is None
