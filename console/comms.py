"""The runbook's messages: "Communication During Rollback" and the notices of
its Automated Rollback Script, built from incident data.

Pure: no I/O. Every builder takes what it needs (the incident state, the
plan, metrics before and after, the operator, the time) and returns a
`Message`: its structure (title, fields, bullet sections) plus the runbook's
Markdown text. `slack_payload()` renders the same structure as the JSON body
of a Slack incoming webhook (Slack's mrkdwn: *bold*, no headings); sending it
is `console.slack`'s job.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Any

from console.incident import IncidentState
from console.model import Health, Metrics, RollbackPlan, versions_label

ROLLBACK_ETA = timedelta(minutes=5)
"""The runbook's ETA for a rollback: its script waits `kubectl rollout status --timeout=5m`."""

NO_DATA_LOSS = "No data loss expected"


class MessageKind(str, enum.Enum):
    """Every message the console sends, named after the runbook's text."""

    ROLLBACK_IN_PROGRESS = "rollback_in_progress"
    ROLLBACK_COMPLETE = "rollback_complete"
    # The Automated Rollback Script's one-line notices.
    ROLLING_BACK = "rolling_back"
    COMPLETE_UNHEALTHY = "complete_unhealthy"
    COMPLETE_HEALTHY = "complete_healthy"
    # The other ways an incident goes (issue 15): each decision has its message.
    FIX_FORWARD = "fix_forward"
    WAITING_EXTERNAL = "waiting_external"
    ESCALATION = "escalation"
    STATUS_UPDATE = "status_update"
    # The autopilot's notice when it does not roll back (or, in shadow mode, what it would do).
    AUTOPILOT = "autopilot"

    @property
    def label(self) -> str:
        """The message's name without decoration ("Rollback Complete"), for the timeline."""
        return _LABELS[self]


_LABELS = {
    MessageKind.ROLLBACK_IN_PROGRESS: "Rollback in Progress",
    MessageKind.ROLLBACK_COMPLETE: "Rollback Complete",
    MessageKind.ROLLING_BACK: "Rolling back",
    MessageKind.COMPLETE_UNHEALTHY: "Rollback complete but service unhealthy",
    MessageKind.COMPLETE_HEALTHY: "Rollback complete, service healthy",
    MessageKind.FIX_FORWARD: "Fixing Forward",
    MessageKind.WAITING_EXTERNAL: "Waiting on an External Fix",
    MessageKind.ESCALATION: "Escalation",
    MessageKind.STATUS_UPDATE: "Status Update",
    MessageKind.AUTOPILOT: "Autopilot",
}

_ICONS = {
    MessageKind.ROLLBACK_IN_PROGRESS: "🚨",
    MessageKind.ROLLBACK_COMPLETE: "✅",
    MessageKind.ROLLING_BACK: "🚨",
    MessageKind.COMPLETE_UNHEALTHY: "⚠️",
    MessageKind.COMPLETE_HEALTHY: "✅",
    MessageKind.FIX_FORWARD: "🔧",
    MessageKind.WAITING_EXTERNAL: "⏳",
    MessageKind.ESCALATION: "📣",
    MessageKind.STATUS_UPDATE: "ℹ️",
    MessageKind.AUTOPILOT: "🤖",
}


@dataclass(frozen=True)
class Message:
    """One message, structured (for Slack and the UI) and as the runbook's Markdown."""

    kind: MessageKind
    # "🚨 Rollback in Progress"; for a one-line notice, the whole notice.
    title: str
    # The runbook's Markdown layout (for a one-line notice, the notice itself).
    text: str
    # The bold "Label:" value lines, in order: (("Service", "order-service"), ...).
    fields: tuple[tuple[str, str], ...] = ()
    # The bulleted sections, in order: (("Impact", ("...", "...")), ...).
    sections: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @property
    def label(self) -> str:
        return self.kind.label

    @property
    def notice(self) -> bool:
        """True for the script-style one-line notices (no fields, no sections)."""
        return not self.fields and not self.sections

    def field(self, name: str) -> str | None:
        """The value of one field ("Service" -> "order-service"), None if absent."""
        return next((value for label, value in self.fields if label == name), None)


DRILL_MARK = "[DRILL]"
"""What a drill puts before every message it posts."""


def drill_marked(message: Message) -> Message:
    """The message as a drill posts it: DRILL_MARK before its title (and its
    text's heading, or before a one-line notice), so no reader takes it for a
    real incident. Marking twice changes nothing."""
    title = message.title if message.title.startswith(DRILL_MARK) else f"{DRILL_MARK} {message.title}"
    text = message.text
    if DRILL_MARK not in text:
        heading = f"## {message.title}"
        text = f"## {title}" + text[len(heading):] if text.startswith(heading) else f"{DRILL_MARK} {text}"
    return replace(message, title=title, text=text)


# --- formatting ----------------------------------------------------------------------


def rate(fraction: float) -> str:
    """An error rate the way the runbook's messages write it: 0.08 -> "8%",
    0.001 -> "0.1%", 0.0125 -> "1.25%"."""
    text = f"{fraction * 100:.2f}".rstrip("0").rstrip(".")
    return f"{text}%"


def milliseconds(value: float) -> str:
    """A latency as the runbook writes it: 250.4 -> "250ms"."""
    return f"{value:.0f}ms"


def minutes(duration: timedelta) -> str:
    """A duration in whole minutes, rounded: "4 minutes", "1 minute"; under
    half a minute in seconds ("20 seconds"), since "0 minutes" says nothing."""
    seconds = max(0.0, duration.total_seconds())
    if seconds < 30:
        n = int(round(seconds))
        return f"{n} second" + ("" if n == 1 else "s")
    n = int((seconds + 30) // 60)
    return f"{n} minute" + ("" if n == 1 else "s")


def utc_minute(at: datetime) -> str:
    """A time as the runbook writes it: "2024-01-17 14:45 UTC"."""
    return f"{at.astimezone(timezone.utc):%Y-%m-%d %H:%M} UTC"


def mention(operator: str) -> str:
    """The operator as a chat mention: "@engineer"; the console's "user@host"
    operator names become "@user"."""
    if operator.startswith("@"):
        return operator
    return "@" + operator.split("@", 1)[0]


def _health_status(health: Health | None) -> tuple[bool, str]:
    """(healthy, "Service healthy" or what is wrong) from a verification."""
    if health is None:
        return False, "Service health not verified"
    problems = []
    if health.error:
        problems.append(health.error)
    if health.desired is not None and health.ready is not None and health.ready < health.desired:
        problems.append(f"{health.ready}/{health.desired} pods ready")
    if health.endpoint_ok is False:
        problems.append(f"health endpoint {health.endpoint_status or 'failing'}")
    if health.desired is None and health.endpoint_ok is None and not problems:
        return False, "Service health not verified"
    if problems:
        return False, "Service unhealthy: " + ", ".join(problems)
    return True, "Service healthy"


def healthy(health: Health | None) -> bool:
    """True when a post-rollback verification shows all pods ready and the
    health endpoint (if configured) healthy."""
    return _health_status(health)[0]


def rollback_reason(state: IncidentState, before: Metrics | None = None) -> str:
    """Why the rollback happened, in a sentence for the message: the operator's
    reason when they gave one, else "Error rate spiked to 8%" when the error
    rate was the problem, else the latest decision's first reason."""
    if state.rollback.reason:
        return state.rollback.reason
    decision = state.decision
    first = decision.reasons[0] if decision and decision.reasons else ""
    if before is not None and before.error_rate is not None and (not first or first.startswith("Error rate")):
        return f"Error rate spiked to {rate(before.error_rate)}"
    return first or "See the incident timeline"


def default_impact(state: IncidentState) -> tuple[str, ...]:
    """The Impact bullets when the operator gave none: requests failing, and
    whether data is at risk (from the incident's facts)."""
    facts = state.facts
    first = f"Requests to {state.service} may fail intermittently"
    if facts.data_corruption:
        second = "Data corruption detected: writes are frozen" if state.writes_frozen else "Data corruption detected"
    elif facts.migration_applied and facts.migration_reversible is not True:
        second = "A database migration is applied: data may be affected"
    else:
        second = NO_DATA_LOSS
    return (first, second)


# --- the runbook's messages -----------------------------------------------------------


def rollback_in_progress(
    state: IncidentState,
    plan: RollbackPlan | None,
    operator: str,
    now: datetime,
    *,
    reason: str | None = None,
    before: Metrics | None = None,
    impact: Sequence[str] | None = None,
    eta: timedelta = ROLLBACK_ETA,
    likely: tuple[str, str] | None = None,
) -> Message:
    """The runbook's "Rollback in Progress" message.

    Versions come from `plan` (else the incident's rollback, else `likely`:
    the from and to labels a plain rollback would have, read off the history
    before any plan is made); Started is the
    rollback's start (else `now`); Reason is `reason`, else
    `rollback_reason(state, before)`; Impact is `impact`, else
    `default_impact(state)`.
    """
    rb = state.rollback
    service = plan.service if plan is not None else state.service
    if plan is not None:
        frm = versions_label(plan.from_versions, plan.from_revision, plan.from_colour)
        to = versions_label(plan.to_versions, plan.to_revision, plan.to_colour)
    elif rb.started_at is None and likely is not None:
        frm, to = likely
    else:
        frm, to = rb.from_label, rb.to_label
    kind = MessageKind.ROLLBACK_IN_PROGRESS
    return _build(
        kind,
        fields=(
            ("Service", service),
            ("Version", f"{frm} → {to}"),
            ("Reason", reason if reason else rollback_reason(state, before)),
            ("Started", utc_minute(rb.started_at or now)),
            ("ETA", minutes(eta)),
        ),
        sections=(
            ("Impact", tuple(impact) if impact else default_impact(state)),
            ("Actions", (f"Rollback initiated by {mention(operator)}", "Monitoring metrics",
                         "Will update when complete")),
        ),
    )


def rollback_complete(
    state: IncidentState,
    before: Metrics | None,
    after: Metrics | None,
    health: Health | None,
    now: datetime,
    *,
    ticket: str | None = None,
    rca: str = "RCA scheduled for tomorrow",
    settles_at: datetime | None = None,
) -> Message:
    """The runbook's "Rollback Complete" message.

    Duration runs from the rollback's start to its end (or `now`); Status comes
    from the post-rollback `health`; Metrics compare `after` with `before`
    (unknown values say so); the incident ticket is `ticket`, else the
    console's incident id. Before `settles_at` (the rollback's end plus the
    settle time) the metrics are still read over windows that include the bad
    version, and the lines say so rather than pass 5 % off as the result.
    """
    rb = state.rollback
    duration = rb.duration(now) or timedelta(0)
    _, status = _health_status(health)
    bad = rb.from_label
    settling = (f" (still read over windows that include {bad}; settled from {utc_minute(settles_at)})"
                if settles_at is not None and now < settles_at and after is not None else "")
    return _build(
        MessageKind.ROLLBACK_COMPLETE,
        fields=(
            ("Service", state.service),
            ("Rolled back to", rb.to_label),
            ("Duration", minutes(duration)),
            ("Status", status),
        ),
        sections=(
            ("Metrics", (
                f"Error rate: {_compare(before, after, 'error_rate', rate)}{settling}",
                f"Latency p95: {_compare(before, after, 'latency_p95_ms', milliseconds)}{settling}",
            )),
            ("Next Steps", (
                f"Incident ticket: {ticket or state.id}",
                rca,
                f"Do not re-deploy {bad} without fix",
            )),
        ),
    )


def _now_line(metrics: Metrics | None) -> str:
    """ "Error rate 8%, p95 2000ms" from the latest signals, or that they are unknown."""
    if metrics is None or (metrics.error_rate is None and metrics.latency_p95_ms is None):
        return "Signals: unknown"
    parts = []
    if metrics.error_rate is not None:
        parts.append(f"error rate {rate(metrics.error_rate)}")
    if metrics.latency_p95_ms is not None:
        parts.append(f"p95 {milliseconds(metrics.latency_p95_ms)}")
    return "Now: " + ", ".join(parts)


def _current_version(state: IncidentState, current: str | None) -> str:
    return current or ", ".join(state.rollback.from_versions) or "unknown"


def fix_forward(state: IncidentState, operator: str, now: datetime, *, reason: str, version: str | None = None,
                metrics: Metrics | None = None) -> Message:
    """We are not rolling back: the fix goes forward (a migration, a hotfix), and why."""
    return _build(
        MessageKind.FIX_FORWARD,
        fields=(("Service", state.service), ("Incident", state.id), ("Running", _current_version(state, version)),
                ("Decision", "Fix forward (no rollback)"), ("Reason", reason), ("Decided", utc_minute(now))),
        sections=(("Status", (_now_line(metrics),)),
                  ("Actions", (f"Fix forward led by {mention(operator)}", "Monitoring metrics",
                               "Will update when the fix is deployed"))),
    )


def waiting_external(state: IncidentState, operator: str, now: datetime, *, reason: str,
                     version: str | None = None, metrics: Metrics | None = None) -> Message:
    """The cause is outside this service: we wait on an external fix (no rollback)."""
    return _build(
        MessageKind.WAITING_EXTERNAL,
        fields=(("Service", state.service), ("Incident", state.id), ("Running", _current_version(state, version)),
                ("Decision", "Wait for the external fix (no rollback)"), ("Reason", reason),
                ("Decided", utc_minute(now))),
        sections=(("Status", (_now_line(metrics),)),
                  ("Actions", (f"Watched by {mention(operator)}", "Monitoring metrics",
                               "Will update when the external service recovers"))),
    )


def escalation(state: IncidentState, operator: str, now: datetime, *, level: int, role: str, why: str,
               contacts: Sequence[str] = ()) -> Message:
    """Escalating to the runbook's next level: who, and why."""
    return _build(
        MessageKind.ESCALATION,
        fields=(("Service", state.service), ("Incident", state.id), ("Level", f"{level} · {role}"),
                ("Why", why), ("Contacts", ", ".join(contacts) or "see the escalation policy"),
                ("Escalated", utc_minute(now))),
        sections=(("Actions", (f"Escalated by {mention(operator)}",)),),
    )


def status_update(state: IncidentState, operator: str, now: datetime, *, decision: str,
                  metrics: Metrics | None = None, next_update: timedelta | None = None) -> Message:
    """The periodic status update: where the incident stands now, and when the next update comes."""
    impact = state.customer_impact_since
    fields = [("Service", state.service), ("Incident", state.id), ("Decision", decision),
              ("Rollback", state.rollback.status.value.replace("_", " ")), ("As of", utc_minute(now))]
    if impact is not None:
        fields.append(("Impact for", minutes(now - impact)))
    actions = [f"Update by {mention(operator)}"]
    if next_update is not None:
        actions.append(f"Next update in {minutes(next_update)}")
    return _build(MessageKind.STATUS_UPDATE, fields=tuple(fields),
                  sections=(("Status", (_now_line(metrics),)), ("Actions", tuple(actions))))


def _compare(before: Metrics | None, after: Metrics | None, name: str, fmt) -> str:
    now = getattr(after, name, None) if after is not None else None
    was = getattr(before, name, None) if before is not None else None
    text = fmt(now) if now is not None else "unknown"
    return text + (f" (was {fmt(was)})" if was is not None else "")


def rolling_back(service: str, reason: str) -> Message:
    """The script's first notice: "🚨 Rolling back SERVICE: REASON"."""
    return _notice(MessageKind.ROLLING_BACK, f"Rolling back {service}: {reason}")


def rollback_done(service: str, health: Health | None) -> Message:
    """The script's last notice: "✅ Rollback of SERVICE complete. Service
    healthy." when the verification passed, else "⚠️ Rollback complete but
    service unhealthy"."""
    if healthy(health):
        return _notice(MessageKind.COMPLETE_HEALTHY, f"Rollback of {service} complete. Service healthy.")
    return _notice(MessageKind.COMPLETE_UNHEALTHY, "Rollback complete but service unhealthy")


def _notice(kind: MessageKind, words: str) -> Message:
    text = f"{_ICONS[kind]} {words}"
    return Message(kind=kind, title=text, text=text)


def _build(
    kind: MessageKind,
    fields: tuple[tuple[str, str], ...],
    sections: tuple[tuple[str, tuple[str, ...]], ...],
) -> Message:
    title = f"{_ICONS[kind]} {kind.label}"
    # Two trailing spaces are Markdown's hard line break: without them a
    # renderer joins the field lines into one paragraph.
    field_lines = [f"**{label}:** {value}" + ("  " if i < len(fields) - 1 else "")
                   for i, (label, value) in enumerate(fields)]
    blocks = [f"## {title}", "\n".join(field_lines)]
    blocks += [f"**{heading}:**\n" + "\n".join(f"- {item}" for item in items) for heading, items in sections]
    return Message(kind=kind, title=title, text="\n\n".join(blocks) + "\n", fields=fields, sections=sections)


# --- Slack ---------------------------------------------------------------------------------


def slack_escape(text: str) -> str:
    """Text safe for Slack: &, < and > are control characters there."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_text(message: Message) -> str:
    """The message in Slack's mrkdwn: the heading as a bold line, *bold* labels,
    "•" bullets (Slack renders neither "##" nor "- " lists in mrkdwn)."""
    if message.notice:
        return slack_escape(message.text)
    return "\n\n".join(_slack_blocks_text(message))


def _slack_blocks_text(message: Message) -> list[str]:
    parts = [f"*{slack_escape(message.title)}*"]
    parts.append("\n".join(f"*{slack_escape(label)}:* {slack_escape(value)}" for label, value in message.fields))
    for heading, items in message.sections:
        parts.append(f"*{slack_escape(heading)}:*\n" + "\n".join(f"• {slack_escape(item)}" for item in items))
    return parts


def slack_payload(message: Message) -> dict[str, Any]:
    """The JSON body for a Slack incoming webhook: "text" (the whole message,
    also the notification's fallback) and, for the runbook's templates, one
    mrkdwn section block per paragraph."""
    payload: dict[str, Any] = {"text": slack_text(message)}
    if not message.notice:
        payload["blocks"] = [
            {"type": "section", "text": {"type": "mrkdwn", "text": part}} for part in _slack_blocks_text(message)
        ]
    return payload


def autopilot_notice(words: str) -> Message:
    """The autopilot's one-line notice: "🤖 Autopilot did not roll back ...", or what it would do in shadow mode."""
    return _notice(MessageKind.AUTOPILOT, words)
