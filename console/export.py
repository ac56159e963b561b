"""An incident written out for the RCA and the incident ticket: Markdown to
paste, JSON to file. Both carry the same record: summary, escalation, facts,
decisions with their reasons, the rollback, metrics before and after, the
messages as sent, the post-rollback checklist and the whole timeline (UTC).

Reads only the store: the export of a closed incident needs no cluster.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from typing import Any

from console import incident
from console import gitops
from console.checklist import DEFAULT_CHECKLIST, Checklist, evaluate_checklist
from console.comms import milliseconds, minutes, rate
from console.decision import Thresholds
from console.incident import IncidentState, payload
from console.model import Event, Facts, revision_change, revision_label
from console.store import Store, StoreError

FORMATS = ("md", "json")


class ExportError(Exception):
    """The incident cannot be exported; str() says why and what to do."""


@dataclass(frozen=True)
class IncidentRecord:
    """Everything an export holds, gathered from the store once."""

    state: IncidentState
    events: tuple[Event, ...]
    # Outbox entries of the incident's messages, by id (what was actually posted).
    outbox: dict[int, dict[str, Any]]
    exported_at: datetime


def resolve_incident(store: Store, incident_id: str | None, latest: bool) -> str:
    """The id to export: the one given, or the most recently opened with `latest`."""
    if incident_id and latest:
        raise ExportError("Give an INCIDENT_ID or --latest, not both.")
    if incident_id:
        if store.incident(incident_id) is None:
            known = ", ".join(r.id for r in store.incidents()[:5]) or "none"
            raise ExportError(f"There is no incident {incident_id} in {store.path} (latest: {known}).")
        return incident_id
    if not latest:
        raise ExportError("Say which incident to export: an INCIDENT_ID, or --latest for the most recent one.")
    found = store.latest_incident()
    if found is None:
        raise ExportError(f"There are no incidents in {store.path} yet.")
    return found.id


def gather(store: Store, incident_id: str, now: datetime) -> IncidentRecord:
    """Read the incident's timeline and messages from the store."""
    try:
        events = store.events(incident_id, newest_first=False)
        state = incident.rebuild(incident_id, events)
        outbox = {}
        for message in state.messages:
            if message.outbox_id is not None and message.outbox_id not in outbox:
                entry = store.outbox_entry(message.outbox_id)
                if entry is not None:
                    outbox[entry.id] = {
                        "kind": entry.kind, "label": entry.label, "channel": entry.channel,
                        "text": entry.payload.get("text", ""), "attempts": entry.attempts,
                        "sent_at": _iso(entry.sent_at), "last_error": entry.last_error,
                    }
        for entry in store.outbox_pending(incident_id):
            outbox.setdefault(entry.id, {
                "kind": entry.kind, "label": entry.label, "channel": entry.channel,
                "text": entry.payload.get("text", ""), "attempts": entry.attempts,
                "sent_at": None, "last_error": entry.last_error,
            })
    except (StoreError, ValueError) as err:
        raise ExportError(f"Cannot read incident {incident_id}: {err}") from None
    return IncidentRecord(state, tuple(events), outbox, now)


def _iso(at: datetime | None) -> str | None:
    return at.astimezone(timezone.utc).isoformat() if at else None


def _utc(at: datetime | None) -> str:
    return f"{at.astimezone(timezone.utc):%Y-%m-%d %H:%M:%S} UTC" if at else "—"


def _metrics(events: tuple[Event, ...]) -> tuple[dict, dict]:
    """(before, after): the bad version's numbers when the rollback started, and
    the numbers recorded when the Rollback Complete message was prepared."""
    before, after = {}, {}
    for event in events:
        data = payload(event)
        if event.kind == incident.ROLLBACK_STARTED and data.get("before"):
            before = data["before"]
        if event.kind == incident.NOTE and data.get("metrics_after"):
            after = data["metrics_after"]
    return before, after


def _decisions(events: tuple[Event, ...]) -> list[dict]:
    """The runbook's verdicts and the operator's choices, each with its reasons."""
    rows = []
    for event in events:
        data = payload(event)
        if event.kind == incident.DECISION:
            rows.append({"at": _iso(event.at), "by": event.actor, "kind": "runbook",
                         "decision": data.get("action", ""), "text": event.text,
                         "reasons": list(data.get("reasons") or [])})
        elif event.kind == incident.NOTE and data.get("choice"):
            rows.append({"at": _iso(event.at), "by": event.actor, "kind": "operator",
                         "decision": data["choice"], "text": event.text, "reasons": [data.get("reason", "")]})
        elif event.kind == incident.ROLLBACK_STARTED and data.get("reason"):
            rows.append({"at": _iso(event.at), "by": event.actor, "kind": "operator", "decision": "rollback",
                         "text": event.text, "reasons": [data["reason"]]})
    return rows


def to_data(record: IncidentRecord, checklist: Checklist = DEFAULT_CHECKLIST,
            thresholds: Thresholds | None = None) -> dict[str, Any]:
    """The export as plain data (what the JSON format writes)."""
    thresholds = thresholds or Thresholds()
    state, now = record.state, record.exported_at
    level, why, _ = incident.escalation_level(state, state.closed_at or now, thresholds.customer_impact_escalation)
    level = max(level, state.escalated_to)
    rb = state.rollback
    before, after = _metrics(record.events)
    # A paused GitOps owner's items (README "GitOps (Argo CD and Flux)") belong in the export too.
    status = evaluate_checklist(state, now, None, gitops.with_pauses(checklist, state.paused_owners), thresholds)
    facts = {f.name: getattr(state.facts, f.name) for f in fields(Facts)}
    return {
        "incident": state.id,
        "service": state.service,
        "title": state.title,
        "opened_at": _iso(state.opened_at),
        "closed_at": _iso(state.closed_at),
        "exported_at": _iso(now),
        "escalation": {"level": level, "role": incident.ESCALATION_ROLES[level], "why": why},
        "facts": {k: (_iso(v) if isinstance(v, datetime) else v) for k, v in facts.items()},
        "decisions": _decisions(record.events),
        "rollback": {
            "status": rb.status.value,
            "from_revision": rb.from_revision,
            "to_revision": rb.to_revision,
            # Blue-green: whose revision each number is (each colour's Deployment numbers its own); else null.
            "from_colour": rb.from_colour,
            "to_colour": rb.to_colour,
            "from_versions": list(rb.from_versions),
            "to_versions": list(rb.to_versions),
            "started_at": _iso(rb.started_at),
            "finished_at": _iso(rb.finished_at),
            "duration_seconds": rb.duration(now).total_seconds() if rb.started_at else None,
            "reason": rb.reason,
            "error": rb.error,
        },
        "metrics": {"before": before, "after": after},
        "messages": [
            {"at": _iso(m.at), "label": m.label, "channel": m.channel, "sent": m.sent, "error": m.error,
             "text": record.outbox.get(m.outbox_id, {}).get("text", "") if m.outbox_id is not None else ""}
            for m in state.messages
        ],
        "unsent_messages": [
            {"label": e["label"], "attempts": e["attempts"], "last_error": e["last_error"], "text": e["text"]}
            for e in record.outbox.values() if e["sent_at"] is None
        ],
        "checklist": [
            {"group": s.group.heading, "item": s.item.text, "done": s.done, "by": s.by, "why": s.why,
             "done_at": _iso(s.done_at), "due_at": _iso(s.due_at), "overdue": s.overdue}
            for s in status.items
        ],
        "timeline": [
            {"at": _iso(e.at), "kind": e.kind, "actor": e.actor, "text": e.text} for e in record.events
        ],
    }


def _metric_line(name: str, key: str, fmt, before: dict, after: dict) -> str:
    was = fmt(before[key]) if key in before else "unknown"
    now = fmt(after[key]) if key in after else "unknown"
    return f"| {name} | {was} | {now} |"


def to_markdown(data: dict[str, Any]) -> str:
    """The export as Markdown for the incident ticket and the RCA."""
    rb, esc = data["rollback"], data["escalation"]
    drill = data.get("drill")
    mark = f"DRILL {drill}: " if drill else ""
    lines = [f"# {mark}Incident {data['incident']}: {data['service']}", ""]
    if drill:
        lines += ["This incident happened in a training drill against a simulated world.", ""]
    if data["title"]:
        lines += [data["title"], ""]
    lines += [
        f"- **Opened:** {_utc(_parse(data['opened_at']))}",
        f"- **Closed:** {_utc(_parse(data['closed_at'])) if data['closed_at'] else 'still open'}",
        f"- **Escalation:** Level {esc['level']} ({esc['role']}): {esc['why']}",
        f"- **Exported:** {_utc(_parse(data['exported_at']))}",
        "",
        "## Rollback",
        "",
    ]
    if rb["status"] == "none":
        lines.append("No rollback was started.")
    else:
        frm = revision_label(rb["from_revision"], rb.get("from_colour"))
        to = revision_label(rb["to_revision"], rb.get("to_colour"))
        versions = f"{', '.join(rb['from_versions']) or frm} → {', '.join(rb['to_versions']) or to}"
        revisions = revision_change(rb["from_revision"], rb["to_revision"], rb.get("from_colour"), rb.get("to_colour"))
        lines += [
            f"- **Status:** {rb['status'].replace('_', ' ')}",
            f"- **Version:** {versions} ({revisions})",
            f"- **Started:** {_utc(_parse(rb['started_at']))}",
            f"- **Finished:** {_utc(_parse(rb['finished_at']))}",
        ]
        if rb["duration_seconds"] is not None:
            from datetime import timedelta

            lines.append(f"- **Duration:** {minutes(timedelta(seconds=rb['duration_seconds']))}")
        if rb["reason"]:
            lines.append(f"- **Reason:** {rb['reason']}")
        if rb["error"]:
            lines.append(f"- **Error:** {rb['error']}")
    before, after = data["metrics"]["before"], data["metrics"]["after"]
    lines += ["", "## Metrics before and after", "", "| Metric | Before | After |", "| --- | --- | --- |",
              _metric_line("Error rate", "error_rate", rate, before, after),
              _metric_line("Latency p95", "latency_p95_ms", milliseconds, before, after), ""]
    lines += ["## Decisions", ""]
    if not data["decisions"]:
        lines.append("No decisions were recorded.")
    for d in data["decisions"]:
        reasons = "; ".join(r for r in d["reasons"] if r)
        who = "runbook" if d["kind"] == "runbook" else d["by"]
        lines.append(f"- {_clock(d['at'])} **{d['text']}** ({who})" + (f": {reasons}" if reasons and reasons not in d["text"] else ""))
    declared = {k: v for k, v in data["facts"].items() if v not in (False, None)}
    lines += ["", "## Facts", ""]
    lines += [f"- {k.replace('_', ' ')}: {v}" for k, v in declared.items()] or ["None declared."]
    lines += ["", "## Messages", ""]
    if not data["messages"] and not data["unsent_messages"]:
        lines.append("No messages were sent.")
    for m in data["messages"]:
        outcome = f"sent to {m['channel']}" if m["sent"] else f"NOT sent to {m['channel']}: {m['error']}"
        lines.append(f"- {_clock(m['at'])} {m['label']}: {outcome}")
    shown = set()
    for m in data["messages"]:
        if m["sent"] and m["text"] and m["label"] not in shown:
            shown.add(m["label"])
            lines += ["", f"### {m['label']} (as posted)", "", "```", m["text"], "```"]
    for m in data["unsent_messages"]:
        lines += ["", f"### {m['label']} (NOT sent after {m['attempts']} attempts: {m['last_error']})", "", "```", m["text"], "```"]
    lines += ["", "## Post-Rollback Checklist", ""]
    group = None
    for item in data["checklist"]:
        if item["group"] != group:
            group = item["group"]
            lines += ["", f"### {group}"] if lines[-1] != "" else [f"### {group}"]
        mark = "x" if item["done"] else " "
        extra = ""
        if item["done"]:
            extra = f" ({item['by']}" + (f": {item['why']}" if item["why"] else "") + f", {_clock(item['done_at'])})"
        elif item["overdue"]:
            extra = f" (OVERDUE since {_clock(item['due_at'])})"
        lines.append(f"- [{mark}] {item['item']}{extra}")
    lines += ["", "## Timeline (UTC)", "", "| Time | Kind | Actor | What |", "| --- | --- | --- | --- |"]
    for e in data["timeline"]:
        text = e["text"].replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {_utc(_parse(e['at']))} | {e['kind']} | {e['actor']} | {text} |")
    return "\n".join(lines) + "\n"


def _parse(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _clock(text: str | None) -> str:
    at = _parse(text)
    return f"{at.astimezone(timezone.utc):%H:%M:%S}" if at else "—"


def render(record: IncidentRecord, fmt: str, checklist: Checklist = DEFAULT_CHECKLIST,
           thresholds: Thresholds | None = None, drill: str | None = None) -> str:
    """The incident in `fmt` ("md" or "json"); `drill`, the scenario's name
    when the incident happened in a drill, marks it as one."""
    if fmt not in FORMATS:
        raise ExportError(f"Unknown export format {fmt!r}: use md or json.")
    data = to_data(record, checklist, thresholds)
    if drill:
        data["drill"] = drill
    if fmt == "json":
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    return to_markdown(data)


def export_incident(store: Store, incident_id: str, fmt: str, now: datetime, *,
                    checklist: Checklist = DEFAULT_CHECKLIST, thresholds: Thresholds | None = None,
                    drill: str | None = None) -> str:
    """The incident rendered in `fmt`; record_export() once it is written."""
    return render(gather(store, incident_id, now), fmt, checklist, thresholds, drill)


def record_export(store: Store, incident_id: str, destination: str, now: datetime, actor: str = "console") -> None:
    """Record TIMELINE_EXPORTED naming where the export went: the checklist's
    "Logs preserved for investigation" ticks on it."""
    event = incident.timeline_exported(destination)
    store.append(incident_id, event.kind, event.text, now, actor=actor, data=event.data)
