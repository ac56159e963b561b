"""How a revision is named: `--to-revision` read (a number, a blue-green
colour, a colour and its number) and written (one formatter in console/model.py,
with the colour wherever a blue-green number appears: plans, the Slack messages,
the incident record and the RCA export)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from console import comms
from console import incident as inc
from console.export import gather, render, to_data
from console.model import (
    ColourRevision,
    Event,
    Metrics,
    Revision,
    RollbackPlan,
    parse_revision,
    revision_cell,
    revision_change,
    revision_label,
    versions_label,
)
from console.procedures import rollback_target
from console.session import colour_refusal
from console.store import Store

T0 = datetime(2026, 12, 4, 10, 0, tzinfo=timezone.utc)
IMAGE = "registry.example.com/checkout:{}"

# checkout: green (1.5.0) live at its Deployment's revision 2, blue (1.4.0) also at its revision 2.
SWITCH = RollbackPlan("checkout", "blue-green", 2, 2, (IMAGE.format("1.5.0"),), (IMAGE.format("1.4.0"),),
                      from_colour="green", to_colour="blue")
HISTORY = (
    Revision(2, (IMAGE.format("1.5.0"),), current=True, colour="green"),
    Revision(2, (IMAGE.format("1.4.0"),), colour="blue"),
)


# --- reading --to-revision -------------------------------------------------------------------

@pytest.mark.parametrize(("text", "parsed"), [
    ("3", 3),
    (" 12 ", 12),
    ("blue:3", ColourRevision("blue", 3)),
    ("blue", ColourRevision("blue")),
    ("green : 2", ColourRevision("green", 2)),
    ("canary-v2:7", ColourRevision("canary-v2", 7)),  # any label value names a configured colour
])
def test_the_forms_of_to_revision(text, parsed):
    assert parse_revision(text) == parsed


def test_a_colour_revision_is_written_back_as_typed():
    assert str(ColourRevision("blue", 3)) == "blue:3" and str(ColourRevision("blue")) == "blue"
    assert parse_revision(str(ColourRevision("green", 4))) == ColourRevision("green", 4)


@pytest.mark.parametrize(("text", "says"), [
    ("", "--to-revision is empty: give a revision number (3), or for a blue-green service a colour (blue)"),
    ("0", "--to-revision '0': revisions are numbered from 1"),
    ("-2", "--to-revision '-2': revisions are numbered from 1"),
    ("blue:0", "--to-revision 'blue:0': revisions are numbered from 1"),
    ("blue:", "--to-revision 'blue:': there is no revision after the colon; give one like blue:3"),
    ("blue:three", "--to-revision 'blue:three': 'three' after the colon is not a revision number; give one like "
                   "blue:3 (the number `kubectl rollout history` shows for blue's Deployment), or blue alone"),
    (":3", "--to-revision ':3': there is no colour before the colon"),
    ("3:2", "--to-revision '3:2': '3' is not a colour name (a Kubernetes label value such as blue)"),
    ("blue green", "'blue green' is not a colour name"),
    ("blue:3:4", "'3:4' after the colon is not a revision number"),
])
def test_a_malformed_to_revision_says_what_is_wrong_and_what_to_type(text, says):
    with pytest.raises(ValueError) as caught:
        parse_revision(text)
    assert says in str(caught.value)
    # Every refusal ends with the forms to type.
    assert "blue:3" in str(caught.value)


def test_a_colour_is_refused_for_a_platform_without_colours():
    assert colour_refusal("checkout", "blue-green", ColourRevision("blue", 2)) is None
    assert colour_refusal("order-service", "kubernetes", 3) is None
    assert colour_refusal("order-service", "kubernetes", None) is None
    assert colour_refusal("order-service", "kubernetes", ColourRevision("blue", 2)) == (
        "--to-revision blue:2 names a blue-green colour, but order-service runs on kubernetes, which has no "
        "colours: give a revision number from its history (--to-revision N), or leave --to-revision out to "
        "roll back to the previous revision.")
    assert "search runs on canary, which has no colours" in colour_refusal("search", "canary", ColourRevision("green"))


def test_a_colour_names_one_revision_where_the_number_names_two():
    assert rollback_target(HISTORY, 2) is None  # both colours carry 2
    assert rollback_target(HISTORY, ColourRevision("blue", 2)) == HISTORY[1]
    assert rollback_target(HISTORY, ColourRevision("blue")) == HISTORY[1]
    assert rollback_target(HISTORY, ColourRevision("blue", 3)) is None  # blue is at 2
    assert rollback_target(HISTORY, ColourRevision("purple")) is None
    assert rollback_target(HISTORY) == HISTORY[1]  # the other colour
    # The history's row and the plan name their target the same way the operator types it.
    assert [r.target for r in HISTORY] == [ColourRevision("green", 2), ColourRevision("blue", 2)]
    assert Revision(3, ()).target == 3
    assert SWITCH.target == ColourRevision("blue", 2)
    assert RollbackPlan("order-service", "kubernetes", 3, 2).target == 2


# --- writing a revision -------------------------------------------------------------------------

def test_one_formatter_with_the_colour_for_blue_green():
    assert revision_label(3) == "revision 3"
    assert revision_label(2, "blue") == "blue · revision 2" == HISTORY[1].label
    assert revision_label(None, "blue") == "blue"
    assert revision_label(None) == "unknown revision"
    assert (revision_cell(3), revision_cell(2, "green"), revision_cell(None)) == ("3", "green · 2", "")
    assert revision_change(3, 2) == "revision 3 → 2"
    assert revision_change(2, 2, "green", "blue") == "green · revision 2 → blue · revision 2"
    assert versions_label(("1.2.2",), 2) == "1.2.2"
    assert versions_label(("1.4.0",), 2, "blue") == "1.4.0 (blue · revision 2)"
    assert versions_label((), 2) == "revision 2"
    assert versions_label((), 2, "blue") == "blue · revision 2"
    assert versions_label((), None) == "unknown"
    assert (SWITCH.from_label, SWITCH.to_label) == ("green · revision 2", "blue · revision 2")


def _state(*new_events: tuple[inc.NewEvent, float]) -> inc.IncidentState:
    events, at = [], T0
    for new, after in ((inc.opened("checkout"), 0.0), *new_events):
        at += timedelta(seconds=after)
        events.append(Event(at, new.kind, new.text, data=inc.pairs(new.data)))
    return inc.rebuild("INC-checkout", events)


def test_the_incident_records_the_colours_of_a_switch():
    started = inc.rollback_started(SWITCH)
    assert started.text == "Rollback started: checkout 1.5.0 (green · revision 2) -> 1.4.0 (blue · revision 2)"
    assert (started.data["from_colour"], started.data["to_colour"]) == ("green", "blue")
    rb = _state((started, 0)).rollback
    assert (rb.from_colour, rb.to_colour, rb.from_revision, rb.to_revision) == ("green", "blue", 2, 2)
    assert (rb.from_label, rb.to_label) == ("1.5.0 (green · revision 2)", "1.4.0 (blue · revision 2)")
    # A plain Deployment's record is as before: no colours.
    plain = inc.rollback_started(RollbackPlan("order-service", "kubernetes", 3, 2, ("r/o:1.2.3",), ("r/o:1.2.2",)))
    assert "from_colour" not in plain.data and plain.text == "Rollback started: order-service 1.2.3 -> 1.2.2"


def test_the_slack_messages_name_the_colours():
    state = _state((inc.rollback_started(SWITCH), 0))
    progress = comms.rollback_in_progress(state, SWITCH, "engineer", T0 + timedelta(seconds=30))
    assert progress.field("Version") == "1.5.0 (green · revision 2) → 1.4.0 (blue · revision 2)"
    # Without the plan (a resend, the autopilot), from the incident's record: the same words.
    assert comms.rollback_in_progress(state, None, "engineer", T0).field("Version") == progress.field("Version")
    done = _state((inc.rollback_started(SWITCH), 0), (inc.rollback_completed(), 90))
    complete = comms.rollback_complete(done, Metrics(error_rate=0.12), Metrics(error_rate=0.001), None,
                                       T0 + timedelta(minutes=2))
    assert complete.field("Rolled back to") == "1.4.0 (blue · revision 2)"
    assert "Do not re-deploy 1.5.0 (green · revision 2) without fix" in complete.text


def test_the_rca_export_names_the_colours(tmp_path):
    with Store(tmp_path / "incidents.db") as store:
        iid = store.open_incident("checkout", T0, title="green fails")
        for new, minutes in ((inc.rollback_started(SWITCH, reason="green fails 12 %"), 1),
                             (inc.rollback_completed("Rollback complete: checkout on 1.4.0"), 2)):
            store.append(iid, new.kind, new.text, T0 + timedelta(minutes=minutes), actor="oncall", data=new.data)
        record = gather(store, iid, T0 + timedelta(minutes=10))
    data = to_data(record)
    assert {k: data["rollback"][k] for k in ("from_revision", "to_revision", "from_colour", "to_colour")} == {
        "from_revision": 2, "to_revision": 2, "from_colour": "green", "to_colour": "blue"}
    assert json.loads(render(record, "json"))["rollback"]["to_colour"] == "blue"
    text = render(record, "md")
    assert "- **Version:** 1.5.0 → 1.4.0 (green · revision 2 → blue · revision 2)" in text
    assert "(revision 2 → 2)" not in text


def test_a_target_is_written_as_the_revision_it_names():
    from console.model import target_label

    assert target_label(3) == "revision 3"
    assert target_label(ColourRevision("blue", 2)) == "blue · revision 2"
    assert target_label(ColourRevision("blue")) == "blue"
    # A revision's target written as --to-revision takes it reads back as the same target.
    assert [str(r.target) for r in HISTORY] == ["green:2", "blue:2"]
    assert [parse_revision(str(r.target)) for r in HISTORY] == [r.target for r in HISTORY]
